//! `staffbot demo`: the whole product with no Slack account. A simulated Slack workspace
//! (`slack-sim`, the same simulator the tests use) runs on loopback; staffbot's daemon runs
//! against it in this process exactly as `serve` runs against Slack (Socket Mode, the Web API,
//! the outbox sender, the loops; only the API URL and the seed data differ), and the
//! simulator's web page shows the workspace to a person in a browser.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use slack_sim::{FakeSlack, FakeSlackConfig};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, NoticeSettings, SecretUrl};
use crate::daemon::{Daemon, StartError};
use crate::db::{self, Role, workflows};
use crate::workers::{self, Certify, NewWorker};
use crate::workflow::definition;
use crate::workflow::load;
use crate::workflow::rules::SubmitKind;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the simulated workspace's web page (and its Slack API) listens; port 0 = any
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Database to use (default: a fresh SQLite file in the temporary directory); one the
    /// demo seeded before is used as it is
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

const WORKFLOW_JSON: &str = include_str!("../../examples/newsroom/workflow.json");
const VERSION_JSON: &str = include_str!("../../examples/newsroom/v1/version.json");

/// The demo's staffing admin.
pub const ADMIN: (&str, &str) = ("ada", "U0ADA");
/// The staffing channel (warnings, undeliverable offers).
const STAFFING: (&str, &str) = ("C0STAFF", "staffing");

/// A certification held: its slug, the role, the staffing priority.
type Held = (&'static str, Role, i32);

/// Workers: username, Slack id, certifications.
const WORKERS: &[(&str, &str, &[Held])] = &[
    ("ed", "U0ED", &[("editor", Role::EntryLevel, 2)]),
    ("eve", "U0EVE", &[("editor", Role::EntryLevel, 1)]),
    ("rae", "U0RAE", &[("reporter", Role::EntryLevel, 2)]),
    ("rob", "U0ROB", &[("reporter", Role::EntryLevel, 1)]),
    ("ron", "U0RON", &[("reporter", Role::EntryLevel, 0)]),
    (
        "rita",
        "U0RITA",
        &[
            ("reporter", Role::EntryLevel, 0),
            ("reporter", Role::Reviewer, 2),
        ],
    ),
    ("pat", "U0PAT", &[("photographer", Role::EntryLevel, 1)]),
    ("pia", "U0PIA", &[("photographer", Role::EntryLevel, 1)]),
    (
        "sam",
        "U0SAM",
        &[
            ("photographer", Role::EntryLevel, 0),
            ("reporter", Role::EntryLevel, 0),
        ],
    ),
    (
        "cole",
        "U0COLE",
        &[
            ("reporter", Role::EntryLevel, 0),
            ("copy_editor", Role::EntryLevel, 1),
        ],
    ),
    (
        "cora",
        "U0CORA",
        &[
            ("reporter", Role::EntryLevel, 0),
            ("copy_editor", Role::EntryLevel, 0),
        ],
    ),
    ("max", "U0MAX", &[("editor", Role::EntryLevel, 0)]),
];

/// Projects: description, priority, channel id, channel name.
const PROJECTS: &[(&str, i32, &str, &str)] = &[
    ("Mayor race", 1, "C0MAYOR", "proj-mayor-race"),
    ("City budget", 0, "C0BUDGET", "proj-city-budget"),
];

/// What the seed left for the guided tour.
struct Seeded {
    /// The first project's photography task: waiting, nobody asked yet.
    photography_task: Option<i64>,
}

pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    });
    // The page's address first: a busy port is said before anything is written.
    let sim_config = FakeSlackConfig {
        bot_token: "xoxb-staffbot-demo".into(),
        app_token: "xapp-staffbot-demo".into(),
        ..FakeSlackConfig::default()
    };
    let sim = FakeSlack::start_on(sim_config.clone(), args.listen)
        .await
        .map_err(|e| listen_error(args.listen, &e))?;
    // The demo's own database file goes when the demo ends (dropped after `db`).
    let (url, own_file) = match &args.database {
        Some(url) => (url.clone(), None),
        None => {
            let path = fresh_sqlite_path();
            (
                format!("sqlite://{}?mode=rwc", path.display()),
                Some(OwnFile(path)),
            )
        }
    };
    let db = db::connect_and_migrate(&url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let seeded = seed(&db, &config.notices(), clock.now()).await?;
    workspace(&sim, &db).await?;
    demo_config(&mut config, &sim, &sim_config, &url);

    let daemon = match Daemon::start(&config, db, clock, cancel.clone()).await {
        Ok(d) => d,
        Err(StartError::Cancelled) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let page = format!("http://{}/?user={}", sim.addr(), ADMIN.1);
    outln!("staffbot demo is running: open {page}");
    outln!(
        "  You are {} (a staffing admin); switch users at the top left.",
        ADMIN.0
    );
    if let Some(task) = seeded.photography_task {
        outln!(
            "  Try, in #{}: /staffbot staff {task}   then switch to pat and click Accept.",
            PROJECTS[0].3
        );
    }
    outln!(
        "  Database: {}{}",
        crate::config::redact_url(&url),
        if own_file.is_some() {
            " (removed when the demo stops; --database keeps one)"
        } else {
            ""
        }
    );
    outln!("  Press Ctrl-C to stop.");
    daemon.join().await;
    Ok(())
}

/// A new SQLite file's path in the temporary directory.
fn fresh_sqlite_path() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("staffbot-demo-{}-{stamp}.db", std::process::id()))
}

/// The demo's own SQLite file: removed, with its write-ahead log and shared memory, when the
/// demo ends (a `--database` given is left alone).
struct OwnFile(PathBuf);

impl Drop for OwnFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Why the page's address cannot be used, with what to do when another process has it.
fn listen_error(addr: SocketAddr, e: &std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        anyhow::anyhow!(
            "cannot listen on {addr}: the address is in use (another staffbot demo?); choose another with --listen, e.g. --listen 127.0.0.1:0 for any free port"
        )
    } else {
        anyhow::anyhow!("cannot listen on {addr}: {e}")
    }
}

/// The daemon's settings for the demo: `serve`'s, pointed at the simulator, with short loops.
fn demo_config(config: &mut Config, sim: &FakeSlack, sim_config: &FakeSlackConfig, url: &str) {
    config.database_url = SecretUrl::new(url);
    config.slack.api_url = sim.api_url();
    config.slack.bot_token = Some(SecretString::from(sim_config.bot_token.clone()));
    config.slack.app_token = Some(SecretString::from(sim_config.app_token.clone()));
    config.slack.verification_token = None;
    config.slack.socket_connections = 2;
    config.loops.tick_interval = Duration::from_secs(2);
    config.staffbot.batch_frequency = Duration::from_secs(60);
    config.staffbot.staffing_min_time = Duration::from_secs(600);
    config.staffbot.reminder_interval = Duration::from_secs(3600);
    config.staffbot.staffing_group_id = Some(STAFFING.0.to_string());
    config.sanitybot.interval = Duration::from_secs(60);
    config.metrics.listen = None;
    // The demo's people answer at any hour, wherever the visitor is.
    config.staffbot.working_hours_enforced = false;
}

/// The simulated workspace: a Slack user per worker, the projects' private channels and the
/// staffing channel (the admin is in all of them).
async fn workspace(sim: &FakeSlack, db: &DatabaseConnection) -> anyhow::Result<()> {
    for w in db::workers::all_by_username(db).await? {
        if let Some(id) = &w.slack_user_id {
            sim.add_user(id, &w.username);
        }
    }
    sim.add_channel(STAFFING.0, STAFFING.1, &[ADMIN.1]);
    for p in db::projects::all_by_id(db).await? {
        if let Some(channel) = &p.slack_channel_id {
            let name = PROJECTS
                .iter()
                .find(|(_, _, id, _)| id == channel)
                .map_or(channel.as_str(), |(_, _, _, name)| name);
            sim.add_channel(channel, name, &[ADMIN.1]);
        }
    }
    Ok(())
}

/// Loads the example workflow, adds the admin and the workers, and creates the projects; the
/// first project's planning is done already (its photography task waits for `/staffbot staff`).
/// A database seeded before is left as it is.
async fn seed(
    db: &DatabaseConnection,
    notices: &NoticeSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Seeded> {
    if !workflows::all(db).await?.is_empty() {
        return Ok(Seeded {
            photography_task: None,
        });
    }
    let dir = write_example()?;
    let def = definition::read(&dir.join("newsroom"))?;
    let tx = db::begin_write(db).await?;
    load::store(&tx, &def, false, now)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the example workflow: {e:?}"))?;
    let admin = NewWorker {
        username: ADMIN.0.into(),
        first_name: "Ada".into(),
        slack_user_id: Some(ADMIN.1.into()),
        is_admin: true,
        ..Default::default()
    };
    workers::add(&tx, admin, now).await?;
    for (name, slack_id, certs) in WORKERS {
        let new = NewWorker {
            username: name.to_string(),
            first_name: capitalised(name),
            slack_user_id: Some(slack_id.to_string()),
            ..Default::default()
        };
        let worker = workers::add(&tx, new, now).await?;
        for (cert, role, priority) in *certs {
            let c = workers::find_certification(&tx, cert, Some("newsroom")).await?;
            let how = Certify {
                role: *role,
                staffing_priority: *priority,
                staffbot_enabled: true,
            };
            workers::certify(&tx, &worker, &c, how, now).await?;
        }
    }
    let wf = workflows::by_slug(&tx, "newsroom")
        .await?
        .context("the example workflow was loaded")?;
    let version = workflows::newest_version(&tx, wf.id, None)
        .await?
        .context("the example workflow has a version")?;
    let mut first = None;
    for (description, priority, channel, _) in PROJECTS {
        let id = crate::lifecycle::create_project(
            &tx,
            &version,
            description,
            *priority,
            Some(channel.to_string()),
            notices,
            now,
        )
        .await?;
        first.get_or_insert(id);
    }
    let photography_task = match first {
        Some(project) => Some(plan_first_project(&tx, project, notices, now).await?),
        None => None,
    };
    tx.commit().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Seeded { photography_task })
}

/// The first project's planning, done by `ed`: its reporting is then being staffed (its policy
/// staffs it by itself) and its photography waits for someone to staff it.
async fn plan_first_project<C: sea_orm::ConnectionTrait>(
    conn: &C,
    project: i64,
    notices: &NoticeSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<i64> {
    let tasks = db::tasks::of_project(conn, project).await?;
    let planning = tasks.first().context("the project's first task")?;
    let ed = db::workers::by_username(conn, "ed")
        .await?
        .context("ed was added")?;
    crate::lifecycle::assign_task(conn, planning.id, &ed, notices, now).await?;
    let mut rng = crate::clock::rng_for(Some(1));
    crate::lifecycle::submit(
        conn,
        planning.id,
        &ed,
        SubmitKind::RequestedReview,
        notices,
        now,
        &mut rng,
    )
    .await?;
    let tasks = db::tasks::of_project(conn, project).await?;
    let steps = workflows::steps_by_ids(conn, tasks.iter().map(|t| t.step_id)).await?;
    let photography = tasks
        .into_iter()
        .find(|t| {
            steps
                .iter()
                .any(|s| s.id == t.step_id && s.slug == "photography")
        })
        .context("the photography task was created")?;
    Ok(photography.id)
}

/// Writes the example workflow (built into the binary) to a temporary directory.
fn write_example() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("staffbot-demo-workflow-{}", std::process::id()));
    write(&dir.join("newsroom/workflow.json"), WORKFLOW_JSON)?;
    write(&dir.join("newsroom/v1/version.json"), VERSION_JSON)?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
