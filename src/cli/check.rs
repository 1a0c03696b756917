//! `staffbot check`: configuration, database, both Slack tokens, the staffing channel, the
//! metrics address, and email
//! (SMTP and IMAP logins) when it is configured. Prints
//! a short report and never a secret; exits non-zero when something needs fixing.

use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackApiToken;

use crate::config::{Config, format_duration};
use crate::db::ProjectStatus;
use crate::slack::web;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let mut problems = check_database(config).await?;
    problems += check_slack(config).await?;
    problems += check_metrics(config).await;
    problems += check_email(config).await;
    outln!(
        "staffing: batches of {} every {}; warnings after {}; reminders at most every {}",
        config.staffbot.worker_batch_size,
        format_duration(config.staffbot.batch_frequency),
        format_duration(config.staffbot.staffing_min_time),
        format_duration(config.staffbot.reminder_interval),
    );
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    outln!("ok");
    Ok(())
}

/// The database: reachable, its migrations, projects without a channel. Returns the number of
/// problems found.
async fn check_database(config: &Config) -> anyhow::Result<usize> {
    let mut problems = 0;
    outln!("database: {}", config.database_url.redacted());
    match crate::db::connect(config.database_url.expose()).await {
        Ok(db) => {
            let migrations = crate::db::schema::state(&db).await?;
            let pending = migrations.pending().count();
            outln!(
                "  reachable; {} migration(s), {pending} pending{}{}",
                migrations.known.len(),
                if pending > 0 {
                    " (applied by serve and every admin command)"
                } else {
                    ""
                },
                if migrations.newer.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} more of a newer release (this one runs beside it)",
                        migrations.newer.len()
                    )
                }
            );
            if pending < migrations.known.len() {
                let without_channel = crate::db::projects::without_channel(
                    &db,
                    &[ProjectStatus::Active, ProjectStatus::Paused],
                )
                .await?;
                for p in without_channel {
                    outln!(
                        "  note: project {} ({}) has no Slack channel: no channel posts or invites",
                        p.id,
                        p.short_description
                    );
                }
            }
        }
        Err(e) => {
            problems += 1;
            outln!("  NOT reachable: {e}");
        }
    }
    Ok(problems)
}

/// Both Slack tokens, the verification token, and the staffing channel. Returns the number of
/// problems found.
async fn check_slack(config: &Config) -> anyhow::Result<usize> {
    let mut problems = 0;
    let api_url = &config.slack.api_url;
    outln!("slack: {api_url}");
    let client = web::build_client(api_url)?;
    let bot = config
        .slack
        .bot_token
        .as_ref()
        .map(|t| SlackApiToken::new(t.expose_secret().to_string().into()));
    // The bot token, when Slack accepted it (the staffing channel is looked at with it).
    let accepted = match &bot {
        None => {
            problems += 1;
            outln!("  SLACK_BOT_TOKEN: NOT set (required by serve)");
            None
        }
        Some(token) => match web::check_bot_token(&client, token, api_url).await {
            Ok(id) => {
                outln!(
                    "  SLACK_BOT_TOKEN: accepted (workspace {} {}, bot user {})",
                    id.team,
                    id.team_id,
                    id.user_id
                );
                Some(token)
            }
            Err(e) => {
                problems += 1;
                outln!("  SLACK_BOT_TOKEN: {e}");
                None
            }
        },
    };
    match &config.slack.app_token {
        None => {
            problems += 1;
            outln!("  SLACK_APP_TOKEN: NOT set (required by serve)");
        }
        Some(t) => {
            let token = SlackApiToken::new(t.expose_secret().to_string().into());
            match web::check_app_token(&client, &token, api_url).await {
                Ok(()) => {
                    outln!("  SLACK_APP_TOKEN: accepted (Socket Mode connections can be opened)")
                }
                Err(e) => {
                    problems += 1;
                    outln!("  SLACK_APP_TOKEN: {e}");
                }
            }
        }
    }
    outln!(
        "  verification token: {}",
        if config.slack.verification_token.is_some() {
            "set (checked)"
        } else {
            "not set (not checked)"
        }
    );
    match (&config.staffbot.staffing_group_id, &bot, accepted) {
        (None, _, _) => outln!("  staffing channel: not set (no unstaffed-task warnings)"),
        (Some(channel), None, _) => {
            outln!("  staffing channel {channel}: not checked (no bot token)")
        }
        (Some(channel), Some(_), None) => {
            outln!("  staffing channel {channel}: not checked (SLACK_BOT_TOKEN did not work)")
        }
        (Some(channel), _, Some(token)) => {
            let seen = web::channel_visible(&client, token, channel).await;
            let (ok, line) = staffing_channel_line(channel, api_url, seen);
            if !ok {
                problems += 1;
            }
            outln!("  {line}");
        }
    }
    Ok(problems)
}

/// `metrics.listen`, when set: an address `serve` can listen on (`host:port`). It is not bound
/// here: a running daemon may hold it. Returns the number of problems.
async fn check_metrics(config: &Config) -> usize {
    let Some(listen) = &config.metrics.listen else {
        outln!("metrics: off (metrics.listen is not set)");
        return 0;
    };
    let resolved = tokio::net::lookup_host(listen.as_str())
        .await
        .map(|mut addrs| addrs.next());
    match resolved {
        Ok(Some(addr)) => {
            outln!("metrics: /metrics and /healthz on {listen} ({addr})");
            0
        }
        Ok(None) => {
            outln!(
                "metrics.listen {listen:?}: NOT an address serve can listen on (it names no address)"
            );
            1
        }
        Err(e) => {
            outln!(
                "metrics.listen {listen:?}: NOT an address serve can listen on (host:port, e.g. 127.0.0.1:9898): {e}"
            );
            1
        }
    }
}

/// What `check` says about the staffing channel, from what `conversations.info` answered (the
/// bot token having been accepted just before); false when something needs fixing. Only an
/// answer that says the bot is not in the channel advises inviting it.
fn staffing_channel_line(
    channel: &str,
    api_url: &str,
    seen: Result<web::ChannelSeen, web::ChannelUnseen>,
) -> (bool, String) {
    use web::ChannelUnseen::{Slack, Unreachable};
    match seen {
        Ok(c) if c.is_member => (
            true,
            format!("staffing channel {channel}: visible (#{})", c.name),
        ),
        Ok(c) => (
            false,
            format!(
                "staffing channel {channel} (#{}): the bot is NOT in it, so it cannot post there; invite the bot to it (/invite @staffbot)",
                c.name
            ),
        ),
        Err(Slack(code)) if code == "channel_not_found" => (
            false,
            format!(
                "staffing channel {channel}: NOT visible to the bot ({code}): check the id, and invite the bot to it (a private channel is invisible to the bot until then)"
            ),
        ),
        Err(Slack(code)) if code == "missing_scope" => (
            false,
            format!(
                "staffing channel {channel}: cannot be looked up ({code}): the app lacks channels:read (a public channel) or groups:read (a private one); reinstall it with manifest.yml's scopes"
            ),
        ),
        Err(Slack(code)) => (
            false,
            format!("staffing channel {channel}: Slack refused to describe it ({code})"),
        ),
        Err(Unreachable(message)) => (
            false,
            format!(
                "staffing channel {channel}: not checked: cannot reach Slack at {api_url}: {message}"
            ),
        ),
    }
}

/// Email, when configured: the SMTP server (connects, says hello, logs in with the credentials
/// given) and the IMAP mailbox (logs in, opens the mailbox). Returns the number of problems.
async fn check_email(config: &Config) -> usize {
    let email = &config.email;
    let settings = match crate::email::EmailSettings::from_config(email) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            outln!(
                "email: off (email.smtp_url and email.from are not set; workers who prefer email are reached on Slack when they can be)"
            );
            if email.imap_url.is_some() {
                outln!("  email.imap_url is set but unused without email.smtp_url and email.from");
                return 1;
            }
            return 0;
        }
        Err(e) => {
            outln!("email: {e}");
            return 1;
        }
    };
    let mut problems = 0;
    outln!(
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
            Ok(()) => outln!("  SMTP {smtp_url}: connected"),
            Err(e) => {
                problems += 1;
                outln!("  SMTP {smtp_url}: NOT usable: {e}");
            }
        },
        Err(e) => {
            problems += 1;
            outln!("  SMTP: {e}");
        }
    }
    match crate::email::inbox::ImapTarget::from_config(email) {
        Ok(None) => outln!(
            "  IMAP: not set (email.imap_url): replies are not read, so workers cannot answer by email"
        ),
        Ok(Some(target)) => match crate::email::inbox::connect(&target, timeout).await {
            Ok(mut session) => {
                match session.examine(&target.mailbox).await {
                    Ok(mailbox) => outln!(
                        "  IMAP {target:?}: logged in; {} message(s) waiting",
                        mailbox.exists
                    ),
                    Err(e) => {
                        problems += 1;
                        outln!(
                            "  IMAP {target:?}: logged in, but the mailbox cannot be opened: {e}"
                        );
                    }
                }
                let _ = session.logout().await;
            }
            Err(e) => {
                problems += 1;
                outln!("  IMAP {target:?}: NOT usable: {e}");
            }
        },
        Err(e) => {
            problems += 1;
            outln!("  IMAP: {e}");
        }
    }
    problems
}
