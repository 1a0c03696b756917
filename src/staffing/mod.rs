//! Staffing requests: opening one (`staff`, `restaff`, the `staffbot_autoassign` policy),
//! closing them, and recording the winner when a task gets its worker.
//!
//! [`batch`] sends offers in batches; [`respond`] handles Accept and Reject.

pub mod batch;
pub mod reminders;
pub mod respond;
pub mod warnings;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};

use crate::db::entities::{
    project, staffing_inquiry, staffing_request, staffing_response, task, task_assignment, worker,
};
use crate::db::{AssignmentStatus, RequestCause, RequestStatus};
use crate::error::{Error, UserError};
use crate::outbox::{self, SlackWrite};
use crate::slack::mrkdwn::Mrkdwn;
use crate::workflow::rules;

/// `Got it! I will start staffing task N!` / `… restaffing …` (behaviour §7.5, §7.6).
pub fn got_it_text(task_id: i64, restaff: bool) -> Mrkdwn {
    if restaff {
        crate::mrkdwn!("Got it! I will start restaffing task {}!", task_id)
    } else {
        crate::mrkdwn!("Got it! I will start staffing task {}!", task_id)
    }
}

/// A loop's writes in one transaction fenced by its lease: `writes` are queued, and `column` of
/// the rows of `table` whose ids are `ids` is set to `now` (what the loop reported, so it is not
/// reported again too soon).
pub(crate) async fn queue_and_stamp<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &crate::loops::LeaseProof,
    writes: Vec<(String, SlackWrite)>,
    table: &str,
    column: &str,
    ids: impl Iterator<Item = i64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    queue_and_stamp_many(db, lease, writes, &[(table, column, ids.collect())], now).await
}

/// [`queue_and_stamp`] with several `(table, column, ids)` stamps in the one transaction.
pub(crate) async fn queue_and_stamp_many<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &crate::loops::LeaseProof,
    writes: Vec<(String, SlackWrite)>,
    stamps: &[(&str, &str, Vec<i64>)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let tx = crate::db::begin_write(db).await?;
    let written = async {
        lease.fence(&tx).await?;
        outbox::enqueue_owned(&tx, writes, now).await?;
        for (table, column, ids) in stamps {
            if ids.is_empty() {
                continue;
            }
            // Integers only: written into the statement, so no list is bound to its parameter
            // limit.
            let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            tx.execute_raw(crate::db::statement(
                tx.get_database_backend(),
                &format!(
                    "UPDATE {table} SET {column} = $1 WHERE id IN ({})",
                    ids.join(", ")
                ),
                vec![now.into()],
            ))
            .await?;
        }
        Ok::<(), DbErr>(())
    }
    .await;
    crate::db::settle(tx, written).await?;
    Ok(())
}

/// Queues a post to the project's channel; a project without a channel is skipped with a
/// warning (design.md §5.1).
pub async fn post_to_project<C: ConnectionTrait>(
    conn: &C,
    project: &project::Model,
    dedupe_key: &str,
    text: Mrkdwn,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    match &project.slack_channel_id {
        Some(channel) => {
            outbox::enqueue(conn, dedupe_key, &SlackWrite::post(channel, text), now).await?;
        }
        None => tracing::warn!(
            project_id = project.id,
            "project has no Slack channel; not posting {dedupe_key}"
        ),
    }
    Ok(())
}

/// Closes every open request of a task; offers of them still open in Slack say
/// `Sorry, this task is no longer available.` Returns how many requests were closed.
pub async fn close_open_requests<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    close_requests(conn, task_id, None, crate::slack::blocks::GONE, now).await
}

/// Closes the task's open requests (only the one for role counter `counter`, if given) and
/// updates their offers still open in Slack to `outcome`. Returns how many were closed.
pub async fn close_requests<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: Option<i32>,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut sql = "UPDATE staffing_requests SET status = 'closed', closed_at = $1
                   WHERE task_id = $2 AND status <> 'closed'"
        .to_string();
    let mut values: Vec<sea_orm::Value> = vec![now.into(), task_id.into()];
    if let Some(counter) = counter {
        sql.push_str(" AND required_role_counter = $3");
        values.push(counter.into());
    }
    sql.push_str(" RETURNING id");
    let closed = conn
        .query_all_raw(crate::db::statement(
            conn.get_database_backend(),
            &sql,
            values,
        ))
        .await?;
    for row in &closed {
        let request_id: i64 = row.try_get("", "id")?;
        respond::finalise_open_offers(conn, request_id, outcome, now).await?;
    }
    Ok(closed.len() as u64)
}

/// Called when an assignment stops being work in progress (its worker submitted it): a
/// request to hand it to somebody else (a restaff) has nothing left to hand over, so it
/// closes and its open offers say so.
pub async fn close_restaff_of<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: i32,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    close_requests(
        conn,
        task_id,
        Some(counter),
        crate::slack::blocks::GONE,
        now,
    )
    .await
}

/// Closes the task's open requests and opens a new one for `counter`.
pub async fn open_request<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: i32,
    cause: RequestCause,
    now: DateTime<Utc>,
) -> Result<staffing_request::Model, DbErr> {
    close_open_requests(conn, task_id, now).await?;
    staffing_request::ActiveModel {
        task_id: Set(task_id),
        required_role_counter: Set(counter),
        cause: Set(cause),
        status: Set(RequestStatus::Sending),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

async fn load_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<(task::Model, project::Model), Error> {
    let task = task::Entity::find_by_id(task_id)
        .one(conn)
        .await?
        .ok_or(UserError::TaskNotFound(task_id))?;
    let project = project::Entity::find_by_id(task.project_id)
        .one(conn)
        .await?
        .ok_or(UserError::ProjectNotFound(task.project_id))?;
    Ok((task, project))
}

/// `staff <task>`: open a request for the task's next role counter and announce it.
#[tracing::instrument(name = "staff", level = "info", skip_all, fields(task_id = task_id))]
pub async fn staff_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    cause: RequestCause,
    now: DateTime<Utc>,
) -> Result<staffing_request::Model, Error> {
    let (task, project) = load_task(conn, task_id).await?;
    crate::workflow::lifecycle::refuse_machine_task(conn, &task).await?;
    let counters: Vec<i32> = task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(task_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| a.assignment_counter)
        .collect();
    let counter = rules::required_role_counter(task.status, &counters)?;
    let request = open_request(conn, task_id, counter, cause, now).await?;
    post_to_project(
        conn,
        &project,
        &format!("got-it:request:{}", request.id),
        got_it_text(task_id, false),
        now,
    )
    .await?;
    tracing::info!(
        request_id = request.id,
        role_counter = counter,
        "staffing request opened"
    );
    Ok(request)
}

/// Finds a worker by staffbot username or Slack username (the `restaff` argument).
pub async fn find_worker_by_name<C: ConnectionTrait>(
    conn: &C,
    name: &str,
) -> Result<Option<worker::Model>, DbErr> {
    if let Some(w) = worker::Entity::find()
        .filter(worker::Column::Username.eq(name))
        .one(conn)
        .await?
    {
        return Ok(Some(w));
    }
    worker::Entity::find()
        .filter(worker::Column::SlackUsername.eq(name))
        .one(conn)
        .await
}

/// `restaff <task> <worker>`: open a request for that worker's assignment counter. The worker
/// keeps the assignment until somebody accepts. `shown_as` is how the caller named the worker
/// (used in the error when they have no assignment on the task).
#[tracing::instrument(name = "restaff", level = "info", skip_all, fields(task_id = task_id, worker_id = worker.id))]
pub async fn restaff_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    worker: &worker::Model,
    shown_as: &str,
    now: DateTime<Utc>,
) -> Result<staffing_request::Model, Error> {
    let (task, project) = load_task(conn, task_id).await?;
    let assignment = task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(task_id))
        .filter(task_assignment::Column::WorkerId.eq(worker.id))
        .one(conn)
        .await?
        .ok_or_else(|| UserError::AssignmentNotFound {
            username: shown_as.to_string(),
            task: task_id.to_string(),
        })?;
    if task.status.is_finished() {
        return Err(UserError::RestaffTaskFinished {
            task: task_id,
            status: task.status.to_string(),
        }
        .into());
    }
    if assignment.status != AssignmentStatus::Processing {
        return Err(UserError::RestaffNotInProgress {
            username: shown_as.to_string(),
            task: task_id,
            status: assignment.status.to_string(),
        }
        .into());
    }
    let request = open_request(
        conn,
        task_id,
        assignment.assignment_counter,
        RequestCause::Restaff,
        now,
    )
    .await?;
    post_to_project(
        conn,
        &project,
        &format!("got-it:request:{}", request.id),
        got_it_text(task_id, true),
        now,
    )
    .await?;
    Ok(request)
}

/// Called when `worker_id` gets counter `counter` of a task by any path (accept, CLI assign,
/// assignment policy): if a request for that counter is open, all the task's requests close,
/// and the worker's response on it, if they were asked, is marked the winner.
pub async fn record_assignment_win<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: i32,
    worker_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let open = staffing_request::Entity::find()
        .filter(staffing_request::Column::TaskId.eq(task_id))
        .filter(staffing_request::Column::RequiredRoleCounter.eq(counter))
        .filter(staffing_request::Column::Status.ne(RequestStatus::Closed.as_str()))
        .one(conn)
        .await?;
    let Some(request) = open else {
        return Ok(());
    };
    close_requests(conn, task_id, None, crate::slack::blocks::TAKEN, now).await?;
    let inquiry = staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request.id))
        .filter(staffing_inquiry::Column::WorkerId.eq(worker_id))
        .one(conn)
        .await?;
    if let Some(inquiry) = inquiry {
        let existing = staffing_response::Entity::find()
            .filter(staffing_response::Column::InquiryId.eq(inquiry.id))
            .one(conn)
            .await?;
        match existing {
            Some(r) => {
                let mut am: staffing_response::ActiveModel = r.into();
                am.is_available = Set(true);
                am.is_winner = Set(true);
                am.update(conn).await?;
            }
            None => {
                staffing_response::ActiveModel {
                    inquiry_id: Set(inquiry.id),
                    request_id: Set(request.id),
                    worker_id: Set(worker_id),
                    is_available: Set(true),
                    is_winner: Set(true),
                    created_at: Set(now),
                    ..Default::default()
                }
                .insert(conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// The reply text for a failed `staff`/`restaff` (behaviour §7.5): lifecycle errors are wrapped
/// as `Task N got an error: "…"`, the rest are shown as they are. `task` is the id as the user
/// typed it (Orchestra echoes the literal digits).
pub fn staff_error_text(task: &str, error: &UserError) -> String {
    match error {
        UserError::StatusIncompatibleWithNewAssignment | UserError::TaskInIncorrectState => {
            format!("Task {task} got an error: \"{error}\"")
        }
        UserError::TaskNotFound(_) => format!("Task {task} does not exist"),
        other => other.to_string(),
    }
}
