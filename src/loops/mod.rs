//! The periodic work: which loops there are ([`Loop`]), each as a [`Work`] built from the
//! configuration ([`works`]: the one list the daemon runs and `staffbot tick` reads), run once
//! under its lease (see [`crate::lease`]) or kept running by one runner ([`runner::run`]).

mod mailbox;
pub mod runner;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio_util::sync::CancellationToken;

use crate::lease::LeaseProof;
pub use mailbox::Mailbox;

/// The periodic loops, by lease name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    Staffing,
    Reminders,
    Warnings,
    Sanity,
    Retention,
    Machine,
}

impl Loop {
    /// The loops every replica runs (`staffbot_lease_held` reports each); the mailbox
    /// ([`Mailbox`]) runs besides them where replies are read.
    pub const ALL: [Loop; 6] = [
        Loop::Staffing,
        Loop::Machine,
        Loop::Reminders,
        Loop::Warnings,
        Loop::Sanity,
        Loop::Retention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Loop::Staffing => "staffing",
            Loop::Reminders => "reminders",
            Loop::Warnings => "warnings",
            Loop::Sanity => "sanity",
            Loop::Retention => "retention",
            Loop::Machine => "machine",
        }
    }

    /// How often it runs while this process holds its lease: SanityBot and retention less
    /// often than the tick.
    pub fn period(self, config: &crate::config::Config) -> Duration {
        match self {
            Loop::Sanity => config.sanitybot.interval,
            Loop::Retention => crate::retention::EVERY,
            _ => config.loops.tick_interval,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Staffbot(#[from] crate::error::Error),
    /// The mailbox could not be read (IMAP).
    #[error("{0}")]
    Mailbox(String),
}

impl LoopError {
    /// The lease passed to another process during the run (its writes were rolled back).
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, LoopError::Staffbot(e) if crate::lease::is_lease_lost(e))
    }
}

/// One periodic piece of work.
#[async_trait::async_trait]
pub trait Work: Send {
    /// Its name, which is its lease's.
    fn name(&self) -> &'static str;
    /// How often it runs while this process holds its lease (zero: at every wake).
    fn period(&self) -> Duration;
    /// How often it wakes at least (to renew its lease, and to run when its period is over).
    fn tick(&self) -> Duration;
    /// Runs once, under `lease`.
    async fn run_once(
        &mut self,
        lease: &LeaseProof,
        now: DateTime<Utc>,
    ) -> Result<LoopOutcome, LoopError>;
    /// Waits for the next wake: `interval`'s next tick by default (the mailbox waits for new
    /// mail instead). Returns at once when `cancel` is cancelled.
    async fn wait(
        &mut self,
        interval: &mut tokio::time::Interval,
        cancel: &CancellationToken,
    ) -> tokio::time::Instant {
        tokio::select! {
            _ = cancel.cancelled() => tokio::time::Instant::now(),
            tick = interval.tick() => tick,
        }
    }
    /// This process no longer holds the lease, or stops: lets go of what the work keeps open
    /// (the mailbox's connection).
    async fn let_go(&mut self) {}
}

/// A loop that runs [`run_loop_once`] on a timer.
pub struct Timed {
    which: Loop,
    db: DatabaseConnection,
    config: crate::config::Config,
    rng: rand::rngs::StdRng,
}

impl Timed {
    pub fn from_config(
        which: Loop,
        config: &crate::config::Config,
        db: &DatabaseConnection,
    ) -> Timed {
        Timed {
            which,
            db: db.clone(),
            config: config.clone(),
            rng: crate::clock::rng_for(config.staffbot.random_seed),
        }
    }
}

#[async_trait::async_trait]
impl Work for Timed {
    fn name(&self) -> &'static str {
        self.which.name()
    }

    fn period(&self) -> Duration {
        self.which.period(&self.config)
    }

    fn tick(&self) -> Duration {
        self.config.loops.tick_interval
    }

    async fn run_once(
        &mut self,
        lease: &LeaseProof,
        now: DateTime<Utc>,
    ) -> Result<LoopOutcome, LoopError> {
        let (db, config) = (&self.db, &self.config);
        Ok(run_loop_once(db, self.which, lease, config, now, &mut self.rng).await?)
    }
}

/// Every periodic loop this configuration runs, in [`Loop::ALL`]'s order, then the mailbox
/// where replies are read (`mail`: email as configured, from `daemon::email_setup`).
pub fn works(
    config: &crate::config::Config,
    db: &DatabaseConnection,
    clock: &Arc<dyn crate::clock::Clock>,
    mail: Option<(&crate::email::EmailOut, crate::email::inbox::ImapTarget)>,
) -> Vec<Box<dyn Work>> {
    let mut out: Vec<Box<dyn Work>> = Loop::ALL
        .into_iter()
        .map(|which| Box::new(Timed::from_config(which, config, db)) as Box<dyn Work>)
        .collect();
    if let Some((email, target)) = mail {
        out.push(Box::new(Mailbox::from_config(
            config, db, clock, email, target,
        )));
    }
    out
}

/// What one run of a loop did, in words (for `tick` and the logs), and whether it queued
/// anything for Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopOutcome {
    pub summary: String,
    pub queued: bool,
}

/// Runs one loop once, under its lease (already held).
pub async fn run_loop_once<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    which: Loop,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
    rng: &mut impl rand::Rng,
) -> Result<LoopOutcome, crate::error::Error> {
    match which {
        Loop::Staffing => staffing(db, lease, config, now, rng).await,
        Loop::Reminders => reminders(db, lease, config, now).await,
        Loop::Warnings => warnings(db, lease, config, now).await,
        Loop::Sanity => sanity(db, lease, now).await,
        Loop::Machine => machine(db, lease, config, now).await,
        Loop::Retention => retention(db, lease, config, now).await,
    }
}

async fn staffing<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
    rng: &mut impl rand::Rng,
) -> Result<LoopOutcome, crate::error::Error> {
    if config.staffbot.working_hours_enforced {
        ask_time_zones(db, lease, now).await?;
    }
    let settings = crate::staffing::batch::BatchSettings::of(config);
    let policy = crate::staffing::policy::Policy::of(&config.staffbot);
    let r = crate::staffing::batch::run_once_with(db, lease, settings, policy, now, rng).await?;
    let mut summary = format!(
        "{} request(s) batched, {} offer(s) queued, {} pool(s) exhausted",
        r.requests, r.offers, r.exhausted
    );
    if r.auto_staffed > 0 {
        summary.push_str(&format!(", {} task(s) auto-staffed", r.auto_staffed));
    }
    if r.waiting > 0 {
        summary.push_str(&format!(
            ", {} request(s) waiting for working hours",
            r.waiting
        ));
    }
    Ok(LoopOutcome {
        summary,
        queued: r.offers > 0 || r.exhausted > 0 || r.auto_staffed > 0,
    })
}

/// Workers asked about per staffing round at most (Slack allows `users.info` about 100 times
/// a minute).
const TIME_ZONES_PER_ROUND: u64 = 50;

/// Queues `users.info` for workers whose time zone staffbot has not learnt from Slack, or not
/// today (working hours are in each worker's own time). Their answers are stored as they come.
pub async fn ask_time_zones<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    let stale = now - chrono::Duration::days(1);
    let due = crate::db::availability::time_zones_due(db, stale, TIME_ZONES_PER_ROUND).await?;
    if due.is_empty() {
        return Ok(());
    }
    let day = now.format("%Y-%m-%d");
    let messages: Vec<(String, crate::messages::Outgoing)> = due
        .iter()
        .map(|(_, user)| {
            (
                format!("tz:{user}:{day}"),
                crate::messages::Outgoing::UserInfo { user: user.clone() },
            )
        })
        .collect();
    let ids: Vec<i64> = due.iter().map(|(id, _)| *id).collect();
    let tx = crate::db::begin_write(db).await?;
    let written = async {
        lease.fence(&tx).await?;
        crate::outbox::enqueue_all(&tx, messages, now).await?;
        crate::db::availability::mark_time_zones_asked(&tx, &ids, now).await?;
        Ok::<(), crate::error::Error>(())
    }
    .await;
    crate::db::settle(tx, written).await
}

async fn reminders<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<LoopOutcome, crate::error::Error> {
    let interval = config.staffbot.reminder_interval;
    let working = config.staffbot.working_rule();
    let email = config.email.sending();
    let n =
        crate::staffing::reminders::run_once_with_hours(db, lease, interval, email, working, now)
            .await?;
    Ok(LoopOutcome {
        summary: format!("{n} worker(s) reminded"),
        queued: n > 0,
    })
}

async fn warnings<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<LoopOutcome, crate::error::Error> {
    let channel = config.staffbot.staffing_group_id.as_deref();
    let min_time = config.staffbot.staffing_min_time;
    let n = crate::staffing::warnings::run_once(db, lease, channel, min_time, now).await?;
    let summary = if channel.is_none() {
        "off (staffbot.staffing_group_id is not set)".to_string()
    } else {
        format!("{n} unstaffed task(s) reported")
    };
    Ok(LoopOutcome {
        summary,
        queued: n > 0,
    })
}

async fn sanity<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    now: DateTime<Utc>,
) -> Result<LoopOutcome, crate::error::Error> {
    let r = crate::sanity::run_once(db, lease, now).await?;
    let failed = if r.failed_projects > 0 {
        format!(", {} project(s) failed (see the log)", r.failed_projects)
    } else {
        String::new()
    };
    Ok(LoopOutcome {
        summary: format!(
            "{} project(s) checked, {} check(s) fired, {} message(s) queued{failed}",
            r.projects, r.checks, r.messages,
        ),
        queued: r.messages > 0,
    })
}

async fn machine<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<LoopOutcome, crate::error::Error> {
    let notices = config.notices();
    let r = crate::machine::run_once(db, lease, &config.machine, &notices, now).await?;
    Ok(LoopOutcome {
        summary: format!(
            "{} machine task(s) completed, {} failed (will retry), {} waiting for `task complete`",
            r.completed, r.failed, r.external
        ),
        queued: r.completed > 0,
    })
}

async fn retention<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<LoopOutcome, crate::error::Error> {
    let r = crate::retention::run_once(db, lease, &config.retention, now).await?;
    let more = if r.more { ", more in the next run" } else { "" };
    Ok(LoopOutcome {
        summary: format!(
            "{} handled envelope(s), {} email reply id(s) and {} sent or failed outbox row(s) deleted{more}",
            r.envelopes, r.email_replies, r.outbox,
        ),
        queued: false,
    })
}
