//! A rolling upgrade (issue 30): the installation set up with the previous release (the binary
//! `STAFFBOT_PREVIOUS_BIN` names; `.ci/run` builds the commit `.ci/previous-release` names), the
//! new release started beside it on the same database (applying its migrations while the old
//! one serves), slash commands, clicks, the loops and the sender on both, then the old one
//! stopped. Every command is answered, every offer made once, one winner per task, every
//! invite, welcome and notice delivered once, and no outbox row failed.
//!
//! Skipped when `STAFFBOT_PREVIOUS_BIN` is not set, unless `STAFFBOT_REQUIRE_PREVIOUS=1` (as in
//! `.ci/run`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use slack_sim::{FakeSlack, FakeSlackConfig};
use staffbot::db::OutboxStatus;
use staffbot::db::entities::{outbox, staffing_inquiry, task, task_assignment};

use crate::common::{TestDb, replica_config, serve, stop, wait_until, write_workflow};

const CHANNEL: &str = "G0PROJ";
const ADMIN: &str = "U0ADMIN";
const WORKERS: usize = 6;
const TASKS: usize = 4;

/// The previous release's binary, or None when the scenario is skipped.
fn previous_release() -> Option<PathBuf> {
    match std::env::var_os("STAFFBOT_PREVIOUS_BIN") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            assert!(
                std::env::var("STAFFBOT_REQUIRE_PREVIOUS").as_deref() != Ok("1"),
                "STAFFBOT_REQUIRE_PREVIOUS=1 but STAFFBOT_PREVIOUS_BIN is not set"
            );
            eprintln!("skipped: STAFFBOT_PREVIOUS_BIN names no previous release's binary");
            None
        }
    }
}

fn staffbot(bin: &Path, db_url: &str, config: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--config")
        .arg(config)
        .env_clear()
        .env("STAFFBOT_DATABASE_URL", db_url)
        .env("RUST_LOG", "info");
    c
}

/// Runs one admin command with `bin`; panics with its output when it fails.
fn cli(bin: &Path, db_url: &str, config: &Path, args: &[&str]) -> String {
    let out = staffbot(bin, db_url, config)
        .args(args)
        .output()
        .expect("run staffbot");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Successful `chat.postMessage` calls whose text or first button says what `key` returns.
fn posted(
    fake: &FakeSlack,
    key: impl Fn(&serde_json::Value) -> Option<String>,
) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for call in fake.calls_to("chat.postMessage") {
        if call.status == 200
            && let Some(k) = key(&call.body)
        {
            *seen.entry(k).or_insert(0) += 1;
        }
    }
    seen
}

/// Offer DMs delivered, by inquiry id (the Accept button's value).
fn offers(fake: &FakeSlack) -> HashMap<String, usize> {
    posted(fake, |b| {
        let button = &b["blocks"][1]["elements"][0];
        (button["action_id"] == "offer_accept")
            .then(|| button["value"].as_str().map(String::from))?
    })
}

/// Channel messages delivered, by outbox key, of those whose text ends with `ending`.
fn channel_posts(fake: &FakeSlack, ending: &str) -> HashMap<String, usize> {
    posted(fake, |b| {
        let key = b["metadata"]["event_payload"]["key"].as_str()?;
        b["text"]
            .as_str()?
            .ends_with(ending)
            .then(|| key.to_string())
    })
}

fn welcomes(fake: &FakeSlack) -> HashMap<String, usize> {
    channel_posts(fake, "Welcome aboard!")
}

/// Waits until no outbox row is pending (woken by the next Web API call, or every 200 ms).
async fn outbox_emptied(fake: &FakeSlack, t: &TestDb) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let pending = outbox::Entity::find()
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending))
            .all(&t.db)
            .await
            .expect("q");
        if pending.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still pending: {pending:?}"
        );
        let posts = fake.calls_to("chat.postMessage").len();
        fake.wait_for_calls("chat.postMessage", posts + 1, Duration::from_millis(200))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_and_this_one_serve_side_by_side_and_lose_nothing() {
    let Some(previous) = previous_release() else {
        return;
    };
    let current = Path::new(env!("CARGO_BIN_EXE_staffbot"));
    assert_ne!(
        std::fs::read(&previous).ok(),
        std::fs::read(current).ok(),
        "STAFFBOT_PREVIOUS_BIN is this build's binary"
    );
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_channel(CHANNEL, "p", &[]);
    fake.add_user(ADMIN, "erin");
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = replica_config(dir.path());

    // The installation, set up with the previous release's commands.
    let workflow = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "w", "name": "W"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "s", "name": "S", "description": "Do it", "required_certifications": ["w"],
             "review_policy": {"policy": "no_review"}}]}),
        )],
    );
    let old = |args: &[&str]| cli(&previous, &t.url, &config, args);
    old(&["workflow", "load", &workflow.path().to_string_lossy()]);
    old(&["worker", "add", "erin", "--slack-user-id", ADMIN, "--admin"]);
    for i in 0..WORKERS {
        let (name, id) = (format!("w{i}"), format!("U0W{i}"));
        old(&["worker", "add", &name, "--slack-user-id", &id]);
        old(&[
            "worker",
            "certify",
            &name,
            "w",
            "--priority",
            &(WORKERS - i).to_string(),
        ]);
        fake.add_user(&id, &name);
    }
    let projects: Vec<String> = (0..TASKS)
        .map(|p| {
            old(&[
                "project",
                "create",
                "--workflow",
                "wf",
                "--description",
                &format!("P{p}"),
                "--channel",
                CHANNEL,
            ])
        })
        .collect();
    assert_eq!(projects.len(), TASKS);

    // The previous release serves; the new one starts beside it and migrates.
    let a = serve(&previous, &fake, &t.url, &config);
    assert!(
        fake.wait_for_hellos(2, Duration::from_secs(20)).await,
        "old connected"
    );
    let b = serve(current, &fake, &t.url, &config);
    assert!(
        fake.wait_for_hellos(4, Duration::from_secs(20)).await,
        "new connected"
    );

    // `/staffbot staff` for every task: the commands land on both (round-robin).
    let tasks = task::Entity::find().all(&t.db).await.expect("tasks");
    assert_eq!(tasks.len(), TASKS);
    for task in &tasks {
        let id = fake
            .send_slash(ADMIN, "erin", &format!("staff {}", task.id))
            .await;
        let ack = fake.wait_ack(&id, Duration::from_secs(10)).await;
        let answer = ack.and_then(|a| a.payload).map(|p| p.to_string());
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.contains(&format!("I will start staffing task {}!", task.id))),
            "staff {} answered: {answer:?}",
            task.id
        );
    }

    // Two offers per task, then one reject and one accept per task, on both connections.
    wait_until(&fake, "two offers per task", |f| {
        offers(f).len() >= 2 * TASKS
    })
    .await;
    let inquiries = staffing_inquiry::Entity::find()
        .all(&t.db)
        .await
        .expect("q");
    let mut by_request: BTreeMap<i64, Vec<&staffing_inquiry::Model>> = BTreeMap::new();
    for i in &inquiries {
        by_request.entry(i.request_id).or_default().push(i);
    }
    assert_eq!(by_request.len(), TASKS);
    for (request, asked) in &by_request {
        let [no, yes, ..] = asked.as_slice() else {
            panic!("request {request}: {} offers", asked.len());
        };
        for (inquiry, action) in [(no, "offer_reject"), (yes, "offer_accept")] {
            let user = format!("U0W{}", inquiry.worker_id - 2);
            let id = fake
                .send_block_action(&user, action, &inquiry.id.to_string(), "D0", "1.1")
                .await;
            assert!(
                fake.wait_ack(&id, Duration::from_secs(10)).await.is_some(),
                "{action} acked"
            );
        }
    }
    wait_until(&fake, "a welcome per task", |f| welcomes(f).len() == TASKS).await;

    // The old release stops; the new one delivers whatever is left.
    let old_log = stop(a, "TERM").await;
    outbox_emptied(&fake, &t).await;
    let new_log = stop(b, "TERM").await;

    assert!(
        old_log.contains("offer answered"),
        "the old release handled clicks:\n{old_log}"
    );
    assert!(
        new_log.contains("offer answered"),
        "the new release handled clicks:\n{new_log}"
    );
    let delivered = offers(&fake);
    assert!(
        delivered.values().all(|n| *n == 1),
        "an offer was sent twice: {delivered:?}"
    );
    assert!(
        welcomes(&fake).values().all(|n| *n == 1),
        "{:?}",
        welcomes(&fake)
    );
    let notices = posted(&fake, |b| {
        let key = b["metadata"]["event_payload"]["key"].as_str()?;
        key.starts_with("notice:").then(|| key.to_string())
    });
    assert_eq!(
        notices.len(),
        TASKS,
        "a status notice per task: {notices:?}"
    );
    assert!(notices.values().all(|n| *n == 1), "{notices:?}");
    let assignments = task_assignment::Entity::find().all(&t.db).await.expect("q");
    assert_eq!(assignments.len(), TASKS, "one winner per task");
    let invites = fake
        .calls_to("conversations.invite")
        .into_iter()
        .filter(|c| c.status == 200)
        .count();
    assert_eq!(invites, TASKS, "one channel invite per winner");
    let failed = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Failed))
        .all(&t.db)
        .await
        .expect("q");
    assert!(failed.is_empty(), "failed for good: {failed:?}");
}
