//! An answer to an offer, however it came (an Accept or Reject button in a DM or on the App
//! Home, an email reply): the answer applied ([`crate::staffing::respond`]) and what the person
//! is told about it, decided in one place for every way in ([`reply`]).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::config::NoticeSettings;
use crate::db;
use crate::db::offers::Click;
use crate::error::Error;
use crate::messages::wording::{GONE, THANKS};
use crate::messages::{ClickReply, Message, OfferOutcome};
use crate::staffing::respond::{self, ClickOutcome, Responder};

/// Where the answer came from, which decides how its outcome is told.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// A button in the offer's DM: the DM itself shows the outcome (updated in place).
    Dm,
    /// A button on the App Home: the outcome is told on top of it.
    Home,
    /// An email reply: the outcome is told by email, with the offer as it was read before the
    /// answer (`before`).
    Email { before: &'a Click },
}

/// An answer applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub outcome: ClickOutcome,
    /// What the person is told (None: the offer's DM shows it).
    pub reply: Option<Message>,
}

/// Applies `who`'s answer (`accept`) to offer `inquiry` (None: the button named no offer) inside
/// the caller's transaction. A [`crate::error::UserError`] means the answer could not be
/// honoured (the task changed): nothing should be committed ([`super::refusable`]).
pub async fn answer<C: ConnectionTrait>(
    conn: &C,
    inquiry: Option<i64>,
    who: Responder<'_>,
    accept: bool,
    via: Via<'_>,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<Answered, Error> {
    let Some(inquiry) = inquiry else {
        let outcome = ClickOutcome::NotYours;
        let reply = reply(outcome, via, None);
        return Ok(Answered { outcome, reply });
    };
    let outcome = respond::respond(conn, inquiry, who, accept, notices, now).await?;
    // By email, whether someone else won is what the request says now (a click may have won
    // it while this answer waited for the request's row); nothing else can have changed.
    let after = match (via, outcome) {
        (Via::Email { before }, ClickOutcome::Rejected | ClickOutcome::Late)
            if !before.request_has_winner =>
        {
            db::offers::click(conn, inquiry).await?
        }
        _ => None,
    };
    let reply = reply(outcome, via, after.as_ref());
    Ok(Answered { outcome, reply })
}

/// What the person is told about their answer's `outcome` (`after`: the offer read again after
/// an email answer, when it may have changed).
pub fn reply(outcome: ClickOutcome, via: Via<'_>, after: Option<&Click>) -> Option<Message> {
    use ClickOutcome as O;
    let fixed = |reply| Some(Message::ClickReply { reply });
    let told = |reason: &str| {
        Some(Message::ClickRefused {
            reason: reason.to_string(),
        })
    };
    match (via, outcome) {
        (_, O::CannotRejectAfterWin) => fixed(ClickReply::CannotRejectAfterWin),
        (Via::Email { .. }, O::AlreadyDecided | O::NotYours) => fixed(ClickReply::AlreadyAnswered),
        (_, O::NotYours) => fixed(ClickReply::NotYours),
        (Via::Email { before }, outcome) => Some(by_email(outcome, after.unwrap_or(before))),
        (Via::Home, O::Won) => told("You got the task! It is under Your tasks now."),
        (Via::Home, O::Rejected) => told(THANKS),
        (Via::Home, O::Late) => told(GONE),
        (Via::Home, O::AlreadyDecided) | (Via::Dm, _) => None,
    }
}

/// An email answer's outcome, with the offer it answered (`click`).
fn by_email(outcome: ClickOutcome, click: &Click) -> Message {
    let decided = |outcome| Message::OfferDecided {
        first_name: click.clicker_first_name.clone(),
        offer: click.context.offer_content(),
        outcome,
    };
    match outcome {
        ClickOutcome::Won => decided(OfferOutcome::Won {
            task_id: click.context.task_id,
            channel: click.context.slack_channel_id.clone(),
        }),
        ClickOutcome::Rejected | ClickOutcome::Late if click.request_has_winner => {
            decided(OfferOutcome::Taken)
        }
        ClickOutcome::Rejected => decided(OfferOutcome::Thanks),
        _ => decided(OfferOutcome::Gone),
    }
}
