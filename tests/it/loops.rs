//! The periodic loops through the fake Slack: SanityBot (Orchestra's scenario), reminder
//! throttling, unstaffed-task warnings.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use serde_json::json;
use slack_sim::ApiCall;
use staffbot::db::entities::{sanity_check, staffing_inquiry, workflow_version};
use staffbot::db::statement;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{
    all, assign, count, find_worker, first_task, flow, staff_at, step, submit, worker,
};
use crate::harness::Harness;

const CHANNEL: &str = "G0PROJ";
const STAFFING: &str = "C0STAFFING";

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// A workflow whose `always` check returns a, b, c; four checks are configured: a repeats
/// daily, b never, c every three days, d (never returned) hourly. Its project's draft has a
/// writer (zed, submitted) and a reviewer (amy) on it; both are tagged, in a fixed order.
async fn sanity_project(h: &Harness) -> workflow_version::Model {
    let check = |m: &str, repeat: Option<i64>| {
        let mut c = json!({"handlers": [{"type": "slack_project_channel", "message": m, "steps": ["draft"]}]});
        if let Some(seconds) = repeat {
            c["repetition_seconds"] = json!(seconds);
        }
        c
    };
    let checks = json!({
        "sanity_check_function": {"path": "staffbot.sanity.always", "kwargs": {"checks": ["a", "b", "c"]}},
        "check_configurations": {"a": check("check a", Some(86400)), "b": check("check b", None),
                                 "c": check("check c", Some(259200)), "d": check("check d", Some(3600))}
    });
    let wf =
        flow(&["writer"], vec![step("draft", "writer").reviewed(1)]).with("sanity_checks", checks);
    let version = wf.load(h.db()).await;
    crate::common::create_project(h.db(), &version, "P", Some(CHANNEL)).await;
    let task = first_task(h.db()).await;
    worker("zed").writes("writer").add(h.db()).await;
    worker("amy").reviews("writer").add(h.db()).await;
    assign(h.db(), task, "zed").await;
    submit(h.db(), task, "zed", SubmitKind::RequestedReview).await;
    assign(h.db(), task, "amy").await;
    version
}

/// A second project on `version`, pointed at a copy of it whose stored sanity configuration
/// is broken.
async fn broken_project(h: &Harness, version: &workflow_version::Model) {
    let broken = crate::common::create_project(h.db(), version, "Broken", Some(CHANNEL)).await;
    let mut am: workflow_version::ActiveModel = version.clone().into();
    am.id = sea_orm::ActiveValue::NotSet;
    am.slug = Set("v-broken".into());
    am.sanity_checks = Set(Some(json!({"function": "no_such_function"})));
    let bad = am.insert(h.db()).await.expect("bad version");
    h.db()
        .execute_raw(statement(
            h.db().get_database_backend(),
            "UPDATE projects SET workflow_version_id = $1 WHERE id = $2",
            vec![bad.id.into(), broken.into()],
        ))
        .await
        .expect("point at it");
}

/// Makes every recorded sanity check `by` older.
async fn age_checks(h: &Harness, by: chrono::Duration) {
    h.db()
        .execute_raw(statement(
            h.db().get_database_backend(),
            "UPDATE sanity_checks SET created_at = $1",
            vec![(Utc::now() - by).into()],
        ))
        .await
        .expect("age the checks");
}

#[tokio::test]
async fn sanitybot_repeats_checks_by_orchestras_rule() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    let version = sanity_project(&h).await;
    // A second project whose stored configuration is broken: it fails alone.
    broken_project(&h, &version).await;
    h.hold_loop_leases().await;
    h.start().await;
    // The two assignments' welcomes (invites are not messages) and the draft's status notices.
    let task = first_task(h.db()).await;
    let notice = |line: &str, name: &str| crate::common::notice(line, name, "P", "draft", task);
    let mut before = vec![
        crate::common::welcome("U0ZED"),
        notice(crate::common::PICKED_UP, "zed"),
        notice(crate::common::AWAITING_REVIEW, "zed"),
        crate::common::welcome("U0AMY"),
        notice(crate::common::UNDER_REVIEW, "amy"),
    ];
    before.sort();
    assert_eq!(h.texts(5).await, before);
    let l = h.lease("sanity").await;
    let db = h.db().clone();
    let run = || async { staffbot::sanity::run_once(&db, &l, Utc::now()).await };

    let r = run().await.expect("run");
    assert_eq!((r.checks, r.messages, r.failed_projects), (3, 3, 1));
    assert_eq!(
        h.texts(3).await,
        [
            "<@U0AMY> <@U0ZED>: check a",
            "<@U0AMY> <@U0ZED>: check b",
            "<@U0AMY> <@U0ZED>: check c"
        ]
    );
    assert_eq!(count::<sanity_check::Entity>(h.db()).await, 3);

    // At once again: nothing.
    let r = run().await.expect("run");
    assert_eq!((r.checks, r.messages), (0, 0));

    // Two days later: only the daily check repeats.
    age_checks(&h, chrono::Duration::days(2)).await;
    let r = run().await.expect("run");
    assert_eq!((r.checks, r.messages), (1, 1));
    assert_eq!(h.texts(1).await, ["<@U0AMY> <@U0ZED>: check a"]);
    assert_eq!(count::<sanity_check::Entity>(h.db()).await, 4);
    let r = run().await.expect("run");
    assert_eq!((r.checks, r.messages), (0, 0));
    h.finish().await;
}

/// A project in G0PROJ with steps `one` (certification `a`, workers w1, w2) and `two`
/// (certification `b`, nobody), both staffed at `base`.
async fn staffed(h: &Harness, base: DateTime<Utc>) -> (i64, i64) {
    let one = step("one", "a").described("First thing");
    let two = step("two", "b").described("Second thing");
    flow(&["a", "b"], vec![one, two])
        .project_at(h.db(), "Story", Some(CHANNEL), base)
        .await;
    for name in ["w1", "w2"] {
        worker(name).writes("a").add(h.db()).await;
    }
    let tasks = crate::common::tasks(h.db()).await;
    for t in &tasks {
        staff_at(h.db(), t.id, base).await;
    }
    (tasks[0].id, tasks[1].id)
}

/// [`staffed`] in a running daemon, after its first batching round at `base`: two offers for
/// `one` and the ends of both pools (two's is empty, one's too: 2 < 5).
async fn first_round(h: &mut Harness, base: DateTime<Utc>) -> (i64, i64) {
    let tasks = staffed(h, base).await;
    h.hold_loop_leases().await;
    h.start().await;
    h.next_messages(2).await; // "Got it!" twice
    h.tick(base, 1).await;
    let calls = h.next_messages(4).await;
    assert!(calls.iter().all(offer_or_note));
    tasks
}

/// The offer of `name` (first asked).
async fn offer_of(h: &Harness, name: &str) -> staffing_inquiry::Model {
    let w = find_worker(h.db(), name).await;
    let offers = all::<staffing_inquiry::Entity>(h.db()).await;
    offers
        .into_iter()
        .find(|i| i.worker_id == w.id)
        .expect("asked")
}

fn offer_or_note(c: &ApiCall) -> bool {
    c.method == "chat.postMessage"
}

#[tokio::test]
async fn reminders_are_throttled_per_worker() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    h.config.staffbot.reminder_interval = std::time::Duration::from_secs(86400);
    let base = Utc::now() - chrono::Duration::days(5);
    let (one, _) = first_round(&mut h, base).await;
    let (lease, db, day) = (
        h.lease("reminders").await,
        h.db().clone(),
        chrono::Duration::days(1),
    );
    let (l, db, interval) = (&lease, &db, std::time::Duration::from_secs(86400));
    let remind = |at| async move {
        let sent = staffbot::staffing::reminders::run_once(db, l, interval, false, at).await;
        sent.expect("reminders")
    };
    // Not before the oldest open offer is a day old.
    assert_eq!(remind(base + minutes(60)).await, 0);
    assert_eq!(remind(base + day).await, 2);
    let calls = h.next_messages(2).await;
    for c in &calls {
        let text = c.body["text"].as_str().unwrap_or_default();
        // Ending with the link to staffbot's Home tab (the fake's team and app).
        let home = "<slack://app?team=T0TEAM&id=A0STAFFBOT&tab=home|Open your staffbot Home>";
        assert_eq!(
            text,
            format!(
                "Tasks are still available for you to work on, if you'd like!\n• First thing (Story), task {one}\n{home}"
            )
        );
        assert_eq!(
            c.body["blocks"][2]["elements"][0]["action_id"],
            "offer_accept"
        );
        assert_eq!(c.body["blocks"][3]["text"]["text"], home);
    }
    // At most once per interval.
    assert_eq!(remind(base + day + minutes(1)).await, 0);
    assert_eq!(remind(base + day + day + minutes(1)).await, 2);
    h.next_messages(2).await;
    // An answered offer is no longer listed: w1 declines, only w2 is reminded.
    let inquiry = offer_of(&h, "w1").await;
    let tx = staffbot::db::begin_write(h.db()).await.expect("tx");
    staffbot::staffing::respond::respond(
        &tx,
        inquiry.id,
        "U0W1",
        false,
        &Default::default(),
        Utc::now(),
    )
    .await
    .expect("decline");
    sea_orm::TransactionSession::commit(tx)
        .await
        .expect("commit");
    h.next_message().await; // "Thanks for responding!"
    assert_eq!(remind(base + day * 4).await, 1);
    assert_eq!(h.next_message().await.body["channel"], "U0W2");
    h.finish().await;
}

/// When Slack does not say which app staffbot is (`bots.info` fails), reminders still go, without
/// the link to the Home tab.
#[tokio::test]
async fn reminders_go_without_the_home_link_when_the_app_is_unknown() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    let refused = slack_sim::Fault::ApiError("missing_scope".into());
    h.fake.fail_until_cleared("bots.info", refused);
    let base = Utc::now() - chrono::Duration::days(5);
    let (one, _) = first_round(&mut h, base).await;
    assert!(!h.fake.calls_to("bots.info").is_empty(), "the daemon asked");
    let lease = h.lease("reminders").await;
    let day = std::time::Duration::from_secs(86400);
    let at = base + chrono::Duration::days(1);
    let sent = staffbot::staffing::reminders::run_once(h.db(), &lease, day, false, at).await;
    assert_eq!(sent.expect("reminders"), 2);
    for c in h.next_messages(2).await {
        assert_eq!(
            c.body["text"],
            format!(
                "Tasks are still available for you to work on, if you'd like!\n• First thing (Story), task {one}"
            )
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn unstaffed_tasks_are_reported_by_step_and_not_repeated() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    h.fake.add_channel(STAFFING, "staffing", &[]);
    h.config.staffbot.staffing_group_id = Some(STAFFING.into());
    let base = Utc::now() - chrono::Duration::days(1);
    let (one, two) = first_round(&mut h, base).await;
    let (lease, db) = (h.lease("warnings").await, h.db().clone());
    let (l, db, min) = (&lease, &db, std::time::Duration::from_secs(1800));
    let warn = |at| async move {
        let sent = staffbot::staffing::warnings::run_once(db, l, Some(STAFFING), min, at).await;
        sent.expect("warnings")
    };
    assert_eq!(
        warn(base + minutes(10)).await,
        0,
        "younger than staffing_min_time"
    );
    assert_eq!(warn(base + minutes(31)).await, 2);
    let calls = h.next_messages(2).await;
    let created = base.format("%Y-%m-%d %H:%M:%S%.6f%:z");
    assert_eq!(calls[0].body["channel"], STAFFING);
    assert_eq!(
        calls[0].body["text"],
        format!("No winner request for task {one} - v1 (Story) - one! Created at {created}.")
    );
    assert_eq!(
        calls[1].body["text"],
        format!(
            "No winner request for task {two} - v1 (Story) - two! Created at {created}. Nobody could be asked: no certified worker with Slack and staffbot enabled."
        )
    );
    // Not again within staffing_min_time; again after it.
    assert_eq!(warn(base + minutes(50)).await, 0);
    assert_eq!(warn(base + minutes(62)).await, 2);
    h.next_messages(2).await;
    // A task with a winner is not reported.
    h.click("w1", "offer_accept", &offer_of(&h, "w1").await)
        .await;
    // The welcome and the status notice, "you got it", the other offer "taken".
    h.next_messages(4).await;
    assert_eq!(warn(base + minutes(200)).await, 1);
    assert!(
        h.next_message().await.body["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("task {two} ")))
    );
    h.finish().await;
}
