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

/// Every queued Slack write, oldest first, with its dedupe key (not the App Home refreshes
/// every change queues: they are no Slack call; see `tests/it/home.rs`).
pub async fn outbox_rows(db: &DatabaseConnection) -> Vec<(String, SlackWrite)> {
    outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|r| r.method != "homes.refresh")
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

// ---------------------------------------------------------------------------------------------
// Builders: a workflow, workers, a project and its tasks in a line or two each.

/// One step of a test workflow, as Orchestra's JSON. `step("draft", "writer")` is a human step
/// named `Draft`, described `Do draft`, needing certification `writer`, with Orchestra's default
/// policies; the methods below change what a test cares about.
#[derive(Clone, Debug)]
pub struct Step(pub Value);

pub fn step(slug: &str, cert: &str) -> Step {
    let mut name = slug.to_string();
    if let Some(first) = name.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    Step(serde_json::json!({
        "slug": slug, "name": name, "description": format!("Do {slug}"),
        "required_certifications": [cert],
    }))
}

/// A machine step (`is_human: false`) run by execution function `path`.
pub fn machine_step(slug: &str, path: &str) -> Step {
    let mut s = step(slug, "");
    s.0["required_certifications"] = serde_json::json!([]);
    s.0["is_human"] = Value::Bool(false);
    s.0["execution_function"] = serde_json::json!({"path": path});
    s
}

impl Step {
    pub fn described(self, description: &str) -> Step {
        self.with("description", description.into())
    }
    /// Every submission reviewed (`sampled_review`, rate 1) up to `max_reviews` levels.
    pub fn reviewed(self, max_reviews: u32) -> Step {
        self.with(
            "review_policy",
            serde_json::json!({"policy": "sampled_review", "rate": 1, "max_reviews": max_reviews}),
        )
    }
    pub fn no_review(self) -> Step {
        self.with("review_policy", serde_json::json!({"policy": "no_review"}))
    }
    /// Assignment policy `path` for `role` (`entry_level` or `reviewer`), with `kwargs`.
    pub fn policy(mut self, role: &str, path: &str, kwargs: Value) -> Step {
        let mut function = serde_json::json!({"path": path});
        if !kwargs.is_null() {
            function["kwargs"] = kwargs;
        }
        self.0["assignment_policy"]["policy_function"][role] = function;
        self
    }
    /// Created once `steps` are complete.
    pub fn after(self, steps: &[&str]) -> Step {
        self.with("creation_depends_on", serde_json::json!(steps))
    }
    pub fn with(mut self, key: &str, value: Value) -> Step {
        self.0[key] = value;
        self
    }
}

/// A workflow `wf` (described `Test workflow`) with version `v1` of `steps` and one
/// certification per name in `certs`.
#[derive(Clone, Debug)]
pub struct Flow {
    pub workflow: Value,
    pub version: Value,
    /// Files beside `v1/version.json` (scripts), by name.
    pub files: Vec<(String, String)>,
}

pub fn flow(certs: &[&str], steps: Vec<Step>) -> Flow {
    let certifications: Vec<Value> = certs
        .iter()
        .map(|c| serde_json::json!({"slug": c, "name": c.to_uppercase()}))
        .collect();
    Flow {
        workflow: serde_json::json!({"slug": "wf", "name": "WF", "description": "Test workflow",
                                     "certifications": certifications}),
        version: serde_json::json!({"slug": "v1", "name": "V1",
                                    "steps": steps.into_iter().map(|s| s.0).collect::<Vec<_>>()}),
        files: Vec::new(),
    }
}

impl Flow {
    /// The workflow's slug and description (what offers show as "Project:").
    pub fn named(mut self, slug: &str, description: &str) -> Flow {
        self.workflow["slug"] = slug.into();
        self.workflow["description"] = description.into();
        self
    }
    /// A key of the version (e.g. `sanity_checks`).
    pub fn with(mut self, key: &str, value: Value) -> Flow {
        self.version[key] = value;
        self
    }
    /// A file beside `v1/version.json`, e.g. a script `checks.rhai`.
    pub fn file(mut self, name: &str, text: &str) -> Flow {
        self.files.push((name.to_string(), text.to_string()));
        self
    }
    /// The workflow as files in a new temp directory.
    pub fn dir(&self) -> tempfile::TempDir {
        let dir = write_workflow(&self.workflow, &[("v1", self.version.clone())]);
        for (name, text) in &self.files {
            std::fs::write(dir.path().join("v1").join(name), text).expect("write");
        }
        dir
    }
    /// Loads the workflow; returns its version.
    pub async fn load(&self, db: &DatabaseConnection) -> workflow_version::Model {
        load_workflow(db, self.dir().path()).await
    }
    /// Loads the workflow and creates a project on it: described `description`, in `channel`.
    pub async fn project(
        &self,
        db: &DatabaseConnection,
        description: &str,
        channel: Option<&str>,
    ) -> i64 {
        self.project_at(db, description, channel, Utc::now()).await
    }
    /// [`Flow::project`] created at `at`.
    pub async fn project_at(
        &self,
        db: &DatabaseConnection,
        description: &str,
        channel: Option<&str>,
        at: DateTime<Utc>,
    ) -> i64 {
        let version = self.load(db).await;
        staffbot::lifecycle::create_project(
            db,
            &version,
            description,
            0,
            channel.map(str::to_string),
            &Default::default(),
            at,
        )
        .await
        .expect("project created")
    }
}

/// A project of priority 0 on `version`, created now.
pub async fn create_project(
    db: &DatabaseConnection,
    version: &workflow_version::Model,
    description: &str,
    channel: Option<&str>,
) -> i64 {
    staffbot::lifecycle::create_project(
        db,
        version,
        description,
        0,
        channel.map(str::to_string),
        &Default::default(),
        Utc::now(),
    )
    .await
    .expect("project created")
}

/// A worker to add: `worker("bob")` has first name `bob` and Slack id `U0BOB`.
#[must_use]
pub struct WorkerSpec {
    new: NewWorker,
    certs: Vec<(String, Role, i32, bool)>,
}

pub fn worker(name: &str) -> WorkerSpec {
    WorkerSpec {
        new: NewWorker {
            username: name.to_string(),
            first_name: name.to_string(),
            slack_user_id: Some(slack_id(name)),
            ..Default::default()
        },
        certs: Vec::new(),
    }
}

/// The Slack id of a worker added by [`worker`]: `U0` and the name in capitals.
pub fn slack_id(name: &str) -> String {
    format!("U0{}", name.to_uppercase())
}

impl WorkerSpec {
    pub fn slack(mut self, id: &str) -> Self {
        self.new.slack_user_id = Some(id.to_string());
        self
    }
    pub fn no_slack(mut self) -> Self {
        self.new.slack_user_id = None;
        self
    }
    pub fn admin(mut self) -> Self {
        self.new.is_admin = true;
        self
    }
    /// Address `email` and preference `notify`.
    pub fn email(mut self, email: &str, notify: staffbot::db::Notify) -> Self {
        self.new.email = email.to_string();
        self.new.notify = notify;
        self
    }
    /// Certified `cert` entry-level (priority 0, staffbot enabled).
    pub fn writes(self, cert: &str) -> Self {
        self.certified(cert, Role::EntryLevel, 0, true)
    }
    /// Certified `cert` as a reviewer (and entry-level, which a reviewer needs).
    pub fn reviews(self, cert: &str) -> Self {
        self.writes(cert).certified(cert, Role::Reviewer, 0, true)
    }
    pub fn certified(mut self, cert: &str, role: Role, priority: i32, staffbot: bool) -> Self {
        self.certs
            .push((cert.to_string(), role, priority, staffbot));
        self
    }
    pub async fn add(self, db: &DatabaseConnection) -> staffbot::db::entities::worker::Model {
        let w = workers::add(db, self.new, t0())
            .await
            .expect("worker added");
        for (cert, role, staffing_priority, staffbot_enabled) in self.certs {
            let c = workers::find_certification(db, &cert, None)
                .await
                .expect("certification");
            let how = Certify {
                role,
                staffing_priority,
                staffbot_enabled,
            };
            workers::certify(db, &w, &c, how, t0())
                .await
                .expect("certified");
        }
        w
    }
}

/// Every task, oldest first.
pub async fn tasks(db: &DatabaseConnection) -> Vec<staffbot::db::entities::task::Model> {
    use staffbot::db::entities::task;
    task::Entity::find()
        .order_by_asc(task::Column::Id)
        .all(db)
        .await
        .expect("tasks")
}

/// The id of the first task.
pub async fn first_task(db: &DatabaseConnection) -> i64 {
    tasks(db).await.first().expect("a task").id
}

pub async fn task(db: &DatabaseConnection, id: i64) -> staffbot::db::entities::task::Model {
    staffbot::db::entities::task::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("the task")
}

/// How many rows `E` has.
pub async fn count<E: EntityTrait>(db: &DatabaseConnection) -> u64
where
    E::Model: Sync,
{
    use sea_orm::PaginatorTrait;
    E::find().count(db).await.expect("count")
}

/// Every row of `E`, by primary key.
pub async fn all<E: EntityTrait>(db: &DatabaseConnection) -> Vec<E::Model> {
    E::find().all(db).await.expect("rows")
}

pub async fn find_worker(
    db: &DatabaseConnection,
    name: &str,
) -> staffbot::db::entities::worker::Model {
    staffbot::lifecycle::find_worker(db, name)
        .await
        .expect("worker")
}

/// Assigns `task` to the worker named `name` (`task assign`).
pub async fn assign(db: &DatabaseConnection, task: i64, name: &str) {
    let w = find_worker(db, name).await;
    staffbot::lifecycle::assign_task(db, task, &w, &Default::default(), Utc::now())
        .await
        .expect("assigned");
}

/// The worker named `name` submits `task` (`kind`), with a fixed seed for sampled reviews.
pub async fn submit(
    db: &DatabaseConnection,
    task: i64,
    name: &str,
    kind: staffbot::workflow::rules::SubmitKind,
) -> staffbot::db::TaskStatus {
    use rand::SeedableRng;
    let w = find_worker(db, name).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    staffbot::lifecycle::submit(
        db,
        task,
        &w,
        kind,
        &Default::default(),
        Utc::now(),
        &mut rng,
    )
    .await
    .expect("submitted")
}

/// Opens a staffing request for `task` as `/staffbot staff` does.
pub async fn staff(
    db: &DatabaseConnection,
    task: i64,
) -> staffbot::db::entities::staffing_request::Model {
    staff_at(db, task, Utc::now()).await
}

/// [`staff`] at `at`.
pub async fn staff_at(
    db: &DatabaseConnection,
    task: i64,
    at: DateTime<Utc>,
) -> staffbot::db::entities::staffing_request::Model {
    staffbot::requests::staff_task(db, task, staffbot::db::RequestCause::User, at)
        .await
        .expect("staffing request")
}

/// The row of `E` with primary key `id`.
pub async fn by_id<E>(db: &DatabaseConnection, id: i64) -> E::Model
where
    E: EntityTrait,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<i64>,
{
    E::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("no row {id}"))
}

/// (worker id, counter) of every task assignment, oldest first.
pub async fn assignments(db: &DatabaseConnection) -> Vec<(i64, i32)> {
    use staffbot::db::entities::task_assignment;
    task_assignment::Entity::find()
        .order_by_asc(task_assignment::Column::Id)
        .all(db)
        .await
        .expect("assignments")
        .into_iter()
        .map(|a| (a.worker_id, a.assignment_counter))
        .collect()
}

/// The channel welcome of a worker with Slack id `slack`.
pub fn welcome(slack: &str) -> String {
    format!("<@{slack}> has been added to the team. Welcome aboard!")
}

/// Orchestra's status lines of status notices.
pub const PICKED_UP: &str = "Task has been picked up by a worker.";
pub const AUTO_STAFFED: &str = "Task has been auto-staffed to a worker.";
pub const AWAITING_REVIEW: &str = "Task is awaiting review.";
pub const UNDER_REVIEW: &str = "Task is under review.";
pub const RETURNED: &str = "Task was returned by reviewer.";
pub const COMPLETED: &str = "Task has been completed.";
pub const ABORTED: &str = "Task has been aborted.";

/// The project channel's status notice of task `task` (step `step`) of a project described
/// `project` on version `v1`: status line `line`, naming the worker `name` added by
/// [`worker`] (and mentioning their Slack id).
pub fn notice(line: &str, name: &str, project: &str, step: &str, task: i64) -> String {
    format!(
        "*{line}*\n>>>Current worker: {name} (<@{}>)\n\nProject: v1 | {project}\nTask: {step} {task}",
        slack_id(name)
    )
}

/// A worker row that is no candidate, with id `id`: the next worker added gets a later id.
/// (SQLite reads candidates and availability in ranges of worker ids; a worker added after
/// this one is in a later range than the first.)
pub async fn placeholder_worker(db: &DatabaseConnection, id: i64) {
    sea_orm::ConnectionTrait::execute_unprepared(
        db,
        &format!(
            "INSERT INTO workers (id, username, created_at) \
             VALUES ({id}, 'placeholder', '2026-01-01T00:00:00Z')"
        ),
    )
    .await
    .expect("placeholder worker");
}

/// `staffbot serve` from binary `bin` (this build's or another release's) against `fake` and
/// the database at `db_url`, with `config`, logging at INFO; stdout discarded, stderr for the
/// caller to direct.
pub fn serve_command(
    bin: &Path,
    fake: &slack_sim::FakeSlack,
    db_url: &str,
    config: &Path,
) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.arg("--config")
        .arg(config)
        .arg("serve")
        .env_clear()
        .env("STAFFBOT_DATABASE_URL", db_url)
        .env("SLACK_API_URL", fake.api_url())
        .env("SLACK_BOT_TOKEN", "xoxb-test")
        .env("SLACK_APP_TOKEN", "xapp-test")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null());
    c
}

/// [`serve_command`] started, its stderr kept for [`stop`].
pub fn serve(
    bin: &Path,
    fake: &slack_sim::FakeSlack,
    db_url: &str,
    config: &Path,
) -> std::process::Child {
    serve_command(bin, fake, db_url, config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve")
}

/// The configuration the multi-process scenarios share (replicas, rolling upgrade): batches of
/// two every second, working hours off, short loops and leases. Written to `dir`.
pub fn replica_config(dir: &Path) -> PathBuf {
    let config = dir.join("staffbot.toml");
    std::fs::write(
        &config,
        "[staffbot]\nworker_batch_size = 2\nbatch_frequency = \"1s\"\nworking_hours_enforced = false\n[loops]\ntick_interval = \"200ms\"\nlease_ttl = \"2s\"\n",
    )
    .expect("config");
    config
}

/// Sends `signal` (`TERM`, `KILL`) to `child` and returns its stderr once it has exited.
pub async fn stop(child: std::process::Child, signal: &str) -> String {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stderr).into_owned()
    })
    .await
    .expect("join")
}

/// Waits until `done` holds for `fake`, woken by each Web API call (or every half second);
/// fails after 40 s with `what` and every call made.
pub async fn wait_until(
    fake: &slack_sim::FakeSlack,
    what: &str,
    mut done: impl FnMut(&slack_sim::FakeSlack) -> bool,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
    while !done(fake) {
        if tokio::time::Instant::now() >= deadline {
            let calls: Vec<String> = fake
                .calls()
                .iter()
                .map(|c| {
                    let body: String = c.body.to_string().chars().take(200).collect();
                    format!("{} {} {body}", c.status, c.method)
                })
                .collect();
            panic!(
                "timed out waiting for {what}; Web API calls:\n{}",
                calls.join("\n")
            );
        }
        let n = fake.calls().len();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            while fake.calls().len() == n {
                fake.wait_for_calls(
                    "chat.postMessage",
                    fake.calls_to("chat.postMessage").len() + 1,
                    std::time::Duration::from_millis(100),
                )
                .await;
            }
        })
        .await;
    }
}
