//! What users see, pinned by snapshots (`tests/it/snapshots/`): every kind of message as Slack
//! receives it (method, channel, text, blocks; ids, timestamps and `ts` redacted), the replies
//! to `/staffbot`, and the command line's help texts. A change in what users see shows up as a
//! snapshot diff in review: update with `INSTA_UPDATE=always cargo test` (or `cargo insta
//! review`) and commit the `.snap` files with the change.

use chrono::Utc;
use insta::internals::Content;
use insta::{assert_json_snapshot, assert_snapshot};
use serde_json::{Map, Value, json};
use slack_sim::ApiCall;
use staffbot::db::entities::staffing_inquiry;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{assign, first_task, flow, step, submit, worker};
use crate::harness::{CHANNEL, Harness, TeamSpec, per_channel, team};

const STAFFING: &str = "G0STAFF";

/// A Slack call as its user sees it: the method and the body's fields (no token, no metadata,
/// which only staffbot reads).
fn seen(call: &ApiCall) -> Value {
    let mut out = Map::new();
    out.insert("method".into(), call.method.clone().into());
    if let Some(body) = call.body.as_object() {
        for (k, v) in body {
            if k != "metadata" && k != "token" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// `2026-11-27 09:00:00.123456+00:00` (fraction and offset optional).
const TIME: &str = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2})?";

/// `s` as snapshots show it: timestamps as `[time]`, then the standalone numbers in `ids` as
/// `[id]`.
fn redact_text(s: &str, ids: &[i64]) -> String {
    let times = regex::Regex::new(TIME).expect("regex");
    let s = times.replace_all(s, "[time]");
    if ids.is_empty() {
        return s.into_owned();
    }
    let alternatives: Vec<String> = ids.iter().map(i64::to_string).collect();
    let standalone = format!(r"\b(?:{})\b", alternatives.join("|"));
    let ids = regex::Regex::new(&standalone).expect("regex");
    ids.replace_all(&s, "[id]").into_owned()
}

/// Until the guard drops, snapshots hide what changes from run to run (an insta redaction of
/// the whole value): `ts`-like fields (`[ts]`), and in every other string the timestamps and
/// the standalone numbers in `ids`.
fn redactions(ids: &[i64]) -> insta::internals::SettingsBindDropGuard {
    let ids = ids.to_vec();
    let mut settings = insta::Settings::clone_current();
    settings.add_dynamic_redaction(".", move |value, _| hide(value, None, &ids));
    settings.bind_to_scope()
}

/// [`redactions`] of `value`, found under `key`.
fn hide(value: Content, key: Option<&str>, ids: &[i64]) -> Content {
    match value {
        Content::String(_) if key.is_some_and(|k| k.ends_with("ts")) => "[ts]".into(),
        Content::String(s) => redact_text(&s, ids).into(),
        Content::Seq(items) => {
            Content::Seq(items.into_iter().map(|v| hide(v, None, ids)).collect())
        }
        Content::Map(entries) => Content::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let name = k.as_str().map(str::to_string);
                    (k, hide(v, name.as_deref(), ids))
                })
                .collect(),
        ),
        other => other,
    }
}

/// Every task, project, staffing request and offer id (what [`redactions`] hides).
async fn ids(db: &sea_orm::DatabaseConnection) -> Vec<i64> {
    use crate::common::all;
    use staffbot::db::entities::{project, staffing_request, task};
    let mut ids: Vec<i64> = all::<task::Entity>(db).await.iter().map(|r| r.id).collect();
    ids.extend(all::<project::Entity>(db).await.iter().map(|r| r.id));
    ids.extend(
        all::<staffing_request::Entity>(db)
            .await
            .iter()
            .map(|r| r.id),
    );
    ids.extend(
        all::<staffing_inquiry::Entity>(db)
            .await
            .iter()
            .map(|r| r.id),
    );
    ids
}

/// The one message of `calls` sent to `channel`.
fn to<'a>(calls: &'a [ApiCall], channel: &str) -> &'a ApiCall {
    let mut found = calls.iter().filter(|c| c.body["channel"] == channel);
    let call = found
        .next()
        .unwrap_or_else(|| panic!("nothing to {channel}: {calls:#?}"));
    assert!(found.next().is_none(), "two messages to {channel}");
    call
}

#[test]
fn redaction_keeps_words_and_other_numbers() {
    assert_eq!(
        redact_text("task 12 of v12, 800 words; 12a 12", &[12]),
        "task [id] of v12, 800 words; 12a [id]"
    );
    assert_eq!(
        redact_text("Created at 2026-11-27 09:00:00.123456+00:00.", &[]),
        "Created at [time]."
    );
    let _redacted = redactions(&[7]);
    let shown = json!({"ts": "1.2", "message_ts": "3.4", "n": "7", "items": [{"ts": "5.6"}]});
    assert_json_snapshot!(shown, @r#"
    {
      "items": [
        {
          "ts": "[ts]"
        }
      ],
      "message_ts": "[ts]",
      "n": "[id]",
      "ts": "[ts]"
    }
    "#);
}

#[tokio::test]
async fn an_offer_its_answers_and_their_outcomes() {
    let mut t = TeamSpec::new()
        .worker("ann", 3)
        .worker("bo", 2)
        .worker("cy", 1)
        .start()
        .await;
    t.staff().await;
    let offers = t.offers(4).await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("offer_dm", seen(to(&offers, "U0ANN")));
    assert_json_snapshot!("all_offers_sent", seen(to(&offers, CHANNEL)));

    t.reject("bo").await;
    assert_json_snapshot!("offer_after_reject", seen(&t.h.next_message().await));
    t.click("cy", "offer_accept", "ann").await;
    t.accept("ann").await;
    let calls = t.h.next_messages(4).await;
    let in_channel = &per_channel(calls.clone())[CHANNEL];
    assert_json_snapshot!("channel_welcome", seen(&in_channel[0]));
    let picked_up = t.notice(crate::common::PICKED_UP, "ann");
    assert_eq!(crate::harness::text(&in_channel[1]), picked_up);
    let calls: Vec<ApiCall> = calls
        .into_iter()
        .filter(|c| c.body["channel"] != CHANNEL)
        .collect();
    assert_json_snapshot!("offer_after_accept_winner", seen(to(&calls, "DU0ANN")));
    assert_json_snapshot!("offer_taken", seen(to(&calls, "DU0CY")));
    t.reject("ann").await;
    let replies = t.h.response_texts(2).await;
    assert_eq!(replies.len(), 2);
    let posts = t.h.fake.response_posts();
    assert_json_snapshot!("ephemeral_not_yours", posts[0].clone());
    assert_json_snapshot!("ephemeral_cannot_reject_after_win", posts[1].clone());
    t.h.finish().await;
}

#[tokio::test]
async fn when_nobody_accepts_the_channel_is_told() {
    let mut t = team(&["ann"]).await;
    t.staff().await;
    t.offers(2).await;
    t.reject("ann").await;
    let calls = t.h.next_messages(2).await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("no_worker_accepted", seen(to(&calls, CHANNEL)));
    t.h.finish().await;
}

#[tokio::test]
async fn an_offer_to_review() {
    let mut t = TeamSpec::new()
        .worker("wri", 0)
        .worker("rev", 0)
        .auto_review()
        .start()
        .await;
    worker("rae").reviews("writer").add(t.h.db()).await;
    t.h.fake.add_user("U0RAE", "rae");
    t.assign("wri").await;
    submit(t.h.db(), t.task, "wri", SubmitKind::RequestedReview).await;
    t.h.next_post(CHANNEL).await; // "Task is awaiting review."
    t.h.next_post(CHANNEL).await; // "Got it!"
    let calls = t.offers(2).await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("offer_dm_review", seen(to(&calls, "U0RAE")));
    t.h.finish().await;
}

#[tokio::test]
async fn an_auto_staffed_task() {
    let mut t = TeamSpec::new().workers(&["ann"]).hours(2.0).start().await;
    let ann = t.worker("ann").await;
    let change = staffbot::workers::WorkerChange {
        max_autostaff_hours_per_day: Some(4.0),
        ..Default::default()
    };
    staffbot::workers::update(t.h.db(), "ann", change)
        .await
        .expect("updated");
    let week = staffbot::availability::week_of(Utc::now().date_naive());
    let hours = staffbot::availability::WeekHours([4.0; 7]);
    staffbot::db::availability::set(t.h.db(), ann.id, week, hours, Utc::now())
        .await
        .expect("set");
    let calls = t.staffed(3).await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("auto_staffed_dm", seen(to(&calls, "U0ANN")));
    t.h.finish().await;
}

#[tokio::test]
async fn an_offer_with_a_long_description() {
    let long = format!("{} end", "word ".repeat(900));
    let mut t = TeamSpec::new()
        .workers(&["ann"])
        .described(&long)
        .start()
        .await;
    let calls = t.staffed(2).await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("offer_dm_long_description", seen(to(&calls, "U0ANN")));
    t.h.finish().await;
}

#[tokio::test]
async fn an_offer_no_longer_available() {
    let mut t = team(&["ann"]).await;
    t.staffed(2).await;
    staffbot::lifecycle::abort_project(t.h.db(), t.project, &Default::default(), Utc::now())
        .await
        .expect("abort");
    t.accept("ann").await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("offer_no_longer_available", seen(&t.h.next_message().await));
    t.h.finish().await;
}

#[tokio::test]
async fn an_offer_slack_refuses_is_reported() {
    let mut t = TeamSpec::new()
        .workers(&["ann"])
        .staffing_channel(STAFFING)
        .start()
        .await;
    t.staff().await;
    t.h.fake.fail_next(
        "chat.postMessage",
        slack_sim::Fault::ApiError("invalid_blocks".into()),
        1,
    );
    let calls = t.offers(2).await;
    let _redacted = redactions(&[t.task]);
    assert_json_snapshot!("offer_undeliverable", seen(to(&calls, STAFFING)));
    t.h.finish().await;
}

#[tokio::test]
async fn reminders_of_one_and_of_several_offers() {
    let mut h = Harness::new().await;
    let steps = vec![
        step("one", "a").described("First thing"),
        step("two", "a").described("Second thing"),
    ];
    flow(&["a"], steps)
        .project(h.db(), "Story", Some(CHANNEL))
        .await;
    worker("ann").writes("a").add(h.db()).await;
    h.fake.add_channel(CHANNEL, "story", &[]);
    h.hold_loop_leases().await;
    h.start().await;
    // In the past, so that what the loops queue is due now.
    let now = Utc::now() - chrono::Duration::days(5);
    let tasks = crate::common::tasks(h.db()).await;
    for task in &tasks {
        crate::common::staff_at(h.db(), task.id, now).await;
    }
    h.next_messages(2).await; // "Got it!" twice
    h.tick(now, 1).await;
    h.next_messages(4).await; // two offers, two "all sent"
    let (lease, db) = (h.lease("reminders").await, h.db().clone());
    let (lease, db, day) = (&lease, &db, std::time::Duration::from_secs(86400));
    let remind = |days| async move {
        let at = now + chrono::Duration::days(days);
        let sent = staffbot::staffing::reminders::run_once(db, lease, day, false, at).await;
        sent.expect("reminders")
    };
    assert_eq!(remind(1).await, 1);
    let ids = ids(h.db()).await;
    let _redacted = redactions(&ids);
    let reminder = seen(&h.next_message().await);
    assert_json_snapshot!("reminder_several_offers", reminder);

    let offers = crate::common::all::<staffing_inquiry::Entity>(h.db()).await;
    h.click("ann", "offer_reject", &offers[0]).await;
    h.next_messages(2).await; // "Thanks for responding!" and "No worker has accepted"
    assert_eq!(remind(3).await, 1);
    assert_json_snapshot!("reminder_one_offer", seen(&h.next_message().await));
    h.finish().await;
}

#[tokio::test]
async fn the_unstaffed_task_warning() {
    let mut t = TeamSpec::new().staffing_channel(STAFFING).start().await;
    // An hour ago, so that what the loops queue is due now.
    let ago = Utc::now() - chrono::Duration::hours(1);
    crate::common::staff_at(t.h.db(), t.task, ago).await;
    t.h.next_post(CHANNEL).await; // "Got it!"
    t.h.tick(ago, 1).await;
    t.h.next_post(CHANNEL).await; // nobody to ask: the pool's end
    let lease = t.h.lease("warnings").await;
    let min = std::time::Duration::from_secs(1800);
    let at = Utc::now();
    let warned = staffbot::staffing::warnings::run_once(t.h.db(), &lease, Some(STAFFING), min, at);
    assert_eq!(warned.await.expect("warnings"), 1);
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("unstaffed_task_warning", seen(&t.h.next_message().await));
    t.h.finish().await;
}

#[tokio::test]
async fn restaff_notices() {
    let mut t = team(&["bob", "carl"]).await;
    worker("erin").admin().add(t.h.db()).await;
    t.assign("bob").await;
    let ack =
        t.h.reply("U0ERIN", &format!("restaff {} bob", t.task))
            .await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("slash_restaff", ack);
    assert_json_snapshot!("restaff_got_it", seen(&t.h.next_message().await));
    t.offers(2).await;
    t.accept("carl").await;
    let calls = t.h.next_messages(3).await;
    assert_json_snapshot!("restaff_removed_from_task", seen(to(&calls, "U0BOB")));
    t.h.finish().await;
}

/// A status notice as the project channel shows it (mentioning the worker) and its copy in the
/// notifications channel (linking the project channel).
#[tokio::test]
async fn a_status_notice_and_its_copy() {
    const NOTES: &str = "G0NOTES";
    let mut t = TeamSpec::new()
        .workers(&["bob"])
        .described("Mayor <race> & co")
        .notifications_channel(NOTES)
        .start()
        .await;
    let bob = t.worker("bob").await;
    let notices = t.h.config.notices();
    staffbot::lifecycle::assign_task(t.h.db(), t.task, &bob, &notices, Utc::now())
        .await
        .expect("assigned");
    let calls = per_channel(t.h.next_messages(3).await);
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    assert_json_snapshot!("status_notice", seen(&calls[CHANNEL][1]));
    assert_json_snapshot!("status_notice_copy", seen(&calls[NOTES][0]));
    t.h.finish().await;
}

/// `/staffbot <text>` as `user`: the ephemeral reply, with `ids` redacted.
async fn reply(h: &Harness, user: &str, text: &str) -> Value {
    h.reply(user, text).await
}

#[tokio::test]
async fn slash_command_replies() {
    let mut t = team(&["bob"]).await;
    worker("erin").admin().add(t.h.db()).await;
    let ids = ids(t.h.db()).await;
    let _redacted = redactions(&ids);
    let (h, task) = (&t.h, t.task);
    let staff = format!("staff {task}");
    assert_json_snapshot!("slash_help", reply(h, "U0ERIN", "help").await);
    assert_json_snapshot!(
        "slash_unknown_command",
        reply(h, "U0ERIN", "dance <&>").await
    );
    assert_json_snapshot!("slash_staff", reply(h, "U0ERIN", &staff).await);
    assert_json_snapshot!(
        "slash_staff_unknown_task",
        reply(h, "U0ERIN", "staff 999").await
    );
    let zed = format!("restaff {task} zed");
    assert_json_snapshot!(
        "slash_restaff_unknown_worker",
        reply(h, "U0ERIN", &zed).await
    );
    let bob = format!("restaff {task} bob");
    assert_json_snapshot!("slash_restaff_not_assigned", reply(h, "U0ERIN", &bob).await);
    // A worker who is not an admin may not staff, but their `help` lists what they may use.
    assert_json_snapshot!("slash_not_authorized", reply(h, "U0BOB", &staff).await);
    assert_json_snapshot!("slash_help_worker", reply(h, "U0BOB", "help").await);
    let id = h
        .fake
        .send_envelope(json!({"envelope_id": "e-bad", "type": "slash_commands",
        "accepts_response_payload": true, "payload": "garbage"}))
        .await;
    assert_json_snapshot!("slash_unreadable", h.ack(&id).await.payload);
    t.h.next_post(CHANNEL).await; // "Got it!"
    t.assign("bob").await;
    let wrong_status = reply(&t.h, "U0ERIN", &staff).await;
    assert_json_snapshot!("slash_staff_wrong_status", wrong_status);
    t.h.finish().await;
}

#[tokio::test]
async fn a_sanity_check_alert() {
    let mut h = Harness::new().await;
    let handler = json!({"handlers": [{"type": "slack_project_channel", "message": "Draft is late", "steps": ["draft"]}]});
    let checks = json!({
        "sanity_check_function": {"path": "staffbot.sanity.always", "kwargs": {"checks": ["late"]}},
        "check_configurations": {"late": handler}});
    let wf = flow(&["writer"], vec![step("draft", "writer")]).with("sanity_checks", checks);
    wf.project(h.db(), "Story", Some(CHANNEL)).await;
    worker("zed").writes("writer").add(h.db()).await;
    h.fake.add_channel(CHANNEL, "story", &[]);
    assign(h.db(), first_task(h.db()).await, "zed").await;
    h.hold_loop_leases().await;
    h.start().await;
    h.next_post(CHANNEL).await; // the welcome
    h.next_post(CHANNEL).await; // the status notice
    let lease = h.lease("sanity").await;
    let report = staffbot::sanity::run_once(h.db(), &lease, Utc::now())
        .await
        .expect("run");
    assert_eq!(report.messages, 1);
    let _redacted = redactions(&[]);
    assert_json_snapshot!("sanity_alert", seen(&h.next_message().await));
    h.finish().await;
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

fn help(args: &[&str]) -> String {
    let out = assert_cmd::Command::cargo_bin("staffbot")
        .expect("binary built")
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .expect("runs");
    assert!(out.status.success(), "{args:?} --help: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `staffbot --help` and every subcommand's, found by walking the help texts themselves.
#[test]
fn command_line_help_texts() {
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen_commands = 0;
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        for sub in subcommands(&text) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
        let name = std::iter::once("help")
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join("_");
        assert_snapshot!(format!("cli_{name}"), text);
        seen_commands += 1;
    }
    assert!(seen_commands >= 20, "only {seen_commands} help texts");
}

/// The App Home as Slack receives it (`views.publish`'s view): a worker's, an admin's, the
/// restaff form, and `/staffbot tasks`. Pure renderings of fixed data (the flows that lead to
/// them are in `tests/it/home.rs`).
#[test]
fn the_app_home_and_the_restaff_form() {
    use staffbot::availability::WeekHours;
    use staffbot::db::TaskStatus;
    use staffbot::home::{
        AdminHome, HomeAvailability, HomeData, HomeOffer, HomeTask, RequestLine, TaskAction,
        TaskLine, WorkflowStats,
    };
    use staffbot::messages::{Modal, OfferContent};
    use staffbot::slack::render::{home, tasks_message};

    let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 2, 12, 0, 0).unwrap();
    let ago = |minutes: i64| now - chrono::Duration::minutes(minutes);
    let task = |id, step: &str, status, since, action| HomeTask {
        task_id: id,
        task: format!("news (Mayor <race>) - {step}"),
        step_description: format!("{step} the story"),
        channel: Some("G0PROJ".into()),
        status,
        since,
        action,
    };
    let worker = HomeData {
        now,
        notice: Some("Task 12 is now waiting for a reviewer.".into()),
        worker: Some("ann".into()),
        offers: vec![HomeOffer {
            inquiry_id: 7,
            task_id: 14,
            offered_at: ago(5),
            offer: OfferContent {
                workflow_description: "Newsroom".into(),
                project_description: "Mayor <race>".into(),
                step_description: "Edit the story".into(),
                review: true,
                details: "About 800 words".into(),
            },
        }],
        tasks: vec![
            task(
                9,
                "Write",
                TaskStatus::Processing,
                ago(120),
                Some(TaskAction::Submit),
            ),
            task(
                7,
                "Edit",
                TaskStatus::Reviewing,
                ago(1500),
                Some(TaskAction::Review),
            ),
        ],
        finished: vec![task(3, "report", TaskStatus::Complete, ago(4400), None)],
        availability: Some(HomeAvailability {
            weeks: vec![
                (
                    chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("a Monday"),
                    Some(WeekHours([4.0, 4.0, 2.5, 0.0, 6.0, 0.0, 0.0])),
                ),
                (
                    chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("a Monday"),
                    None,
                ),
            ],
            max_autostaff_hours_per_day: 4.0,
            working_hours: "08:00-16:00".into(),
            working_days: "mon,tue,wed,thu,fri".into(),
            own_hours: true,
            tz: Some("Europe/Berlin".into()),
            enforced: true,
        }),
        admin: None,
    };
    assert_json_snapshot!("home_worker", home::home_view(&worker));
    let (text, blocks) = tasks_message(&worker);
    assert_json_snapshot!(
        "slash_tasks",
        json!({"text": text.as_str(), "blocks": blocks})
    );
    let (text, blocks) = staffbot::slack::render::availability_message(&worker);
    assert_json_snapshot!(
        "slash_availability",
        json!({"text": text.as_str(), "blocks": blocks})
    );

    let line = |id, status, since, worker: Option<&str>| TaskLine {
        task_id: id,
        task: "news (Budget) - write".into(),
        status,
        since,
        worker: worker.map(str::to_string),
    };
    let admin = HomeData {
        notice: None,
        worker: Some("ada".into()),
        offers: Vec::new(),
        tasks: Vec::new(),
        finished: Vec::new(),
        admin: Some(AdminHome {
            requests: vec![
                RequestLine {
                    task_id: 18,
                    task: "news (Budget) - write".into(),
                    review: false,
                    opened_at: ago(40),
                    offers: 10,
                    declined: 4,
                    exhausted: true,
                    expected_minutes: None,
                    waiting_for_hours: None,
                },
                RequestLine {
                    task_id: 19,
                    task: "news (Budget) - edit".into(),
                    review: false,
                    opened_at: ago(30),
                    offers: 0,
                    declined: 0,
                    exhausted: false,
                    expected_minutes: None,
                    waiting_for_hours: Some((
                        chrono::DateTime::parse_from_rfc3339("2026-12-03T08:00:00Z")
                            .expect("a time")
                            .with_timezone(&chrono::Utc),
                        "Europe/Berlin".into(),
                    )),
                },
            ],
            requests_total: 1,
            waiting: vec![line(21, TaskStatus::AwaitingProcessing, ago(180), None)],
            waiting_total: 1,
            in_progress: vec![line(9, TaskStatus::Processing, ago(120), Some("rob"))],
            in_progress_total: 1,
            stats: vec![WorkflowStats {
                workflow: "news".into(),
                opened: 12,
                staffed: 10,
                median_to_staff: Some(std::time::Duration::from_secs(14 * 60)),
                p90_to_staff: Some(std::time::Duration::from_secs(7500)),
                offers: 41,
                accepted: 10,
            }],
        }),
        ..worker
    };
    assert_json_snapshot!("home_admin", home::home_view(&admin));
    let form = Modal::Restaff {
        task_id: 9,
        task: "news (Budget) - write".into(),
        workers: vec!["rob".into()],
    };
    assert_json_snapshot!("restaff_form", home::modal_view(&form));
    let form = Modal::Availability {
        weeks: vec![
            (
                chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("a Monday"),
                [4.0, 4.0, 2.5, 0.0, 6.0, 0.0, 0.0],
            ),
            (
                chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("a Monday"),
                [0.0; 7],
            ),
        ],
        working_hours: "08:00-16:00".into(),
        working_days: String::new(),
    };
    assert_json_snapshot!("availability_form", home::modal_view(&form));
}
