//! Offers by email (issue 16): a worker who prefers email (`worker … --notify email|both`) gets
//! offers, reminders and their tasks' status notices by email, and answers an offer by replying
//! to it. staffbot connects out only: it sends through SMTP ([`smtp`]) and reads the replies from
//! a mailbox over IMAP ([`inbox`]).
//!
//! Every email is an outbox row like every Slack write ([`crate::messages::Outgoing::Email`]):
//! durable, retried with backoff, paced, never sent while a transaction is open. Its
//! `Message-ID` is fixed when the row is written, so a resend after a crash (the row was handed
//! to the server, its answer not stored) carries the same id and mail clients show it once.
//! An offer's email carries an unguessable token in its `Reply-To` plus-address
//! (`staffbot+<token>@…`) and subject (`[#<token>]`): the reply names the offer ([`reply`]).

pub mod compose;
pub mod inbox;
pub mod reply;
pub mod smtp;
pub mod transport;

use serde::{Deserialize, Serialize};

use crate::config::EmailConfig;
use crate::messages::{AppHome, Outgoing};

pub use compose::Composed;
pub use smtp::{EmailSetupError, Mailer, Smtp};
pub use transport::EmailTransport;

/// An email ready to hand to the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyEmail {
    pub to: String,
    pub composed: Composed,
    /// `<local@domain>`.
    pub message_id: String,
    /// The offer's plus-address, when the email is about an offer.
    pub reply_to: Option<String>,
    /// `<id>` of the worker's email this one answers.
    pub in_reply_to: Option<String>,
}

/// What rendering a queued email needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// The address replies go to (plus-addressed per offer).
    pub reply_to: String,
    /// The domain of the `Message-ID`s staffbot writes.
    pub domain: String,
}

impl EmailSettings {
    /// The settings `config` describes, or None when email is off (`smtp_url` or `from` unset).
    pub fn from_config(config: &EmailConfig) -> Result<Option<EmailSettings>, EmailSetupError> {
        if !config.sending() {
            return Ok(None);
        }
        let from = config.from.as_deref().unwrap_or_default();
        let from = smtp::parse_mailbox(from).map_err(EmailSetupError::From)?;
        let reply_to = match &config.reply_to {
            Some(r) => smtp::parse_mailbox(r)
                .map_err(EmailSetupError::ReplyTo)?
                .email
                .to_string(),
            None => from.email.to_string(),
        };
        let domain = reply_to
            .rsplit_once('@')
            .map_or("staffbot.invalid", |(_, d)| d)
            .to_string();
        Ok(Some(EmailSettings { reply_to, domain }))
    }
}

/// Renders a queued email row (an [`Outgoing::Email`]) into what is sent.
pub fn ready(
    outgoing: &Outgoing,
    settings: &EmailSettings,
    app_home: Option<&AppHome>,
) -> Result<ReadyEmail, String> {
    let Outgoing::Email {
        to,
        message_id,
        token,
        in_reply_to,
        slack_user,
        message,
        ..
    } = outgoing
    else {
        return Err("not an email".into());
    };
    let ctx = compose::EmailContext {
        reply_to: &settings.reply_to,
        token: token.as_deref(),
        is_reply: in_reply_to.is_some(),
        app_home: app_home.filter(|_| slack_user.is_some()),
        uses_slack: slack_user.is_some(),
    };
    let composed = compose::compose(message, &ctx)?;
    Ok(ReadyEmail {
        to: to.clone(),
        composed,
        message_id: format!("<{message_id}@{}>", settings.domain),
        reply_to: token
            .as_deref()
            .map(|t| reply::plus_address(&settings.reply_to, t)),
        in_reply_to: in_reply_to.as_ref().map(|id| format!("<{id}>")),
    })
}

/// Email as configured: the mail server, and what rendering needs.
pub struct EmailOut {
    pub mailer: std::sync::Arc<dyn Mailer>,
    pub settings: EmailSettings,
}

impl EmailOut {
    /// The outbox's way out for email rows: paced at `email.per_minute`, outages told to
    /// `staffbot.staffing_group_id`.
    pub fn transport(
        &self,
        config: &crate::config::Config,
        db: sea_orm::DatabaseConnection,
    ) -> EmailTransport {
        EmailTransport::new(
            self.mailer.clone(),
            self.settings.clone(),
            config.email.per_minute,
            db,
        )
        .with_staffing_channel(config.staffbot.staffing_group_id.clone())
    }
}
