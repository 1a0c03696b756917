//! HTTP side: the router, the Web API methods and the `response_url` endpoint.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Map, Value, json};

use crate::fixtures::{self, load};
use crate::render;
use crate::state::{self, BOT_ID, BOT_USER_ID, BOT_USER_NAME, HomeView, ModalStack, State};
use crate::views;
use crate::{ApiCall, FakeSlackConfig, Fault, Inner, Message};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/api/{method}", any(api))
        .route("/link/", get(crate::socket::link))
        .route("/link", get(crate::socket::link))
        .route("/response/{id}", post(response_url))
        .merge(crate::ui::router())
        .with_state(inner)
}

/// An answer to a Web API call.
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            body,
            retry_after: None,
        }
    }

    fn err(code: &str) -> Self {
        Self::ok(json!({"ok": false, "error": code}))
    }

    fn invalid_auth() -> Self {
        Self::ok(load(fixtures::INVALID_AUTH))
    }

    fn fault(fault: &Fault) -> Self {
        match fault {
            Fault::RateLimited { retry_after_secs } => Reply {
                status: 429,
                body: load(fixtures::RATELIMITED),
                retry_after: Some(*retry_after_secs),
            },
            Fault::ServerError => Reply {
                status: 500,
                body: json!({"ok": false, "error": "internal_error"}),
                retry_after: None,
            },
            Fault::ApiError(code) => Self::err(code),
            Fault::InvalidAuth => Self::invalid_auth(),
        }
    }
}

fn json_response(status: u16, body: &Value, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

const METHODS: &[&str] = &[
    "apps.connections.open",
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "conversations.open",
    "conversations.invite",
    "conversations.kick",
    "conversations.info",
    "conversations.history",
    "users.info",
    "bots.info",
    "views.publish",
    "views.open",
];

/// `GET|POST /api/{method}`.
async fn api(
    AxumState(inner): AxumState<Arc<Inner>>,
    Path(method): Path<String>,
    http_method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query_fields = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();

    // The body as recorded, and whether it was valid.
    let (mut body_value, valid_json) = if http_method == Method::GET || body.is_empty() {
        (Value::Object(Map::new()), true)
    } else if content_type.contains("json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => (v, true),
            Err(_) => (
                Value::String(String::from_utf8_lossy(&body).into_owned()),
                false,
            ),
        }
    } else {
        (Value::Object(parse_form(&body)), true)
    };
    if let Value::Object(fields) = &mut body_value {
        for (k, v) in query_fields {
            fields.entry(k).or_insert(v);
        }
    }
    let empty = Map::new();
    let fields = body_value.as_object().unwrap_or(&empty);

    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .or_else(|| {
            fields
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_string)
        });

    let mut hold = None;
    let reply = inner.update(|s| {
        if let Some(fault) = s.faults.get_mut(&method).and_then(|q| q.pop_front()) {
            return Reply::fault(&fault);
        }
        if let Some(fault) = s
            .lasting_faults
            .get(&method)
            .or_else(|| s.lasting_faults.get("*"))
        {
            return Reply::fault(fault);
        }
        if let Some(pass) = s.holds.get_mut(&method) {
            if *pass > 0 {
                *pass -= 1;
            } else {
                hold = Some(s.releases.get(&method).copied().unwrap_or(0));
            }
        }
        if !METHODS.contains(&method.as_str()) {
            return Reply::err("unknown_method");
        }
        let expected = if method == "apps.connections.open" {
            &inner.config.app_token
        } else {
            &inner.config.bot_token
        };
        match &token {
            None => return Reply::ok(load(fixtures::NOT_AUTHED)),
            Some(t) if t != expected => return Reply::invalid_auth(),
            Some(_) => {}
        }
        if !valid_json {
            return Reply::err("invalid_json");
        }
        let ctx = Ctx {
            config: &inner.config,
            base_url: inner.base_url(),
            nonce: inner.nonce,
        };
        dispatch(&ctx, s, &method, fields)
    });

    tracing::debug!(%method, status = reply.status, response = %reply.body, "slack-sim: Web API call");
    let response = json_response(reply.status, &reply.body, reply.retry_after);
    inner.update(|s| {
        s.calls.push(ApiCall {
            method: method.clone(),
            token,
            body: body_value,
            status: reply.status,
            response: reply.body,
        });
        if hold.is_some() {
            *s.held.entry(method.clone()).or_default() += 1;
        }
    });
    if let Some(generation) = hold {
        // The call took effect; its answer waits for `release` (or for the client to go away,
        // which drops this future).
        let _unhold = Unhold {
            inner: inner.clone(),
            method: method.clone(),
        };
        tracing::debug!(%method, "slack-sim: holding the response");
        while !inner
            .wait_until(HOLD_WAIT, |s| {
                s.releases.get(&method).copied().unwrap_or(0) != generation
            })
            .await
        {}
    }
    response
}

/// How long one wait for a release lasts before it is simply started again.
const HOLD_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Counts a held response as no longer held when its wait ends or is dropped.
struct Unhold {
    inner: Arc<Inner>,
    method: String,
}

impl Drop for Unhold {
    fn drop(&mut self) {
        self.inner.update(|s| {
            if let Some(n) = s.held.get_mut(&self.method) {
                *n = n.saturating_sub(1);
            }
        });
    }
}

/// `POST /response/{id}`: records the body.
async fn response_url(
    AxumState(inner): AxumState<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let value = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    tracing::debug!(%id, body = %value, "slack-sim: response_url post");
    inner.update(|s| {
        if let Some((user, channel)) = s.response_owners.get(&id).cloned() {
            let seq = s.next_id();
            let after = s.messages.len();
            s.ephemerals.push(crate::state::Ephemeral {
                after,
                user,
                channel,
                text: value["text"].as_str().unwrap_or_default().to_string(),
                blocks: value.get("blocks").cloned(),
                seq,
            });
        }
        s.response_posts.push(value)
    });
    json_response(200, &json!({"ok": true}), None)
}

fn parse_form(bytes: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

struct Ctx<'a> {
    config: &'a FakeSlackConfig,
    base_url: String,
    nonce: u32,
}

fn dispatch(ctx: &Ctx<'_>, s: &mut State, method: &str, f: &Map<String, Value>) -> Reply {
    let result = match method {
        "apps.connections.open" => Ok(apps_connections_open(ctx, s)),
        "auth.test" => Ok(auth_test(ctx)),
        "chat.postMessage" => chat_post_message(s, f),
        "chat.update" => chat_update(s, f),
        "chat.postEphemeral" => chat_post_ephemeral(s, f),
        "conversations.open" => conversations_open(s, f),
        "conversations.invite" => conversations_invite(s, f),
        "conversations.kick" => conversations_kick(s, f),
        "conversations.info" => conversations_info(s, f),
        "conversations.history" => conversations_history(s, f),
        "users.info" => users_info(ctx, s, f),
        "bots.info" => bots_info(ctx, f),
        "views.publish" => views_publish(ctx, s, f),
        "views.open" => views_open(ctx, s, f),
        _ => Err(Reply::err("unknown_method")),
    };
    result.unwrap_or_else(|e| e)
}

type MethodResult = Result<Reply, Reply>;

// --- field helpers ---

/// A string field (numbers and booleans are stringified, as a form would carry them).
fn str_field(f: &Map<String, Value>, key: &str) -> Option<String> {
    match f.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bool_field(f: &Map<String, Value>, key: &str) -> bool {
    match f.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// A JSON field that a form carries as a JSON string (`blocks`, `view`).
fn json_field(f: &Map<String, Value>, key: &str) -> Result<Option<Value>, ()> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

/// Message `metadata`: an object with a string `event_type` and an object `event_payload`
/// (a form carries it as a JSON string).
fn metadata_field(f: &Map<String, Value>) -> Result<Option<Value>, Reply> {
    match json_field(f, "metadata") {
        Ok(None) => Ok(None),
        Ok(Some(v))
            if v.get("event_type").is_some_and(Value::is_string)
                && v.get("event_payload").is_some_and(Value::is_object) =>
        {
            Ok(Some(json!({
                "event_type": v["event_type"],
                "event_payload": v["event_payload"],
            })))
        }
        _ => Err(Reply::err("invalid_metadata_format")),
    }
}

/// A message timestamp (`1764236000.000100`) as microseconds, for ordering and ranges.
fn ts_micros(ts: &str) -> Option<u128> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: u128 = secs.parse().ok()?;
    let frac: u128 = format!("{frac:0<6}").parse().ok()?;
    Some(secs * 1_000_000 + frac)
}

/// A message's `blocks`, refused (`invalid_blocks`) past Slack's limits, as Slack does.
fn blocks_field(f: &Map<String, Value>) -> Result<Option<Value>, Reply> {
    match json_field(f, "blocks") {
        Ok(Some(v)) if v.is_array() => {
            render::check_blocks(&v, render::MAX_MESSAGE_BLOCKS)
                .map_err(|_| Reply::err("invalid_blocks"))?;
            Ok(Some(v))
        }
        Ok(None) => Ok(None),
        _ => Err(Reply::err("invalid_blocks")),
    }
}

/// A message's `text`, refused (`msg_too_long`) past [`render::MAX_TEXT_CHARS`].
fn text_field(f: &Map<String, Value>) -> Result<Option<String>, Reply> {
    let text = str_field(f, "text");
    if text
        .as_ref()
        .is_some_and(|t| t.chars().count() > render::MAX_TEXT_CHARS)
    {
        return Err(Reply::err("msg_too_long"));
    }
    Ok(text)
}

/// `users`: a JSON array, or a comma-separated string.
fn users_field(f: &Map<String, Value>) -> Vec<String> {
    match f.get("users") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn required(f: &Map<String, Value>, key: &str, error: &str) -> Result<String, Reply> {
    str_field(f, key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Reply::err(error))
}

/// A resolved channel the bot may post to.
fn postable_channel(s: &mut State, channel: &str) -> Result<String, Reply> {
    let id = s.resolve_channel(channel).map_err(Reply::err)?;
    if !s.channels.get(&id).is_some_and(|c| c.bot_member) {
        return Err(Reply::err("not_in_channel"));
    }
    Ok(id)
}

// --- methods ---

fn apps_connections_open(ctx: &Ctx<'_>, s: &mut State) -> Reply {
    let n = s.next_id();
    let ticket = format!("{:08x}-{n}", ctx.nonce);
    s.tickets.insert(ticket.clone());
    s.connection_opens += 1;
    let ws_base = ctx.base_url.replacen("http://", "ws://", 1);
    let mut body = load(fixtures::APPS_CONNECTIONS_OPEN);
    body["url"] = json!(format!(
        "{ws_base}/link/?ticket={ticket}&app_id={}",
        ctx.config.app_id
    ));
    Reply::ok(body)
}

fn auth_test(ctx: &Ctx<'_>) -> Reply {
    let mut body = load(fixtures::AUTH_TEST);
    body["team_id"] = json!(ctx.config.team_id);
    body["user_id"] = json!(BOT_USER_ID);
    body["user"] = json!(BOT_USER_NAME);
    body["bot_id"] = json!(BOT_ID);
    Reply::ok(body)
}

/// The `message` object of chat.postMessage, from the fixture's.
fn posted_message(text: &str, ts: &str, blocks: Option<&Value>, thread_ts: Option<&str>) -> Value {
    let mut message = load(fixtures::CHAT_POST_MESSAGE)["message"].take();
    fixtures::remove(&mut message, "attachments");
    message["type"] = json!("message");
    message["text"] = json!(text);
    message["ts"] = json!(ts);
    message["bot_id"] = json!(BOT_ID);
    message["user"] = json!(BOT_USER_ID);
    message["username"] = json!(BOT_USER_NAME);
    if let Some(blocks) = blocks {
        message["blocks"] = blocks.clone();
    }
    if let Some(thread_ts) = thread_ts {
        message["thread_ts"] = json!(thread_ts);
    }
    message
}

fn chat_post_message(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let channel = required(f, "channel", "channel_not_found")?;
    let text = text_field(f)?.unwrap_or_default();
    let blocks = blocks_field(f)?;
    if text.is_empty() && blocks.is_none() {
        return Err(Reply::err("no_text"));
    }
    let metadata = metadata_field(f)?;
    let id = postable_channel(s, &channel)?;
    let ts = s.next_ts();
    let thread_ts = str_field(f, "thread_ts");
    let mut message = posted_message(&text, &ts, blocks.as_ref(), thread_ts.as_deref());
    if let Some(metadata) = &metadata {
        message["metadata"] = metadata.clone();
    }
    s.messages.push(Message {
        channel: id.clone(),
        ts: ts.clone(),
        text,
        blocks,
        user: None,
        ephemeral: false,
        updated: false,
        metadata,
    });
    let mut body = load(fixtures::CHAT_POST_MESSAGE);
    body["channel"] = json!(id);
    body["ts"] = json!(ts);
    body["message"] = message;
    Ok(Reply::ok(body))
}

fn chat_update(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let channel = required(f, "channel", "channel_not_found")?;
    let ts = required(f, "ts", "message_not_found")?;
    let text = text_field(f)?;
    let blocks = blocks_field(f)?;
    let id = s.resolve_channel(&channel).map_err(Reply::err)?;
    let Some(message) = s
        .messages
        .iter_mut()
        .find(|m| m.channel == id && m.ts == ts && !m.ephemeral)
    else {
        return Err(Reply::err("message_not_found"));
    };
    if let Some(text) = text {
        message.text = text;
    }
    if f.contains_key("blocks") {
        // An empty array removes the blocks; omitting the field keeps them (as Slack does).
        message.blocks = blocks.filter(|b| b.as_array().is_some_and(|a| !a.is_empty()));
    }
    message.updated = true;
    let message = message.clone();

    let mut body = load(fixtures::CHAT_UPDATE);
    body["channel"] = json!(id);
    body["ts"] = json!(ts);
    body["text"] = json!(message.text);
    let m = &mut body["message"];
    m["text"] = json!(message.text);
    m["user"] = json!(BOT_USER_ID);
    m["bot_id"] = json!(BOT_ID);
    m["type"] = json!("message");
    if let Some(blocks) = message.blocks {
        m["blocks"] = blocks;
    }
    Ok(Reply::ok(body))
}

fn chat_post_ephemeral(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let channel = required(f, "channel", "channel_not_found")?;
    let user = required(f, "user", "user_not_found")?;
    let text = str_field(f, "text").unwrap_or_default();
    let blocks = blocks_field(f)?;
    if text.is_empty() && blocks.is_none() {
        return Err(Reply::err("no_text"));
    }
    let id = postable_channel(s, &channel)?;
    if !s
        .channels
        .get(&id)
        .is_some_and(|c| c.members.contains(&user))
    {
        return Err(Reply::err("user_not_in_channel"));
    }
    let ts = s.next_ts();
    s.messages.push(Message {
        channel: id,
        ts: ts.clone(),
        text,
        blocks,
        user: Some(user),
        ephemeral: true,
        updated: false,
        metadata: None,
    });
    let mut body = load(fixtures::CHAT_POST_EPHEMERAL);
    body["message_ts"] = json!(ts);
    Ok(Reply::ok(body))
}

fn conversations_open(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let users = users_field(f);
    let id = match (users.as_slice(), str_field(f, "channel")) {
        ([], Some(channel)) => {
            let id = s.resolve_channel(&channel).map_err(Reply::err)?;
            if !s.channels.get(&id).is_some_and(|c| c.is_im) {
                return Err(Reply::err("channel_not_found"));
            }
            id
        }
        ([], None) => return Err(Reply::err("users_list_not_supplied")),
        ([user], _) => {
            let existed = s.channels.contains_key(&state::dm_id(user));
            let id = s.ensure_dm(user);
            if bool_field(f, "return_im") {
                let mut body = load(fixtures::CONVERSATIONS_OPEN_RETURN_IM);
                if existed {
                    body["no_op"] = json!(true);
                    body["already_open"] = json!(true);
                } else {
                    fixtures::remove(&mut body, "no_op");
                    fixtures::remove(&mut body, "already_open");
                }
                body["channel"]["id"] = json!(id);
                body["channel"]["user"] = json!(user);
                return Ok(Reply::ok(body));
            }
            id
        }
        _ => return Err(Reply::err("not_supported")),
    };
    let mut body = load(fixtures::CONVERSATIONS_OPEN);
    body["channel"]["id"] = json!(id);
    Ok(Reply::ok(body))
}

/// A private channel the bot manages: must exist, not be a DM, and have the bot in it.
fn managed_channel<'a>(
    s: &'a mut State,
    channel: &str,
    bot_missing: &str,
) -> Result<&'a mut state::Channel, Reply> {
    let Some(c) = s.channels.get_mut(channel) else {
        return Err(Reply::err("channel_not_found"));
    };
    if c.is_im {
        return Err(Reply::err("method_not_supported_for_channel_type"));
    }
    if !c.bot_member {
        return Err(Reply::err(bot_missing));
    }
    Ok(c)
}

fn invite_error(code: &str, per_user: Vec<Value>) -> Reply {
    let mut body = load(fixtures::CONVERSATIONS_INVITE_ERROR);
    body["error"] = json!(code);
    body["errors"] = Value::Array(per_user);
    Reply::ok(body)
}

fn conversations_invite(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let channel = required(f, "channel", "channel_not_found")?;
    let users = users_field(f);
    if users.is_empty() {
        return Err(Reply::err("no_user"));
    }
    let known: BTreeSet<String> = s.users.keys().cloned().collect();
    let c = managed_channel(s, &channel, "not_in_channel")?;

    let mut errors = Vec::new();
    for user in &users {
        let code = if user == BOT_USER_ID {
            Some("cant_invite_self")
        } else if !known.contains(user) {
            Some("user_not_found")
        } else {
            None
        };
        if let Some(code) = code {
            errors.push(json!({"user": user, "ok": false, "error": code}));
        }
    }
    if let Some(first) = errors.first() {
        let code = first["error"]
            .as_str()
            .unwrap_or("user_not_found")
            .to_string();
        return Err(invite_error(&code, errors));
    }
    if users.iter().all(|u| c.members.contains(u)) {
        let per_user = users
            .iter()
            .map(|u| json!({"user": u, "ok": false, "error": "already_in_channel"}))
            .collect();
        return Err(invite_error("already_in_channel", per_user));
    }
    c.members.extend(users);

    let mut body = load(fixtures::CONVERSATIONS_INVITE);
    let ch = &mut body["channel"];
    ch["id"] = json!(channel);
    ch["name"] = json!(c.name);
    ch["name_normalized"] = json!(c.name);
    ch["is_channel"] = json!(false);
    ch["is_group"] = json!(true);
    ch["is_private"] = json!(true);
    ch["is_general"] = json!(false);
    ch["is_member"] = json!(true);
    ch["creator"] = json!(BOT_USER_ID);
    ch["previous_names"] = json!([]);
    Ok(Reply::ok(body))
}

fn conversations_kick(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let channel = required(f, "channel", "channel_not_found")?;
    let user = required(f, "user", "user_not_found")?;
    let known = s.users.contains_key(&user);
    // A private channel the bot is not in is invisible to it.
    let c = managed_channel(s, &channel, "channel_not_found")?;
    if user == BOT_USER_ID {
        return Err(Reply::err("cant_kick_self"));
    }
    if !known {
        return Err(Reply::err("user_not_found"));
    }
    if !c.members.remove(&user) {
        return Err(Reply::err("not_in_channel"));
    }
    // Exactly Slack's body, `"errors":{}` included.
    Ok(Reply::ok(load(fixtures::CONVERSATIONS_KICK)))
}

/// `conversations.info`: private channels the bot is in; others are invisible to it.
fn conversations_info(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let id = required(f, "channel", "channel_not_found")?;
    let channel = s
        .channels
        .get(&id)
        .filter(|c| c.bot_member)
        .ok_or_else(|| Reply::err("channel_not_found"))?;
    Ok(Reply::ok(json!({
        "ok": true,
        "channel": {
            "id": id,
            "name": channel.name,
            "is_channel": false,
            "is_group": true,
            "is_im": false,
            "is_private": true,
            "is_archived": false,
            "is_member": true,
            "created": 1_700_000_000,
            "creator": "U0CREATOR",
            "num_members": channel.members.len() + 1
        }
    })))
}

/// `conversations.history`: a conversation's messages, newest first, between `oldest` and
/// `latest` (exclusive unless `inclusive`), `limit` at a time (default 100, at most 999), with a
/// cursor for the next page. Ephemeral messages are not part of the history; `metadata` is
/// included with `include_all_metadata`.
fn conversations_history(s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let channel = required(f, "channel", "channel_not_found")?;
    // A user id is not a conversation id here (chat.postMessage is the lenient one).
    if channel.starts_with('U') || channel.starts_with('W') {
        return Err(Reply::err("channel_not_found"));
    }
    let id = s.resolve_channel(&channel).map_err(Reply::err)?;
    if !s.channels.get(&id).is_some_and(|c| c.bot_member) {
        return Err(Reply::err("not_in_channel"));
    }
    let bound = |key: &str, error: &str| -> Result<Option<u128>, Reply> {
        match str_field(f, key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => ts_micros(&v).map(Some).ok_or_else(|| Reply::err(error)),
        }
    };
    let oldest = bound("oldest", "invalid_ts_oldest")?;
    let latest = bound("latest", "invalid_ts_latest")?;
    let inclusive = bool_field(f, "inclusive");
    let limit = match str_field(f, "limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| Reply::err("invalid_limit"))?
            .clamp(1, 999),
    };
    let cursor = match str_field(f, "cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.strip_prefix("next_ts:")
                .and_then(|ts| ts.parse::<u128>().ok())
                .ok_or_else(|| Reply::err("invalid_cursor"))?,
        ),
    };
    let with_metadata = bool_field(f, "include_all_metadata");
    let mut found: Vec<(u128, &Message)> = s
        .messages
        .iter()
        .filter(|m| m.channel == id && !m.ephemeral)
        .filter_map(|m| ts_micros(&m.ts).map(|t| (t, m)))
        .filter(|(t, _)| match oldest {
            Some(o) if inclusive => *t >= o,
            Some(o) => *t > o,
            None => true,
        })
        .filter(|(t, _)| match latest {
            Some(l) if inclusive => *t <= l,
            Some(l) => *t < l,
            None => true,
        })
        .filter(|(t, _)| cursor.is_none_or(|c| *t <= c))
        .collect();
    found.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let has_more = found.len() > limit;
    let next = found.get(limit).map(|(t, _)| format!("next_ts:{t}"));
    let messages: Vec<Value> = found
        .iter()
        .take(limit)
        .map(|(_, m)| {
            let mut message = json!({
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": m.text,
                "ts": m.ts,
            });
            if let Some(blocks) = &m.blocks {
                message["blocks"] = blocks.clone();
            }
            if let (true, Some(metadata)) = (with_metadata, &m.metadata) {
                message["metadata"] = metadata.clone();
            }
            message
        })
        .collect();
    let mut body = load(fixtures::CONVERSATIONS_HISTORY);
    body["messages"] = Value::Array(messages);
    body["has_more"] = json!(has_more);
    body["pin_count"] = json!(0);
    body["channel_actions_ts"] = Value::Null;
    body["channel_actions_count"] = json!(0);
    match next {
        Some(cursor) => body["response_metadata"] = json!({"next_cursor": cursor}),
        None => fixtures::remove(&mut body, "response_metadata"),
    }
    Ok(Reply::ok(body))
}

fn users_info(ctx: &Ctx<'_>, s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let user = required(f, "user", "user_not_found")?;
    let (name, is_bot) = if user == BOT_USER_ID {
        (BOT_USER_NAME.to_string(), true)
    } else {
        let name = s
            .users
            .get(&user)
            .cloned()
            .ok_or_else(|| Reply::err("user_not_found"))?;
        (name, false)
    };
    let mut body = load(fixtures::USERS_INFO);
    let u = &mut body["user"];
    u["id"] = json!(user);
    u["team_id"] = json!(ctx.config.team_id);
    u["name"] = json!(name);
    u["real_name"] = json!(name);
    u["is_bot"] = json!(is_bot);
    u["is_admin"] = json!(false);
    if let Some((tz, offset)) = s.user_tz.get(&user) {
        u["tz"] = json!(tz);
        u["tz_label"] = json!(tz);
        u["tz_offset"] = json!(offset);
    }
    let p = &mut u["profile"];
    p["real_name"] = json!(name);
    p["real_name_normalized"] = json!(name);
    p["display_name"] = json!(name);
    p["display_name_normalized"] = json!(name);
    p["email"] = json!(format!("{name}@example.com"));
    p["team"] = json!(ctx.config.team_id);
    Ok(Reply::ok(body))
}

/// `bots.info?bot=B…`: the workspace's one bot (the app's) with the configured `app_id`;
/// `bot_not_found` for any other id.
fn bots_info(ctx: &Ctx<'_>, f: &Map<String, Value>) -> MethodResult {
    if str_field(f, "bot").as_deref() != Some(BOT_ID) {
        return Err(Reply::ok(load(fixtures::BOTS_INFO_ERROR)));
    }
    let mut body = load(fixtures::BOTS_INFO);
    let b = &mut body["bot"];
    b["id"] = json!(BOT_ID);
    b["name"] = json!(BOT_USER_NAME);
    b["app_id"] = json!(ctx.config.app_id);
    b["user_id"] = json!(BOT_USER_ID);
    Ok(Reply::ok(body))
}

/// `invalid_arguments` with Slack's `response_metadata.messages`.
fn invalid_arguments(messages: Vec<String>) -> Reply {
    let mut body = load(fixtures::VIEWS_PUBLISH_ERROR);
    body["response_metadata"]["messages"] = json!(messages);
    Reply::ok(body)
}

/// The `view` argument: a JSON object (a form carries it as a JSON string), checked as Slack
/// checks a view for `surface`, and no larger than Slack's 250 kB.
fn view_field(f: &Map<String, Value>, surface: views::Surface) -> Result<Value, Reply> {
    let view = match json_field(f, "view") {
        Ok(Some(v)) if v.is_object() => v,
        _ => return Err(invalid_arguments(vec!["invalid `view`".into()])),
    };
    if view.to_string().len() > views::MAX_VIEW_BYTES {
        return Err(Reply::err("view_too_large"));
    }
    views::check_view(&view, surface).map_err(invalid_arguments)?;
    Ok(view)
}

/// The view as Slack stores and returns it: the fields given, ids stamped where missing, and
/// Slack's own fields (`id`, `hash`, `state`, `root_view_id`, …) filled in.
pub(crate) fn stored_view(
    config: &FakeSlackConfig,
    nonce: u32,
    s: &mut State,
    mut view: Value,
    id: Option<String>,
    fixture: &str,
) -> Value {
    views::stamp_ids(&mut view, || {
        let n = s.next_id();
        format!("fk{n:04x}")
    });
    let n = s.next_id();
    let hash = format!("{}.{:08x}", 1_700_000_000 + n, nonce ^ n as u32);
    let id = id.unwrap_or_else(|| format!("V0FAKE{n:05}"));
    let get = |key: &str, default: Value| view.get(key).cloned().unwrap_or(default);
    let mut v = load(fixture)["view"].take();
    v["id"] = json!(id);
    v["team_id"] = json!(config.team_id);
    v["type"] = get("type", json!("home"));
    v["blocks"] = get("blocks", json!([]));
    v["private_metadata"] = get("private_metadata", json!(""));
    v["callback_id"] = get("callback_id", json!(""));
    v["external_id"] = get("external_id", json!(""));
    v["state"] = json!({"values": {}});
    v["hash"] = json!(hash);
    v["title"] = get("title", json!({"type": "plain_text", "text": ""}));
    v["close"] = get("close", Value::Null);
    v["submit"] = get("submit", Value::Null);
    v["clear_on_close"] = get("clear_on_close", json!(false));
    v["notify_on_close"] = get("notify_on_close", json!(false));
    v["previous_view_id"] = Value::Null;
    v["root_view_id"] = json!(id);
    v["app_id"] = json!(config.app_id);
    v["app_installed_team_id"] = json!(config.team_id);
    v["bot_id"] = json!(BOT_ID);
    v
}

/// `views.publish`: a Home tab view, checked as Slack checks it, stored per user.
fn views_publish(ctx: &Ctx<'_>, s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let user = str_field(f, "user_id")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid_arguments(vec!["invalid `user_id`".into()]))?;
    let view = view_field(f, views::Surface::Home)?;
    if let (Some(hash), Some(current)) = (str_field(f, "hash"), s.home_views.get(&user))
        && !hash.is_empty()
        && hash != current.hash()
    {
        return Err(Reply::err("hash_conflict"));
    }
    let id = s.home_views.get(&user).map(|v| v.id().to_string());
    let stored = stored_view(ctx.config, ctx.nonce, s, view, id, fixtures::VIEWS_PUBLISH);
    let home = s.home_views.entry(user).or_insert_with(|| HomeView {
        view: Value::Null,
        publishes: 0,
    });
    home.view = stored.clone();
    home.publishes += 1;
    let mut body = load(fixtures::VIEWS_PUBLISH);
    body["view"] = stored;
    Ok(Reply::ok(body))
}

/// `views.open`: a modal for the user whose action issued `trigger_id`, which must be one the
/// fake issued, not exchanged before, and younger than the trigger lifetime (3 s).
fn views_open(ctx: &Ctx<'_>, s: &mut State, f: &Map<String, Value>) -> MethodResult {
    let trigger_id = str_field(f, "trigger_id")
        .or_else(|| str_field(f, "interactivity_pointer"))
        .filter(|t| !t.is_empty())
        // Slack's own example of this answer, unchanged.
        .ok_or_else(|| Reply::ok(load(fixtures::VIEWS_OPEN_ERROR)))?;
    let lifetime = s.trigger_lifetime();
    let trigger = s
        .triggers
        .get(&trigger_id)
        .ok_or_else(|| Reply::err("invalid_trigger_id"))?;
    if trigger.issued.elapsed() >= lifetime {
        return Err(Reply::err("expired_trigger_id"));
    }
    if trigger.exchanged {
        return Err(Reply::err("exchanged_trigger_id"));
    }
    let user = trigger.user.clone();
    let view = view_field(f, views::Surface::Modal)?;
    if let Some(t) = s.triggers.get_mut(&trigger_id) {
        t.exchanged = true;
    }
    let stored = stored_view(ctx.config, ctx.nonce, s, view, None, fixtures::VIEWS_OPEN);
    // A new modal replaces whatever modal the user had open.
    s.modals.insert(
        user,
        ModalStack {
            views: vec![stored.clone()],
            errors: None,
        },
    );
    let mut body = load(fixtures::VIEWS_OPEN);
    body["view"] = stored;
    Ok(Reply::ok(body))
}
