//! Operations: Prometheus metrics and `/healthz` on `metrics.listen` (loopback by default).
//!
//! Metrics: `staffbot_envelopes_total{type}`, `staffbot_ack_seconds` (histogram),
//! `staffbot_outbox_depth`, `staffbot_outbox_oldest_seconds`, `staffbot_deliveries_total{method,
//! outcome}`, `staffbot_slack_api_errors_total{method,error}`, `staffbot_loop_runs_total{loop}`,
//! `staffbot_loop_seconds{loop}` (histogram), `staffbot_lease_held{loop}` (read from the leases
//! table at each scrape), `staffbot_socket_connections`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};
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
}

#[derive(Debug, FromQueryResult)]
struct Depth {
    depth: i64,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, FromQueryResult)]
struct HeldLease {
    name: String,
}

/// The loops whose lease `holder` holds at `now`.
async fn held_leases<C: ConnectionTrait>(
    conn: &C,
    holder: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let stmt = crate::db::statement(
        conn.get_database_backend(),
        "SELECT name FROM leases WHERE holder = $1 AND expires_at > $2",
        vec![holder.into(), now.into()],
    );
    Ok(HeldLease::find_by_statement(stmt)
        .all(conn)
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect())
}

/// Sets `staffbot_lease_held{loop}` for every loop: 1 where `holder` holds the lease now.
async fn record_leases_held<C: ConnectionTrait>(
    conn: &C,
    holder: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sea_orm::DbErr> {
    let held = held_leases(conn, holder, now).await?;
    for which in crate::loops::Loop::ALL {
        let name = which.name();
        let value = if held.iter().any(|h| h == name) {
            1.0
        } else {
            0.0
        };
        metrics::gauge!("staffbot_lease_held", "loop" => name).set(value);
    }
    Ok(())
}

async fn metrics_page(State(ops): State<Ops>) -> impl IntoResponse {
    let Ops {
        sources: ops,
        handle,
    } = ops;
    let stmt = crate::db::statement(
        ops.db.get_database_backend(),
        "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM outbox WHERE status = 'pending'",
        vec![],
    );
    if let Ok(Some(d)) = Depth::find_by_statement(stmt).one(&ops.db).await {
        metrics::gauge!("staffbot_outbox_depth").set(d.depth as f64);
        let age = d
            .oldest
            .map(|o| (ops.clock.now() - o).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("staffbot_outbox_oldest_seconds").set(age);
    }
    if let Err(e) = record_leases_held(&ops.db, &ops.holder, ops.clock.now()).await {
        tracing::debug!("cannot read the leases for staffbot_lease_held: {e}");
    }
    metrics::gauge!("staffbot_socket_connections").set(ops.socket.open_connections() as f64);
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle.render(),
    )
}

async fn healthz(State(ops): State<Ops>) -> impl IntoResponse {
    let ops = ops.sources;
    let connected = ops.socket.open_connections() > 0;
    let database = ops.db.execute_unprepared("SELECT 1").await.is_ok();
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
