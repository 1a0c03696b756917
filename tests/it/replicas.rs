//! Two `staffbot serve` processes on one database and one fake Slack (four Socket Mode
//! connections): a whole staffing run with clicks landing on both, every offer sent once, and
//! one replica killed (SIGKILL) in the middle while the other finishes the work.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use slack_sim::{FakeSlack, FakeSlackConfig};
use staffbot::db::Role;
use staffbot::db::entities::{staffing_inquiry, task_assignment};
use staffbot::lifecycle;
use staffbot::workers::{self, Certify};

use crate::common::{
    TestDb, add_worker, load_workflow, replica_config, serve, stop, wait_until, write_workflow,
};

const CHANNEL: &str = "G0PROJ";

/// Offer DMs delivered so far, by inquiry id (from the Accept button's value).
fn offers(fake: &FakeSlack) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for call in fake.calls_to("chat.postMessage") {
        if call.status != 200 {
            continue;
        }
        if let Some(value) = call.body["blocks"][1]["elements"][0]["value"].as_str()
            && call.body["blocks"][1]["elements"][0]["action_id"] == "offer_accept"
        {
            *seen.entry(value.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_and_survive_a_kill() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_channel(CHANNEL, "p", &[]);
    let t = TestDb::new().await;
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "w", "name": "W"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "s", "name": "S", "description": "Do it", "required_certifications": ["w"],
             "assignment_policy": {"policy_function": {"entry_level": {"path": "staffbot_autoassign"}}},
             "review_policy": {"policy": "no_review"}}]}),
        )],
    );
    let version = load_workflow(&t.db, dir.path()).await;
    let cert = workers::find_certification(&t.db, "w", None)
        .await
        .expect("cert");
    for i in 0..6 {
        let id = format!("U0W{i}");
        let w = add_worker(&t.db, &format!("w{i}"), Some(&id)).await;
        workers::certify(
            &t.db,
            &w,
            &cert,
            Certify {
                role: Role::EntryLevel,
                staffing_priority: 6 - i,
                staffbot_enabled: true,
            },
            Utc::now(),
        )
        .await
        .expect("certify");
        fake.add_user(&id, &format!("w{i}"));
    }
    for p in 0..3 {
        lifecycle::create_project(
            &t.db,
            &version,
            &format!("P{p}"),
            0,
            Some(CHANNEL.into()),
            &Default::default(),
            Utc::now(),
        )
        .await
        .expect("project");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = replica_config(dir.path());

    let staffbot = std::path::Path::new(env!("CARGO_BIN_EXE_staffbot"));
    let a = serve(staffbot, &fake, &t.url, &config);
    let b = serve(staffbot, &fake, &t.url, &config);
    assert!(
        fake.wait_for_hellos(4, Duration::from_secs(20)).await,
        "four connections"
    );

    // The first round: two offers for each of the three tasks, each sent once.
    wait_until(&fake, "the first offers", |f| offers(f).len() >= 6).await;
    let inquiries = staffing_inquiry::Entity::find()
        .all(&t.db)
        .await
        .expect("q");
    let first: Vec<_> = inquiries.iter().take(6).collect();

    // Four clicks before the kill, one per connection: both replicas handle some.
    for inquiry in &first[..4] {
        let user = format!("U0W{}", inquiry.worker_id - 1);
        let id = fake
            .send_block_action(&user, "offer_reject", &inquiry.id.to_string(), "D0", "1.1")
            .await;
        assert!(
            fake.wait_ack(&id, Duration::from_secs(10)).await.is_some(),
            "acked"
        );
    }

    // Kill one replica outright; the other carries on (its leases expire after 2 s).
    let a_log = stop(a, "KILL").await;

    // Accept one offer per task; the survivor takes the clicks and keeps batching.
    wait_until(&fake, "more offers after the kill", |f| {
        offers(f).len() >= 9
    })
    .await;
    let all = staffing_inquiry::Entity::find()
        .all(&t.db)
        .await
        .expect("q");
    let mut tasks_done = std::collections::BTreeSet::new();
    for inquiry in all.iter().rev() {
        if tasks_done.contains(&inquiry.request_id) || first[..4].iter().any(|f| f.id == inquiry.id)
        {
            continue;
        }
        let user = format!("U0W{}", inquiry.worker_id - 1);
        let id = fake
            .send_block_action(&user, "offer_accept", &inquiry.id.to_string(), "D0", "1.1")
            .await;
        assert!(
            fake.wait_ack(&id, Duration::from_secs(10)).await.is_some(),
            "acked by the survivor"
        );
        tasks_done.insert(inquiry.request_id);
    }
    assert_eq!(tasks_done.len(), 3);
    assert_eq!(
        task_assignment::Entity::find()
            .count(&t.db)
            .await
            .expect("count"),
        3
    );
    wait_until(&fake, "the three welcomes", |f| {
        f.calls_to("chat.postMessage")
            .iter()
            .filter(|c| {
                c.body["text"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("Welcome aboard!"))
            })
            .count()
            == 3
    })
    .await;

    let b_log = stop(b, "TERM").await;
    // Every offer went out once, whichever replica sent it.
    let delivered = offers(&fake);
    assert!(
        delivered.values().all(|n| *n == 1),
        "an offer was sent twice: {delivered:?}"
    );
    // Clicks landed on both replicas.
    assert!(
        a_log.contains("offer answered"),
        "replica A handled clicks:\n{a_log}"
    );
    assert!(
        b_log.contains("offer answered"),
        "replica B handled clicks:\n{b_log}"
    );
}
