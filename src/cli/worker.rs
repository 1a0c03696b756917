//! `staffbot worker add|certify|list`.

use std::collections::HashMap;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::{App, print_json, print_table};
use crate::db::{Notify, Role, workers as store, workflows};
use crate::lifecycle::find_worker;
use crate::workers::{self, Certify, NewWorker};

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Add a worker
    Add(AddArgs),
    /// Change a worker's details (only the options given)
    Update(UpdateArgs),
    /// Certify a worker (again: updates priority and staffbot-enabled)
    Certify {
        username: String,
        certification: String,
        /// The workflow of the certification, when several workflows use that slug
        #[arg(long, value_name = "SLUG")]
        workflow: Option<String>,
        #[arg(long, value_enum, default_value_t = RoleArg::EntryLevel)]
        role: RoleArg,
        /// Higher is offered work first
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Keep the certification but never receive offers for it
        #[arg(long)]
        staffbot_disabled: bool,
    },
    /// List workers and their certifications
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show or set a worker's hours available per weekday for a week (auto-staffing)
    Availability(AvailabilityArgs),
}

/// `worker availability`.
#[derive(Debug, Args)]
pub struct AvailabilityArgs {
    username: String,
    /// Any day of the week to set or show (its Monday is used; default: this week)
    #[arg(long, value_name = "YYYY-MM-DD")]
    week: Option<chrono::NaiveDate>,
    /// Hours available on Monday (0–24); days not given keep their hours (0 for a new week)
    #[arg(long, value_name = "HOURS")]
    mon: Option<f64>,
    /// Hours available on Tuesday
    #[arg(long, value_name = "HOURS")]
    tue: Option<f64>,
    /// Hours available on Wednesday
    #[arg(long, value_name = "HOURS")]
    wed: Option<f64>,
    /// Hours available on Thursday
    #[arg(long, value_name = "HOURS")]
    thu: Option<f64>,
    /// Hours available on Friday
    #[arg(long, value_name = "HOURS")]
    fri: Option<f64>,
    /// Hours available on Saturday
    #[arg(long, value_name = "HOURS")]
    sat: Option<f64>,
    /// Hours available on Sunday
    #[arg(long, value_name = "HOURS")]
    sun: Option<f64>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// `worker add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    username: String,
    /// Slack member id (U…): needed to receive offers and join project channels
    #[arg(long, value_name = "U…")]
    slack_user_id: Option<String>,
    /// Slack display username (accepted by `restaff` as well as the username)
    #[arg(long)]
    slack_username: Option<String>,
    #[arg(long, default_value = "")]
    email: String,
    /// Used in offers ("Hello <first name>!")
    #[arg(long, default_value = "")]
    first_name: String,
    /// May use /staffbot
    #[arg(long)]
    admin: bool,
    /// How offers, reminders and task status notices reach the worker (`email` and `both`
    /// need --email, and email configured)
    #[arg(long, value_enum, default_value_t = NotifyArg::Slack)]
    notify: NotifyArg,
    /// Most hours a day they may be auto-staffed by their availability (default 0: never)
    #[arg(long, value_name = "HOURS")]
    max_autostaff_hours: Option<f64>,
}

/// `worker update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    username: String,
    /// Slack member id (U…); `none` removes it
    #[arg(long, value_name = "U…")]
    slack_user_id: Option<String>,
    #[arg(long)]
    slack_username: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    first_name: Option<String>,
    /// May use /staffbot (`--admin true|false`)
    #[arg(long, value_name = "BOOL")]
    admin: Option<bool>,
    /// How offers, reminders and task status notices reach the worker
    #[arg(long, value_enum)]
    notify: Option<NotifyArg>,
    /// Most hours a day they may be auto-staffed (0, the default, never)
    #[arg(long, value_name = "HOURS")]
    max_autostaff_hours: Option<f64>,
    /// Their time zone (`Europe/Berlin`), instead of Slack's; `none` uses Slack's again
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Their own working hours (`08:00-16:00`); `none` uses staffbot.working_hours
    #[arg(long, value_name = "HH:MM-HH:MM")]
    working_hours: Option<String>,
    /// Their own working days (`mon-thu`, `mon,wed,fri`); `none` uses staffbot.working_days
    #[arg(long, value_name = "DAYS")]
    working_days: Option<String>,
}

/// `--notify`: spelled as stored and as `worker list --json` prints it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NotifyArg {
    Slack,
    Email,
    Both,
}

impl From<NotifyArg> for Notify {
    fn from(n: NotifyArg) -> Notify {
        match n {
            NotifyArg::Slack => Notify::Slack,
            NotifyArg::Email => Notify::Email,
            NotifyArg::Both => Notify::Both,
        }
    }
}

/// Spelled as stored and as `worker list --json` prints it (`entry_level`); `entry-level`, what
/// clap derived before, still works.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    #[value(name = "entry_level", alias = "entry-level")]
    EntryLevel,
    Reviewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::EntryLevel => Role::EntryLevel,
            RoleArg::Reviewer => Role::Reviewer,
        }
    }
}

#[derive(Debug, Serialize)]
struct WorkerJson {
    id: i64,
    username: String,
    first_name: String,
    email: String,
    slack_user_id: Option<String>,
    slack_username: Option<String>,
    is_admin: bool,
    notify: Notify,
    /// Auto-staffing's most hours a day (0: never auto-staffed).
    max_autostaff_hours_per_day: f64,
    /// Hours available per weekday (`mon` … `sun`) this week and next; null: none set.
    availability: AvailabilityJson,
    /// Their time zone (null: not known yet; UTC is assumed), and whether an admin set it.
    tz: Option<String>,
    tz_set_by_admin: bool,
    /// Their working hours and days (their own, else the configured ones).
    working_hours: String,
    working_days: String,
    certifications: Vec<CertificationJson>,
    /// What the adaptive policy reads from the worker's past offers (README "Staffing policy").
    estimates: EstimatesJson,
}

/// One worker's evidence, as `staffbot.policy = "adaptive"` weighs it.
#[derive(Debug, Serialize)]
struct EstimatesJson {
    /// Offers counted (decayed by `half_life_days`; a silent offer counts by the share of the
    /// worker's answer delays it waited out).
    offers_counted: f64,
    /// P(answers an offer).
    p_answer: f64,
    /// P(accepts | answers).
    p_accept: f64,
    /// Median minutes to an answer.
    median_answer_minutes: f64,
    /// P(accepts a new offer within `horizon_minutes`), tasks in progress counted.
    p_accept_within_horizon: f64,
    offers_last_24h: u32,
    accepts_last_7d: u32,
    tasks_in_progress: u32,
}

impl EstimatesJson {
    fn of(e: &crate::staffing::policy::Evidence, horizon: chrono::Duration) -> EstimatesJson {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        EstimatesJson {
            offers_counted: round(e.chances),
            p_answer: round(e.p_answer()),
            p_accept: round(e.p_accept()),
            median_answer_minutes: round(e.median_delay_minutes),
            p_accept_within_horizon: round(e.p_accept_within(chrono::Duration::zero(), horizon)),
            offers_last_24h: e.offers_today,
            accepts_last_7d: e.accepts_this_week,
            tasks_in_progress: e.active,
        }
    }
}

#[derive(Debug, Serialize)]
struct CertificationJson {
    workflow: String,
    certification: String,
    role: Role,
    staffbot_enabled: bool,
    staffing_priority: i32,
}

pub async fn run(app: &App, command: WorkerCommand) -> anyhow::Result<()> {
    let now = app.clock.now();
    match command {
        WorkerCommand::Add(args) => add(app, args, now).await?,
        WorkerCommand::Update(args) => update(app, args).await?,
        WorkerCommand::Certify {
            username,
            certification,
            workflow,
            role,
            priority,
            staffbot_disabled,
        } => {
            let tx = crate::db::begin_write(&app.db).await?;
            let w = find_worker(&tx, &username).await?;
            let cert =
                workers::find_certification(&tx, &certification, workflow.as_deref()).await?;
            let row = workers::certify(
                &tx,
                &w,
                &cert,
                Certify {
                    role: role.into(),
                    staffing_priority: priority,
                    staffbot_enabled: !staffbot_disabled,
                },
                now,
            )
            .await?;
            tx.commit().await?;
            outln!(
                "certified {} for {} as {} (priority {}, staffbot {})",
                w.username,
                cert.slug,
                row.role,
                row.staffing_priority,
                if row.staffbot_enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            );
        }
        WorkerCommand::Availability(args) => availability(app, args, now).await?,
        WorkerCommand::List { json } => {
            let list = list(app, now).await?;
            if json {
                return print_json(&list);
            }
            print_workers(&list);
        }
    }
    Ok(())
}

/// `worker add`.
async fn add(app: &App, args: AddArgs, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
    if let Some(h) = args.max_autostaff_hours
        && !(0.0..=24.0).contains(&h)
    {
        anyhow::bail!("--max-autostaff-hours must be between 0 and 24 (not {h})");
    }
    let new = NewWorker {
        username: args.username,
        first_name: args.first_name,
        email: args.email,
        slack_user_id: args.slack_user_id,
        slack_username: args.slack_username,
        is_admin: args.admin,
        notify: args.notify.into(),
    };
    let mut w = workers::add(&app.db, new, now).await?;
    if let Some(hours) = args.max_autostaff_hours {
        let change = workers::WorkerChange {
            max_autostaff_hours_per_day: Some(hours),
            ..Default::default()
        };
        w = workers::update(&app.db, &w.username, change).await?;
    }
    outln!("added worker {} (id {})", w.username, w.id);
    warn_unreachable(app, &w);
    Ok(())
}

/// `worker update`.
async fn update(app: &App, args: UpdateArgs) -> anyhow::Result<()> {
    let change = workers::WorkerChange {
        slack_user_id: args
            .slack_user_id
            .map(|id| Some(id).filter(|id| id != "none")),
        slack_username: args.slack_username,
        email: args.email,
        first_name: args.first_name,
        is_admin: args.admin,
        notify: args.notify.map(Notify::from),
        max_autostaff_hours_per_day: args.max_autostaff_hours,
        tz: args.tz.map(none_clears),
        working_hours: args.working_hours.map(none_clears),
        working_days: args.working_days.map(none_clears),
    };
    let w = workers::update(&app.db, &args.username, change).await?;
    outln!(
        "updated worker {} (notify: {}, email: {}, Slack: {})",
        w.username,
        w.notify,
        if w.email.is_empty() { "-" } else { &w.email },
        w.slack_user_id.as_deref().unwrap_or("-")
    );
    warn_unreachable(app, &w);
    Ok(())
}

/// `none` clears a setting.
fn none_clears(value: String) -> Option<String> {
    Some(value).filter(|v| v != "none")
}

/// Hours per weekday of this week and next (as `worker list --json` and `worker availability
/// --json` print them).
#[derive(Debug, Serialize)]
struct AvailabilityJson {
    this_week: Option<WeekJson>,
    next_week: Option<WeekJson>,
}

#[derive(Debug, Serialize)]
struct WeekJson {
    /// The week's Monday.
    week: chrono::NaiveDate,
    mon: f64,
    tue: f64,
    wed: f64,
    thu: f64,
    fri: f64,
    sat: f64,
    sun: f64,
}

impl WeekJson {
    fn of(week: chrono::NaiveDate, h: &crate::availability::WeekHours) -> WeekJson {
        let [mon, tue, wed, thu, fri, sat, sun] = h.0;
        WeekJson {
            week,
            mon,
            tue,
            wed,
            thu,
            fri,
            sat,
            sun,
        }
    }
}

/// `worker availability`: sets the days given, then shows the week.
async fn availability(
    app: &App,
    args: AvailabilityArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    use crate::availability::{WeekHours, week_of};
    let w = find_worker(&app.db, &args.username).await?;
    let week = week_of(args.week.unwrap_or_else(|| now.date_naive()));
    let given = [
        args.mon, args.tue, args.wed, args.thu, args.fri, args.sat, args.sun,
    ];
    if given.iter().any(Option::is_some) {
        let current = crate::db::availability::of_worker(&app.db, w.id, &[week])
            .await?
            .pop()
            .and_then(|(_, h)| h)
            .unwrap_or_default();
        let mut hours = current.0;
        for (day, value) in given.iter().enumerate() {
            if let Some(h) = value {
                if !(0.0..=24.0).contains(h) {
                    let flag = crate::availability::day_name(crate::availability::WEEKDAYS[day]);
                    anyhow::bail!("--{flag}: {h} is not a number of hours between 0 and 24");
                }
                hours[day] = *h;
            }
        }
        crate::db::availability::set(&app.db, w.id, week, WeekHours(hours), now).await?;
        eprintln!("set {}'s availability for the week of {week}", w.username);
    }
    let hours = crate::db::availability::of_worker(&app.db, w.id, &[week])
        .await?
        .pop()
        .and_then(|(_, h)| h);
    if args.json {
        return print_json(&hours.as_ref().map(|h| WeekJson::of(week, h)));
    }
    match hours {
        Some(h) => outln!(
            "{} — week of {week}: {} (auto-staffed up to {} h a day)",
            w.username,
            h.summary(),
            crate::availability::hours_text(w.max_autostaff_hours_per_day)
        ),
        None => outln!("{} — week of {week}: no availability set", w.username),
    }
    if w.max_autostaff_hours_per_day <= 0.0 {
        eprintln!(
            "note: {} is never auto-staffed until `staffbot worker update {} --max-autostaff-hours N` (Orchestra's default is 0)",
            w.username, w.username
        );
    }
    Ok(())
}

/// `worker list` as a table.
fn print_workers(list: &[WorkerJson]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.username.clone(),
                w.slack_user_id.clone().unwrap_or_else(|| "-".into()),
                if w.is_admin { "yes" } else { "no" }.into(),
                w.certifications
                    .iter()
                    .map(|c| {
                        format!(
                            "{}/{}:{}(p{}{})",
                            c.workflow,
                            c.certification,
                            c.role,
                            c.staffing_priority,
                            if c.staffbot_enabled { "" } else { ", disabled" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    print_table(&["USERNAME", "SLACK", "ADMIN", "CERTIFICATIONS"], &rows);
}

async fn list(app: &App, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Vec<WorkerJson>> {
    let workflows: HashMap<i64, String> = workflows::all(&app.db)
        .await?
        .into_iter()
        .map(|w| (w.id, w.slug))
        .collect();
    let certs: HashMap<i64, (String, String)> = workflows::all_certifications(&app.db)
        .await?
        .into_iter()
        .map(|c| {
            let wf = workflows.get(&c.workflow_id).cloned().unwrap_or_default();
            (c.id, (wf, c.slug))
        })
        .collect();
    let mut by_worker: HashMap<i64, Vec<CertificationJson>> = HashMap::new();
    for wc in store::all_certifications(&app.db).await? {
        let (workflow, certification) =
            certs.get(&wc.certification_id).cloned().unwrap_or_default();
        by_worker
            .entry(wc.worker_id)
            .or_default()
            .push(CertificationJson {
                workflow,
                certification,
                role: wc.role,
                staffbot_enabled: wc.staffbot_enabled,
                staffing_priority: wc.staffing_priority,
            });
    }
    let all = store::all_by_username(&app.db).await?;
    let ids: Vec<i64> = all.iter().map(|w| w.id).collect();
    let adaptive = &app.config.staffbot.adaptive;
    let evidence =
        crate::staffing::batch::read_evidence(&app.db, &ids, adaptive.half_life_days, now).await?;
    let horizon = adaptive.horizon();
    let none = crate::staffing::policy::Evidence::default();
    let this_week = crate::availability::week_of(now.date_naive());
    let next_week = this_week + chrono::Duration::days(7);
    let weeks = [
        crate::db::availability::of_week(&app.db, this_week).await?,
        crate::db::availability::of_week(&app.db, next_week).await?,
    ];
    let rule = app.config.staffbot.working_rule();
    Ok(all
        .into_iter()
        .map(|w| WorkerJson {
            max_autostaff_hours_per_day: w.max_autostaff_hours_per_day,
            availability: AvailabilityJson {
                this_week: weeks[0].get(&w.id).map(|h| WeekJson::of(this_week, h)),
                next_week: weeks[1].get(&w.id).map(|h| WeekJson::of(next_week, h)),
            },
            working_hours: w
                .working_hours
                .clone()
                .unwrap_or_else(|| rule.hours.to_string()),
            working_days: w
                .working_days
                .clone()
                .unwrap_or_else(|| rule.days.to_string()),
            tz: w.tz.clone(),
            tz_set_by_admin: w.tz_set_by_admin,
            estimates: EstimatesJson::of(evidence.get(&w.id).unwrap_or(&none), horizon),
            certifications: by_worker.remove(&w.id).unwrap_or_default(),
            id: w.id,
            username: w.username,
            first_name: w.first_name,
            email: w.email,
            slack_user_id: w.slack_user_id,
            slack_username: w.slack_username,
            is_admin: w.is_admin,
            notify: w.notify,
        })
        .collect())
}

/// Says so when the worker's preference cannot be followed with this configuration.
fn warn_unreachable(app: &App, w: &crate::db::entities::worker::Model) {
    if w.notify.email() && !app.config.email.sending() {
        eprintln!(
            "note: email is not configured (email.smtp_url and email.from), so {} gets no email; {}",
            w.username,
            if w.slack_user_id.is_some() {
                "offers go to Slack until it is"
            } else {
                "with no Slack id either, they are not offered work"
            }
        );
    }
}
