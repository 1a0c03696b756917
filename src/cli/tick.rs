//! `staffbot tick [staffing|machine|reminders|warnings|sanity|retention|all]`: the loops once, then the
//! outbox delivered (so cron users need no daemon). Safe beside `serve`: it takes the same
//! leases and outbox claims.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackApiToken;

use super::App;
use crate::lease::try_lease;
use crate::loops::{Loop, run_loop_once};
use crate::slack::render::RenderContext;
use crate::slack::sender::Sender;
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
        Which::All => Loop::ALL.to_vec(),
    };
    let mut rng = app.rng();
    for which in loops {
        let name = which.name();
        match try_lease(&app.db, name, &holder, ttl).await? {
            None => println!("{name}: skipped (another process holds the {name} lease)"),
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
                println!("{name}: {}", outcome?.summary);
            }
        }
    }
    deliver(app, &holder).await
}

/// The longest one Web API call of `tick` may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn deliver(app: &App, holder: &str) -> anyhow::Result<()> {
    let Some(token) = &app.config.slack.bot_token else {
        println!("outbox: not delivered (SLACK_BOT_TOKEN is not set)");
        return Ok(());
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
    let sender = Sender::new(
        app.db.clone(),
        Arc::new(MorphismWeb {
            client,
            bot_token,
            timeout: CALL_TIMEOUT,
        }),
        Arc::clone(&app.clock),
        app.config.loops.lease_ttl,
        holder.to_string(),
    )
    .with_call_timeout(CALL_TIMEOUT)
    .with_staffing_channel(app.config.staffbot.staffing_group_id.clone())
    .with_render_context(render);
    let r = sender.drain(Duration::from_secs(5)).await?;
    println!(
        "outbox: {} sent, {} to retry, {} failed, {} waiting for Slack's rate limits",
        r.sent, r.retried, r.failed, r.deferred
    );
    Ok(())
}
