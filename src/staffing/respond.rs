//! Answers to offers (behaviour §6.6–6.7, design.md §5.3 and §8): Accept and Reject clicks, one
//! winner per request guaranteed by the database, the offer DMs updated in place, and "No worker
//! has accepted" once everyone reachable declined.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use super::batch::{DueRequest, REQUEST_COLUMNS, REQUEST_JOINS, request_context};
use crate::db::entities::{staffing_inquiry, staffing_response, task_assignment, worker};
use crate::db::{AssignmentStatus, ProjectStatus, RequestStatus, TaskStatus, statement};
use crate::error::Result;
use crate::outbox::{self, SlackWrite};
use crate::slack::blocks;
use crate::slack::mrkdwn::Mrkdwn;
use crate::workflow::lifecycle;

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

/// The parts of an inquiry an answer needs.
#[derive(Debug, Clone)]
pub(crate) struct OfferRef {
    pub id: i64,
    pub request_id: i64,
    pub worker_id: i64,
    pub dm_channel: Option<String>,
    pub dm_ts: Option<String>,
}

/// The final state of an offer DM (once per inquiry: the first outcome wins, by the outbox's
/// dedupe key). Offers not delivered yet get theirs when they are (see [`on_offer_delivered`]).
fn final_write(
    inquiry: &OfferRef,
    context: &DueRequest,
    first_name: &str,
    outcome: &Mrkdwn,
) -> Option<(String, SlackWrite)> {
    let (Some(channel), Some(ts)) = (&inquiry.dm_channel, &inquiry.dm_ts) else {
        return None;
    };
    let offer = context.offer(first_name);
    let mut text = blocks::offer_text(&offer);
    text.push_line(outcome);
    Some((
        format!("offer-final:{}", inquiry.id),
        SlackWrite::update(channel, ts, text, blocks::decided_blocks(&offer, outcome)),
    ))
}

/// Queues [`final_write`].
async fn queue_final<C: ConnectionTrait>(
    conn: &C,
    inquiry: &OfferRef,
    context: &DueRequest,
    first_name: &str,
    outcome: &Mrkdwn,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if let Some(write) = final_write(inquiry, context, first_name, outcome) {
        outbox::enqueue_owned(conn, vec![write], now).await?;
    }
    Ok(())
}

async fn insert_response<C: ConnectionTrait>(
    conn: &C,
    inquiry: &OfferRef,
    available: bool,
    winner: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    staffing_response::Entity::insert(staffing_response::ActiveModel {
        inquiry_id: Set(inquiry.id),
        request_id: Set(inquiry.request_id),
        worker_id: Set(inquiry.worker_id),
        is_available: Set(available),
        is_winner: Set(winner),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Everything a click needs, in one query: the offer, its worker, an earlier answer, the
/// request with what the offer shows, the task's and project's state, whether someone won,
/// and how many of the step's certifications the worker holds at the role the task needs.
#[derive(Debug, FromQueryResult)]
struct Click {
    #[sea_orm(nested)]
    context: DueRequest,
    inquiry_id: i64,
    worker_id: i64,
    dm_channel: Option<String>,
    dm_ts: Option<String>,
    clicker_slack_id: Option<String>,
    clicker_first_name: String,
    clicker_username: String,
    previous_winner: Option<bool>,
    request_status: RequestStatus,
    task_status: TaskStatus,
    project_status: ProjectStatus,
    request_has_winner: bool,
    held_count: i64,
    /// The status of the assignment the request would hand over (a restaff), if there is one.
    counter_status: Option<AssignmentStatus>,
}

impl Click {
    async fn load<C: ConnectionTrait>(conn: &C, inquiry_id: i64) -> Result<Option<Click>, DbErr> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS},
                    i.id AS inquiry_id, i.worker_id, i.dm_channel, i.dm_ts,
                    wk.slack_user_id AS clicker_slack_id, wk.first_name AS clicker_first_name,
                    wk.username AS clicker_username,
                    sr.is_winner AS previous_winner,
                    r.status AS request_status, t.status AS task_status, p.status AS project_status,
                    EXISTS (SELECT 1 FROM staffing_responses x
                            WHERE x.request_id = r.id AND x.is_winner = TRUE) AS request_has_winner,
                    (SELECT COUNT(*) FROM worker_certifications wc
                     JOIN step_certifications hc ON hc.certification_id = wc.certification_id
                                                AND hc.step_id = t.step_id
                     WHERE wc.worker_id = i.worker_id
                       AND wc.role = CASE WHEN t.status = 'pending_review'
                                          THEN 'reviewer' ELSE 'entry_level' END) AS held_count,
                    (SELECT a.status FROM task_assignments a
                     WHERE a.task_id = r.task_id
                       AND a.assignment_counter = r.required_role_counter) AS counter_status
             FROM staffing_inquiries i
             JOIN staffing_requests r ON r.id = i.request_id
             {REQUEST_JOINS}
             JOIN workers wk ON wk.id = i.worker_id
             LEFT JOIN staffing_responses sr ON sr.inquiry_id = i.id
             WHERE i.id = $1{lock}",
            // PostgreSQL: the offer's row is locked until the answer commits, and read as it is
            // now (its DM's `ts` may have been stored a moment ago): the delivery of the same
            // offer waits for the answer or the answer for it, so whichever commits second sees
            // the other and updates the DM (see `on_offer_delivered`). SQLite's writers are
            // serialised anyway.
            lock = if crate::db::is_postgres(conn) {
                " FOR UPDATE OF i"
            } else {
                ""
            }
        );
        Click::find_by_statement(statement(
            conn.get_database_backend(),
            &sql,
            vec![inquiry_id.into()],
        ))
        .one(conn)
        .await
    }

    fn offer(&self) -> OfferRef {
        OfferRef {
            id: self.inquiry_id,
            request_id: self.context.request_id,
            worker_id: self.worker_id,
            dm_channel: self.dm_channel.clone(),
            dm_ts: self.dm_ts.clone(),
        }
    }
}

/// Offers of a request nobody answered yet, with their worker's first name (for the update).
#[derive(Debug, FromQueryResult)]
struct OpenOffer {
    id: i64,
    request_id: i64,
    worker_id: i64,
    dm_channel: Option<String>,
    dm_ts: Option<String>,
    first_name: String,
}

impl OpenOffer {
    fn offer_ref(&self) -> OfferRef {
        OfferRef {
            id: self.id,
            request_id: self.request_id,
            worker_id: self.worker_id,
            dm_channel: self.dm_channel.clone(),
            dm_ts: self.dm_ts.clone(),
        }
    }
}

async fn open_offers<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
) -> Result<Vec<OpenOffer>, DbErr> {
    OpenOffer::find_by_statement(statement(
        conn.get_database_backend(),
        "SELECT i.id, i.request_id, i.worker_id, i.dm_channel, i.dm_ts, w.first_name
         FROM staffing_inquiries i JOIN workers w ON w.id = i.worker_id
         WHERE i.request_id = $1
           AND NOT EXISTS (SELECT 1 FROM staffing_responses sr WHERE sr.inquiry_id = i.id)
         ORDER BY i.id",
        vec![request_id.into()],
    ))
    .all(conn)
    .await
}

/// Handles a click on offer `inquiry_id` by Slack user `clicker`. Runs inside the caller's
/// transaction; a [`crate::error::UserError`] means nothing should be committed.
///
/// A winning accept costs eight statements: the click, the compare-and-set on the request, the
/// task's assignments, the response, the assignment, the task's status, the open offers, and
/// one multi-row insert of every Slack message (the DM updates, the invite, the welcome).
pub async fn respond<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    clicker: &str,
    accept: bool,
    now: DateTime<Utc>,
) -> Result<ClickOutcome> {
    let Some(click) = Click::load(conn, inquiry_id).await? else {
        return Ok(ClickOutcome::NotYours);
    };
    if click.clicker_slack_id.as_deref() != Some(clicker) {
        return Ok(ClickOutcome::NotYours);
    }
    if let Some(was_winner) = click.previous_winner {
        return Ok(if was_winner && !accept {
            ClickOutcome::CannotRejectAfterWin
        } else {
            ClickOutcome::AlreadyDecided
        });
    }
    let context = &click.context;
    // The caller's span (the click) carries the task from here on.
    tracing::Span::current().record("task_id", context.task_id);
    let offer = click.offer();

    if !accept {
        insert_response(conn, &offer, false, false, now).await?;
        let text = Mrkdwn::text(if click.request_has_winner {
            blocks::TAKEN
        } else {
            blocks::THANKS
        });
        queue_final(conn, &offer, context, &click.clicker_first_name, &text, now).await?;
        close_if_everyone_declined(conn, context.request_id, now).await?;
        return Ok(ClickOutcome::Rejected);
    }

    // A restaff hands over work in progress only: once it was submitted there is nothing to
    // take over (the request is closed then too; this also covers a request left open).
    let open = click.request_status != RequestStatus::Closed
        && !click.task_status.is_finished()
        && !click.project_status.is_finished()
        && click
            .counter_status
            .is_none_or(|s| s == AssignmentStatus::Processing);
    // Compare-and-set: of all concurrent accepts, exactly one closes the request.
    let won = open
        && conn
            .execute_raw(statement(
                conn.get_database_backend(),
                "UPDATE staffing_requests SET status = 'closed', closed_at = $1 WHERE id = $2 AND status <> 'closed'",
                vec![now.into(), context.request_id.into()],
            ))
            .await?
            .rows_affected()
            == 1;
    if !won {
        insert_response(conn, &offer, true, false, now).await?;
        queue_final(
            conn,
            &offer,
            context,
            &click.clicker_first_name,
            &Mrkdwn::text(blocks::GONE),
            now,
        )
        .await?;
        return Ok(ClickOutcome::Late);
    }
    let existing = task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(context.task_id))
        .order_by_asc(task_assignment::Column::AssignmentCounter)
        .all(conn)
        .await?;
    insert_response(conn, &offer, true, true, now).await?;
    let mut writes = Vec::new();
    match existing
        .iter()
        .find(|a| a.assignment_counter == context.required_role_counter)
    {
        Some(current) => {
            // A restaff: the assignment changes hands (the previous worker is told).
            let me = worker::Entity::find_by_id(click.worker_id)
                .one(conn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(format!("worker {}", click.worker_id)))?;
            lifecycle::reassign(conn, current, &me, now).await?;
        }
        None => {
            let facts = lifecycle::TaskFacts {
                id: context.task_id,
                status: click.task_status,
                step_id: context.step_id,
                project_id: context.project_id,
            };
            let certified =
                context.required_count == 0 || click.held_count == context.required_count;
            let assignment =
                lifecycle::assign_prepared(conn, facts, &existing, click.worker_id, certified, now)
                    .await?;
            writes.extend(lifecycle::welcome_writes(
                context.slack_channel_id.as_deref(),
                context.project_id,
                assignment.id,
                assignment.handovers,
                click.worker_id,
                &click.clicker_username,
                click.clicker_slack_id.as_deref(),
            ));
        }
    }
    writes.extend(final_write(
        &offer,
        context,
        &click.clicker_first_name,
        &blocks::won_text(context.task_id, context.slack_channel_id.as_deref()),
    ));
    // Every other offer still open says the task was taken.
    let taken = Mrkdwn::text(blocks::TAKEN);
    for other in open_offers(conn, context.request_id).await? {
        if other.id == offer.id {
            continue;
        }
        writes.extend(final_write(
            &other.offer_ref(),
            context,
            &other.first_name,
            &taken,
        ));
    }
    outbox::enqueue_many(conn, &writes, now).await?;
    Ok(ClickOutcome::Won)
}

/// When the pool is exhausted (`done_sending`) and everyone asked has declined: close the request
/// and say so in the project channel, once.
pub async fn close_if_everyone_declined<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let inquired = staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request_id))
        .count(conn)
        .await?;
    let declined = staffing_response::Entity::find()
        .filter(staffing_response::Column::RequestId.eq(request_id))
        .filter(staffing_response::Column::IsAvailable.eq(false))
        .count(conn)
        .await?;
    if inquired == 0 || declined < inquired {
        return Ok(false);
    }
    let closed = conn
        .execute_raw(statement(
            conn.get_database_backend(),
            "UPDATE staffing_requests SET status = 'closed', closed_at = $1 WHERE id = $2 AND status = 'done_sending'",
            vec![now.into(), request_id.into()],
        ))
        .await?
        .rows_affected()
        == 1;
    if closed
        && let Some(context) = request_context(conn, request_id).await?
        && let Some(channel) = &context.slack_channel_id
    {
        outbox::enqueue(
            conn,
            &format!("no-accept:{request_id}"),
            &SlackWrite::post(
                channel,
                crate::mrkdwn!(
                    "No worker has accepted to work on task {}",
                    context.display()
                ),
            ),
            now,
        )
        .await?;
    }
    Ok(closed)
}

/// Updates every offer of `request_id` that is still open in Slack (delivered, unanswered) to
/// `outcome`: the request closed without them. Offers not delivered yet get their outcome when
/// they are ([`on_offer_delivered`]).
pub(crate) async fn finalise_open_offers<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let offers = open_offers(conn, request_id).await?;
    if offers.iter().all(|o| o.dm_ts.is_none()) {
        return Ok(());
    }
    let Some(context) = request_context(conn, request_id).await? else {
        return Ok(());
    };
    let outcome = Mrkdwn::text(outcome);
    let writes: Vec<(String, SlackWrite)> = offers
        .into_iter()
        .filter_map(|o| final_write(&o.offer_ref(), &context, &o.first_name, &outcome))
        .collect();
    outbox::enqueue_owned(conn, writes, now).await
}

/// What an offer's DM must say once it is delivered, from the facts stored about it.
#[derive(Debug, FromQueryResult)]
struct Delivered {
    request_id: i64,
    worker_id: i64,
    first_name: String,
    request_status: RequestStatus,
    is_available: Option<bool>,
    is_winner: Option<bool>,
    request_has_winner: bool,
}

/// After an offer DM was delivered: remember where it is, and if the offer was decided in the
/// meantime (answered, someone won, the task ended), update it now.
///
/// Whichever of this and the decision commits second updates the DM (both may queue it; the
/// outbox's dedupe key keeps one): storing the `ts` locks the offer's row first, so an answer
/// in flight is waited for, and on PostgreSQL the request's row is read with a share lock, so
/// a win or a close in flight is waited for too.
pub async fn on_offer_delivered<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    channel: &str,
    ts: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let stored = conn
        .execute_raw(statement(
            backend,
            "UPDATE staffing_inquiries SET dm_channel = $1, dm_ts = $2 WHERE id = $3",
            vec![channel.into(), ts.into(), inquiry_id.into()],
        ))
        .await?;
    if stored.rows_affected() == 0 {
        return Ok(());
    }
    if crate::db::is_postgres(conn) {
        // Wait for a win or a close of the request in flight (they lock its row), then read
        // in a statement of its own, so the read sees what they committed.
        conn.execute_raw(statement(
            backend,
            "SELECT 1 FROM staffing_requests
             WHERE id = (SELECT request_id FROM staffing_inquiries WHERE id = $1) FOR SHARE",
            vec![inquiry_id.into()],
        ))
        .await?;
    }
    let Some(facts) = Delivered::find_by_statement(statement(
        backend,
        "SELECT i.request_id, i.worker_id, w.first_name, r.status AS request_status,
                    sr.is_available, sr.is_winner,
                    EXISTS (SELECT 1 FROM staffing_responses x
                            WHERE x.request_id = r.id AND x.is_winner = TRUE) AS request_has_winner
             FROM staffing_inquiries i
             JOIN staffing_requests r ON r.id = i.request_id
             JOIN workers w ON w.id = i.worker_id
             LEFT JOIN staffing_responses sr ON sr.inquiry_id = i.id
             WHERE i.id = $1",
        vec![inquiry_id.into()],
    ))
    .one(conn)
    .await?
    else {
        return Ok(());
    };
    let Some(context) = request_context(conn, facts.request_id).await? else {
        return Ok(());
    };
    let outcome = match (facts.is_available, facts.is_winner) {
        (Some(_), Some(true)) => {
            blocks::won_text(context.task_id, context.slack_channel_id.as_deref())
        }
        (Some(false), _) if facts.request_has_winner => Mrkdwn::text(blocks::TAKEN),
        (Some(false), _) => Mrkdwn::text(blocks::THANKS),
        (Some(true), _) => Mrkdwn::text(blocks::GONE),
        (None, _) if facts.request_status != RequestStatus::Closed => return Ok(()),
        (None, _) if facts.request_has_winner => Mrkdwn::text(blocks::TAKEN),
        (None, _) => Mrkdwn::text(blocks::GONE),
    };
    let offer = OfferRef {
        id: inquiry_id,
        request_id: facts.request_id,
        worker_id: facts.worker_id,
        dm_channel: Some(channel.to_string()),
        dm_ts: Some(ts.to_string()),
    };
    queue_final(conn, &offer, &context, &facts.first_name, &outcome, now).await
}

/// The ephemeral answer to a click that changes nothing, if any.
pub fn ephemeral_text(outcome: ClickOutcome) -> Option<&'static str> {
    match outcome {
        ClickOutcome::NotYours => Some(blocks::NOT_YOURS),
        ClickOutcome::CannotRejectAfterWin => Some(blocks::NO_REJECT_AFTER_WIN),
        _ => None,
    }
}

/// Failed deliveries of one worker's offer of one request after which they are not asked
/// again for it.
pub const MAX_OFFER_FAILURES: i64 = 2;

/// Slack refused an offer DM for good (`error`): it was never seen, so it does not count as
/// asked. The inquiry goes, the failure is recorded, the worker goes back into the request's
/// pool (until their offers failed [`MAX_OFFER_FAILURES`] times), a request whose pool seemed
/// exhausted sends again, and the staffing channel is told.
pub async fn on_offer_undeliverable<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    error: &str,
    staffing_channel: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(inquiry) = staffing_inquiry::Entity::find_by_id(inquiry_id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let backend = conn.get_database_backend();
    let removed = conn
        .execute_raw(statement(
            backend,
            "DELETE FROM staffing_inquiries WHERE id = $1
               AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.inquiry_id = $1)",
            vec![inquiry_id.into()],
        ))
        .await?
        .rows_affected();
    if removed == 0 {
        // Answered after all (a reminder's buttons): it was seen.
        return Ok(());
    }
    conn.execute_raw(statement(
        backend,
        "INSERT INTO offer_failures (request_id, worker_id, error, failed_at) VALUES ($1, $2, $3, $4)",
        vec![
            inquiry.request_id.into(),
            inquiry.worker_id.into(),
            error.into(),
            now.into(),
        ],
    ))
    .await?;
    let failures = conn
        .query_one_raw(statement(
            backend,
            "SELECT COUNT(*) AS n FROM offer_failures WHERE request_id = $1 AND worker_id = $2",
            vec![inquiry.request_id.into(), inquiry.worker_id.into()],
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    let again = failures < MAX_OFFER_FAILURES;
    if again {
        conn.execute_raw(statement(
            backend,
            "UPDATE staffing_requests SET status = 'sending' WHERE id = $1 AND status = 'done_sending'",
            vec![inquiry.request_id.into()],
        ))
        .await?;
    } else {
        close_if_everyone_declined(conn, inquiry.request_id, now).await?;
    }
    metrics::counter!("staffbot_offers_undeliverable_total").increment(1);
    let worker = worker::Entity::find_by_id(inquiry.worker_id)
        .one(conn)
        .await?;
    let username = worker.map(|w| w.username).unwrap_or_default();
    tracing::warn!(
        inquiry_id,
        worker = %username,
        "Slack refused an offer for good ({error}); {}",
        if again { "the worker will be asked again" } else { "the worker is not asked again for this task" }
    );
    if let (Some(channel), Some(context)) = (
        staffing_channel,
        request_context(conn, inquiry.request_id).await?,
    ) {
        let text = crate::mrkdwn!(
            "Could not deliver the offer of task {} to {}: Slack answered `{}`. {}",
            context.display(),
            username,
            error,
            if again {
                "They will be asked again."
            } else {
                "They will not be asked again for this task."
            }
        );
        outbox::enqueue(
            conn,
            &format!("undeliverable:{inquiry_id}"),
            &SlackWrite::post(channel, text),
            now,
        )
        .await?;
    }
    Ok(())
}
