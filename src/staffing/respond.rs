//! Answers to offers (behaviour §6.6–6.7, design.md §5.3 and §8): Accept and Reject clicks, one
//! winner per request guaranteed by the database, the offer DMs updated in place, and "No worker
//! has accepted" once everyone reachable declined.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter,
};

use super::batch::{DueRequest, request_context};
use crate::db::entities::{
    project, staffing_inquiry, staffing_request, staffing_response, task, task_assignment, worker,
};
use crate::db::{RequestStatus, statement};
use crate::error::Result;
use crate::outbox::{self, SlackWrite};
use crate::slack::blocks;
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

/// Queues the final state of an offer DM (once per inquiry: the first outcome wins). Offers not
/// delivered yet get theirs when they are (see [`on_offer_delivered`]).
async fn queue_final<C: ConnectionTrait>(
    conn: &C,
    inquiry: &staffing_inquiry::Model,
    context: &DueRequest,
    first_name: &str,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (Some(channel), Some(ts)) = (&inquiry.dm_channel, &inquiry.dm_ts) else {
        return Ok(());
    };
    let offer = context.offer(first_name);
    outbox::enqueue(
        conn,
        &format!("offer-final:{}", inquiry.id),
        &SlackWrite::Update {
            channel: channel.clone(),
            ts: ts.clone(),
            text: format!("{}\n{outcome}", blocks::offer_text(&offer)),
            blocks: Some(blocks::decided_blocks(&offer, outcome)),
        },
        now,
    )
    .await?;
    Ok(())
}

async fn insert_response<C: ConnectionTrait>(
    conn: &C,
    inquiry: &staffing_inquiry::Model,
    available: bool,
    winner: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    staffing_response::ActiveModel {
        inquiry_id: Set(inquiry.id),
        request_id: Set(inquiry.request_id),
        worker_id: Set(inquiry.worker_id),
        is_available: Set(available),
        is_winner: Set(winner),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

async fn has_winner<C: ConnectionTrait>(conn: &C, request_id: i64) -> Result<bool, DbErr> {
    Ok(staffing_response::Entity::find()
        .filter(staffing_response::Column::RequestId.eq(request_id))
        .filter(staffing_response::Column::IsWinner.eq(true))
        .count(conn)
        .await?
        > 0)
}

/// Handles a click on offer `inquiry_id` by Slack user `clicker`. Runs inside the caller's
/// transaction; a [`crate::error::UserError`] means nothing should be committed.
pub async fn respond<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    clicker: &str,
    accept: bool,
    now: DateTime<Utc>,
) -> Result<ClickOutcome> {
    let Some(inquiry) = staffing_inquiry::Entity::find_by_id(inquiry_id)
        .one(conn)
        .await?
    else {
        return Ok(ClickOutcome::NotYours);
    };
    let Some(me) = worker::Entity::find_by_id(inquiry.worker_id)
        .one(conn)
        .await?
    else {
        return Ok(ClickOutcome::NotYours);
    };
    if me.slack_user_id.as_deref() != Some(clicker) {
        return Ok(ClickOutcome::NotYours);
    }
    if let Some(previous) = staffing_response::Entity::find()
        .filter(staffing_response::Column::InquiryId.eq(inquiry.id))
        .one(conn)
        .await?
    {
        return Ok(if previous.is_winner && !accept {
            ClickOutcome::CannotRejectAfterWin
        } else {
            ClickOutcome::AlreadyDecided
        });
    }
    let context = request_context(conn, inquiry.request_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("request {}", inquiry.request_id)))?;
    // The caller's span (the click) carries the task from here on.
    tracing::Span::current().record("task_id", context.task_id);

    if !accept {
        insert_response(conn, &inquiry, false, false, now).await?;
        let text = if has_winner(conn, inquiry.request_id).await? {
            blocks::TAKEN
        } else {
            blocks::THANKS
        };
        queue_final(conn, &inquiry, &context, &me.first_name, text, now).await?;
        close_if_everyone_declined(conn, inquiry.request_id, now).await?;
        return Ok(ClickOutcome::Rejected);
    }

    let request = staffing_request::Entity::find_by_id(inquiry.request_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("request {}", inquiry.request_id)))?;
    let task = task::Entity::find_by_id(request.task_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("task {}", request.task_id)))?;
    let project = project::Entity::find_by_id(task.project_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("project {}", task.project_id)))?;
    let open = request.status != RequestStatus::Closed
        && !task.status.is_finished()
        && !project.status.is_finished();
    // Compare-and-set: of all concurrent accepts, exactly one closes the request.
    let won = open
        && conn
            .execute_raw(statement(
                conn.get_database_backend(),
                "UPDATE staffing_requests SET status = 'closed', closed_at = $1 WHERE id = $2 AND status <> 'closed'",
                vec![now.into(), request.id.into()],
            ))
            .await?
            .rows_affected()
            == 1;
    if !won {
        insert_response(conn, &inquiry, true, false, now).await?;
        queue_final(conn, &inquiry, &context, &me.first_name, blocks::GONE, now).await?;
        return Ok(ClickOutcome::Late);
    }
    insert_response(conn, &inquiry, true, true, now).await?;
    let current = task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(task.id))
        .filter(task_assignment::Column::AssignmentCounter.eq(request.required_role_counter))
        .one(conn)
        .await?;
    match current {
        Some(assignment) => {
            lifecycle::reassign(conn, &assignment, &me, now).await?;
        }
        None => {
            lifecycle::assign_task(conn, task.id, &me, now).await?;
        }
    }
    queue_final(
        conn,
        &inquiry,
        &context,
        &me.first_name,
        &blocks::won_text(task.id, project.slack_channel_id.as_deref()),
        now,
    )
    .await?;
    // Every other offer still open says the task was taken.
    let others = staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request.id))
        .filter(staffing_inquiry::Column::Id.ne(inquiry.id))
        .all(conn)
        .await?;
    let answered: Vec<i64> = staffing_response::Entity::find()
        .filter(staffing_response::Column::RequestId.eq(request.id))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.inquiry_id)
        .collect();
    let names: std::collections::HashMap<i64, String> = worker::Entity::find()
        .filter(worker::Column::Id.is_in(others.iter().map(|i| i.worker_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|w| (w.id, w.first_name))
        .collect();
    for other in others.iter().filter(|i| !answered.contains(&i.id)) {
        let name = names
            .get(&other.worker_id)
            .map(String::as_str)
            .unwrap_or("");
        queue_final(conn, other, &context, name, blocks::TAKEN, now).await?;
    }
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
                format!(
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

/// After an offer DM was delivered: remember where it is, and if the offer was decided in the
/// meantime (someone won, the task ended), update it now.
pub async fn on_offer_delivered<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    channel: &str,
    ts: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(inquiry) = staffing_inquiry::Entity::find_by_id(inquiry_id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let mut am: staffing_inquiry::ActiveModel = inquiry.into();
    am.dm_channel = Set(Some(channel.to_string()));
    am.dm_ts = Set(Some(ts.to_string()));
    let inquiry = am.update(conn).await?;
    let answered = staffing_response::Entity::find()
        .filter(staffing_response::Column::InquiryId.eq(inquiry.id))
        .count(conn)
        .await?
        > 0;
    if answered {
        return Ok(());
    }
    let Some(context) = request_context(conn, inquiry.request_id).await? else {
        return Ok(());
    };
    let request = staffing_request::Entity::find_by_id(inquiry.request_id)
        .one(conn)
        .await?;
    if request.is_some_and(|r| r.status == RequestStatus::Closed) {
        let outcome = if has_winner(conn, inquiry.request_id).await? {
            blocks::TAKEN
        } else {
            blocks::GONE
        };
        let name = worker::Entity::find_by_id(inquiry.worker_id)
            .one(conn)
            .await?
            .map(|w| w.first_name)
            .unwrap_or_default();
        queue_final(conn, &inquiry, &context, &name, outcome, now).await?;
    }
    Ok(())
}

/// The ephemeral answer to a click that changes nothing, if any.
pub fn ephemeral_text(outcome: ClickOutcome) -> Option<&'static str> {
    match outcome {
        ClickOutcome::NotYours => Some(blocks::NOT_YOURS),
        ClickOutcome::CannotRejectAfterWin => Some(blocks::NO_REJECT_AFTER_WIN),
        _ => None,
    }
}
