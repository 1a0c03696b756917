//! Shared test setup: a fresh database per test, the example workflow, and small builders.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::Value;
use staffbot::db::entities::{outbox, workflow_version};
use staffbot::db::{self, Role};
use staffbot::messages::{Message, Outgoing};
use staffbot::slack::write::SlackWrite;
use staffbot::workers::{self, Certify, NewWorker};
use staffbot::workflow::{definition, load};

/// A database for one test. SQLite: a file in a temp dir. PostgreSQL: a new schema in the
/// database named by `STAFFBOT_TEST_PG_URL`, selected through the URL's `options`.
pub struct TestDb {
    pub url: String,
    pub db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn pg_url() -> Option<String> {
    std::env::var("STAFFBOT_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

impl TestDb {
    /// A fresh, empty database (no migrations applied).
    pub async fn empty() -> TestDb {
        match pg_url() {
            Some(base) => {
                let schema = format!(
                    "t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    Utc::now().timestamp_micros()
                );
                let admin = db::connect(&base).await.expect("connect to PostgreSQL");
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create schema");
                admin.close().await.expect("close");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                let db = db::connect(&url).await.expect("connect to test schema");
                TestDb {
                    url,
                    db,
                    _dir: None,
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("staffbot.db").display()
                );
                let db = db::connect(&url).await.expect("connect to SQLite");
                TestDb {
                    url,
                    db,
                    _dir: Some(dir),
                }
            }
        }
    }

    /// A fresh database with every migration applied.
    pub async fn new() -> TestDb {
        let t = TestDb::empty().await;
        let db = db::connect_and_migrate(&t.url).await.expect("migrate");
        TestDb { db, ..t }
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/newsroom")
}

/// Loads a workflow directory and returns its (last) version row.
pub async fn load_workflow(db: &DatabaseConnection, dir: &Path) -> workflow_version::Model {
    let def = definition::read(dir).expect("valid workflow");
    load::store(db, &def, false, t0()).await.expect("stored");
    workflow_version::Entity::find()
        .order_by_desc(workflow_version::Column::Id)
        .one(db)
        .await
        .expect("query")
        .expect("a version")
}

/// Writes `workflow.json` and `<dir>/version.json` files into a new temp directory.
pub fn write_workflow(workflow: &Value, versions: &[(&str, Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("workflow.json"), workflow.to_string()).expect("write");
    for (name, version) in versions {
        let vdir = dir.path().join(name);
        std::fs::create_dir_all(&vdir).expect("mkdir");
        std::fs::write(vdir.join("version.json"), version.to_string()).expect("write");
    }
    dir
}

pub async fn add_worker(
    db: &DatabaseConnection,
    username: &str,
    slack_id: Option<&str>,
) -> staffbot::db::entities::worker::Model {
    workers::add(
        db,
        NewWorker {
            username: username.to_string(),
            first_name: username.to_string(),
            slack_user_id: slack_id.map(str::to_string),
            ..Default::default()
        },
        t0(),
    )
    .await
    .expect("worker added")
}

pub async fn certify(
    db: &DatabaseConnection,
    worker: &staffbot::db::entities::worker::Model,
    cert: &str,
    role: Role,
) {
    let c = workers::find_certification(db, cert, None)
        .await
        .expect("certification");
    workers::certify(
        db,
        worker,
        &c,
        Certify {
            role,
            staffing_priority: 0,
            staffbot_enabled: true,
        },
        t0(),
    )
    .await
    .expect("certified");
}

/// Every queued Slack write, oldest first, with its dedupe key.
pub async fn outbox_rows(db: &DatabaseConnection) -> Vec<(String, SlackWrite)> {
    outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await
        .expect("outbox")
        .into_iter()
        .map(|r| {
            let write = staffbot::slack::render::stored(r.payload, &r.dedupe_key)
                .expect("payload parses")
                .0;
            (r.dedupe_key, write)
        })
        .collect()
}

/// PostgreSQL: waits until some transaction is blocked on a lock held by another (so a test
/// knows its second transaction is in flight). SQLite serialises writers at `BEGIN`, which
/// cannot be observed from outside: returns at once.
pub async fn wait_for_a_lock_wait(db: &DatabaseConnection) {
    if !db::is_postgres(db) {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted",
            ))
            .await
            .expect("pg_locks")
            .expect("a row");
        if row.try_get::<i64>("", "n").expect("n") > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no transaction waited for a lock"
        );
        tokio::task::yield_now().await;
    }
}

/// The `chat.postMessage` staffbot queues for a text-only message, with `text` exactly as it
/// is sent (already in Slack's markup).
pub fn post(channel: &str, text: impl Into<String>) -> SlackWrite {
    SlackWrite::PostMessage {
        channel: channel.to_string(),
        text: text.into(),
        blocks: None,
    }
}

/// A message whose text is `text` (escaped as any message's), for tests that need something
/// queued: a SanityBot alert without mentions.
pub fn note(channel: &str, text: &str) -> Outgoing {
    Outgoing::post(
        channel,
        Message::SanityAlert {
            mentions: Vec::new(),
            message: text.to_string(),
        },
    )
}

/// The README's section `## {heading}`, up to the next `## ` heading.
pub fn readme_section(heading: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let marker = format!("\n## {heading}\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no `## {heading}`"))
        + marker.len();
    let rest = &readme[start..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
}

/// The code span that opens each table row of `section` (`` | `this` | … ``), with Markdown's
/// `\|` unescaped.
pub fn table_code_cells(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.find('`').map(|end| rest[..end].replace("\\|", "|")))
        .collect()
}
