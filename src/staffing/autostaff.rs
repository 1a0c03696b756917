//! Auto-staffing by availability (Orchestra's, behaviour §6.5): before a request's offers, the
//! staffing round assigns its task outright to the first worker, in priority order and at
//! random among equals, who set their availability for this week and whom the task fits today
//! (tasks won today + 1 ≤ `staffbot.max_autostaff_tasks_per_day`; hours of those tasks + the
//! task's hours ≤ min(today's available hours, their `max_autostaff_hours_per_day`)). Only
//! steps whose `assignable_hours_function` gives hours take part.
//!
//! Deciding is pure ([`Availability::pick`]); reading what it needs is two statements per
//! round (this week's availability rows, the tasks won today), whatever the number of workers.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc, Weekday};
use rand::Rng;
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;

use super::pool::Pool;
use crate::availability::{allowed_hours, fits, week_of};
use crate::db;
use crate::db::Role;
use crate::db::requests::{Candidate, RequestContext};

/// Which pool a request draws from: (step, role, working hours apply).
pub type PoolKey = (i64, Role, bool);

/// What the round knows about availability, read once.
#[derive(Debug, Default)]
pub struct Availability {
    /// Today's hours of this week's availability rows, per worker who may be auto-staffed.
    today_hours: HashMap<i64, f64>,
    /// The hours of the tasks each worker won today (those with known hours).
    won_today: HashMap<i64, Vec<f64>>,
    today: Option<Weekday>,
    max_tasks_per_day: u32,
    /// Per pool, per tier, the places (in the pool) of its candidates with hours to give today
    /// (worked out at the pool's first request): usually a few of a large pool.
    available: HashMap<PoolKey, Vec<Vec<usize>>>,
    /// (pool, task hours) that fitted nobody this round (until someone is auto-staffed from
    /// that pool): the next request of the same step does not look again.
    no_fit: HashSet<(PoolKey, u64)>,
}

impl Availability {
    /// Reads this week's availability rows and today's wins (UTC day, as Orchestra's), unless
    /// no request of the round has task hours (then nothing is read and nobody is picked).
    pub async fn read<C: ConnectionTrait>(
        conn: &C,
        any_hours: bool,
        max_tasks_per_day: u32,
        now: DateTime<Utc>,
    ) -> Result<Availability, DbErr> {
        if !any_hours || max_tasks_per_day == 0 {
            return Ok(Availability::default());
        }
        let today = now.date_naive();
        let midnight = today.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        Ok(Availability {
            today_hours: db::availability::hours_on(conn, week_of(today), today.weekday()).await?,
            won_today: db::availability::won_since(conn, midnight).await?,
            today: Some(today.weekday()),
            max_tasks_per_day,
            ..Availability::default()
        })
    }

    /// Who in pool `key` (not `excluded`) gets a task of `task_hours` with no offer: of those
    /// it fits, the highest priority, at random among equals. None when nobody fits.
    pub fn pick(
        &mut self,
        key: PoolKey,
        pool: &Pool,
        excluded: &HashSet<i64>,
        task_hours: f64,
        rng: &mut impl Rng,
    ) -> Option<Candidate> {
        self.today?;
        if self.no_fit.contains(&(key, task_hours.to_bits())) {
            return None;
        }
        let (hours, max_tasks) = (&self.today_hours, self.max_tasks_per_day);
        let allowed = |c: &Candidate| {
            allowed_hours(
                hours.get(&c.worker_id).copied(),
                c.max_autostaff_hours_per_day,
            )
        };
        let available = self
            .available
            .entry(key)
            .or_insert_with(|| pool.places_where(|c| allowed(c) > 0.0));
        let won_today = &self.won_today;
        let fit = |c: &Candidate| {
            let won = won_today.get(&c.worker_id).map_or(&[][..], Vec::as_slice);
            fits(allowed(c), won, max_tasks, task_hours)
        };
        let mut anyone = false;
        for tier in available.iter().filter(|t| !t.is_empty()) {
            // At random among the tier's fitting workers: a few random draws find one when
            // many fit; otherwise every one of them is looked at.
            for _ in 0..16 {
                let c = pool.at(tier[rng.random_range(0..tier.len())]);
                if fit(c) {
                    anyone = true;
                    if !excluded.contains(&c.worker_id) {
                        return Some(c.clone());
                    }
                }
            }
            let fitting: Vec<&Candidate> = tier
                .iter()
                .map(|&i| pool.at(i))
                .filter(|c| fit(c))
                .collect();
            anyone |= !fitting.is_empty();
            let open: Vec<&Candidate> = fitting
                .into_iter()
                .filter(|c| !excluded.contains(&c.worker_id))
                .collect();
            if !open.is_empty() {
                return Some(open[rng.random_range(0..open.len())].clone());
            }
        }
        if !anyone {
            self.no_fit.insert((key, task_hours.to_bits()));
        }
        None
    }

    /// `worker_id` won a task of `hours` from pool `key` in this round: it counts for their
    /// next task.
    pub fn record(&mut self, key: PoolKey, worker_id: i64, hours: f64) {
        self.won_today.entry(worker_id).or_default().push(hours);
        self.no_fit.retain(|(k, _)| *k != key);
    }
}

/// The task hours of each of `due` that has an hours function and none computed yet: a
/// built-in at once (nothing copied), a team's script on a blocking thread (under its limits).
/// Negative: no hours known (a Python path, or a script that failed, which the log says). The
/// steps' functions are read once per step.
pub async fn compute_task_hours<C: ConnectionTrait>(
    conn: &C,
    due: &[RequestContext],
) -> Result<HashMap<i64, f64>, DbErr> {
    let mut out = HashMap::new();
    let needed = || {
        due.iter()
            .filter(|r| r.has_hours_function && r.stored_task_hours.is_none())
    };
    let mut step_ids: Vec<i64> = needed().map(|r| r.step_id).collect();
    step_ids.sort_unstable();
    step_ids.dedup();
    let functions = db::requests::hours_functions(conn, &step_ids).await?;
    let mut scripted: Vec<(RequestContext, Value)> = Vec::new();
    for r in needed() {
        let Some(function) = functions.get(&r.step_id) else {
            continue;
        };
        if function.get("script").is_some_and(|s| !s.is_null()) {
            scripted.push((r.clone(), function.clone()));
            continue;
        }
        // The built-in reads its kwargs only.
        let input = crate::workflow::template::DescriptionInput::default();
        let hours = crate::workflow::functions::task_hours(function, &input);
        out.insert(r.request_id, usable_hours(r, hours));
    }
    if scripted.is_empty() {
        return Ok(out);
    }
    let compute = move || {
        scripted
            .iter()
            .map(|(r, function)| {
                let hours =
                    crate::workflow::functions::task_hours(function, &r.description_input());
                (r.request_id, usable_hours(r, hours))
            })
            .collect::<HashMap<i64, f64>>()
    };
    match tokio::task::spawn_blocking(compute).await {
        Ok(computed) => out.extend(computed),
        Err(e) => tracing::error!("assignable hours: their thread failed: {e}"),
    }
    Ok(out)
}

/// Hours as stored: the function's, or -1 when it gave none (a failure is logged).
fn usable_hours(r: &RequestContext, hours: Result<Option<f64>, String>) -> f64 {
    match hours {
        Ok(Some(h)) => h,
        Ok(None) => -1.0,
        Err(e) => {
            tracing::warn!(
                task_id = r.task_id,
                project_id = r.project_id,
                "assignable hours unusable, nobody is auto-staffed for this task: {e}"
            );
            -1.0
        }
    }
}

impl RequestContext {
    /// The task's hours for auto-staffing, once computed (`computed` holds this round's): None
    /// when no hours are known.
    pub fn task_hours(&self, computed: &HashMap<i64, f64>) -> Option<f64> {
        computed
            .get(&self.request_id)
            .copied()
            .or(self.stored_task_hours)
            .filter(|h| *h >= 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staffing::pool::tests::candidate;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn available(id: i64, priority: i32, max: f64) -> Candidate {
        Candidate {
            max_autostaff_hours_per_day: max,
            ..candidate(id, priority)
        }
    }

    #[test]
    fn the_highest_priority_worker_it_fits_and_nobody_else() {
        let pool = Pool::new(vec![
            available(1, 5, 8.0),
            available(2, 5, 8.0),
            available(3, 1, 8.0),
            available(4, 9, 0.0),
        ]);
        let mut a = Availability {
            today_hours: [(1, 4.0), (2, 4.0), (3, 4.0), (4, 4.0)].into(),
            won_today: [(1, vec![3.0])].into(),
            today: Some(Weekday::Tue),
            max_tasks_per_day: 4,
            ..Default::default()
        };
        let key = (7, Role::EntryLevel, false);
        let mut rng = StdRng::seed_from_u64(3);
        // Worker 4 has the top priority but a maximum of 0 (Orchestra's default); worker 1
        // won 3 of their 4 hours today: worker 2 it is.
        let none = HashSet::new();
        let got = a
            .pick(key, &pool, &none, 2.0, &mut rng)
            .map(|c| c.worker_id);
        assert_eq!(got, Some(2));
        a.record(key, 2, 2.0);
        // Worker 2 has 2 hours left, worker 1 one: a 2.5 h task falls to priority 1.
        let got = a
            .pick(key, &pool, &none, 2.5, &mut rng)
            .map(|c| c.worker_id);
        assert_eq!(got, Some(3));
        // Excluded (asked already, on the task): not picked; too big for everyone: nobody.
        let excluded: HashSet<i64> = [3].into();
        assert!(a.pick(key, &pool, &excluded, 2.5, &mut rng).is_none());
        assert!(a.pick(key, &pool, &none, 4.5, &mut rng).is_none());
        // Without a row this week nobody is available.
        let mut empty = Availability {
            today: Some(Weekday::Tue),
            max_tasks_per_day: 4,
            ..Default::default()
        };
        assert!(empty.pick(key, &pool, &none, 1.0, &mut rng).is_none());
    }
}
