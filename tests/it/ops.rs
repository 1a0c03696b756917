//! `metrics.listen`: Prometheus text on `/metrics` and `/healthz`, from a running daemon.

use sea_orm::ConnectionTrait;
use staffbot::db::statement;
use staffbot::outbox::enqueue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{readme_section, table_code_cells};
use crate::harness::Harness;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `/healthz`, and `/metrics` with every metric the README's table documents.
#[tokio::test]
async fn metrics_and_health() {
    let documented = table_code_cells(&readme_section("Metrics and health"));
    assert!(documented.len() >= 10, "{documented:?}");
    let mut h = Harness::new().await;
    h.config.metrics.listen = Some("127.0.0.1:0".into());
    // The daemon's loops tick once, at start, while the test holds their leases, and do not
    // wake again during the test (a loop wakes at least every third of the lease's time to
    // live to renew it: it would take back the lease the test expires below).
    h.config.loops.tick_interval = std::time::Duration::from_secs(3600);
    h.config.loops.lease_ttl = std::time::Duration::from_secs(3600);
    h.hold_loop_leases().await;
    // A delivery Slack refuses, then one it takes: once the second arrives, the first is counted.
    let now = chrono::Utc::now();
    for (key, channel) in [("lost", "C0GONE"), ("hello", "U0ALICE")] {
        enqueue(h.db(), key, crate::common::note(channel, key), now)
            .await
            .expect("queued");
    }
    h.start().await;
    let addr = h.metrics_addr().expect("listening");
    assert!(addr.ip().is_loopback());

    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        health,
        serde_json::json!({"socket_mode": "connected", "database": "ok"})
    );

    assert_eq!(h.next_post("U0ALICE").await, "hello");
    let reply = h.reply("U0NOBODY", "help").await;
    assert_eq!(reply["text"], "You are not authorized to staff projects!");
    // This process holds `staffing`; another replica holds `reminders` (an expired lease of
    // this process's own would be taken again by its next tick, a race); the test holds the
    // rest.
    let me = h.daemon_name().expect("running").to_string();
    let db = h.db();
    for (name, holder) in [("staffing", me.as_str()), ("reminders", "another-replica")] {
        db.execute_raw(statement(
            db.get_database_backend(),
            "UPDATE leases SET holder = $1, expires_at = $2 WHERE name = $3",
            vec![
                holder.into(),
                (now + chrono::Duration::hours(1)).into(),
                name.into(),
            ],
        ))
        .await
        .expect("lease moved");
    }
    // The page is at most a second old (one database query a second serves every scrape).
    let moved = std::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = get(addr, "/metrics").await;
        if body.contains("staffbot_lease_held{loop=\"staffing\"} 1")
            || moved.elapsed() > std::time::Duration::from_secs(3)
        {
            break (status, body);
        }
        // Polling interval, not a wait for something to happen.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200);
    for name in &documented {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} (README) missing from:\n{body}"
        );
    }
    for expected in [
        "staffbot_envelopes_total{type=\"slash_commands\"}",
        "staffbot_outbox_depth 0",
        "staffbot_outbox_oldest_seconds 0",
        // Counters are process-wide: other tests' daemons may add to them.
        "staffbot_deliveries_total{method=\"chat.postMessage\",outcome=\"failed\"}",
        "staffbot_slack_api_errors_total{method=\"chat.postMessage\",error=\"channel_not_found\"}",
        "staffbot_loop_runs_total{loop=\"retention\"}",
        "staffbot_lease_held{loop=\"staffing\"} 1",
        "staffbot_lease_held{loop=\"reminders\"} 0",
        "staffbot_lease_held{loop=\"retention\"} 0",
    ] {
        assert!(body.contains(expected), "{expected} missing from:\n{body}");
    }

    h.finish().await;
}

/// SQLite: commits never copy the write-ahead log back (no checkpoint inside an envelope's
/// transaction); `serve`'s checkpointer does, on its own connection.
#[tokio::test]
async fn sqlite_checkpoints_happen_outside_commits() {
    use sea_orm::ConnectionTrait;
    let t = crate::common::TestDb::new().await;
    if staffbot::db::is_postgres(&t.db) {
        return;
    }
    let path = t
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .expect("path")
        .to_string();
    let size = || std::fs::metadata(&path).expect("database file").len();
    let before = size();
    // About 8 MB through the pool: twice SQLite's default automatic checkpoint threshold.
    for i in 0..64 {
        t.db.execute_unprepared(&format!(
            "INSERT INTO handled_envelopes (envelope_id, handled_at) VALUES ('e{i}', '2026-11-27T09:00:00Z');
             UPDATE handled_envelopes SET response = '\"{}\"' WHERE envelope_id = 'e{i}'",
            "x".repeat(128 * 1024)
        ))
        .await
        .expect("write");
    }
    assert_eq!(size(), before, "no checkpoint happened inside a commit");
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    staffbot::db::run_checkpointer(t.url.clone(), std::time::Duration::from_secs(1), cancel).await;
    assert!(
        size() > before + 4 * 1024 * 1024,
        "the checkpointer copied the log into the database ({} → {} bytes)",
        before,
        size()
    );
}

/// Issue 18: scrapes never cost a query each. Two hundred scrapes of both endpoints, twenty at
/// a time, cost at most one database query per second; `/healthz` still notices within a
/// couple of seconds when the database goes away.
#[tokio::test]
async fn scrapes_share_one_query_a_second() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    let t = crate::common::TestDb::new().await;
    let mut db = staffbot::db::connect(&t.url).await.expect("connect");
    let queries = Arc::new(AtomicUsize::new(0));
    db.set_metric_callback({
        let queries = queries.clone();
        move |_| {
            queries.fetch_add(1, Ordering::SeqCst);
        }
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let addr = staffbot::ops::serve(
        "127.0.0.1:0",
        staffbot::ops::Sources {
            db: db.clone(),
            socket: Arc::new(staffbot::slack::listener::SocketState::default()),
            clock: Arc::new(staffbot::clock::SystemClock),
            holder: "test".into(),
        },
        cancel.clone(),
    )
    .await
    .expect("listening");

    let started = Instant::now();
    for _ in 0..10 {
        let scrapes = (0..20).map(|i| get(addr, if i % 2 == 0 { "/metrics" } else { "/healthz" }));
        for (status, body) in futures_util::future::join_all(scrapes).await {
            // No Socket Mode connection here: /healthz says 503, with the database ok.
            assert!(status == 200 || status == 503, "{status} {body}");
            if status == 503 {
                assert!(body.contains("\"database\":\"ok\""), "{body}");
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = queries.load(Ordering::SeqCst);
    assert!(
        n >= 1 && (n as f64) <= seconds.ceil() + 1.0,
        "{n} queries for 200 scrapes in {seconds:.2} s"
    );

    // The database goes away: reported within a couple of seconds.
    db.close_by_ref().await.expect("close");
    let closed = Instant::now();
    loop {
        let (status, body) = get(addr, "/healthz").await;
        if body.contains("\"database\":\"unreachable\"") {
            assert_eq!(status, 503);
            break;
        }
        assert!(
            closed.elapsed() < Duration::from_secs(3),
            "still {body} after {:?}",
            closed.elapsed()
        );
        // Polling interval, not a wait for something to happen.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
}
