//! `staffbot tick [staffing|machine|reminders|warnings|sanity|retention|mail|all]`: the loops
//! once (`mail` reads the mailbox's email replies, when configured), then the outbox delivered
//! (so cron users need no daemon). Safe beside `serve`: it takes the same leases and outbox
//! claims.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackApiToken;

use super::App;
use crate::delivery::{Route, Sender};
use crate::lease::try_lease;
use crate::loops::Loop;
use crate::slack::render::RenderContext;
use crate::slack::transport::SlackTransport;
use crate::slack::web::{self, MorphismWeb};

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Which loop to run
    #[arg(value_enum, default_value_t = Which::All)]
    which: Which,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Staffing,
    Reminders,
    Warnings,
    Sanity,
    Retention,
    Machine,
    Mail,
    All,
}

impl Which {
    /// Whether it runs the work named `name`.
    fn runs(self, name: &str) -> bool {
        let only = match self {
            Which::All => return true,
            Which::Staffing => Loop::Staffing.name(),
            Which::Reminders => Loop::Reminders.name(),
            Which::Warnings => Loop::Warnings.name(),
            Which::Sanity => Loop::Sanity.name(),
            Which::Retention => Loop::Retention.name(),
            Which::Machine => Loop::Machine.name(),
            Which::Mail => crate::email::inbox::LEASE,
        };
        name == only
    }
}

pub async fn run(app: &App, args: TickArgs) -> anyhow::Result<()> {
    let holder = crate::clock::instance_name();
    let ttl = app.config.loops.lease_ttl;
    let (mail, target) = crate::daemon::email_setup(&app.config)?;
    let reading = mail.as_deref().zip(target);
    if args.which == Which::Mail && reading.is_none() {
        outln!("mail: off (email.smtp_url, email.from and email.imap_url are not all set)");
    }
    let works = crate::loops::works(&app.config, &app.db, &app.clock, reading);
    for mut work in works.into_iter().filter(|w| args.which.runs(w.name())) {
        let name = work.name();
        match try_lease(&app.db, name, &holder, ttl).await? {
            None => outln!("{name}: skipped (another process holds the {name} lease)"),
            Some(lease) => {
                let outcome = work.run_once(&lease, app.clock.now()).await;
                work.let_go().await;
                crate::lease::release(&app.db, name, &holder).await?;
                let outcome = outcome.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                outln!("{name}: {}", outcome.summary);
            }
        }
    }
    deliver(app, &holder).await
}

/// The longest one Web API call of `tick` may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Without a bot token: the emails that are due are delivered, Slack rows wait for a token.
async fn deliver_emails_only(app: &App, holder: &str) -> anyhow::Result<()> {
    let Some(mail) = crate::daemon::email_setup(&app.config)?.0 else {
        outln!("outbox: not delivered (SLACK_BOT_TOKEN is not set)");
        return Ok(());
    };
    let sender = sender(app, holder)
        .with_transport(Arc::new(mail.transport(&app.config, app.db.clone())))
        .only(Route::Email);
    let r = sender.drain(Duration::from_secs(5)).await?;
    let waiting = crate::db::outbox::pending_on(&app.db, Route::Slack).await?;
    outln!(
        "outbox: emails: {} sent, {} to retry, {} failed, {} waiting for the sending rate",
        r.sent,
        r.retried,
        r.failed,
        r.deferred
    );
    outln!(
        "outbox: {waiting} Slack message(s) not delivered: they wait for SLACK_BOT_TOKEN (queued, nothing lost)"
    );
    Ok(())
}

/// A sender as the configuration sets it (timeouts, staffing channel), with no transport yet.
fn sender(app: &App, holder: &str) -> Sender {
    Sender::new(
        app.db.clone(),
        Arc::clone(&app.clock),
        app.config.loops.lease_ttl,
        holder.to_string(),
    )
    .with_call_timeout(CALL_TIMEOUT)
    .with_staffing_channel(app.config.staffbot.staffing_group_id.clone())
}

pub(super) async fn deliver(app: &App, holder: &str) -> anyhow::Result<()> {
    let Some(token) = &app.config.slack.bot_token else {
        return deliver_emails_only(app, holder).await;
    };
    let api_url = &app.config.slack.api_url;
    let client = web::build_client(api_url)?;
    let bot_token = SlackApiToken::new(token.expose_secret().to_string().into());
    // Reminders link the app's Home tab when Slack says which app this is.
    let render = match web::check_bot_token(&client, &bot_token, api_url).await {
        Ok(identity) => web::render_context(&client, &bot_token, &identity).await,
        Err(e) => {
            tracing::warn!("auth.test: {e}; reminders go without the Home tab's link");
            RenderContext::default()
        }
    };
    let web = Arc::new(MorphismWeb {
        client,
        bot_token,
        timeout: CALL_TIMEOUT,
    });
    let to_slack = SlackTransport::new(app.db.clone(), web, Arc::clone(&app.clock))
        .with_policy(crate::staffing::policy::Policy::of(&app.config.staffbot))
        .with_working_hours(app.config.staffbot.working_rule());
    let sender = sender(app, holder)
        .with_transport(Arc::new(to_slack))
        .with_app_home(render.app_home);
    let sender = match crate::daemon::email_setup(&app.config)?.0 {
        Some(mail) => sender.with_transport(Arc::new(mail.transport(&app.config, app.db.clone()))),
        None => sender,
    };
    let r = sender.drain(Duration::from_secs(5)).await?;
    outln!(
        "outbox: {} sent, {} to retry, {} failed, {} waiting for Slack's rate limits",
        r.sent,
        r.retried,
        r.failed,
        r.deferred
    );
    Ok(())
}
