//! The one runner of periodic work: every [`Work`] of [`super::works`] runs in a task of its own
//! through [`run`].

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Work;
use crate::clock::Clock;

/// Where a work runs: the database, the clock, this process's name in leases, the leases' time
/// to live, and the sender to wake after a run that queued something.
#[derive(Clone)]
pub struct RunnerSettings {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub holder: String,
    pub lease_ttl: Duration,
    pub wake: Arc<Notify>,
}

/// Runs `work` until `cancel`. It wakes often enough to renew its lease well before the lease
/// lapses (every [`Work::tick`], and at least every third of the lease's time to live), so one replica
/// keeps it between runs (and `staffbot_lease_held` reads 1 there), and runs the work every
/// [`Work::period`] while it holds the lease (at once after taking it over). What a run queues
/// wakes the sender. A run whose lease passed to another process meanwhile writes nothing (every
/// transaction it makes is fenced by the lease's token).
pub async fn run(mut work: Box<dyn Work>, settings: RunnerSettings, cancel: CancellationToken) {
    let RunnerSettings {
        db,
        clock,
        holder,
        lease_ttl: ttl,
        wake,
    } = settings;
    let every = work.period();
    let mut renew = work.tick().min(ttl / 3);
    if !every.is_zero() {
        renew = renew.min(every);
    }
    let renew = renew.max(Duration::from_millis(100));
    let mut interval = tokio::time::interval(renew);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let name = work.name();
    // Registered up front, so they are scraped (as 0) before the first run.
    let runs = metrics::counter!("staffbot_loop_runs_total", "loop" => name);
    let seconds = metrics::histogram!("staffbot_loop_seconds", "loop" => name);
    let mut last_run: Option<tokio::time::Instant> = None;
    loop {
        let tick = work.wait(&mut interval, &cancel).await;
        if cancel.is_cancelled() {
            break;
        }
        let lease = match crate::lease::try_lease(&db, name, &holder, ttl).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                last_run = None;
                work.let_go().await;
                continue;
            }
            Err(e) => {
                tracing::error!(loop_name = name, "cannot take the lease: {e}");
                work.let_go().await;
                continue;
            }
        };
        if last_run.is_some_and(|at| tick - at < every) {
            continue;
        }
        last_run = Some(tick);
        let now = clock.now();
        let started = std::time::Instant::now();
        let result = work.run_once(&lease, now).await;
        runs.increment(1);
        seconds.record(started.elapsed().as_secs_f64());
        match result {
            Ok(outcome) if outcome.queued => {
                tracing::info!(loop_name = name, "{}", outcome.summary);
                wake.notify_one();
            }
            Ok(_) => {}
            Err(e) if e.is_lease_lost() => {
                tracing::warn!(
                    loop_name = name,
                    "the lease passed to another process during this run; its last writes were rolled back"
                );
                last_run = None;
            }
            Err(e) => tracing::error!(loop_name = name, "run failed: {e}"),
        }
    }
    work.let_go().await;
    if let Err(e) = crate::lease::release(&db, name, &holder).await {
        tracing::warn!(loop_name = name, "could not release the lease: {e}");
    }
}
