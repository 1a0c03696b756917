//! Sending email over SMTP (lettre, on tokio, TLS through rustls with the system's roots).

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use super::ReadyEmail;
use crate::config::EmailConfig;
use crate::slack::web::Delivery;

/// Something that sends a ready email (SMTP in production).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email`: `Sent` with the server's answer, `Transient` for what may work later (the
    /// server is down, a 4xx answer), `Permanent` for a refusal (a 5xx answer).
    async fn send(&self, email: &ReadyEmail) -> Delivery;
}

/// What is wrong with the `[email]` settings.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("email.smtp_url is not usable: {0}")]
    SmtpUrl(String),
    #[error("email.from is not an address (`Name <address>` or `address`): {0}")]
    From(String),
    #[error("email.reply_to is not an address: {0}")]
    ReplyTo(String),
}

/// SMTP through lettre.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// The `Mailbox` of `email.from`.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>().map_err(|e| e.to_string())
}

impl Smtp {
    /// The transport `config` describes; `timeout` bounds each SMTP exchange.
    pub fn from_config(config: &EmailConfig, timeout: Duration) -> Result<Smtp, EmailSetupError> {
        let url = config
            .smtp_url
            .as_ref()
            .ok_or_else(|| EmailSetupError::SmtpUrl("not set".into()))?;
        let from = config
            .from
            .as_deref()
            .ok_or_else(|| EmailSetupError::From("not set".into()))?;
        let from = parse_mailbox(from).map_err(EmailSetupError::From)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| EmailSetupError::SmtpUrl(crate::config::redact_text(&e.to_string())))?
            .timeout(Some(timeout));
        if let Some(password) = &config.smtp_password {
            let user = url::Url::parse(url.expose())
                .map(|u| u.username().to_string())
                .unwrap_or_default();
            let user = if user.is_empty() {
                from.email.to_string()
            } else {
                user
            };
            builder =
                builder.credentials(Credentials::new(user, password.expose_secret().to_string()));
        }
        Ok(Smtp {
            transport: builder.build(),
            from,
        })
    }

    /// Connects and says hello (and logs in when credentials are set), for `staffbot check`.
    pub async fn test(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the server did not answer NOOP".into()),
            Err(e) => Err(crate::config::redact_text(&e.to_string())),
        }
    }

    fn build(&self, email: &ReadyEmail) -> Result<lettre::Message, String> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| format!("bad recipient {:?}: {e}", email.to))?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.composed.subject.clone())
            .message_id(Some(email.message_id.clone()));
        if let Some(reply_to) = &email.reply_to {
            let mbox: Mailbox = reply_to
                .parse()
                .map_err(|e| format!("bad Reply-To {reply_to:?}: {e}"))?;
            builder = builder.reply_to(mbox);
        }
        if let Some(id) = &email.in_reply_to {
            builder = builder.in_reply_to(id.clone()).references(id.clone());
        }
        let mut message = builder
            .multipart(MultiPart::alternative_plain_html(
                email.composed.text.clone(),
                email.composed.html.clone(),
            ))
            .map_err(|e| e.to_string())?;
        // RFC 3834: written by a program; auto-responders must not answer it.
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
        Ok(message)
    }
}

#[async_trait::async_trait]
impl Mailer for Smtp {
    async fn send(&self, email: &ReadyEmail) -> Delivery {
        let message = match self.build(email) {
            Ok(m) => m,
            Err(e) => return Delivery::Permanent(e),
        };
        match self.transport.send(message).await {
            Ok(response) => Delivery::Sent(serde_json::json!({
                "ok": true,
                "smtp_code": response.code().to_string(),
                "message_id": email.message_id,
            })),
            Err(e) if e.is_permanent() => {
                Delivery::Permanent(crate::config::redact_text(&e.to_string()))
            }
            Err(e) => Delivery::Transient(crate::config::redact_text(&e.to_string())),
        }
    }
}
