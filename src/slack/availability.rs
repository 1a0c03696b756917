//! "Your availability" (issue 28): the Edit button of the App Home (or of `/staffbot
//! availability`) opens a form with the hours of each weekday this week and next and the
//! worker's own working hours and days ([`crate::handlers::home`]); its submission is read here
//! and stored ([`crate::handlers::modal`]), or the form stays open with what is wrong under
//! each field.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::blocks::{AVAILABILITY_DAYS, AVAILABILITY_HOURS, AVAILABILITY_VALUE};
use crate::availability::{WEEKDAYS, WeekHours, day_name, parse_day_hours, week_of};

/// A submitted form as [`crate::handlers::modal`] stores it.
pub use crate::handlers::modal::Availability as Submitted;

/// Reads the form's `state.values`: `avail:<Monday>:<day>` number inputs of weeks from this
/// week on (a form left open past a Sunday still saves its weeks), and the two text inputs.
/// `Err` maps block ids to what is wrong there.
pub fn read_form(values: &Map<String, Value>, now: DateTime<Utc>) -> Result<Submitted, Value> {
    let mut errors = Map::new();
    let mut weeks: Vec<(NaiveDate, WeekHours)> = Vec::new();
    let earliest = week_of(now.date_naive()) - chrono::Duration::days(7);
    for (block, value) in values {
        let Some(rest) = block.strip_prefix("avail:") else {
            continue;
        };
        let Some((week, day)) = rest.split_once(':') else {
            continue;
        };
        let (Ok(week), Some(day)) = (
            week.parse::<NaiveDate>(),
            WEEKDAYS.iter().position(|d| day_name(*d) == day),
        ) else {
            continue;
        };
        if week_of(week) != week || week < earliest {
            continue;
        }
        let text = value
            .pointer(&format!("/{AVAILABILITY_VALUE}/value"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match parse_day_hours(text) {
            Ok(h) => {
                let index = match weeks.iter().position(|(w, _)| *w == week) {
                    Some(i) => i,
                    None => {
                        weeks.push((week, WeekHours::default()));
                        weeks.len() - 1
                    }
                };
                weeks[index].1.0[day] = h;
            }
            Err(e) => {
                errors.insert(block.clone(), json!(e));
            }
        }
    }
    weeks.sort_by_key(|(w, _)| *w);
    let text = |block: &str| {
        values
            .get(block)
            .and_then(|v| v.pointer(&format!("/{AVAILABILITY_VALUE}/value")))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let working_hours = text(AVAILABILITY_HOURS);
    if let Some(h) = &working_hours
        && let Err(e) = crate::availability::Hours::parse(h)
    {
        errors.insert(AVAILABILITY_HOURS.to_string(), json!(e));
    }
    let working_days = text(AVAILABILITY_DAYS);
    if let Some(d) = &working_days
        && let Err(e) = crate::availability::Days::parse(d)
    {
        errors.insert(AVAILABILITY_DAYS.to_string(), json!(e));
    }
    if !errors.is_empty() {
        return Err(Value::Object(errors));
    }
    Ok(Submitted {
        weeks,
        working_hours,
        working_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &str) -> Value {
        json!({AVAILABILITY_VALUE: {"type": "number_input", "value": v}})
    }

    #[test]
    fn a_form_reads_as_weeks_of_hours_or_says_what_is_wrong() {
        let now = DateTime::parse_from_rfc3339("2026-12-09T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut values = Map::new();
        values.insert("avail:2026-12-07:mon".into(), value("4"));
        values.insert("avail:2026-12-07:tue".into(), value("2.5"));
        values.insert("avail:2026-12-14:fri".into(), value(""));
        values.insert(
            AVAILABILITY_HOURS.into(),
            json!({AVAILABILITY_VALUE: {"type": "plain_text_input", "value": "8:00-16:00"}}),
        );
        let form = read_form(&values, now).expect("valid");
        assert_eq!(form.weeks.len(), 2);
        assert_eq!(form.weeks[0].1.summary(), "mon 4, tue 2.5");
        assert_eq!(form.working_hours.as_deref(), Some("8:00-16:00"));
        assert_eq!(form.working_days, None);
        values.insert("avail:2026-12-07:wed".into(), value("30"));
        values.insert(
            AVAILABILITY_DAYS.into(),
            json!({AVAILABILITY_VALUE: {"type": "plain_text_input", "value": "weekdays"}}),
        );
        let errors = read_form(&values, now).expect_err("invalid");
        assert!(
            errors["avail:2026-12-07:wed"]
                .as_str()
                .is_some_and(|e| e.contains("between 0 and 24"))
        );
        assert!(
            errors[AVAILABILITY_DAYS]
                .as_str()
                .is_some_and(|e| e.contains("mon-fri"))
        );
    }
}
