//! `staffbot serve`: the daemon, until SIGINT or SIGTERM. The first signal stops it in order
//! (no new envelopes, in-flight ones finished, loops stopped, exit 0); a second exits at once.

use std::sync::Arc;

use super::App;
use crate::daemon::Daemon;

pub async fn run(app: &App) -> anyhow::Result<()> {
    let daemon = Daemon::start(&app.config, app.db.clone(), Arc::clone(&app.clock)).await?;
    let cancel = daemon.cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; stopping (send it again to exit at once)");
        cancel.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal; exiting now");
        std::process::exit(1);
    });
    daemon.join().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
