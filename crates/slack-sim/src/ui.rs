//! The workspace as a web page (`staffbot demo`): at `/`, a page that shows what each user
//! sees (their DMs with the bot, the channels they are in, ephemeral answers, their App Home,
//! an open modal) and acts as them: a slash command typed in the message box, a button click,
//! opening the Home, submitting a modal. Every action goes to the app exactly as Slack would
//! send it (an envelope over Socket Mode); the page itself is plain HTML, CSS and JavaScript
//! (`ui/index.html`), updated through server-sent events whenever the workspace changes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::{BOT_USER_ID, BOT_USER_NAME, dm_id};
use crate::{FakeSlack, Inner};

const PAGE: &str = include_str!("ui/index.html");

/// How long an action waits for the app's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new()
        .route("/", get(page))
        .route("/ui/state", get(state))
        .route("/ui/events", get(events))
        .route("/ui/slash", post(slash))
        .route("/ui/click", post(click))
        .route("/ui/home", post(home_opened))
        .route("/ui/modal", post(modal))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

#[derive(Deserialize)]
struct Who {
    user: String,
}

/// What `user` sees now.
async fn state(AxumState(inner): AxumState<Arc<Inner>>, Query(who): Query<Who>) -> Json<Value> {
    Json(snapshot(&inner, &who.user))
}

fn snapshot(inner: &Inner, user: &str) -> Value {
    inner.read(|s| {
        let users: Vec<Value> = s
            .users
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        let channels: Vec<Value> = s
            .channels
            .iter()
            .filter(|(_, c)| !c.is_im)
            .map(|(id, c)| json!({"id": id, "name": c.name}))
            .collect();
        let dm = dm_id(user);
        let mut conversations = vec![json!({"id": dm, "name": BOT_USER_NAME, "kind": "dm"})];
        for (id, c) in &s.channels {
            if !c.is_im && c.members.contains(user) {
                conversations.push(json!({"id": id, "name": c.name, "kind": "channel"}));
            }
        }
        let visible = |channel: &str| conversations.iter().any(|c| c["id"] == channel);
        let mut messages: Vec<Value> = s
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| visible(&m.channel))
            .filter(|(_, m)| !m.ephemeral || m.user.as_deref() == Some(user))
            .map(|(i, m)| {
                json!({"channel": m.channel, "ts": m.ts, "text": m.text, "blocks": m.blocks,
                       "edited": m.updated, "ephemeral": m.ephemeral, "order": [i + 1, 0]})
            })
            .collect();
        // An ephemeral answer goes after the messages there were when it came.
        for e in s.ephemerals.iter().filter(|e| e.user == user) {
            messages.push(json!({"channel": e.channel, "ts": null, "text": e.text,
                "blocks": e.blocks, "edited": false, "ephemeral": true,
                "order": [e.after, e.seq]}));
        }
        messages.sort_by_key(|m| (m["order"][0].as_u64(), m["order"][1].as_u64()));
        let modal = s.modals.get(user).and_then(|m| m.views.last().cloned());
        let errors = s.modals.get(user).and_then(|m| m.errors.clone());
        json!({
            "me": user,
            "bot": {"id": BOT_USER_ID, "name": BOT_USER_NAME},
            "users": users,
            "channels": channels,
            "conversations": conversations,
            "messages": messages,
            "home": s.home_views.get(user).map(|h| h.view.clone()),
            "modal": modal,
            "modal_errors": errors,
        })
    })
}

/// A server-sent event whenever the workspace changes (the page then reloads its state).
async fn events(
    AxumState(inner): AxumState<Arc<Inner>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = inner.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let version = *rx.borrow_and_update();
        Some((Ok(Event::default().data(version.to_string())), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct SlashForm {
    user: String,
    channel: String,
    text: String,
}

/// `/staffbot <text>` typed by `user` in `channel`; the reply shows to them there.
async fn slash(AxumState(inner): AxumState<Arc<Inner>>, Json(form): Json<SlashForm>) -> Response {
    let sim = FakeSlack {
        inner: inner.clone(),
    };
    let Some(text) = form.text.trim().strip_prefix("/staffbot") else {
        return refuse("Only `/staffbot …` commands can be sent here.");
    };
    let (user, channel, typed) = (
        form.user.clone(),
        form.channel.clone(),
        text.trim().to_string(),
    );
    let id = spawn_send(async move { sim.send_typed_slash(&user, &channel, &typed).await }).await;
    let Some(id) = id else {
        return failed("the app is not connected");
    };
    let sim = FakeSlack { inner };
    match sim.wait_ack(&id, ACK_WAIT).await {
        Some(ack) => {
            if let Some(reply) = ack.payload {
                sim.inner.update(|s| {
                    let seq = s.next_id();
                    let after = s.messages.len();
                    s.ephemerals.push(crate::state::Ephemeral {
                        after,
                        user: form.user.clone(),
                        channel: form.channel.clone(),
                        text: reply["text"].as_str().unwrap_or_default().to_string(),
                        blocks: reply
                            .get("blocks")
                            .cloned()
                            .or_else(|| reply.get("attachments").map(attachments_as_blocks)),
                        seq,
                    });
                });
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => failed("the app did not acknowledge the command within 5 s"),
    }
}

/// Slack's legacy attachments (the `/staffbot` replies use them) as context blocks.
fn attachments_as_blocks(attachments: &Value) -> Value {
    let blocks: Vec<Value> = attachments
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| {
            ["pretext", "title", "text"]
                .iter()
                .filter_map(|k| a[*k].as_str())
                .filter(|t| !t.is_empty())
                .map(|t| json!({"type": "context", "elements": [{"type": "mrkdwn", "text": t}]}))
                .collect::<Vec<_>>()
        })
        .collect();
    Value::Array(blocks)
}

#[derive(Deserialize)]
struct ClickForm {
    user: String,
    action_id: String,
    value: String,
    /// A message's channel and `ts` (`None`: a button in the Home tab).
    channel: Option<String>,
    ts: Option<String>,
}

/// `user` clicks a button on a message or in their Home.
async fn click(AxumState(inner): AxumState<Arc<Inner>>, Json(form): Json<ClickForm>) -> Response {
    let sim = FakeSlack { inner };
    let waiter = sim.clone();
    let id = spawn_send(async move {
        match (form.channel, form.ts) {
            (Some(channel), ts) => {
                let ts = ts.unwrap_or_else(|| "0000000000.000000".to_string());
                sim.send_block_action(&form.user, &form.action_id, &form.value, &channel, &ts)
                    .await
            }
            (None, _) => {
                sim.send_view_action_with(&form.user, &form.action_id, &form.value, json!({}))
                    .await
            }
        }
    })
    .await;
    acked(&waiter, id).await
}

/// `user` opens their Home tab.
async fn home_opened(AxumState(inner): AxumState<Arc<Inner>>, Json(who): Json<Who>) -> Response {
    let sim = FakeSlack { inner };
    let waiter = sim.clone();
    let id = spawn_send(async move { sim.send_app_home_opened(&who.user).await }).await;
    acked(&waiter, id).await
}

#[derive(Deserialize)]
struct ModalForm {
    user: String,
    /// `state.values` to submit; `None` closes the modal.
    values: Option<Value>,
}

/// `user` submits (or closes) their open modal.
async fn modal(AxumState(inner): AxumState<Arc<Inner>>, Json(form): Json<ModalForm>) -> Response {
    let sim = FakeSlack { inner };
    if sim.open_modal(&form.user).is_none() {
        return refuse("no modal is open");
    }
    let Some(values) = form.values else {
        sim.close_modal(&form.user);
        return StatusCode::NO_CONTENT.into_response();
    };
    let waiter = sim.clone();
    let id = spawn_send(async move { sim.submit_modal(&form.user, values).await }).await;
    acked(&waiter, id).await
}

/// Sends an envelope in its own task (sending gives up with a panic when the app is not
/// connected; the page gets an error instead).
async fn spawn_send(
    send: impl std::future::Future<Output = String> + Send + 'static,
) -> Option<String> {
    tokio::spawn(send).await.ok()
}

async fn acked(sim: &FakeSlack, id: Option<String>) -> Response {
    let Some(id) = id else {
        return failed("the app is not connected");
    };
    match sim.wait_ack(&id, ACK_WAIT).await {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => failed("the app did not acknowledge within 5 s"),
    }
}

fn refuse(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain")],
        why.to_string(),
    )
        .into_response()
}

fn failed(why: &str) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/plain")],
        why.to_string(),
    )
        .into_response()
}
