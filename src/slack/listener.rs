//! The Socket Mode side. slack-morphism's clients manager owns the connections (opening them with
//! `apps.connections.open`, pings, reconnects); this listener receives every raw frame, so it can
//! see envelope ids, ack malformed payloads, and refuse new work while shutting down.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use slack_morphism::prelude::*;
use slack_morphism::socket_mode::clients_manager::{
    SlackSocketModeClientsManager, SlackSocketModeClientsManagerFactory,
};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use super::dispatch::{Ack, Dispatcher};
use super::envelope::{Frame, FrameError, parse_frame};

type Manager = dyn SlackSocketModeClientsManager + Send + Sync;

/// Connection facts other parts read (health, tests, start-up logs).
#[derive(Debug, Default)]
pub struct SocketState {
    /// `hello` frames received since start.
    pub hellos: AtomicUsize,
    /// Envelopes acked since start.
    pub envelopes: AtomicUsize,
    /// Woken on every hello.
    pub connected: Notify,
    /// Connections that said hello and have not gone away (by slack-morphism's client id).
    open: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl SocketState {
    pub fn open_connections(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    fn opened(&self, id: String) {
        if let Ok(mut o) = self.open.lock() {
            o.insert(id);
        }
    }

    fn closed(&self, id: &str) {
        if let Ok(mut o) = self.open.lock() {
            o.remove(id);
        }
    }
}

pub struct SocketListener {
    dispatcher: Arc<Dispatcher>,
    manager: OnceLock<Weak<Manager>>,
    accepting: AtomicBool,
    in_flight: TaskTracker,
    pub state: Arc<SocketState>,
}

impl SocketListener {
    fn manager(&self) -> Option<Arc<Manager>> {
        self.manager.get().and_then(Weak::upgrade)
    }

    async fn restart(&self, client_id: &SlackSocketModeWssClientId) {
        if let Some(m) = self.manager() {
            m.restart_client(client_id).await;
        }
    }
}

#[async_trait]
impl SlackSocketModeClientListener for SocketListener {
    async fn on_message(
        &self,
        client_id: &SlackSocketModeWssClientId,
        body: String,
    ) -> Option<String> {
        match parse_frame(&body) {
            Ok(Frame::Hello) => {
                let n = self.state.hellos.fetch_add(1, Ordering::SeqCst) + 1;
                self.state.opened(client_id.to_string());
                tracing::info!(connection = %client_id.to_string(), "connected to Slack (hello #{n})");
                self.state.connected.notify_waiters();
                None
            }
            Ok(Frame::Disconnect { reason }) => {
                if reason == "link_disabled" {
                    tracing::error!(
                        "Slack disabled Socket Mode for this app (link_disabled); reconnecting, but nothing will arrive until it is turned back on"
                    );
                } else {
                    tracing::info!(connection = %client_id.to_string(), "Slack asked to reconnect ({reason})");
                }
                self.state.closed(&client_id.to_string());
                self.restart(client_id).await;
                None
            }
            Ok(Frame::Envelope(envelope)) => {
                if !self.accepting.load(Ordering::SeqCst) {
                    // Shutting down: no ack, so Slack hands the envelope to another connection.
                    tracing::info!(envelope_id = %envelope.envelope_id, "shutting down; envelope left for another connection");
                    return None;
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
                        return envelope_id_of(&body).map(|id| Ack::Bare.frame(&id));
                    }
                };
                self.state.envelopes.fetch_add(1, Ordering::SeqCst);
                metrics::histogram!("staffbot_ack_seconds").record(started.elapsed().as_secs_f64());
                Some(frame)
            }
            Err(e) => {
                let id = envelope_id_of(&body);
                match (&e, &id) {
                    (FrameError::NoType | FrameError::NotJson(_), Some(id)) => {
                        tracing::warn!(envelope_id = %id, "unreadable frame acked and dropped: {e}")
                    }
                    _ => tracing::warn!("unreadable frame dropped: {e}"),
                }
                id.map(|id| Ack::Bare.frame(&id))
            }
        }
    }

    async fn on_error(&self, error: Box<dyn std::error::Error + Send + Sync>) {
        tracing::warn!("Socket Mode connection error: {error}");
    }

    async fn on_disconnect(&self, client_id: &SlackSocketModeWssClientId) {
        tracing::info!(connection = %client_id.to_string(), "Socket Mode connection closed; reconnecting");
        self.state.closed(&client_id.to_string());
        self.restart(client_id).await;
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

/// The running Socket Mode connections.
pub struct SocketMode {
    manager: Arc<Manager>,
    listener: Arc<SocketListener>,
}

impl SocketMode {
    /// Registers the app token with slack-morphism's clients manager (nothing is contacted yet).
    pub async fn new(
        client: Arc<SlackHyperClient>,
        app_token: SlackApiToken,
        dispatcher: Arc<Dispatcher>,
        config: SlackClientSocketModeConfig,
    ) -> anyhow::Result<SocketMode> {
        let env = Arc::new(SlackClientEventsListenerEnvironment::new(client.clone()));
        let manager = client.http_api.connector.new_clients_manager(env);
        let listener = Arc::new(SocketListener {
            dispatcher,
            manager: OnceLock::new(),
            accepting: AtomicBool::new(true),
            in_flight: TaskTracker::new(),
            state: Arc::new(SocketState::default()),
        });
        let _ = listener.manager.set(Arc::downgrade(&manager));
        manager
            .register_new_token(&config, app_token, listener.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot register the app token: {e}"))?;
        Ok(SocketMode { manager, listener })
    }

    pub fn state(&self) -> Arc<SocketState> {
        self.listener.state.clone()
    }

    /// Opens the connections (slack-morphism's `start`).
    pub async fn start(&self) {
        self.manager.start().await;
    }

    /// Stops taking envelopes, waits up to `deadline` for the ones being handled, then closes
    /// the connections (slack-morphism's `shutdown`).
    pub async fn shutdown(&self, deadline: std::time::Duration) {
        self.listener.accepting.store(false, Ordering::SeqCst);
        self.listener.in_flight.close();
        if tokio::time::timeout(deadline, self.listener.in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: envelopes still being handled after {deadline:?}");
        }
        self.manager.shutdown().await;
    }
}
