//! `staffbot simulate`: staffbot's own staffing engine in simulated time, against a population
//! of simulated workers (design.md §9). It opens a fresh database, loads one workflow per kind of
//! task, adds the workers, and advances an injected clock event by event: task arrivals (a
//! project whose step staffs itself, as `staffbot_autoassign` does), staffing rounds
//! ([`crate::staffing::batch::run_once`]), reminders, and each simulated worker's answer, given
//! through [`crate::staffing::respond::respond`], the entry a button click takes. No Slack: the
//! outbox rows are read as the messages people would see, and marked delivered.
//!
//! Deterministic for a seed: the workers, the arrivals and every answer are drawn from RNGs
//! seeded from it, and the staffing rounds get their own seeded RNG.

pub mod population;
pub mod report;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::db;
use crate::error::Error;
use crate::staffing::batch::{BatchSettings, run_once_with as batch_round};
use crate::staffing::policy::Policy;
use crate::staffing::respond::{ClickOutcome, Responder, respond};
use crate::workflow::definition::{VersionFile, parse};
use population::{Population, SimWorker, arrivals, draw_workers};
pub use report::{PolicyReport, Report};

/// How the engine is set for a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The staffing round's settings (`staffbot.worker_batch_size`, `batch_frequency`,
    /// `max_open_tasks_per_worker`, `tie_break`, working hours, auto-staffing); email is off.
    pub batch: BatchSettings,
    /// `staffbot.reminder_interval`.
    pub reminder_interval: Duration,
    /// Overrides the file's `[simulation] days`.
    pub days: Option<u32>,
    /// Overrides the file's `[simulation] seed`.
    pub seed: Option<u64>,
    /// `[staffbot.adaptive]`.
    pub adaptive: crate::config::AdaptiveSettings,
}

/// The policies `simulate` knows (`staffbot.policy`).
pub const POLICIES: &[&str] = &["orchestra", "adaptive"];

/// What happened to one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    pub arrived: DateTime<Utc>,
    pub staffed: Option<DateTime<Utc>>,
    /// Offers sent for it.
    pub offers: usize,
    /// Of them, offers that reached their worker outside their working hours.
    pub offers_outside_hours: usize,
}

/// One policy's run: every task's outcome and every worker's wins.
#[derive(Debug, Clone)]
pub struct Run {
    pub policy: String,
    pub tasks: Vec<TaskOutcome>,
    /// Tasks won, per worker (every worker, in population order).
    pub wins: Vec<u32>,
}

/// A simulated event, ordered by time, then kind (arrivals before rounds before answers), then
/// a sequence number (so that equal times keep their order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival {
        kind: usize,
    },
    Round,
    Answer {
        inquiry: i64,
        worker: usize,
        accept_draw: u64,
    },
    /// The winner of `task` is done with it (`busy_after_win_hours` after winning) and submits it.
    Done {
        task: i64,
        worker: usize,
    },
}

/// The project channel every simulated project has.
const SIM_CHANNEL: &str = "C0SIMULATED";

/// The staffing tick's cadence when requests are open (the daemon's `loops.tick_interval`
/// default).
const TICK: chrono::Duration = chrono::Duration::seconds(10);

/// Runs the population once under `policy` on a fresh database at `database_url` (migrations
/// applied), and returns what happened.
pub async fn run_policy(
    population: &Population,
    name: &str,
    settings: &Settings,
    database_url: &str,
) -> Result<Run, anyhow::Error> {
    if !POLICIES.contains(&name) {
        anyhow::bail!(
            "unknown policy {name:?}; the policies are: {}",
            POLICIES.join(", ")
        );
    }
    let db = db::connect_and_migrate(database_url).await?;
    let seed = settings.seed.unwrap_or(population.simulation.seed);
    let mut population = population.clone();
    if let Some(days) = settings.days {
        population.simulation.days = days;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let workers = draw_workers(&population, &mut rng);
    let arrivals = arrivals(&population, &mut rng);
    let start = population.simulation.start;
    let versions = load_workflows(&db, &population, start).await?;
    add_workers(&db, &population, &workers, start).await?;
    set_availability(&db, &population, &workers, start).await?;
    let policy = match name {
        "adaptive" => Policy::Adaptive(settings.adaptive),
        _ => Policy::Orchestra,
    };
    let mut sim = Sim {
        db,
        policy,
        workers,
        settings: settings.clone(),
        versions,
        answers: StdRng::seed_from_u64(seed ^ 0x5eed_a115),
        rounds: StdRng::seed_from_u64(seed ^ 0x0b47_c4e5),
        queue: BinaryHeap::new(),
        seq: 0,
        tasks: BTreeMap::new(),
        inquiries: HashMap::new(),
        busy_until: HashMap::new(),
        outbox_seen: 0,
        open: 0,
        rounds_queued: BTreeSet::new(),
        next_reminders: start,
    };
    for (at, kind) in arrivals {
        sim.push(at, Event::Arrival { kind });
    }
    sim.run().await?;
    let mut wins = vec![0u32; sim.workers.len()];
    for t in sim.tasks.values() {
        if let Some((_, w)) = t.winner {
            wins[w] += 1;
        }
    }
    let tasks = sim.tasks.into_values().map(|t| t.outcome).collect();
    sim.db.close().await.ok();
    Ok(Run {
        policy: name.to_string(),
        tasks,
        wins,
    })
}

/// A task of the run, as the simulator follows it.
struct SimTask {
    outcome: TaskOutcome,
    /// When it was won, and by whom (index into the workers).
    winner: Option<(DateTime<Utc>, usize)>,
}

struct Sim {
    db: DatabaseConnection,
    policy: Policy,
    workers: Vec<SimWorker>,
    settings: Settings,
    /// The workflow version of each kind of task.
    versions: Vec<db::entities::workflow_version::Model>,
    /// Draws the workers' answers.
    answers: StdRng,
    /// The staffing rounds' RNG (ties among equal priorities).
    rounds: StdRng,
    queue: BinaryHeap<Reverse<(DateTime<Utc>, u64, Event)>>,
    seq: u64,
    /// By task id.
    tasks: BTreeMap<i64, SimTask>,
    /// Offer id → (task id, worker index).
    inquiries: HashMap<i64, (i64, usize)>,
    /// Worker index → declines every offer until then.
    busy_until: HashMap<usize, DateTime<Utc>>,
    /// The last outbox row read.
    outbox_seen: i64,
    /// Tasks not staffed yet.
    open: usize,
    /// The staffing rounds queued.
    rounds_queued: BTreeSet<DateTime<Utc>>,
    next_reminders: DateTime<Utc>,
}

impl Sim {
    fn push(&mut self, at: DateTime<Utc>, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    /// Queues the staffing round that finds the next request due (the daemon's tick finds a
    /// due request within `loops.tick_interval`), unless one is queued by then already.
    async fn schedule_round(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        let frequency = chrono::Duration::from_std(self.settings.batch.frequency).unwrap_or(TICK);
        let Some(due) = db::requests::next_batch_due(&self.db, frequency).await? else {
            return Ok(());
        };
        let at = if due <= now { now + TICK } else { due };
        if self.rounds_queued.range(..=at).next().is_some() {
            return Ok(());
        }
        self.rounds_queued.insert(at);
        self.push(at, Event::Round);
        Ok(())
    }

    async fn run(&mut self) -> Result<(), anyhow::Error> {
        let staffing = lease(&self.db, "staffing").await?;
        let reminders = lease(&self.db, "reminders").await?;
        while let Some(Reverse((now, _, event))) = self.queue.pop() {
            match event {
                Event::Arrival { kind } => self.arrive(kind, now).await?,
                Event::Round => {
                    self.rounds_queued.remove(&now);
                    let settings = BatchSettings {
                        email: false,
                        ..self.settings.batch.clone()
                    };
                    batch_round(
                        &self.db,
                        &staffing,
                        settings,
                        self.policy,
                        now,
                        &mut self.rounds,
                    )
                    .await?;
                    if now >= self.next_reminders {
                        crate::staffing::reminders::run_once_with_hours(
                            &self.db,
                            &reminders,
                            self.settings.reminder_interval,
                            false,
                            self.settings.batch.working,
                            now,
                        )
                        .await?;
                        self.next_reminders = now + chrono::Duration::hours(1);
                    }
                    self.deliver(now).await?;
                    self.schedule_round(now).await?;
                }
                Event::Answer {
                    inquiry,
                    worker,
                    accept_draw,
                } => self.answer(inquiry, worker, accept_draw, now).await?,
                Event::Done { task, worker } => self.done(task, worker, now).await?,
            }
        }
        Ok(())
    }

    /// A task arrives: a project on its kind's workflow, whose one step staffs itself.
    async fn arrive(&mut self, kind: usize, now: DateTime<Utc>) -> Result<(), Error> {
        let Some(version) = self.versions.get(kind) else {
            return Ok(());
        };
        let n = self.tasks.len() + 1;
        let tx = db::begin_write(&self.db).await?;
        let created = crate::lifecycle::create_project(
            &tx,
            version,
            &format!("Simulated task {n}"),
            0,
            // A channel, as real projects have: its posts are outbox rows like any other.
            Some(SIM_CHANNEL.to_string()),
            &Default::default(),
            now,
        )
        .await;
        let project = db::settle(tx, created).await?;
        for task in db::tasks::of_project(&self.db, project).await? {
            self.tasks.insert(
                task.id,
                SimTask {
                    outcome: TaskOutcome {
                        arrived: now,
                        staffed: None,
                        offers: 0,
                        offers_outside_hours: 0,
                    },
                    winner: None,
                },
            );
            self.open += 1;
        }
        self.schedule_round(now).await
    }

    /// Reads the outbox rows queued since the last look, as the messages people see: each
    /// offer reaches its worker now, who decides when (and whether) to answer. Every row is
    /// then marked delivered.
    async fn deliver(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        let rows = db::outbox::queued_after(&self.db, self.outbox_seen).await?;
        let Some(last) = rows.last().map(|(id, _)| *id) else {
            return Ok(());
        };
        let offers: Vec<i64> = rows
            .iter()
            .filter_map(|(_, key)| key.strip_prefix("offer:")?.parse().ok())
            .collect();
        // Tasks auto-staffed by availability: their worker has them with no offer.
        let auto: Vec<i64> = rows
            .iter()
            .filter_map(|(_, key)| key.strip_prefix("auto-staffed:")?.parse().ok())
            .collect();
        for (_, task, worker) in db::offers::owners(&self.db, &auto).await? {
            if let Some(w) = self.workers.iter().position(|x| x.username == worker) {
                self.won(task, w, now);
            }
        }
        for (inquiry, task, worker) in db::offers::owners(&self.db, &offers).await? {
            let Some(w) = self.workers.iter().position(|x| x.username == worker) else {
                continue;
            };
            self.inquiries.insert(inquiry, (task, w));
            if let Some(t) = self.tasks.get_mut(&task) {
                t.outcome.offers += 1;
                if !self.workers[w].is_working(now) {
                    t.outcome.offers_outside_hours += 1;
                }
            }
            let worker = &self.workers[w];
            if let Some(at) = worker.answer_at(now, &mut self.answers) {
                let accept_draw = rand::Rng::random::<u64>(&mut self.answers);
                self.push(
                    at,
                    Event::Answer {
                        inquiry,
                        worker: w,
                        accept_draw,
                    },
                );
            }
        }
        db::outbox::mark_sent_up_to(&self.db, last, now).await?;
        self.outbox_seen = last;
        Ok(())
    }

    /// A worker answers an offer, as a click would.
    async fn answer(
        &mut self,
        inquiry: i64,
        w: usize,
        accept_draw: u64,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let worker = &self.workers[w];
        let busy = self.busy_until.get(&w).is_some_and(|until| *until > now);
        let accept = !busy && (accept_draw as f64 / u64::MAX as f64) < worker.p_accept;
        let slack_id = worker.slack_id.clone();
        let tx = db::begin_write(&self.db).await?;
        let answered = respond(
            &tx,
            inquiry,
            Responder::Slack(&slack_id),
            accept,
            &Default::default(),
            now,
        )
        .await;
        let outcome = db::settle(tx, answered).await?;
        if outcome == ClickOutcome::Won
            && let Some(&(task, _)) = self.inquiries.get(&inquiry)
        {
            self.won(task, w, now);
        }
        // The DM updates and notices it queued are delivered at once.
        self.deliver(now).await
    }
}

impl Sim {
    /// Worker `w` has `task` (an offer accepted, or auto-staffed): it is staffed now, and they
    /// are busy with it for a while.
    fn won(&mut self, task: i64, w: usize, now: DateTime<Utc>) {
        let Some(t) = self.tasks.get_mut(&task) else {
            return;
        };
        if t.winner.is_some() {
            return;
        }
        t.winner = Some((now, w));
        t.outcome.staffed = Some(now);
        self.open = self.open.saturating_sub(1);
        let busy_for = self.workers[w].busy_after_win;
        self.busy_until.insert(w, now + busy_for);
        self.push(now + busy_for, Event::Done { task, worker: w });
    }

    /// The winner submits the task: it completes (no review), and the worker holds it no more.
    async fn done(&mut self, task: i64, w: usize, now: DateTime<Utc>) -> Result<(), Error> {
        let username = self.workers[w].username.clone();
        let Some(worker) = db::workers::by_username(&self.db, &username).await? else {
            return Ok(());
        };
        let tx = db::begin_write(&self.db).await?;
        let submitted = crate::lifecycle::submit(
            &tx,
            task,
            &worker,
            crate::workflow::rules::SubmitKind::RequestedReview,
            &Default::default(),
            now,
            &mut self.rounds,
        )
        .await;
        db::settle(tx, submitted).await?;
        self.deliver(now).await
    }
}

async fn lease(
    db: &DatabaseConnection,
    name: &str,
) -> Result<crate::lease::LeaseProof, anyhow::Error> {
    crate::lease::try_lease(db, name, "simulate", Duration::from_secs(7 * 86_400))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the {name} lease is held by another process"))
}

/// One workflow per kind of task (`sim_<step>`), whose one step requires the kind's
/// certification and staffs itself; returns each kind's version.
async fn load_workflows(
    db: &DatabaseConnection,
    p: &Population,
    now: DateTime<Utc>,
) -> Result<Vec<db::entities::workflow_version::Model>, anyhow::Error> {
    let mut versions = Vec::new();
    for (k, kind) in p.tasks.iter().enumerate() {
        let cert = p.certification_of(kind).map_err(anyhow::Error::msg)?;
        let slug = format!("sim_{k}_{}", kind.step);
        let workflow = json!({
            "slug": slug, "name": format!("Simulated {}", kind.step), "description": "",
            "certifications": [{"slug": cert, "name": cert, "description": ""}],
        });
        let version = json!({
            "slug": "v1", "name": "v1", "description": "",
            "steps": [{
                "slug": kind.step, "name": kind.step, "description": kind.step,
                "required_certifications": [cert],
                "assignment_policy": {"policy_function": {
                    "entry_level": {"path": "orchestra.bots.assignment_policies.staffbot_autoassign"}}},
                "review_policy": {"policy": "no_review"},
            }],
        });
        let mut version = version;
        if kind.assignable_hours > 0.0 {
            version["steps"][0]["assignable_hours_function"] =
                json!({"path": "staffbot.hours", "kwargs": {"hours": kind.assignable_hours}});
        }
        let def = parse(
            &workflow,
            &[VersionFile {
                dir: std::path::PathBuf::from(format!("population/{slug}/v1")),
                json: version,
                scripts: Default::default(),
            }],
        )
        .map_err(|e| anyhow::anyhow!("the simulated workflow {slug}: {}", e.0))?;
        crate::workflow::load::store(db, &def, false, now)
            .await
            .map_err(|e| anyhow::anyhow!("the simulated workflow {slug}: {e}"))?;
        let wf = db::workflows::by_slug(db, &slug)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the simulated workflow {slug} was not stored"))?;
        let v = db::workflows::newest_version(db, wf.id, None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the simulated workflow {slug} has no version"))?;
        versions.push(v);
    }
    Ok(versions)
}

/// Gives each worker their time zone and working hours (as an admin would set them: Slack is
/// not asked), and to those with `available_hours_per_day` that many hours every weekday of
/// every simulated week, auto-staffed up to as many.
async fn set_availability(
    db: &DatabaseConnection,
    p: &Population,
    workers: &[SimWorker],
    start: DateTime<Utc>,
) -> Result<(), anyhow::Error> {
    let weeks = (i64::from(p.simulation.days) + 13) / 7;
    for w in workers {
        let change = crate::workers::WorkerChange {
            tz: Some(Some(w.tz.name().to_string())),
            working_hours: Some(Some(format!(
                "{:02}:00-{:02}:00",
                w.working_hours[0].min(23),
                w.working_hours[1].min(24)
            ))),
            working_days: Some(Some("mon-fri".to_string())),
            max_autostaff_hours_per_day: Some(w.available_hours_per_day),
            ..Default::default()
        };
        crate::workers::update(db, &w.username, change).await?;
        if w.available_hours_per_day <= 0.0 {
            continue;
        }
        let id = db::workers::by_username(db, &w.username)
            .await?
            .map(|x| x.id)
            .ok_or_else(|| anyhow::anyhow!("worker {} was not stored", w.username))?;
        let h = w.available_hours_per_day;
        let first = crate::availability::week_of(start.date_naive());
        for k in 0..weeks {
            let week = first + chrono::Duration::days(7 * k);
            let hours = crate::availability::WeekHours([h, h, h, h, h, 0.0, 0.0]);
            db::availability::set(db, id, week, hours, start).await?;
        }
    }
    Ok(())
}

/// Adds every worker, certified (with their priority) in each simulated workflow that needs
/// their certification.
async fn add_workers(
    db: &DatabaseConnection,
    p: &Population,
    workers: &[SimWorker],
    now: DateTime<Utc>,
) -> Result<(), anyhow::Error> {
    for w in workers {
        let added = crate::workers::add(
            db,
            crate::workers::NewWorker {
                username: w.username.clone(),
                first_name: w.username.clone(),
                email: String::new(),
                slack_user_id: Some(w.slack_id.clone()),
                slack_username: Some(w.username.clone()),
                is_admin: false,
                notify: db::Notify::Slack,
            },
            now,
        )
        .await?;
        for (k, kind) in p.tasks.iter().enumerate() {
            if p.certification_of(kind).ok().as_deref() != Some(w.certification.as_str()) {
                continue;
            }
            let slug = format!("sim_{k}_{}", kind.step);
            let cert =
                crate::workers::find_certification(db, &w.certification, Some(&slug)).await?;
            let how = crate::workers::Certify {
                role: db::Role::EntryLevel,
                staffing_priority: w.priority,
                staffbot_enabled: true,
            };
            crate::workers::certify(db, &added, &cert, how, now).await?;
        }
    }
    Ok(())
}
