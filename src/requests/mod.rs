//! Staffing requests: opening one (`staff`, `restaff`, the `staffbot_autoassign` policy),
//! closing them (their open offers then say so), and recording the winner when a task gets its
//! worker by any path. Below the task lifecycle, which opens and closes requests as tasks move;
//! sending offers and answering them is [`crate::staffing`]'s.

pub mod context;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::entities::{project, staffing_request, task, worker};
use crate::db::{self, AssignmentStatus, RequestCause};
use crate::error::{Error, StoredDataInvalid, UserError};
use crate::messages::{Message, OfferContent, OfferOutcome, Outgoing};
use crate::outbox;
use crate::workflow::rules;

/// Where an offer's DM is, if it was delivered.
#[derive(Debug, Clone)]
pub struct OfferDm {
    pub id: i64,
    pub channel: Option<String>,
    pub ts: Option<String>,
}

/// The final state of an offer DM (once per offer: the first outcome wins, by the outbox's
/// dedupe key). Offers not delivered yet get theirs when they are (see
/// [`crate::staffing::respond::on_offer_delivered`]). `offer` is what the request's offers show
/// ([`crate::db::requests::RequestContext::offer_content`], rendered once for all of a request's offers).
pub fn final_message(
    dm: &OfferDm,
    offer: &OfferContent,
    first_name: &str,
    outcome: OfferOutcome,
) -> Option<(String, Outgoing)> {
    let (Some(channel), Some(ts)) = (&dm.channel, &dm.ts) else {
        return None;
    };
    Some((
        format!("offer-final:{}", dm.id),
        Outgoing::Update {
            channel: channel.clone(),
            ts: ts.clone(),
            message: Message::OfferDecided {
                first_name: first_name.to_string(),
                offer: offer.clone(),
                outcome,
            },
        },
    ))
}

/// Queues a message to the project's channel; a project without a channel is skipped with a
/// warning (design.md §5.1).
pub async fn post_to_project<C: ConnectionTrait>(
    conn: &C,
    project: &project::Model,
    dedupe_key: &str,
    message: Message,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    match &project.slack_channel_id {
        Some(channel) => {
            outbox::enqueue(conn, dedupe_key, Outgoing::post(channel, message), now).await?;
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
    close_requests(conn, task_id, None, OfferOutcome::Gone, now).await
}

/// Closes the task's open requests (only the one for role counter `counter`, if given) and
/// updates their offers still open in Slack to `outcome`. Returns how many were closed.
pub async fn close_requests<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: Option<i32>,
    outcome: OfferOutcome,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let closed = db::requests::close_open_of_task(conn, task_id, counter, now).await?;
    for &request_id in &closed {
        finalise_open_offers(conn, request_id, outcome.clone(), now).await?;
    }
    if !closed.is_empty() {
        outbox::refresh_homes(conn, &[task_id], now).await?;
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
    close_requests(conn, task_id, Some(counter), OfferOutcome::Gone, now).await
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
    let request = db::requests::insert(conn, task_id, counter, cause, now).await?;
    outbox::refresh_homes(conn, &[task_id], now).await?;
    Ok(request)
}

async fn load_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<(task::Model, project::Model), Error> {
    let task = db::tasks::by_id(conn, task_id)
        .await?
        .ok_or(UserError::TaskNotFound(task_id))?;
    let project = db::projects::by_id(conn, task.project_id)
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
    refuse_machine_task(conn, &task).await?;
    let counters: Vec<i32> = db::tasks::assignments_of(conn, task_id)
        .await?
        .into_iter()
        .map(|a| a.assignment_counter)
        .collect();
    let counter = rules::required_role_counter(task.status, &counters)?;
    let request = open_request(conn, task_id, counter, cause, now).await?;
    announce(conn, &project, &request, false, now).await?;
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
    db::workers::by_name(conn, name).await
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
    let assignment = db::tasks::assignments_of(conn, task_id)
        .await?
        .into_iter()
        .find(|a| a.worker_id == worker.id)
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
    announce(conn, &project, &request, true, now).await?;
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
    let Some(request) = db::requests::open_for_counter(conn, task_id, counter).await? else {
        return Ok(());
    };
    close_requests(conn, task_id, None, OfferOutcome::Taken, now).await?;
    if let Some(inquiry) = db::offers::of_worker(conn, request.id, worker_id).await? {
        db::offers::record_winner(conn, (&inquiry).into(), now).await?;
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
/// Updates every offer of `request_id` that is still open in Slack (delivered, unanswered) to
/// `outcome`: the request closed without them. Offers not delivered yet get their outcome when
/// they are ([`crate::staffing::respond::on_offer_delivered`]).
pub async fn finalise_open_offers<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    outcome: OfferOutcome,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let offers = db::offers::open(conn, request_id).await?;
    if offers.iter().all(|o| o.dm_ts.is_none()) {
        return Ok(());
    }
    let Some(context) = db::requests::context(conn, request_id).await? else {
        return Ok(());
    };
    let offer = context.offer_content();
    let messages: Vec<(String, Outgoing)> = offers
        .into_iter()
        .filter_map(|o| {
            let dm = OfferDm {
                id: o.id,
                channel: o.dm_channel,
                ts: o.dm_ts,
            };
            final_message(&dm, &offer, &o.first_name, outcome.clone())
        })
        .collect();
    outbox::enqueue_all(conn, messages, now).await
}

/// `Got it! I will start (re)staffing task N!` in the project's channel, once per request.
async fn announce<C: ConnectionTrait>(
    conn: &C,
    project: &project::Model,
    request: &staffing_request::Model,
    restaff: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let message = Message::StaffingStarted {
        task_id: request.task_id,
        restaff,
    };
    let key = format!("got-it:request:{}", request.id);
    post_to_project(conn, project, &key, message, now).await
}

/// A machine step's task is never staffed, assigned or submitted by a person (design.md:
/// machine steps): [`UserError::MachineTask`] for one.
pub async fn refuse_machine_task<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
) -> Result<(), Error> {
    let step = db::workflows::step_by_id(conn, task.step_id)
        .await?
        .ok_or_else(|| StoredDataInvalid {
            what: format!("step {}", task.step_id),
            detail: "a task refers to it, but it does not exist".into(),
        })?;
    if step.is_human {
        Ok(())
    } else {
        Err(UserError::MachineTask {
            task: task.id,
            step: step.slug,
        }
        .into())
    }
}
