//! `staffbot migrate [up|down|status]`.

use clap::{Args, ValueEnum};
use migrations::Migrator;
use migrations::sea_orm_migration::MigratorTrait;

use crate::config::Config;
use crate::db::schema;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// up: apply pending migrations; down: roll back; status: list them
    #[arg(value_enum, default_value_t = Direction::Up)]
    direction: Direction,
    /// With `down`: how many migrations to roll back (`--steps 0` rolls back all)
    #[arg(long, default_value_t = 1)]
    steps: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Direction {
    Up,
    Down,
    Status,
}

pub async fn run(config: &Config, args: MigrateArgs) -> anyhow::Result<()> {
    let db = crate::db::connect(config.database_url.expose()).await?;
    match args.direction {
        Direction::Up => {
            let state = schema::state(&db).await?;
            let pending = state.pending().count();
            schema::apply(&db).await?;
            outln!("applied {pending} migration(s)");
            if !state.newer.is_empty() {
                outln!(
                    "the database also has {} migration(s) of a newer release, which this release runs beside",
                    state.newer.len()
                );
            }
        }
        Direction::Down => {
            let state = schema::state(&db).await?;
            if !state.newer.is_empty() {
                anyhow::bail!(
                    "the database has a newer release's migrations ({}): roll them back with that release's binary first",
                    state.newer.join(", ")
                );
            }
            let steps = (args.steps > 0).then_some(args.steps);
            let applied = Migrator::get_applied_migrations(&db).await?.len();
            Migrator::down(&db, steps).await?;
            let rolled = steps.map_or(applied, |s| (s as usize).min(applied));
            outln!("rolled back {rolled} migration(s)");
        }
        Direction::Status => {
            let state = schema::state(&db).await?;
            for (name, applied) in &state.known {
                let status = if *applied { "applied" } else { "pending" };
                outln!("{status}  {name}");
            }
            for name in &state.newer {
                outln!("applied  {name}  (a newer release's)");
            }
            for name in &state.foreign {
                outln!("applied  {name}  (unknown to this release)");
            }
        }
    }
    Ok(())
}
