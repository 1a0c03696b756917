//! The App Home (issue 12), through the fake Slack: what people see in their Home tab, and what
//! its buttons and the restaff form do.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, slack_id};
use crate::harness::{CHANNEL, Harness, Team, TeamSpec, update_text};

const WAIT: Duration = Duration::from_secs(10);

/// A view's blocks as lines of text: headers as `## …`, buttons as `[Label]`.
fn view_text(view: &Value) -> String {
    let button = |b: &Value| format!("[{}]", b["text"]["text"].as_str().unwrap_or("?"));
    let mut lines = Vec::new();
    for block in view["blocks"].as_array().into_iter().flatten() {
        let t = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match block["type"].as_str() {
            Some("header") => lines.push(format!("## {}", t(&block["text"]["text"]))),
            Some("section") => {
                let mut line = t(&block["text"]["text"]);
                if block["accessory"]["type"] == "button" {
                    line.push_str(&format!(" {}", button(&block["accessory"])));
                }
                lines.push(line);
            }
            Some("context") => lines.extend(
                block["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| t(&e["text"])),
            ),
            Some("actions") => lines.push(
                block["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(button)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => lines.push(block.to_string()),
        }
    }
    lines.join("\n")
}

/// `name`'s Home as text once it shows `needle` (every publish is looked at as it arrives).
pub(crate) async fn home_showing(h: &Harness, name: &str, needle: &str) -> String {
    let user = slack_id(name);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = h.fake.calls_to("views.publish").len();
        if let Some(view) = h.fake.home_view(&user) {
            let text = view_text(&view);
            if text.contains(needle) {
                return text;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !remaining.is_zero(),
                "{name}'s Home never showed {needle:?}; it shows:\n{text}"
            );
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!remaining.is_zero(), "{name}'s Home was never published");
        h.fake
            .wait_for_calls("views.publish", seen + 1, remaining)
            .await;
    }
}

/// `name` opens their Home tab; returns it once published.
pub(crate) async fn open_home(h: &Harness, name: &str, needle: &str) -> String {
    let id = h.fake.send_app_home_opened(&slack_id(name)).await;
    assert!(h.ack(&id).await.payload.is_none(), "events get a bare ack");
    home_showing(h, name, needle).await
}

/// `name` clicks the Home button `action` whose value is `value` (it must be on their Home).
pub(crate) async fn click_home(h: &Harness, name: &str, action: &str, value: impl ToString) {
    let id = h
        .fake
        .click_home(&slack_id(name), action, &value.to_string())
        .await;
    assert!(
        h.ack(&id).await.payload.is_none(),
        "button clicks get a bare ack"
    );
}

#[tokio::test]
async fn a_worker_accepts_from_the_home_tab_and_the_dm_follows() {
    let mut t = TeamSpec::new().workers(&["alice", "bob"]).start().await;
    t.staffed(3).await; // two offers, and everyone has been asked
    let home = open_home(&t.h, "alice", "## Open offers").await;
    assert!(home.contains("*Write the story* (task"), "{home}");
    assert!(home.contains("Details: About 800 words"), "{home}");
    assert!(home.contains("[Accept] [Reject]"), "{home}");

    let offer = t.inquiry_of("alice").await;
    click_home(&t.h, "alice", "offer_accept", offer.id).await;
    let updates = crate::harness::per_channel(t.h.next_messages(4).await);
    let dm = offer.dm_channel.clone().expect("delivered");
    assert!(
        update_text(&updates[&dm][0])
            .1
            .starts_with("You got the task!")
    );
    let channel = crate::harness::texts_of(&updates[CHANNEL]);
    assert!(channel[0].contains("Welcome aboard!"), "{channel:?}");
    assert!(
        channel[1].starts_with("*Task has been picked up by a worker.*"),
        "{channel:?}"
    );
    let home = home_showing(
        &t.h,
        "alice",
        "You got the task! It is under Your tasks now.",
    )
    .await;
    assert!(home.contains("## Your tasks\n*Write the story*"), "{home}");
    assert!(home.contains("[Submit]"), "{home}");
    assert!(home.contains("## Open offers\nNo open offers."), "{home}");
    t.h.finish().await;
}

#[tokio::test]
async fn a_dm_answer_updates_the_home_and_a_forged_admin_click_is_refused() {
    let mut t = TeamSpec::new().workers(&["alice", "bob"]).start().await;
    t.staffed(3).await; // two offers, and everyone has been asked
    open_home(&t.h, "bob", "[Accept] [Reject]").await;
    t.accept("alice").await;
    t.h.next_messages(4).await; // two DMs updated; the welcome and the status notice
    let home = home_showing(&t.h, "bob", "No open offers.").await;
    assert!(
        !home.contains("Needs staffing"),
        "admins' part shown to a worker: {home}"
    );

    // Bob forges the admin buttons: refused, nothing staffed, nothing posted.
    for action in ["admin_staff", "admin_restaff"] {
        let id =
            t.h.fake
                .send_view_action_with(&slack_id("bob"), action, &t.task.to_string(), json!({}))
                .await;
        t.h.ack(&id).await;
        home_showing(&t.h, "bob", "You are not authorized to staff projects!").await;
    }
    assert!(t.h.fake.open_modal(&slack_id("bob")).is_none());
    assert_eq!(t.h.fake.calls_to("views.open").len(), 0);
    t.h.finish().await;
}

/// A team whose task is reviewed by `rita` once `alice` submits it (reviewers staffed
/// automatically), with alice on the task and both Homes open.
async fn review_team() -> Team {
    let mut t = TeamSpec::new()
        .workers(&["alice"])
        .reviewer("rita")
        .auto_review()
        .start()
        .await;
    t.assign("alice").await;
    open_home(&t.h, "alice", "[Submit]").await;
    open_home(&t.h, "rita", "## Your tasks\nNothing in progress.").await;
    t
}

#[tokio::test]
async fn submit_and_review_from_the_home_tab() {
    let mut t = review_team().await;
    click_home(&t.h, "alice", "task_submit", t.task).await;
    assert!(
        t.h.next_post(CHANNEL)
            .await
            .starts_with("*Task is awaiting review.*")
    );
    let home = home_showing(&t.h, "alice", "is now waiting for a reviewer.").await;
    assert!(
        home.contains("## Your tasks\nNothing in progress."),
        "{home}"
    );
    assert!(
        home.contains("## Your recently finished tasks\n• v1 (Mayor race) - write"),
        "{home}"
    );
    // The reviewer policy staffs the review: rita's offer shows on her Home.
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!("Got it! I will start staffing task {}!", t.task)
    );
    t.offers(2).await; // rita's offer, and everyone has been asked
    let home = home_showing(&t.h, "rita", "[Review]").await;
    assert!(home.contains("[Accept] [Reject]"), "{home}");
    let offer = t.inquiry_of("rita").await;
    click_home(&t.h, "rita", "offer_accept", offer.id).await;
    t.h.next_messages(3).await; // her DM: you got it; the channel: welcome, under review
    home_showing(&t.h, "rita", "[Approve] [Send back]").await;

    // Each change is the lifecycle's: its status notice in the channel, and both Homes.
    async fn notice(h: &mut Harness, line: &str) {
        let posted = h.next_post(CHANNEL).await;
        assert!(posted.starts_with(&format!("*Task {line}*")), "{posted}");
    }
    click_home(&t.h, "rita", "task_send_back", t.task).await;
    notice(&mut t.h, "was returned by reviewer.").await;
    home_showing(&t.h, "rita", "is now returned by the reviewer.").await;
    home_showing(&t.h, "alice", "returned by the reviewer, since").await;
    click_home(&t.h, "alice", "task_submit", t.task).await;
    notice(&mut t.h, "is under review.").await;
    home_showing(&t.h, "rita", "under review, since").await;
    click_home(&t.h, "rita", "task_approve", t.task).await;
    notice(&mut t.h, "has been completed.").await;
    home_showing(&t.h, "rita", "is now complete.").await;
    let home = home_showing(&t.h, "alice", "complete,").await;
    assert!(
        home.contains("## Your tasks\nNothing in progress."),
        "{home}"
    );
    let task = staffbot::db::tasks::by_id(t.h.db(), t.task)
        .await
        .expect("db")
        .expect("task");
    assert_eq!(task.status, staffbot::db::TaskStatus::Complete);
    t.h.finish().await;
}

#[tokio::test]
async fn a_stale_submit_is_refused_with_the_lifecycles_reason() {
    let mut t = TeamSpec::new().workers(&["alice", "bob"]).start().await;
    t.assign("alice").await;
    open_home(&t.h, "alice", "[Submit]").await;
    // The task is handed to bob meanwhile; alice's click arrives from the old view.
    let bob = common::find_worker(t.h.db(), "bob").await;
    staffbot::lifecycle::assign_or_reassign(
        t.h.db(),
        t.task,
        &bob,
        &Default::default(),
        chrono::Utc::now(),
    )
    .await
    .expect("handed over");
    t.h.next_messages(2).await; // bob's welcome, alice told
    let id =
        t.h.fake
            .send_view_action_with(
                &slack_id("alice"),
                "task_submit",
                &t.task.to_string(),
                json!({}),
            )
            .await;
    t.h.ack(&id).await;
    home_showing(
        &t.h,
        "alice",
        "Task assignment with worker is in broken state.",
    )
    .await;
    let task = staffbot::db::tasks::by_id(t.h.db(), t.task)
        .await
        .expect("db")
        .expect("task");
    assert_eq!(task.status, staffbot::db::TaskStatus::Processing);
    t.h.finish().await;
}

#[tokio::test]
async fn an_admin_staffs_and_restaffs_from_the_home_tab() {
    let mut t = TeamSpec::new()
        .workers(&["alice", "bob"])
        .admin("ada")
        .start()
        .await;
    let home = open_home(&t.h, "ada", "## Needs staffing").await;
    assert!(home.contains("nobody asked [Staff]"), "{home}");
    assert!(
        home.contains("## Staffing at a glance (last 7 days)\nNo staffing requests."),
        "{home}"
    );

    click_home(&t.h, "ada", "admin_staff", t.task).await;
    let started = format!("Got it! I will start staffing task {}!", t.task);
    assert_eq!(t.h.next_post(CHANNEL).await, started);
    let home = home_showing(&t.h, "ada", "Being staffed since").await;
    assert!(
        home.contains(&format!(":information_source: {started}")),
        "{home}"
    );
    t.offers(3).await;
    t.accept("alice").await;
    t.h.next_messages(4).await; // two DMs updated; the welcome and the status notice
    let home = home_showing(&t.h, "ada", "alice: in progress since").await;
    assert!(home.contains("[Restaff]"), "{home}");
    assert!(home.contains("*news*: 1 opened, 1 staffed"), "{home}");

    click_home(&t.h, "ada", "admin_restaff", t.task).await;
    t.h.fake.wait_for_calls("views.open", 1, WAIT).await;
    let modal =
        t.h.fake
            .open_modal(&slack_id("ada"))
            .expect("the restaff form is open");
    assert_eq!(modal["title"]["text"], "Restaff a task");
    // A worker not on the task: refused under the field, the form stays open.
    t.h.fake
        .submit_modal(&slack_id("ada"), restaff_choice("bob"))
        .await;
    let errors =
        t.h.fake
            .modal_errors(&slack_id("ada"))
            .expect("errors shown");
    assert!(
        errors["restaff_worker"]
            .as_str()
            .unwrap_or_default()
            .contains("bob"),
        "{errors}"
    );
    t.h.fake
        .submit_modal(&slack_id("ada"), restaff_choice("alice"))
        .await;
    assert!(
        t.h.fake.open_modal(&slack_id("ada")).is_none(),
        "the form closed"
    );
    let restarted = format!("Got it! I will start restaffing task {}!", t.task);
    assert_eq!(t.h.next_post(CHANNEL).await, restarted);
    home_showing(&t.h, "ada", &restarted).await;
    t.h.finish().await;
}

/// The restaff form's value choosing `name`, as Slack sends a static select's.
fn restaff_choice(name: &str) -> Value {
    json!({"restaff_worker": {"worker": {"type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": name}, "value": name}}}})
}

#[tokio::test]
async fn slash_tasks_lists_a_workers_offers_and_tasks() {
    let mut t = TeamSpec::new().workers(&["alice", "bob"]).start().await;
    t.staffed(3).await; // two offers, and everyone has been asked
    let reply = t.h.reply(&slack_id("bob"), "tasks").await;
    assert_eq!(
        reply["text"],
        "You have 1 open offer(s) and 0 task(s) in progress."
    );
    let shown = view_text(&reply);
    assert!(
        shown.contains("## Open offers\n*Write the story*"),
        "{shown}"
    );
    assert!(shown.contains("[Accept] [Reject]"), "{shown}");
    let refused =
        t.h.reply(&slack_id("bob"), &format!("staff {}", t.task))
            .await;
    assert_eq!(refused["text"], "You are not authorized to staff projects!");
    t.h.finish().await;
}

#[tokio::test]
async fn a_failed_home_publish_is_retried() {
    let mut t = TeamSpec::new().workers(&["alice"]).start().await;
    t.h.fake
        .fail_next("views.publish", slack_sim::Fault::ServerError, 1);
    open_home(&t.h, "alice", "## Open offers").await;
    assert!(
        t.h.fake.calls_to("views.publish").len() >= 2,
        "retried after the 500"
    );
    t.staffed(2).await;
    home_showing(&t.h, "alice", "[Accept] [Reject]").await;
    t.h.finish().await;
}

#[tokio::test]
async fn a_restaff_form_slack_refuses_is_reported_on_the_home() {
    let mut t = TeamSpec::new()
        .workers(&["alice"])
        .admin("ada")
        .start()
        .await;
    t.assign("alice").await;
    open_home(&t.h, "ada", "[Restaff]").await;
    // The click's trigger has expired by the time the form is opened.
    t.h.fake.set_trigger_lifetime(Duration::ZERO);
    click_home(&t.h, "ada", "admin_restaff", t.task).await;
    home_showing(
        &t.h,
        "ada",
        "The form could not be opened (Slack answered `expired_trigger_id`).",
    )
    .await;
    assert!(t.h.fake.open_modal(&slack_id("ada")).is_none());
    t.h.finish().await;
}

/// Issue 26: under `staffbot.policy = "adaptive"` the daemon staffs through the same paths (an
/// accept wins once, the others are told it is taken, a restaff asks again), and the admin's
/// Home shows the policy's expected minutes to staff each open request.
#[tokio::test]
async fn the_adaptive_policy_staffs_through_the_daemon_and_the_home_shows_its_estimate() {
    let mut t = TeamSpec::new()
        .workers(&["alice", "bob"])
        .admin("ada")
        .config(|c| c.staffbot.policy = staffbot::config::PolicyName::Adaptive)
        .start()
        .await;
    open_home(&t.h, "ada", "## Needs staffing").await;
    click_home(&t.h, "ada", "admin_staff", t.task).await;
    t.h.next_post(CHANNEL).await; // "Got it! I will start staffing …"
    // Nobody has a record yet: the prior's chances fall short of the target, so both are asked.
    t.offers(3).await;
    let home = home_showing(&t.h, "ada", "2 offer(s) sent").await;
    assert!(home.contains("expected staffed in about"), "{home}");
    t.accept("bob").await;
    t.accept("alice").await;
    let calls = t.h.next_messages(4).await; // two DMs updated; the welcome and the notice
    let taken = calls
        .iter()
        .filter(|c| c.method == "chat.update")
        .filter(|c| update_text(c).1 == "This task has been taken by another expert.")
        .count();
    assert_eq!(taken, 1, "{calls:?}");
    let bob = t.worker("bob").await;
    let restaffed =
        staffbot::requests::restaff_task(t.h.db(), t.task, &bob, "bob", chrono::Utc::now())
            .await
            .expect("restaff");
    assert_eq!(restaffed.required_role_counter, 0);
    t.h.next_post(CHANNEL).await; // "Got it! I will start restaffing …"
    let offers = t.offers(2).await;
    assert!(
        offers
            .iter()
            .any(|c| c.body["channel"] == slack_id("alice").as_str()),
        "{offers:?}"
    );
    t.h.finish().await;
}
