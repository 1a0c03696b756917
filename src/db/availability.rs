//! Workers' availability per week, the tasks they won lately with their hours (auto-staffing),
//! and their time zones and working hours.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder,
};

use super::entities::{worker, worker_availability};
use super::statement;
use crate::availability::WeekHours;

fn hours_of(row: &worker_availability::Model) -> WeekHours {
    WeekHours([
        row.mon, row.tue, row.wed, row.thu, row.fri, row.sat, row.sun,
    ])
}

/// The availability rows of week `week` (its Monday), per worker: one read for every worker.
pub async fn of_week<C: ConnectionTrait>(
    conn: &C,
    week: NaiveDate,
) -> Result<HashMap<i64, WeekHours>, DbErr> {
    Ok(worker_availability::Entity::find()
        .filter(worker_availability::Column::Week.eq(week.to_string()))
        .all(conn)
        .await?
        .iter()
        .map(|row| (row.worker_id, hours_of(row)))
        .collect())
}

/// Today's hours of week `week` (its Monday) for the workers who may be auto-staffed at all
/// (`max_autostaff_hours_per_day` above 0) and have hours today: worker id → hours. One read
/// of two columns a row on PostgreSQL; on SQLite, whose driver keeps a copy of every value of
/// the rows read until they are converted, one read per range of 25,000 worker ids.
pub async fn hours_on<C: ConnectionTrait>(
    conn: &C,
    week: NaiveDate,
    day: chrono::Weekday,
) -> Result<HashMap<i64, f64>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        worker_id: i64,
        hours: f64,
    }
    // A column name from a fixed list, never from input.
    let column = crate::availability::day_name(day);
    let select = format!(
        "SELECT a.worker_id, a.{column} AS hours
         FROM worker_availability a JOIN workers w ON w.id = a.worker_id
         WHERE a.week = $1 AND a.{column} > 0 AND w.max_autostaff_hours_per_day > 0"
    );
    let backend = conn.get_database_backend();
    let mut out = HashMap::new();
    if super::is_postgres(conn) {
        let rows =
            Row::find_by_statement(statement(backend, &select, vec![week.to_string().into()]))
                .all(conn)
                .await?;
        out.extend(rows.into_iter().map(|r| (r.worker_id, r.hours)));
        return Ok(out);
    }
    const RANGE: i64 = 25_000;
    let ranged = format!("{select} AND a.worker_id >= $2 AND a.worker_id < $3");
    for (from, to) in super::workers::id_ranges(conn, RANGE).await? {
        let values = vec![week.to_string().into(), from.into(), to.into()];
        let rows = Row::find_by_statement(statement(backend, &ranged, values))
            .all(conn)
            .await?;
        out.extend(rows.into_iter().map(|r| (r.worker_id, r.hours)));
    }
    Ok(out)
}

/// `worker_id`'s availability for each of `weeks` (`None`: no row).
pub async fn of_worker<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    weeks: &[NaiveDate],
) -> Result<Vec<(NaiveDate, Option<WeekHours>)>, DbErr> {
    let rows = worker_availability::Entity::find()
        .filter(worker_availability::Column::WorkerId.eq(worker_id))
        .filter(worker_availability::Column::Week.is_in(weeks.iter().map(|w| w.to_string())))
        .order_by_asc(worker_availability::Column::Week)
        .all(conn)
        .await?;
    Ok(weeks
        .iter()
        .map(|w| {
            let row = rows.iter().find(|r| r.week == w.to_string());
            (*w, row.map(hours_of))
        })
        .collect())
}

/// Sets `worker_id`'s availability for week `week` (its Monday).
pub async fn set<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    week: NaiveDate,
    hours: WeekHours,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let existing = worker_availability::Entity::find()
        .filter(worker_availability::Column::WorkerId.eq(worker_id))
        .filter(worker_availability::Column::Week.eq(week.to_string()))
        .one(conn)
        .await?;
    let [mon, tue, wed, thu, fri, sat, sun] = hours.0;
    let mut am: worker_availability::ActiveModel = match existing {
        Some(row) => row.into(),
        None => worker_availability::ActiveModel {
            worker_id: Set(worker_id),
            week: Set(week.to_string()),
            ..Default::default()
        },
    };
    am.mon = Set(mon);
    am.tue = Set(tue);
    am.wed = Set(wed);
    am.thu = Set(thu);
    am.fri = Set(fri);
    am.sat = Set(sat);
    am.sun = Set(sun);
    am.updated_at = Set(now);
    am.save(conn).await?;
    Ok(())
}

/// Per worker, the hours of each distinct task they won since `since` whose hours are known
/// (behaviour §6.5's "L": accepted offers and auto-staffing alike). One read.
pub async fn won_since<C: ConnectionTrait>(
    conn: &C,
    since: DateTime<Utc>,
) -> Result<HashMap<i64, Vec<f64>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        worker_id: i64,
        hours: f64,
    }
    let rows = Row::find_by_statement(statement(
        conn.get_database_backend(),
        "SELECT s.worker_id, r.task_id, MAX(r.task_hours) AS hours
         FROM staffing_responses s JOIN staffing_requests r ON r.id = s.request_id
         WHERE s.is_winner = TRUE AND s.created_at >= $1 AND r.task_hours >= 0
         GROUP BY s.worker_id, r.task_id",
        vec![since.into()],
    ))
    .all(conn)
    .await?;
    let mut out: HashMap<i64, Vec<f64>> = HashMap::new();
    for row in rows {
        out.entry(row.worker_id).or_default().push(row.hours);
    }
    Ok(out)
}

/// Workers with a Slack id whose time zone Slack has not told (or not since `stale_before`),
/// and that no admin set: at most `limit`, never asked first.
pub async fn time_zones_due<C: ConnectionTrait>(
    conn: &C,
    stale_before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(i64, String)>, DbErr> {
    use sea_orm::{Condition, QuerySelect};
    Ok(worker::Entity::find()
        .filter(worker::Column::SlackUserId.is_not_null())
        .filter(worker::Column::TzSetByAdmin.eq(false))
        .filter(
            Condition::any()
                .add(worker::Column::TzCheckedAt.is_null())
                .add(worker::Column::TzCheckedAt.lt(stale_before)),
        )
        .order_by_asc(worker::Column::TzCheckedAt)
        .order_by_asc(worker::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|w| Some((w.id, w.slack_user_id?)))
        .collect())
}

/// Marks `worker_ids` as asked about at `now` (the answer, if any, comes later).
pub async fn mark_time_zones_asked<C: ConnectionTrait>(
    conn: &C,
    worker_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if worker_ids.is_empty() {
        return Ok(());
    }
    worker::Entity::update_many()
        .col_expr(
            worker::Column::TzCheckedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(worker::Column::Id.is_in(worker_ids.to_vec()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Stores the time zone Slack gave for the worker with Slack id `slack_user_id` (unless an
/// admin set one).
pub async fn store_slack_time_zone<C: ConnectionTrait>(
    conn: &C,
    slack_user_id: &str,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    worker::Entity::update_many()
        .col_expr(
            worker::Column::Tz,
            sea_orm::sea_query::Expr::value(tz.to_string()),
        )
        .col_expr(
            worker::Column::TzCheckedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(worker::Column::SlackUserId.eq(slack_user_id))
        .filter(worker::Column::TzSetByAdmin.eq(false))
        .exec(conn)
        .await?;
    Ok(())
}
