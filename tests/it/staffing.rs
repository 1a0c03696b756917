//! The staffing engine end to end through the fake Slack: batches in priority order, offers with
//! buttons, Accept / Reject, one winner under concurrent clicks (two replicas), restaff,
//! reviewers, autoassign, abort, and "No worker has accepted".

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use slack_sim::ApiCall;
use staffbot::db::entities::{
    staffing_inquiry, staffing_request, staffing_response, task, task_assignment, worker,
};
use staffbot::db::{RequestCause, RequestStatus, Role, TaskStatus};
use staffbot::lifecycle;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{
    AWAITING_REVIEW, PICKED_UP, TestDb, UNDER_REVIEW, assignments, by_id, certify, count,
    first_task, flow, slack_id, staff, step, submit, welcome, worker,
};
use crate::harness::{
    CHANNEL, Harness, Team, TeamSpec, by_channel, per_channel, team, text, texts_of, update_text,
};

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

const ALL_SENT: &str = "All staffing requests for task v1 (Mayor race) - write have been sent!";
const TAKEN: &str = "This task has been taken by another expert.";

/// The users the offers in `calls` went to, in order.
fn offer_recipients(calls: &[ApiCall]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            assert_eq!(c.method, "chat.postMessage", "{c:?}");
            assert_eq!(
                c.body["blocks"][1]["elements"][0]["action_id"], "offer_accept",
                "{c:?}"
            );
            c.body["channel"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

async fn winners(db: &sea_orm::DatabaseConnection) -> u64 {
    staffing_response::Entity::find()
        .filter(staffing_response::Column::IsWinner.eq(true))
        .count(db)
        .await
        .expect("count")
}

#[tokio::test]
async fn batches_follow_priority_frequency_and_exhaust_once() {
    // a,b (5) before c (3) before d (1); eve disabled; no-slack and uncertified never asked.
    let spec = TeamSpec::new().batch(2).worker("a", 5).worker("b", 5);
    let mut t = spec
        .worker("c", 3)
        .worker("d", 1)
        .disabled("eve", 9)
        .start()
        .await;
    let ghost = worker("ghost")
        .no_slack()
        .certified("writer", Role::EntryLevel, 10, true);
    ghost.add(t.h.db()).await;
    worker("uncertified").add(t.h.db()).await;
    let request = t.staff().await;
    // Rounds are driven with explicit times; in the past, so that what they queue is due now.
    let t0: DateTime<Utc> = Utc::now() - minutes(30);
    let r = t.h.tick(t0, 1).await;
    assert_eq!((r.offers, r.exhausted), (2, 0));
    let first: BTreeSet<String> = offer_recipients(&t.h.next_messages(2).await)
        .into_iter()
        .collect();
    assert_eq!(first, BTreeSet::from(["U0A".into(), "U0B".into()]));
    // Not again before batch_frequency (2m).
    assert_eq!(t.h.tick(t0 + minutes(1), 1).await.offers, 0);
    // The last two: a full batch that empties the pool says so in this same round.
    let r = t.h.tick(t0 + minutes(2), 1).await;
    assert_eq!((r.offers, r.exhausted), (2, 1));
    let calls = t.h.next_messages(3).await;
    assert_eq!(offer_recipients(&calls[..2]), ["U0C", "U0D"]);
    assert_eq!(
        (&calls[2].body["channel"], text(&calls[2])),
        (&json!(CHANNEL), ALL_SENT)
    );
    let stored = by_id::<staffing_request::Entity>(t.h.db(), request.id).await;
    assert_eq!(stored.status, RequestStatus::DoneSending);
    // Nothing more, ever: the message is not repeated.
    assert_eq!(t.h.tick(t0 + minutes(10), 1).await.offers, 0);
    assert_eq!(count::<staffing_inquiry::Entity>(t.h.db()).await, 4);
    t.h.finish().await;
}

#[tokio::test]
async fn offers_show_orchestras_text_and_two_buttons() {
    let mut t = team(&["a"]).await;
    let calls = t.staffed(2).await;
    let inquiry = t.inquiry_of("a").await;
    assert_eq!(
        text(&calls[0]),
        format!(
            "Hello a!\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: Newsroom\nProject description: Mayor race\nTask: Write the story\nDetails: About 800 words for project {}",
            t.project
        )
    );
    let buttons = &calls[0].body["blocks"][1]["elements"];
    assert_eq!(buttons[0]["text"]["text"], "Accept");
    assert_eq!(buttons[0]["value"], inquiry.id.to_string());
    assert_eq!(buttons[1]["action_id"], "offer_reject");
    assert_eq!(buttons[1]["text"]["text"], "Reject");
    assert_eq!(text(&calls[1]), ALL_SENT);
    // The DM's channel and ts are stored for later updates.
    let stored = t.inquiry_of("a").await;
    assert_eq!(stored.dm_channel.as_deref(), Some("DU0A"));
    assert!(stored.dm_ts.is_some());
    t.h.finish().await;
}

/// Who gets the one offer of a fresh request, with this seed (no Slack involved).
async fn first_choice(db: &sea_orm::DatabaseConnection, task: i64, seed: u64) -> i64 {
    first_choice_with(db, task, seed, Default::default()).await
}

/// [`first_choice`] with `settings` (the batch size is 1 whatever they say).
async fn first_choice_with(
    db: &sea_orm::DatabaseConnection,
    task: i64,
    seed: u64,
    settings: staffbot::staffing::batch::BatchSettings,
) -> i64 {
    offered(db, task, seed, settings)
        .await
        .first()
        .copied()
        .expect("one offer")
}

/// The workers a fresh request for `task` asks in its first round, with this seed.
async fn offered(
    db: &sea_orm::DatabaseConnection,
    task: i64,
    seed: u64,
    settings: staffbot::staffing::batch::BatchSettings,
) -> Vec<i64> {
    use rand::SeedableRng;
    let request = staff(db, task).await;
    let lease =
        staffbot::lease::try_lease(db, "staffing", "test", std::time::Duration::from_secs(60))
            .await
            .expect("lease")
            .expect("held");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let settings = staffbot::staffing::batch::BatchSettings {
        batch_size: settings.batch_size.max(1),
        frequency: std::time::Duration::from_secs(120),
        ..settings
    };
    staffbot::staffing::batch::run_once(db, &lease, settings, Utc::now(), &mut rng)
        .await
        .expect("round");
    staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request.id))
        .all(db)
        .await
        .expect("q")
        .into_iter()
        .map(|i| i.worker_id)
        .collect()
}

#[tokio::test]
async fn ties_are_broken_randomly_but_reproducibly() {
    let t = TestDb::new().await;
    flow(&["writer"], vec![step("s", "writer")])
        .project(&t.db, "P", None)
        .await;
    let mut top = Vec::new();
    for name in ["a", "b", "c"] {
        let w = worker(name).certified("writer", Role::EntryLevel, 1, true);
        top.push(w.add(&t.db).await.id);
    }
    worker("low").writes("writer").add(&t.db).await;
    let task = first_task(&t.db).await;
    let mut seen = BTreeSet::new();
    for seed in 0..16u64 {
        let chosen = first_choice(&t.db, task, seed).await;
        assert!(top.contains(&chosen), "a lower priority was chosen");
        // The same seed gives the same choice.
        assert_eq!(first_choice(&t.db, task, seed).await, chosen);
        seen.insert(chosen);
    }
    assert!(
        seen.len() >= 2,
        "ties are not always broken the same way: {seen:?}"
    );
}

/// Issue 28 (load): with `max_open_tasks_per_worker = 1` a worker holding an unfinished task is
/// not asked; with `tie_break = "least_loaded"` the one who took on fewer tasks this week is
/// asked first among equal priorities, whatever the seed.
#[tokio::test]
async fn open_task_caps_and_the_least_loaded_order() {
    use staffbot::config::TieBreak;
    use staffbot::staffing::batch::BatchSettings;
    let t = TestDb::new().await;
    let f = flow(&["writer"], vec![step("s", "writer")]);
    for name in ["P1", "P2", "P3"] {
        f.project(&t.db, name, None).await;
    }
    let mut ids = Vec::new();
    for name in ["busy", "idle"] {
        let w = worker(name).certified("writer", Role::EntryLevel, 1, true);
        ids.push(w.add(&t.db).await.id);
    }
    let (busy, idle) = (ids[0], ids[1]);
    let tasks: Vec<i64> = crate::common::tasks(&t.db)
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    crate::common::assign(&t.db, tasks[0], "busy").await;
    // No cap: either may be asked; both are, in a batch of two.
    let both = BatchSettings {
        batch_size: 2,
        ..Default::default()
    };
    let mut asked = offered(&t.db, tasks[1], 1, both).await;
    asked.sort_unstable();
    assert_eq!(asked, [busy, idle]);
    // Capped at one open task: only the idle one, even in a batch of two.
    let capped = BatchSettings {
        batch_size: 2,
        max_open_tasks: Some(1),
        ..Default::default()
    };
    assert_eq!(offered(&t.db, tasks[2], 1, capped).await, [idle]);
    // Least loaded first: the busy one took on a task this week.
    let least = BatchSettings {
        tie_break: TieBreak::LeastLoaded,
        ..Default::default()
    };
    for seed in 0..8 {
        let task = f.project(&t.db, &format!("Q{seed}"), None).await;
        let task = crate::common::tasks(&t.db)
            .await
            .iter()
            .find(|x| x.project_id == task)
            .expect("the project's task")
            .id;
        assert_eq!(
            first_choice_with(&t.db, task, seed, least.clone()).await,
            idle
        );
    }
}

/// a (priority 3), b (2) and c (1) each have an offer of the task (one round, batch of 3).
async fn three_offers() -> Team {
    let spec = TeamSpec::new().batch(3).worker("a", 3).worker("b", 2);
    let mut t = spec.worker("c", 1).start().await;
    t.staffed(4).await; // three offers and the exhausted-pool note
    t
}

#[tokio::test]
async fn a_decline_thanks_the_worker_in_place() {
    let mut t = three_offers().await;
    t.reject("b").await;
    let thanks = update_text(&t.h.next_message().await);
    assert_eq!(thanks, ("DU0B".into(), "Thanks for responding!".into()));
    assert_eq!(count::<staffing_response::Entity>(t.h.db()).await, 1);
    t.h.finish().await;
}

#[tokio::test]
async fn a_click_on_someone_elses_offer_is_refused_and_changes_nothing() {
    let t = three_offers().await;
    t.click("c", "offer_accept", "a").await;
    assert_eq!(
        t.h.response_texts(1).await,
        ["This offer was not sent to you."]
    );
    assert_eq!(count::<staffing_response::Entity>(t.h.db()).await, 0);
    t.h.finish().await;
}

#[tokio::test]
async fn an_accept_assigns_invites_welcomes_and_tells_the_others_it_is_taken() {
    let mut t = three_offers().await;
    t.accept("a").await;
    let mut calls = per_channel(t.h.next_messages(5).await);
    // The welcome, then the status notice naming the winner.
    let channel = calls.remove(CHANNEL).unwrap_or_default();
    assert_eq!(
        texts_of(&channel),
        [welcome("U0A"), t.notice(PICKED_UP, "a")]
    );
    let calls = by_channel(calls.into_values().flatten().collect());
    let won = update_text(&calls["DU0A"]).1;
    assert!(
        won.starts_with("You got the task!") && won.contains("<#G0PROJ>"),
        "{won}"
    );
    assert_eq!(update_text(&calls["DU0B"]).1, TAKEN);
    assert_eq!(update_text(&calls["DU0C"]).1, TAKEN);
    assert_eq!(t.h.fake.channel_members(CHANNEL), ["U0A"]);
    assert_eq!(assignments(t.h.db()).await, [(t.worker("a").await.id, 0)]);
    let task = by_id::<task::Entity>(t.h.db(), t.task).await;
    assert_eq!(task.status, TaskStatus::Processing);
    t.h.finish().await;
}

#[tokio::test]
async fn after_the_win_late_accepts_rejects_and_second_clicks_change_nothing() {
    let mut t = three_offers().await;
    t.accept("a").await;
    t.h.next_messages(5).await; // the welcome and the notice, won, taken, taken
    // c accepts late: recorded, nothing else changes (its DM already says taken).
    t.accept("c").await;
    // a tries to reject after winning; a clicks again: nothing changes.
    t.reject("a").await;
    t.accept("a").await;
    assert_eq!(winners(t.h.db()).await, 1);
    assert_eq!(count::<task_assignment::Entity>(t.h.db()).await, 1);
    // The refusal goes back ephemerally (Slack's default for response_url), never replacing
    // the offer.
    let refused = t.h.response_texts(1).await;
    assert_eq!(refused, ["Cannot reject after accepting the task"]);
    let posts = t.h.fake.response_posts();
    let kind = posts[0].get("response_type");
    assert!(kind.is_none_or(|r| r == "ephemeral"), "{posts:?}");
    assert_eq!(posts[0]["replace_original"], false);
    t.h.finish().await;
}

#[tokio::test]
async fn fifty_simultaneous_accepts_on_two_replicas_make_one_winner() {
    let names: Vec<String> = (0..50).map(|i| format!("w{i:02}")).collect();
    let spec = names
        .iter()
        .fold(TeamSpec::new().batch(50).replica(), |s, n| s.worker(n, 0));
    let mut t = spec.start().await;
    t.staffed(51).await; // 50 offers + the exhausted-pool note
    let mut inquiries = Vec::new();
    for n in &names {
        inquiries.push((slack_id(n), t.inquiry_of(n).await));
    }
    let clicks = inquiries.iter().map(|(user, i)| {
        let fake = t.h.fake.clone();
        let value = i.id.to_string();
        let channel = i.dm_channel.clone().unwrap_or_default();
        let ts = i.dm_ts.clone().unwrap_or_default();
        async move {
            fake.send_block_action(user, "offer_accept", &value, &channel, &ts)
                .await
        }
    });
    for id in &join_all(clicks).await {
        t.h.ack(id).await;
    }
    assert_eq!(count::<task_assignment::Entity>(t.h.db()).await, 1);
    assert_eq!(winners(t.h.db()).await, 1);
    assert_eq!(count::<staffing_response::Entity>(t.h.db()).await, 50);
    let (mut taken, mut won, mut notices) = (0, 0, 0);
    for c in &t.h.next_messages(52).await {
        if c.method == "chat.postMessage" && text(c).starts_with(&format!("*{PICKED_UP}*")) {
            notices += 1;
            continue;
        }
        if c.method == "chat.postMessage" {
            assert!(text(c).ends_with("has been added to the team. Welcome aboard!"));
            continue;
        }
        match update_text(c).1.as_str() {
            TAKEN => taken += 1,
            outcome if outcome.starts_with("You got the task!") => won += 1,
            outcome => panic!("unexpected update {outcome}"),
        }
    }
    assert_eq!((won, taken, notices), (1, 49, 1));
    t.h.finish().await;
}

#[tokio::test]
async fn restaff_moves_the_work_and_tells_everyone() {
    let mut t = TeamSpec::new()
        .worker("bob", 5)
        .worker("carl", 1)
        .start()
        .await;
    let bob = t.assign("bob").await;
    let r = staffbot::requests::restaff_task(t.h.db(), t.task, &bob, "bob", Utc::now())
        .await
        .expect("restaff");
    assert_eq!(
        (r.required_role_counter, r.cause),
        (0, RequestCause::Restaff)
    );
    let got_it = format!("Got it! I will start restaffing task {}!", t.task);
    assert_eq!(t.h.next_post(CHANNEL).await, got_it);
    let calls = t.offers(2).await;
    assert_eq!(
        offer_recipients(&calls[..1]),
        ["U0CARL"],
        "bob, already on the task, is not asked"
    );
    t.accept("carl").await;
    // A hand-over: the welcome, but no status notice (the task's status stays).
    let calls = by_channel(t.h.next_messages(3).await);
    assert_eq!(text(&calls[CHANNEL]), welcome("U0CARL"));
    assert!(
        text(&calls["U0BOB"]).contains("no longer assigned"),
        "{:?}",
        calls["U0BOB"]
    );
    assert!(
        update_text(&calls["DU0CARL"])
            .1
            .starts_with("You got the task!")
    );
    assert_eq!(
        t.h.fake.channel_members(CHANNEL),
        ["U0CARL"],
        "bob was removed"
    );
    assert_eq!(
        assignments(t.h.db()).await,
        [(t.worker("carl").await.id, 0)]
    );
    t.h.finish().await;
}

/// Issue 18: a task handed back and forth (`task assign` on a task in progress) invites and
/// welcomes the new worker and removes the previous one every time, also when the same two
/// workers swap again.
#[tokio::test]
async fn a_task_handed_back_and_forth_has_its_slack_effects_every_time() {
    let mut t = team(&["erin", "ed"]).await;
    let (erin, ed) = (t.assign("erin").await, t.worker("ed").await);
    for (to, from) in [(&ed, &erin), (&erin, &ed), (&ed, &erin), (&erin, &ed)] {
        let (to_id, from_id) = (slack_id(&to.username), slack_id(&from.username));
        let (_, reassigned) =
            lifecycle::assign_or_reassign(t.h.db(), t.task, to, &Default::default(), Utc::now())
                .await
                .expect("hand over");
        assert!(reassigned);
        // The welcome (after the invite) and the DM (after the kick), in either order.
        let calls = by_channel(t.h.next_messages(2).await);
        assert_eq!(text(&calls[CHANNEL]), welcome(&to_id));
        assert!(
            text(&calls[&from_id]).contains("no longer assigned"),
            "{:?}",
            calls[&from_id]
        );
        let members = t.h.fake.channel_members(CHANNEL);
        assert_eq!(
            members,
            [to_id],
            "{} in the channel, {} not",
            to.username,
            from.username
        );
    }
    t.h.finish().await;
}

/// Issue 18: with `slack.verification_token` set, a click whose payload carries another token,
/// or none, changes nothing and is logged without either token; the right token works.
#[tokio::test]
async fn clicks_need_the_verification_token() {
    let (tap, _guard) = crate::faults::LogTap::install("staffbot=info");
    let spec = TeamSpec::new().batch(1).workers(&["a"]);
    let spec = spec.config(|c| c.slack.verification_token = Some("vtok-right".into()));
    let mut t = spec.start().await;
    t.staffed(2).await; // the offer and the exhausted-pool note
    let click = |token: Value| t.click_with("a", "offer_accept", "a", json!({"token": token}));

    click(json!("vtok-forged")).await;
    let logged = tap.wait_for("wrong or missing verification token", crate::harness::WAIT);
    assert!(logged.await);
    click(Value::Null).await;
    assert_eq!(
        count::<staffing_response::Entity>(t.h.db()).await,
        0,
        "nothing changed"
    );
    assert!(!tap.contains("vtok-forged") && !tap.contains("vtok-right"));

    click(json!("vtok-right")).await;
    assert_eq!(count::<staffing_response::Entity>(t.h.db()).await, 1);
    let calls = per_channel(t.h.next_messages(3).await);
    assert!(
        update_text(&calls["DU0A"][0])
            .1
            .starts_with("You got the task!")
    );
    assert_eq!(
        texts_of(&calls[CHANNEL]),
        [welcome("U0A"), t.notice(PICKED_UP, "a")]
    );
    t.h.finish().await;
}

#[tokio::test]
async fn reviewers_are_staffed_automatically_after_submit() {
    let mut t = TeamSpec::new()
        .worker("wri", 0)
        .worker("rev", 0)
        .auto_review()
        .start()
        .await;
    let rev = t.worker("rev").await;
    certify(t.h.db(), &rev, "writer", Role::Reviewer).await;
    t.assign("wri").await;
    submit(t.h.db(), t.task, "wri", SubmitKind::RequestedReview).await;
    let awaiting = t.notice(AWAITING_REVIEW, "wri");
    assert_eq!(t.h.next_post(CHANNEL).await, awaiting);
    let got_it = format!("Got it! I will start staffing task {}!", t.task);
    assert_eq!(t.h.next_post(CHANNEL).await, got_it);
    let request = crate::common::all::<staffing_request::Entity>(t.h.db()).await;
    let request = (request[0].required_role_counter, request[0].cause);
    assert_eq!(request, (1, RequestCause::TaskPolicy));
    let calls = t.offers(2).await;
    assert_eq!(
        offer_recipients(&calls[..1]),
        ["U0REV"],
        "only reviewer-certified workers"
    );
    assert!(text(&calls[0]).contains("Task: Write the story [Review]"));
    t.accept("rev").await;
    let calls = per_channel(t.h.next_messages(3).await);
    assert_eq!(
        texts_of(&calls[CHANNEL]),
        [welcome("U0REV"), t.notice(UNDER_REVIEW, "rev")]
    );
    let task = by_id::<task::Entity>(t.h.db(), t.task).await;
    assert_eq!(task.status, TaskStatus::Reviewing);
    assert_eq!(assignments(t.h.db()).await[1], (rev.id, 1));
    t.h.finish().await;
}

#[tokio::test]
async fn autoassign_on_creation_and_closing_on_abort() {
    let mut h = Harness::new().await;
    let autoassign = "orchestra.bots.assignment_policies.staffbot_autoassign";
    let s = step("s", "writer")
        .policy("entry_level", autoassign, Value::Null)
        .no_review();
    let version = flow(&["writer"], vec![s]).load(h.db()).await;
    worker("a").writes("writer").add(h.db()).await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    h.hold_loop_leases().await;
    h.start().await;
    let project = crate::common::create_project(h.db(), &version, "P", Some(CHANNEL)).await;
    let db = h.db().clone();
    let request = || crate::common::all::<staffing_request::Entity>(&db);
    assert_eq!(request().await[0].cause, RequestCause::TaskPolicy);
    let got_it = format!(
        "Got it! I will start staffing task {}!",
        first_task(h.db()).await
    );
    assert_eq!(h.next_post(CHANNEL).await, got_it);
    h.tick(Utc::now(), 1).await;
    h.next_messages(2).await;
    lifecycle::abort_project(h.db(), project, &Default::default(), Utc::now())
        .await
        .expect("abort");
    assert_eq!(request().await[0].status, RequestStatus::Closed);
    // A click after the abort: the offer says it is gone.
    let inquiry = crate::common::all::<staffing_inquiry::Entity>(h.db()).await;
    h.click("a", "offer_accept", &inquiry[0]).await;
    let gone = (
        "DU0A".into(),
        "Sorry, this task is no longer available.".into(),
    );
    assert_eq!(update_text(&h.next_message().await), gone);
    assert_eq!(count::<task_assignment::Entity>(h.db()).await, 0);
    h.finish().await;
}

#[tokio::test]
async fn when_everyone_declines_the_channel_is_told_once() {
    let mut t = TeamSpec::new().batch(2).workers(&["a", "b"]).start().await;
    let request = t.staff().await;
    t.offers(3).await;
    t.reject("a").await;
    t.h.next_message().await;
    t.reject("b").await;
    let calls = t.h.next_messages(2).await;
    assert_eq!(update_text(&calls[0]).1, "Thanks for responding!");
    assert_eq!(
        text(&calls[1]),
        "No worker has accepted to work on task v1 (Mayor race) - write"
    );
    let stored = by_id::<staffing_request::Entity>(t.h.db(), request.id).await;
    assert_eq!(stored.status, RequestStatus::Closed);
    // A second decline click changes nothing and says nothing.
    t.reject("b").await;
    t.h.finish().await;
}

#[tokio::test]
async fn one_tick_with_a_thousand_candidates_costs_a_few_statements() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let t = crate::common::TestDb::new().await;
    let version = flow(&["writer"], vec![step("s", "writer")])
        .load(&t.db)
        .await;
    for p in 0..20 {
        crate::common::create_project(&t.db, &version, &format!("P{p}"), Some(CHANNEL)).await;
    }
    let cert = staffbot::workers::find_certification(&t.db, "writer", None)
        .await
        .expect("cert");
    let now = Utc::now();
    let rows = (0..1000).map(|i| worker::ActiveModel {
        username: Set(format!("w{i}")),
        first_name: Set(format!("W{i}")),
        email: Set(String::new()),
        slack_user_id: Set(Some(format!("U{i:05}"))),
        is_admin: Set(false),
        created_at: Set(now),
        ..Default::default()
    });
    worker::Entity::insert_many(rows)
        .exec_without_returning(&t.db)
        .await
        .expect("workers");
    let ids: Vec<i64> = worker::Entity::find()
        .all(&t.db)
        .await
        .expect("q")
        .into_iter()
        .map(|w| w.id)
        .collect();
    let certs = ids.iter().enumerate().map(|(i, id)| {
        staffbot::db::entities::worker_certification::ActiveModel {
            worker_id: Set(*id),
            certification_id: Set(cert.id),
            role: Set(Role::EntryLevel),
            staffbot_enabled: Set(true),
            staffing_priority: Set((i % 10) as i32),
            created_at: Set(now),
            ..Default::default()
        }
    });
    staffbot::db::entities::worker_certification::Entity::insert_many(certs)
        .exec_without_returning(&t.db)
        .await
        .expect("certs");
    for task in crate::common::tasks(&t.db).await {
        staff(&t.db, task.id).await;
    }

    let mut counted = staffbot::db::connect(&t.url).await.expect("connect");
    let statements = Arc::new(AtomicUsize::new(0));
    let seen = statements.clone();
    counted.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let lease = staffbot::lease::try_lease(
        &counted,
        "staffing",
        "test",
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("l")
    .expect("held");
    statements.store(0, Ordering::SeqCst);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let report = staffbot::staffing::batch::run_once(
        &counted,
        &lease,
        staffbot::staffing::batch::BatchSettings {
            batch_size: 5,
            frequency: std::time::Duration::from_secs(120),
            email: false,
            ..Default::default()
        },
        now,
        &mut rng,
    )
    .await
    .expect("round");
    assert_eq!((report.requests, report.offers), (20, 100));
    let n = statements.load(Ordering::SeqCst);
    // The listing, the step's pool, then for the chunk: exclusions, inquiries, outbox rows,
    // request updates. Not one statement per request, nor per worker.
    assert!(
        n <= 8,
        "{n} statements for 20 requests with 1000 candidates"
    );
    // Every request got five different workers, all of the highest priority (9).
    let chosen = staffing_inquiry::Entity::find()
        .all(&t.db)
        .await
        .expect("q");
    let mut per_request: std::collections::HashMap<i64, std::collections::HashSet<i64>> =
        Default::default();
    for i in &chosen {
        per_request
            .entry(i.request_id)
            .or_default()
            .insert(i.worker_id);
    }
    assert_eq!(per_request.len(), 20);
    assert!(per_request.values().all(|w| w.len() == 5));
    let nines: std::collections::HashSet<i64> =
        staffbot::db::entities::worker_certification::Entity::find()
            .filter(staffbot::db::entities::worker_certification::Column::StaffingPriority.eq(9))
            .all(&t.db)
            .await
            .expect("q")
            .into_iter()
            .map(|c| c.worker_id)
            .collect();
    assert!(chosen.iter().all(|i| nines.contains(&i.worker_id)));
    // Ties are broken at random per request: twenty requests do not all ask the same five.
    let distinct: std::collections::HashSet<i64> = chosen.iter().map(|i| i.worker_id).collect();
    assert!(distinct.len() > 5, "every request asked the same workers");

    // The offers are delivered; the first Accept on one request wins in a few statements and
    // queues every message it implies.
    staffing_inquiry::Entity::update_many()
        .col_expr(
            staffing_inquiry::Column::DmChannel,
            sea_orm::sea_query::Expr::value("D0DM"),
        )
        .col_expr(
            staffing_inquiry::Column::DmTs,
            sea_orm::sea_query::Expr::value("1.0"),
        )
        .exec(&t.db)
        .await
        .expect("delivered");
    let first = &chosen[0];
    let clicker = worker::Entity::find_by_id(first.worker_id)
        .one(&t.db)
        .await
        .expect("q")
        .expect("worker")
        .slack_user_id
        .expect("slack id");
    let before = crate::common::outbox_rows(&t.db).await.len();
    statements.store(0, Ordering::SeqCst);
    let tx = staffbot::db::begin_write(&counted).await.expect("begin");
    let outcome = staffbot::staffing::respond::respond(
        &tx,
        first.id,
        clicker.as_str(),
        true,
        &Default::default(),
        now,
    )
    .await
    .expect("accept");
    tx.commit().await.expect("commit");
    assert_eq!(outcome, staffbot::staffing::respond::ClickOutcome::Won);
    let n = statements.load(Ordering::SeqCst);
    assert!(n <= 8, "{n} statements for a winning accept");
    let queued: Vec<String> = crate::common::outbox_rows(&t.db)
        .await
        .into_iter()
        .skip(before)
        .map(|(key, _)| key)
        .collect();
    let finals = queued
        .iter()
        .filter(|k| k.starts_with("offer-final:"))
        .count();
    assert_eq!(
        finals, 5,
        "the winner's offer and the four others: {queued:?}"
    );
    assert!(
        queued.iter().any(|k| k.starts_with("invite:assignment:")),
        "{queued:?}"
    );
    assert!(
        queued.iter().any(|k| k.starts_with("welcome:assignment:")),
        "{queued:?}"
    );
    let _: Option<Value> = None;
}

#[tokio::test]
async fn a_redelivered_click_changes_nothing_and_says_nothing_twice() {
    let mut t = TeamSpec::new()
        .batch(2)
        .worker("a", 3)
        .worker("b", 2)
        .start()
        .await;
    t.staffed(3).await; // two offers and the exhausted-pool note
    let accept = t.accept("a").await;
    // The welcome and the notice, a's offer says won, b's says taken.
    t.h.next_messages(4).await;
    let reject = t.reject("a").await;

    // Slack sends both again (it did not see the acks in time).
    t.h.fake.redeliver(&accept).await;
    t.h.acked_times(&accept, 2).await;
    t.h.fake.redeliver(&reject).await;
    t.h.acked_times(&reject, 2).await;

    assert_eq!(count::<staffing_response::Entity>(t.h.db()).await, 1);
    assert_eq!(count::<task_assignment::Entity>(t.h.db()).await, 1);
    let notices = crate::common::outbox_rows(t.h.db())
        .await
        .into_iter()
        .filter(|(key, _)| key.starts_with("notice:"))
        .count();
    assert_eq!(notices, 1, "the status changed once: one notice");
    // One refusal queued (not one per delivery), and it reaches the worker.
    let refusals: Vec<String> = crate::common::outbox_rows(t.h.db())
        .await
        .into_iter()
        .map(|(key, _)| key)
        .filter(|k| k.starts_with("respond:"))
        .collect();
    assert_eq!(refusals, [format!("respond:{reject}")]);
    assert_eq!(
        t.h.response_texts(1).await,
        ["Cannot reject after accepting the task"]
    );
    t.h.finish().await;
}

#[tokio::test]
async fn a_worker_with_a_far_id_is_in_the_pool() {
    // SQLite reads the candidate pool in ranges of worker ids (25,000 a read); "far" gets an id
    // past 60,000 there (after a placeholder row that is no candidate) and is asked like "a".
    let mut t = TeamSpec::new().batch(5).worker("a", 5).start().await;
    crate::common::placeholder_worker(t.h.db(), 60_001).await;
    let far = worker("far")
        .certified("writer", Role::EntryLevel, 5, true)
        .add(t.h.db())
        .await;
    assert!(far.id > 60_001 || t.h.db().get_database_backend() != sea_orm::DbBackend::Sqlite);
    t.h.fake.add_user(&slack_id("far"), "far");
    t.staff().await;
    let r = t.h.tick(Utc::now() - minutes(30), 1).await;
    assert_eq!((r.offers, r.exhausted), (2, 1));
    let calls = t.h.next_messages(3).await;
    let asked: BTreeSet<String> = offer_recipients(&calls[..2]).into_iter().collect();
    assert_eq!(asked, BTreeSet::from([slack_id("a"), slack_id("far")]));
    assert_eq!(text(&calls[2]), ALL_SENT);
    t.h.finish().await;
}
