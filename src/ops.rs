//! Operations: Prometheus metrics and `/healthz` on `metrics.listen` (loopback by default).
//!
//! Metrics: `staffbot_envelopes_total{type}`, `staffbot_ack_seconds` (histogram),
//! `staffbot_outbox_depth`, `staffbot_outbox_oldest_seconds`, `staffbot_deliveries_total{method,
//! outcome}`, `staffbot_slack_api_errors_total{method,error}`, `staffbot_loop_runs_total{loop}`,
//! `staffbot_loop_seconds{loop}` (histogram), `staffbot_lease_held{loop}`,
//! `staffbot_socket_connections`.
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
use sea_orm::{DatabaseConnection, FromQueryResult};
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
/// The one statement behind both endpoints: the outbox gauges, and the database's health.
pub const PROBE_SQL: &str =
    "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM outbox WHERE status = 'pending'";

#[derive(Clone)]
struct Ops {
    db: DatabaseConnection,
    socket: Arc<SocketState>,
    clock: Arc<dyn Clock>,
    handle: PrometheusHandle,
    probe: Arc<Probe>,
}

#[derive(Debug, FromQueryResult)]
struct Depth {
    depth: i64,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the last look at the database found (`None`: it failed or timed out).
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    depth: Option<(i64, Option<chrono::DateTime<chrono::Utc>>)>,
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

impl Probe {
    fn fresh(&self) -> Option<Seen> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.filter(|s| s.at.elapsed() < PROBE_EVERY)
    }

    async fn get(&self, db: &DatabaseConnection) -> Seen {
        if let Some(seen) = self.fresh() {
            return seen;
        }
        let _running = self.running.lock().await;
        if let Some(seen) = self.fresh() {
            return seen;
        }
        let stmt = crate::db::statement(db.get_database_backend(), PROBE_SQL, vec![]);
        let depth =
            match tokio::time::timeout(PROBE_TIMEOUT, Depth::find_by_statement(stmt).one(db)).await
            {
                Ok(Ok(Some(d))) => Some((d.depth, d.oldest)),
                Ok(Ok(None)) => Some((0, None)),
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
            depth,
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
        seen
    }
}

async fn metrics_page(State(ops): State<Ops>) -> impl IntoResponse {
    if let Some((depth, oldest)) = ops.probe.get(&ops.db).await.depth {
        metrics::gauge!("staffbot_outbox_depth").set(depth as f64);
        let age = oldest
            .map(|o| (ops.clock.now() - o).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("staffbot_outbox_oldest_seconds").set(age);
    }
    metrics::gauge!("staffbot_socket_connections").set(ops.socket.open_connections() as f64);
    (
        [("content-type", "text/plain; version=0.0.4")],
        ops.handle.render(),
    )
}

async fn healthz(State(ops): State<Ops>) -> impl IntoResponse {
    let connected = ops.socket.open_connections() > 0;
    let database = ops.probe.get(&ops.db).await.depth.is_some();
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
    db: DatabaseConnection,
    socket: Arc<SocketState>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (metrics.listen): {e}"))?;
    let addr = listener.local_addr()?;
    let ops = Ops {
        db,
        socket,
        clock,
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
