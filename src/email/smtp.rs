//! Sending email over SMTP (lettre, on tokio, TLS through rustls with the system's roots).

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use super::ReadyEmail;
use crate::config::EmailConfig;
use crate::delivery::Delivery;

/// Something that sends a ready email (SMTP in production).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email`: `Sent` with the server's answer, `Permanent` only when the server refuses
    /// the recipient's address for good ([`refuses_the_recipient`]), `Transient` for every
    /// other failure (the server is down, refuses the login, answers 4xx or refuses all mail):
    /// those are the server's, and the email waits for it.
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

/// Enhanced status codes (RFC 3463) that refuse the recipient's address itself: no such
/// mailbox (5.1.1), no such domain (5.1.2), a malformed address (5.1.3), the mailbox moved
/// (5.1.6), the domain takes no mail (5.1.10), the mailbox is disabled (5.2.1).
const RECIPIENT_REFUSALS: &[&str] = &["5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"];

/// Whether an SMTP refusal (`code`, and the server's `answer` text) is a permanent refusal of the
/// recipient's address: the only refusal that makes an email undeliverable. Anything else (a
/// refused login, 535; a policy or sender refusal, 5.7.x; a full system; a 4xx) is the server's
/// failure, which passes. Without an enhanced status code, 550, 551 and 553 are the address's
/// refusal unless the answer speaks of relaying or authentication.
pub fn refuses_the_recipient(code: &str, answer: &str) -> bool {
    if !code.starts_with('5') {
        return false;
    }
    let first = answer.split_whitespace().next().unwrap_or("");
    let enhanced = first.split('.').count() == 3
        && first
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if enhanced {
        return RECIPIENT_REFUSALS.contains(&first);
    }
    let lower = answer.to_ascii_lowercase();
    matches!(code, "550" | "551" | "553")
        && !["relay", "auth", "sender"]
            .iter()
            .any(|w| lower.contains(w))
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
            Err(e) => {
                let text = crate::config::redact_text(&e.to_string());
                let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                let answer = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if refuses_the_recipient(&code, &answer) {
                    Delivery::Permanent(text)
                } else {
                    // Login refused, connection failed, the server is down or refuses all
                    // mail: the server's failure, not this recipient's. The email waits.
                    Delivery::Transient(text)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refuses_the_recipient;

    #[test]
    fn only_a_refused_address_is_the_recipients_failure() {
        assert!(refuses_the_recipient(
            "550",
            "5.1.1 <x@example.com>: User unknown"
        ));
        assert!(refuses_the_recipient("550", "5.2.1 Mailbox disabled"));
        assert!(refuses_the_recipient("550", "No such user here"));
        // The server's failures: login, policy, relaying, temporary answers.
        assert!(!refuses_the_recipient(
            "535",
            "5.7.8 Authentication credentials invalid"
        ));
        assert!(!refuses_the_recipient(
            "530",
            "5.7.0 Authentication required"
        ));
        assert!(!refuses_the_recipient("550", "5.7.1 Relaying denied"));
        assert!(!refuses_the_recipient("550", "Relaying denied"));
        assert!(!refuses_the_recipient("554", "5.3.0 Transaction failed"));
        assert!(!refuses_the_recipient("450", "4.1.1 Try again later"));
        assert!(!refuses_the_recipient("", ""));
    }
}
