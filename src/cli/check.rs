//! `staffbot check`: configuration, database and Slack settings, without printing secrets.

use migrations::Migrator;
use migrations::sea_orm_migration::{MigrationStatus, MigratorTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::config::{Config, format_duration};
use crate::db::entities::project;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let mut problems = 0;
    println!("database: {}", config.database_url.redacted());
    match crate::db::connect(config.database_url.expose()).await {
        Ok(db) => {
            let migrations = Migrator::get_migration_with_status_read_only(&db).await?;
            let pending = migrations
                .iter()
                .filter(|m| m.status() == MigrationStatus::Pending)
                .count();
            println!(
                "  reachable; {} migration(s), {pending} pending{}",
                migrations.len(),
                if pending > 0 {
                    " (applied by serve and every admin command)"
                } else {
                    ""
                }
            );
            if pending < migrations.len() {
                let without_channel = project::Entity::find()
                    .filter(project::Column::SlackChannelId.is_null())
                    .filter(project::Column::Status.is_in(["active", "paused"]))
                    .all(&db)
                    .await?;
                for p in without_channel {
                    println!(
                        "  note: project {} ({}) has no Slack channel: no channel posts or invites",
                        p.id, p.short_description
                    );
                }
            }
        }
        Err(e) => {
            problems += 1;
            println!("  NOT reachable: {e}");
        }
    }
    println!("slack api: {}", config.slack.api_url);
    for (name, set) in [
        ("SLACK_BOT_TOKEN", config.slack.bot_token.is_some()),
        ("SLACK_APP_TOKEN", config.slack.app_token.is_some()),
    ] {
        if set {
            println!("  {name}: set");
        } else {
            problems += 1;
            println!("  {name}: NOT set (required by serve)");
        }
    }
    println!(
        "  verification token: {}",
        if config.slack.verification_token.is_some() {
            "set (checked)"
        } else {
            "not set (not checked)"
        }
    );
    println!(
        "staffing: batches of {} every {}; warnings to {} after {}; reminders every {}",
        config.staffbot.worker_batch_size,
        format_duration(config.staffbot.batch_frequency),
        config
            .staffbot
            .staffing_group_id
            .as_deref()
            .unwrap_or("(nobody: staffing_group_id unset)"),
        format_duration(config.staffbot.staffing_min_time),
        format_duration(config.staffbot.reminder_interval),
    );
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    println!("ok");
    Ok(())
}
