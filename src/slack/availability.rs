//! "Your availability" (issue 28): the Edit button of the App Home (or of `/staffbot
//! availability`) opens a form with the hours of each weekday this week and next and the
//! worker's own working hours and days; its submission stores them, or keeps the form open
//! with what is wrong under each field.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::actions::Clicked;
use super::blocks::{AVAILABILITY_DAYS, AVAILABILITY_HOURS, AVAILABILITY_VALUE};
use super::dispatch::{Ack, Dispatcher};
use super::envelope::Envelope;
use crate::availability::{WEEKDAYS, WeekHours, day_name, parse_day_hours, week_of};
use crate::db::{self, workers};
use crate::error::Error;
use crate::messages::{Modal, Outgoing};
use crate::outbox;

/// What a submitted form holds, checked: the weeks' hours, the working hours and days
/// (`None`: the configured ones), or the errors to show under each field.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub weeks: Vec<(NaiveDate, WeekHours)>,
    pub working_hours: Option<String>,
    pub working_days: Option<String>,
}

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

impl Dispatcher {
    /// "Edit" under "Your availability": opens the form, filled with what is stored.
    pub(super) async fn open_availability(
        &self,
        click: Clicked<'_>,
        now: DateTime<Utc>,
    ) -> Result<Ack, Error> {
        let tx = db::begin_write(&self.db).await?;
        let done = async {
            let worker = workers::by_slack_id(&tx, click.clicker).await?;
            match (worker, click.actions.trigger_id.clone()) {
                (Some(worker), Some(trigger_id)) => {
                    let this_week = week_of(now.date_naive());
                    let weeks = [this_week, this_week + chrono::Duration::days(7)];
                    let stored = db::availability::of_worker(&tx, worker.id, &weeks).await?;
                    let modal = Modal::Availability {
                        weeks: stored
                            .into_iter()
                            .map(|(w, h)| (w, h.unwrap_or_default().0))
                            .collect(),
                        working_hours: worker.working_hours.clone().unwrap_or_default(),
                        working_days: worker.working_days.clone().unwrap_or_default(),
                    };
                    let open = Outgoing::OpenModal {
                        trigger_id,
                        user: click.clicker.to_string(),
                        modal,
                    };
                    let key = format!("modal:{}", click.envelope.envelope_id);
                    outbox::enqueue(&tx, &key, open, now).await?;
                }
                (None, _) => {
                    let text = super::render::home::NOT_A_WORKER.to_string();
                    self.tell_clicker(&tx, &click, text, now).await?;
                }
                (Some(_), None) => {
                    let text = "Sorry! Slack sent no trigger to open the form with.".to_string();
                    self.tell_clicker(&tx, &click, text, now).await?;
                }
            }
            Self::remember(&tx, &click.envelope.envelope_id, &Ack::Bare, now).await?;
            Ok::<_, Error>(())
        }
        .await;
        db::settle(tx, done).await?;
        self.outbox_wake.notify_one();
        Ok(Ack::Bare)
    }

    /// The availability form was submitted: stored (the form closes and the Home says so), or
    /// kept open with the errors.
    pub(super) async fn availability_submission(
        &self,
        envelope: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<Ack, Error> {
        let payload = &envelope.payload;
        let user = payload.pointer("/user/id").and_then(Value::as_str);
        let empty = Map::new();
        let values = payload
            .pointer("/view/state/values")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let form = read_form(values, now);
        let tx = db::begin_write(&self.db).await?;
        let done = async {
            let worker = match user {
                Some(u) => workers::by_slack_id(&tx, u).await?,
                None => None,
            };
            let ack = match (worker, form) {
                (_, Err(errors)) => {
                    Ack::WithPayload(json!({"response_action": "errors", "errors": errors}))
                }
                (None, Ok(_)) => {
                    tracing::warn!(
                        ?user,
                        "availability form from a Slack user who is no worker"
                    );
                    Ack::Bare
                }
                (Some(worker), Ok(form)) => {
                    for (week, hours) in &form.weeks {
                        db::availability::set(&tx, worker.id, *week, *hours, now).await?;
                    }
                    let change = crate::workers::WorkerChange {
                        working_hours: Some(form.working_hours),
                        working_days: Some(form.working_days),
                        ..Default::default()
                    };
                    crate::workers::update(&tx, &worker.username, change).await?;
                    let notice = "Your availability is saved.".to_string();
                    if let Some(u) = user {
                        outbox::publish_home(&tx, u, Some(notice), now).await?;
                    }
                    Ack::Bare
                }
            };
            Self::remember(&tx, &envelope.envelope_id, &ack, now).await?;
            Ok::<_, Error>(ack)
        }
        .await;
        let ack = db::settle(tx, done).await?;
        self.outbox_wake.notify_one();
        Ok(ack)
    }
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
