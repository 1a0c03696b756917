//! The `staffbot` command line (design.md §5.1): one module per subcommand group. Results go to
//! stdout, logs and errors to stderr; errors are one line and a non-zero exit code.

/// `println!` for command results: a reader that went away (`staffbot task list | head -1`) is
/// not an error, so a closed stdout is ignored instead of panicking ([`write_out`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod check;
mod demo;
mod migrate;
mod project;
mod sanity;
mod serve;
mod simulate;
mod staff;
mod task;
mod tick;
mod worker;
mod workflow;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rand::rngs::StdRng;
use sea_orm::DatabaseConnection;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "staffbot",
    version,
    about = "Staff Orchestra-style workflows through Slack: StaffBot and SanityBot in one daemon",
    long_about = None
)]
pub struct Cli {
    /// Configuration file (default: $STAFFBOT_CONFIG, else ./staffbot.toml if it exists)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (applies pending migrations first)
    Serve,
    /// Apply, roll back or list database migrations
    Migrate(migrate::MigrateArgs),
    /// Check the configuration, the database and the Slack tokens
    Check,
    /// Load and list workflow definitions (Orchestra's workflow.json + vN/version.json); render descriptions
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// Add, certify and list workers
    #[command(subcommand)]
    Worker(worker::WorkerCommand),
    /// Create, list and abort projects
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// List tasks and move them through their lifecycle
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Start staffing a task (same as `/staffbot staff <task>`)
    Staff(staff::StaffArgs),
    /// Offer a task to someone else (same as `/staffbot restaff <task> <username>`)
    Restaff(staff::RestaffArgs),
    /// Run the periodic loops once now and deliver what is due (cron-friendly; safe beside serve)
    Tick(tick::TickArgs),
    /// Try staffbot with no Slack account: a simulated workspace in your browser, the real daemon
    Demo(demo::DemoArgs),
    /// Run SanityBot's checks for one project now, or see what they would do (--dry-run)
    #[command(subcommand)]
    Sanity(sanity::SanityCommand),
    /// Measure staffing outcomes for a population of workers on the real engine, in simulated time
    Simulate(simulate::SimulateArgs),
}

/// What every command gets: configuration, a migrated database, the clock, and randomness.
pub struct App {
    pub config: Config,
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
}

impl App {
    pub fn rng(&self) -> StdRng {
        crate::clock::rng_for(self.config.staffbot.random_seed)
    }
}

/// Runs a parsed command line. Errors are returned for `main` to print.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        // Commands that must not apply migrations on their own.
        Command::Migrate(args) => migrate::run(&config, args).await,
        Command::Check => check::run(&config).await,
        // Its own database and its own Slack.
        Command::Demo(args) => demo::run(config, args).await,
        // Its own databases, one per policy.
        Command::Simulate(args) => simulate::run(&config, args).await,
        command => {
            let db = crate::db::connect_and_migrate(config.database_url.expose()).await?;
            let app = App {
                config,
                db,
                clock: Arc::new(SystemClock),
            };
            match command {
                Command::Serve => serve::run(&app).await,
                Command::Workflow(c) => workflow::run(&app, c).await,
                Command::Worker(c) => worker::run(&app, c).await,
                Command::Project(c) => project::run(&app, c).await,
                Command::Task(c) => task::run(&app, c).await,
                Command::Staff(a) => staff::run_staff(&app, a).await,
                Command::Restaff(a) => staff::run_restaff(&app, a).await,
                Command::Tick(a) => tick::run(&app, a).await,
                Command::Sanity(c) => sanity::run(&app, c).await,
                Command::Migrate(_) | Command::Check | Command::Demo(_) | Command::Simulate(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// Whether stdout could not be written once already (said once on stderr, then quiet).
static STDOUT_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line of a command's result to stdout. When the reader has gone (a broken pipe, as
/// with `| head -1`) the rest of the output is dropped quietly and the command finishes, as
/// command-line tools do; any other write error is said once on stderr.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
        && !STDOUT_FAILED.swap(true, Ordering::Relaxed)
    {
        eprintln!("error: cannot write to stdout: {e}");
    }
}

/// Reads a JSON option's value: JSON text, `@file`, or `@-` (stdin). `what` names it in
/// errors ("the output"), `option` too ("--output").
pub fn read_json_arg(arg: &str, option: &str, what: &str) -> anyhow::Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin())
            .map_err(|e| anyhow::anyhow!("cannot read {what} from stdin: {e}"))?,
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {what} from {path}: {e}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{option} is not valid JSON: {e}"))
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as an aligned text table (header first).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string()
    };
    outln!("{}", line(header.to_vec()));
    for row in rows {
        outln!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn roles_are_spelled_as_stored_and_the_old_spelling_still_works() {
        for role in ["entry_level", "entry-level", "reviewer"] {
            let parsed = Cli::try_parse_from([
                "staffbot", "worker", "certify", "rae", "reporter", "--role", role,
            ]);
            assert!(parsed.is_ok(), "--role {role}: {parsed:?}");
        }
        let help = Cli::try_parse_from(["staffbot", "worker", "certify", "--help"])
            .expect_err("help")
            .to_string();
        assert!(help.contains("entry_level, reviewer"), "{help}");
    }
}
