//! Workers and the certifications they hold.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use super::entities::{worker, worker_certification};
use super::{Notify, Role};

/// A worker row to insert.
#[derive(Debug, Clone, Default)]
pub struct NewWorker {
    pub username: String,
    pub first_name: String,
    pub email: String,
    pub slack_user_id: Option<String>,
    pub slack_username: Option<String>,
    pub is_admin: bool,
    /// How they hear about offers, reminders and their tasks (`slack` by default).
    pub notify: Notify,
}

pub async fn by_id<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<worker::Model>, DbErr> {
    worker::Entity::find_by_id(id).one(conn).await
}

pub async fn by_username<C: ConnectionTrait>(
    conn: &C,
    username: &str,
) -> Result<Option<worker::Model>, DbErr> {
    worker::Entity::find()
        .filter(worker::Column::Username.eq(username))
        .one(conn)
        .await
}

/// The worker whose email address is `email` (in any case), if any (the first by id when
/// several share it).
pub async fn by_email<C: ConnectionTrait>(
    conn: &C,
    email: &str,
) -> Result<Option<worker::Model>, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait, Func};
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return Ok(None);
    }
    worker::Entity::find()
        .filter(ExprTrait::eq(
            Expr::expr(Func::lower(Expr::col(worker::Column::Email))),
            email,
        ))
        .order_by_asc(worker::Column::Id)
        .one(conn)
        .await
}

/// The worker with Slack member id `slack_user_id` (`U…`).
pub async fn by_slack_id<C: ConnectionTrait>(
    conn: &C,
    slack_user_id: &str,
) -> Result<Option<worker::Model>, DbErr> {
    worker::Entity::find()
        .filter(worker::Column::SlackUserId.eq(slack_user_id))
        .one(conn)
        .await
}

/// Every worker, by username.
pub async fn all_by_username<C: ConnectionTrait>(conn: &C) -> Result<Vec<worker::Model>, DbErr> {
    worker::Entity::find()
        .order_by_asc(worker::Column::Username)
        .all(conn)
        .await
}

/// The workers with ids in `ids` (any order).
pub async fn by_ids<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<worker::Model>, DbErr> {
    worker::Entity::find()
        .filter(worker::Column::Id.is_in(ids))
        .all(conn)
        .await
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    new: NewWorker,
    now: DateTime<Utc>,
) -> Result<worker::Model, DbErr> {
    worker::ActiveModel {
        username: Set(new.username),
        first_name: Set(new.first_name),
        email: Set(new.email),
        slack_user_id: Set(new.slack_user_id),
        slack_username: Set(new.slack_username),
        is_admin: Set(new.is_admin),
        notify: Set(new.notify),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// The rows (one per role at most) of `worker_id`'s certification `certification_id`.
pub async fn certification_rows<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    certification_id: i64,
) -> Result<Vec<worker_certification::Model>, DbErr> {
    worker_certification::Entity::find()
        .filter(worker_certification::Column::WorkerId.eq(worker_id))
        .filter(worker_certification::Column::CertificationId.eq(certification_id))
        .all(conn)
        .await
}

/// Every worker certification row, in the order they were granted.
pub async fn all_certifications<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<worker_certification::Model>, DbErr> {
    worker_certification::Entity::find()
        .order_by_asc(worker_certification::Column::Id)
        .all(conn)
        .await
}

/// How a certification is held: priority and whether StaffBot offers work for it.
#[derive(Debug, Clone, Copy)]
pub struct Holding {
    pub role: Role,
    pub staffing_priority: i32,
    pub staffbot_enabled: bool,
}

/// Changes the priority and staffbot flag of a held certification.
pub async fn update_certification<C: ConnectionTrait>(
    conn: &C,
    existing: worker_certification::Model,
    how: Holding,
) -> Result<worker_certification::Model, DbErr> {
    let mut am: worker_certification::ActiveModel = existing.into();
    am.staffing_priority = Set(how.staffing_priority);
    am.staffbot_enabled = Set(how.staffbot_enabled);
    am.update(conn).await
}

pub async fn insert_certification<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    certification_id: i64,
    how: Holding,
    now: DateTime<Utc>,
) -> Result<worker_certification::Model, DbErr> {
    worker_certification::ActiveModel {
        worker_id: Set(worker_id),
        certification_id: Set(certification_id),
        role: Set(how.role),
        staffbot_enabled: Set(how.staffbot_enabled),
        staffing_priority: Set(how.staffing_priority),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// How many of `certification_ids` `worker_id` holds at `role` (enabled for StaffBot or not).
pub async fn count_held<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    role: Role,
    certification_ids: &[i64],
) -> Result<u64, DbErr> {
    worker_certification::Entity::find()
        .filter(worker_certification::Column::WorkerId.eq(worker_id))
        .filter(worker_certification::Column::Role.eq(role.as_str()))
        .filter(worker_certification::Column::CertificationId.is_in(certification_ids.to_vec()))
        .count(conn)
        .await
}

/// Ranges `[from, to)` of `size` worker ids that cover every worker (none when there are no
/// workers): for reads done a range at a time on SQLite, whose driver copies every value of
/// the rows a read returns until they are converted.
pub async fn id_ranges<C: ConnectionTrait>(conn: &C, size: i64) -> Result<Vec<(i64, i64)>, DbErr> {
    let last = conn
        .query_one_raw(super::statement(
            conn.get_database_backend(),
            "SELECT MAX(id) AS last FROM workers",
            vec![],
        ))
        .await?
        .map(|row| row.try_get::<Option<i64>>("", "last"))
        .transpose()?
        .flatten();
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let size = size.max(1);
    Ok((0..=last / size)
        .map(|k| (k * size, (k + 1) * size))
        .collect())
}

/// Finds a worker by staffbot username, else by Slack username (the `restaff` argument).
pub async fn by_name<C: ConnectionTrait>(
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

/// What `worker update` changes (None: unchanged; `slack_user_id: Some(None)` removes it).
#[derive(Debug, Clone, Default)]
pub struct WorkerChange {
    pub slack_user_id: Option<Option<String>>,
    pub slack_username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub is_admin: Option<bool>,
    pub notify: Option<Notify>,
    /// Auto-staffing's most hours a day.
    pub max_autostaff_hours_per_day: Option<f64>,
    /// An IANA time zone set by an admin; `Some(None)`: Slack's again.
    pub tz: Option<Option<String>>,
    /// Their own working hours and days; `Some(None)`: the configured ones again.
    pub working_hours: Option<Option<String>>,
    pub working_days: Option<Option<String>>,
}

/// Writes `change` to worker `w` (checked by the caller), with the `email` and `notify` it
/// resolved; returns the worker as stored.
pub async fn update<C: ConnectionTrait>(
    conn: &C,
    w: worker::Model,
    change: WorkerChange,
    email: String,
    notify: Notify,
) -> Result<worker::Model, DbErr> {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let mut am: worker::ActiveModel = w.into();
    if let Some(id) = change.slack_user_id {
        am.slack_user_id = Set(id);
    }
    if let Some(name) = change.slack_username {
        am.slack_username = Set(Some(name));
    }
    if let Some(first) = change.first_name {
        am.first_name = Set(first);
    }
    if let Some(admin) = change.is_admin {
        am.is_admin = Set(admin);
    }
    am.email = Set(email);
    am.notify = Set(notify);
    if let Some(h) = change.max_autostaff_hours_per_day {
        am.max_autostaff_hours_per_day = Set(h);
    }
    if let Some(tz) = change.tz {
        // An admin's time zone stays; cleared, Slack's is fetched again.
        am.tz_set_by_admin = Set(tz.is_some());
        if tz.is_none() {
            am.tz_checked_at = Set(None);
        }
        am.tz = Set(tz);
    }
    if let Some(h) = change.working_hours {
        am.working_hours = Set(h);
    }
    if let Some(d) = change.working_days {
        am.working_days = Set(d);
    }
    am.update(conn).await
}
