//! Socket Mode: the `/link/` WebSocket endpoint and the task that owns each connection.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::Inner;
use crate::fixtures;
use crate::state::{Conn, Outgoing};

/// The server side of one Socket Mode connection.
type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How long to wait for the client's Close reply after our Close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_millis(500);

/// `GET /link/?ticket=…&app_id=…[&debug_reconnects=true]`.
pub(crate) async fn link(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let ticket = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned());
    let valid = ticket
        .as_ref()
        .is_some_and(|t| inner.read(|s| s.tickets.contains(t)));
    if !valid {
        tracing::debug!(?ticket, "slack-sim: rejected WebSocket ticket");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"ok": false, "error": "invalid_ticket"}).to_string(),
        )
            .into_response();
    }
    let accept_key = match check_upgrade(&request) {
        Ok(key) => derive_accept_key(key.as_bytes()),
        Err((status, body)) => {
            tracing::debug!(%status, body, "slack-sim: rejected WebSocket upgrade");
            return (status, body).into_response();
        }
    };
    let consumed = ticket.is_some_and(|t| inner.update(|s| s.tickets.remove(&t)));
    if !consumed {
        // Another request used the ticket in the meantime.
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        // Fails when the client goes away before the switch; nothing to clean up then.
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        accept(inner, socket).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key)
        .body(Body::empty())
        .expect("a valid 101 response")
}

/// An HTTP/1.1 WebSocket upgrade request's checks, in the order (and with the statuses and
/// texts) of axum's `WebSocketUpgrade` extractor; returns the `Sec-WebSocket-Key`.
fn check_upgrade(request: &Request) -> Result<&HeaderValue, (StatusCode, &'static str)> {
    let headers = request.headers();
    if request.method() != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "Request method must be `GET`",
        ));
    }
    if !header_contains(headers, header::CONNECTION, "upgrade") {
        return Err((
            StatusCode::BAD_REQUEST,
            "Connection header did not include 'upgrade'",
        ));
    }
    if !header_eq(headers, header::UPGRADE, "websocket") {
        return Err((
            StatusCode::BAD_REQUEST,
            "`Upgrade` header did not include 'websocket'",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Key` header missing",
        ));
    };
    if !header_eq(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err((
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Version` header did not include '13'",
        ));
    }
    if request
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_none()
    {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        ));
    }
    Ok(key)
}

/// The header is present and equals `value`, ignoring ASCII case.
fn header_eq(headers: &HeaderMap, key: HeaderName, value: &str) -> bool {
    headers
        .get(&key)
        .is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// The header is present, UTF-8, and contains `value` (lower case) once lower-cased.
fn header_contains(headers: &HeaderMap, key: HeaderName, value: &str) -> bool {
    headers
        .get(&key)
        .and_then(|h| std::str::from_utf8(h.as_bytes()).ok())
        .is_some_and(|h| h.to_ascii_lowercase().contains(value))
}

/// Registers the connection and hands the socket to its own task (so it can be aborted).
async fn accept(inner: Arc<Inner>, socket: WebSocket) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (start, started) = oneshot::channel();
    let id = inner.update(|s| s.next_id());
    let guard = ConnGuard {
        inner: inner.clone(),
        id,
    };
    // The task waits for `start`, so its cleanup cannot run before the registration below.
    let handle = tokio::spawn(run(guard, socket, rx, started));
    let num_connections = inner.update(|s| {
        s.conns.insert(
            id,
            Conn {
                tx,
                abort: handle.abort_handle(),
                closing: false,
            },
        );
        s.conns.len()
    });
    tracing::debug!(id, num_connections, "slack-sim: WebSocket connected");
    let _ = start.send(num_connections);
}

/// Unregisters a connection when its task ends, is aborted or panics.
struct ConnGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let id = self.id;
        self.inner.update(|s| {
            s.conns.remove(&id);
        });
        tracing::debug!(id, "slack-sim: WebSocket gone");
    }
}

async fn run(
    guard: ConnGuard,
    socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    started: oneshot::Receiver<usize>,
) {
    let inner = guard.inner.clone();
    let Ok(num_connections) = started.await else {
        return;
    };
    let (mut sink, mut stream) = socket.split();

    let mut hello = fixtures::load(fixtures::HELLO);
    hello["num_connections"] = json!(num_connections);
    fixtures::set(
        &mut hello,
        &["connection_info", "app_id"],
        json!(inner.config.app_id),
    );
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    inner.update(|s| s.hellos_sent += 1);

    loop {
        tokio::select! {
            out = rx.recv() => match out {
                None => break,
                Some(Outgoing::Text { text, envelope_id, done }) => {
                    if let Some(id) = envelope_id {
                        let now = std::time::Instant::now();
                        inner.update(|s| { s.sent_at.insert(id, now); });
                    }
                    let ok = sink.send(Message::Text(text.into())).await.is_ok();
                    let _ = done.send(ok);
                    if !ok {
                        break;
                    }
                }
                Some(Outgoing::Stall) => {
                    stall(&mut rx).await;
                    break;
                }
                Some(Outgoing::Close) => {
                    let close = Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    }));
                    if sink.send(close).await.is_ok() {
                        // Read until the client's Close reply (or the end), briefly.
                        let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
                            while let Some(Ok(msg)) = stream.next().await {
                                if let Message::Text(t) = msg {
                                    inner.record_frame(t.as_str());
                                }
                            }
                        })
                        .await;
                    }
                    break;
                }
            },
            msg = stream.next() => match msg {
                None | Some(Err(_)) => break,
                Some(Ok(Message::Text(t))) => inner.record_frame(t.as_str()),
                // Pings are answered by tungstenite on the next read; Close is answered too,
                // and the stream then ends.
                Some(Ok(_)) => {}
            },
        }
    }
    drop(guard);
}

/// A half-open connection: nothing is read (so the client's pings go unanswered) and nothing is
/// written, until the fake closes it or the client side of the channel goes away.
async fn stall(rx: &mut mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        match out {
            Outgoing::Text { done, .. } => {
                let _ = done.send(false);
            }
            Outgoing::Close => return,
            Outgoing::Stall => {}
        }
    }
}
