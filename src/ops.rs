//! Operations: Prometheus metrics and `/healthz` on `metrics.listen` (loopback by default).
//!
//! Metrics: `staffbot_envelopes_total{type}`, `staffbot_ack_seconds` (histogram),
//! `staffbot_outbox_depth`, `staffbot_outbox_oldest_seconds`, `staffbot_deliveries_total{method,
//! outcome}`, `staffbot_slack_api_errors_total{method,error}`, `staffbot_loop_runs_total{loop}`,
//! `staffbot_loop_seconds{loop}` (histogram), `staffbot_lease_held{loop}` (from the leases
//! table, on the database's clock), `staffbot_socket_connections`,
//! `staffbot_offers_undeliverable_total`.
//!
//! Both endpoints read the database through [`Probe`]: one query a second at most, whatever
//! the scrape rate.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::slack::listener::SocketState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide metrics recorder once; later calls return the same handle.
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (a test binary): keep ours for rendering.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// How long one look at the database serves `/metrics` and `/healthz`.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A look at the database that takes longer than this counts as "unreachable".
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// What the endpoints report on.
#[derive(Clone)]
pub struct Sources {
    pub db: DatabaseConnection,
    pub socket: Arc<SocketState>,
    pub clock: Arc<dyn Clock>,
    /// This process's name in the leases table.
    pub holder: String,
}

#[derive(Clone)]
struct Ops {
    sources: Sources,
    handle: PrometheusHandle,
    probe: Arc<Probe>,
}

/// What one look at the database found.
#[derive(Debug, Clone, Copy)]
struct Found {
    depth: i64,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
    /// Per loop (in [`crate::loops::Loop::ALL`]'s order): whether this process holds its lease.
    held: [bool; crate::loops::Loop::ALL.len()],
}

/// What the last look at the database found (`None`: it failed or timed out).
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    found: Option<Found>,
}

/// The database as scrapes see it: one query at most every [`PROBE_EVERY`], however many
/// scrapes arrive (on SQLite the pool is one connection, shared with envelopes and loops, so a
/// query per scrape would delay acks). Scrapes arriving while it runs wait for its answer
/// rather than ask again.
#[derive(Default)]
struct Probe {
    last: std::sync::Mutex<Option<Seen>>,
    running: tokio::sync::Mutex<()>,
}

/// The one statement behind both endpoints: the outbox gauges, the leases `holder` holds (one
/// per loop), and so the database's health.
async fn look(db: &DatabaseConnection, holder: &str) -> Result<Found, sea_orm::DbErr> {
    let names = crate::loops::Loop::ALL.map(|which| which.name());
    let now = crate::db::db_now(db.get_database_backend());
    let probed = crate::db::health::probe(db, holder, &names, now).await?;
    let mut held = [false; crate::loops::Loop::ALL.len()];
    for (h, p) in held.iter_mut().zip(probed.held) {
        *h = p;
    }
    Ok(Found {
        depth: probed.depth,
        oldest: probed.oldest,
        held,
    })
}

impl Probe {
    fn fresh(&self) -> Option<Seen> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.filter(|s| s.at.elapsed() < PROBE_EVERY)
    }

    async fn get(&self, db: &DatabaseConnection, holder: &str) -> Seen {
        if let Some(seen) = self.fresh() {
            return seen;
        }
        let _running = self.running.lock().await;
        if let Some(seen) = self.fresh() {
            return seen;
        }
        let found = match tokio::time::timeout(PROBE_TIMEOUT, look(db, holder)).await {
            Ok(Ok(found)) => Some(found),
            Ok(Err(e)) => {
                tracing::warn!("health probe failed: {e}");
                None
            }
            Err(_) => {
                tracing::warn!("health probe timed out after {PROBE_TIMEOUT:?}");
                None
            }
        };
        let seen = Seen {
            at: Instant::now(),
            found,
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
        seen
    }
}

async fn metrics_page(State(ops): State<Ops>) -> impl IntoResponse {
    let Ops {
        sources,
        handle,
        probe,
    } = ops;
    if let Some(found) = probe.get(&sources.db, &sources.holder).await.found {
        metrics::gauge!("staffbot_outbox_depth").set(found.depth as f64);
        let age = found
            .oldest
            .map(|o| (sources.clock.now() - o).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("staffbot_outbox_oldest_seconds").set(age);
        for (which, held) in crate::loops::Loop::ALL.iter().zip(found.held) {
            metrics::gauge!("staffbot_lease_held", "loop" => which.name()).set(if held {
                1.0
            } else {
                0.0
            });
        }
    }
    metrics::gauge!("staffbot_socket_connections").set(sources.socket.open_connections() as f64);
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle.render(),
    )
}

async fn healthz(State(ops): State<Ops>) -> impl IntoResponse {
    let connected = ops.sources.socket.open_connections() > 0;
    let database = ops
        .probe
        .get(&ops.sources.db, &ops.sources.holder)
        .await
        .found
        .is_some();
    let body = serde_json::json!({
        "socket_mode": if connected { "connected" } else { "disconnected" },
        "database": if database { "ok" } else { "unreachable" },
    });
    let status = if connected && database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Serves `/metrics` and `/healthz` on `listen` until `cancel`; returns the bound address.
pub async fn serve(
    listen: &str,
    sources: Sources,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (metrics.listen): {e}"))?;
    let addr = listener.local_addr()?;
    let ops = Ops {
        sources,
        handle: recorder(),
        probe: Arc::new(Probe::default()),
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .with_state(ops);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    });
    tracing::info!("metrics and /healthz on http://{addr}");
    Ok(addr)
}
