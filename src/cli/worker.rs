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
    let new = NewWorker {
        username: args.username,
        first_name: args.first_name,
        email: args.email,
        slack_user_id: args.slack_user_id,
        slack_username: args.slack_username,
        is_admin: args.admin,
        notify: args.notify.into(),
    };
    let w = workers::add(&app.db, new, now).await?;
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
    Ok(all
        .into_iter()
        .map(|w| WorkerJson {
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
