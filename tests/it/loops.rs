//! The periodic loops through the fake Slack: SanityBot (Orchestra's scenario), reminder
//! throttling, unstaffed-task warnings.

use chrono::{DateTime, Utc};
use fake_slack::ApiCall;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, PaginatorTrait};
use serde_json::json;
use staffbot::db::entities::{sanity_check, task, workflow_version};
use staffbot::db::{RequestCause, Role, statement};
use staffbot::loops::{LeaseProof, try_lease};
use staffbot::workers::{self, Certify};
use staffbot::workflow::lifecycle;

use crate::common::{add_worker, load_workflow, write_workflow};
use crate::harness::Harness;

const CHANNEL: &str = "G0PROJ";
const STAFFING: &str = "C0STAFFING";

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

async fn lease(h: &Harness, name: &str) -> LeaseProof {
    try_lease(h.db(), name, "test", std::time::Duration::from_secs(3600))
        .await
        .expect("lease")
        .expect("held by the test")
}

/// A workflow whose `always` check returns a, b, c; four checks are configured: a repeats
/// daily, b never, c every three days, d (never returned) hourly.
async fn sanity_project(h: &Harness) -> i64 {
    let handler = |m: &str| json!({"handlers": [{"type": "slack_project_channel", "message": m, "steps": ["draft"]}]});
    let mut a = handler("check a");
    a["repetition_seconds"] = json!(86400);
    let b = handler("check b");
    let mut c = handler("check c");
    c["repetition_seconds"] = json!(259200);
    let mut d = handler("check d");
    d["repetition_seconds"] = json!(3600);
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "writer", "name": "Writer"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "draft", "name": "Draft", "required_certifications": ["writer"], "review_policy": {"policy": "sampled_review", "rate": 1, "max_reviews": 1}}],
            "sanity_checks": {
                "sanity_check_function": {"path": "staffbot.sanity.always", "kwargs": {"checks": ["a", "b", "c"]}},
                "check_configurations": {"a": a, "b": b, "c": c, "d": d}
            }}),
        )],
    );
    let version = load_workflow(h.db(), dir.path()).await;
    let project =
        lifecycle::create_project(h.db(), &version, "P", 0, Some(CHANNEL.into()), Utc::now())
            .await
            .expect("project");
    // Two workers on the draft (writer and reviewer): both are tagged, in a fixed order.
    let cert = workers::find_certification(h.db(), "writer", None)
        .await
        .expect("cert");
    let task = task::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("task")
        .id;
    for (name, slack, role) in [
        ("zed", "U0ZED", Role::EntryLevel),
        ("amy", "U0AMY", Role::Reviewer),
    ] {
        let w = add_worker(h.db(), name, Some(slack)).await;
        for r in [Role::EntryLevel, role] {
            workers::certify(
                h.db(),
                &w,
                &cert,
                Certify {
                    role: r,
                    staffing_priority: 0,
                    staffbot_enabled: true,
                },
                Utc::now(),
            )
            .await
            .expect("certify");
        }
        if role == Role::EntryLevel {
            lifecycle::assign_task(h.db(), task, &w, Utc::now())
                .await
                .expect("assign");
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
            lifecycle::submit(
                h.db(),
                task,
                &w,
                staffbot::workflow::rules::SubmitKind::RequestedReview,
                Utc::now(),
                &mut rng,
            )
            .await
            .expect("submit");
        } else {
            lifecycle::assign_task(h.db(), task, &w, Utc::now())
                .await
                .expect("review");
        }
    }
    project
}

async fn texts(h: &mut Harness, n: usize) -> Vec<String> {
    let mut out: Vec<String> = h
        .next_messages(n)
        .await
        .into_iter()
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn sanitybot_repeats_checks_by_orchestras_rule() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    let project = sanity_project(&h).await;
    // A second project whose stored configuration is broken: it fails alone.
    let version = workflow_version::Entity::find()
        .one(h.db())
        .await
        .expect("q")
        .expect("v");
    let broken = lifecycle::create_project(
        h.db(),
        &version,
        "Broken",
        0,
        Some(CHANNEL.into()),
        Utc::now(),
    )
    .await
    .expect("p2");
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
    h.hold_loop_leases().await;
    h.start().await;
    for _ in 0..4 {
        h.next_message().await; // welcomes for the two assignments (invites are not messages)
        if h.fake.calls_to("chat.postMessage").len() >= 2 {
            break;
        }
    }
    let l = lease(&h, "sanity").await;

    let r = staffbot::sanity::run::run_once(h.db(), &l, Utc::now())
        .await
        .expect("run");
    assert_eq!((r.checks, r.messages, r.failed_projects), (3, 3, 1));
    assert_eq!(
        texts(&mut h, 3).await,
        [
            "<@U0AMY> <@U0ZED>: check a",
            "<@U0AMY> <@U0ZED>: check b",
            "<@U0AMY> <@U0ZED>: check c"
        ]
    );
    assert_eq!(
        sanity_check::Entity::find()
            .count(h.db())
            .await
            .expect("count"),
        3
    );

    // At once again: nothing.
    let r = staffbot::sanity::run::run_once(h.db(), &l, Utc::now())
        .await
        .expect("run");
    assert_eq!((r.checks, r.messages), (0, 0));

    // Two days later: only the daily check repeats.
    h.db()
        .execute_raw(statement(
            h.db().get_database_backend(),
            "UPDATE sanity_checks SET created_at = $1",
            vec![(Utc::now() - chrono::Duration::days(2)).into()],
        ))
        .await
        .expect("age the checks");
    let r = staffbot::sanity::run::run_once(h.db(), &l, Utc::now())
        .await
        .expect("run");
    assert_eq!((r.checks, r.messages), (1, 1));
    assert_eq!(texts(&mut h, 1).await, ["<@U0AMY> <@U0ZED>: check a"]);
    assert_eq!(
        sanity_check::Entity::find()
            .count(h.db())
            .await
            .expect("count"),
        4
    );
    let r = staffbot::sanity::run::run_once(h.db(), &l, Utc::now())
        .await
        .expect("run");
    assert_eq!((r.checks, r.messages), (0, 0));
    let _ = project;
    h.finish().await;
}

/// A project in G0PROJ with steps `one` (certification `a`, workers w1, w2) and `two`
/// (certification `b`, nobody), both staffed at `base`.
async fn staffed(h: &Harness, base: DateTime<Utc>) -> (i64, i64) {
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "a", "name": "A"}, {"slug": "b", "name": "B"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "one", "name": "One", "description": "First thing", "required_certifications": ["a"]},
            {"slug": "two", "name": "Two", "description": "Second thing", "required_certifications": ["b"]}]}),
        )],
    );
    let version = load_workflow(h.db(), dir.path()).await;
    lifecycle::create_project(h.db(), &version, "Story", 0, Some(CHANNEL.into()), base)
        .await
        .expect("project");
    let cert = workers::find_certification(h.db(), "a", None)
        .await
        .expect("cert");
    for name in ["w1", "w2"] {
        let w = add_worker(h.db(), name, Some(&format!("U0{}", name.to_uppercase()))).await;
        workers::certify(
            h.db(),
            &w,
            &cert,
            Certify {
                role: Role::EntryLevel,
                staffing_priority: 0,
                staffbot_enabled: true,
            },
            base,
        )
        .await
        .expect("certify");
    }
    let tasks = task::Entity::find().all(h.db()).await.expect("q");
    for t in &tasks {
        staffbot::staffing::staff_task(h.db(), t.id, RequestCause::User, base)
            .await
            .expect("staff");
    }
    (tasks[0].id, tasks[1].id)
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
    let (one, _) = staffed(&h, base).await;
    h.hold_loop_leases().await;
    h.start().await;
    h.next_messages(2).await; // "Got it!" twice
    h.tick(base, 1).await;
    // Two offers for `one`; the pool of `two` is empty and so is the one of `one` (2 < 5).
    let calls = h.next_messages(4).await;
    assert!(calls.iter().all(offer_or_note));
    let l = lease(&h, "reminders").await;
    let day = chrono::Duration::days(1);
    let db = h.db().clone();
    let remind = |at: DateTime<Utc>| {
        let db = db.clone();
        let l = &l;
        async move {
            staffbot::staffing::reminders::run_once(
                &db,
                l,
                std::time::Duration::from_secs(86400),
                at,
            )
            .await
            .expect("reminders")
        }
    };
    // Not before the oldest open offer is a day old.
    assert_eq!(remind(base + minutes(60)).await, 0);
    assert_eq!(remind(base + day).await, 2);
    let calls = h.next_messages(2).await;
    for c in &calls {
        let text = c.body["text"].as_str().unwrap_or_default();
        assert_eq!(
            text,
            format!(
                "Tasks are still available for you to work on, if you'd like!\n• First thing (Story), task {one}"
            )
        );
        assert_eq!(
            c.body["blocks"][2]["elements"][0]["action_id"],
            "offer_accept"
        );
    }
    // At most once per interval.
    assert_eq!(remind(base + day + minutes(1)).await, 0);
    assert_eq!(remind(base + day + day + minutes(1)).await, 2);
    h.next_messages(2).await;
    // An answered offer is no longer listed: w1 declines, only w2 is reminded.
    let w1 = lifecycle::find_worker(h.db(), "w1").await.expect("w1");
    let tx = staffbot::db::begin_write(h.db()).await.expect("tx");
    let inquiry = staffbot::db::entities::staffing_inquiry::Entity::find()
        .all(&tx)
        .await
        .expect("q")
        .into_iter()
        .find(|i| i.worker_id == w1.id)
        .expect("w1 asked");
    staffbot::staffing::respond::respond(&tx, inquiry.id, "U0W1", false, Utc::now())
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

#[tokio::test]
async fn unstaffed_tasks_are_reported_by_step_and_not_repeated() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    h.fake.add_channel(STAFFING, "staffing", &[]);
    h.config.staffbot.staffing_group_id = Some(STAFFING.into());
    let base = Utc::now() - chrono::Duration::days(1);
    let (one, two) = staffed(&h, base).await;
    h.hold_loop_leases().await;
    h.start().await;
    h.next_messages(2).await;
    h.tick(base, 1).await;
    h.next_messages(4).await;
    let l = lease(&h, "warnings").await;
    let min = std::time::Duration::from_secs(1800);
    let db = h.db().clone();
    let warn = |at: DateTime<Utc>| {
        let db = db.clone();
        let l = &l;
        async move {
            staffbot::staffing::warnings::run_once(&db, l, Some(STAFFING), min, at)
                .await
                .expect("warnings")
        }
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
    let w1 = lifecycle::find_worker(h.db(), "w1").await.expect("w1");
    let inquiry = staffbot::db::entities::staffing_inquiry::Entity::find()
        .all(h.db())
        .await
        .expect("q")
        .into_iter()
        .find(|i| i.worker_id == w1.id)
        .expect("asked");
    let id = h
        .fake
        .send_block_action(
            "U0W1",
            "offer_accept",
            &inquiry.id.to_string(),
            "DU0W1",
            "1.1",
        )
        .await;
    h.ack(&id).await;
    h.next_messages(3).await; // welcome, "you got it", the other offer "taken"
    assert_eq!(warn(base + minutes(200)).await, 1);
    assert!(
        h.next_message().await.body["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("task {two} ")))
    );
    h.finish().await;
}
