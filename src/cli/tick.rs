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
use crate::loops::{Loop, run_loop_once};
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

pub async fn run(app: &App, args: TickArgs) -> anyhow::Result<()> {
    let holder = crate::clock::instance_name();
    let ttl = app.config.loops.lease_ttl;
    let loops: Vec<Loop> = match args.which {
        Which::Staffing => vec![Loop::Staffing],
        Which::Reminders => vec![Loop::Reminders],
        Which::Warnings => vec![Loop::Warnings],
        Which::Sanity => vec![Loop::Sanity],
        Which::Retention => vec![Loop::Retention],
        Which::Machine => vec![Loop::Machine],
        Which::Mail => Vec::new(),
        Which::All => Loop::ALL.to_vec(),
    };
    let mut rng = app.rng();
    for which in loops {
        let name = which.name();
        match try_lease(&app.db, name, &holder, ttl).await? {
            None => outln!("{name}: skipped (another process holds the {name} lease)"),
            Some(lease) => {
                let outcome = run_loop_once(
                    &app.db,
                    which,
                    &lease,
                    &app.config,
                    app.clock.now(),
                    &mut rng,
                )
                .await;
                crate::lease::release(&app.db, name, &holder).await?;
                outln!("{name}: {}", outcome?.summary);
            }
        }
    }
    if matches!(args.which, Which::Mail | Which::All) {
        read_mail(app, &holder, args.which == Which::Mail).await?;
    }
    deliver(app, &holder).await
}

/// One read of the mailbox (email replies to offers), under the `mail` lease. `say_off`: say so
/// when replies are not read.
async fn read_mail(app: &App, holder: &str, say_off: bool) -> anyhow::Result<()> {
    use crate::email::inbox::{self, Inbox};
    let (mail, target) = crate::daemon::email_setup(&app.config)?;
    let (Some(mail), Some(target)) = (mail, target) else {
        if say_off {
            outln!("mail: off (email.smtp_url, email.from and email.imap_url are not all set)");
        }
        return Ok(());
    };
    let Some(lease) = try_lease(&app.db, inbox::LEASE, holder, app.config.loops.lease_ttl).await?
    else {
        outln!("mail: skipped (another process holds the mail lease)");
        return Ok(());
    };
    let inbox = Inbox {
        db: app.db.clone(),
        clock: Arc::clone(&app.clock),
        target: target.clone(),
        settings: mail.settings.clone(),
        notices: app.config.notices(),
        timeout: CALL_TIMEOUT,
    };
    let read = async {
        let mut session = inbox::connect(&target, CALL_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("mail: {e}"))?;
        let report = inbox.run_once(&mut session, &lease).await;
        let _ = session.logout().await;
        Ok::<_, anyhow::Error>(report?)
    }
    .await;
    crate::lease::release(&app.db, inbox::LEASE, holder).await?;
    let r = read?;
    let failed = if r.failed > 0 {
        format!(
            ", {} left in the mailbox for the next run (see the log)",
            r.failed
        )
    } else {
        String::new()
    };
    outln!(
        "mail: {} read, {} answer(s) applied, {} ignored or handled before{failed}",
        r.read,
        r.answered,
        r.ignored
    );
    Ok(())
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
