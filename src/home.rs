//! What one person's App Home shows, as data (issue 12): their open offers, the tasks they are
//! working on (with what they can do with each), what they finished lately, and for admins
//! what needs staffing and the last week's staffing figures. Loaded when the Home is published
//! (`slack::transport`), rendered by `slack::render`. Ordering and figures are pure functions.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::home::{self as store, AdminTaskRow, RequestStatsRow, TaskRow};
use crate::db::{AssignmentStatus, RequestStatus, TaskStatus, requests, workers};
use crate::messages::{OfferContent, task_display};
use crate::staffing::batch::read_evidence;
use crate::staffing::policy::{AdaptiveSettings, Evidence, Policy, in_flight_p};

/// Rows each list is loaded with at most (the view shows fewer and says how many more).
const LIST_LIMIT: u64 = 50;
/// "Recently finished" shows this many tasks.
pub const FINISHED: u64 = 10;
/// How long the outcome of a click stays on top of the Home.
pub const NOTICE_FOR: chrono::Duration = chrono::Duration::minutes(10);
/// The admins' figures cover this many days.
pub const STATS_DAYS: i64 = 7;

/// Everything one Home view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeData {
    pub now: DateTime<Utc>,
    /// What became of the person's last click on their Home (for [`NOTICE_FOR`]).
    pub notice: Option<String>,
    /// `None`: the Slack user is no staffbot worker.
    pub worker: Option<String>,
    pub offers: Vec<HomeOffer>,
    pub tasks: Vec<HomeTask>,
    pub finished: Vec<HomeTask>,
    /// The worker's availability and working hours (None: not a worker).
    pub availability: Option<HomeAvailability>,
    pub admin: Option<AdminHome>,
}

/// "Your availability": hours per weekday this week and next (Orchestra's availability form),
/// the most hours a day they may be auto-staffed, and their working hours.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeAvailability {
    /// This week's and next week's Monday, and their hours (None: not set).
    pub weeks: Vec<(chrono::NaiveDate, Option<crate::availability::WeekHours>)>,
    pub max_autostaff_hours_per_day: f64,
    /// Their working hours and days (their own or the configured ones), and whether they set
    /// their own.
    pub working_hours: String,
    pub working_days: String,
    pub own_hours: bool,
    /// Their time zone, when known.
    pub tz: Option<String>,
    /// `staffbot.working_hours_enforced`.
    pub enforced: bool,
}

/// An offer waiting for the worker's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeOffer {
    pub inquiry_id: i64,
    pub task_id: i64,
    pub offered_at: DateTime<Utc>,
    pub offer: OfferContent,
}

/// What the worker can do with a task from the Home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAction {
    /// Entry-level work, or work the reviewer returned: **Submit**.
    Submit,
    /// Their review: **Approve** or **Send back**.
    Review,
}

/// A task of the worker's.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeTask {
    pub task_id: i64,
    /// The task as messages name it.
    pub task: String,
    pub step_description: String,
    pub channel: Option<String>,
    pub status: TaskStatus,
    /// Since when it has had that status (in progress) or when the worker's part ended.
    pub since: DateTime<Utc>,
    pub action: Option<TaskAction>,
}

/// The admins' part of the Home.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminHome {
    pub requests: Vec<RequestLine>,
    pub requests_total: usize,
    pub waiting: Vec<TaskLine>,
    pub waiting_total: usize,
    pub in_progress: Vec<TaskLine>,
    pub in_progress_total: usize,
    pub stats: Vec<WorkflowStats>,
}

/// An open staffing request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLine {
    pub task_id: i64,
    pub task: String,
    pub review: bool,
    pub opened_at: DateTime<Utc>,
    pub offers: i64,
    pub declined: i64,
    /// Every certified worker has been asked.
    pub exhausted: bool,
    /// The adaptive policy's expected minutes to staff it, from the offers out and what it
    /// will send (None under the `orchestra` policy).
    pub expected_minutes: Option<u32>,
    /// Everyone left is outside their working hours: the first of them starts at this time,
    /// in this time zone.
    pub waiting_for_hours: Option<(DateTime<Utc>, String)>,
}

/// A task waiting with nobody asked, or one in progress (with its worker).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLine {
    pub task_id: i64,
    pub task: String,
    pub status: TaskStatus,
    pub since: DateTime<Utc>,
    pub worker: Option<String>,
}

/// One workflow's staffing over the last [`STATS_DAYS`] days.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStats {
    pub workflow: String,
    /// Requests opened.
    pub opened: usize,
    /// Of those, won by someone.
    pub staffed: usize,
    /// Time from opening to the winning answer.
    pub median_to_staff: Option<Duration>,
    pub p90_to_staff: Option<Duration>,
    pub offers: i64,
    pub accepted: i64,
}

/// Loads `user`'s Home as it is now.
pub async fn load<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    policy: Policy,
    working: crate::availability::WorkingRule,
    now: DateTime<Utc>,
) -> Result<HomeData, DbErr> {
    let notice = store::notice(conn, user, now - NOTICE_FOR).await?;
    let Some(worker) = workers::by_slack_id(conn, user).await? else {
        return Ok(HomeData {
            now,
            notice,
            worker: None,
            offers: Vec::new(),
            tasks: Vec::new(),
            finished: Vec::new(),
            availability: None,
            admin: None,
        });
    };
    let mut offers = Vec::new();
    for row in store::open_offers(conn, worker.id).await? {
        if let Some(context) = requests::context(conn, row.request_id).await? {
            offers.push(HomeOffer {
                inquiry_id: row.inquiry_id,
                task_id: context.task_id,
                offered_at: row.offered_at,
                offer: context.offer_content(),
            });
        }
    }
    let tasks = store::tasks_in_progress(conn, worker.id)
        .await?
        .into_iter()
        .map(|row| home_task(row, true))
        .collect();
    let finished = store::recently_finished(conn, worker.id, FINISHED)
        .await?
        .into_iter()
        .map(|row| home_task(row, false))
        .collect();
    let this_week = crate::availability::week_of(now.date_naive());
    let weeks = [this_week, this_week + chrono::Duration::days(7)];
    let availability = Some(HomeAvailability {
        weeks: crate::db::availability::of_worker(conn, worker.id, &weeks).await?,
        max_autostaff_hours_per_day: worker.max_autostaff_hours_per_day,
        own_hours: worker.working_hours.is_some() || worker.working_days.is_some(),
        working_hours: worker
            .working_hours
            .clone()
            .unwrap_or_else(|| working.hours.to_string()),
        working_days: worker
            .working_days
            .clone()
            .unwrap_or_else(|| working.days.to_string()),
        tz: worker.tz.clone(),
        enforced: working.enforced,
    });
    let admin = if worker.is_admin {
        Some(load_admin(conn, policy, now).await?)
    } else {
        None
    };
    Ok(HomeData {
        now,
        notice,
        worker: Some(worker.username),
        offers,
        tasks,
        finished,
        availability,
        admin,
    })
}

async fn load_admin<C: ConnectionTrait>(
    conn: &C,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<AdminHome, DbErr> {
    let requests: Vec<_> = store::open_requests(conn, LIST_LIMIT).await?;
    let requests_total = requests.first().map_or(0, |r| r.total as usize);
    let expected = match policy {
        Policy::Adaptive(a) => expected_minutes(conn, &requests, &a, now).await?,
        Policy::Orchestra => HashMap::new(),
    };
    let requests = requests
        .into_iter()
        .map(|r| RequestLine {
            task_id: r.task_id,
            task: task_display(&r.version_slug, &r.project_description, &r.step_slug),
            review: r.required_role_counter > 0,
            opened_at: r.created_at,
            offers: r.offers,
            declined: r.declined,
            exhausted: r.status == RequestStatus::DoneSending,
            expected_minutes: expected.get(&r.request_id).copied(),
            waiting_for_hours: r.waiting_until.filter(|at| *at > now).zip(r.waiting_tz),
        })
        .collect();
    let (waiting, waiting_total) = task_lines(store::waiting_unrequested(conn, LIST_LIMIT).await?);
    let (in_progress, in_progress_total) = task_lines(store::in_progress(conn, LIST_LIMIT).await?);
    let since = now - chrono::Duration::days(STATS_DAYS);
    let stats = workflow_stats(store::requests_since(conn, since).await?);
    Ok(AdminHome {
        requests,
        requests_total,
        waiting,
        waiting_total,
        in_progress,
        in_progress_total,
        stats,
    })
}

fn task_lines(rows: Vec<AdminTaskRow>) -> (Vec<TaskLine>, usize) {
    let total = rows.first().map_or(0, |r| r.total as usize);
    let lines = rows
        .into_iter()
        .map(|r| TaskLine {
            task_id: r.task_id,
            task: task_display(&r.version_slug, &r.project_description, &r.step_slug),
            status: r.task_status,
            since: r.status_changed_at,
            worker: r.worker,
        })
        .collect();
    (lines, total)
}

fn home_task(row: TaskRow, in_progress: bool) -> HomeTask {
    let action = if in_progress {
        task_action(
            row.task_status,
            row.assignment_status,
            row.assignment_counter,
        )
    } else {
        None
    };
    HomeTask {
        task_id: row.task_id,
        task: task_display(&row.version_slug, &row.project_description, &row.step_slug),
        step_description: row.step_description,
        channel: row.slack_channel_id,
        status: row.task_status,
        since: if in_progress {
            row.status_changed_at
        } else {
            row.assignment_updated_at
        },
        action,
    }
}

/// What a worker may do with a task from the Home, given the task's status and their
/// assignment on it (the lifecycle checks again when they click).
pub fn task_action(
    task: TaskStatus,
    assignment: AssignmentStatus,
    counter: i32,
) -> Option<TaskAction> {
    if assignment != AssignmentStatus::Processing {
        return None;
    }
    match task {
        TaskStatus::Processing | TaskStatus::PostReviewProcessing => Some(TaskAction::Submit),
        TaskStatus::Reviewing if counter > 0 => Some(TaskAction::Review),
        _ => None,
    }
}

/// The adaptive policy's expected minutes to staff each of `requests`: the chance that one of
/// the offers out is accepted within the horizon, or the policy's target where it will send
/// more; then rounds of a horizon at that chance.
async fn expected_minutes<C: ConnectionTrait>(
    conn: &C,
    requests: &[store::OpenRequestRow],
    settings: &AdaptiveSettings,
    now: DateTime<Utc>,
) -> Result<HashMap<i64, u32>, DbErr> {
    let ids: Vec<i64> = requests.iter().map(|r| r.request_id).collect();
    let in_flight = crate::db::offers::in_flight(conn, &ids).await?;
    let mut workers: Vec<i64> = in_flight.values().flatten().map(|(w, _)| *w).collect();
    workers.sort_unstable();
    workers.dedup();
    let evidence = read_evidence(conn, &workers, settings.half_life_days, now).await?;
    let horizon = settings.horizon();
    let none = Evidence::default();
    Ok(requests
        .iter()
        .map(|r| {
            let out: Vec<f64> = in_flight
                .get(&r.request_id)
                .into_iter()
                .flatten()
                .map(|(w, at)| in_flight_p(evidence.get(w).unwrap_or(&none), *at, horizon, now))
                .collect();
            let sending = r.status != RequestStatus::DoneSending;
            let chance = 1.0 - out.iter().map(|p| 1.0 - p).product::<f64>();
            let chance = if sending {
                chance.max(settings.target)
            } else {
                chance
            };
            (r.request_id, rounds_to_minutes(chance, horizon))
        })
        .collect())
}

/// Expected minutes until an acceptance, when each horizon brings one with `chance`: about
/// half a horizon for the last, a whole one for each before it; a day at most.
fn rounds_to_minutes(chance: f64, horizon: chrono::Duration) -> u32 {
    let day = 24.0 * 60.0;
    let h = horizon.num_seconds() as f64 / 60.0;
    if chance <= 0.0 {
        return day as u32;
    }
    (h * (1.0 / chance - 0.5)).clamp(1.0, day).round() as u32
}

/// Staffing figures per workflow (by slug) from the requests opened in the period.
pub fn workflow_stats(rows: Vec<RequestStatsRow>) -> Vec<WorkflowStats> {
    let mut out: Vec<WorkflowStats> = Vec::new();
    let mut times: Vec<Vec<Duration>> = Vec::new();
    for row in rows {
        if out.last().is_none_or(|s| s.workflow != row.workflow_slug) {
            out.push(WorkflowStats {
                workflow: row.workflow_slug.clone(),
                opened: 0,
                staffed: 0,
                median_to_staff: None,
                p90_to_staff: None,
                offers: 0,
                accepted: 0,
            });
            times.push(Vec::new());
        }
        let (Some(stats), Some(t)) = (out.last_mut(), times.last_mut()) else {
            continue;
        };
        stats.opened += 1;
        stats.offers += row.offers;
        stats.accepted += row.accepted;
        if let Some(won) = row.won_at {
            stats.staffed += 1;
            t.push((won - row.created_at).to_std().unwrap_or_default());
        }
    }
    for (stats, mut t) in out.iter_mut().zip(times) {
        t.sort();
        stats.median_to_staff = percentile(&t, 50);
        stats.p90_to_staff = percentile(&t, 90);
    }
    out
}

/// The nearest-rank percentile `p` of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// A task status as the Home says it.
pub fn status_text(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::AwaitingProcessing => "waiting for a worker",
        TaskStatus::Processing => "in progress",
        TaskStatus::PendingReview => "waiting for a reviewer",
        TaskStatus::Reviewing => "under review",
        TaskStatus::PostReviewProcessing => "returned by the reviewer",
        TaskStatus::Complete => "complete",
        TaskStatus::Aborted => "aborted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        workflow: &str,
        minutes_to_win: Option<i64>,
        offers: i64,
        accepted: i64,
    ) -> RequestStatsRow {
        let created_at = DateTime::<Utc>::UNIX_EPOCH;
        RequestStatsRow {
            workflow_slug: workflow.into(),
            created_at,
            won_at: minutes_to_win.map(|m| created_at + chrono::Duration::minutes(m)),
            offers,
            accepted,
        }
    }

    #[test]
    fn figures_per_workflow_with_nearest_rank_percentiles() {
        let mut rows: Vec<_> = (1..=10).map(|m| row("a", Some(m), 2, 1)).collect();
        rows.push(row("a", None, 5, 0));
        rows.push(row("b", None, 0, 0));
        let stats = workflow_stats(rows);
        assert_eq!(stats.len(), 2);
        let a = &stats[0];
        assert_eq!(
            (a.opened, a.staffed, a.offers, a.accepted),
            (11, 10, 25, 10)
        );
        assert_eq!(a.median_to_staff, Some(Duration::from_secs(5 * 60)));
        assert_eq!(a.p90_to_staff, Some(Duration::from_secs(9 * 60)));
        let b = &stats[1];
        assert_eq!((b.opened, b.staffed, b.median_to_staff), (1, 0, None));
    }

    #[test]
    fn actions_follow_the_task_and_the_assignment() {
        use AssignmentStatus as A;
        use TaskStatus as T;
        assert_eq!(
            task_action(T::Processing, A::Processing, 0),
            Some(TaskAction::Submit)
        );
        assert_eq!(
            task_action(T::PostReviewProcessing, A::Processing, 0),
            Some(TaskAction::Submit)
        );
        assert_eq!(
            task_action(T::Reviewing, A::Processing, 1),
            Some(TaskAction::Review)
        );
        assert_eq!(task_action(T::Reviewing, A::Submitted, 0), None);
        assert_eq!(task_action(T::PendingReview, A::Submitted, 0), None);
    }
}
