//! staffbot's own Socket Mode connections against the fake Slack: a refresh opens the
//! replacement before the old connection goes and loses or repeats no envelope; a silent (half-open)
//! connection is replaced; `apps.connections.open` failures are retried with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_slack::{FakeSlack, FakeSlackConfig, Fault};
use staffbot::clock::SystemClock;
use staffbot::daemon::Daemon;
use staffbot::slack::socket::SocketSettings;

use crate::common::TestDb;
use crate::harness::{WAIT, config_for};

/// One connection with timings short enough for a test.
fn quick() -> SocketSettings {
    SocketSettings {
        ping_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(600),
        first_backoff: Duration::from_millis(100),
        stable_after: Duration::from_secs(60),
        refresh_grace: Duration::from_secs(1),
        ..SocketSettings::new(1)
    }
}

/// A daemon with `settings`, connected to a fresh fake Slack.
async fn connected(settings: SocketSettings) -> (FakeSlack, TestDb, Daemon) {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    let config = config_for(&fake, &t.url);
    let daemon = Daemon::start_with(
        &config,
        t.db.clone(),
        Arc::new(SystemClock),
        tokio_util::sync::CancellationToken::new(),
        settings,
    )
    .await
    .expect("daemon starts");
    assert!(fake.wait_for_hellos(1, WAIT).await, "connected");
    (fake, t, daemon)
}

/// `/staffbot help` `n` times, one after the other; the envelope ids.
async fn slash_commands(fake: &FakeSlack, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(fake.send_slash("U0ADMIN", "erin", "help").await);
    }
    ids
}

/// Every envelope acked, and each exactly once.
async fn acked_once_each(fake: &FakeSlack, ids: &[String]) {
    for id in ids {
        assert!(fake.wait_ack(id, WAIT).await.is_some(), "no ack for {id}");
    }
    let mut acks: HashMap<String, usize> = HashMap::new();
    for ack in fake.acks() {
        *acks.entry(ack.envelope_id).or_default() += 1;
    }
    for id in ids {
        assert_eq!(acks.get(id), Some(&1), "acks for {id}");
    }
}

#[tokio::test]
async fn a_refresh_opens_the_replacement_first_and_loses_no_envelope() {
    let (fake, _t, daemon) = connected(quick()).await;
    let opens = fake.connection_opens();
    let before = slash_commands(&fake, 5).await;

    // Slack's warning: the old connection stays open (and may still get envelopes) while the
    // daemon opens its replacement, so for a while both are up.
    fake.send_disconnect_frame("warning").await;
    let during = slash_commands(&fake, 5).await;
    assert!(
        fake.wait_for_connections(2, WAIT).await,
        "the replacement opened while the old connection was still up"
    );
    assert_eq!(fake.connection_opens(), opens + 1, "one new connection");
    // The daemon retires the old one itself once its grace is over.
    assert!(
        fake.wait_for_connections_at_most(1, WAIT).await,
        "the old connection was closed"
    );

    // Slack's own refresh, with envelopes on the way: the connection is closed by Slack.
    let sending = tokio::spawn({
        let fake = fake.clone();
        async move { slash_commands(&fake, 20).await }
    });
    fake.disconnect("refresh_requested").await;
    let around = sending.await.expect("sent");
    let after = slash_commands(&fake, 5).await;
    assert_eq!(fake.connection_opens(), opens + 2, "one more connection");

    let all: Vec<String> = [before, during, around, after].concat();
    acked_once_each(&fake, &all).await;
    assert_eq!(daemon.socket.envelopes.load(Ordering::SeqCst), all.len());
    daemon.stop().await;
}

#[tokio::test]
async fn a_connection_that_goes_silent_is_replaced() {
    let (fake, _t, daemon) = connected(quick()).await;
    let (opens, hellos) = (fake.connection_opens(), fake.hellos_sent());

    // The peer vanishes without a FIN: no pongs, no frames, the TCP connection stays up.
    fake.stall_sockets();
    assert!(
        fake.wait_for_hellos(hellos + 1, WAIT).await,
        "a new connection after the pings went unanswered"
    );
    assert_eq!(fake.connection_opens(), opens + 1);
    let ids = slash_commands(&fake, 3).await;
    acked_once_each(&fake, &ids).await;
    // The silent connection no longer counts as open (/healthz, staffbot_socket_connections).
    assert_eq!(daemon.socket.open_connections(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn failing_connection_opens_are_retried_with_backoff() {
    let (fake, _t, daemon) = connected(quick()).await;
    let (hellos, calls) = (
        fake.hellos_sent(),
        fake.calls_to("apps.connections.open").len(),
    );

    // Two HTTP 500s, then two `ok:false` answers, then Slack answers again.
    fake.fail_next("apps.connections.open", Fault::ServerError, 2);
    fake.fail_next(
        "apps.connections.open",
        Fault::ApiError("internal_error".into()),
        2,
    );
    let dropped = Instant::now();
    fake.drop_sockets().await;
    assert!(
        fake.wait_for_hellos(hellos + 1, Duration::from_secs(20))
            .await,
        "connected once Slack answered"
    );
    let waited = dropped.elapsed();

    let opens: Vec<(u16, bool)> = fake.calls_to("apps.connections.open")[calls..]
        .iter()
        .map(|c| (c.status, c.response["ok"] == true))
        .collect();
    assert_eq!(
        opens,
        [
            (500, false),
            (500, false),
            (200, false),
            (200, false),
            (200, true)
        ],
        "four failures, then one success"
    );
    // Waits of 100 ms doubling per failure, each at least halved by the jitter: 50 (after the
    // lost connection) + 100 + 200 + 400 + 800 ms at least; retrying at once would take a few ms.
    assert!(
        waited >= Duration::from_millis(1550),
        "retried after {waited:?}"
    );
    let ids = slash_commands(&fake, 2).await;
    acked_once_each(&fake, &ids).await;
    daemon.stop().await;
}
