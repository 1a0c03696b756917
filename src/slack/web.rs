//! The Slack Web API side: building slack-morphism's client for any base URL (the loopback fake
//! included), the start-up token checks, and one generic call used by the outbox sender.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

/// Installs rustls' ring provider once per process (slack-morphism issue #286: with two providers
/// in the graph rustls cannot pick one by itself).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// slack-morphism's client pointed at `api_url`, over HTTPS or plain HTTP, HTTP/1.1 or HTTP/2.
pub fn build_client(api_url: &str) -> anyhow::Result<Arc<SlackHyperClient>> {
    install_crypto_provider();
    let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        Err(e) if api_url.starts_with("http://") => {
            tracing::debug!("no native CA roots ({e}); fine for a plain-HTTP Slack API URL");
            let roots = rustls::RootCertStore::empty();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        }
        Err(e) => anyhow::bail!("cannot load the system's CA certificates to reach Slack: {e}"),
    };
    let https = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let connector: SlackClientHyperHttpsConnector =
        SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(api_url.trim_end_matches('/'));
    Ok(Arc::new(SlackClient::new(connector)))
}

/// The result of one Web API call, classified for the outbox sender.
pub use crate::delivery::Delivery;

/// Error codes that mean "already done" for a method.
fn already_done(method: &str, code: &str) -> bool {
    matches!(
        (method, code),
        ("conversations.invite", "already_in_channel") | ("conversations.kick", "not_in_channel")
    )
}

/// Codes worth retrying: Slack-side trouble and authentication problems an operator can fix
/// without losing the queued messages.
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "ratelimited"
            | "rate_limited"
            | "team_added_to_org"
            | "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
    )
}

/// Classifies a slack-morphism result.
pub fn classify(method: &str, result: Result<Value, SlackClientError>) -> Delivery {
    match result {
        Ok(v) => Delivery::Sent(v),
        Err(SlackClientError::RateLimitError(e)) => {
            Delivery::RateLimited(e.retry_after.unwrap_or(Duration::from_secs(30)))
        }
        Err(SlackClientError::ApiError(e)) if already_done(method, &e.code) => {
            Delivery::Sent(json!({"ok": true, "already": e.code}))
        }
        Err(SlackClientError::ApiError(e)) if transient_code(&e.code) => {
            Delivery::Transient(e.code)
        }
        Err(SlackClientError::ApiError(e)) => Delivery::Permanent(e.code),
        Err(SlackClientError::HttpError(e)) if e.status_code.is_server_error() => {
            Delivery::Transient(format!("HTTP {}", e.status_code))
        }
        Err(SlackClientError::HttpError(e)) => {
            Delivery::Permanent(format!("HTTP {}", e.status_code))
        }
        // Slack answered 200 but the body did not match: the call happened. (conversations.kick's
        // success body `{"ok":true,"errors":{}}` is the known case.) Never resend it.
        Err(SlackClientError::ProtocolError(e)) => {
            tracing::debug!(method, "unparsed success response: {e}");
            Delivery::Sent(json!({"ok": true}))
        }
        Err(other) => Delivery::Transient(other.to_string()),
    }
}

/// One Web API call with the bot token. A trait so tests can count or fail calls.
#[async_trait]
pub trait SlackWeb: Send + Sync {
    /// A write method: `body` is POSTed as JSON.
    async fn call(&self, method: &str, body: &Value) -> Delivery;
    /// A read method that takes query parameters (`conversations.history`).
    async fn get(&self, method: &str, params: &[(&str, String)]) -> Delivery;
}

pub struct MorphismWeb {
    pub client: Arc<SlackHyperClient>,
    pub bot_token: SlackApiToken,
    /// A call that takes longer is abandoned (and retried): a claim must not outlive its lease.
    pub timeout: Duration,
}

#[async_trait]
impl SlackWeb for MorphismWeb {
    async fn call(&self, method: &str, body: &Value) -> Delivery {
        if method == "response_url" {
            return self.respond(body).await;
        }
        let session = self.client.open_session(&self.bot_token);
        let call = session
            .http_session_api
            .http_post::<Value, Value>(method, body, None);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => classify(method, result),
            Err(_) => Delivery::Transient(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn get(&self, method: &str, params: &[(&str, String)]) -> Delivery {
        let session = self.client.open_session(&self.bot_token);
        let params: Vec<(&str, Option<String>)> =
            params.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        let call = session
            .http_session_api
            .http_get::<Value, _, String>(method, &params, None);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => classify(method, result),
            Err(_) => Delivery::Transient(format!("no answer within {:?}", self.timeout)),
        }
    }
}

impl MorphismWeb {
    /// POSTs `{text, response_type: ephemeral, replace_original: false}` to a `response_url`.
    async fn respond(&self, body: &Value) -> Delivery {
        let Some(url) = body
            .get("response_url")
            .and_then(Value::as_str)
            .and_then(|u| u.parse::<url::Url>().ok())
        else {
            return Delivery::Permanent("invalid response_url".to_string());
        };
        let request: SlackApiPostWebhookMessageRequest = match serde_json::from_value(json!({
            "text": body.get("text").cloned().unwrap_or(Value::Null),
            "response_type": "ephemeral",
            "replace_original": false,
        })) {
            Ok(r) => r,
            Err(e) => return Delivery::Permanent(e.to_string()),
        };
        let call = self.client.post_webhook_message(&url, &request);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(_)) => Delivery::Sent(json!({"ok": true})),
            Ok(Err(e)) => classify("response_url", Err(e)),
            Err(_) => Delivery::Transient(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("Slack rejected {which} ({code}); check the token and the app's installation")]
    Rejected { which: &'static str, code: String },
    #[error("cannot reach Slack at {url}: {message}")]
    Unreachable { url: String, message: String },
}

impl TokenError {
    pub fn is_rejected(&self) -> bool {
        matches!(self, TokenError::Rejected { .. })
    }
}

/// What `auth.test` says about the bot.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub user_id: String,
    pub team_id: String,
    pub team: String,
    /// The bot's id (`B…`), which `bots.info` turns into the app's id.
    pub bot_id: Option<String>,
}

fn token_error(which: &'static str, url: &str, e: SlackClientError) -> TokenError {
    match e {
        SlackClientError::ApiError(api) => TokenError::Rejected {
            which,
            code: api.code,
        },
        other => TokenError::Unreachable {
            url: url.to_string(),
            message: other.to_string(),
        },
    }
}

/// `auth.test` with the bot token.
pub async fn check_bot_token(
    client: &SlackHyperClient,
    token: &SlackApiToken,
    api_url: &str,
) -> Result<BotIdentity, TokenError> {
    let response = client
        .open_session(token)
        .auth_test()
        .await
        .map_err(|e| token_error("SLACK_BOT_TOKEN", api_url, e))?;
    Ok(BotIdentity {
        user_id: response.user_id.to_string(),
        team_id: response.team_id.to_string(),
        team: response.team.clone(),
        bot_id: response.bot_id.map(|b| b.to_string()),
    })
}

/// How long the Home tab's look-up may take at start-up.
pub const APP_HOME_TIMEOUT: Duration = Duration::from_secs(5);

/// The ids of a link to the app's Home tab: the workspace from `auth.test` (`identity`) and
/// the app from `bots.info?bot=<bot id>` (scope `users:read`). An error says why they are not
/// known; nothing retries (reminders then go without the link).
pub async fn app_home(
    client: &SlackHyperClient,
    token: &SlackApiToken,
    identity: &BotIdentity,
) -> Result<super::render::AppHome, String> {
    let bot = identity
        .bot_id
        .clone()
        .ok_or_else(|| "auth.test named no bot_id".to_string())?;
    let session = client.open_session(token);
    let params = vec![("bot", Some(bot))];
    let call = session
        .http_session_api
        .http_get::<Value, _, String>("bots.info", &params, None);
    let answer = match tokio::time::timeout(APP_HOME_TIMEOUT, call).await {
        Ok(Ok(v)) => v,
        Ok(Err(SlackClientError::ApiError(e))) => return Err(format!("bots.info: {}", e.code)),
        Ok(Err(e)) => return Err(format!("bots.info: {e}")),
        Err(_) => return Err(format!("bots.info: no answer within {APP_HOME_TIMEOUT:?}")),
    };
    let app_id = answer
        .pointer("/bot/app_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "bots.info named no app_id".to_string())?;
    Ok(super::render::AppHome {
        team_id: identity.team_id.clone(),
        app_id: app_id.to_string(),
    })
}

/// [`app_home`] as a [`super::render::RenderContext`]; when it fails, a warning and a context
/// without the link.
pub async fn render_context(
    client: &SlackHyperClient,
    token: &SlackApiToken,
    identity: &BotIdentity,
) -> super::render::RenderContext {
    match app_home(client, token, identity).await {
        Ok(home) => {
            tracing::info!(team_id = %home.team_id, app_id = %home.app_id, "reminders link the app's Home tab");
            super::render::RenderContext {
                app_home: Some(home),
            }
        }
        Err(e) => {
            tracing::warn!("the app's Home tab is unknown ({e}); reminders go without its link");
            super::render::RenderContext::default()
        }
    }
}

/// `apps.connections.open` with the app-level token (the URL it returns is not used).
pub async fn check_app_token(
    client: &SlackHyperClient,
    token: &SlackApiToken,
    api_url: &str,
) -> Result<(), TokenError> {
    client
        .open_session(token)
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
        .map(|_| ())
        .map_err(|e| token_error("SLACK_APP_TOKEN", api_url, e))
}

/// What `conversations.info` says about a channel the bot can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSeen {
    pub name: String,
    /// Whether the bot is in it (a public channel is visible, with `channels:read`, without
    /// the bot being in it; the bot can only post to it once it is).
    pub is_member: bool,
}

/// Why `conversations.info` did not describe a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelUnseen {
    /// Slack answered with this error code (`channel_not_found`, `missing_scope`, …).
    Slack(String),
    /// Slack could not be asked (network, TLS, HTTP, timeout): says nothing about the channel.
    Unreachable(String),
}

/// Whether the bot can see `channel` (`conversations.info`, scope `groups:read` for a private
/// channel, `channels:read` for a public one): its name and whether the bot is in it, or why not.
pub async fn channel_visible(
    client: &SlackHyperClient,
    token: &SlackApiToken,
    channel: &str,
) -> Result<ChannelSeen, ChannelUnseen> {
    let session = client.open_session(token);
    let params = vec![("channel", Some(channel.to_string()))];
    let call =
        session
            .http_session_api
            .http_get::<Value, _, String>("conversations.info", &params, None);
    match tokio::time::timeout(APP_HOME_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(ChannelSeen {
            name: v["channel"]["name"].as_str().unwrap_or(channel).to_string(),
            is_member: v["channel"]["is_member"].as_bool().unwrap_or(true),
        }),
        Ok(Err(SlackClientError::ApiError(e))) => Err(ChannelUnseen::Slack(e.code)),
        Ok(Err(e)) => Err(ChannelUnseen::Unreachable(e.to_string())),
        Err(_) => Err(ChannelUnseen::Unreachable(format!(
            "no answer within {APP_HOME_TIMEOUT:?}"
        ))),
    }
}
