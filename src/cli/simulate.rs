//! `staffbot simulate`: staffing outcomes of a population of workers, measured on staffbot's
//! own engine in simulated time ([`crate::simulate`]).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::config::Config;
use crate::simulate::population::Population;
use crate::simulate::{POLICIES, PolicyReport, Report, Settings, run_policy};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The population file (TOML: [simulation], [[tasks]], [[workers]]; README "Staffing policy")
    #[arg(long, value_name = "FILE")]
    pub population: PathBuf,
    /// The policies to compare, comma-separated, each run on the same workers and arrivals
    #[arg(
        long,
        value_name = "NAMES",
        default_value = "orchestra",
        value_delimiter = ','
    )]
    pub policy: Vec<String>,
    /// Simulated days (default: the file's [simulation] days)
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// Seed of every random draw (default: the file's [simulation] seed)
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Print one JSON object per policy instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also write a markdown report with its plots (SVG) into this directory
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// The database to simulate on (default: a fresh SQLite file per policy in the temporary
    /// directory); a PostgreSQL database given here must be one of its own: it is emptied
    /// before each policy
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

pub async fn run(config: &Config, args: SimulateArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.population).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the population {}: {e}",
            args.population.display()
        )
    })?;
    let population = Population::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.population.display()))?;
    if let Some(unknown) = args.policy.iter().find(|p| !POLICIES.contains(&p.as_str())) {
        anyhow::bail!(
            "unknown policy {unknown:?}; the policies are: {}",
            POLICIES.join(", ")
        );
    }
    let settings = Settings {
        batch: crate::staffing::batch::BatchSettings {
            email: false,
            ..crate::staffing::batch::BatchSettings::of(config)
        },
        reminder_interval: config.staffbot.reminder_interval,
        days: args.days,
        seed: args.seed,
        adaptive: config.staffbot.adaptive,
    };
    let started = Instant::now();
    let scratch = tempfile_dir()?;
    let mut policies = Vec::new();
    for (i, policy) in args.policy.iter().enumerate() {
        eprintln!("simulating {policy} ({}/{})…", i + 1, args.policy.len());
        let url = match &args.database {
            Some(url) => {
                crate::db::reset_for_simulation(url).await?;
                url.clone()
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                scratch.join(format!("{policy}-{i}.db")).display()
            ),
        };
        let run = run_policy(&population, policy, &settings, &url).await?;
        policies.push((policy.clone(), PolicyReport::of(&run)));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let report = Report {
        population: args.population.display().to_string(),
        days: args.days.unwrap_or(population.simulation.days),
        seed: args.seed.unwrap_or(population.simulation.seed),
        workers: population.workers.iter().map(|w| w.count as usize).sum(),
        policies,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    if let Some(dir) = &args.report {
        report.write(dir)?;
        eprintln!("report written to {}", dir.join("report.md").display());
    }
    if args.json {
        super::print_json(&report.json())
    } else {
        outln!("{}", report.table().trim_end());
        Ok(())
    }
}

/// A fresh directory of this run's own for the SQLite files.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "staffbot-simulate-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
