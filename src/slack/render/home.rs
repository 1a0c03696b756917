//! The App Home view and the modals, in Block Kit. A Home is at most
//! [`MAX_HOME_BLOCKS`] blocks: its lists are filled most urgent first (offers, the worker's
//! tasks, what needs staffing, work in progress) and each says how many it could not show.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::super::blocks::{
    APPROVE, AVAILABILITY_CALLBACK, AVAILABILITY_DAYS, AVAILABILITY_EDIT, AVAILABILITY_HOURS,
    AVAILABILITY_VALUE, MAX_HOME_BLOCKS, MAX_MESSAGE_BLOCKS, RESTAFF, RESTAFF_CALLBACK,
    RESTAFF_INPUT, RESTAFF_SELECT, SEND_BACK, STAFF, SUBMIT, button, context, section,
};
use super::super::mrkdwn::{ChannelLink, Mrkdwn};
use super::offer_buttons;
use crate::home::{
    AdminHome, HomeAvailability, HomeData, HomeOffer, HomeTask, TaskAction, WorkflowStats,
};
use crate::messages::Modal;
use crate::mrkdwn;

/// Shown to a Slack user who is no staffbot worker.
pub use crate::messages::wording::NOT_A_WORKER;

/// One list of the Home: its heading, its items (each a few blocks), how many there are in all
/// (loaded or not), and what it says when empty.
struct List {
    heading: &'static str,
    items: Vec<Vec<Value>>,
    total: usize,
    empty: &'static str,
}

/// The Home view of `home`, with its notice (the outcome of the user's last click) on top.
pub fn home_view(home: &HomeData) -> Value {
    let mut top = Vec::new();
    if let Some(notice) = &home.notice {
        top.push(section(mrkdwn!(":information_source: {}", notice)));
    }
    if home.worker.is_none() {
        top.push(section(Mrkdwn::text(NOT_A_WORKER)));
        return json!({"type": "home", "blocks": top});
    }
    let now = home.now;
    let mut lists = worker_lists(home);
    if let Some(a) = &home.availability {
        lists.push(List {
            heading: "Your availability",
            items: vec![availability_blocks(a)],
            total: 1,
            empty: "",
        });
    }
    if let Some(admin) = &home.admin {
        lists.extend(admin_lists(admin, now));
    }
    lists.push(List {
        // The viewer's own: an admin's Home says so, beside the workspace's lists.
        heading: "Your recently finished tasks",
        items: finished_item(&home.finished, now).into_iter().collect(),
        total: usize::from(!home.finished.is_empty()),
        empty: "None of your tasks has finished yet.",
    });
    let tail = home
        .admin
        .as_ref()
        .map(|a| stats_blocks(&a.stats))
        .unwrap_or_default();
    let mut blocks = top;
    let budget = MAX_HOME_BLOCKS - blocks.len() - tail.len();
    blocks.extend(fill(lists, budget));
    blocks.extend(tail);
    debug_assert!(blocks.len() <= MAX_HOME_BLOCKS);
    json!({"type": "home", "blocks": blocks})
}

/// `/staffbot tasks`: the worker's open offers and tasks as an ephemeral message (the Home's
/// first two lists, with the same buttons), and its text fallback.
pub fn tasks_message(home: &HomeData) -> (Mrkdwn, Value) {
    if home.worker.is_none() {
        return (Mrkdwn::text(NOT_A_WORKER), json!([]));
    }
    let lists = worker_lists(home);
    let text = mrkdwn!(
        "You have {} open offer(s) and {} task(s) in progress.",
        home.offers.len(),
        home.tasks.len()
    );
    (text, Value::Array(fill(lists, MAX_MESSAGE_BLOCKS)))
}

/// `/staffbot availability`: the worker's availability as the Home shows it, with its Edit
/// button, and its text fallback.
pub fn availability_message(home: &HomeData) -> (Mrkdwn, Value) {
    match &home.availability {
        None => (Mrkdwn::text(NOT_A_WORKER), json!([])),
        Some(a) => {
            let blocks = availability_blocks(a);
            let text = Mrkdwn::text("Your availability and working hours.");
            (text, Value::Array(blocks))
        }
    }
}

/// A worker's open offers and tasks in progress, with their buttons.
fn worker_lists(home: &HomeData) -> Vec<List> {
    let now = home.now;
    vec![
        List {
            heading: "Open offers",
            items: home.offers.iter().map(|o| offer_item(o, now)).collect(),
            total: home.offers.len(),
            empty: "No open offers.",
        },
        List {
            heading: "Your tasks",
            items: home.tasks.iter().map(|t| task_item(t, now)).collect(),
            total: home.tasks.len(),
            empty: "Nothing in progress.",
        },
    ]
}

/// "Your availability": this week's and next week's hours, auto-staffing, working hours, and
/// the Edit button.
fn availability_blocks(a: &HomeAvailability) -> Vec<Value> {
    let mut lines: Vec<Mrkdwn> = Vec::new();
    for (i, (week, hours)) in a.weeks.iter().enumerate() {
        let which = if i == 0 { "This week" } else { "Next week" };
        let hours = hours.map_or_else(|| "not set".to_string(), |h| h.summary());
        lines.push(mrkdwn!(
            "*{}* (from {}): {}",
            which,
            week.format("%a %-d %b").to_string(),
            hours
        ));
    }
    lines.push(if a.max_autostaff_hours_per_day > 0.0 {
        mrkdwn!(
            "Tasks that fit your day are assigned to you directly, up to {} h a day.",
            crate::availability::hours_text(a.max_autostaff_hours_per_day)
        )
    } else {
        Mrkdwn::text(
            "Auto-staffing is off for you: an admin sets the most hours a day you may be assigned directly.",
        )
    });
    let tz = a.tz.as_deref().unwrap_or("time zone not known yet");
    let whose = if a.own_hours { "yours" } else { "the team's" };
    lines.push(if a.enforced {
        mrkdwn!(
            "Working hours ({}): {} {} ({}); offers and reminders come only then.",
            whose,
            a.working_hours,
            a.working_days,
            tz
        )
    } else {
        mrkdwn!(
            "Working hours ({}): {} {} ({}).",
            whose,
            a.working_hours,
            a.working_days,
            tz
        )
    });
    let mut block = section(Mrkdwn::lines(lines));
    block["block_id"] = json!("home:availability");
    block["accessory"] = button(
        AVAILABILITY_EDIT,
        Mrkdwn::text("Edit"),
        "edit".to_string(),
        false,
    );
    vec![block]
}

/// Lays the lists out within `budget` blocks: each list's heading and one line for its
/// remainder are kept; items go to the lists in order while they fit.
fn fill(lists: Vec<List>, budget: usize) -> Vec<Value> {
    // Heading + "none"/"N more" line for every list.
    let mut left = budget.saturating_sub(2 * lists.len());
    let mut out = Vec::new();
    for list in lists {
        out.push(json!({"type": "header",
            "text": {"type": "plain_text", "text": list.heading}}));
        let mut shown = 0;
        for item in list.items {
            if item.len() > left {
                break;
            }
            left -= item.len();
            out.extend(item);
            shown += 1;
        }
        if list.total == 0 {
            out.push(context(Mrkdwn::text(list.empty)));
        } else if list.total > shown {
            out.push(context(mrkdwn!(
                "… and {} more not shown.",
                list.total - shown
            )));
        }
    }
    out
}

/// How long ago `at` was, briefly (`just now`, `5m`, `3h`, `2d`).
pub fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        0..60 => "just now".to_string(),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

pub use crate::home::status_text;

fn offer_item(o: &HomeOffer, now: DateTime<Utc>) -> Vec<Value> {
    let c = &o.offer;
    let mut text = mrkdwn!(
        "*{}*{} (task {})\nProject: {} · {}\nOffered {}",
        c.step_description,
        if c.review { " [Review]" } else { "" },
        o.task_id,
        c.project_description,
        c.workflow_description,
        ago(now, o.offered_at)
    );
    if !c.details.is_empty() {
        text.push(&mrkdwn!("\nDetails: {}", c.details));
    }
    vec![
        section(text),
        offer_buttons(o.inquiry_id, format!("home:offer:{}", o.inquiry_id)),
    ]
}

fn task_item(t: &HomeTask, now: DateTime<Utc>) -> Vec<Value> {
    let mut text = mrkdwn!(
        "*{}* (task {})\n{}, since {}",
        t.step_description,
        t.task_id,
        status_text(t.status),
        ago(now, t.since)
    );
    if let Some(channel) = &t.channel {
        text.push(&mrkdwn!(" · {}", ChannelLink(channel)));
    }
    text.push(&mrkdwn!("\n{}", t.task));
    let value = t.task_id.to_string();
    match t.action {
        Some(TaskAction::Submit) => {
            let mut block = section(text);
            block["block_id"] = json!(format!("home:task:{}", t.task_id));
            block["accessory"] = with_confirm(
                button(SUBMIT, Mrkdwn::text("Submit"), value, true),
                "Submit this task?",
                &format!(
                    "Task {} goes on to review or is complete. You cannot change it afterwards.",
                    t.task_id
                ),
                "Submit",
            );
            vec![block]
        }
        Some(TaskAction::Review) => vec![
            section(text),
            json!({"type": "actions", "block_id": format!("home:review:{}", t.task_id),
            "elements": [
                with_confirm(button(APPROVE, Mrkdwn::text("Approve"), value.clone(), true),
                    "Approve this task?",
                    &format!("Task {} passes your review.", t.task_id), "Approve"),
                with_confirm(danger(button(SEND_BACK, Mrkdwn::text("Send back"), value, false)),
                    "Send this task back?",
                    &format!("Task {} goes back to its worker for more work.", t.task_id),
                    "Send back"),
            ]}),
        ],
        None => vec![section(text)],
    }
}

fn finished_item(finished: &[HomeTask], now: DateTime<Utc>) -> Option<Vec<Value>> {
    if finished.is_empty() {
        return None;
    }
    let lines = finished.iter().map(|t| {
        mrkdwn!(
            "• {} (task {}): {}, {}",
            t.task,
            t.task_id,
            status_text(t.status),
            ago(now, t.since)
        )
    });
    Some(vec![section(Mrkdwn::lines(lines))])
}

/// `09:00` (today in `tz`) or `Mon 09:00`, in time zone `tz` (UTC when unreadable).
fn local_time(at: DateTime<Utc>, tz: &str, now: DateTime<Utc>) -> String {
    let tz = crate::availability::parse_tz(tz).unwrap_or(chrono_tz::UTC);
    let local = at.with_timezone(&tz);
    if local.date_naive() == now.with_timezone(&tz).date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%a %H:%M").to_string()
    }
}

/// `7 min`, `3 h`, `more than a day`.
fn minutes_text(m: u32) -> String {
    match m {
        0..=89 => format!("{m} min"),
        90..=1439 => format!("{} h", (m + 30) / 60),
        _ => "a day or more".to_string(),
    }
}

fn admin_lists(admin: &AdminHome, now: DateTime<Utc>) -> Vec<List> {
    let requests = admin.requests.iter().map(|r| {
        let mut text = mrkdwn!(
            "*{}* (task {}){}\nBeing staffed since {}: {} offer(s) sent, {} declined",
            r.task,
            r.task_id,
            if r.review { " [Review]" } else { "" },
            ago(now, r.opened_at),
            r.offers,
            r.declined
        );
        if r.exhausted {
            text.push(&" · everyone certified has been asked");
        }
        if let Some(m) = r.expected_minutes {
            text.push(&mrkdwn!(" · expected staffed in about {}", minutes_text(m)));
        }
        if let Some((at, tz)) = &r.waiting_for_hours {
            text.push(&mrkdwn!(
                " · waiting for working hours: next at {} in {}",
                local_time(*at, tz, now),
                tz
            ));
        }
        vec![section(text)]
    });
    let waiting = admin.waiting.iter().map(|t| {
        let mut block = section(mrkdwn!(
            "*{}* (task {})\n{} since {}, nobody asked",
            t.task,
            t.task_id,
            status_text(t.status),
            ago(now, t.since)
        ));
        block["block_id"] = json!(format!("home:staff:{}", t.task_id));
        block["accessory"] = with_confirm(
            button(STAFF, Mrkdwn::text("Staff"), t.task_id.to_string(), true),
            "Start staffing?",
            &format!(
                "Offers for task {} go out to certified workers, a batch at a time.",
                t.task_id
            ),
            "Staff",
        );
        vec![block]
    });
    let in_progress = admin.in_progress.iter().map(|t| {
        let mut block = section(mrkdwn!(
            "*{}* (task {})\n{}: {} since {}",
            t.task,
            t.task_id,
            t.worker.as_deref().unwrap_or("?"),
            status_text(t.status),
            ago(now, t.since)
        ));
        block["block_id"] = json!(format!("home:restaff:{}", t.task_id));
        block["accessory"] = button(
            RESTAFF,
            Mrkdwn::text("Restaff"),
            t.task_id.to_string(),
            false,
        );
        vec![block]
    });
    vec![
        List {
            heading: "Needs staffing",
            items: waiting.chain(requests).collect(),
            total: admin.waiting_total + admin.requests_total,
            empty: "Every task has a worker or is being staffed.",
        },
        List {
            heading: "In progress",
            items: in_progress.collect(),
            total: admin.in_progress_total,
            empty: "Nobody is working on a task.",
        },
    ]
}

/// "Staffing at a glance": a heading and one line per workflow.
fn stats_blocks(stats: &[WorkflowStats]) -> Vec<Value> {
    let heading = json!({"type": "header", "text": {"type": "plain_text",
        "text": format!("Staffing at a glance (last {} days)", crate::home::STATS_DAYS)}});
    if stats.is_empty() {
        return vec![heading, context(Mrkdwn::text("No staffing requests."))];
    }
    let lines = stats.iter().map(|s| {
        let minutes = |d: Option<std::time::Duration>| {
            d.map_or("–".to_string(), |d| duration_text(d.as_secs()))
        };
        let rate = if s.offers > 0 {
            format!("{}%", s.accepted * 100 / s.offers)
        } else {
            "–".to_string()
        };
        mrkdwn!(
            "*{}*: {} opened, {} staffed · time to staff: median {}, p90 {} · offers accepted: {} of {} ({})",
            s.workflow,
            s.opened,
            s.staffed,
            minutes(s.median_to_staff),
            minutes(s.p90_to_staff),
            s.accepted,
            s.offers,
            rate
        )
    });
    vec![heading, section(Mrkdwn::lines(lines))]
}

/// `45s`, `12m`, `3h 20m`, `2d 4h`.
fn duration_text(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

fn danger(mut button: Value) -> Value {
    button["style"] = json!("danger");
    button
}

/// A button that asks before it acts (Block Kit's `confirm` object; plain texts, no user data).
fn with_confirm(mut button: Value, title: &str, text: &str, confirm: &str) -> Value {
    button["confirm"] = json!({
        "title": {"type": "plain_text", "text": title},
        "text": {"type": "plain_text", "text": text},
        "confirm": {"type": "plain_text", "text": confirm},
        "deny": {"type": "plain_text", "text": "Cancel"},
    });
    button
}

/// A modal, as `views.open` takes it.
pub fn modal_view(modal: &Modal) -> Value {
    match modal {
        Modal::Availability {
            weeks,
            working_hours,
            working_days,
        } => availability_modal(weeks, working_hours, working_days),
        Modal::Restaff {
            task_id,
            task,
            workers,
        } => {
            let option = |w: &String| {
                json!({"text": {"type": "plain_text", "text": cut(w, 75)},
                       "value": cut(w, 150)})
            };
            let options: Vec<Value> = workers.iter().take(100).map(option).collect();
            let mut select = json!({"type": "static_select", "action_id": RESTAFF_SELECT,
                "options": options});
            if let Some(first) = workers.first() {
                select["initial_option"] = option(first);
            }
            json!({
                "type": "modal",
                "callback_id": RESTAFF_CALLBACK,
                "private_metadata": task_id.to_string(),
                "title": {"type": "plain_text", "text": "Restaff a task"},
                "submit": {"type": "plain_text", "text": "Restaff"},
                "close": {"type": "plain_text", "text": "Cancel"},
                "blocks": [
                    section(mrkdwn!("*{}* (task {})", task, task_id)),
                    {"type": "input", "block_id": RESTAFF_INPUT,
                     "label": {"type": "plain_text", "text": "Worker to replace"},
                     "element": select},
                    context(Mrkdwn::text("They keep the task until another certified worker accepts it; then they are removed from the project channel and told so.")),
                ],
            })
        }
    }
}

/// The availability form: a number input per weekday of each week, then the worker's own
/// working hours and days.
fn availability_modal(
    weeks: &[(chrono::NaiveDate, [f64; 7])],
    working_hours: &str,
    working_days: &str,
) -> Value {
    let mut blocks = vec![context(Mrkdwn::text(
        "Hours you can work each day (0 to 24). Tasks that fit are assigned to you directly, up to the most hours a day an admin set for you.",
    ))];
    for (i, (week, hours)) in weeks.iter().enumerate() {
        let which = if i == 0 { "This week" } else { "Next week" };
        blocks.push(json!({"type": "header", "text": {"type": "plain_text",
            "text": format!("{which} (from {})", week.format("%a %-d %b"))}}));
        for (day, h) in crate::availability::WEEKDAYS.iter().zip(hours) {
            blocks.push(json!({
                "type": "input",
                "block_id": format!("avail:{week}:{}", crate::availability::day_name(*day)),
                "optional": true,
                "label": {"type": "plain_text", "text": day.to_string()},
                "element": {"type": "number_input", "action_id": AVAILABILITY_VALUE,
                    "is_decimal_allowed": true, "min_value": "0", "max_value": "24",
                    "initial_value": crate::availability::hours_text(*h)},
            }));
        }
    }
    let text_input = |block_id: &str, label: &str, value: &str, hint: &str| {
        let mut element = json!({"type": "plain_text_input", "action_id": AVAILABILITY_VALUE,
            "max_length": 40});
        if !value.is_empty() {
            element["initial_value"] = json!(value);
        }
        json!({"type": "input", "block_id": block_id, "optional": true,
            "label": {"type": "plain_text", "text": label},
            "hint": {"type": "plain_text", "text": hint},
            "element": element})
    };
    blocks.push(text_input(
        AVAILABILITY_HOURS,
        "Your working hours",
        working_hours,
        "Like 09:00-18:00, in your own time. Empty: the team's.",
    ));
    blocks.push(text_input(
        AVAILABILITY_DAYS,
        "Your working days",
        working_days,
        "Like mon-fri or mon,wed,fri. Empty: the team's.",
    ));
    json!({
        "type": "modal",
        "callback_id": AVAILABILITY_CALLBACK,
        "title": {"type": "plain_text", "text": "Your availability"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    })
}

/// `text` cut to `max` characters (plain texts in views have limits).
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::db::TaskStatus;
    use crate::home::{HomeTask, RequestLine, TaskLine};
    use crate::messages::OfferContent;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .expect("time")
    }

    fn offer(i: i64) -> HomeOffer {
        HomeOffer {
            inquiry_id: i,
            task_id: 100 + i,
            offered_at: now() - chrono::Duration::minutes(5),
            offer: OfferContent {
                workflow_description: "News".into(),
                project_description: "Q&A <draft>".into(),
                step_description: "Write".into(),
                review: false,
                details: Default::default(),
            },
        }
    }

    fn task(i: i64, action: Option<TaskAction>) -> HomeTask {
        HomeTask {
            task_id: i,
            task: "news (Q&A) - write".into(),
            step_description: "Write".into(),
            channel: Some("G0PROJ".into()),
            status: TaskStatus::Processing,
            since: now() - chrono::Duration::hours(2),
            action,
        }
    }

    fn line(i: i64) -> TaskLine {
        TaskLine {
            task_id: i,
            task: "news (Q&A) - write".into(),
            status: TaskStatus::AwaitingProcessing,
            since: now() - chrono::Duration::days(1),
            worker: Some("rob".into()),
        }
    }

    fn busy_admin_home() -> HomeData {
        HomeData {
            now: now(),
            notice: None,
            worker: Some("ada".into()),
            offers: (0..80).map(offer).collect(),
            tasks: (0..30).map(|i| task(i, Some(TaskAction::Review))).collect(),
            finished: (0..10).map(|i| task(i, None)).collect(),
            availability: None,
            admin: Some(AdminHome {
                requests: (0..50)
                    .map(|i| RequestLine {
                        task_id: i,
                        task: "t".into(),
                        review: false,
                        opened_at: now(),
                        offers: 3,
                        declined: 1,
                        exhausted: false,
                        expected_minutes: None,
                        waiting_for_hours: None,
                    })
                    .collect(),
                requests_total: 120,
                waiting: (0..50).map(line).collect(),
                waiting_total: 50,
                in_progress: (0..50).map(line).collect(),
                in_progress_total: 75,
                stats: Vec::new(),
            }),
        }
    }

    #[test]
    fn a_busy_home_keeps_to_100_blocks_most_urgent_first_and_says_what_is_left() {
        let mut home = busy_admin_home();
        home.notice = Some("Task 3 is now complete.".into());
        let view = home_view(&home);
        let blocks = view["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= MAX_HOME_BLOCKS, "{}", blocks.len());
        let text = view.to_string();
        // Offers come first and get the room they need; later lists say what they left out.
        assert!(text.contains("Task 3 is now complete."));
        assert!(text.contains("more not shown"), "{text}");
        for heading in [
            "Open offers",
            "Your tasks",
            "Needs staffing",
            "In progress",
            "Your recently finished tasks",
            "Staffing at a glance",
        ] {
            assert!(text.contains(heading), "{heading} missing");
        }
        assert!(text.contains("Q&amp;A &lt;draft&gt;"), "escaped");
    }

    #[test]
    fn ages_read_briefly() {
        let n = now();
        assert_eq!(ago(n, n), "just now");
        assert_eq!(ago(n, n - chrono::Duration::minutes(5)), "5m ago");
        assert_eq!(ago(n, n - chrono::Duration::hours(3)), "3h ago");
        assert_eq!(ago(n, n - chrono::Duration::days(2)), "2d ago");
        assert_eq!(duration_text(7500), "2h 5m");
    }
}
