//! The daemon's wiring: token checks, the Socket Mode connections and dispatcher, the outbox
//! sender, and an orderly shutdown (stop taking envelopes, drain, stop loops).

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use slack_morphism::prelude::*;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, instance_name};
use crate::config::Config;
use crate::delivery::Sender;
use crate::email::EmailOut;
use crate::slack::dispatch::Dispatcher;
use crate::slack::listener::{Listener, SocketState};
use crate::slack::slash::SlashSettings;
use crate::slack::socket::{SocketMode, SocketSettings};
use crate::slack::transport::SlackTransport;
use crate::slack::web::{self, MorphismWeb, TokenError};

/// How long shutdown waits for envelopes being handled.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How often the sender looks for rows queued by other processes.
const SENDER_IDLE: Duration = Duration::from_secs(1);

/// `A is not set` or `A and B are not set`.
fn missing_names(missing: &[(&str, &str)]) -> String {
    match missing {
        [(one, _)] => format!("{one} is not set"),
        _ => format!(
            "{} are not set",
            missing
                .iter()
                .map(|m| m.0)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

/// The config keys of the missing tokens: `slack.a` or `slack.a and slack.b`.
fn missing_keys(missing: &[(&str, &str)]) -> String {
    missing
        .iter()
        .map(|m| m.1)
        .collect::<Vec<_>>()
        .join(" and ")
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Slack tokens that are not set: (environment variable, config key) each.
    #[error("{} (or {} in the config file)", missing_names(.0), missing_keys(.0))]
    MissingTokens(Vec<(&'static str, &'static str)>),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("stopped before Slack could be reached")]
    Cancelled,
    #[error("{0}")]
    Email(String),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

/// A running daemon.
pub struct Daemon {
    pub cancel: CancellationToken,
    pub socket: Arc<SocketState>,
    /// Where `/metrics` and `/healthz` listen, when `metrics.listen` is set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// This process's name in leases and outbox claims.
    pub name: String,
    task: JoinHandle<()>,
}

/// Checks a token, retrying while Slack cannot be reached; a rejected token is final.
async fn check_with_retry<F, Fut, T>(
    cancel: &CancellationToken,
    what: &str,
    check: F,
) -> Result<T, StartError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, TokenError>>,
{
    let mut wait = Duration::from_secs(1);
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_rejected() => return Err(e.into()),
            Err(e) => {
                tracing::warn!("{what}: {e}; retrying in {wait:?}");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(StartError::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The Web API client and both tokens, checked with Slack.
struct SlackAccess {
    client: Arc<SlackHyperClient>,
    bot_token: SlackApiToken,
    app_token: SlackApiToken,
    /// What `auth.test` said about the bot.
    identity: web::BotIdentity,
}

/// Checks both tokens (`auth.test`, `apps.connections.open`), retrying while Slack cannot be
/// reached.
async fn check_tokens(
    config: &Config,
    cancel: &CancellationToken,
) -> Result<SlackAccess, StartError> {
    let (bot_token, app_token) = match (&config.slack.bot_token, &config.slack.app_token) {
        (Some(bot), Some(app)) => (bot, app),
        (bot, app) => {
            let mut missing = Vec::new();
            if bot.is_none() {
                missing.push(("SLACK_BOT_TOKEN", "slack.bot_token"));
            }
            if app.is_none() {
                missing.push(("SLACK_APP_TOKEN", "slack.app_token"));
            }
            return Err(StartError::MissingTokens(missing));
        }
    };
    let bot_token = SlackApiToken::new(bot_token.expose_secret().to_string().into());
    let app_token = SlackApiToken::new(app_token.expose_secret().to_string().into());
    let api_url = config.slack.api_url.clone();
    let client = web::build_client(&api_url)?;

    let identity = check_with_retry(cancel, "checking SLACK_BOT_TOKEN", || {
        web::check_bot_token(&client, &bot_token, &api_url)
    })
    .await?;
    tracing::info!(team = %identity.team, team_id = %identity.team_id, bot = %identity.user_id, "bot token accepted");
    check_with_retry(cancel, "checking SLACK_APP_TOKEN", || {
        web::check_app_token(&client, &app_token, &api_url)
    })
    .await?;
    Ok(SlackAccess {
        client,
        bot_token,
        app_token,
        identity,
    })
}

/// The envelope dispatcher behind the Socket Mode connections (not connected yet).
fn socket_mode(
    config: &Config,
    db: &DatabaseConnection,
    clock: &Arc<dyn Clock>,
    slack: &SlackAccess,
    outbox_wake: &Arc<Notify>,
    settings: SocketSettings,
) -> SocketMode {
    let dispatcher = Arc::new(Dispatcher {
        db: db.clone(),
        clock: clock.clone(),
        slash: SlashSettings {
            verification_token: config.slack.verification_token.clone(),
            allowed: config.staffbot.allowed.clone(),
            random_seed: config.staffbot.random_seed,
            policy: crate::staffing::policy::Policy::of(&config.staffbot),
            working: config.staffbot.working_rule(),
        },
        outbox_wake: outbox_wake.clone(),
        notices: config.notices(),
    });
    SocketMode::new(
        slack.client.clone(),
        slack.app_token.clone(),
        Arc::new(Listener::new(dispatcher)),
        settings,
    )
}

/// `/metrics` and `/healthz`, when `metrics.listen` is set.
async fn serve_metrics(
    config: &Config,
    db: &DatabaseConnection,
    clock: &Arc<dyn Clock>,
    socket: Arc<SocketState>,
    holder: &str,
    cancel: &CancellationToken,
) -> Result<Option<std::net::SocketAddr>, StartError> {
    let Some(listen) = &config.metrics.listen else {
        return Ok(None);
    };
    let sources = crate::ops::Sources {
        db: db.clone(),
        socket,
        clock: clock.clone(),
        holder: holder.to_string(),
    };
    Ok(Some(
        crate::ops::serve(listen, sources, cancel.child_token()).await?,
    ))
}

/// SQLite only: WAL checkpoints on a connection of their own.
fn spawn_checkpointer(
    config: &Config,
    db: &DatabaseConnection,
    cancel: &CancellationToken,
) -> Option<JoinHandle<()>> {
    (db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite).then(|| {
        tokio::spawn(crate::db::run_checkpointer(
            config.database_url.expose().to_string(),
            crate::db::SQLITE_CHECKPOINT_EVERY,
            cancel.child_token(),
        ))
    })
}

/// Every periodic loop ([`crate::loops::works`]: the mailbox too, where replies are read),
/// each in its own task.
fn spawn_loops(
    config: &Config,
    (db, clock): (&DatabaseConnection, &Arc<dyn Clock>),
    mail: Option<(&EmailOut, crate::email::inbox::ImapTarget)>,
    holder: &str,
    outbox_wake: &Arc<Notify>,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    if let Some((_, target)) = &mail {
        tracing::info!(mailbox = ?target, "reading email replies");
    }
    let settings = crate::loops::runner::RunnerSettings {
        db: db.clone(),
        clock: clock.clone(),
        holder: holder.to_string(),
        lease_ttl: config.loops.lease_ttl,
        wake: outbox_wake.clone(),
    };
    crate::loops::works(config, db, clock, mail)
        .into_iter()
        .map(|work| {
            let run = crate::loops::runner::run(work, settings.clone(), cancel.child_token());
            tokio::spawn(run)
        })
        .collect()
}

/// The outbox sender, woken by `outbox_wake` and every [`SENDER_IDLE`]. It first learns the
/// app's Home tab for reminders' links (`bots.info`, at most [`web::APP_HOME_TIMEOUT`]; without
/// it, reminders go without the link): start-up does not wait for that.
fn spawn_sender(
    config: &Config,
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    (slack, mail): (SlackAccess, Option<Arc<EmailOut>>),
    holder: &str,
    outbox_wake: &Arc<Notify>,
    cancel: &CancellationToken,
) -> JoinHandle<()> {
    let call_timeout = (config.loops.lease_ttl / 2).max(Duration::from_secs(1));
    let web = Arc::new(MorphismWeb {
        client: slack.client.clone(),
        bot_token: slack.bot_token.clone(),
        timeout: call_timeout,
    });
    let to_slack = SlackTransport::new(db.clone(), web, clock.clone())
        .with_policy(crate::staffing::policy::Policy::of(&config.staffbot))
        .with_working_hours(config.staffbot.working_rule());
    let sender = Sender::new(
        db.clone(),
        clock,
        config.loops.lease_ttl,
        holder.to_string(),
    )
    .with_transport(Arc::new(to_slack))
    .with_call_timeout(call_timeout)
    .with_staffing_channel(config.staffbot.staffing_group_id.clone());
    let sender = match mail {
        Some(mail) => sender.with_transport(Arc::new(mail.transport(config, db))),
        None => sender,
    };
    let cancel = cancel.child_token();
    let wake = outbox_wake.clone();
    tokio::spawn(async move {
        let render = tokio::select! {
            _ = cancel.cancelled() => Default::default(),
            ctx = web::render_context(&slack.client, &slack.bot_token, &slack.identity) => ctx,
        };
        sender
            .with_app_home(render.app_home)
            .run(cancel, wake, SENDER_IDLE)
            .await
    })
}

/// Email as configured: how the sender delivers email rows, and the mailbox loop (when
/// `email.imap_url` is set). Nothing when email is off.
pub fn email_setup(
    config: &Config,
) -> Result<
    (
        Option<Arc<EmailOut>>,
        Option<crate::email::inbox::ImapTarget>,
    ),
    StartError,
> {
    let email_err = |e: &dyn std::fmt::Display| StartError::Email(e.to_string());
    let settings =
        crate::email::EmailSettings::from_config(&config.email).map_err(|e| email_err(&e))?;
    let target =
        crate::email::inbox::ImapTarget::from_config(&config.email).map_err(|e| email_err(&e))?;
    let Some(settings) = settings else {
        if target.is_some() {
            return Err(StartError::Email(
                "email.imap_url is set but replies cannot be answered without email.smtp_url and email.from".into(),
            ));
        }
        return Ok((None, None));
    };
    let timeout = (config.loops.lease_ttl / 2).max(Duration::from_secs(1));
    let smtp =
        crate::email::Smtp::from_config(&config.email, timeout).map_err(|e| email_err(&e))?;
    let mail = EmailOut {
        mailer: Arc::new(smtp),
        settings,
    };
    Ok((Some(Arc::new(mail)), target))
}

/// What an orderly shutdown stops, in order.
struct Running {
    socket: SocketMode,
    loops: Vec<JoinHandle<()>>,
    outbox_wake: Arc<Notify>,
    sender: JoinHandle<()>,
    checkpointer: Option<JoinHandle<()>>,
}

/// Waits for `cancel`, then: no new envelopes, the ones in hand finished (up to
/// [`DRAIN_DEADLINE`]), the connections closed, the loops stopped, the outbox sender's last round
/// done, the SQLite checkpointer stopped.
async fn shutdown(cancel: CancellationToken, running: Running) {
    cancel.cancelled().await;
    tracing::info!("shutting down: no new envelopes; finishing the ones in hand");
    running.socket.shutdown(DRAIN_DEADLINE).await;
    for task in running.loops {
        if let Err(e) = task.await {
            tracing::error!("a loop ended badly: {e}");
        }
    }
    running.outbox_wake.notify_one();
    if let Err(e) = running.sender.await {
        tracing::error!("outbox sender ended badly: {e}");
    }
    if let Some(task) = running.checkpointer
        && let Err(e) = task.await
    {
        tracing::error!("SQLite checkpointer ended badly: {e}");
    }
    tracing::info!("stopped");
}

impl Daemon {
    /// Checks both tokens, connects to Slack and starts the sender. Returns once started; the
    /// daemon runs until `cancel` is cancelled (which also interrupts the start-up checks).
    pub async fn start(
        config: &Config,
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        cancel: CancellationToken,
    ) -> Result<Daemon, StartError> {
        let settings = SocketSettings::new(config.slack.socket_connections);
        Daemon::start_with(config, db, clock, cancel, settings).await
    }

    /// [`Daemon::start`] with the Socket Mode connections' timings given (tests shorten them).
    pub async fn start_with(
        config: &Config,
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        cancel: CancellationToken,
        settings: SocketSettings,
    ) -> Result<Daemon, StartError> {
        // (Already done when the configuration was loaded from its file; a config built in
        // code registers here.)
        crate::secrets::register_config(config);
        let (mail, imap) = email_setup(config)?;
        let slack = check_tokens(config, &cancel).await?;
        let outbox_wake = Arc::new(Notify::new());
        let socket = socket_mode(config, &db, &clock, &slack, &outbox_wake, settings);
        let state = socket.state();
        let name = instance_name();
        let metrics_addr =
            serve_metrics(config, &db, &clock, state.clone(), &name, &cancel).await?;
        socket.start();

        let checkpointer = spawn_checkpointer(config, &db, &cancel);
        tracing::info!(instance = %name, "leases and outbox claims are held under this name");
        // Registered up front, so it is scraped (as 0) before the first refusal.
        metrics::counter!("staffbot_offers_undeliverable_total").increment(0);
        metrics::counter!("staffbot_outbox_claims_lost_total").increment(0);
        let reading = mail.as_deref().zip(imap);
        let loops = spawn_loops(config, (&db, &clock), reading, &name, &outbox_wake, &cancel);
        let out = (slack, mail);
        let sender = spawn_sender(config, db, clock, out, &name, &outbox_wake, &cancel);
        let running = Running {
            socket,
            loops,
            outbox_wake,
            sender,
            checkpointer,
        };
        let task = tokio::spawn(shutdown(cancel.clone(), running));
        Ok(Daemon {
            cancel,
            socket: state,
            metrics_addr,
            name,
            task,
        })
    }

    /// Waits until the daemon has stopped (after [`Daemon::cancel`]).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!("daemon task failed: {e}");
        }
    }

    /// Stops the daemon and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.join().await;
    }
}
