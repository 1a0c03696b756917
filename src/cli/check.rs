//! `staffbot check`: configuration, database, both Slack tokens, the staffing channel, and email
//! (SMTP and IMAP logins) when it is configured. Prints
//! a short report and never a secret; exits non-zero when something needs fixing.

use migrations::Migrator;
use migrations::sea_orm_migration::{MigrationStatus, MigratorTrait};
use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackApiToken;

use crate::config::{Config, format_duration};
use crate::db::ProjectStatus;
use crate::slack::web;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let mut problems = check_database(config).await?;
    problems += check_slack(config).await?;
    problems += check_email(config).await;
    println!(
        "staffing: batches of {} every {}; warnings after {}; reminders at most every {}",
        config.staffbot.worker_batch_size,
        format_duration(config.staffbot.batch_frequency),
        format_duration(config.staffbot.staffing_min_time),
        format_duration(config.staffbot.reminder_interval),
    );
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    println!("ok");
    Ok(())
}

/// The database: reachable, its migrations, projects without a channel. Returns the number of
/// problems found.
async fn check_database(config: &Config) -> anyhow::Result<usize> {
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
                let without_channel = crate::db::projects::without_channel(
                    &db,
                    &[ProjectStatus::Active, ProjectStatus::Paused],
                )
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
    Ok(problems)
}

/// Both Slack tokens, the verification token, and the staffing channel. Returns the number of
/// problems found.
async fn check_slack(config: &Config) -> anyhow::Result<usize> {
    let mut problems = 0;
    let api_url = &config.slack.api_url;
    println!("slack: {api_url}");
    let client = web::build_client(api_url)?;
    let bot = config
        .slack
        .bot_token
        .as_ref()
        .map(|t| SlackApiToken::new(t.expose_secret().to_string().into()));
    match &bot {
        None => {
            problems += 1;
            println!("  SLACK_BOT_TOKEN: NOT set (required by serve)");
        }
        Some(token) => match web::check_bot_token(&client, token, api_url).await {
            Ok(id) => println!(
                "  SLACK_BOT_TOKEN: accepted (workspace {} {}, bot user {})",
                id.team, id.team_id, id.user_id
            ),
            Err(e) => {
                problems += 1;
                println!("  SLACK_BOT_TOKEN: {e}");
            }
        },
    }
    match &config.slack.app_token {
        None => {
            problems += 1;
            println!("  SLACK_APP_TOKEN: NOT set (required by serve)");
        }
        Some(t) => {
            let token = SlackApiToken::new(t.expose_secret().to_string().into());
            match web::check_app_token(&client, &token, api_url).await {
                Ok(()) => {
                    println!("  SLACK_APP_TOKEN: accepted (Socket Mode connections can be opened)")
                }
                Err(e) => {
                    problems += 1;
                    println!("  SLACK_APP_TOKEN: {e}");
                }
            }
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
    match (&config.staffbot.staffing_group_id, &bot) {
        (None, _) => println!("  staffing channel: not set (no unstaffed-task warnings)"),
        (Some(channel), Some(token)) => match web::channel_visible(&client, token, channel).await {
            Ok(name) => println!("  staffing channel {channel}: visible (#{name})"),
            Err(code) => {
                problems += 1;
                println!(
                    "  staffing channel {channel}: NOT visible to the bot ({code}); invite the bot to it"
                );
            }
        },
        (Some(channel), None) => {
            println!("  staffing channel {channel}: not checked (no bot token)")
        }
    }
    Ok(problems)
}

/// Email, when configured: the SMTP server (connects, says hello, logs in with the credentials
/// given) and the IMAP mailbox (logs in, opens the mailbox). Returns the number of problems.
async fn check_email(config: &Config) -> usize {
    let email = &config.email;
    let settings = match crate::email::EmailSettings::from_config(email) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            println!(
                "email: off (email.smtp_url and email.from are not set; workers who prefer email are reached on Slack when they can be)"
            );
            if email.imap_url.is_some() {
                println!(
                    "  email.imap_url is set but unused without email.smtp_url and email.from"
                );
                return 1;
            }
            return 0;
        }
        Err(e) => {
            println!("email: {e}");
            return 1;
        }
    };
    let mut problems = 0;
    println!(
        "email: from {}, replies to {}",
        email.from.as_deref().unwrap_or_default(),
        crate::email::reply::plus_address(&settings.reply_to, "<token>")
    );
    let timeout = std::time::Duration::from_secs(10);
    let smtp_url = email
        .smtp_url
        .as_ref()
        .map(|u| u.redacted())
        .unwrap_or_default();
    match crate::email::Smtp::from_config(email, timeout) {
        Ok(smtp) => match smtp.test().await {
            Ok(()) => println!("  SMTP {smtp_url}: connected"),
            Err(e) => {
                problems += 1;
                println!("  SMTP {smtp_url}: NOT usable: {e}");
            }
        },
        Err(e) => {
            problems += 1;
            println!("  SMTP: {e}");
        }
    }
    match crate::email::inbox::ImapTarget::from_config(email) {
        Ok(None) => println!(
            "  IMAP: not set (email.imap_url): replies are not read, so workers cannot answer by email"
        ),
        Ok(Some(target)) => match crate::email::inbox::connect(&target, timeout).await {
            Ok(mut session) => {
                match session.examine(&target.mailbox).await {
                    Ok(mailbox) => println!(
                        "  IMAP {target:?}: logged in; {} message(s) waiting",
                        mailbox.exists
                    ),
                    Err(e) => {
                        problems += 1;
                        println!(
                            "  IMAP {target:?}: logged in, but the mailbox cannot be opened: {e}"
                        );
                    }
                }
                let _ = session.logout().await;
            }
            Err(e) => {
                problems += 1;
                println!("  IMAP {target:?}: NOT usable: {e}");
            }
        },
        Err(e) => {
            problems += 1;
            println!("  IMAP: {e}");
        }
    }
    problems
}
