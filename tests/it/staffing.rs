//! The staffing engine end to end through the fake Slack: batches in priority order, offers with
//! buttons, Accept / Reject, one winner under concurrent clicks (two replicas), restaff,
//! reviewers, autoassign, abort, and "No worker has accepted".

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use fake_slack::ApiCall;
use futures_util::future::join_all;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use staffbot::db::entities::{
    staffing_inquiry, staffing_request, staffing_response, task, task_assignment, worker,
};
use staffbot::db::{RequestCause, RequestStatus, Role, TaskStatus};
use staffbot::workers::{self, Certify};
use staffbot::workflow::lifecycle;

use crate::common::{add_worker, load_workflow, write_workflow};
use crate::harness::Harness;

pub const CHANNEL: &str = "G0PROJ";

pub struct Team {
    pub h: Harness,
    pub project: i64,
    pub task: i64,
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// One step `write` needing `writer` (entry) — reviewed once, reviewers auto-staffed when
/// `auto_review` — in a project in channel G0PROJ; workers given as (name, priority, enabled).
pub async fn team(
    batch_size: u32,
    workers: &[(&str, i32, bool)],
    auto_review: bool,
    replicas: bool,
) -> Team {
    team_with(
        Harness::new().await,
        "Mayor race",
        batch_size,
        workers,
        auto_review,
        replicas,
    )
    .await
}

/// [`team`] on a harness set up by the caller, for a project described as `description`.
pub async fn team_with(
    mut h: Harness,
    description: &str,
    batch_size: u32,
    workers: &[(&str, i32, bool)],
    auto_review: bool,
    replicas: bool,
) -> Team {
    h.config.staffbot.worker_batch_size = batch_size;
    let reviewer_policy = if auto_review {
        "staffbot_autoassign"
    } else {
        "anyone_certified"
    };
    let dir = write_workflow(
        &json!({"slug": "news", "name": "News", "description": "Newsroom", "certifications": [
            {"slug": "writer", "name": "Writer"}, {"slug": "other", "name": "Other"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "write", "name": "Write", "description": "Write the story", "required_certifications": ["writer"],
             "assignment_policy": {"policy_function": {"reviewer": {"path": reviewer_policy}}},
             "review_policy": {"policy": "sampled_review", "rate": 1, "max_reviews": 1},
             "detailed_description_function": {"path": "staffbot.template", "kwargs": {"template": "About {{ words }} words for project {{ project.id }}", "words": 800}}}]}),
        )],
    );
    let version = load_workflow(h.db(), dir.path()).await;
    let project = lifecycle::create_project(
        h.db(),
        &version,
        description,
        1,
        Some(CHANNEL.into()),
        Utc::now(),
    )
    .await
    .expect("project");
    let cert = workers::find_certification(h.db(), "writer", None)
        .await
        .expect("cert");
    for (name, priority, enabled) in workers {
        let id = format!("U0{}", name.to_uppercase());
        let w = add_worker(h.db(), name, Some(&id)).await;
        workers::certify(
            h.db(),
            &w,
            &cert,
            Certify {
                role: Role::EntryLevel,
                staffing_priority: *priority,
                staffbot_enabled: *enabled,
            },
            Utc::now(),
        )
        .await
        .expect("certify");
        h.fake.add_user(&id, name);
    }
    h.fake.add_channel(CHANNEL, "mayor-race", &[]);
    h.hold_loop_leases().await;
    h.start().await;
    if replicas {
        h.start_replica().await;
    }
    let task = task::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("task")
        .id;
    Team { h, project, task }
}

impl Team {
    pub async fn staff(&mut self) -> staffing_request::Model {
        let r =
            staffbot::staffing::staff_task(self.h.db(), self.task, RequestCause::User, Utc::now())
                .await
                .expect("staff");
        assert_eq!(
            self.h.next_post(CHANNEL).await,
            format!("Got it! I will start staffing task {}!", self.task)
        );
        r
    }

    pub async fn inquiry_of(&self, name: &str) -> staffing_inquiry::Model {
        let w = lifecycle::find_worker(self.h.db(), name)
            .await
            .expect("worker");
        staffing_inquiry::Entity::find()
            .filter(staffing_inquiry::Column::WorkerId.eq(w.id))
            .order_by_desc(staffing_inquiry::Column::Id)
            .one(self.h.db())
            .await
            .expect("q")
            .unwrap_or_else(|| panic!("{name} was asked"))
    }

    /// `name` clicks a button on the offer sent to `owner`; waits for the ack.
    pub async fn click(&self, name: &str, action: &str, owner: &str) {
        self.click_with(name, action, owner, json!({})).await;
    }

    /// [`Team::click`] with `overrides` merged over the payload (e.g. its `token`).
    pub async fn click_with(&self, name: &str, action: &str, owner: &str, overrides: Value) {
        let inquiry = self.inquiry_of(owner).await;
        let id = self
            .h
            .fake
            .send_block_action_with(
                &format!("U0{}", name.to_uppercase()),
                action,
                &inquiry.id.to_string(),
                inquiry.dm_channel.as_deref().unwrap_or("D0"),
                inquiry.dm_ts.as_deref().unwrap_or("1.1"),
                overrides,
            )
            .await;
        let ack = self.h.ack(&id).await;
        assert!(ack.payload.is_none(), "button clicks get a bare ack");
    }
}

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

/// Messages keyed by the channel they went to (their order across channels depends on pacing).
fn by_channel(calls: Vec<ApiCall>) -> std::collections::HashMap<String, ApiCall> {
    let n = calls.len();
    let map: std::collections::HashMap<String, ApiCall> = calls
        .into_iter()
        .map(|c| {
            (
                c.body["channel"].as_str().unwrap_or_default().to_string(),
                c,
            )
        })
        .collect();
    assert_eq!(map.len(), n, "one message per channel expected");
    map
}

pub fn update_text(call: &ApiCall) -> (String, String) {
    assert_eq!(call.method, "chat.update", "{call:?}");
    let outcome = call.body["blocks"][1]["elements"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (
        call.body["channel"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        outcome,
    )
}

#[tokio::test]
async fn batches_follow_priority_frequency_and_exhaust_once() {
    // a,b (5) before c (3) before d (1); eve disabled; no-slack and uncertified never asked.
    let mut t = team(
        2,
        &[
            ("a", 5, true),
            ("b", 5, true),
            ("c", 3, true),
            ("d", 1, true),
            ("eve", 9, false),
        ],
        false,
        false,
    )
    .await;
    let nobody = add_worker(t.h.db(), "ghost", None).await;
    let cert = workers::find_certification(t.h.db(), "writer", None)
        .await
        .expect("cert");
    workers::certify(
        t.h.db(),
        &nobody,
        &cert,
        Certify {
            role: Role::EntryLevel,
            staffing_priority: 10,
            staffbot_enabled: true,
        },
        Utc::now(),
    )
    .await
    .expect("c");
    add_worker(t.h.db(), "uncertified", Some("U0UNC")).await;
    let request = t.staff().await;
    // Rounds are driven with explicit times; in the past, so that what they queue is due now.
    let t0: DateTime<Utc> = Utc::now() - minutes(30);

    let r = t.h.tick(t0, 1).await;
    assert_eq!((r.offers, r.exhausted), (2, 0));
    let first: BTreeSet<String> = offer_recipients(&t.h.next_messages(2).await)
        .into_iter()
        .collect();
    assert_eq!(
        first,
        BTreeSet::from(["U0A".to_string(), "U0B".to_string()])
    );

    // Not again before batch_frequency (2m).
    assert_eq!(t.h.tick(t0 + minutes(1), 1).await.offers, 0);

    // The last two: a full batch that empties the pool says so in this same round.
    let r = t.h.tick(t0 + minutes(2), 1).await;
    assert_eq!((r.offers, r.exhausted), (2, 1));
    let calls = t.h.next_messages(3).await;
    assert_eq!(offer_recipients(&calls[..2]), ["U0C", "U0D"]);
    assert_eq!(calls[2].body["channel"], CHANNEL);
    assert_eq!(
        calls[2].body["text"],
        "All staffing requests for task v1 (Mayor race) - write have been sent!"
    );
    let stored = staffing_request::Entity::find_by_id(request.id)
        .one(t.h.db())
        .await
        .expect("q")
        .expect("r");
    assert_eq!(stored.status, RequestStatus::DoneSending);

    // Nothing more, ever: the message is not repeated.
    assert_eq!(t.h.tick(t0 + minutes(10), 1).await.offers, 0);
    assert_eq!(
        staffing_inquiry::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        4
    );
    t.h.finish().await;
}

#[tokio::test]
async fn offers_show_orchestras_text_and_two_buttons() {
    let mut t = team(5, &[("a", 0, true)], false, false).await;
    t.staff().await;
    t.h.tick(Utc::now(), 1).await;
    let calls = t.h.next_messages(2).await;
    let offer = &calls[0];
    let inquiry = t.inquiry_of("a").await;
    assert_eq!(
        offer.body["text"],
        format!(
            "Hello a!\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: Newsroom\nProject description: Mayor race\nTask: Write the story\nDetails: About 800 words for project {}",
            t.project
        )
    );
    let buttons = &offer.body["blocks"][1]["elements"];
    assert_eq!(buttons[0]["text"]["text"], "Accept");
    assert_eq!(buttons[0]["value"], inquiry.id.to_string());
    assert_eq!(buttons[1]["action_id"], "offer_reject");
    assert_eq!(buttons[1]["text"]["text"], "Reject");
    assert_eq!(
        calls[1].body["text"],
        "All staffing requests for task v1 (Mayor race) - write have been sent!"
    );
    // The DM's channel and ts are stored for later updates.
    let stored = t.inquiry_of("a").await;
    assert_eq!(stored.dm_channel.as_deref(), Some("DU0A"));
    assert!(stored.dm_ts.is_some());
    t.h.finish().await;
}

/// Who gets the one offer of a fresh request, with this seed (no Slack involved).
async fn first_choice(db: &sea_orm::DatabaseConnection, task: i64, seed: u64) -> i64 {
    use rand::SeedableRng;
    let request = staffbot::staffing::staff_task(db, task, RequestCause::User, Utc::now())
        .await
        .expect("staff");
    let lease =
        staffbot::loops::try_lease(db, "staffing", "test", std::time::Duration::from_secs(60))
            .await
            .expect("lease")
            .expect("held");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let settings = staffbot::staffing::batch::BatchSettings {
        batch_size: 1,
        frequency: std::time::Duration::from_secs(120),
    };
    staffbot::staffing::batch::run_once(db, &lease, settings, Utc::now(), &mut rng)
        .await
        .expect("round");
    staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request.id))
        .one(db)
        .await
        .expect("q")
        .expect("one offer")
        .worker_id
}

#[tokio::test]
async fn ties_are_broken_randomly_but_reproducibly() {
    let t = crate::common::TestDb::new().await;
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "writer", "name": "Writer"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [{"slug": "s", "name": "S", "required_certifications": ["writer"]}]}),
        )],
    );
    let version = load_workflow(&t.db, dir.path()).await;
    lifecycle::create_project(&t.db, &version, "P", 0, None, Utc::now())
        .await
        .expect("project");
    let cert = workers::find_certification(&t.db, "writer", None)
        .await
        .expect("cert");
    let mut top = Vec::new();
    for (name, priority) in [("a", 1), ("b", 1), ("c", 1), ("low", 0)] {
        let w = add_worker(&t.db, name, Some(&format!("U0{name}"))).await;
        workers::certify(
            &t.db,
            &w,
            &cert,
            Certify {
                role: Role::EntryLevel,
                staffing_priority: priority,
                staffbot_enabled: true,
            },
            Utc::now(),
        )
        .await
        .expect("certify");
        if priority == 1 {
            top.push(w.id);
        }
    }
    let task = task::Entity::find()
        .one(&t.db)
        .await
        .expect("q")
        .expect("task")
        .id;
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

#[tokio::test]
async fn accept_reject_late_accept_and_foreign_clicks() {
    let mut t = team(
        3,
        &[("a", 3, true), ("b", 2, true), ("c", 1, true)],
        false,
        false,
    )
    .await;
    t.staff().await;
    t.h.tick(Utc::now(), 1).await;
    t.h.next_messages(4).await; // three offers and the exhausted-pool note

    // b declines: its DM says thanks, in place.
    t.click("b", "offer_reject", "b").await;
    assert_eq!(
        update_text(&t.h.next_message().await),
        ("DU0B".into(), "Thanks for responding!".into())
    );

    // c clicks a's offer: told so, nothing changes.
    t.click("c", "offer_accept", "a").await;
    assert_eq!(
        staffing_response::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        1
    );

    // a accepts: assigned, invited and welcomed; a's DM says so; c's open offer says taken.
    t.click("a", "offer_accept", "a").await;
    let calls = by_channel(t.h.next_messages(3).await);
    assert_eq!(
        calls["G0PROJ"].body["text"],
        "<@U0A> has been added to the team. Welcome aboard!"
    );
    let won = update_text(&calls["DU0A"]).1;
    assert!(
        won.starts_with("You got the task!") && won.contains("<#G0PROJ>"),
        "{won}"
    );
    assert_eq!(
        update_text(&calls["DU0C"]).1,
        "This task has been taken by another expert."
    );
    assert_eq!(t.h.fake.channel_members(CHANNEL), vec!["U0A".to_string()]);
    let assignments = task_assignment::Entity::find()
        .all(t.h.db())
        .await
        .expect("q");
    assert_eq!(assignments.len(), 1);
    let a = lifecycle::find_worker(t.h.db(), "a").await.expect("a");
    assert_eq!(
        (assignments[0].worker_id, assignments[0].assignment_counter),
        (a.id, 0)
    );
    assert_eq!(
        task::Entity::find_by_id(t.task)
            .one(t.h.db())
            .await
            .expect("q")
            .expect("t")
            .status,
        TaskStatus::Processing
    );

    // c accepts late: recorded, nothing else changes (its DM already says taken).
    t.click("c", "offer_accept", "c").await;
    // a tries to reject after winning; a clicks again: nothing changes.
    t.click("a", "offer_reject", "a").await;
    t.click("a", "offer_accept", "a").await;
    let winners = staffing_response::Entity::find()
        .filter(staffing_response::Column::IsWinner.eq(true))
        .count(t.h.db())
        .await
        .expect("count");
    assert_eq!(winners, 1);
    assert_eq!(
        task_assignment::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        1
    );
    // The two refusals went back ephemerally through response_url.
    let replies: Vec<String> =
        t.h.fake
            .response_posts()
            .iter()
            .map(|b| b["text"].as_str().unwrap_or_default().to_string())
            .collect();
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    let mut replies = replies;
    while replies.len() < 2 && tokio::time::Instant::now() < deadline {
        t.h.fake
            .wait_for_calls("never.called", 1, std::time::Duration::from_millis(50))
            .await;
        replies =
            t.h.fake
                .response_posts()
                .iter()
                .map(|b| b["text"].as_str().unwrap_or_default().to_string())
                .collect();
    }
    assert_eq!(
        replies,
        [
            "This offer was not sent to you.",
            "Cannot reject after accepting the task"
        ]
    );
    // Ephemeral (Slack's default for response_url) and never replacing the offer.
    assert!(
        t.h.fake
            .response_posts()
            .iter()
            .all(|b| b.get("response_type").is_none_or(|r| r == "ephemeral")
                && b["replace_original"] == false)
    );
    t.h.finish().await;
}

#[tokio::test]
async fn fifty_simultaneous_accepts_on_two_replicas_make_one_winner() {
    let names: Vec<String> = (0..50).map(|i| format!("w{i:02}")).collect();
    let spec: Vec<(&str, i32, bool)> = names.iter().map(|n| (n.as_str(), 0, true)).collect();
    let mut t = team(50, &spec, false, true).await;
    t.staff().await;
    t.h.tick(Utc::now(), 1).await;
    t.h.next_messages(51).await; // 50 offers + the exhausted-pool note
    let mut inquiries = Vec::new();
    for n in &names {
        inquiries.push((n.clone(), t.inquiry_of(n).await));
    }
    let clicks = inquiries.iter().map(|(n, i)| {
        let fake = t.h.fake.clone();
        let user = format!("U0{}", n.to_uppercase());
        let value = i.id.to_string();
        let channel = i.dm_channel.clone().unwrap_or_default();
        let ts = i.dm_ts.clone().unwrap_or_default();
        async move {
            fake.send_block_action(&user, "offer_accept", &value, &channel, &ts)
                .await
        }
    });
    let envelope_ids = join_all(clicks).await;
    for id in &envelope_ids {
        t.h.ack(id).await;
    }
    assert_eq!(
        task_assignment::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        1
    );
    let winners = staffing_response::Entity::find()
        .filter(staffing_response::Column::IsWinner.eq(true))
        .all(t.h.db())
        .await
        .expect("q");
    assert_eq!(winners.len(), 1);
    assert_eq!(
        staffing_response::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        50
    );
    let calls = t.h.next_messages(51).await;
    let mut taken = 0;
    let mut won = 0;
    for c in &calls {
        if c.method == "chat.postMessage" {
            assert!(
                c.body["text"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("has been added to the team. Welcome aboard!"))
            );
            continue;
        }
        let (_, outcome) = update_text(c);
        if outcome == "This task has been taken by another expert." {
            taken += 1;
        } else if outcome.starts_with("You got the task!") {
            won += 1;
        } else {
            panic!("unexpected update {outcome}");
        }
    }
    assert_eq!((won, taken), (1, 49));
    t.h.finish().await;
}

#[tokio::test]
async fn restaff_moves_the_work_and_tells_everyone() {
    let mut t = team(5, &[("bob", 5, true), ("carl", 1, true)], false, false).await;
    let bob = lifecycle::find_worker(t.h.db(), "bob").await.expect("bob");
    lifecycle::assign_task(t.h.db(), t.task, &bob, Utc::now())
        .await
        .expect("assign");
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        "<@U0BOB> has been added to the team. Welcome aboard!"
    );
    let r = staffbot::staffing::restaff_task(t.h.db(), t.task, &bob, "bob", Utc::now())
        .await
        .expect("restaff");
    assert_eq!(
        (r.required_role_counter, r.cause),
        (0, RequestCause::Restaff)
    );
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!("Got it! I will start restaffing task {}!", t.task)
    );
    t.h.tick(Utc::now(), 1).await;
    let calls = t.h.next_messages(2).await;
    assert_eq!(
        offer_recipients(&calls[..1]),
        ["U0CARL"],
        "bob, already on the task, is not asked"
    );
    t.click("carl", "offer_accept", "carl").await;
    let calls = by_channel(t.h.next_messages(3).await);
    assert_eq!(
        calls["G0PROJ"].body["text"],
        "<@U0CARL> has been added to the team. Welcome aboard!"
    );
    assert!(
        calls["U0BOB"].body["text"]
            .as_str()
            .is_some_and(|s| s.contains("no longer assigned")),
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
        vec!["U0CARL".to_string()],
        "bob was removed"
    );
    let a = task_assignment::Entity::find()
        .all(t.h.db())
        .await
        .expect("q");
    let carl = lifecycle::find_worker(t.h.db(), "carl")
        .await
        .expect("carl");
    assert_eq!(
        (a.len(), a[0].worker_id, a[0].assignment_counter),
        (1, carl.id, 0)
    );
    t.h.finish().await;
}

/// Issue 18: a task handed back and forth (`task assign` on a task in progress) invites and
/// welcomes the new worker and removes the previous one every time, also when the same two
/// workers swap again.
#[tokio::test]
async fn a_task_handed_back_and_forth_has_its_slack_effects_every_time() {
    let mut t = team(5, &[("erin", 0, true), ("ed", 0, true)], false, false).await;
    let erin = lifecycle::find_worker(t.h.db(), "erin")
        .await
        .expect("erin");
    let ed = lifecycle::find_worker(t.h.db(), "ed").await.expect("ed");
    lifecycle::assign_task(t.h.db(), t.task, &erin, Utc::now())
        .await
        .expect("assign");
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        "<@U0ERIN> has been added to the team. Welcome aboard!"
    );
    for (to, from) in [(&ed, &erin), (&erin, &ed), (&ed, &erin), (&erin, &ed)] {
        let (to_id, from_id) = (
            to.slack_user_id.clone().expect("slack id"),
            from.slack_user_id.clone().expect("slack id"),
        );
        let (_, reassigned) = lifecycle::assign_or_reassign(t.h.db(), t.task, to, Utc::now())
            .await
            .expect("hand over");
        assert!(reassigned);
        // The welcome (after the invite) and the DM (after the kick), in either order.
        let calls = by_channel(t.h.next_messages(2).await);
        assert_eq!(
            calls[CHANNEL].body["text"],
            format!("<@{to_id}> has been added to the team. Welcome aboard!")
        );
        assert!(
            calls[&from_id].body["text"]
                .as_str()
                .is_some_and(|s| s.contains("no longer assigned")),
            "{:?}",
            calls[&from_id]
        );
        assert_eq!(
            t.h.fake.channel_members(CHANNEL),
            vec![to_id.clone()],
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
    let tap = crate::faults::LogTap::new();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(tap.clone())
        .with_ansi(false)
        .with_env_filter("staffbot=info")
        .finish();
    // The daemon's tasks run on this thread (current-thread runtime), so this sees its logs.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut h = Harness::new().await;
    h.config.slack.verification_token = Some("vtok-right".into());
    let mut t = team_with(h, "Mayor race", 1, &[("a", 0, true)], false, false).await;
    t.staff().await;
    t.h.tick(Utc::now(), 1).await;
    t.h.next_messages(2).await; // the offer and the exhausted-pool note
    let responses = || staffing_response::Entity::find().count(t.h.db());

    t.click_with("a", "offer_accept", "a", json!({"token": "vtok-forged"}))
        .await;
    assert!(
        tap.wait_for("wrong or missing verification token", crate::harness::WAIT)
            .await
    );
    t.click_with("a", "offer_accept", "a", json!({"token": null}))
        .await;
    assert_eq!(responses().await.expect("count"), 0, "nothing changed");
    assert!(!tap.contains("vtok-forged") && !tap.contains("vtok-right"));

    t.click_with("a", "offer_accept", "a", json!({"token": "vtok-right"}))
        .await;
    assert_eq!(responses().await.expect("count"), 1);
    let calls = by_channel(t.h.next_messages(2).await);
    assert!(
        update_text(&calls["DU0A"])
            .1
            .starts_with("You got the task!")
    );
    assert_eq!(
        calls[CHANNEL].body["text"],
        "<@U0A> has been added to the team. Welcome aboard!"
    );
    t.h.finish().await;
}

#[tokio::test]
async fn reviewers_are_staffed_automatically_after_submit() {
    let mut t = team(5, &[("wri", 0, true), ("rev", 0, true)], true, false).await;
    let cert = workers::find_certification(t.h.db(), "writer", None)
        .await
        .expect("cert");
    let rev = lifecycle::find_worker(t.h.db(), "rev").await.expect("rev");
    workers::certify(
        t.h.db(),
        &rev,
        &cert,
        Certify {
            role: Role::Reviewer,
            staffing_priority: 0,
            staffbot_enabled: true,
        },
        Utc::now(),
    )
    .await
    .expect("reviewer");
    let wri = lifecycle::find_worker(t.h.db(), "wri").await.expect("wri");
    lifecycle::assign_task(t.h.db(), t.task, &wri, Utc::now())
        .await
        .expect("assign");
    t.h.next_post(CHANNEL).await;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    lifecycle::submit(
        t.h.db(),
        t.task,
        &wri,
        staffbot::workflow::rules::SubmitKind::RequestedReview,
        Utc::now(),
        &mut rng,
    )
    .await
    .expect("submit");
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!("Got it! I will start staffing task {}!", t.task)
    );
    let request = staffing_request::Entity::find()
        .one(t.h.db())
        .await
        .expect("q")
        .expect("request");
    assert_eq!(
        (request.required_role_counter, request.cause),
        (1, RequestCause::TaskPolicy)
    );
    t.h.tick(Utc::now(), 1).await;
    let calls = t.h.next_messages(2).await;
    assert_eq!(
        offer_recipients(&calls[..1]),
        ["U0REV"],
        "only reviewer-certified workers"
    );
    assert!(
        calls[0].body["text"]
            .as_str()
            .is_some_and(|s| s.contains("Task: Write the story [Review]"))
    );
    t.click("rev", "offer_accept", "rev").await;
    t.h.next_messages(2).await;
    assert_eq!(
        task::Entity::find_by_id(t.task)
            .one(t.h.db())
            .await
            .expect("q")
            .expect("t")
            .status,
        TaskStatus::Reviewing
    );
    let a = task_assignment::Entity::find()
        .filter(task_assignment::Column::WorkerId.eq(rev.id))
        .one(t.h.db())
        .await
        .expect("q")
        .expect("a");
    assert_eq!(a.assignment_counter, 1);
    t.h.finish().await;
}

#[tokio::test]
async fn autoassign_on_creation_and_closing_on_abort() {
    let mut h = Harness::new().await;
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "writer", "name": "Writer"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "s", "name": "S", "description": "Do it", "required_certifications": ["writer"],
             "assignment_policy": {"policy_function": {"entry_level": {"path": "orchestra.bots.assignment_policies.staffbot_autoassign"}}},
             "review_policy": {"policy": "no_review"}}]}),
        )],
    );
    let version = load_workflow(h.db(), dir.path()).await;
    let cert = workers::find_certification(h.db(), "writer", None)
        .await
        .expect("cert");
    let w = add_worker(h.db(), "a", Some("U0A")).await;
    workers::certify(
        h.db(),
        &w,
        &cert,
        Certify {
            role: Role::EntryLevel,
            staffing_priority: 0,
            staffbot_enabled: true,
        },
        Utc::now(),
    )
    .await
    .expect("c");
    h.fake.add_channel(CHANNEL, "p", &[]);
    h.hold_loop_leases().await;
    h.start().await;
    let project =
        lifecycle::create_project(h.db(), &version, "P", 0, Some(CHANNEL.into()), Utc::now())
            .await
            .expect("project");
    let task = task::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("task");
    let request = staffing_request::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("request");
    assert_eq!(request.cause, RequestCause::TaskPolicy);
    assert_eq!(
        h.next_post(CHANNEL).await,
        format!("Got it! I will start staffing task {}!", task.id)
    );
    h.tick(Utc::now(), 1).await;
    h.next_messages(2).await;
    lifecycle::abort_project(h.db(), project, Utc::now())
        .await
        .expect("abort");
    let request = staffing_request::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("request");
    assert_eq!(request.status, RequestStatus::Closed);
    // A click after the abort: the offer says it is gone.
    let inquiry = staffing_inquiry::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("inquiry");
    let id = h
        .fake
        .send_block_action(
            "U0A",
            "offer_accept",
            &inquiry.id.to_string(),
            "DU0A",
            "1.1",
        )
        .await;
    h.ack(&id).await;
    assert_eq!(
        update_text(&h.next_message().await),
        (
            "DU0A".into(),
            "Sorry, this task is no longer available.".into()
        )
    );
    assert_eq!(
        task_assignment::Entity::find()
            .count(h.db())
            .await
            .expect("count"),
        0
    );
    h.finish().await;
}

#[tokio::test]
async fn when_everyone_declines_the_channel_is_told_once() {
    let mut t = team(2, &[("a", 1, true), ("b", 1, true)], false, false).await;
    let request = t.staff().await;
    t.h.tick(Utc::now(), 1).await;
    t.h.next_messages(3).await;
    t.click("a", "offer_reject", "a").await;
    t.h.next_message().await;
    t.click("b", "offer_reject", "b").await;
    let calls = t.h.next_messages(2).await;
    assert_eq!(update_text(&calls[0]).1, "Thanks for responding!");
    assert_eq!(
        calls[1].body["text"],
        "No worker has accepted to work on task v1 (Mayor race) - write"
    );
    let stored = staffing_request::Entity::find_by_id(request.id)
        .one(t.h.db())
        .await
        .expect("q")
        .expect("r");
    assert_eq!(stored.status, RequestStatus::Closed);
    // A second decline click changes nothing and says nothing.
    t.click("b", "offer_reject", "b").await;
    t.h.finish().await;
}

#[tokio::test]
async fn one_tick_with_a_thousand_candidates_costs_a_few_statements() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let t = crate::common::TestDb::new().await;
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "writer", "name": "Writer"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [{"slug": "s", "name": "S", "required_certifications": ["writer"]}]}),
        )],
    );
    let version = load_workflow(&t.db, dir.path()).await;
    for p in 0..20 {
        lifecycle::create_project(
            &t.db,
            &version,
            &format!("P{p}"),
            0,
            Some(CHANNEL.into()),
            Utc::now(),
        )
        .await
        .expect("project");
    }
    let cert = workers::find_certification(&t.db, "writer", None)
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
    for task in task::Entity::find().all(&t.db).await.expect("q") {
        staffbot::staffing::staff_task(&t.db, task.id, RequestCause::User, now)
            .await
            .expect("staff");
    }

    let mut counted = staffbot::db::connect(&t.url).await.expect("connect");
    let statements = Arc::new(AtomicUsize::new(0));
    let seen = statements.clone();
    counted.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let lease = staffbot::loops::try_lease(
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
    let outcome = staffbot::staffing::respond::respond(&tx, first.id, &clicker, true, now)
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

/// Waits until `id` has been acked `n` times.
async fn acked_times(h: &Harness, id: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    while h.fake.acks().iter().filter(|a| a.envelope_id == id).count() < n {
        assert!(tokio::time::Instant::now() < deadline, "ack {n} of {id}");
        h.fake
            .wait_for_calls("never.called", 1, std::time::Duration::from_millis(20))
            .await;
    }
}

#[tokio::test]
async fn a_redelivered_click_changes_nothing_and_says_nothing_twice() {
    let mut t = team(2, &[("a", 3, true), ("b", 2, true)], false, false).await;
    t.staff().await;
    t.h.tick(Utc::now(), 1).await;
    t.h.next_messages(3).await; // two offers and the exhausted-pool note

    let offer = t.inquiry_of("a").await;
    let (channel, ts) = (
        offer.dm_channel.clone().expect("delivered"),
        offer.dm_ts.clone().expect("delivered"),
    );
    let accept =
        t.h.fake
            .send_block_action("U0A", "offer_accept", &offer.id.to_string(), &channel, &ts)
            .await;
    t.h.ack(&accept).await;
    t.h.next_messages(3).await; // welcome, a's offer says won, b's says taken
    let reject =
        t.h.fake
            .send_block_action("U0A", "offer_reject", &offer.id.to_string(), &channel, &ts)
            .await;
    t.h.ack(&reject).await;

    // Slack sends both again (it did not see the acks in time).
    t.h.fake.redeliver(&accept).await;
    acked_times(&t.h, &accept, 2).await;
    t.h.fake.redeliver(&reject).await;
    acked_times(&t.h, &reject, 2).await;

    assert_eq!(
        staffing_response::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        task_assignment::Entity::find()
            .count(t.h.db())
            .await
            .expect("count"),
        1
    );
    // One refusal queued (not one per delivery), and it reaches the worker.
    let refusals: Vec<String> = crate::common::outbox_rows(t.h.db())
        .await
        .into_iter()
        .map(|(key, _)| key)
        .filter(|k| k.starts_with("respond:"))
        .collect();
    assert_eq!(refusals, [format!("respond:{reject}")]);
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    while t.h.fake.response_posts().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal arrives"
        );
        t.h.fake
            .wait_for_calls("never.called", 1, std::time::Duration::from_millis(20))
            .await;
    }
    let replies: Vec<String> =
        t.h.fake
            .response_posts()
            .iter()
            .map(|b| b["text"].as_str().unwrap_or_default().to_string())
            .collect();
    assert_eq!(replies, ["Cannot reject after accepting the task"]);
    t.h.finish().await;
}
