//! The staffbot benchmark (issue 6). Not part of the test suite.
//!
//! ```sh
//! cargo run --release -p staffbot-bench -- [--sizes 50x20,1000x200] [--backend sqlite|postgres|both]
//!     [--out docs/bench-results.jsonl] [--markdown docs/benchmarks.md] [--skip-socket] [--duration 30s]
//!     [--soak 10m [--soak-rate 50] [--soak-backend postgres] [--soak-only]]
//! ```
//!
//! For each backend and size: build the data ([`data`]), then time the phases ([`phases`]) with
//! their SQL statements and peak RSS; then the Socket Mode phases ([`socket`], and
//! `ack_scripted`, [`scripted`]) against the real `staffbot serve`; with `--soak`, the soak phase
//! ([`soak`], plotted by [`plot`]). Results go to JSON lines and `docs/benchmarks.md`
//! ([`report`]).

mod data;
mod phases;
mod plot;
mod report;
mod sanity;
mod scripted;
mod soak;
mod socket;
mod sys;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use sea_orm::ConnectionTrait;

use crate::phases::Counted;
use crate::report::{JsonLines, MarkdownInput, Record};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    workers: usize,
    requests: usize,
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        let (w, t) = s
            .split_once('x')
            .ok_or_else(|| format!("a size is WxT, e.g. 1000x200: {s:?}"))?;
        let parse = |v: &str| {
            v.replace('_', "")
                .parse::<usize>()
                .map_err(|e| format!("{v:?}: {e}"))
        };
        let size = Size {
            workers: parse(w)?,
            requests: parse(t)?,
        };
        if size.workers < 25 || size.requests < 4 {
            return Err(format!("{s}: at least 25 workers and 4 requests"));
        }
        Ok(size)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Parser)]
#[command(name = "bench", about = "staffbot's benchmark (issue 6)")]
struct Args {
    /// Sizes as WORKERSxREQUESTS, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50x20,200x100,1000x200,10000x2000,100000x10000"
    )]
    sizes: Vec<Size>,
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendChoice,
    /// PostgreSQL server (trust auth); a database is created and dropped per run.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
    /// Prefix of the PostgreSQL databases the benchmark creates (then `_<pid>_<micros>`).
    #[arg(long, default_value = "staffbot_bench")]
    pg_db_prefix: String,
    /// Keep each database after its run (to profile its queries); prints its name or path.
    #[arg(long)]
    keep_db: bool,
    /// JSON lines output (default: docs/bench-results.jsonl in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Markdown report (default: docs/benchmarks.md in the workspace).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Leave the markdown report alone.
    #[arg(long)]
    no_markdown: bool,
    /// Skip the Socket Mode phases.
    #[arg(long)]
    skip_socket: bool,
    /// Length of the steady envelope stream.
    #[arg(long, default_value = "30s", value_parser = staffbot::config::parse_duration)]
    duration: Duration,
    /// Envelopes per second in the stream.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// A staffing tick taking longer than this is stopped and reported with an estimate.
    #[arg(long, default_value = "60s", value_parser = staffbot::config::parse_duration)]
    tick_timeout: Duration,
    /// Operations per click/`staff` phase (medians are over these).
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Projects in the SanityBot phase (a script check over every one); 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    sanity_projects: usize,
    /// Run the SanityBot phase only (no staffing sizes, no socket phases).
    #[arg(long)]
    sanity_only: bool,
    /// The `staffbot` binary for the socket phases (default: beside this one, rebuilt first
    /// when run through cargo).
    #[arg(long)]
    staffbot_bin: Option<PathBuf>,
    /// Run the soak phase for this long: a release daemon under a steady mixed stream through
    /// the fake Slack, memory and table sizes sampled every 10 s (issue 14 asks for `10m`).
    #[arg(long, value_parser = staffbot::config::parse_duration)]
    soak: Option<Duration>,
    /// Envelopes per second in the soak.
    #[arg(long, default_value_t = 50)]
    soak_rate: u32,
    /// The backend(s) of the soak.
    #[arg(long, value_enum, default_value = "postgres")]
    soak_backend: BackendChoice,
    /// Run the soak phase only (needs `--soak`).
    #[arg(long, requires = "soak")]
    soak_only: bool,
    /// The soak's plot (default: docs/soak.svg in the workspace).
    #[arg(long)]
    soak_plot: Option<PathBuf>,
}

fn backend_names(choice: BackendChoice) -> &'static [&'static str] {
    match choice {
        BackendChoice::Sqlite => &["sqlite"],
        BackendChoice::Postgres => &["postgres"],
        BackendChoice::Both => &["sqlite", "postgres"],
    }
}

/// A fresh database for one run.
enum FreshDb {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        admin_url: String,
        name: String,
    },
}

impl FreshDb {
    async fn create(backend: &str, pg_url: &str, prefix: &str) -> Result<FreshDb> {
        if backend == "sqlite" {
            let dir = tempfile::tempdir()?;
            let url = data::sqlite_url(&dir.path().join("staffbot.db"));
            return Ok(FreshDb::Sqlite { url, _dir: dir });
        }
        let base = pg_url.trim_end_matches('/');
        let admin_url = format!("{base}/postgres");
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("--pg-db-prefix: lowercase letters, digits and `_` only: {prefix:?}");
        }
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let admin = staffbot::db::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating the database {name} on {base}"))?;
        admin.close().await?;
        Ok(FreshDb::Postgres {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    fn url(&self) -> &str {
        match self {
            FreshDb::Sqlite { url, .. } | FreshDb::Postgres { url, .. } => url,
        }
    }

    async fn drop_it(self, keep: bool) -> Result<()> {
        if let FreshDb::Postgres { name, .. } = &self
            && keep
        {
            eprintln!("kept the database {name}");
            return Ok(());
        }
        if let FreshDb::Sqlite { _dir: dir, .. } = self {
            if keep {
                eprintln!(
                    "kept the database {}",
                    dir.keep().join("staffbot.db").display()
                );
            }
            return Ok(());
        }
        if let FreshDb::Postgres {
            admin_url, name, ..
        } = self
        {
            let admin = staffbot::db::connect(&admin_url).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}

fn spare_tasks(samples: usize) -> usize {
    samples.max(1)
}

async fn run_size(args: &Args, backend: &str, size: Size, out: &mut JsonLines) -> Result<()> {
    let shape = data::Shape {
        workers: size.workers,
        requests: size.requests,
        spare_tasks: spare_tasks(args.samples),
    };
    let quiet = size.workers < 10_000;
    let push = |out: &mut JsonLines, phase: &phases::Phase| {
        out.push(report::from_phase(
            backend,
            size.workers,
            size.requests,
            phase,
        ))
    };
    for batch in [5u32, 20] {
        eprintln!(
            "{backend} W={} T={} B={batch}: building",
            size.workers, size.requests
        );
        let fresh = FreshDb::create(backend, &args.pg_url, &args.pg_db_prefix).await?;
        let c = Counted::connect(fresh.url()).await?;
        let (built, build) = phases::build(&c, shape, quiet).await?;
        if batch == 5 {
            push(out, &build)?;
        }
        eprintln!(
            "{backend} W={} T={} B={batch}: tick",
            size.workers, size.requests
        );
        let name = if batch == 5 { "tick_b5" } else { "tick_b20" };
        let tick = phases::tick(&c, batch, size.requests, args.tick_timeout, name).await?;
        push(out, &tick)?;
        if batch == 5 {
            for phase in phases::after_tick(&c, &built, args.samples).await? {
                push(out, &phase)?;
            }
        }
        c.db.close().await?;
        fresh.drop_it(args.keep_db).await?;
    }
    // The same round with an availability row for every worker and a step with hours:
    // auto-staffing is looked at before the offers (its tasks take 3 h, more than the 2 h a
    // day anyone may be auto-staffed, so the offers go out as above).
    eprintln!(
        "{backend} W={} T={} B=5: building, with availability",
        size.workers, size.requests
    );
    let fresh = FreshDb::create(backend, &args.pg_url, &args.pg_db_prefix).await?;
    let c = Counted::connect(fresh.url()).await?;
    phases::build(&c, shape, quiet).await?;
    data::add_availability(&c.db, phases::tick_time()).await?;
    eprintln!(
        "{backend} W={} T={} B=5: tick, with availability",
        size.workers, size.requests
    );
    let tick = phases::tick(&c, 5, size.requests, args.tick_timeout, "tick_b5_available").await?;
    push(out, &tick)?;
    c.db.close().await?;
    fresh.drop_it(args.keep_db).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let started = std::time::Instant::now();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    // The profile this binary was built with (`target/<profile>/bench`), for the command shown.
    let profile = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.file_name()?.to_str()?.to_string()))
        .filter(|p| p != "debug")
        .map(|p| format!(" --profile {p}"))
        .unwrap_or_default();
    let command = std::iter::once(format!("cargo run{profile} -p staffbot-bench --"))
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(WORKSPACE).join("docs/bench-results.jsonl"));
    let md_path = args
        .markdown
        .clone()
        .unwrap_or_else(|| PathBuf::from(WORKSPACE).join("docs/benchmarks.md"));
    let only = args.sanity_only || args.soak_only;
    let binary = if (args.skip_socket || only) && args.soak.is_none() {
        None
    } else {
        Some(socket::locate_binary(args.staffbot_bin.clone())?)
    };

    if !only {
        eprintln!("checking the bulk data builder against staffbot's own functions");
        data::verify_against_library().await?;
    }

    let mut out = JsonLines::create(&out_path)?;
    let backends = backend_names(args.backend);
    for backend in backends.iter().filter(|_| !only) {
        for size in &args.sizes {
            run_size(&args, backend, *size, &mut out).await?;
        }
    }
    if args.sanity_projects > 0 && !args.soak_only {
        for backend in backends {
            eprintln!(
                "{backend}: SanityBot over {} projects",
                args.sanity_projects
            );
            let fresh = FreshDb::create(backend, &args.pg_url, &args.pg_db_prefix).await?;
            let c = Counted::connect(fresh.url()).await?;
            for phase in sanity::run(&c, Path::new(WORKSPACE), args.sanity_projects).await? {
                let mut record = report::from_phase(backend, 0, 0, &phase);
                record.workers = None;
                record.requests = None;
                out.push(record)?;
            }
            c.db.close().await?;
            fresh.drop_it(args.keep_db).await?;
        }
    }
    if let Some(binary) = binary.clone().filter(|_| !args.skip_socket && !only) {
        let options = socket::Options {
            binary,
            duration: args.duration,
            rate: args.rate,
        };
        for backend in backends {
            eprintln!("{backend}: socket phases with {}", options.binary.display());
            let fresh = FreshDb::create(backend, &args.pg_url, &args.pg_db_prefix).await?;
            let records = socket::run(&options, backend, fresh.url()).await?;
            fresh.drop_it(args.keep_db).await?;
            for r in records {
                out.push(r)?;
            }
            eprintln!("{backend}: ack_scripted (description scripts at their wall time)");
            let fresh = FreshDb::create(backend, &args.pg_url, &args.pg_db_prefix).await?;
            let record = scripted::run(&options.binary, backend, fresh.url()).await?;
            fresh.drop_it(args.keep_db).await?;
            out.push(record)?;
        }
    }
    if let (Some(duration), Some(binary)) = (args.soak, binary) {
        let options = soak::Options {
            binary,
            duration,
            rate: args.soak_rate,
            plot: args
                .soak_plot
                .clone()
                .unwrap_or_else(|| PathBuf::from(WORKSPACE).join("docs/soak.svg")),
        };
        for backend in backend_names(args.soak_backend) {
            eprintln!("{backend}: soak for {duration:?} at {}/s", args.soak_rate);
            let fresh = FreshDb::create(backend, &args.pg_url, &args.pg_db_prefix).await?;
            let records = soak::run(&options, backend, fresh.url()).await?;
            fresh.drop_it(args.keep_db).await?;
            for r in records {
                out.push(r)?;
            }
        }
    }
    if out.records.is_empty() {
        bail!("nothing was measured");
    }
    let records: Vec<Record> = out.records.clone();
    if !args.no_markdown {
        let jsonl = out_path
            .strip_prefix(WORKSPACE)
            .unwrap_or(&out_path)
            .display()
            .to_string();
        report::write_markdown(
            &md_path,
            &MarkdownInput {
                records: &records,
                machine: &sys::machine(),
                command: &command,
                date: &date,
                jsonl: &jsonl,
                tick_timeout_s: args.tick_timeout.as_secs_f64(),
            },
        )?;
        eprintln!("wrote {}", md_path.display());
    }
    eprintln!("\ntargets:");
    for line in report::target_lines(&records) {
        eprintln!("  {line}");
    }
    eprintln!(
        "done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        out_path.display()
    );
    Ok(())
}
