//! The population file of `staffbot simulate` (TOML): who the workers are, how they behave, and
//! which tasks arrive when. The format is an interface: teams write their own files for their
//! own pools (README "Staffing policy"). Unknown keys are errors, with their line and column.

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use rand::Rng;
use rand_distr::{Beta, Distribution, LogNormal};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    pub simulation: Simulation,
    pub tasks: Vec<TaskKind>,
    pub workers: Vec<WorkerKind>,
}

/// `[simulation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    #[serde(default = "default_days")]
    pub days: u32,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// When the first day starts (UTC).
    pub start: DateTime<Utc>,
}

fn default_days() -> u32 {
    20
}

fn default_seed() -> u64 {
    1
}

/// `[[tasks]]`: a kind of task and its arrivals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskKind {
    /// The step's slug.
    pub step: String,
    /// The certification the step requires; may be left out when the workers hold one only.
    pub certification: Option<String>,
    /// Tasks arriving each (week)day.
    pub per_day: u32,
    /// Arrivals are uniform within these UTC hours, `[from, to)`.
    #[serde(default = "default_hours")]
    pub hours: [u32; 2],
    /// Tasks also arrive on Saturdays and Sundays.
    #[serde(default)]
    pub weekend: bool,
    /// The task's size in hours (for availability; unused by the policies of this release).
    #[serde(default)]
    pub assignable_hours: f64,
}

fn default_hours() -> [u32; 2] {
    [9, 18]
}

/// `[[workers]]`: a kind of worker; each of `count` draws their own parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerKind {
    pub count: u32,
    pub certification: String,
    /// `staffing_priority`.
    #[serde(default)]
    pub priority: i32,
    /// An IANA time zone (`Europe/Berlin`); UTC when left out.
    #[serde(default = "default_tz")]
    pub tz: String,
    /// Local working hours, `[from, to)`, Monday to Friday: answers outside them wait for the
    /// next start.
    #[serde(default = "default_hours")]
    pub working_hours: [u32; 2],
    /// P(accepts an offer they answer, when not busy).
    pub accept: Dist,
    /// P(answers an offer at all).
    pub answer: Dist,
    /// The worker's median answer delay in minutes (each answer is log-normal around it, σ 0.8).
    pub delay_minutes: Dist,
    /// After winning a task, the worker declines every offer for this long.
    #[serde(default)]
    pub busy_after_win_hours: f64,
    /// Orchestra's availability (hours a day); 0 = none set. Unused by the policies of this
    /// release.
    #[serde(default)]
    pub available_hours_per_day: f64,
}

fn default_tz() -> String {
    "UTC".into()
}

/// A number, or a distribution to draw one from per worker.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Dist {
    Fixed(f64),
    Beta { beta: [f64; 2] },
    Uniform { uniform: [f64; 2] },
}

impl Dist {
    pub fn draw(&self, rng: &mut impl Rng) -> f64 {
        match *self {
            Dist::Fixed(v) => v,
            Dist::Beta { beta: [a, b] } => Beta::new(a, b).map_or(0.0, |d| d.sample(rng)),
            Dist::Uniform { uniform: [lo, hi] } => {
                if hi > lo {
                    rng.random_range(lo..hi)
                } else {
                    lo
                }
            }
        }
    }

    fn check(&self, what: &str, probability: bool) -> Result<(), String> {
        let ok = match *self {
            Dist::Fixed(v) => v.is_finite() && v >= 0.0 && (!probability || v <= 1.0),
            Dist::Beta { beta: [a, b] } => a > 0.0 && b > 0.0,
            Dist::Uniform { uniform: [lo, hi] } => {
                lo.is_finite() && hi >= lo && lo >= 0.0 && (!probability || hi <= 1.0)
            }
        };
        if ok {
            Ok(())
        } else if probability {
            Err(format!(
                "{what} must be a probability (0 to 1), beta = [a, b] with a, b > 0, or uniform = [lo, hi] within 0..1"
            ))
        } else {
            Err(format!(
                "{what} must be a number ≥ 0, beta = [a, b] or uniform = [lo, hi]"
            ))
        }
    }
}

impl Population {
    /// Reads and checks a population file's text; errors name the problem (and TOML's line and
    /// column).
    pub fn parse(text: &str) -> Result<Population, String> {
        let p: Population = toml::from_str(text).map_err(|e| e.to_string())?;
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), String> {
        if self.tasks.is_empty() || self.workers.is_empty() {
            return Err(
                "a population needs at least one [[tasks]] and one [[workers]] table".into(),
            );
        }
        for (i, w) in self.workers.iter().enumerate() {
            let at = format!("workers[{i}]");
            w.accept.check(&format!("{at}.accept"), true)?;
            w.answer.check(&format!("{at}.answer"), true)?;
            w.delay_minutes
                .check(&format!("{at}.delay_minutes"), false)?;
            w.tz.parse::<chrono_tz::Tz>()
                .map_err(|_| format!("{at}.tz: unknown time zone {:?}", w.tz))?;
            check_hours(&w.working_hours, &format!("{at}.working_hours"))?;
        }
        for (i, t) in self.tasks.iter().enumerate() {
            check_hours(&t.hours, &format!("tasks[{i}].hours"))?;
            let cert = self.certification_of(t)?;
            if !self.workers.iter().any(|w| w.certification == cert) {
                return Err(format!(
                    "tasks[{i}] (step {}) needs certification {cert}, which no [[workers]] table has",
                    t.step
                ));
            }
        }
        Ok(())
    }

    /// The certification a kind of task requires.
    pub fn certification_of(&self, task: &TaskKind) -> Result<String, String> {
        if let Some(c) = &task.certification {
            return Ok(c.clone());
        }
        let mut all: Vec<&str> = self
            .workers
            .iter()
            .map(|w| w.certification.as_str())
            .collect();
        all.sort();
        all.dedup();
        match all.as_slice() {
            [only] => Ok(only.to_string()),
            _ => Err(format!(
                "tasks (step {}): say which certification it needs (certification = \"…\"); the workers hold {}",
                task.step,
                all.join(", ")
            )),
        }
    }
}

fn check_hours(hours: &[u32; 2], what: &str) -> Result<(), String> {
    if hours[0] < hours[1] && hours[1] <= 24 {
        Ok(())
    } else {
        Err(format!("{what} must be [from, to] with 0 ≤ from < to ≤ 24"))
    }
}

/// One simulated worker: the parameters drawn for them.
#[derive(Debug, Clone)]
pub struct SimWorker {
    pub username: String,
    pub slack_id: String,
    pub certification: String,
    pub priority: i32,
    pub tz: chrono_tz::Tz,
    pub working_hours: [u32; 2],
    /// Orchestra availability: hours a weekday (0: none set).
    pub available_hours_per_day: f64,
    pub p_accept: f64,
    pub p_answer: f64,
    pub median_delay_minutes: f64,
    pub busy_after_win: chrono::Duration,
}

impl SimWorker {
    /// Whether `at` falls in the worker's working hours (local time, Monday to Friday).
    pub fn is_working(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        let hour = local.time().hour_of_day();
        weekday && hour >= self.working_hours[0] && hour < self.working_hours[1]
    }

    /// `at` if the worker is working then, else the next start of their working hours.
    pub fn next_working(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_working(at) {
            return at;
        }
        let mut day = at.with_timezone(&self.tz).date_naive();
        for _ in 0..8 {
            let start =
                NaiveTime::from_hms_opt(self.working_hours[0].min(23), 0, 0).unwrap_or_default();
            if let Some(local) = self.tz.from_local_datetime(&day.and_time(start)).earliest() {
                let utc = local.with_timezone(&Utc);
                if utc > at && self.is_working(utc) {
                    return utc;
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
        at
    }

    /// When the worker answers an offer received at `at`, if they do: a log-normal delay around
    /// their median, moved to their next working hours.
    pub fn answer_at(&self, at: DateTime<Utc>, rng: &mut impl Rng) -> Option<DateTime<Utc>> {
        if !rng.random_bool(self.p_answer.clamp(0.0, 1.0)) {
            return None;
        }
        let median = self.median_delay_minutes.max(0.1);
        let delay = LogNormal::new(median.ln(), 0.8).map_or(median, |d| d.sample(rng));
        let seconds = (delay * 60.0).round().clamp(1.0, 7.0 * 86_400.0) as i64;
        Some(self.next_working(at + chrono::Duration::seconds(seconds)))
    }
}

/// Hours as a number.
trait HourOfDay {
    fn hour_of_day(&self) -> u32;
}

impl HourOfDay for NaiveTime {
    fn hour_of_day(&self) -> u32 {
        chrono::Timelike::hour(self)
    }
}

/// Draws every worker of the population, in file order.
pub fn draw_workers(p: &Population, rng: &mut impl Rng) -> Vec<SimWorker> {
    let mut out = Vec::new();
    for kind in &p.workers {
        let tz = kind.tz.parse().unwrap_or(chrono_tz::UTC);
        for _ in 0..kind.count {
            let n = out.len();
            out.push(SimWorker {
                username: format!("w{n}"),
                slack_id: format!("U{n:05}"),
                certification: kind.certification.clone(),
                priority: kind.priority,
                tz,
                working_hours: kind.working_hours,
                available_hours_per_day: kind.available_hours_per_day,
                p_accept: kind.accept.draw(rng),
                p_answer: kind.answer.draw(rng),
                median_delay_minutes: kind.delay_minutes.draw(rng),
                busy_after_win: chrono::Duration::seconds(
                    (kind.busy_after_win_hours * 3600.0).round() as i64,
                ),
            });
        }
    }
    out
}

/// Every task arrival of the run: (time, index of its kind), in time order.
pub fn arrivals(p: &Population, rng: &mut impl Rng) -> Vec<(DateTime<Utc>, usize)> {
    let mut out = Vec::new();
    for day in 0..p.simulation.days {
        let start = p.simulation.start + chrono::Duration::days(i64::from(day));
        let weekend = matches!(start.weekday(), Weekday::Sat | Weekday::Sun);
        for (k, kind) in p.tasks.iter().enumerate() {
            if weekend && !kind.weekend {
                continue;
            }
            let from = i64::from(kind.hours[0]) * 3600;
            let to = i64::from(kind.hours[1]) * 3600;
            for _ in 0..kind.per_day {
                let at = rng.random_range(from..to);
                out.push((start + chrono::Duration::seconds(at), k));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const NEWSROOM: &str = r#"
[simulation]
days = 2
seed = 1
start = "2026-01-05T00:00:00Z"

[[tasks]]
step = "reporting"
per_day = 3

[[workers]]
count = 4
certification = "reporter"
tz = "America/New_York"
working_hours = [9, 18]
accept = { beta = [2, 5] }
answer = 0.5
delay_minutes = { uniform = [2, 30] }
busy_after_win_hours = 8
"#;

    #[test]
    fn a_population_reads_and_draws_reproducibly() {
        let p = Population::parse(NEWSROOM).expect("valid");
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let w = draw_workers(&p, &mut rng);
            (
                w.iter().map(|w| w.p_accept).collect::<Vec<_>>(),
                arrivals(&p, &mut rng),
            )
        };
        assert_eq!(draw(7).0, draw(7).0);
        assert_eq!(draw(7).1, draw(7).1);
        assert_ne!(draw(7).0, draw(8).0);
        let (_, arrivals) = draw(7);
        assert_eq!(arrivals.len(), 6);
        assert!(arrivals.iter().all(|(t, _)| {
            let h = chrono::Timelike::hour(t);
            (9..18).contains(&h)
        }));
    }

    #[test]
    fn working_hours_are_local() {
        let p = Population::parse(NEWSROOM).expect("valid");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let w = &draw_workers(&p, &mut rng)[0];
        // Monday 2026-01-05 12:00 UTC is 07:00 in New York: not yet; 14:00 UTC is 09:00.
        let at = |h: u32| {
            Utc.with_ymd_and_hms(2026, 1, 5, h, 0, 0)
                .single()
                .expect("time")
        };
        assert!(!w.is_working(at(12)));
        assert!(w.is_working(at(14)));
        assert_eq!(w.next_working(at(12)), at(14));
        // Friday 23:30 UTC (18:30 local) waits for Monday 09:00 local.
        let friday = Utc
            .with_ymd_and_hms(2026, 1, 9, 23, 30, 0)
            .single()
            .expect("time");
        assert_eq!(
            w.next_working(friday),
            Utc.with_ymd_and_hms(2026, 1, 12, 14, 0, 0)
                .single()
                .expect("time")
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = Population::parse(&NEWSROOM.replace("count = 4", "count = 4\nspeed = 2"))
            .expect_err("unknown key");
        assert!(err.contains("unknown field `speed`"), "{err}");
        let err = Population::parse(&NEWSROOM.replace("answer = 0.5", "answer = 1.5"))
            .expect_err("probability");
        assert!(
            err.contains("workers[0].answer must be a probability"),
            "{err}"
        );
        let err = Population::parse(&NEWSROOM.replace("America/New_York", "Mars/Olympus"))
            .expect_err("tz");
        assert!(err.contains("unknown time zone"), "{err}");
    }
}
