//! The released binary as an operator runs it, against the fake Slack: bad tokens, `check`, and
//! SIGTERM in the middle of work. (This also proves the binary itself can speak plain HTTP.)

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::json;
use slack_sim::{FakeSlack, FakeSlackConfig};
use staffbot::db::entities::{handled_envelope, outbox, staffing_request, worker};

use crate::common::{TestDb, add_worker, load_workflow, t0, write_workflow};

pub fn staffbot(fake: &FakeSlack, db_url: &str, bot: &str, app: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_staffbot"));
    cmd.env_clear()
        .env("STAFFBOT_DATABASE_URL", db_url)
        .env("SLACK_API_URL", fake.api_url())
        .env("SLACK_BOT_TOKEN", bot)
        .env("SLACK_APP_TOKEN", app)
        .current_dir(tempfile::tempdir().expect("tempdir").keep())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the process off the async runtime (the fake Slack runs on it).
pub async fn finish_async(child: Child, within: Duration) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || finish(child, within))
        .await
        .expect("join")
}

fn finish(child: Child, within: Duration) -> (i32, String, String) {
    let started = Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert!(started.elapsed() < within, "took {:?}", started.elapsed());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_tokens_stop_serve_at_once_with_a_clear_message() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    for (bot, app, expected) in [
        (
            "xoxb-wrong",
            "xapp-test",
            "error: Slack rejected SLACK_BOT_TOKEN (invalid_auth)",
        ),
        (
            "xoxb-test",
            "xapp-wrong",
            "error: Slack rejected SLACK_APP_TOKEN (invalid_auth)",
        ),
    ] {
        let child = staffbot(&fake, &t.url, bot, app)
            .arg("serve")
            .spawn()
            .expect("spawn");
        let (code, _, stderr) =
            tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(10)))
                .await
                .expect("join");
        assert_eq!(code, 1, "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with(expected), "{last}");
        assert!(
            !stderr.contains("xoxb-wrong") && !stderr.contains("xapp-wrong"),
            "tokens never printed: {stderr}"
        );
    }
}

#[tokio::test]
async fn check_reports_without_secrets() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_channel("G0STAFF", "staffing", &[]);
    let t = TestDb::new().await;
    let mut cmd = staffbot(&fake, &t.url, "xoxb-test", "xapp-test");
    cmd.env("SLACK_VERIFICATION_TOKEN", "vt-secret")
        .arg("check");
    let (code, stdout, stderr) =
        finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("SLACK_BOT_TOKEN: accepted (workspace"),
        "{stdout}"
    );
    assert!(stdout.contains("SLACK_APP_TOKEN: accepted"), "{stdout}");
    assert!(
        stdout.contains("verification token: set (checked)"),
        "{stdout}"
    );
    assert!(stdout.contains("staffing channel: not set"), "{stdout}");
    for secret in ["xoxb-test", "xapp-test", "vt-secret"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }

    // A wrong token is a problem; the staffing channel is then not looked at (nothing to say
    // about it but that).
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("staffbot.toml");
    std::fs::write(&conf, "[staffbot]\nstaffing_group_id = \"G0NOPE\"\n").expect("write");
    let mut cmd = staffbot(&fake, &t.url, "xoxb-wrong", "xapp-test");
    cmd.arg("--config").arg(&conf).arg("check");
    let (code, stdout, stderr) =
        finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(20)).await;
    assert_eq!(code, 1);
    assert!(
        stdout.contains("SLACK_BOT_TOKEN: Slack rejected SLACK_BOT_TOKEN (invalid_auth)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("staffing channel G0NOPE: not checked (SLACK_BOT_TOKEN did not work)"),
        "{stdout}"
    );
    assert!(!stdout.contains("invite the bot"), "{stdout}");
    assert!(
        stderr.trim_end().ends_with("error: 1 problem(s) found"),
        "{stderr}"
    );

    // With a good token, a channel the bot cannot see is a problem, and the advice is to
    // invite the bot.
    let mut cmd = staffbot(&fake, &t.url, "xoxb-test", "xapp-test");
    cmd.arg("--config").arg(&conf).arg("check");
    let (code, stdout, stderr) =
        finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(20)).await;
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "staffing channel G0NOPE: NOT visible to the bot (channel_not_found): check the id, and invite the bot to it"
        ),
        "{stdout}"
    );
    assert!(
        stderr.trim_end().ends_with("error: 1 problem(s) found"),
        "{stderr}"
    );
}

/// Issue 27, item 12: when Slack cannot be reached, `check` says so, and does not advise
/// inviting the bot to a channel it could not ask about.
#[tokio::test]
async fn check_says_slack_is_unreachable_rather_than_blaming_the_channel() {
    let t = TestDb::new().await;
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("staffbot.toml");
    std::fs::write(&conf, "[staffbot]\nstaffing_group_id = \"G0STAFF\"\n").expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_staffbot"));
    cmd.env_clear()
        .env("STAFFBOT_DATABASE_URL", &t.url)
        .env("SLACK_API_URL", format!("http://127.0.0.1:{port}/api"))
        .env("SLACK_BOT_TOKEN", "xoxb-test")
        .env("SLACK_APP_TOKEN", "xapp-test")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .arg("--config")
        .arg(&conf)
        .arg("check");
    let (code, stdout, stderr) =
        finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(30)).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("SLACK_BOT_TOKEN: cannot reach Slack at"),
        "{stdout}"
    );
    assert!(
        stdout.contains("staffing channel G0STAFF: not checked"),
        "{stdout}"
    );
    assert!(!stdout.contains("invite the bot"), "{stdout}");
}

/// Issue 27, item 14: `check` refuses a `metrics.listen` that `serve` would refuse.
#[tokio::test]
async fn check_refuses_a_metrics_address_serve_cannot_listen_on() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    let mut cmd = staffbot(&fake, &t.url, "xoxb-test", "xapp-test");
    cmd.env("STAFFBOT_METRICS_LISTEN", "nope").arg("check");
    let (code, stdout, stderr) =
        finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(20)).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("metrics.listen \"nope\": NOT an address serve can listen on"),
        "{stdout}"
    );
    assert!(
        stderr.trim_end().ends_with("error: 1 problem(s) found"),
        "{stderr}"
    );

    let mut cmd = staffbot(&fake, &t.url, "xoxb-test", "xapp-test");
    cmd.env("STAFFBOT_METRICS_LISTEN", "127.0.0.1:0")
        .arg("check");
    let (code, stdout, stderr) =
        finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("metrics: /metrics and /healthz on 127.0.0.1:0"),
        "{stdout}"
    );
}

#[tokio::test]
async fn sigterm_during_work_exits_cleanly_with_nothing_half_written() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_channel("G0PROJ", "proj", &[]);
    let t = TestDb::new().await;
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": []}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [{"slug": "s", "name": "S"}]}),
        )],
    );
    let version = load_workflow(&t.db, dir.path()).await;
    staffbot::lifecycle::create_project(
        &t.db,
        &version,
        "P",
        0,
        Some("G0PROJ".into()),
        &Default::default(),
        t0(),
    )
    .await
    .expect("project");
    let admin = add_worker(&t.db, "erin", Some("U0ADMIN")).await;
    let mut am: worker::ActiveModel = admin.into();
    am.is_admin = Set(true);
    am.update(&t.db).await.expect("admin");

    let hellos = fake.hellos_sent();
    let child = staffbot(&fake, &t.url, "xoxb-test", "xapp-test")
        .arg("serve")
        .spawn()
        .expect("spawn");
    assert!(
        fake.wait_for_hellos(hellos + 1, Duration::from_secs(15))
            .await,
        "connected"
    );

    // A burst of commands, and SIGTERM while they are being handled.
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(fake.send_slash("U0ADMIN", "erin", "staff 1").await);
    }
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20)))
            .await
            .expect("join");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");

    // Every acked command is complete in the database, and nothing else was done.
    let acked: Vec<String> = fake
        .acks()
        .into_iter()
        .map(|a| a.envelope_id)
        .filter(|id| ids.contains(id))
        .collect();
    let handled = handled_envelope::Entity::find()
        .all(&t.db)
        .await
        .expect("q");
    let handled_ids: Vec<String> = handled.iter().map(|h| h.envelope_id.clone()).collect();
    for id in &acked {
        assert!(handled_ids.contains(id), "acked {id} but not recorded");
    }
    let requests = staffing_request::Entity::find()
        .count(&t.db)
        .await
        .expect("count") as usize;
    // (The daemon's own staffing round may add an "All staffing requests…" note; only the
    // commands' announcements are counted.)
    let announcements = outbox::Entity::find()
        .filter(outbox::Column::DedupeKey.starts_with("got-it:"))
        .count(&t.db)
        .await
        .expect("count") as usize;
    assert_eq!(requests, handled.len(), "one request per handled command");
    assert_eq!(
        announcements,
        handled.len(),
        "one queued message per handled command"
    );
    assert!(handled.len() >= acked.len());
}

#[tokio::test]
async fn json_logs_carry_the_envelope_and_the_task() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_channel("G0PROJ", "proj", &[]);
    let t = TestDb::new().await;
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": []}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [{"slug": "s", "name": "S"}]}),
        )],
    );
    let version = load_workflow(&t.db, dir.path()).await;
    let project_id = staffbot::lifecycle::create_project(
        &t.db,
        &version,
        "P",
        0,
        Some("G0PROJ".into()),
        &Default::default(),
        t0(),
    )
    .await
    .expect("project");
    let task = staffbot::db::entities::task::Entity::find()
        .filter(staffbot::db::entities::task::Column::ProjectId.eq(project_id))
        .one(&t.db)
        .await
        .expect("q")
        .expect("task");
    let admin = add_worker(&t.db, "erin", Some("U0ADMIN")).await;
    let mut am: worker::ActiveModel = admin.into();
    am.is_admin = Set(true);
    am.update(&t.db).await.expect("admin");

    let hellos = fake.hellos_sent();
    let child = staffbot(&fake, &t.url, "xoxb-test", "xapp-test")
        .env("STAFFBOT_LOG_FORMAT", "json")
        .arg("serve")
        .spawn()
        .expect("spawn");
    assert!(
        fake.wait_for_hellos(hellos + 1, Duration::from_secs(15))
            .await,
        "connected"
    );
    let envelope = fake
        .send_slash("U0ADMIN", "erin", &format!("staff {}", task.id))
        .await;
    assert!(
        fake.wait_ack(&envelope, Duration::from_secs(10))
            .await
            .is_some(),
        "acked"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, _, stderr) = finish_async(child, Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stderr}");

    // Every line is one JSON object; the request's line names the envelope and the task.
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let opened = lines
        .iter()
        .find(|l| l["fields"]["message"] == "staffing request opened")
        .unwrap_or_else(|| panic!("no 'staffing request opened' line in {stderr}"));
    let spans = opened["spans"].as_array().expect("spans");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "envelope" && s["envelope_id"] == envelope.as_str()),
        "{opened}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "staff" && s["task_id"] == task.id),
        "{opened}"
    );
    assert_eq!(opened["level"], "INFO");
}
