//! `staffbot migrate [up|down|status]`.

use clap::{Args, ValueEnum};
use migrations::Migrator;
use migrations::sea_orm_migration::{MigrationStatus, MigratorTrait};

use crate::config::Config;

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
            let pending = Migrator::get_pending_migrations(&db).await?.len();
            Migrator::up(&db, None).await?;
            outln!("applied {pending} migration(s)");
        }
        Direction::Down => {
            let steps = (args.steps > 0).then_some(args.steps);
            let applied = Migrator::get_applied_migrations(&db).await?.len();
            Migrator::down(&db, steps).await?;
            let rolled = steps.map_or(applied, |s| (s as usize).min(applied));
            outln!("rolled back {rolled} migration(s)");
        }
        Direction::Status => {
            for m in Migrator::get_migration_with_status_read_only(&db).await? {
                let status = match m.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                outln!("{status}  {}", m.name());
            }
        }
    }
    Ok(())
}
