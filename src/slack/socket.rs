//! Our own Socket Mode connections (slack-protocol §1). Each of `slack.socket_connections` slots
//! keeps one connection open: it asks `apps.connections.open` (with the app-level token, through
//! slack-morphism's Web API client) for a single-use URL, connects to it with TCP_NODELAY on (an ack
//! must not wait for Nagle's algorithm), and hands every text frame to the [`Listener`], writing
//! back what it answers. A connection pings Slack every [`SocketSettings::ping_interval`] and is
//! dropped as dead when nothing (no pong, ping or frame) has arrived for
//! [`SocketSettings::dead_after`]. When Slack announces a refresh (`disconnect` with `warning` or
//! `refresh_requested`) the replacement is opened first and the old connection keeps serving until
//! Slack closes it (or [`SocketSettings::refresh_grace`] passes); on any other loss the slot
//! reconnects, with exponential backoff and jitter after failures and short-lived connections.
//! Connection URLs carry a ticket: they are never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::listener::{Listener, Reaction, SocketState};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the connections behave. [`SocketSettings::new`] has the daemon's values; tests shorten them.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// Connections kept open (`slack.socket_connections`).
    pub connections: u32,
    /// The first connections open this far apart at start (so they do not all reconnect at once).
    pub stagger: Duration,
    /// A WebSocket ping goes out this often.
    pub ping_interval: Duration,
    /// A connection on which nothing arrived for this long is dead.
    pub dead_after: Duration,
    /// The wait before the second attempt after a failure; it doubles with each failure.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// A connection that lasted this long was healthy: the next loss reconnects at once.
    pub stable_after: Duration,
    /// After a refresh, the old connection is closed by us at the latest this long after Slack
    /// asked (Slack normally closes it first).
    pub refresh_grace: Duration,
    /// `apps.connections.open` and the WebSocket handshake, each, must answer within this.
    pub connect_timeout: Duration,
}

impl SocketSettings {
    pub fn new(connections: u32) -> SocketSettings {
        SocketSettings {
            connections,
            stagger: Duration::from_secs(1),
            ping_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
            refresh_grace: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The wait before the next attempt after `failures` failures in a row (none: no wait):
    /// `first_backoff · 2^(failures-1)`, at most `max_backoff`, times a random factor in
    /// [0.5, 1] so that connections (and replicas) do not retry in step.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let base = self
            .first_backoff
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(self.max_backoff);
        base.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// Why a connection could not be opened. Never carries the connection URL (it has a ticket).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("apps.connections.open was refused: {0}")]
    Refused(String),
    #[error("apps.connections.open is rate limited")]
    RateLimited(Option<Duration>),
    #[error("apps.connections.open failed: {0}")]
    Call(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the WebSocket to {host} did not open: {message}")]
    Handshake { host: String, message: String },
}

impl OpenError {
    fn from_call(e: SlackClientError) -> OpenError {
        match e {
            SlackClientError::ApiError(e) => OpenError::Refused(e.code),
            SlackClientError::RateLimitError(e) => OpenError::RateLimited(e.retry_after),
            SlackClientError::HttpError(e) => OpenError::Call(format!("HTTP {}", e.status_code)),
            // Parsing errors may quote the body, which holds the URL: say no more than the kind.
            SlackClientError::ProtocolError(_) => OpenError::Call("unreadable answer".into()),
            other => OpenError::Call(other.to_string()),
        }
    }
}

/// Opens connections: `apps.connections.open`, then the WebSocket.
struct Opener {
    client: Arc<SlackHyperClient>,
    app_token: SlackApiToken,
    timeout: Duration,
}

impl Opener {
    async fn open(&self) -> Result<(Ws, String), OpenError> {
        let session = self.client.open_session(&self.app_token);
        let request = SlackApiAppsConnectionOpenRequest::new();
        let response = tokio::time::timeout(self.timeout, session.apps_connections_open(&request))
            .await
            .map_err(|_| OpenError::Timeout(self.timeout))?
            .map_err(OpenError::from_call)?;
        let url = response.url.0;
        let host = url.host_str().unwrap_or("?").to_string();
        let connect = tokio_tungstenite::connect_async_with_config(
            url.as_str(),
            Some(WebSocketConfig::default()),
            true, // TCP_NODELAY: an ack goes out at once, not after the peer's delayed ACK.
        );
        let (ws, _) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| OpenError::Timeout(self.timeout))?
            .map_err(|e| OpenError::Handshake {
                host: host.clone(),
                message: e.to_string(),
            })?;
        Ok((ws, host))
    }
}

struct Shared {
    opener: Opener,
    listener: Arc<Listener>,
    settings: SocketSettings,
    next_id: AtomicU64,
}

/// The running Socket Mode connections.
pub struct SocketMode {
    shared: Arc<Shared>,
    stop: CancellationToken,
    slots: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// How long shutdown waits for the connections to close after the drain.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl SocketMode {
    /// Sets up the connections (nothing is contacted until [`SocketMode::start`]).
    pub fn new(
        client: Arc<SlackHyperClient>,
        app_token: SlackApiToken,
        listener: Arc<Listener>,
        settings: SocketSettings,
    ) -> SocketMode {
        let opener = Opener {
            client,
            app_token,
            timeout: settings.connect_timeout,
        };
        SocketMode {
            shared: Arc::new(Shared {
                opener,
                listener,
                settings,
                next_id: AtomicU64::new(1),
            }),
            stop: CancellationToken::new(),
            slots: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn state(&self) -> Arc<SocketState> {
        self.shared.listener.state.clone()
    }

    /// Starts every slot; the first connects at once, the others `stagger` apart.
    pub fn start(&self) {
        let handles = (0..self.shared.settings.connections).map(|index| {
            let wait = self.shared.settings.stagger.saturating_mul(index);
            tokio::spawn(slot(self.shared.clone(), wait, self.stop.child_token()))
        });
        if let Ok(mut slots) = self.slots.lock() {
            slots.extend(handles);
        }
    }

    /// Stops taking envelopes, waits up to `deadline` for the ones being handled (their acks
    /// still go out), then closes the connections.
    pub async fn shutdown(&self, deadline: Duration) {
        self.shared.listener.drain(deadline).await;
        self.stop.cancel();
        let slots = self
            .slots
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let all = futures_util::future::join_all(slots);
        if tokio::time::timeout(CLOSE_WAIT, all).await.is_err() {
            tracing::warn!("shutdown: Socket Mode connections still closing after {CLOSE_WAIT:?}");
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// Shutting down.
    Stopped,
    /// Slack closed it, or it broke, or went silent.
    Lost,
    /// Slack announced its end for a reason a replacement-first swap does not fit
    /// (`link_disabled`, `too_many_websockets`, …).
    Disconnected,
    /// It had asked for a replacement and has now finished.
    Retired,
}

/// One slot: keeps one connection open until `stop`.
async fn slot(shared: Arc<Shared>, wait: Duration, stop: CancellationToken) {
    if !pause(wait, &stop).await {
        return;
    }
    let settings = &shared.settings;
    let mut failures = 0u32;
    let mut wait = Duration::ZERO;
    // Connections that asked to be replaced and are still serving.
    let mut retiring: Vec<JoinHandle<End>> = Vec::new();
    loop {
        if !pause(wait, &stop).await {
            break;
        }
        let opened = tokio::select! {
            _ = stop.cancelled() => break,
            opened = shared.opener.open() => opened,
        };
        let (ws, host) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                failures += 1;
                wait = retry_wait(settings, failures, &e);
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(connection = id, %host, "Socket Mode WebSocket open");
        let (refresh_tx, mut refresh_rx) = oneshot::channel();
        let started = Instant::now();
        let mut conn = tokio::spawn(serve(
            shared.clone(),
            ws,
            id,
            refresh_tx,
            stop.child_token(),
        ));
        let end = tokio::select! {
            asked = &mut refresh_rx => match asked {
                Ok(()) => None,
                Err(_) => Some((&mut conn).await),
            },
            end = &mut conn => Some(end),
        };
        retiring.retain(|c| !c.is_finished());
        let Some(end) = end else {
            // Slack asked for a refresh: open the replacement now; the old one serves meanwhile.
            failures = 0;
            wait = Duration::ZERO;
            retiring.push(conn);
            continue;
        };
        failures = match end {
            Ok(End::Stopped) => break,
            Ok(End::Disconnected) => failures + 1,
            Ok(_) if started.elapsed() >= settings.stable_after => 0,
            Ok(_) => failures + 1,
            Err(e) => {
                tracing::error!(connection = id, "Socket Mode connection task failed: {e}");
                failures + 1
            }
        };
        wait = settings.backoff(failures);
    }
    futures_util::future::join_all(retiring).await;
}

/// The wait before the next attempt after a failed open (logged): the backoff, or Slack's
/// `Retry-After` if longer.
fn retry_wait(settings: &SocketSettings, failures: u32, e: &OpenError) -> Duration {
    let mut wait = settings.backoff(failures);
    if let OpenError::RateLimited(Some(after)) = e {
        wait = wait.max(*after);
    }
    match e {
        OpenError::Refused(code) if code == "invalid_auth" || code == "not_authed" => {
            tracing::error!(
                "cannot open a Socket Mode connection: {e} (check SLACK_APP_TOKEN); retrying in {wait:.1?}"
            )
        }
        _ => tracing::warn!("cannot open a Socket Mode connection: {e}; retrying in {wait:.1?}"),
    }
    wait
}

/// Sleeps for `wait`; `false` if stopped meanwhile.
async fn pause(wait: Duration, stop: &CancellationToken) -> bool {
    if wait.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// Unregisters a connection from [`SocketState`] however its task ends.
struct OpenGuard {
    state: Arc<SocketState>,
    id: u64,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.state.closed(self.id);
    }
}

/// One open connection's writing half and what it remembers.
struct Live {
    shared: Arc<Shared>,
    id: u64,
    sink: futures_util::stream::SplitSink<Ws, Message>,
    /// Fired when Slack asks for a replacement (once).
    refresh: Option<oneshot::Sender<()>>,
    /// After a refresh: when we close it ourselves if Slack has not.
    retire_at: Option<Instant>,
}

impl Live {
    /// A ping, unless the connection has been silent too long.
    async fn ping(&mut self, last_seen: Instant) -> Option<End> {
        let dead_after = self.shared.settings.dead_after;
        if last_seen.elapsed() >= dead_after {
            tracing::warn!(
                connection = self.id,
                "no answer from Slack for {dead_after:?}; reconnecting"
            );
            return Some(End::Lost);
        }
        let payload = rand::random::<[u8; 8]>().to_vec();
        if let Err(e) = self.sink.send(Message::Ping(payload.into())).await {
            tracing::warn!(
                connection = self.id,
                "Socket Mode ping failed: {e}; reconnecting"
            );
            return Some(End::Lost);
        }
        None
    }

    /// How a connection that stopped by itself ended.
    fn gone(&self) -> End {
        if self.retire_at.is_some() {
            End::Retired
        } else {
            End::Lost
        }
    }

    /// One frame (or the end of the stream) from Slack.
    async fn frame(&mut self, frame: Option<Result<Message, WsError>>) -> Option<End> {
        let id = self.id;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            // Pings are answered by tungstenite itself; pongs and pings only show liveness.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return None,
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!(
                    connection = id,
                    "unexpected binary frame from Slack ignored"
                );
                return None;
            }
            Some(Ok(Message::Close(_))) | None => return Some(self.gone()),
            Some(Err(e)) => {
                tracing::warn!(connection = id, "Socket Mode connection lost: {e}");
                return Some(self.gone());
            }
        };
        match self.shared.listener.on_text(id, text.as_str()).await {
            Reaction::Nothing => None,
            Reaction::Reply(frame) => match self.sink.send(Message::Text(frame.into())).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(connection = id, "cannot write an ack: {e}; reconnecting");
                    Some(End::Lost)
                }
            },
            Reaction::Disconnect(reason)
                if reason == "warning" || reason == "refresh_requested" =>
            {
                if let Some(refresh) = self.refresh.take() {
                    let _ = refresh.send(());
                    self.retire_at = Some(Instant::now() + self.shared.settings.refresh_grace);
                }
                None
            }
            Reaction::Disconnect(_) => Some(End::Disconnected),
        }
    }
}

/// Serves one connection until it ends. `refresh` is fired when Slack asks for a replacement;
/// the connection then keeps serving until Slack closes it or `refresh_grace` passes.
async fn serve(
    shared: Arc<Shared>,
    ws: Ws,
    id: u64,
    refresh: oneshot::Sender<()>,
    stop: CancellationToken,
) -> End {
    let state = shared.listener.state.clone();
    let _guard = OpenGuard {
        state: state.clone(),
        id,
    };
    let every = shared.settings.ping_interval;
    let (sink, mut stream) = ws.split();
    let mut live = Live {
        shared,
        id,
        sink,
        refresh: Some(refresh),
        retire_at: None,
    };
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    let end = loop {
        let step = tokio::select! {
            biased;
            _ = stop.cancelled() => Some(End::Stopped),
            _ = sleep_until(live.retire_at) => {
                tracing::info!(connection = id, "closing the refreshed Socket Mode connection");
                Some(End::Retired)
            }
            _ = ping.tick() => live.ping(last_seen).await,
            frame = stream.next() => {
                let step = live.frame(frame).await;
                // Time spent handling an envelope is not silence on the connection.
                last_seen = Instant::now();
                step
            }
        };
        if let Some(end) = step {
            break end;
        }
    };
    state.closed(id);
    if !matches!(end, End::Lost) {
        // A polite Close; a connection that is already gone fails fast or times out.
        let _ = tokio::time::timeout(Duration::from_secs(1), live.sink.close()).await;
    }
    tracing::debug!(connection = id, "Socket Mode connection ended: {end:?}");
    end
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let s = SocketSettings::new(1);
        assert_eq!(s.backoff(0), Duration::ZERO);
        for _ in 0..50 {
            let first = s.backoff(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let third = s.backoff(3);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            let late = s.backoff(40);
            assert!(late >= Duration::from_secs(15) && late <= Duration::from_secs(30));
        }
    }

    #[test]
    fn open_errors_never_quote_the_answer() {
        let e = OpenError::from_call(SlackClientError::ProtocolError(
            slack_morphism::errors::SlackClientProtocolError::new(
                serde_json::from_str::<serde_json::Value>("x").expect_err("bad json"),
            )
            .with_json_body("{\"url\":\"wss://x/link/?ticket=secret\"}".into()),
        ));
        assert!(!e.to_string().contains("ticket"), "{e}");
    }
}
