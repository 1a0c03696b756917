//! Who is available, and when (issue 28), as pure functions of data and `now`.
//!
//! - **Availability** (Orchestra's auto-staffing, behaviour §6.5): a worker's hours per weekday
//!   for a week; the hours they may be auto-staffed today are the smaller of today's and their
//!   `max_autostaff_hours_per_day`; a task fits when the tasks won today plus this one stay
//!   within `staffbot.max_autostaff_tasks_per_day` and their hours within the allowed hours.
//! - **Working hours** (beyond Orchestra): a worker is asked only between the start and end of
//!   their working hours, on their working days, in their own time zone.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The Monday of the week `date` is in: how availability rows name their week.
pub fn week_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// Hours available on each weekday of one week, Monday first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WeekHours(pub [f64; 7]);

impl WeekHours {
    /// The hours of `day`.
    pub fn on(&self, day: Weekday) -> f64 {
        self.0[day.num_days_from_monday() as usize]
    }

    /// Whether every day is 0.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|h| *h == 0.0)
    }

    /// `mon 4, tue 4, …` (days with hours only), or `none`.
    pub fn summary(&self) -> String {
        let days: Vec<String> = WEEKDAYS
            .iter()
            .zip(self.0)
            .filter(|(_, h)| *h > 0.0)
            .map(|(d, h)| format!("{} {}", day_name(*d), hours_text(h)))
            .collect();
        if days.is_empty() {
            "none".to_string()
        } else {
            days.join(", ")
        }
    }
}

/// Monday to Sunday.
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// `mon`, `tue`, …
pub fn day_name(day: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][day.num_days_from_monday() as usize]
}

/// `2.5`, `4` (no trailing `.0`).
pub fn hours_text(hours: f64) -> String {
    if hours.fract() == 0.0 {
        format!("{hours:.0}")
    } else {
        format!("{hours}")
    }
}

/// Parses a number of hours a day: 0–24.
pub fn parse_day_hours(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0.0);
    }
    match text.parse::<f64>() {
        Ok(h) if (0.0..=24.0).contains(&h) => Ok(h),
        _ => Err(format!(
            "{text:?} is not a number of hours between 0 and 24"
        )),
    }
}

/// The hours a worker may be auto-staffed today: today's hours of this week's availability
/// row, at most `max_per_day`. No row for this week (`None`): none (Orchestra: not a candidate).
pub fn allowed_hours(today: Option<f64>, max_per_day: f64) -> f64 {
    today.map_or(0.0, |h| h.min(max_per_day).max(0.0))
}

/// Whether a task of `task_hours` fits a worker who may work `allowed` hours today and won
/// tasks of `won_today` hours today (behaviour §6.5: equality fits).
pub fn fits(allowed: f64, won_today: &[f64], max_tasks_per_day: u32, task_hours: f64) -> bool {
    // Tasks won today + this one ≤ the cap.
    let tasks_ok = won_today.len() < max_tasks_per_day as usize;
    let hours: f64 = won_today.iter().sum::<f64>() + task_hours;
    tasks_ok && hours <= allowed + 1e-9
}

/// Working hours in a day: from `start` to `end` local time (an `end` before `start` runs
/// past midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Hours {
    /// `09:00-18:00` (`staffbot.working_hours`' default).
    pub const NINE_TO_SIX: Hours = Hours {
        start: NaiveTime::from_hms_opt(9, 0, 0).expect("a time"),
        end: NaiveTime::from_hms_opt(18, 0, 0).expect("a time"),
    };

    /// `09:00-18:00`.
    pub fn parse(text: &str) -> Result<Hours, String> {
        let bad = || format!("{text:?} is not working hours like \"09:00-18:00\"");
        let (start, end) = text.trim().split_once('-').ok_or_else(bad)?;
        let time = |t: &str| {
            let t = t.trim();
            if t == "24:00" {
                return NaiveTime::from_hms_opt(23, 59, 59).ok_or_else(bad);
            }
            NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| bad())
        };
        let hours = Hours {
            start: time(start)?,
            end: time(end)?,
        };
        if hours.start == hours.end {
            return Err(format!(
                "{text:?}: working hours start and end at the same time"
            ));
        }
        Ok(hours)
    }

    /// Whether `t` is inside.
    fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// Working days: a set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub [bool; 7]);

impl Days {
    /// Monday to Friday (`staffbot.working_days`' default).
    pub const MON_FRI: Days = Days([true, true, true, true, true, false, false]);

    /// `mon-fri`, `mon,wed,fri`, `sun-thu`, `mon-sun`.
    pub fn parse(text: &str) -> Result<Days, String> {
        let bad = || format!("{text:?} is not working days like \"mon-fri\" or \"mon,wed,fri\"");
        let day = |d: &str| -> Result<usize, String> {
            let d = d.trim().to_ascii_lowercase();
            WEEKDAYS
                .iter()
                .position(|w| d.starts_with(day_name(*w)) && d.len() >= 3)
                .ok_or_else(bad)
        };
        let mut days = [false; 7];
        for part in text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut i = a;
                    loop {
                        days[i] = true;
                        if i == b {
                            break;
                        }
                        i = (i + 1) % 7;
                    }
                }
                None => days[day(part)?] = true,
            }
        }
        if days.iter().all(|d| !d) {
            return Err(bad());
        }
        Ok(Days(days))
    }

    fn contains(&self, day: Weekday) -> bool {
        self.0[day.num_days_from_monday() as usize]
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = WEEKDAYS
            .iter()
            .filter(|d| self.contains(**d))
            .map(|d| day_name(*d))
            .collect();
        write!(f, "{}", names.join(","))
    }
}

/// One worker's working week: their hours, days and time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkingWeek {
    pub hours: Hours,
    pub days: Days,
    pub tz: Tz,
}

impl WorkingWeek {
    /// Whether `now` is inside their working hours (a shift past midnight belongs to the day it
    /// started on).
    pub fn is_working(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz);
        let t = local.time();
        if !self.hours.contains(t) {
            return false;
        }
        let started_yesterday = self.hours.start > self.hours.end && t < self.hours.end;
        let day = if started_yesterday {
            local.weekday().pred()
        } else {
            local.weekday()
        };
        self.days.contains(day)
    }

    /// The next start of their working hours at or after `now` (now itself when working).
    pub fn next_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_working(now) {
            return now;
        }
        let local = now.with_timezone(&self.tz);
        for offset in 0..8 {
            let date = local.date_naive() + Duration::days(offset);
            if !self.days.contains(date.weekday()) {
                continue;
            }
            let start = date.and_time(self.hours.start);
            // A start inside a DST gap is taken an hour later.
            let at = self
                .tz
                .from_local_datetime(&start)
                .earliest()
                .or_else(|| {
                    self.tz
                        .from_local_datetime(&(start + Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc));
            if let Some(at) = at
                && at > now
            {
                return at;
            }
        }
        now + Duration::days(7)
    }
}

/// `staffbot.working_hours`, `working_days`, `working_hours_enforced` and `urgent_priority`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkingRule {
    pub enforced: bool,
    pub hours: Hours,
    pub days: Days,
    pub urgent_priority: Option<i32>,
}

impl Default for WorkingRule {
    /// Not enforced (the engine's own default; the configuration's is enforced).
    fn default() -> Self {
        WorkingRule {
            enforced: false,
            hours: Hours::NINE_TO_SIX,
            days: Days::MON_FRI,
            urgent_priority: None,
        }
    }
}

impl WorkingRule {
    /// Whether working hours apply to a project of `priority`.
    pub fn applies_to(&self, priority: i32) -> bool {
        self.enforced && self.urgent_priority.is_none_or(|u| priority < u)
    }

    /// A worker's working week: their own hours and days when set (and readable), else the
    /// configured ones; their time zone, else UTC (callers leave workers whose time zone is
    /// not known out of the rule).
    pub fn week_of(
        &self,
        tz: Option<&str>,
        hours: Option<&str>,
        days: Option<&str>,
    ) -> WorkingWeek {
        WorkingWeek {
            hours: hours
                .and_then(|h| Hours::parse(h).ok())
                .unwrap_or(self.hours),
            days: days.and_then(|d| Days::parse(d).ok()).unwrap_or(self.days),
            tz: tz.and_then(|t| parse_tz(t).ok()).unwrap_or(chrono_tz::UTC),
        }
    }
}

/// Parses a time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_tz(text: &str) -> Result<Tz, String> {
    text.trim()
        .parse::<Tz>()
        .map_err(|_| format!("{text:?} is not a time zone name like \"Europe/Berlin\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn orchestras_worked_example() {
        // Behaviour §6.5: allowed 7 h, worked 2 h, won a 3 h task today, a new 3 h task: 8 > 7.
        let week = WeekHours([9.0, 9.0, 9.0, 9.0, 9.0, 0.0, 0.0]);
        let allowed = allowed_hours(Some(week.on(Weekday::Mon)), 7.0);
        assert_eq!(allowed, 7.0);
        assert!(!fits(allowed, &[2.0, 3.0], 4, 3.0));
        assert!(fits(allowed, &[3.0], 4, 3.0));
        // Equality fits.
        assert!(fits(allowed, &[4.0], 4, 3.0));
        // A cap of one task a day with one won already.
        assert!(!fits(9.0, &[1.0], 1, 1.0));
        // No row this week, or max 0 (Orchestra's default): never.
        assert_eq!(allowed_hours(None, 8.0), 0.0);
        assert_eq!(allowed_hours(Some(week.on(Weekday::Mon)), 0.0), 0.0);
        assert!(!fits(0.0, &[], 4, 0.5));
        assert_eq!(
            week_of(NaiveDate::from_ymd_opt(2026, 12, 10).expect("a date")).to_string(),
            "2026-12-07"
        );
    }

    #[test]
    fn working_hours_in_the_workers_own_time() {
        let berlin = WorkingWeek {
            hours: Hours::parse("09:00-18:00").expect("hours"),
            days: Days::parse("mon-fri").expect("days"),
            tz: parse_tz("Europe/Berlin").expect("tz"),
        };
        // Monday 07:30 UTC is 08:30 in Berlin (winter): not yet; 08:00 UTC is 09:00.
        assert!(!berlin.is_working(at("2026-12-07T07:30:00Z")));
        assert!(berlin.is_working(at("2026-12-07T08:00:00Z")));
        assert_eq!(
            berlin.next_start(at("2026-12-07T02:00:00Z")),
            at("2026-12-07T08:00:00Z")
        );
        // Friday evening: next Monday.
        assert_eq!(
            berlin.next_start(at("2026-12-11T17:30:00Z")),
            at("2026-12-14T08:00:00Z")
        );
        // A night shift belongs to the day it started.
        let night = WorkingWeek {
            hours: Hours::parse("22:00-06:00").expect("hours"),
            days: Days::parse("mon").expect("days"),
            tz: chrono_tz::UTC,
        };
        assert!(
            night.is_working(at("2026-12-08T03:00:00Z")),
            "Tuesday 03:00 is Monday's shift"
        );
        assert!(
            !night.is_working(at("2026-12-07T03:00:00Z")),
            "Monday 03:00 is Sunday's"
        );
    }

    #[test]
    fn parsing_says_what_is_wrong() {
        assert_eq!(
            Days::parse("sun-tue").expect("days").to_string(),
            "mon,tue,sun"
        );
        assert_eq!(
            Days::parse("Mon, Wed,fri").expect("days").to_string(),
            "mon,wed,fri"
        );
        assert!(Days::parse("weekdays").is_err());
        assert!(Hours::parse("9-5").is_err());
        assert!(Hours::parse("09:00-09:00").is_err());
        assert_eq!(
            Hours::parse("8:30-17:00").expect("hours").to_string(),
            "08:30-17:00"
        );
        assert!(parse_day_hours("25").is_err());
        assert_eq!(parse_day_hours(" ").expect("empty is 0"), 0.0);
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(
            WeekHours([4.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0]).summary(),
            "mon 4, tue 2.5"
        );
    }
}
