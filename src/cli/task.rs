//! `staffbot task list|assign|submit|review|complete`.

use std::collections::HashMap;

use clap::{ArgGroup, Subcommand};
use serde::Serialize;

use super::{App, print_json, print_table};
use crate::db::entities::step;
use crate::db::{AssignmentStatus, TaskStatus, tasks, workers, workflows};
use crate::lifecycle::{self, find_worker};
use crate::workflow::rules::SubmitKind;

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// List tasks
    List {
        #[arg(long, value_name = "ID")]
        project: Option<i64>,
        /// awaiting_processing, processing, pending_review, reviewing, post_review_processing, complete or aborted
        #[arg(long, value_name = "STATUS", value_parser = parse_status)]
        status: Option<TaskStatus>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Assign a task waiting for a worker, or hand a task in progress to another worker
    Assign { task: i64, username: String },
    /// Submit a task as its current worker (to review or to completion, per the review policy)
    Submit {
        task: i64,
        #[arg(long, value_name = "USERNAME")]
        worker: String,
    },
    /// Approve or reject a task as its reviewer
    #[command(group(ArgGroup::new("decision").required(true).args(["approve", "reject"])))]
    Review {
        task: i64,
        #[arg(long, value_name = "USERNAME")]
        worker: String,
        /// Accept the work (it completes, or goes to the next review level)
        #[arg(long)]
        approve: bool,
        /// Send the work back to the previous worker
        #[arg(long)]
        reject: bool,
    },
    /// Complete a machine task waiting for its automation, with its output (default `{}`)
    Complete {
        task: i64,
        /// The task's output: JSON text, or @FILE to read it from a file (@- for stdin)
        #[arg(long, value_name = "JSON|@FILE")]
        output: Option<String>,
    },
}

/// Reads `--output`: JSON text, `@file`, or `@-` (stdin).
fn read_output(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let Some(arg) = arg else {
        return Ok(serde_json::json!({}));
    };
    super::read_json_arg(arg, "--output", "the output")
}

fn parse_status(text: &str) -> Result<TaskStatus, String> {
    TaskStatus::parse(text).ok_or_else(|| {
        let names: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status {text:?}; use one of {}", names.join(", "))
    })
}

#[derive(Debug, Serialize)]
pub struct TaskJson {
    pub id: i64,
    pub project_id: i64,
    pub step: String,
    pub status: TaskStatus,
    pub assignments: Vec<AssignmentJson>,
    /// What the task produced once complete (`null` before).
    pub output: Option<serde_json::Value>,
    /// Machine tasks only (`null` for human ones): their automation's state.
    pub machine: Option<MachineJson>,
}

#[derive(Debug, Serialize)]
pub struct MachineJson {
    /// The step's Orchestra function path (`execution_function.path`).
    pub function: String,
    /// Failed runs so far.
    pub attempts: i32,
    pub last_error: Option<String>,
    /// When the next run is due after a failure (RFC 3339), `null` when not waiting for one.
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize)]
pub struct AssignmentJson {
    pub worker: String,
    pub counter: i32,
    pub status: AssignmentStatus,
}

pub async fn run(app: &App, command: TaskCommand) -> anyhow::Result<()> {
    let now = app.clock.now();
    let notices = app.config.notices();
    match command {
        TaskCommand::List {
            project,
            status,
            json,
        } => {
            let list = list(app, project, status).await?;
            if json {
                return print_json(&list);
            }
            print_tasks(&list);
        }
        TaskCommand::Assign { task, username } => {
            let tx = crate::db::begin_write(&app.db).await?;
            let w = find_worker(&tx, &username).await?;
            let (assignment, reassigned) =
                lifecycle::assign_or_reassign(&tx, task, &w, &notices, now).await?;
            tx.commit().await?;
            if reassigned {
                outln!(
                    "task {task}: assignment {} handed to {username}",
                    assignment.assignment_counter
                );
            } else {
                outln!(
                    "task {task}: assigned to {username} (assignment {})",
                    assignment.assignment_counter
                );
            }
        }
        TaskCommand::Submit { task, worker } => {
            let mut rng = app.rng();
            let tx = crate::db::begin_write(&app.db).await?;
            let w = find_worker(&tx, &worker).await?;
            let kind = SubmitKind::RequestedReview;
            let status = lifecycle::submit(&tx, task, &w, kind, &notices, now, &mut rng).await?;
            tx.commit().await?;
            outln!("task {task}: {status}");
        }
        TaskCommand::Review {
            task,
            worker,
            approve,
            reject: _,
        } => {
            let mut rng = app.rng();
            let tx = crate::db::begin_write(&app.db).await?;
            let w = find_worker(&tx, &worker).await?;
            let status = lifecycle::review(&tx, task, &w, approve, &notices, now, &mut rng).await?;
            tx.commit().await?;
            outln!("task {task}: {status}");
        }
        TaskCommand::Complete { task, output } => {
            let output = read_output(output.as_deref())?;
            let tx = crate::db::begin_write(&app.db).await?;
            let done = lifecycle::complete_machine_task(&tx, task, output, &notices, now).await;
            crate::db::settle(tx, done).await?;
            outln!("task {task}: complete");
        }
    }
    Ok(())
}

/// `task list` as a table.
fn print_tasks(list: &[TaskJson]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.project_id.to_string(),
                t.step.clone(),
                t.status.to_string(),
                t.assignments
                    .iter()
                    .map(|a| format!("{}#{}:{}", a.worker, a.counter, a.status))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    print_table(&["ID", "PROJECT", "STEP", "STATUS", "ASSIGNMENTS"], &rows);
}

pub async fn list(
    app: &App,
    project: Option<i64>,
    status: Option<TaskStatus>,
) -> anyhow::Result<Vec<TaskJson>> {
    let tasks = tasks::list(&app.db, project, status).await?;
    let task_ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
    let steps: HashMap<i64, step::Model> =
        workflows::steps_by_ids(&app.db, tasks.iter().map(|t| t.step_id))
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
    let assignments = tasks::assignments_of_tasks(&app.db, task_ids).await?;
    let workers: HashMap<i64, String> =
        workers::by_ids(&app.db, assignments.iter().map(|a| a.worker_id))
            .await?
            .into_iter()
            .map(|w| (w.id, w.username))
            .collect();
    let mut by_task: HashMap<i64, Vec<AssignmentJson>> = HashMap::new();
    for a in assignments {
        by_task.entry(a.task_id).or_default().push(AssignmentJson {
            worker: workers.get(&a.worker_id).cloned().unwrap_or_default(),
            counter: a.assignment_counter,
            status: a.status,
        });
    }
    Ok(tasks
        .into_iter()
        .map(|t| {
            let step = steps.get(&t.step_id);
            let machine = step.filter(|s| !s.is_human).map(|s| MachineJson {
                function: s
                    .execution_function
                    .as_ref()
                    .and_then(|f| f.get("path"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                attempts: t.machine_attempts,
                last_error: t
                    .machine_last_error
                    .as_deref()
                    .map(crate::secrets::sanitize),
                next_attempt_at: t.machine_next_attempt_at,
            });
            TaskJson {
                id: t.id,
                project_id: t.project_id,
                step: step.map(|s| s.slug.clone()).unwrap_or_default(),
                status: t.status,
                assignments: by_task.remove(&t.id).unwrap_or_default(),
                output: t.output,
                machine,
            }
        })
        .collect())
}
