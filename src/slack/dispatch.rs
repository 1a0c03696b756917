//! The dispatcher: one envelope in, one ack out. Slash commands run one short transaction and
//! reply in the ack; everything else they cause is queued in the outbox. An envelope id that was
//! handled before is acked with the same reply and not acted on again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::Instrument;

use super::blocks;
use super::envelope::{BlockActions, Envelope, SlashCommand, redacted};
use super::mrkdwn::Mrkdwn;
use super::slash::{self, SlashSettings};
use crate::clock::Clock;
use crate::config::NoticeSettings;
use crate::db::envelopes;
use crate::error::Error;
use crate::handlers::home::{self, HomeAction, HomeSettings, Pressed};
use crate::handlers::modal::{self, FormAnswer};
use crate::handlers::{self, offer, offer::Via};
use crate::messages::{Message, Outgoing};
use crate::staffing::respond::Responder;

/// What the dispatcher sends back for an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    /// `{"envelope_id": …}`
    Bare,
    /// `{"envelope_id": …, "payload": …}`
    WithPayload(Value),
}

impl Ack {
    pub fn frame(&self, envelope_id: &str) -> String {
        match self {
            Ack::Bare => json!({ "envelope_id": envelope_id }).to_string(),
            Ack::WithPayload(p) => json!({ "envelope_id": envelope_id, "payload": p }).to_string(),
        }
    }
}

pub struct Dispatcher {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub slash: SlashSettings,
    /// Woken after a handler queued Slack messages, so the sender goes at once.
    pub outbox_wake: Arc<Notify>,
    /// Status notices of the task changes envelopes make (an offer won).
    pub notices: NoticeSettings,
}

const SORRY: &str = "Sorry, something went wrong on our side. Please try again in a minute.";

impl Dispatcher {
    /// Handles one envelope and returns its ack. Never fails: problems are logged and acked.
    pub async fn dispatch(&self, envelope: &Envelope) -> Ack {
        let span = tracing::info_span!("envelope", envelope_id = %envelope.envelope_id, kind = %envelope.kind);
        self.dispatch_in_span(envelope).instrument(span).await
    }

    /// Redeliveries need no lookup first: a handler's every effect is written in the same
    /// transaction as the envelope's `handled_envelopes` row, so handling an envelope twice
    /// fails on that row's primary key, rolls back, and acks with the stored reply. (One round
    /// trip fewer per envelope, which is most of what an envelope costs.)
    async fn dispatch_in_span(&self, envelope: &Envelope) -> Ack {
        let now = self.clock.now();
        let result = match envelope.kind.as_str() {
            // A slash command's token is checked with its other authorisation (one reply for
            // every refusal).
            "slash_commands" => self.slash_command(envelope, now).await,
            "interactive" | "events_api" if !self.token_ok(envelope) => Ok(Ack::Bare),
            "interactive" => self.interactive(envelope, now).await,
            "events_api" => self.home_opened(envelope, now).await,
            other => {
                tracing::warn!("unknown envelope type {other:?}; acked and ignored");
                Ok(Ack::Bare)
            }
        };
        match result {
            Ok(ack) => ack,
            Err(Error::Db(e)) if crate::db::is_unique_violation(&e) => {
                match self.previous_ack(&envelope.envelope_id).await {
                    Ok(Some(ack)) => {
                        tracing::info!("envelope handled already; acking with the stored reply");
                        ack
                    }
                    // Another constraint: a race with a different envelope (two `staff` at once).
                    _ => Self::failed(envelope, &Error::Db(e)),
                }
            }
            Err(e) => Self::failed(envelope, &e),
        }
    }

    /// The verification token check for payloads other than slash commands: interactive
    /// payloads (clicks, shortcuts, views) and Events API payloads carry it at their top level.
    /// A wrong or missing one is logged (without either token) and the payload changes nothing.
    fn token_ok(&self, envelope: &Envelope) -> bool {
        let payload = &envelope.payload;
        let given = payload.get("token").and_then(Value::as_str);
        if slash::token_ok(self.slash.verification_token.as_ref(), given) {
            return true;
        }
        let user = payload
            .pointer("/user/id")
            .or_else(|| payload.pointer("/event/user"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let payload_type = payload.get("type").and_then(Value::as_str).unwrap_or("?");
        tracing::warn!(
            user,
            payload_type,
            "payload with a wrong or missing verification token; acked and ignored"
        );
        false
    }

    /// The ack when handling failed: a slash command says so (with a reference to the log),
    /// and names stored data that can no longer be read, which the admin can repair.
    fn failed(envelope: &Envelope, e: &Error) -> Ack {
        tracing::error!(error = %e, "handler failed; reference {}", envelope.envelope_id);
        if envelope.kind != "slash_commands" {
            return Ack::Bare;
        }
        let text = match e {
            Error::StoredDataInvalid(invalid) => crate::mrkdwn!(
                "Sorry, this cannot be done: {} (reference {})",
                invalid.to_string(),
                envelope.envelope_id
            ),
            _ => crate::mrkdwn!("{} (reference {})", SORRY, envelope.envelope_id),
        };
        Ack::WithPayload(slash::reply(&text, None))
    }

    async fn previous_ack(&self, envelope_id: &str) -> Result<Option<Ack>, DbErr> {
        Ok(envelopes::stored_reply(&self.db, envelope_id)
            .await?
            .map(|response| response.map_or(Ack::Bare, Ack::WithPayload)))
    }

    pub(super) async fn remember<C: sea_orm::ConnectionTrait>(
        conn: &C,
        envelope_id: &str,
        ack: &Ack,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let response = match ack {
            Ack::Bare => None,
            Ack::WithPayload(p) => Some(p.clone()),
        };
        // If another replica handled the same envelope at the same moment, this fails, the
        // transaction rolls back, and its stored reply is used instead.
        envelopes::record_handled(conn, envelope_id, response, now).await
    }

    async fn slash_command(&self, envelope: &Envelope, now: DateTime<Utc>) -> Result<Ack, Error> {
        let cmd = match SlashCommand::parse(&envelope.payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::warn!(payload = %redacted(&envelope.payload), "malformed slash command payload: {e}");
                return Ok(Ack::WithPayload(slash::reply(
                    &Mrkdwn::text("Sorry! We couldn't read that command."),
                    None,
                )));
            }
        };
        tracing::info!(
            user = cmd.user_id.as_deref().unwrap_or("?"),
            text = cmd.text.as_deref().unwrap_or(""),
            "slash command"
        );
        let tx = crate::db::begin_write(&self.db).await?;
        let handled = async {
            let reply = slash::handle(&tx, &self.slash, &cmd, now).await?;
            let ack = Ack::WithPayload(reply);
            Self::remember(&tx, &envelope.envelope_id, &ack, now).await?;
            Ok::<_, Error>(ack)
        }
        .await;
        let ack = crate::db::settle(tx, handled).await?;
        self.outbox_wake.notify_one();
        Ok(ack)
    }

    /// Queues an ephemeral answer to a click through its `response_url`.
    async fn respond_ephemeral<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        envelope: &Envelope,
        actions: &BlockActions,
        message: Message,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let Some(url) = &actions.response_url else {
            // A button in a view (the App Home): the answer goes on top of the clicker's Home.
            let Some(user) = actions.user.id.as_deref() else {
                tracing::warn!("no response_url and no user to answer {message:?}");
                return Ok(());
            };
            let text = super::render::plain_text(&message);
            return crate::outbox::publish_home(conn, user, Some(text), now).await;
        };
        crate::outbox::enqueue(
            conn,
            &format!("respond:{}", envelope.envelope_id),
            Outgoing::Reply {
                response_url: url.clone(),
                message,
            },
            now,
        )
        .await?;
        Ok(())
    }

    async fn interactive(&self, envelope: &Envelope, now: DateTime<Utc>) -> Result<Ack, Error> {
        let kind = envelope
            .payload
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind == "view_submission" {
            return self.view_submission(envelope, now).await;
        }
        if kind != "block_actions" {
            tracing::info!("interactive payload of type {kind:?} ignored");
            return Ok(Ack::Bare);
        }
        let actions = match BlockActions::parse(&envelope.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(payload = %redacted(&envelope.payload), "malformed block_actions payload: {e}");
                return Ok(Ack::Bare);
            }
        };
        let clicker = actions.user.id.clone().unwrap_or_default();
        if let Some(action) = home_action_of(&actions) {
            self.home_action(envelope, &actions, &clicker, action, now)
                .await?;
            return Ok(Ack::Bare);
        }
        let Some((accept, inquiry)) = offer_action(&actions) else {
            for action in &actions.actions {
                tracing::info!(
                    user = %clicker,
                    action_id = action.action_id.as_deref().unwrap_or("?"),
                    "button click with no handler; ignored"
                );
            }
            let tx = crate::db::begin_write(&self.db).await?;
            let remembered = Self::remember(&tx, &envelope.envelope_id, &Ack::Bare, now).await;
            crate::db::settle(tx, remembered).await?;
            return Ok(Ack::Bare);
        };
        let click = Click {
            envelope,
            actions: &actions,
            clicker: &clicker,
            accept,
            inquiry,
        };
        self.answer_offer(click, now).await?;
        self.outbox_wake.notify_one();
        Ok(Ack::Bare)
    }

    /// `app_home_opened`: remember that the user has a Home and publish it.
    async fn home_opened(&self, envelope: &Envelope, now: DateTime<Utc>) -> Result<Ack, Error> {
        let event = envelope.payload.get("event");
        let kind = event.and_then(|e| e.get("type")).and_then(Value::as_str);
        let tab = event.and_then(|e| e.get("tab")).and_then(Value::as_str);
        let user = event.and_then(|e| e.get("user")).and_then(Value::as_str);
        let (Some("app_home_opened"), Some("home"), Some(user)) = (kind, tab, user) else {
            return Ok(Ack::Bare);
        };
        tracing::info!(user, "App Home opened");
        let tx = crate::db::begin_write(&self.db).await?;
        let done = async {
            home::opened(&tx, user, now).await?;
            Self::remember(&tx, &envelope.envelope_id, &Ack::Bare, now).await
        }
        .await;
        crate::db::settle(tx, done).await?;
        self.outbox_wake.notify_one();
        Ok(Ack::Bare)
    }

    /// A task, admin or availability button: the change and what the clicker is told, in one
    /// transaction; when the change is refused (the task moved on, the clicker may not), only
    /// the refusal.
    async fn home_action(
        &self,
        envelope: &Envelope,
        actions: &BlockActions,
        clicker: &str,
        action: Option<HomeAction>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        tracing::info!(user = clicker, ?action, "App Home button");
        let pressed = Pressed {
            user: clicker,
            trigger_id: actions.trigger_id.as_deref(),
            key: &envelope.envelope_id,
        };
        let settings = HomeSettings {
            notices: &self.notices,
            random_seed: self.slash.random_seed,
        };
        let tell = |reason: String| Message::ClickRefused { reason };
        handlers::refusable(
            &self.db,
            async |tx| {
                if let Some(text) = home::act(tx, pressed, action, settings, now).await? {
                    self.respond_ephemeral(tx, envelope, actions, tell(text), now)
                        .await?;
                }
                Ok(Self::remember(tx, &envelope.envelope_id, &Ack::Bare, now).await?)
            },
            async |tx, refusal| {
                self.respond_ephemeral(tx, envelope, actions, tell(refusal.to_string()), now)
                    .await?;
                Ok(Self::remember(tx, &envelope.envelope_id, &Ack::Bare, now).await?)
            },
        )
        .await?;
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// A form was submitted (the restaff and availability forms). Its ack closes it, or keeps
    /// it open with what is wrong under each field.
    async fn view_submission(&self, envelope: &Envelope, now: DateTime<Utc>) -> Result<Ack, Error> {
        let payload = &envelope.payload;
        let view = payload.get("view");
        let callback = view
            .and_then(|v| v.get("callback_id"))
            .and_then(Value::as_str);
        let user = payload.pointer("/user/id").and_then(Value::as_str);
        let form = match callback {
            Some(blocks::AVAILABILITY_CALLBACK) => {
                let empty = serde_json::Map::new();
                let values = payload
                    .pointer("/view/state/values")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                match super::availability::read_form(values, now) {
                    Ok(form) => Form::Availability(form),
                    Err(errors) => Form::Invalid(errors),
                }
            }
            Some(blocks::RESTAFF_CALLBACK) => match (user, restaff_choice(view)) {
                (Some(user), Some((task, chosen))) => Form::Restaff { user, task, chosen },
                // Nothing changes and nothing is remembered: the form stays open.
                _ => {
                    let refusal = "Choose the worker to replace.".to_string();
                    return Ok(form_ack(FormAnswer::Refused(refusal)));
                }
            },
            _ => {
                tracing::info!(?callback, "view submission with no handler; acked");
                return Ok(Ack::Bare);
            }
        };
        let tx = crate::db::begin_write(&self.db).await?;
        let done = async {
            let ack = match form {
                Form::Invalid(errors) => errors_ack(errors),
                Form::Availability(form) => {
                    form_ack(modal::availability_submitted(&tx, user, form, now).await?)
                }
                Form::Restaff { user, task, chosen } => {
                    form_ack(modal::restaff_submitted(&tx, user, task, chosen, now).await?)
                }
            };
            Self::remember(&tx, &envelope.envelope_id, &ack, now).await?;
            Ok::<_, Error>(ack)
        }
        .await;
        let ack = crate::db::settle(tx, done).await?;
        self.outbox_wake.notify_one();
        Ok(ack)
    }

    /// Accept or Reject on an offer: the answer and its ephemeral reply in one transaction;
    /// when the answer is refused (the task changed), only the reply saying why.
    ///
    /// No `handled_envelopes` row for an answered offer: the click is idempotent by itself (one
    /// response per offer, so a redelivered click is "already decided" and changes nothing;
    /// ephemeral replies are keyed by envelope id), and the ack carries no payload. One
    /// statement less on the busiest path.
    async fn answer_offer(&self, click: Click<'_>, now: DateTime<Utc>) -> Result<(), Error> {
        let Click {
            envelope,
            actions,
            clicker,
            accept,
            inquiry,
        } = click;
        let offer_span = tracing::info_span!(
            "offer",
            inquiry_id = inquiry,
            task_id = tracing::field::Empty
        );
        let via = match actions.response_url {
            Some(_) => Via::Dm,
            None => Via::Home,
        };
        handlers::refusable(
            &self.db,
            async |tx| {
                let who = Responder::Slack(clicker);
                let answered = offer::answer(tx, inquiry, who, accept, via, &self.notices, now)
                    .instrument(offer_span.clone())
                    .await?;
                if inquiry.is_some() {
                    offer_span.in_scope(|| {
                        let outcome = answered.outcome;
                        tracing::info!(?outcome, accept, user = %clicker, "offer answered");
                    });
                }
                if let Some(message) = answered.reply {
                    self.respond_ephemeral(tx, envelope, actions, message, now)
                        .await?;
                }
                Ok(())
            },
            async |tx, refusal| {
                // The assignment itself failed (the task changed): undone; say why.
                let reason = refusal.to_string();
                let message = Message::ClickRefused { reason };
                self.respond_ephemeral(tx, envelope, actions, message, now)
                    .await?;
                Ok(Self::remember(tx, &envelope.envelope_id, &Ack::Bare, now).await?)
            },
        )
        .await
    }
}

/// An Accept or Reject click on an offer.
struct Click<'a> {
    envelope: &'a Envelope,
    actions: &'a BlockActions,
    clicker: &'a str,
    accept: bool,
    /// The offer's inquiry id (`None`: the button's value is not one).
    inquiry: Option<i64>,
}

/// The first Accept or Reject action of a click: whether it accepts, and the inquiry id its
/// value names.
fn offer_action(actions: &BlockActions) -> Option<(bool, Option<i64>)> {
    actions.actions.iter().find_map(|a| {
        let accept = match a.action_id.as_deref() {
            Some(blocks::ACCEPT) => true,
            Some(blocks::REJECT) => false,
            _ => return None,
        };
        Some((
            accept,
            a.value.as_deref().and_then(|v| v.parse::<i64>().ok()),
        ))
    })
}

/// The Home action of a click (`Some(None)`: a task button whose value is not a task id).
fn home_action_of(actions: &BlockActions) -> Option<Option<HomeAction>> {
    if actions
        .actions
        .iter()
        .any(|a| a.action_id.as_deref() == Some(blocks::AVAILABILITY_EDIT))
    {
        return Some(Some(HomeAction::EditAvailability));
    }
    actions.actions.iter().find_map(|a| {
        let make: fn(i64) -> HomeAction = match a.action_id.as_deref()? {
            blocks::SUBMIT => HomeAction::Submit,
            blocks::APPROVE => HomeAction::Approve,
            blocks::SEND_BACK => HomeAction::SendBack,
            blocks::STAFF => HomeAction::Staff,
            blocks::RESTAFF => HomeAction::Restaff,
            _ => return None,
        };
        Some(a.value.as_deref().and_then(|v| v.parse().ok()).map(make))
    })
}

/// A submitted form, as read from its view.
enum Form<'a> {
    /// Fields that do not read: block id → what is wrong.
    Invalid(Value),
    Availability(modal::Availability),
    Restaff {
        user: &'a str,
        task: &'a str,
        chosen: &'a str,
    },
}

/// The restaff form's task (its `private_metadata`) and the worker chosen.
fn restaff_choice(view: Option<&Value>) -> Option<(&str, &str)> {
    let view = view?;
    let task = view
        .get("private_metadata")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let chosen = view
        .pointer(&format!(
            "/state/values/{}/{}/selected_option/value",
            blocks::RESTAFF_INPUT,
            blocks::RESTAFF_SELECT
        ))
        .and_then(Value::as_str)?;
    Some((task, chosen))
}

/// Keeps a form open with `errors` (block id → what is wrong) under its fields.
fn errors_ack(errors: Value) -> Ack {
    Ack::WithPayload(json!({"response_action": "errors", "errors": errors}))
}

/// The ack of a submission: closes the form, or keeps it open with the refusal (under the
/// restaff form's worker field, the one form that refuses).
fn form_ack(answer: FormAnswer) -> Ack {
    match answer {
        FormAnswer::Close => Ack::Bare,
        FormAnswer::Refused(text) => errors_ack(json!({ blocks::RESTAFF_INPUT: text })),
    }
}
