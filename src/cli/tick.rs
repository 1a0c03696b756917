//! `staffbot tick [staffing|all]`: the loops once, then the outbox delivered (so cron users need
//! no daemon). Safe beside `serve`: it takes the same leases and outbox claims.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackApiToken;

use super::App;
use crate::loops::try_lease;
use crate::slack::sender::Sender;
use crate::slack::web::{self, MorphismWeb};
use crate::staffing::batch::{self, BatchSettings};

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Which loop to run
    #[arg(value_enum, default_value_t = Which::All)]
    which: Which,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Staffing,
    All,
}

pub async fn run(app: &App, args: TickArgs) -> anyhow::Result<()> {
    let holder = crate::daemon::instance_name();
    let ttl = app.config.loops.lease_ttl;
    if matches!(args.which, Which::Staffing | Which::All) {
        match try_lease(&app.db, "staffing", &holder, ttl, app.clock.now()).await? {
            None => println!("staffing: skipped (another process holds the staffing lease)"),
            Some(lease) => {
                let settings = BatchSettings {
                    batch_size: app.config.staffbot.worker_batch_size,
                    frequency: app.config.staffbot.batch_frequency,
                };
                let mut rng = app.rng();
                let r =
                    batch::run_once(&app.db, &lease, settings, app.clock.now(), &mut rng).await?;
                crate::loops::release(&app.db, "staffing", &holder).await?;
                println!(
                    "staffing: {} request(s) batched, {} offer(s) queued, {} pool(s) exhausted",
                    r.requests, r.offers, r.exhausted
                );
            }
        }
    }
    deliver(app, &holder).await
}

async fn deliver(app: &App, holder: &str) -> anyhow::Result<()> {
    let Some(token) = &app.config.slack.bot_token else {
        println!("outbox: not delivered (SLACK_BOT_TOKEN is not set)");
        return Ok(());
    };
    let sender = Sender::new(
        app.db.clone(),
        Arc::new(MorphismWeb {
            client: web::build_client(&app.config.slack.api_url)?,
            bot_token: SlackApiToken::new(token.expose_secret().to_string().into()),
            timeout: Duration::from_secs(10),
        }),
        Arc::clone(&app.clock),
        app.config.loops.lease_ttl,
        holder.to_string(),
    );
    let r = sender.drain(Duration::from_secs(5)).await?;
    println!(
        "outbox: {} sent, {} to retry, {} failed, {} waiting for Slack's rate limits",
        r.sent, r.retried, r.failed, r.deferred
    );
    Ok(())
}
