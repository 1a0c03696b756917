//! `staffbot serve`: the daemon, until SIGINT or SIGTERM. The first signal stops it in order
//! (no new envelopes, in-flight ones finished, loops stopped, exit 0); a second exits at once.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::App;
use crate::daemon::{Daemon, StartError};

pub async fn run(app: &App) -> anyhow::Result<()> {
    // Signal handlers first: a signal during start-up must not kill the process half-way.
    let mut signals = Signals::new()?;
    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            signals.recv().await;
            tracing::info!("signal received; stopping (send it again to exit at once)");
            cancel.cancel();
            signals.recv().await;
            tracing::warn!("second signal; exiting now");
            std::process::exit(1);
        }
    });
    let daemon =
        match Daemon::start(&app.config, app.db.clone(), Arc::clone(&app.clock), cancel).await {
            Ok(d) => d,
            Err(StartError::Cancelled) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    daemon.join().await;
    Ok(())
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
