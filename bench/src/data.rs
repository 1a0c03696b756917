//! The data shape of issue 6: one workflow with one step requiring one certification; W workers
//! with Slack ids, all certified for it (`staffing_priority = i % 10`); T projects, each with one
//! task and one open staffing request (as `staff` leaves them); a few spare tasks without a
//! request (for the `staff` phase); one admin (not certified) who sends the slash commands.
//!
//! Rows go in with multi-row INSERTs, one transaction per table. [`verify_against_library`]
//! checks that they are the rows staffbot's own functions (`workers::add`, `workers::certify`,
//! `lifecycle::create_project`, `requests::staff_task`) would have written.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use staffbot::db::entities::{
    outbox, project, staffing_request, step, task, worker, worker_certification, workflow_version,
};
use staffbot::db::{ProjectStatus, RequestCause, RequestStatus, Role, TaskStatus};
use staffbot::lifecycle;
use staffbot::messages::{Message, Outgoing};
use staffbot::workers::{self, Certify, NewWorker};
use staffbot::workflow::{definition, load};

pub const CERTIFICATION: &str = "writer";
pub const ADMIN_SLACK_ID: &str = "U0ADMIN";
/// Rows per multi-row INSERT (at most 7 columns: well under SQLite's 32,766 parameters).
const CHUNK: usize = 2000;

/// The time the data was created; phases run later.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .expect("a valid fixed time")
}

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub workers: usize,
    pub requests: usize,
    pub spare_tasks: usize,
}

/// What the phases need to know about the data.
#[derive(Debug, Clone)]
pub struct Built {
    pub spare_task_ids: Vec<i64>,
}

pub fn slack_id(i: usize) -> String {
    format!("U{i:07}")
}

pub fn channel_id(i: usize) -> String {
    format!("G{i:07}")
}

/// Writes the benchmark workflow (`workflow.json` + `v1/version.json`) into `dir`.
pub fn write_workflow(dir: &Path) -> Result<()> {
    let workflow = json!({
        "slug": "bench", "name": "Bench", "description": "Benchmark stories",
        "certifications": [{"slug": CERTIFICATION, "name": "Writer"}]
    });
    let version = json!({
        "slug": "v1", "name": "V1",
        "steps": [{"slug": "write", "name": "Write", "description": "Write the story",
                   "required_certifications": [CERTIFICATION],
                   "review_policy": {"policy": "no_review"}}]
    });
    std::fs::write(dir.join("workflow.json"), workflow.to_string())?;
    std::fs::create_dir_all(dir.join("v1"))?;
    std::fs::write(dir.join("v1/version.json"), version.to_string())?;
    Ok(())
}

async fn load_workflow(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<(workflow_version::Model, step::Model)> {
    let dir = tempfile::tempdir().context("a temporary directory for the workflow")?;
    write_workflow(dir.path())?;
    let def = definition::read(dir.path()).context("reading the benchmark workflow")?;
    load::store(db, &def, false, now)
        .await
        .context("storing the benchmark workflow")?;
    let version = workflow_version::Entity::find()
        .order_by_desc(workflow_version::Column::Id)
        .one(db)
        .await?
        .context("the workflow version just loaded")?;
    let step = step::Entity::find()
        .order_by_asc(step::Column::Id)
        .one(db)
        .await?
        .context("the workflow's step")?;
    Ok((version, step))
}

fn progress(label: &str, started: Instant, quiet: bool) {
    if !quiet {
        eprintln!("    {label} ({:.1} s)", started.elapsed().as_secs_f64());
    }
}

async fn ids<E: EntityTrait>(db: &DatabaseConnection, column: E::Column) -> Result<Vec<i64>>
where
    E::Column: sea_orm::ColumnTrait,
{
    Ok(E::find()
        .select_only()
        .column(column)
        .order_by_asc(column)
        .into_tuple::<i64>()
        .all(db)
        .await?)
}

/// Gives every worker an availability row for the week of `now` (4 hours a day) and a most of 2
/// hours a day auto-staffed, and the step tasks of 3 hours (`staffbot.hours`): the staffing
/// round looks at auto-staffing first for every request, and finds nobody it fits. Three
/// statements.
pub async fn add_availability(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<()> {
    let backend = db.get_database_backend();
    let hours = json!({"path": "staffbot.hours", "kwargs": {"hours": 3.0}});
    db.execute_raw(staffbot::db::statement(
        backend,
        "UPDATE steps SET assignable_hours_function = $1",
        vec![hours.into()],
    ))
    .await?;
    db.execute_raw(staffbot::db::statement(
        backend,
        "UPDATE workers SET max_autostaff_hours_per_day = 2",
        vec![],
    ))
    .await?;
    let week = staffbot::availability::week_of(now.date_naive()).to_string();
    db.execute_raw(staffbot::db::statement(
        backend,
        "INSERT INTO worker_availability (worker_id, week, mon, tue, wed, thu, fri, sat, sun, updated_at)
         SELECT id, $1, 4, 4, 4, 4, 4, 4, 4, $2 FROM workers",
        vec![week.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// Builds the data in an empty, migrated database.
pub async fn build(db: &DatabaseConnection, shape: Shape, quiet: bool) -> Result<Built> {
    let now = t0();
    let started = Instant::now();
    let (version, step) = load_workflow(db, now).await?;
    let cert = workers::find_certification(db, CERTIFICATION, None)
        .await
        .context("the benchmark certification")?;
    let admin = workers::add(
        db,
        NewWorker {
            username: "admin".into(),
            first_name: "Admin".into(),
            slack_user_id: Some(ADMIN_SLACK_ID.into()),
            is_admin: true,
            ..Default::default()
        },
        now,
    )
    .await
    .context("adding the admin")?;

    let tx = db.begin().await?;
    let all: Vec<usize> = (0..shape.workers).collect();
    for chunk in all.chunks(CHUNK) {
        worker::Entity::insert_many(chunk.iter().map(|&i| worker::ActiveModel {
            username: Set(format!("w{i}")),
            first_name: Set(format!("W{i}")),
            email: Set(String::new()),
            slack_user_id: Set(Some(slack_id(i))),
            slack_username: Set(None),
            is_admin: Set(false),
            created_at: Set(now),
            ..Default::default()
        }))
        .exec_without_returning(&tx)
        .await?;
    }
    tx.commit().await?;
    progress(&format!("{} workers", shape.workers), started, quiet);

    let worker_ids: Vec<i64> = ids::<worker::Entity>(db, worker::Column::Id)
        .await?
        .into_iter()
        .filter(|id| *id != admin.id)
        .collect();
    if worker_ids.len() != shape.workers {
        bail!(
            "expected {} workers, found {}",
            shape.workers,
            worker_ids.len()
        );
    }
    let tx = db.begin().await?;
    let indexed: Vec<(usize, i64)> = worker_ids.iter().copied().enumerate().collect();
    for chunk in indexed.chunks(CHUNK) {
        worker_certification::Entity::insert_many(chunk.iter().map(|&(i, id)| {
            worker_certification::ActiveModel {
                worker_id: Set(id),
                certification_id: Set(cert.id),
                role: Set(Role::EntryLevel),
                staffbot_enabled: Set(true),
                staffing_priority: Set((i % 10) as i32),
                created_at: Set(now),
                ..Default::default()
            }
        }))
        .exec_without_returning(&tx)
        .await?;
    }
    tx.commit().await?;
    progress("certifications", started, quiet);

    let projects = shape.requests + shape.spare_tasks;
    let tx = db.begin().await?;
    let all: Vec<usize> = (0..projects).collect();
    for chunk in all.chunks(CHUNK) {
        project::Entity::insert_many(chunk.iter().map(|&i| project::ActiveModel {
            workflow_version_id: Set(version.id),
            short_description: Set(format!("Story {i}")),
            priority: Set(0),
            status: Set(ProjectStatus::Active),
            slack_channel_id: Set(Some(channel_id(i))),
            project_data: Set(json!({})),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }))
        .exec_without_returning(&tx)
        .await?;
    }
    tx.commit().await?;
    let project_ids = ids::<project::Entity>(db, project::Column::Id).await?;
    let tx = db.begin().await?;
    for chunk in project_ids.chunks(CHUNK) {
        task::Entity::insert_many(chunk.iter().map(|&project_id| task::ActiveModel {
            project_id: Set(project_id),
            step_id: Set(step.id),
            status: Set(TaskStatus::AwaitingProcessing),
            created_at: Set(now),
            status_changed_at: Set(now),
            ..Default::default()
        }))
        .exec_without_returning(&tx)
        .await?;
    }
    tx.commit().await?;
    let task_ids = ids::<task::Entity>(db, task::Column::Id).await?;
    progress(&format!("{projects} projects and tasks"), started, quiet);

    let tx = db.begin().await?;
    for chunk in task_ids[..shape.requests].chunks(CHUNK) {
        staffing_request::Entity::insert_many(chunk.iter().map(|&task_id| {
            staffing_request::ActiveModel {
                task_id: Set(task_id),
                required_role_counter: Set(0),
                cause: Set(RequestCause::User),
                status: Set(RequestStatus::Sending),
                created_at: Set(now),
                ..Default::default()
            }
        }))
        .exec_without_returning(&tx)
        .await?;
    }
    tx.commit().await?;
    // `staff` announces each request in its project's channel.
    let requests = staffing_request::Entity::find()
        .order_by_asc(staffing_request::Column::Id)
        .all(db)
        .await?;
    let tx = db.begin().await?;
    for (n, chunk) in requests.chunks(CHUNK).enumerate() {
        let messages: Vec<(String, Outgoing)> = chunk
            .iter()
            .enumerate()
            .map(|(k, r)| {
                (
                    format!("got-it:request:{}", r.id),
                    Outgoing::post(
                        &channel_id(n * CHUNK + k),
                        Message::StaffingStarted {
                            task_id: r.task_id,
                            restaff: false,
                        },
                    ),
                )
            })
            .collect();
        staffbot::outbox::enqueue_all(&tx, messages, now).await?;
    }
    tx.commit().await?;
    progress(
        &format!("{} staffing requests", shape.requests),
        started,
        quiet,
    );
    Ok(Built {
        spare_task_ids: task_ids[shape.requests..].to_vec(),
    })
}

/// The same shape through staffbot's own functions, one row at a time (small sizes only).
async fn build_with_library(db: &DatabaseConnection, shape: Shape) -> Result<()> {
    let now = t0();
    let (version, _) = load_workflow(db, now).await?;
    let cert = workers::find_certification(db, CERTIFICATION, None).await?;
    workers::add(
        db,
        NewWorker {
            username: "admin".into(),
            first_name: "Admin".into(),
            slack_user_id: Some(ADMIN_SLACK_ID.into()),
            is_admin: true,
            ..Default::default()
        },
        now,
    )
    .await?;
    for i in 0..shape.workers {
        let w = workers::add(
            db,
            NewWorker {
                username: format!("w{i}"),
                first_name: format!("W{i}"),
                slack_user_id: Some(slack_id(i)),
                ..Default::default()
            },
            now,
        )
        .await?;
        workers::certify(
            db,
            &w,
            &cert,
            Certify {
                role: Role::EntryLevel,
                staffing_priority: (i % 10) as i32,
                staffbot_enabled: true,
            },
            now,
        )
        .await?;
    }
    for i in 0..shape.requests + shape.spare_tasks {
        lifecycle::create_project(
            db,
            &version,
            &format!("Story {i}"),
            0,
            Some(channel_id(i)),
            &Default::default(),
            now,
        )
        .await?;
    }
    let task_ids = ids::<task::Entity>(db, task::Column::Id).await?;
    for &task_id in task_ids.iter().take(shape.requests) {
        staffbot::requests::staff_task(db, task_id, RequestCause::User, now).await?;
    }
    Ok(())
}

async fn dump(db: &DatabaseConnection) -> Result<Vec<(String, String)>> {
    Ok(vec![
        (
            "workers".into(),
            format!(
                "{:#?}",
                worker::Entity::find()
                    .order_by_asc(worker::Column::Id)
                    .all(db)
                    .await?
            ),
        ),
        (
            "worker_certifications".into(),
            format!(
                "{:#?}",
                worker_certification::Entity::find()
                    .order_by_asc(worker_certification::Column::Id)
                    .all(db)
                    .await?
            ),
        ),
        (
            "projects".into(),
            format!(
                "{:#?}",
                project::Entity::find()
                    .order_by_asc(project::Column::Id)
                    .all(db)
                    .await?
            ),
        ),
        (
            "tasks".into(),
            format!(
                "{:#?}",
                task::Entity::find()
                    .order_by_asc(task::Column::Id)
                    .all(db)
                    .await?
            ),
        ),
        (
            "staffing_requests".into(),
            format!(
                "{:#?}",
                staffing_request::Entity::find()
                    .order_by_asc(staffing_request::Column::Id)
                    .all(db)
                    .await?
            ),
        ),
        (
            "outbox".into(),
            // Not the App Home refreshes the library queues with every change (bookkeeping
            // with random keys, expanded by the sender; nobody has a Home here), and so not
            // the ids either, which they shift.
            format!(
                "{:#?}",
                outbox::Entity::find()
                    .filter(outbox::Column::Method.ne("homes.refresh"))
                    .order_by_asc(outbox::Column::Id)
                    .all(db)
                    .await?
                    .into_iter()
                    .map(|row| outbox::Model { id: 0, ..row })
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "task_assignments".into(),
            db.query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT id FROM task_assignments",
            ))
            .await?
            .len()
            .to_string(),
        ),
    ])
}

/// Builds a small data set both ways (SQLite) and fails if any row differs.
pub async fn verify_against_library() -> Result<()> {
    let shape = Shape {
        workers: 12,
        requests: 3,
        spare_tasks: 2,
    };
    let dir = tempfile::tempdir()?;
    let bulk = staffbot::db::connect_and_migrate(&sqlite_url(&dir.path().join("bulk.db"))).await?;
    let lib = staffbot::db::connect_and_migrate(&sqlite_url(&dir.path().join("lib.db"))).await?;
    build(&bulk, shape, true).await?;
    build_with_library(&lib, shape).await?;
    for ((table, a), (_, b)) in dump(&bulk).await?.into_iter().zip(dump(&lib).await?) {
        if a != b {
            bail!(
                "the bulk builder's {table} differ from what staffbot writes:\nbulk: {a}\nstaffbot: {b}"
            );
        }
    }
    bulk.close().await?;
    lib.close().await?;
    Ok(())
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}
