//! The daemon over Socket Mode against the fake Slack: `/staffbot` replies and channel posts,
//! authorisation, reconnects, malformed envelopes, and the outbox sender's delivery rules.

use std::time::Duration;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use slack_sim::Fault;
use staffbot::db::entities::{outbox, staffing_request};
use staffbot::db::{OutboxStatus, RequestCause, RequestStatus};
use staffbot::delivery::Sender;
use staffbot::lifecycle;
use staffbot::messages::Outgoing;
use staffbot::outbox::enqueue;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{
    AWAITING_REVIEW, PICKED_UP, all, assign, count, first_task, flow, notice, step, submit, t0,
    welcome, worker,
};
use crate::harness::{Harness, WAIT};

const CHANNEL: &str = "G0PROJ";
const ADMIN: &str = "U0ADMIN";

/// A project with one reviewed step (`draft`, manual policies) in channel G0PROJ, an admin
/// (U0ADMIN), a non-admin (U0BOB, certified writer) and a reviewer (U0RAE); its task.
async fn setup() -> (Harness, i64) {
    let mut h = Harness::new().await;
    let draft = step("draft", "writer").described("Write it").reviewed(1);
    flow(&["writer"], vec![draft])
        .project(h.db(), "Story", Some(CHANNEL))
        .await;
    worker("erin").slack(ADMIN).admin().add(h.db()).await;
    worker("bob").writes("writer").add(h.db()).await;
    worker("rae").reviews("writer").add(h.db()).await;
    h.fake.add_channel(CHANNEL, "story", &[]);
    for (id, name) in [(ADMIN, "erin"), ("U0BOB", "bob"), ("U0RAE", "rae")] {
        h.fake.add_user(id, name);
    }
    // These tests are about commands: no offers from the daemon's own rounds.
    h.hold_loop_leases().await;
    h.start().await;
    let task = first_task(h.db()).await;
    (h, task)
}

fn got_it(task: i64) -> String {
    format!("Got it! I will start staffing task {task}!")
}

fn incompatible(task: i64) -> String {
    format!("Task {task} got an error: \"Status incompatible with new assignment\"")
}

fn attachment(reply: &Value) -> (&str, &str, &str) {
    let a = &reply["attachments"][0];
    (
        a["color"].as_str().unwrap_or_default(),
        a["title"].as_str().unwrap_or_default(),
        a["text"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn help_and_unknown_commands() {
    let (h, _) = setup().await;
    let help = h.reply(ADMIN, "help").await;
    assert_eq!(help["text"], "Use `/staffbot` to staff or restaff a Task.");
    // What the user sees in Slack (the placeholders are escaped, not read as links).
    let seen = |v: &Value| h.fake.render(v.as_str().unwrap_or_default());
    assert_eq!(
        seen(&help["attachments"][0]["pretext"]),
        "`/staffbot staff <task-id>`"
    );
    assert_eq!(
        seen(&help["attachments"][0]["text"]),
        "Ask qualified experts to work on the given `<task-id>`."
    );
    assert_eq!(
        seen(&help["attachments"][1]["pretext"]),
        "`/staffbot restaff <task-id> <username>`"
    );
    assert_eq!(
        seen(&help["attachments"][1]["text"]),
        "Remove the given `<username>` from the task and find another qualified expert"
    );
    assert_eq!(
        help["attachments"][0]["mrkdwn_in"],
        json!(["text", "pretext"])
    );
    // Orchestra's answer, then what to type instead (issue 27).
    let staff_usage = "Usage: `/staffbot staff <task-id>` (the task's number). `/staffbot help` lists every command.";
    let every = "Commands: `/staffbot staff <task-id>`, `/staffbot restaff <task-id> <username>`, `/staffbot tasks`, `/staffbot availability`, `/staffbot help`.";
    let restaff_usage = "Usage: `/staffbot restaff <task-id> <username>` (a username or an @mention). `/staffbot help` lists every command.";
    for (text, usage) in [
        ("", every),
        ("staffing 2", every),
        ("staff abc", staff_usage),
        ("staff", staff_usage),
        ("restaff 4", restaff_usage),
        ("dance", every),
        ("dance <&>", every),
    ] {
        let r = h.reply(ADMIN, text).await;
        assert_eq!(
            h.fake.render(r["text"].as_str().unwrap_or_default()),
            format!("Sorry! We couldn't process your command: {text}\n{usage}")
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn staff_on_a_waiting_task_opens_one_request_and_tells_the_channel() {
    let (mut h, task) = setup().await;
    // awaiting_processing: a request for counter 0 and the channel is told.
    let r = h.reply(ADMIN, &format!("staff {task}")).await;
    assert_eq!(r["text"], format!("staff {task}"));
    assert_eq!(attachment(&r), ("good", "Success", got_it(task).as_str()));
    assert_eq!(h.next_post(CHANNEL).await, got_it(task));
    // staff again: the open request is replaced (still one open).
    h.reply(ADMIN, &format!("STAFF {task} please")).await;
    assert_eq!(h.next_post(CHANNEL).await, got_it(task));
    let requests = all::<staffing_request::Entity>(h.db()).await;
    assert_eq!(requests.len(), 2);
    let open = requests
        .iter()
        .filter(|r| r.status != RequestStatus::Closed);
    assert_eq!(open.count(), 1);
    assert_eq!(requests[1].cause, RequestCause::User);
    h.finish().await;
}

#[tokio::test]
async fn staff_on_work_in_progress_is_refused_and_on_submitted_work_finds_a_reviewer() {
    let (mut h, task) = setup().await;
    // processing: Orchestra's wrapped error, nothing posted.
    assign(h.db(), task, "bob").await;
    assert_eq!(h.next_post(CHANNEL).await, welcome("U0BOB"));
    let picked_up = notice(PICKED_UP, "bob", "Story", "draft", task);
    assert_eq!(h.next_post(CHANNEL).await, picked_up);
    let r = h.reply(ADMIN, &format!("staff {task}")).await;
    assert_eq!(
        attachment(&r),
        ("danger", "Error", incompatible(task).as_str())
    );
    // pending_review: staffs the reviewer counter.
    submit(h.db(), task, "bob", SubmitKind::RequestedReview).await;
    let awaiting = notice(AWAITING_REVIEW, "bob", "Story", "draft", task);
    assert_eq!(h.next_post(CHANNEL).await, awaiting);
    let r = h.reply(ADMIN, &format!("staff {task}")).await;
    assert_eq!(attachment(&r).0, "good");
    assert_eq!(h.next_post(CHANNEL).await, got_it(task));
    let requests = all::<staffing_request::Entity>(h.db()).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].required_role_counter, 1);
    h.finish().await;
}

#[tokio::test]
async fn staff_on_aborted_and_unknown_tasks_is_refused() {
    let (h, task) = setup().await;
    let project = crate::common::task(h.db(), task).await.project_id;
    lifecycle::abort_project(h.db(), project, &Default::default(), t0())
        .await
        .expect("abort");
    let r = h.reply(ADMIN, &format!("staff {task}")).await;
    assert_eq!(attachment(&r).2, incompatible(task));
    let r = h.reply(ADMIN, "staff 999").await;
    assert_eq!(r["text"], "staff 999");
    assert_eq!(
        attachment(&r),
        ("danger", "Error", "Task 999 does not exist")
    );
    let r = h.reply(ADMIN, "staff 99999999999999999999").await;
    assert_eq!(attachment(&r).2, "Task 99999999999999999999 does not exist");
    h.finish().await;
}

#[tokio::test]
async fn restaff_replies_and_errors() {
    let (mut h, task) = setup().await;
    let r = h.reply(ADMIN, &format!("restaff {task} zed")).await;
    assert_eq!(r["text"], format!("restaff {task} zed"));
    let unknown = ("danger", "Error", "Worker with username zed does not exist");
    assert_eq!(attachment(&r), unknown);
    let r = h.reply(ADMIN, &format!("restaff {task} bob")).await;
    assert_eq!(
        attachment(&r).2,
        format!("TaskAssignment associated with user bob and task {task} does not exist.")
    );
    assign(h.db(), task, "bob").await;
    assert_eq!(h.next_post(CHANNEL).await, welcome("U0BOB"));
    let picked_up = notice(PICKED_UP, "bob", "Story", "draft", task);
    assert_eq!(h.next_post(CHANNEL).await, picked_up);
    // A mention works as well as a username.
    let r = h
        .reply(ADMIN, &format!("restaff {task} <@U0BOB|bob>"))
        .await;
    assert_eq!(r["text"], format!("restaff {task} bob"));
    let got_it = format!("Got it! I will start restaffing task {task}!");
    assert_eq!(attachment(&r), ("good", "Success", got_it.as_str()));
    assert_eq!(h.next_post(CHANNEL).await, got_it);
    let r = h.reply(ADMIN, "restaff 999 bob").await;
    assert_eq!(attachment(&r).2, "Task 999 does not exist");
    h.finish().await;
}

#[tokio::test]
async fn only_admins_and_whitelisted_callers() {
    let mut h = Harness::new().await;
    h.config.slack.verification_token = Some(secrecy::SecretString::from("vtok"));
    h.config.staffbot.allowed.channel_names = Some(vec!["privategroup".into()]);
    h.config.staffbot.allowed.team_domains = Some(vec!["maria".into()]);
    worker("erin").slack(ADMIN).admin().add(h.db()).await;
    worker("bob").add(h.db()).await;
    h.start().await;

    let base = json!({"token": "vtok", "channel_name": "privategroup", "team_domain": "maria",
                      "text": "help", "user_id": ADMIN, "user_name": "erin"});
    let hr = &h;
    let text = |changes: Value| {
        let mut payload = base.clone();
        for (k, v) in changes.as_object().into_iter().flatten() {
            payload[k] = v.clone();
        }
        async move {
            hr.slash_with(payload).await["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    const NO: &str = "You are not authorized to staff projects!";
    assert_eq!(
        text(json!({})).await,
        "Use `/staffbot` to staff or restaff a Task."
    );
    // Every identity or token failure reads the same.
    assert_eq!(text(json!({"token": "wrong"})).await, NO);
    assert_eq!(text(json!({"token": null})).await, NO);
    assert_eq!(
        text(json!({"user_id": "U0BOB", "text": "staff 1"})).await,
        NO
    );
    assert_eq!(
        text(json!({"user_id": "U0BOB", "text": "restaff 1 erin"})).await,
        NO
    );
    assert_eq!(text(json!({"user_id": "U0NOBODY"})).await, NO);
    // A worker who is not an admin learns the commands they may use.
    assert_eq!(
        text(json!({"user_id": "U0BOB"})).await,
        staffbot::slack::slash::WORKER_HELP_TEXT
    );
    assert_eq!(text(json!({"user_id": null})).await, NO);
    // Whitelists use Orchestra's texts.
    assert_eq!(
        text(json!({"channel_name": "general"})).await,
        "Field channel_name did not validate: general"
    );
    assert_eq!(
        text(json!({"team_domain": null})).await,
        "team_domain is missing"
    );
    h.finish().await;
}

#[tokio::test]
async fn reconnects_after_refresh_and_dropped_sockets() {
    let (h, _) = setup().await;
    for round in 0..2 {
        let opens = h.fake.connection_opens();
        let hellos = h.fake.hellos_sent();
        if round == 0 {
            h.fake.disconnect("refresh_requested").await;
        } else {
            h.fake.drop_sockets().await;
        }
        assert!(
            h.fake.wait_for_hellos(hellos + 1, WAIT).await,
            "reconnected (round {round})"
        );
        assert!(
            h.fake.connection_opens() > opens,
            "a fresh apps.connections.open"
        );
        let r = h.reply(ADMIN, "help").await;
        assert_eq!(r["text"], "Use `/staffbot` to staff or restaff a Task.");
    }
    h.finish().await;
}

#[tokio::test]
async fn malformed_and_unknown_envelopes_are_acked_and_harmless() {
    let (mut h, task) = setup().await;
    // Garbage without an envelope id: nothing to ack, nothing breaks.
    h.fake.send_raw("{this is not json").await;
    // A slash command whose payload is not an object: acked with a short reply.
    let id = h.fake.send_envelope(json!({"envelope_id": "e-bad-1", "type": "slash_commands", "accepts_response_payload": true, "payload": "garbage"})).await;
    let ack = h.ack(&id).await;
    assert_eq!(
        ack.payload.expect("reply")["text"],
        "Sorry! We couldn't read that command."
    );
    // Wrong field types.
    let id = h.fake.send_envelope(json!({"envelope_id": "e-bad-2", "type": "slash_commands", "accepts_response_payload": true, "payload": {"user_id": 42, "text": ["staff"]}})).await;
    assert!(h.ack(&id).await.payload.is_some());
    // An unknown envelope type and an unknown interaction: bare acks.
    let id = h.fake.send_envelope(json!({"envelope_id": "e-odd-1", "type": "carrier_pigeon", "accepts_response_payload": false, "payload": {}})).await;
    assert!(h.ack(&id).await.payload.is_none());
    let id = h
        .fake
        .send_block_action("U0BOB", "mystery_button", "1", "D0BOB", "1.1")
        .await;
    assert!(h.ack(&id).await.payload.is_none());
    // The daemon carries on.
    let r = h.reply(ADMIN, &format!("staff {task}")).await;
    assert_eq!(attachment(&r).0, "good");
    assert_eq!(h.next_post(CHANNEL).await, got_it(task));
    h.finish().await;
}

#[tokio::test]
async fn a_redelivered_envelope_is_not_acted_on_twice() {
    let (mut h, task) = setup().await;
    let envelope = json!({
        "envelope_id": "same-envelope", "type": "slash_commands", "accepts_response_payload": true,
        "payload": {"team_id": "T0TEAM", "channel_id": "G0PROJ", "user_id": ADMIN, "user_name": "erin",
                    "command": "/staffbot", "text": format!("staff {task}"), "response_url": "http://127.0.0.1:9/r",
                    "trigger_id": "1.2.3"}
    });
    h.fake.send_envelope(envelope.clone()).await;
    let first = h.ack("same-envelope").await;
    h.fake.send_envelope(envelope).await;
    h.acked_times("same-envelope", 2).await;
    let acks = h.fake.acks().into_iter();
    let acks: Vec<_> = acks.filter(|a| a.envelope_id == "same-envelope").collect();
    assert_eq!(acks[1].payload, first.payload, "the same reply");
    assert_eq!(count::<staffing_request::Entity>(h.db()).await, 1);
    assert_eq!(h.next_post(CHANNEL).await, got_it(task));
    h.finish().await;
}

/// A sender against the fake, without a daemon (explicit rounds).
fn sender(h: &Harness) -> Sender {
    h.sender("test-sender", Duration::from_secs(30))
}

/// Sender rounds until nothing is due within a few seconds; how many were sent.
async fn rounds_until_idle(s: &Sender) -> usize {
    s.drain(Duration::from_secs(5)).await.expect("rounds").sent
}

async fn row(h: &Harness, key: &str) -> outbox::Model {
    use sea_orm::{ColumnTrait, QueryFilter};
    outbox::Entity::find()
        .filter(outbox::Column::DedupeKey.eq(key))
        .one(h.db())
        .await
        .expect("q")
        .expect("row")
}

/// Queues a message to `channel` under dedupe key `key`, due now.
async fn queue_post(h: &Harness, key: &str, channel: &str, text: &str) {
    let message = crate::common::note(channel, text);
    let queued = enqueue(h.db(), key, message, chrono::Utc::now()).await;
    queued.expect("enqueue");
}

/// Queues an invitation of U0BOB to the project channel under dedupe key `key`, due now.
async fn queue_invite(h: &Harness, key: &str) {
    let invite = Outgoing::Invite {
        channel: CHANNEL.into(),
        user: "U0BOB".into(),
    };
    let queued = enqueue(h.db(), key, invite, chrono::Utc::now()).await;
    queued.expect("enqueue");
}

/// A harness with the project channel and bob (a member when `bob_in_channel`), and a sender.
async fn delivery(bob_in_channel: bool) -> (Harness, Sender) {
    let h = Harness::new().await;
    let members: &[&str] = if bob_in_channel { &["U0BOB"] } else { &[] };
    h.fake.add_channel(CHANNEL, "story", members);
    h.fake.add_user("U0BOB", "bob");
    let s = sender(&h);
    (h, s)
}

#[tokio::test]
async fn a_rate_limited_method_waits_retry_after_and_holds_up_no_other() {
    let (mut h, s) = delivery(false).await;
    let now = chrono::Utc::now();
    // 429 with Retry-After: waits that long for this method, then delivers once.
    let limited = Fault::RateLimited {
        retry_after_secs: 1,
    };
    h.fake.fail_next("chat.postMessage", limited, 1);
    queue_post(&h, "m1", CHANNEL, "first").await;
    let report = s.run_once().await.expect("round");
    assert_eq!((report.sent, report.deferred), (0, 1));
    let r = row(&h, "m1").await;
    assert_eq!(r.status, OutboxStatus::Pending);
    let waits = r.next_attempt_at >= now + chrono::Duration::milliseconds(900);
    assert!(waits, "waits Retry-After");
    // Other methods are not held up.
    queue_invite(&h, "i1").await;
    assert_eq!(s.run_once().await.expect("round").sent, 1);
    assert_eq!(h.fake.channel_members(CHANNEL), ["U0BOB"]);
    // After the wait, delivered, exactly once.
    assert_eq!(rounds_until_idle(&s).await, 1);
    assert_eq!(s.run_once().await.expect("round").sent, 0);
    let posts = h.fake.calls_to("chat.postMessage");
    assert_eq!(
        posts.iter().map(|p| p.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert_eq!(h.next_post(CHANNEL).await, "first");
    let r = row(&h, "m1").await;
    assert_eq!(r.status, OutboxStatus::Sent);
    assert!(
        r.result.as_ref().and_then(|v| v.get("ts")).is_some(),
        "ts stored"
    );
    h.finish().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let (mut h, s) = delivery(false).await;
    h.fake.fail_next("chat.postMessage", Fault::ServerError, 1);
    queue_post(&h, "m2", CHANNEL, "second").await;
    assert_eq!(s.run_once().await.expect("round").retried, 1);
    let r = row(&h, "m2").await;
    let error = Some("HTTP 500 Internal Server Error");
    assert_eq!(
        (r.status, r.attempts, r.last_error.as_deref()),
        (OutboxStatus::Pending, 1, error)
    );
    let mut am: outbox::ActiveModel = r.into();
    am.next_attempt_at = Set(chrono::Utc::now());
    am.update(h.db()).await.expect("due now");
    assert_eq!(rounds_until_idle(&s).await, 1);
    assert_eq!(h.next_post(CHANNEL).await, "second");
    h.finish().await;
}

#[tokio::test]
async fn permanent_errors_are_kept_and_already_in_channel_is_done() {
    let (h, s) = delivery(true).await;
    queue_post(&h, "m3", "C0GONE", "lost").await;
    queue_invite(&h, "i2").await;
    let report = s.run_once().await.expect("round");
    assert_eq!((report.sent, report.failed), (1, 1));
    let r = row(&h, "m3").await;
    let failed = (OutboxStatus::Failed, Some("channel_not_found"));
    assert_eq!((r.status, r.last_error.as_deref()), failed);
    assert_eq!(row(&h, "i2").await.status, OutboxStatus::Sent);
    h.finish().await;
}

#[tokio::test]
async fn a_crashed_senders_rows_are_delivered_once_by_the_next() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "story", &[]);
    let now = chrono::Utc::now();
    for (key, expires) in [
        ("dead", now - chrono::Duration::seconds(1)),
        ("alive", now + chrono::Duration::seconds(60)),
    ] {
        enqueue(h.db(), key, crate::common::note(CHANNEL, key), now)
            .await
            .expect("enqueue");
        let mut am: outbox::ActiveModel = row(&h, key).await.into();
        am.claimed_by = Set(Some("crashed-sender#1".into()));
        am.claim_expires_at = Set(Some(expires));
        am.update(h.db()).await.expect("claimed");
    }
    let s = sender(&h);
    assert_eq!(
        s.run_once().await.expect("round").sent,
        1,
        "only the expired claim is taken over"
    );
    assert_eq!(h.next_post(CHANNEL).await, "dead");
    assert_eq!(s.run_once().await.expect("round").sent, 0, "delivered once");
    assert_eq!(row(&h, "alive").await.status, OutboxStatus::Pending);
    // A second sender racing the first never sends a row twice.
    enqueue(h.db(), "race", crate::common::note(CHANNEL, "race"), now)
        .await
        .expect("enqueue");
    let s2 = sender(&h);
    let (a, b) = tokio::join!(s.run_once(), s2.run_once());
    assert_eq!(a.expect("a").sent + b.expect("b").sent, 1);
    assert_eq!(h.next_post(CHANNEL).await, "race");
    h.finish().await;
}

/// A rolling upgrade (issue 30): a row a newer release wrote (a format this one does not know)
/// is left for that release's sender, untouched; a row this release cannot read goes back,
/// pending, for a sender that can. Neither is failed for good.
#[tokio::test]
async fn rows_this_release_cannot_read_are_left_for_another_sender() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "story", &[]);
    let now = chrono::Utc::now();
    for key in ["readable", "newer", "damaged"] {
        enqueue(h.db(), key, crate::common::note(CHANNEL, key), now)
            .await
            .expect("enqueue");
    }
    assert_eq!(
        row(&h, "readable").await.format,
        staffbot::db::outbox::FORMAT
    );
    let mut newer: outbox::ActiveModel = row(&h, "newer").await.into();
    newer.format = Set(staffbot::db::outbox::FORMAT + 1);
    newer.payload = Set(json!({"delivery": "hologram", "channel": CHANNEL}));
    newer.update(h.db()).await.expect("a newer release's row");
    let mut damaged: outbox::ActiveModel = row(&h, "damaged").await.into();
    damaged.payload = Set(json!({"delivery": "hologram", "channel": CHANNEL}));
    damaged
        .update(h.db())
        .await
        .expect("a row this release cannot read");
    let s = sender(&h);
    let report = s.run_once().await.expect("round");
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(h.next_post(CHANNEL).await, "readable");
    let newer = row(&h, "newer").await;
    assert_eq!(
        (
            newer.status,
            newer.attempts,
            newer.claimed_by,
            newer.last_error
        ),
        (OutboxStatus::Pending, 0, None, None),
        "never claimed"
    );
    let damaged = row(&h, "damaged").await;
    assert_eq!(
        (damaged.status, damaged.attempts),
        (OutboxStatus::Pending, 0)
    );
    assert_eq!(damaged.claimed_by, None);
    assert!(damaged.next_attempt_at > now + chrono::Duration::minutes(5));
    assert!(
        damaged
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("hologram")),
        "{:?}",
        damaged.last_error
    );
    // Once due again it is still not failed: given back again.
    assert_eq!(s.run_once().await.expect("round").failed, 0);
    h.finish().await;
}
