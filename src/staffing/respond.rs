//! Answers to offers (behaviour §6.6–6.7, design.md §5.3 and §8): Accept and Reject clicks, one
//! winner per request guaranteed by the database, the offer DMs updated in place, and "No worker
//! has accepted" once everyone reachable declined.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::config::NoticeSettings;
use crate::db::entities::task_assignment;
use crate::db::offers::{Click, OfferKey};
use crate::db::requests::RequestContext;
use crate::db::{self, AssignmentStatus, RequestStatus};
use crate::error::Result;
use crate::lifecycle;
use crate::messages::{Message, OfferOutcome, Outgoing};
use crate::outbox;
use crate::requests::{OfferDm, final_message};

/// What a click did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickOutcome {
    /// This worker got the task.
    Won,
    /// Declined.
    Rejected,
    /// Accepted, but the request was closed, the task finished or someone else won.
    Late,
    /// The clicking user does not own the offer: nothing changes.
    NotYours,
    /// Reject after winning: nothing changes.
    CannotRejectAfterWin,
    /// A second click on an offer already answered: nothing changes.
    AlreadyDecided,
}

/// Who answers an offer: the Slack user who clicked, or the sender address of an email reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder<'a> {
    Slack(&'a str),
    Email(&'a str),
}

impl Responder<'_> {
    /// Whether this is the offer's worker.
    fn owns(&self, click: &Click) -> bool {
        match self {
            Responder::Slack(id) => click.clicker_slack_id.as_deref() == Some(*id),
            Responder::Email(address) => {
                !click.clicker_email.trim().is_empty()
                    && click
                        .clicker_email
                        .trim()
                        .eq_ignore_ascii_case(address.trim())
            }
        }
    }
}

impl<'a> From<&'a str> for Responder<'a> {
    /// A Slack user id.
    fn from(id: &'a str) -> Self {
        Responder::Slack(id)
    }
}

/// Queues [`final_message`].
async fn queue_final<C: ConnectionTrait>(
    conn: &C,
    dm: &OfferDm,
    context: &RequestContext,
    first_name: &str,
    outcome: OfferOutcome,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let offer = context.offer_content();
    // The DM, and every Home that shows the offer, in one insert.
    let mut messages = vec![outbox::refresh_row(&[context.task_id], Vec::new())];
    messages.extend(final_message(dm, &offer, first_name, outcome));
    outbox::enqueue_all(conn, messages, now).await
}

impl Click {
    fn key(&self) -> OfferKey {
        OfferKey {
            id: self.inquiry_id,
            request_id: self.context.request_id,
            worker_id: self.worker_id,
        }
    }

    fn dm(&self) -> OfferDm {
        OfferDm {
            id: self.inquiry_id,
            channel: self.dm_channel.clone(),
            ts: self.dm_ts.clone(),
        }
    }

    /// Whether an accept can still win: the request is open, the task and project unfinished,
    /// and a restaff still has work in progress to hand over (once it was submitted there is
    /// nothing to take over; the request is closed then too, this also covers one left open).
    fn can_win(&self) -> bool {
        self.request_status != RequestStatus::Closed
            && !self.task_status.is_finished()
            && !self.project_status.is_finished()
            && self
                .counter_status
                .is_none_or(|s| s == AssignmentStatus::Processing)
    }
}

/// Handles an answer to offer `inquiry_id` by `who` (a click, or an email reply). Runs inside the caller's
/// transaction; a [`crate::error::UserError`] means nothing should be committed.
///
/// A winning accept costs eight statements: the click, the compare-and-set on the request, the
/// task's assignments, the response, the assignment, the task's status, the open offers, and
/// one multi-row insert of every Slack message (the DM updates, the invite, the welcome, the
/// status notices of `notices`).
pub async fn respond<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    who: impl Into<Responder<'_>>,
    accept: bool,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<ClickOutcome> {
    let Some(click) = db::offers::click(conn, inquiry_id).await? else {
        return Ok(ClickOutcome::NotYours);
    };
    if !who.into().owns(&click) {
        return Ok(ClickOutcome::NotYours);
    }
    if let Some(was_winner) = click.previous_winner {
        return Ok(if was_winner && !accept {
            ClickOutcome::CannotRejectAfterWin
        } else {
            ClickOutcome::AlreadyDecided
        });
    }
    // The caller's span (the click) carries the task from here on.
    tracing::Span::current().record("task_id", click.context.task_id);
    if !accept {
        reject(conn, &click, now).await?;
        return Ok(ClickOutcome::Rejected);
    }
    // Compare-and-set: of all concurrent accepts, exactly one closes the request.
    let won = click.can_win()
        && db::requests::close_for_winner(conn, click.context.request_id, now).await?;
    if !won {
        db::offers::insert_response(conn, click.key(), true, false, now).await?;
        let (context, name) = (&click.context, &click.clicker_first_name);
        queue_final(conn, &click.dm(), context, name, OfferOutcome::Gone, now).await?;
        return Ok(ClickOutcome::Late);
    }
    win(conn, &click, notices, Winning::Accepted, now).await?;
    Ok(ClickOutcome::Won)
}

/// How a worker came to win a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winning {
    /// They accepted an offer.
    Accepted,
    /// Auto-staffed by availability: they were asked nothing and are told by a DM (and email,
    /// as they prefer); the status notice says "auto-staffed".
    AutoStaffed,
}

/// Auto-staffing (behaviour §6.5): `worker_id` gets request `request_id`'s task with no offer,
/// as a won offer does (the request closes, offers still out say "taken", the welcome and the
/// status notices go out) plus a DM telling them. Runs inside the caller's transaction; false
/// when the request is no longer open (nothing written then).
pub async fn auto_staff<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    worker_id: i64,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<bool> {
    if !db::requests::close_for_winner(conn, request_id, now).await? {
        return Ok(false);
    }
    let inquiry_id = db::offers::insert_auto(conn, request_id, worker_id, now).await?;
    let click = db::offers::click(conn, inquiry_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("inquiry {inquiry_id}")))?;
    tracing::Span::current().record("task_id", click.context.task_id);
    win(conn, &click, notices, Winning::AutoStaffed, now).await?;
    Ok(true)
}

/// A declined offer: recorded, its DM updated, and the request closed if that was the last
/// worker who could say yes.
async fn reject<C: ConnectionTrait>(conn: &C, click: &Click, now: DateTime<Utc>) -> Result<()> {
    db::offers::insert_response(conn, click.key(), false, false, now).await?;
    let outcome = if click.request_has_winner {
        OfferOutcome::Taken
    } else {
        OfferOutcome::Thanks
    };
    let (context, name) = (&click.context, &click.clicker_first_name);
    queue_final(conn, &click.dm(), context, name, outcome, now).await?;
    close_if_everyone_declined(conn, context.request_id, now).await?;
    Ok(())
}

/// The winning accept (the request is closed already): the assignment (new, or handed over on
/// a restaff), the welcome and the status notices (not on a hand-over), the winner's DM and
/// every other open offer of the request.
async fn win<C: ConnectionTrait>(
    conn: &C,
    click: &Click,
    notices: &NoticeSettings,
    how: Winning,
    now: DateTime<Utc>,
) -> Result<()> {
    let context = &click.context;
    let existing = db::tasks::assignments_of(conn, context.task_id).await?;
    db::offers::insert_response(conn, click.key(), true, true, now).await?;
    let mut messages = Vec::new();
    match existing
        .iter()
        .find(|a| a.assignment_counter == context.required_role_counter)
    {
        Some(current) => {
            // A restaff: the assignment changes hands (the previous worker is told).
            let me = db::workers::by_id(conn, click.worker_id)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(format!("worker {}", click.worker_id)))?;
            lifecycle::reassign(conn, current, &me, now).await?;
        }
        None => messages.extend(assign(conn, click, notices, how, &existing, now).await?),
    }
    let won = OfferOutcome::Won {
        task_id: context.task_id,
        channel: context.slack_channel_id.clone(),
    };
    // What the request's offers show, rendered once for all of them.
    let offer = context.offer_content();
    match how {
        Winning::Accepted => messages.extend(final_message(
            &click.dm(),
            &offer,
            &click.clicker_first_name,
            won,
        )),
        Winning::AutoStaffed => messages.extend(auto_staffed_messages(click, &offer, notices)),
    }
    messages.extend(taken(conn, click, &offer).await?);
    // Every Home that shows the task (the offers' owners, the admins) is published again.
    messages.push(outbox::refresh_row(&[context.task_id], Vec::new()));
    outbox::enqueue_all(conn, messages, now).await?;
    Ok(())
}

/// A first assignment won (by a click or by auto-staffing): the assignment, and the welcome and
/// status notices it sends.
async fn assign<C: ConnectionTrait>(
    conn: &C,
    click: &Click,
    notices: &NoticeSettings,
    how: Winning,
    existing: &[task_assignment::Model],
    now: DateTime<Utc>,
) -> Result<Vec<(String, Outgoing)>> {
    let context = &click.context;
    let winner = lifecycle::Winner {
        task: lifecycle::TaskFacts {
            id: context.task_id,
            status: click.task_status,
            step_id: context.step_id,
            project_id: context.project_id,
        },
        existing,
        worker_id: click.worker_id,
        worker: lifecycle::NoticeWorker {
            username: &click.clicker_username,
            slack_id: click.clicker_slack_id.as_deref(),
            email: &click.clicker_email,
            notify: click.clicker_notify,
        },
        certified: context.required_count == 0 || click.held_count == context.required_count,
        notice: lifecycle::NoticeFacts {
            task_id: context.task_id,
            version_slug: &context.version_slug,
            project_description: &context.short_description,
            step_slug: &context.step_slug,
            channel: context.slack_channel_id.as_deref(),
        },
        by: match how {
            Winning::Accepted => lifecycle::AssignedBy::Person,
            Winning::AutoStaffed => lifecycle::AssignedBy::Policy,
        },
    };
    lifecycle::won(conn, winner, notices, now).await
}

/// Every other offer of the request still open says the task was taken.
async fn taken<C: ConnectionTrait>(
    conn: &C,
    click: &Click,
    offer: &crate::messages::OfferContent,
) -> Result<Vec<(String, Outgoing)>> {
    let mut messages = Vec::new();
    for other in db::offers::open(conn, click.context.request_id).await? {
        if other.id == click.inquiry_id {
            continue;
        }
        let dm = OfferDm {
            id: other.id,
            channel: other.dm_channel,
            ts: other.dm_ts,
        };
        messages.extend(final_message(
            &dm,
            offer,
            &other.first_name,
            OfferOutcome::Taken,
        ));
    }
    Ok(messages)
}

/// The DM (and email, as they prefer) telling an auto-staffed worker the task is theirs.
fn auto_staffed_messages(
    click: &Click,
    offer: &crate::messages::OfferContent,
    notices: &NoticeSettings,
) -> Vec<(String, Outgoing)> {
    let message = || Message::AutoStaffed {
        first_name: click.clicker_first_name.clone(),
        task_id: click.context.task_id,
        channel: click.context.slack_channel_id.clone(),
        offer: offer.clone(),
    };
    let reach = crate::notify::reach(
        click.clicker_notify,
        click.clicker_slack_id.as_deref(),
        &click.clicker_email,
        notices.email,
    );
    let mut out = Vec::new();
    if let Some(slack) = reach.slack {
        out.push((
            format!("auto-staffed:{}", click.inquiry_id),
            Outgoing::post(slack, message()),
        ));
    }
    if let Some(address) = reach.email {
        let to = crate::notify::EmailTo {
            to: address,
            token: None,
            in_reply_to: None,
            slack_user: click.clicker_slack_id.as_deref(),
            only_channel: reach.slack.is_none(),
        };
        out.push((
            format!("auto-staffed-email:{}", click.inquiry_id),
            to.outgoing(message()),
        ));
    }
    out
}

/// When the pool is exhausted (`done_sending`) and everyone asked has declined: close the request
/// and say so in the project channel, once.
pub async fn close_if_everyone_declined<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let (asked, declined) = db::offers::asked_and_declined(conn, request_id).await?;
    if asked == 0 || declined < asked {
        return Ok(false);
    }
    let closed = db::requests::close_if_done_sending(conn, request_id, now).await?;
    if closed
        && let Some(context) = db::requests::context(conn, request_id).await?
        && let Some(channel) = &context.slack_channel_id
    {
        let message = Message::NobodyAccepted {
            task: context.display(),
        };
        let key = format!("no-accept:{request_id}");
        outbox::enqueue(conn, &key, Outgoing::post(channel, message), now).await?;
    }
    Ok(closed)
}

/// After an offer DM was delivered: remember where it is, and if the offer was decided in the
/// meantime (answered, someone won, the task ended), update it now.
///
/// Whichever of this and the decision commits second updates the DM (both may queue it; the
/// outbox's dedupe key keeps one): see [`db::offers::store_delivery`].
pub async fn on_offer_delivered<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    channel: &str,
    ts: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(facts) = db::offers::store_delivery(conn, inquiry_id, channel, ts).await? else {
        return Ok(());
    };
    let Some(context) = db::requests::context(conn, facts.request_id).await? else {
        return Ok(());
    };
    let outcome = match (facts.is_available, facts.is_winner) {
        (Some(_), Some(true)) => OfferOutcome::Won {
            task_id: context.task_id,
            channel: context.slack_channel_id.clone(),
        },
        (Some(false), _) if facts.request_has_winner => OfferOutcome::Taken,
        (Some(false), _) => OfferOutcome::Thanks,
        (Some(true), _) => OfferOutcome::Gone,
        (None, _) if facts.request_status != RequestStatus::Closed => return Ok(()),
        (None, _) if facts.request_has_winner => OfferOutcome::Taken,
        (None, _) => OfferOutcome::Gone,
    };
    let dm = OfferDm {
        id: inquiry_id,
        channel: Some(channel.to_string()),
        ts: Some(ts.to_string()),
    };
    queue_final(conn, &dm, &context, &facts.first_name, outcome, now).await
}

/// Failed deliveries of one worker's offer of one request after which they are not asked
/// again for it.
pub const MAX_OFFER_FAILURES: i64 = 2;

/// Slack refused an offer DM for good (`error`): it was never seen, so it does not count as
/// asked. The offer goes, the failure is recorded, the worker goes back into the request's
/// pool (until their offers failed [`MAX_OFFER_FAILURES`] times), a request whose pool seemed
/// exhausted sends again, and the staffing channel is told.
pub async fn on_offer_undeliverable<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    error: &str,
    by_email: bool,
    staffing_channel: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(inquiry) = db::offers::find(conn, inquiry_id).await? else {
        return Ok(());
    };
    if !db::offers::delete_unanswered(conn, inquiry_id).await? {
        // Answered after all (a reminder's buttons): it was seen.
        return Ok(());
    }
    let failures =
        db::offers::record_failure(conn, inquiry.request_id, inquiry.worker_id, error, now).await?;
    let again = failures < MAX_OFFER_FAILURES;
    if again {
        db::requests::send_again(conn, inquiry.request_id, now).await?;
    } else {
        close_if_everyone_declined(conn, inquiry.request_id, now).await?;
    }
    metrics::counter!("staffbot_offers_undeliverable_total").increment(1);
    let username = db::workers::by_id(conn, inquiry.worker_id)
        .await?
        .map(|w| w.username)
        .unwrap_or_default();
    tracing::warn!(
        inquiry_id,
        worker = %username,
        "{} refused an offer for good ({error}); {}",
        if by_email { "the mail server" } else { "Slack" },
        if again { "the worker will be asked again" } else { "the worker is not asked again for this task" }
    );
    if let (Some(channel), Some(context)) = (
        staffing_channel,
        db::requests::context(conn, inquiry.request_id).await?,
    ) {
        let message = Message::OfferUndeliverable {
            task: context.display(),
            worker: username,
            error: error.to_string(),
            again,
            by_email,
        };
        let key = format!("undeliverable:{inquiry_id}");
        outbox::enqueue(conn, &key, Outgoing::post(channel, message), now).await?;
    }
    Ok(())
}
