//! The dispatcher: one envelope in, one ack out. Slash commands run one short transaction and
//! reply in the ack; everything else they cause is queued in the outbox. An envelope id that was
//! handled before is acked with the same reply and not acted on again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::Instrument;

use super::actions::{Clicked, HomeAction};
use super::blocks;
use super::envelope::{BlockActions, Envelope, SlashCommand, redacted};
use super::mrkdwn::Mrkdwn;
use super::slash::{self, SlashSettings};
use crate::clock::Clock;
use crate::config::NoticeSettings;
use crate::db::envelopes;
use crate::error::Error;
use crate::messages::{ClickReply, Message, Outgoing};
use crate::staffing::respond;

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
        if actions
            .actions
            .iter()
            .any(|a| a.action_id.as_deref() == Some(super::blocks::AVAILABILITY_EDIT))
        {
            let click = Clicked {
                envelope,
                actions: &actions,
                clicker: &clicker,
            };
            return self.open_availability(click, now).await;
        }
        if let Some(action) = HomeAction::of(&actions) {
            let click = Clicked {
                envelope,
                actions: &actions,
                clicker: &clicker,
            };
            self.home_action(click, action, now).await?;
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

    /// Accept or Reject on an offer: the answer and its ephemeral reply in one transaction;
    /// when the answer is refused (the task changed), only the reply saying why.
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
        let tx = crate::db::begin_write(&self.db).await?;
        let answered = async {
            let reply = match inquiry {
                None => Some(Message::ClickReply {
                    reply: ClickReply::NotYours,
                }),
                Some(id) => match respond::respond(&tx, id, clicker, accept, &self.notices, now)
                    .instrument(offer_span.clone())
                    .await
                {
                    Ok(outcome) => {
                        offer_span.in_scope(|| {
                            tracing::info!(?outcome, accept, user = %clicker, "offer answered");
                        });
                        let from_home = actions.response_url.is_none();
                        respond::click_reply(outcome)
                            .map(|reply| Message::ClickReply { reply })
                            .or_else(|| from_home.then(|| home_answer(outcome)).flatten())
                    }
                    Err(e) => return Err(e),
                },
            };
            if let Some(message) = reply {
                self.respond_ephemeral(&tx, envelope, actions, message, now)
                    .await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        // No `handled_envelopes` row for an offer click: the click is idempotent by itself (one
        // response per offer, so a redelivered click is "already decided" and changes nothing;
        // ephemeral replies are keyed by envelope id), and the ack carries no payload. One
        // statement less on the busiest path.
        match crate::db::settle(tx, answered).await {
            Ok(()) => Ok(()),
            Err(Error::User(e)) => {
                // The assignment itself failed (the task changed): undone; say why.
                tracing::info!("offer could not be honoured: {e}");
                let tx = crate::db::begin_write(&self.db).await?;
                let replied = async {
                    self.respond_ephemeral(
                        &tx,
                        envelope,
                        actions,
                        Message::ClickRefused {
                            reason: e.to_string(),
                        },
                        now,
                    )
                    .await?;
                    Self::remember(&tx, &envelope.envelope_id, &Ack::Bare, now).await
                }
                .await;
                crate::db::settle(tx, replied).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// What an answer from the App Home says on top of it (a DM's answer shows in the DM itself).
fn home_answer(outcome: respond::ClickOutcome) -> Option<Message> {
    use respond::ClickOutcome as O;
    let reason = match outcome {
        O::Won => "You got the task! It is under Your tasks now.",
        O::Rejected => super::render::THANKS,
        O::Late => super::render::GONE,
        O::NotYours | O::CannotRejectAfterWin | O::AlreadyDecided => return None,
    };
    Some(Message::ClickRefused {
        reason: reason.to_string(),
    })
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
