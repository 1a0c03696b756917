//! The Socket Mode frames' meaning: hellos, `disconnect`s and envelopes, and the acks written back.
//! The connections themselves (opening, pings, reconnects) are [`super::socket`]'s; it hands every
//! text frame to [`Listener::on_text`] and writes what comes back. The listener also refuses new
//! work while shutting down and lets shutdown wait for the envelopes being handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use super::dispatch::{Ack, Dispatcher};
use super::envelope::{Frame, FrameError, parse_frame};

/// Connection facts other parts read (health, tests, start-up logs).
#[derive(Debug, Default)]
pub struct SocketState {
    /// `hello` frames received since start.
    pub hellos: AtomicUsize,
    /// Envelopes acked since start.
    pub envelopes: AtomicUsize,
    /// Woken on every hello.
    pub connected: Notify,
    /// Connections that said hello and have not gone away (by connection number).
    open: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl SocketState {
    pub fn open_connections(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    fn opened(&self, id: u64) {
        if let Ok(mut o) = self.open.lock() {
            o.insert(id);
        }
    }

    /// The connection `id` is gone (or going): it no longer counts as open.
    pub(crate) fn closed(&self, id: u64) {
        if let Ok(mut o) = self.open.lock() {
            o.remove(&id);
        }
    }
}

/// What the connection does after a text frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaction {
    /// Nothing to send.
    Nothing,
    /// Send this frame (an envelope's ack) on the same connection.
    Reply(String),
    /// Slack announced the end of this connection (`disconnect`, with its reason).
    Disconnect(String),
}

/// Reads frames for every connection: one listener per process.
pub struct Listener {
    dispatcher: Arc<Dispatcher>,
    accepting: AtomicBool,
    in_flight: TaskTracker,
    pub state: Arc<SocketState>,
}

impl Listener {
    pub fn new(dispatcher: Arc<Dispatcher>) -> Listener {
        Listener {
            dispatcher,
            accepting: AtomicBool::new(true),
            in_flight: TaskTracker::new(),
            state: Arc::new(SocketState::default()),
        }
    }

    /// One text frame from connection `conn`. An envelope is handled before this returns, so
    /// its ack follows the state change (and a connection handles one envelope at a time).
    pub async fn on_text(&self, conn: u64, body: &str) -> Reaction {
        match parse_frame(body) {
            Ok(Frame::Hello) => {
                let n = self.state.hellos.fetch_add(1, Ordering::SeqCst) + 1;
                self.state.opened(conn);
                tracing::info!(connection = conn, "connected to Slack (hello #{n})");
                self.state.connected.notify_waiters();
                Reaction::Nothing
            }
            Ok(Frame::Disconnect { reason }) => {
                if reason == "link_disabled" {
                    tracing::error!(
                        connection = conn,
                        "Slack disabled Socket Mode for this app (link_disabled); reconnecting, but nothing will arrive until it is turned back on"
                    );
                } else {
                    tracing::info!(connection = conn, "Slack asked to reconnect ({reason})");
                }
                Reaction::Disconnect(reason)
            }
            Ok(Frame::Envelope(envelope)) => {
                if !self.accepting.load(Ordering::SeqCst) {
                    // Shutting down: no ack, so Slack hands the envelope to another connection.
                    tracing::info!(envelope_id = %envelope.envelope_id, "shutting down; envelope left for another connection");
                    return Reaction::Nothing;
                }
                metrics::counter!("staffbot_envelopes_total", "type" => envelope.kind.clone())
                    .increment(1);
                let started = std::time::Instant::now();
                let dispatcher = self.dispatcher.clone();
                // Tracked, so shutdown waits for it; awaited, so the ack follows the state change.
                let handle = self.in_flight.spawn(async move {
                    dispatcher
                        .dispatch(&envelope)
                        .await
                        .frame(&envelope.envelope_id)
                });
                let frame = match handle.await {
                    Ok(frame) => frame,
                    Err(e) => {
                        tracing::error!("envelope handler panicked: {e}");
                        return envelope_id_of(body).map_or(Reaction::Nothing, |id| {
                            Reaction::Reply(Ack::Bare.frame(&id))
                        });
                    }
                };
                self.state.envelopes.fetch_add(1, Ordering::SeqCst);
                metrics::histogram!("staffbot_ack_seconds").record(started.elapsed().as_secs_f64());
                Reaction::Reply(frame)
            }
            Err(e) => {
                let id = envelope_id_of(body);
                match (&e, &id) {
                    (FrameError::NoType | FrameError::NotJson(_), Some(id)) => {
                        tracing::warn!(envelope_id = %id, "unreadable frame acked and dropped: {e}")
                    }
                    _ => tracing::warn!("unreadable frame dropped: {e}"),
                }
                id.map_or(Reaction::Nothing, |id| {
                    Reaction::Reply(Ack::Bare.frame(&id))
                })
            }
        }
    }

    /// Stops taking envelopes (they are left unacked for another connection) and waits up to
    /// `deadline` for the ones being handled.
    pub async fn drain(&self, deadline: Duration) {
        self.accepting.store(false, Ordering::SeqCst);
        self.in_flight.close();
        if tokio::time::timeout(deadline, self.in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: envelopes still being handled after {deadline:?}");
        }
    }
}

/// The envelope id of a frame that did not parse as a whole, if there is one to ack.
fn envelope_id_of(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value
        .get("envelope_id")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
