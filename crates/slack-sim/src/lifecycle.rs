//! Starting the fake, and the life of its Socket Mode connections: counts and waits, and
//! teardown (a `disconnect` frame, stalled and dropped sockets).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::{oneshot, watch};

use crate::fixtures;
use crate::state::{Outgoing, State};
use crate::web;
use crate::{FakeSlack, FakeSlackConfig, Inner};

/// How long teardown helpers wait for the sockets to be gone.
const TEARDOWN_WAIT: Duration = Duration::from_secs(5);
/// Delay between the `disconnect` frame and the Close frame.
const DISCONNECT_GRACE: Duration = Duration::from_millis(100);

impl FakeSlack {
    /// Binds `127.0.0.1:0` and serves in a spawned task on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start(config: FakeSlackConfig) -> FakeSlack {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        FakeSlack::start_on(config, addr)
            .await
            .expect("slack-sim: bind 127.0.0.1:0")
    }

    /// Binds `addr` (port 0: any free port) and serves there in a spawned task: the Web API
    /// under `/api`, Socket Mode under `/link`, and the workspace as a web page at `/`.
    pub async fn start_on(config: FakeSlackConfig, addr: SocketAddr) -> std::io::Result<FakeSlack> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ u32::from(addr.port()).rotate_left(16);
        let inner = Arc::new(Inner {
            config,
            addr,
            nonce,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        });
        let app = web::router(inner.clone());
        // Like any WebSocket server worth its salt (and Slack's), frames go out at once rather
        // than waiting for Nagle's algorithm to coalesce them.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(%err, "slack-sim: cannot set TCP_NODELAY");
            }
        });
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "slack-sim: server stopped");
            }
        });
        tracing::debug!(%addr, "slack-sim: listening");
        Ok(FakeSlack { inner })
    }

    /// The Web API base URL, `http://127.0.0.1:PORT/api` (no trailing slash).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.inner.base_url())
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The number of currently open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.inner.read(|s| s.conns.len())
    }

    /// The number of `hello` frames sent since start.
    pub fn hellos_sent(&self) -> usize {
        self.inner.read(|s| s.hellos_sent)
    }

    /// The number of successful `apps.connections.open` calls since start.
    pub fn connection_opens(&self) -> usize {
        self.inner.read(|s| s.connection_opens)
    }

    /// Waits until at least `n` connections are open; `false` on timeout.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        self.inner.wait_until(timeout, |s| s.conns.len() >= n).await
    }

    /// Waits until at least `n` hellos were sent since start; `false` on timeout.
    pub async fn wait_for_hellos(&self, n: usize, timeout: Duration) -> bool {
        self.inner.wait_until(timeout, |s| s.hellos_sent >= n).await
    }

    /// Sends `{"type":"disconnect","reason":reason,"debug_info":{"host":…}}` on every open
    /// connection, closes them (Close frame) about 100 ms later, and waits until they are gone.
    pub async fn disconnect(&self, reason: &str) {
        let targets: Vec<_> = self.inner.update(|s| {
            s.conns
                .iter_mut()
                .map(|(id, c)| {
                    c.closing = true;
                    (*id, c.tx.clone())
                })
                .collect()
        });
        if targets.is_empty() {
            return;
        }
        let mut frame = fixtures::load(fixtures::DISCONNECT);
        frame["reason"] = json!(reason);
        write_all(targets.iter().map(|(_, tx)| tx), &frame.to_string()).await;
        tokio::time::sleep(DISCONNECT_GRACE).await;
        for (_, tx) in &targets {
            let _ = tx.send(Outgoing::Close);
        }
        let ids: Vec<u64> = targets.iter().map(|(id, _)| *id).collect();
        self.wait_gone(&ids).await;
    }

    /// Sends `{"type":"disconnect","reason":reason,…}` on every open connection and leaves them
    /// open and deliverable, as Slack's `warning` comes about 10 s before the connection is
    /// closed. Waits until the frames are written.
    pub async fn send_disconnect_frame(&self, reason: &str) {
        let targets: Vec<_> = self
            .inner
            .read(|s| s.conns.values().map(|c| c.tx.clone()).collect());
        let mut frame = fixtures::load(fixtures::DISCONNECT);
        frame["reason"] = json!(reason);
        write_all(targets.iter(), &frame.to_string()).await;
    }

    /// Makes every open connection half-open: the fake stops reading it (client pings go
    /// unanswered, acks are not read) and sends nothing more on it, and no envelope goes to it;
    /// the TCP connection stays up, as when the peer vanished without a FIN. A stalled
    /// connection still counts in [`FakeSlack::connections`] until the fake closes it (never,
    /// unless [`FakeSlack::disconnect`] or [`FakeSlack::drop_sockets`] is called).
    pub fn stall_sockets(&self) {
        self.inner.update(|s| {
            for c in s.conns.values_mut() {
                c.closing = true;
                let _ = c.tx.send(Outgoing::Stall);
            }
        });
    }

    /// Waits until at most `n` connections are open; `false` on timeout.
    pub async fn wait_for_connections_at_most(&self, n: usize, timeout: Duration) -> bool {
        self.inner.wait_until(timeout, |s| s.conns.len() <= n).await
    }

    /// Drops every open socket abruptly (no Close frame; the TCP stream just ends) and waits
    /// until they are gone.
    pub async fn drop_sockets(&self) {
        let targets: Vec<(u64, tokio::task::AbortHandle)> = self.inner.read(|s| {
            s.conns
                .iter()
                .map(|(id, c)| (*id, c.abort.clone()))
                .collect()
        });
        for (_, abort) in &targets {
            abort.abort();
        }
        let ids: Vec<u64> = targets.iter().map(|(id, _)| *id).collect();
        self.wait_gone(&ids).await;
    }

    async fn wait_gone(&self, ids: &[u64]) {
        let gone = self
            .inner
            .wait_until(TEARDOWN_WAIT, |s| {
                ids.iter().all(|id| !s.conns.contains_key(id))
            })
            .await;
        if !gone {
            tracing::warn!("slack-sim: sockets still open {TEARDOWN_WAIT:?} after teardown");
        }
    }
}

/// Sends `frame` on every connection of `targets` and waits until each has written it (or is
/// gone).
async fn write_all<'a>(
    targets: impl Iterator<Item = &'a tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    frame: &str,
) {
    let mut writes = Vec::new();
    for tx in targets {
        let (done, written) = oneshot::channel();
        let text = Outgoing::Text {
            text: frame.to_string(),
            envelope_id: None,
            done,
        };
        if tx.send(text).is_ok() {
            writes.push(written);
        }
    }
    for written in writes {
        let _ = written.await;
    }
}
