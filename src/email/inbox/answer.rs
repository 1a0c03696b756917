//! Answering an email: once per `Message-ID`, the offer it names answered through the same
//! handler as a click ([`crate::handlers::offer::answer`]) and the worker told the outcome by
//! email; an email that names no offer gets the worker's open offers.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::read::Incoming;
use crate::config::NoticeSettings;
use crate::db;
use crate::email::EmailSettings;
use crate::email::reply::{self, Answer};
use crate::handlers::offer::{self, Via};
use crate::lease::LeaseProof;
use crate::messages::{MAX_REMINDER_ITEMS, Message, ReminderItem};
use crate::notify::EmailTo;
use crate::staffing::respond::{ClickOutcome, Responder};

/// Claims `incoming` for handling: false when it was handled already, under its id or (a
/// message without a `Message-ID`) the id an older release stored for it.
async fn claim<C: sea_orm::ConnectionTrait>(
    conn: &C,
    incoming: &Incoming,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    if let Some(legacy) = &incoming.legacy_id
        && db::email::verdict_of(conn, legacy).await?.is_some()
    {
        return Ok(false);
    }
    db::email::claim_reply(conn, &incoming.message_id, now).await
}

/// What handling one email decided (stored as `email_replies.verdict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled before (by this process or another replica): only moved.
    AlreadyHandled,
    /// Not a person's answer (an auto-reply, a bounce): ignored.
    Automatic(&'static str),
    /// No offer token, or a token of no offer: ignored.
    NoOffer,
    /// Sent from an address that is not the offer's worker's: ignored.
    Stranger,
    /// Neither ACCEPT nor REJECT: the worker is asked again.
    NotUnderstood,
    /// A worker's email that names no offer (a reply to a reminder, say): answered with their
    /// open offers and how to answer each.
    OffersListed,
    /// The answer was applied.
    Answered(ClickOutcome),
    /// The answer could not be honoured (the task changed): the worker is told why.
    Refused,
}

impl Verdict {
    pub fn as_str(&self) -> String {
        match self {
            Verdict::AlreadyHandled => "already handled".into(),
            Verdict::Automatic(why) => format!("ignored: {why}"),
            Verdict::NoOffer => "ignored: no offer".into(),
            Verdict::Stranger => "ignored: not the worker's address".into(),
            Verdict::NotUnderstood => "not understood".into(),
            Verdict::OffersListed => "no offer named: open offers listed".into(),
            Verdict::Answered(outcome) => format!("answered: {outcome:?}").to_lowercase(),
            Verdict::Refused => "refused".into(),
        }
    }
}

/// What one read of the mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InboxReport {
    /// Messages read.
    pub read: usize,
    /// Answers applied (accepts and rejects).
    pub answered: usize,
    /// Messages ignored (auto-replies, strangers, no offer) or handled before.
    pub ignored: usize,
    /// Messages moved to the handled mailbox.
    pub moved: usize,
    /// Messages that could not be handled now (the database failed): left for the next round.
    pub failed: usize,
}

/// Handles one email in one transaction, fenced by the `mail` lease: claims its `Message-ID`,
/// applies the answer it carries and queues the reply to the worker. Returns what it decided.
pub async fn handle(
    db: &DatabaseConnection,
    lease: &LeaseProof,
    incoming: &Incoming,
    settings: &EmailSettings,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<Verdict, crate::error::Error> {
    crate::handlers::refusable(
        db,
        async |tx| {
            lease.fence(tx).await?;
            if !claim(tx, incoming, now).await? {
                return Ok(Verdict::AlreadyHandled);
            }
            let (verdict, inquiry) = decide(tx, incoming, settings, notices, now).await?;
            db::email::set_verdict(tx, &incoming.message_id, inquiry, &verdict.as_str()).await?;
            Ok(verdict)
        },
        async |tx, refusal| {
            // The answer could not be honoured: nothing of it is kept; the worker is told why,
            // and the message is recorded as handled.
            refuse(tx, lease, incoming, settings, &refusal.to_string(), now).await?;
            Ok(Verdict::Refused)
        },
    )
    .await
}

/// The reply to the worker of offer `click`, answering their email `incoming`.
fn reply_to_worker(
    incoming: &Incoming,
    click: &db::offers::Click,
    token: &str,
    message: Message,
) -> (String, crate::messages::Outgoing) {
    let to = EmailTo {
        to: &click.clicker_email,
        token: Some(token.to_string()),
        in_reply_to: Some(incoming.message_id.clone()),
        slack_user: click.clicker_slack_id.as_deref(),
        only_channel: false,
    };
    (
        format!("email-answer:{}", incoming.message_id),
        to.outgoing(message),
    )
}

/// Decides and applies what `incoming` says (inside the caller's transaction).
async fn decide<C: ConnectionTrait>(
    conn: &C,
    incoming: &Incoming,
    settings: &EmailSettings,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<(Verdict, Option<i64>), crate::error::Error> {
    if let Some(why) = incoming.automatic {
        return Ok((Verdict::Automatic(why), None));
    }
    let Some(token) = reply::token(&incoming.recipients, &incoming.subject, &settings.reply_to)
    else {
        return list_open_offers(conn, incoming, now).await;
    };
    let Some(inquiry_id) = db::email::inquiry_of(conn, &token).await? else {
        return Ok((Verdict::NoOffer, None));
    };
    let Some(click) = db::offers::click(conn, inquiry_id).await? else {
        return Ok((Verdict::NoOffer, None));
    };
    let Some(from) = incoming.from.as_deref() else {
        return Ok((Verdict::Stranger, Some(inquiry_id)));
    };
    if !click.clicker_email.trim().eq_ignore_ascii_case(from.trim()) {
        tracing::warn!(
            inquiry_id,
            "an email reply to an offer came from another address than its worker's; ignored"
        );
        return Ok((Verdict::Stranger, Some(inquiry_id)));
    }
    let (verdict, message) = match reply::answer(&incoming.body, &incoming.subject) {
        None => (Verdict::NotUnderstood, Some(Message::ReplyNotUnderstood)),
        Some(answer) => {
            let accept = answer == Answer::Accept;
            let who = Responder::Email(from);
            let via = Via::Email { before: &click };
            let answered =
                offer::answer(conn, Some(inquiry_id), who, accept, via, notices, now).await?;
            (Verdict::Answered(answered.outcome), answered.reply)
        }
    };
    if let Some(message) = message {
        let (key, outgoing) = reply_to_worker(incoming, &click, &token, message);
        crate::outbox::enqueue(conn, &key, outgoing, now).await?;
    }
    Ok((verdict, Some(inquiry_id)))
}

/// An email that names no offer (a reply to a reminder, a new email): a worker (by the `From`
/// address) gets the list of their open offers, each with its answer links; anyone else is
/// ignored (no answer to strangers).
async fn list_open_offers<C: ConnectionTrait>(
    conn: &C,
    incoming: &Incoming,
    now: DateTime<Utc>,
) -> Result<(Verdict, Option<i64>), crate::error::Error> {
    let Some(from) = incoming.from.as_deref() else {
        return Ok((Verdict::NoOffer, None));
    };
    let Some(worker) = db::workers::by_email(conn, from).await? else {
        return Ok((Verdict::NoOffer, None));
    };
    let open = db::offers::due_reminders(conn, now, worker.id..worker.id + 1).await?;
    let items: Vec<ReminderItem> = open
        .iter()
        .take(MAX_REMINDER_ITEMS)
        .map(ReminderItem::from)
        .collect();
    let message = Message::OpenOffers {
        more: open.len().saturating_sub(items.len()),
        items,
    };
    let to = EmailTo {
        to: &worker.email,
        token: None,
        in_reply_to: Some(incoming.message_id.clone()),
        slack_user: worker.slack_user_id.as_deref(),
        only_channel: false,
    };
    let key = format!("email-answer:{}", incoming.message_id);
    crate::outbox::enqueue(conn, &key, to.outgoing(message), now).await?;
    Ok((Verdict::OffersListed, None))
}

/// Records `incoming` as handled with an answer that could not be honoured, and tells the
/// worker `reason`.
async fn refuse<C: ConnectionTrait>(
    conn: &C,
    lease: &LeaseProof,
    incoming: &Incoming,
    settings: &EmailSettings,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    lease.fence(conn).await?;
    if !claim(conn, incoming, now).await? {
        return Ok(());
    }
    let token = reply::token(&incoming.recipients, &incoming.subject, &settings.reply_to);
    let inquiry = match &token {
        Some(t) => db::email::inquiry_of(conn, t).await?,
        None => None,
    };
    db::email::set_verdict(conn, &incoming.message_id, inquiry, "refused").await?;
    if let (Some(token), Some(inquiry_id)) = (token, inquiry)
        && let Some(click) = db::offers::click(conn, inquiry_id).await?
    {
        let message = Message::ClickRefused {
            reason: reason.to_string(),
        };
        let (key, outgoing) = reply_to_worker(incoming, &click, &token, message);
        crate::outbox::enqueue(conn, &key, outgoing, now).await?;
    }
    Ok(())
}
