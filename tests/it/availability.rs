//! Availability and working hours (issue 28), each rule through the daemon against the fake
//! Slack (whose `users.info` tells each user's time zone), on both backends.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use staffbot::availability::{WeekHours, week_of};
use staffbot::db::entities::{staffing_inquiry, worker};

use crate::common::{AUTO_STAFFED, slack_id, welcome};
use crate::harness::{CHANNEL, Team, TeamSpec, WAIT};
use crate::home::{click_home, home_showing, open_home};

/// `name` may work `hours` every day of this week, and be auto-staffed up to `max` a day.
async fn available(t: &Team, name: &str, hours: f64, max: f64) {
    let w = t.worker(name).await;
    let change = staffbot::workers::WorkerChange {
        max_autostaff_hours_per_day: Some(max),
        ..Default::default()
    };
    staffbot::workers::update(t.h.db(), name, change)
        .await
        .expect("updated");
    let week = week_of(Utc::now().date_naive());
    staffbot::db::availability::set(t.h.db(), w.id, week, WeekHours([hours; 7]), Utc::now())
        .await
        .expect("availability set");
}

/// A new project of the team's workflow; its task's id.
async fn another_task(t: &Team, description: &str) -> i64 {
    let version = staffbot::db::projects::by_id(t.h.db(), t.project)
        .await
        .expect("q")
        .expect("the team's project")
        .workflow_version_id;
    let version = staffbot::db::entities::workflow_version::Entity::find_by_id(version)
        .one(t.h.db())
        .await
        .expect("q")
        .expect("its version");
    let project = crate::common::create_project(t.h.db(), &version, description, None).await;
    staffbot::db::tasks::of_project(t.h.db(), project)
        .await
        .expect("q")[0]
        .id
}

/// Who was asked about `task` (by offer, not auto-staffing).
async fn asked(t: &Team, task: i64) -> Vec<String> {
    let requests = staffbot::db::entities::staffing_request::Entity::find()
        .filter(staffbot::db::entities::staffing_request::Column::TaskId.eq(task))
        .all(t.h.db())
        .await
        .expect("q");
    let mut names = Vec::new();
    for r in requests {
        for i in staffing_inquiry::Entity::find()
            .filter(staffing_inquiry::Column::RequestId.eq(r.id))
            .filter(staffing_inquiry::Column::Method.eq("slack"))
            .all(t.h.db())
            .await
            .expect("q")
        {
            let w = worker::Entity::find_by_id(i.worker_id)
                .one(t.h.db())
                .await
                .expect("q")
                .expect("w");
            names.push(w.username);
        }
    }
    names.sort();
    names
}

#[tokio::test]
async fn a_worker_with_availability_is_assigned_with_no_offer_until_their_day_is_full() {
    let mut t = TeamSpec::new()
        .workers(&["ann", "bob"])
        .hours(2.0)
        .config(|c| c.staffbot.max_autostaff_tasks_per_day = 1)
        .start()
        .await;
    available(&t, "ann", 8.0, 8.0).await;
    t.staff().await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.auto_staffed, r.offers), (1, 0));
    let texts = t.h.texts(3).await;
    assert_eq!(texts[0], t.notice(AUTO_STAFFED, "ann"), "{texts:#?}");
    assert_eq!(texts[1], welcome(&slack_id("ann")), "{texts:#?}");
    assert!(
        texts[2].starts_with("Hello ann!\n\nYou've been assigned to a new task")
            && texts[2].contains("Details: About 800 words")
            && texts[2].contains(&format!("Task {} is yours", t.task)),
        "{texts:#?}"
    );
    assert!(asked(&t, t.task).await.is_empty(), "nobody was asked");
    // A second task: ann's day holds one task (max_autostaff_tasks_per_day): offers instead.
    let second = another_task(&t, "Budget").await;
    crate::common::staff(t.h.db(), second).await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.auto_staffed, r.offers), (0, 2));
    assert_eq!(asked(&t, second).await, ["ann", "bob"]);
    t.h.finish().await;
}

#[tokio::test]
async fn a_task_too_long_for_the_day_or_without_hours_is_offered() {
    // 3 hours do not fit in ann's 2.
    let mut t = TeamSpec::new()
        .workers(&["ann", "bob"])
        .hours(3.0)
        .start()
        .await;
    available(&t, "ann", 2.0, 8.0).await;
    t.staff().await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.auto_staffed, r.offers), (0, 2));
    assert_eq!(asked(&t, t.task).await, ["ann", "bob"]);
    t.h.finish().await;
    // A step with no assignable_hours_function: nobody is auto-staffed (Orchestra's rule).
    let mut t = TeamSpec::new().workers(&["ann", "bob"]).start().await;
    available(&t, "ann", 8.0, 8.0).await;
    t.staff().await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.auto_staffed, r.offers), (0, 2));
    t.h.finish().await;
}

/// A team's script gives the hours (run on a blocking thread once per request, its step's
/// function read once per round): 2 h fit ann's day, 3 h do not.
#[tokio::test]
async fn a_script_s_hours_decide_like_the_built_in_s() {
    for (script, auto_staffed, offers) in [("kwargs.base + 0.5", 1, 0), ("kwargs.base * 2.0", 0, 2)]
    {
        let mut t = TeamSpec::new()
            .workers(&["ann", "bob"])
            .hours_script(script)
            .start()
            .await;
        available(&t, "ann", 2.0, 8.0).await;
        t.staff().await;
        let r = t.h.tick(Utc::now(), 1).await;
        assert_eq!(
            (r.auto_staffed, r.offers),
            (auto_staffed, offers),
            "{script}"
        );
        if auto_staffed == 1 {
            t.h.texts(3).await;
        }
        t.h.finish().await;
    }
}

/// The time zone (`Etc/GMT…`) in which it is now `hour` o'clock, give or take the minutes.
fn zone_at(hour: u32) -> (String, i64) {
    use chrono::Timelike;
    let offset = (i64::from(hour) - i64::from(Utc::now().hour()) + 12).rem_euclid(24) - 12;
    let name = match offset {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    (name, offset * 3600)
}

/// A team of ann (for whom it is noon) and bob (for whom it is 3 a.m.), working every day
/// from 09:00 to 18:00, with working hours on; staffbot learnt their time zones from Slack.
/// The clock is the real one: the daemon delivers what the rounds queue.
async fn two_time_zones(urgent: Option<i32>) -> (Team, String) {
    let t = TeamSpec::new()
        .workers(&["ann", "bob"])
        .admin("ada")
        .config(move |c| {
            c.staffbot.working_hours_enforced = true;
            c.staffbot.working_days = staffbot::availability::Days::parse("mon-sun").expect("days");
            c.staffbot.urgent_priority = urgent;
        })
        .start()
        .await;
    let (noon, noon_offset) = zone_at(12);
    let (night, night_offset) = zone_at(3);
    t.h.fake.set_user_tz(&slack_id("ann"), &noon, noon_offset);
    t.h.fake.set_user_tz(&slack_id("bob"), &night, night_offset);
    // A round asks Slack for the time zones; the daemon's sender stores Slack's answers.
    t.h.tick(Utc::now(), 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ann = t.worker("ann").await.tz;
        let bob = t.worker("bob").await.tz;
        if ann.as_deref() == Some(noon.as_str()) && bob.as_deref() == Some(night.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "time zones not learnt: {ann:?} {bob:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (t, night)
}

#[tokio::test]
async fn a_worker_outside_working_hours_gets_nothing_until_their_morning() {
    let (mut t, night) = two_time_zones(None).await;
    t.staff().await;
    // Noon for ann, 3 a.m. for bob: only ann is asked, and the pool is not "all sent": bob is
    // still to come.
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.offers, r.exhausted, r.waiting), (1, 0, 0));
    let offer = t.h.next_message().await;
    assert_eq!(offer.body["channel"], slack_id("ann"));
    t.reject("ann").await;
    t.h.next_message().await; // her DM says thanks
    // Nobody left inside their hours: the request waits, and the admin's Home says until when.
    let later = Utc::now() + chrono::Duration::minutes(3);
    let r = t.h.tick(later, 1).await;
    assert_eq!((r.offers, r.exhausted, r.waiting), (0, 0, 1));
    let home = open_home(&t.h, "ada", "waiting for working hours").await;
    assert!(
        home.contains(&format!(
            "waiting for working hours: next at 09:00 in {night}"
        )),
        "{home}"
    );
    // Six hours on it is 09:00 for bob: he is asked, and everyone has been.
    let morning = Utc::now() + chrono::Duration::hours(6);
    let r = t.h.tick(morning, 1).await;
    assert_eq!((r.offers, r.exhausted, r.waiting), (1, 1, 0));
    assert_eq!(asked(&t, t.task).await, ["ann", "bob"]);
    t.h.finish().await;
}

#[tokio::test]
async fn an_urgent_project_ignores_working_hours() {
    // The team's project has priority 0: with urgent_priority = 0 it is urgent.
    let (mut t, _) = two_time_zones(Some(0)).await;
    t.staff().await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.offers, r.exhausted, r.waiting), (2, 1, 0));
    t.h.finish().await;
}

#[tokio::test]
async fn a_worker_at_the_open_task_cap_is_skipped_and_least_loaded_goes_first() {
    let mut t = TeamSpec::new()
        .workers(&["ann", "bob"])
        .batch(1)
        .config(|c| {
            c.staffbot.max_open_tasks_per_worker = Some(1);
            c.staffbot.tie_break = staffbot::config::TieBreak::LeastLoaded;
        })
        .start()
        .await;
    let other = another_task(&t, "Budget").await;
    crate::common::assign(t.h.db(), other, "ann").await;
    // ann holds a task: at the cap she is not asked, even with room in the batch.
    t.staff().await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!(r.offers, 1);
    assert_eq!(asked(&t, t.task).await, ["bob"]);
    t.h.finish().await;

    // No cap, least loaded first: four tasks, one offer each, all to bob (who took on nothing
    // this week), whatever the seed; at random all four would go to him once in 16.
    let t = TeamSpec::new()
        .workers(&["ann", "bob"])
        .batch(1)
        .config(|c| c.staffbot.tie_break = staffbot::config::TieBreak::LeastLoaded)
        .start()
        .await;
    let other = another_task(&t, "Budget").await;
    crate::common::assign(t.h.db(), other, "ann").await;
    let mut tasks = Vec::new();
    for name in ["A", "B", "C", "D"] {
        let task = another_task(&t, name).await;
        crate::common::staff(t.h.db(), task).await;
        tasks.push(task);
    }
    let r = t.h.tick(Utc::now(), 7).await;
    assert_eq!(r.offers, 4);
    for task in tasks {
        assert_eq!(asked(&t, task).await, ["bob"]);
    }
    t.h.finish().await;
}

/// The availability form's values: `hours` for each day of this week, and the working hours.
fn form(hours: [&str; 7], working_hours: &str) -> Value {
    let week = week_of(Utc::now().date_naive());
    let mut values = serde_json::Map::new();
    for (day, h) in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .zip(hours)
    {
        values.insert(
            format!("avail:{week}:{day}"),
            json!({"value": {"type": "number_input", "value": h}}),
        );
    }
    values.insert(
        "avail:hours".into(),
        json!({"value": {"type": "plain_text_input", "value": working_hours}}),
    );
    Value::Object(values)
}

#[tokio::test]
async fn availability_is_set_from_the_home_tab() {
    let t = TeamSpec::new().workers(&["ann"]).start().await;
    let home = open_home(&t.h, "ann", "Your availability").await;
    assert!(home.contains("*This week* (from"), "{home}");
    assert!(home.contains("not set"), "{home}");
    assert!(home.contains("Auto-staffing is off for you"), "{home}");
    click_home(&t.h, "ann", "availability_edit", "edit").await;
    assert!(t.h.fake.wait_for_modal(&slack_id("ann"), WAIT).await);
    let modal = t.h.fake.open_modal(&slack_id("ann")).expect("the form");
    assert_eq!(modal["title"]["text"], "Your availability");
    // 30 hours in a day: refused under that day, the form stays open, nothing stored.
    t.h.fake
        .submit_modal(&slack_id("ann"), form(["4", "30", "", "", "", "", ""], ""))
        .await;
    let errors =
        t.h.fake
            .modal_errors(&slack_id("ann"))
            .expect("errors shown");
    let week = week_of(Utc::now().date_naive());
    assert!(
        errors[format!("avail:{week}:tue")]
            .as_str()
            .is_some_and(|e| e.contains("between 0 and 24")),
        "{errors}"
    );
    t.h.fake
        .submit_modal(
            &slack_id("ann"),
            form(["4", "4", "2.5", "", "", "", ""], "8:00-16:00"),
        )
        .await;
    assert!(
        t.h.fake.open_modal(&slack_id("ann")).is_none(),
        "the form closed"
    );
    let home = home_showing(&t.h, "ann", "Your availability is saved.").await;
    assert!(home.contains("mon 4, tue 4, wed 2.5"), "{home}");
    assert!(
        home.contains("Working hours (yours): 08:00-16:00"),
        "{home}"
    );
    let ann = t.worker("ann").await;
    assert_eq!(ann.working_hours.as_deref(), Some("08:00-16:00"));
    // `/staffbot availability` shows the same, with its Edit button.
    let reply = t.h.reply(&slack_id("ann"), "availability").await;
    let text = reply["blocks"].to_string();
    assert!(text.contains("mon 4, tue 4, wed 2.5"), "{reply}");
    assert!(text.contains("availability_edit"), "{reply}");
    let _ = CHANNEL;
    t.h.finish().await;
}

#[tokio::test]
async fn reminders_wait_for_working_hours() {
    let (mut t, _) = two_time_zones(None).await;
    t.staff().await;
    t.h.tick(Utc::now(), 1).await; // ann's offer, at noon for her
    assert_eq!(t.h.next_message().await.body["channel"], slack_id("ann"));
    let lease = t.h.lease("reminders").await;
    let rule = t.h.config.staffbot.working_rule();
    let remind = |hours: i64| {
        let at = Utc::now() + chrono::Duration::hours(hours);
        staffbot::staffing::reminders::run_once_with_hours(
            t.h.db(),
            &lease,
            std::time::Duration::ZERO,
            false,
            rule,
            at,
        )
    };
    // 20:00 for ann: no reminder; 09:00 the next morning: her reminder.
    assert_eq!(remind(8).await.expect("round"), 0);
    assert_eq!(remind(21).await.expect("round"), 1);
    t.h.finish().await;
}

#[tokio::test]
async fn a_worker_with_a_far_id_is_auto_staffed() {
    // SQLite reads today's hours in ranges of worker ids (25,000 a read): "far" gets an id past
    // 60,000 there (after a placeholder row) and is auto-staffed like anyone.
    let mut t = TeamSpec::new().hours(2.0).start().await;
    crate::common::placeholder_worker(t.h.db(), 60_001).await;
    crate::common::worker("far")
        .certified("writer", staffbot::db::Role::EntryLevel, 1, true)
        .add(t.h.db())
        .await;
    t.h.fake.add_user(&slack_id("far"), "far");
    available(&t, "far", 8.0, 8.0).await;
    t.staff().await;
    let r = t.h.tick(Utc::now(), 1).await;
    assert_eq!((r.auto_staffed, r.offers), (1, 0));
    t.h.next_messages(3).await;
    t.h.finish().await;
}
