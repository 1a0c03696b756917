//! The batching loop (behaviour §6.2–6.3 with design.md §8's fixes): open requests get a batch
//! of offers when they never had one or their last one is older than `batch_frequency`.
//!
//! Set-based: one query lists the due requests with everything the offers show, one query per
//! (step, role) reads the candidate pool, and each chunk of requests costs four statements
//! (exclusions, inquiries, outbox rows, the request updates) in a transaction of its own,
//! whatever the number of workers. Choosing among the pool happens in memory.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{ConnectionTrait, DbErr, TransactionSession, TransactionTrait};

use super::autostaff::{Availability, compute_task_hours};
use super::policy::{AdaptiveSettings, Evidence, Policy};
pub use super::pool::Pool;
use crate::availability::WorkingRule;
use crate::config::{NoticeSettings, TieBreak};
use crate::db::requests::{Candidate, RequestContext};
use crate::db::{self, RequestStatus, Role};
use crate::lease::LeaseProof;
use crate::messages::{Details, Message, OfferContent, Outgoing};

/// Requests handled in one transaction at most, and offers in one transaction at most (both
/// keep multi-row statements under every backend's bound-parameter limit and keep the write
/// lock short).
const CHUNK_REQUESTS: usize = 200;
const CHUNK_OFFERS: usize = 1000;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub requests: usize,
    pub offers: usize,
    pub exhausted: usize,
    /// Tasks assigned by availability, with no offer.
    pub auto_staffed: usize,
    /// Requests that sent nothing because everyone left is outside their working hours.
    pub waiting: usize,
}

impl BatchReport {
    /// Counts a request's batch, once written.
    fn count(&mut self, plan: &Plan<'_>) {
        self.requests += 1;
        self.offers += plan.chosen.len();
        self.exhausted += usize::from(plan.exhausted);
    }
}

/// Settings of the batching loop.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub batch_size: u32,
    pub frequency: std::time::Duration,
    /// Offers can be emailed (`email.smtp_url` and `email.from` are set): workers who prefer
    /// email get theirs by email.
    pub email: bool,
    /// `staffbot.max_open_tasks_per_worker`: a worker holding this many unfinished assignments
    /// is not asked.
    pub max_open_tasks: Option<u32>,
    /// `staffbot.tie_break`: the order among equal priorities under Orchestra's policy.
    pub tie_break: TieBreak,
    /// `staffbot.max_autostaff_tasks_per_day` (0: nobody is auto-staffed).
    pub max_autostaff_tasks_per_day: u32,
    /// Working hours (`staffbot.working_hours`, …; not enforced by default here).
    pub working: WorkingRule,
    /// The status notices of an auto-staffing (as for a won offer).
    pub notices: NoticeSettings,
}

impl Default for BatchSettings {
    /// No batch and no wait (callers set both), Orchestra's auto-staffing cap, working hours
    /// not enforced.
    fn default() -> Self {
        BatchSettings {
            batch_size: 0,
            frequency: std::time::Duration::ZERO,
            email: false,
            max_open_tasks: None,
            tie_break: TieBreak::Random,
            max_autostaff_tasks_per_day: 4,
            working: WorkingRule::default(),
            notices: NoticeSettings::default(),
        }
    }
}

impl BatchSettings {
    /// The staffing loop's settings from the configuration.
    pub fn of(config: &crate::config::Config) -> BatchSettings {
        let s = &config.staffbot;
        BatchSettings {
            batch_size: s.worker_batch_size,
            frequency: s.batch_frequency,
            email: config.email.sending(),
            max_open_tasks: s.max_open_tasks_per_worker,
            tie_break: s.tie_break,
            max_autostaff_tasks_per_day: s.max_autostaff_tasks_per_day,
            working: s.working_rule(),
            notices: config.notices(),
        }
    }
}

/// One round over every due request. Only the holder of the `staffing` lease may run it.
///
/// Set-based: one query lists the due requests; each (step, role) pool of candidates is read
/// once; then, per chunk of requests, one query reads who is excluded (asked already, on the
/// task already), and one transaction inserts the inquiries, the outbox rows and updates the
/// requests, each as one multi-row statement. The cost in statements does not grow with the
/// number of workers, and barely with the number of requests.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    settings: BatchSettings,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<BatchReport, crate::error::Error> {
    run_once_with(db, lease, settings, Policy::Orchestra, now, rng).await
}

/// [`run_once`] under `policy` (`staffbot.policy`).
pub async fn run_once_with<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    settings: BatchSettings,
    policy: Policy,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<BatchReport, crate::error::Error> {
    let cutoff = now - chrono::Duration::from_std(settings.frequency).unwrap_or_default();
    let due = db::requests::due_a_batch(db, cutoff).await?;
    let mut report = BatchReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    // Teams' descriptions are rendered here, once per request, off the async threads and with
    // no transaction open; the offers, and later clicks, read what is stored.
    let rendered = render_details(&due).await;
    // The task hours of steps that have an hours function, computed (and stored) once.
    let hours = compute_task_hours(db, &due).await?;
    let stored: Vec<(i64, f64)> = hours.iter().map(|(r, h)| (*r, *h)).collect();
    db::requests::set_task_hours(db, &stored).await?;
    let any_hours = due.iter().any(|r| r.task_hours(&hours).is_some());
    let mut availability =
        Availability::read(db, any_hours, settings.max_autostaff_tasks_per_day, now).await?;

    let pools = read_pools(db, &due, &settings, now).await?;
    let mut chooser = Chooser::new(db, policy, &settings, &pools, now).await?;
    let chunk_len = (CHUNK_OFFERS / chooser.per_request()).clamp(1, CHUNK_REQUESTS);
    for chunk in due.chunks(chunk_len) {
        let ids: Vec<i64> = chunk.iter().map(|r| r.request_id).collect();
        let excluded =
            db::requests::exclusions(db, &ids, super::respond::MAX_OFFER_FAILURES).await?;
        chooser.read_in_flight(db, &ids).await?;
        let empty = HashSet::new();
        let mut plans: Vec<Plan> = Vec::with_capacity(chunk.len());
        for request in chunk {
            let role = Role::for_counter(request.required_role_counter);
            let hours_apply = settings.working.applies_to(request.priority);
            let key = (request.step_id, role, hours_apply);
            let Some(pool) = pools.pools.get(&key) else {
                continue;
            };
            let excluded = excluded.get(&request.request_id).unwrap_or(&empty);
            // Availability first (Orchestra's order): a task that fits someone's day is theirs.
            if let Some(task_hours) = request.task_hours(&hours)
                && let Some(c) = availability.pick(key, pool, excluded, task_hours, rng)
            {
                let worker_id = c.worker_id;
                if auto_staff(db, lease, request.request_id, worker_id, &settings, now).await? {
                    availability.record(key, worker_id, task_hours);
                    report.auto_staffed += 1;
                    continue;
                }
            }
            let (chosen, mut exhausted) =
                chooser.choose(pool, request.request_id, excluded, now, rng);
            // Workers outside their hours are still to be asked: the pool is not exhausted,
            // and a round that asks nobody waits for the first of them to start.
            let later = pools.first_later(key, excluded);
            exhausted &= later.is_none();
            let waiting = later.filter(|_| chosen.is_empty()).cloned();
            report.waiting += usize::from(waiting.is_some());
            let fresh = rendered.get(&request.request_id);
            plans.push(Plan {
                request,
                chosen,
                exhausted,
                waiting,
                offer: request
                    .offer_content_with(fresh.cloned().unwrap_or_else(|| request.details())),
                store_details: fresh.is_some(),
            });
        }
        write_chunk(db, lease, &plans, settings.email, now).await?;
        for plan in &plans {
            report.count(plan);
        }
    }
    Ok(report)
}

/// Writes a chunk's batches in one transaction under the staffing lease.
async fn write_chunk<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    plans: &[Plan<'_>],
    email: bool,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    let tx = db::begin_write(db).await?;
    let written = async {
        lease.fence(&tx).await?;
        Ok::<_, crate::error::Error>(write_batches(&tx, plans, email, now).await?)
    }
    .await;
    db::settle(tx, written).await
}

/// A worker outside their working hours now, and when they start next.
#[derive(Debug, Clone)]
pub struct Later {
    pub worker_id: i64,
    pub next_start: DateTime<Utc>,
    /// Their time zone's name (how the admin's Home says when).
    pub tz: String,
}

/// The round's pools: per (step, role, working hours apply), and per (step, role) the
/// candidates left out for now because they are outside their working hours.
#[derive(Debug, Default)]
pub struct Pools {
    pub pools: HashMap<(i64, Role, bool), Pool>,
    pub off_hours: HashMap<(i64, Role), Vec<Later>>,
}

impl Pools {
    /// Of the candidates of pool `key` outside their working hours now (none when working
    /// hours do not apply to it), the first to start who is not `excluded`.
    fn first_later(&self, key: (i64, Role, bool), excluded: &HashSet<i64>) -> Option<&Later> {
        let (step, role, hours_apply) = key;
        if !hours_apply {
            return None;
        }
        self.off_hours
            .get(&(step, role))?
            .iter()
            .filter(|o| !excluded.contains(&o.worker_id))
            .min_by_key(|o| o.next_start)
    }

    /// Every candidate's worker id (each pool's).
    fn worker_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.pools.values().flat_map(Pool::worker_ids).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// One pool per (step, role) of the `due` requests: those who can be reached (email-only
/// workers need email to be on). A step without required certifications has no candidates
/// (Orchestra's rule). Where working hours apply to a request, its pool holds only those inside
/// their hours now; an urgent project's (or every one, when not enforced) holds everyone.
async fn read_pools<C: ConnectionTrait>(
    db: &C,
    due: &[RequestContext],
    settings: &BatchSettings,
    now: DateTime<Utc>,
) -> Result<Pools, DbErr> {
    // Which kinds of pool each (step, role) needs: with working hours, without, or both.
    let mut needed: HashMap<(i64, Role), (bool, bool)> = HashMap::new();
    for request in due {
        let role = Role::for_counter(request.required_role_counter);
        let entry = needed.entry((request.step_id, role)).or_default();
        if settings.working.applies_to(request.priority) {
            entry.0 = true;
        } else {
            entry.1 = true;
        }
    }
    let mut read: HashMap<(i64, Role), Vec<Candidate>> = HashMap::new();
    for request in due {
        let role = Role::for_counter(request.required_role_counter);
        if read.contains_key(&(request.step_id, role)) {
            continue;
        }
        let candidates = if request.required_count == 0 {
            Vec::new()
        } else {
            db::requests::candidates(db, request.step_id, role, request.required_count)
                .await?
                .into_iter()
                .filter(|c| reach(c, settings.email).is_reachable())
                .collect()
        };
        read.insert((request.step_id, role), candidates);
    }
    // Workers at `max_open_tasks_per_worker` are left out until one of their tasks finishes
    // (one read for every pool).
    let full: HashSet<i64> = match settings.max_open_tasks {
        Some(max) => {
            let mut ids: Vec<i64> = read.values().flatten().map(|c| c.worker_id).collect();
            ids.sort_unstable();
            ids.dedup();
            db::tasks::active_counts(db, &ids)
                .await?
                .into_iter()
                .filter(|&(_, open)| open >= max)
                .map(|(w, _)| w)
                .collect()
        }
        None => HashSet::new(),
    };
    let mut pools = Pools::default();
    for ((step, role), candidates) in read {
        let open: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| !full.contains(&c.worker_id))
            .collect();
        let (with_hours, without) = needed.get(&(step, role)).copied().unwrap_or_default();
        if with_hours {
            let (working, later) = split_by_hours(&open, &settings.working, now);
            pools.pools.insert((step, role, true), Pool::new(working));
            pools.off_hours.insert((step, role), later);
        }
        if without {
            pools.pools.insert((step, role, false), Pool::new(open));
        }
    }
    Ok(pools)
}

/// `open` split by working hours at `now`: those inside theirs (and those whose time zone is not
/// known), and those outside with when they start next.
fn split_by_hours(
    open: &[Candidate],
    rule: &WorkingRule,
    now: DateTime<Utc>,
) -> (Vec<Candidate>, Vec<Later>) {
    // Workers share a handful of (time zone, hours, days): each is worked out once.
    type Key<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let mut seen: HashMap<Key<'_>, Option<(DateTime<Utc>, String)>> = HashMap::new();
    let mut working = Vec::new();
    let mut later = Vec::new();
    for c in open {
        // Until Slack (or an admin) has told a worker's time zone, their hours are
        // not known: they are asked at any hour (the first round asks Slack).
        if c.tz.is_none() {
            working.push(c.clone());
            continue;
        }
        let key = (
            c.tz.as_deref(),
            c.working_hours.as_deref(),
            c.working_days.as_deref(),
        );
        let off = seen.entry(key).or_insert_with(|| {
            let week = rule.week_of(key.0, key.1, key.2);
            (!week.is_working(now)).then(|| (week.next_start(now), week.tz.name().to_string()))
        });
        match off {
            None => working.push(c.clone()),
            Some((next_start, tz)) => later.push(Later {
                worker_id: c.worker_id,
                next_start: *next_start,
                tz: tz.clone(),
            }),
        }
    }
    (working, later)
}

/// The adaptive policy's evidence about `workers` as of `now`: two reads (their offers of the
/// last [`super::policy::HISTORY_DAYS`] days, the tasks they hold), whatever their number.
pub async fn read_evidence<C: ConnectionTrait>(
    db: &C,
    workers: &[i64],
    half_life_days: f64,
    now: DateTime<Utc>,
) -> Result<HashMap<i64, Evidence>, DbErr> {
    let since = now - chrono::Duration::days(super::policy::HISTORY_DAYS);
    let history = db::offers::history(db, workers, since).await?;
    let active = db::tasks::active_counts(db, workers).await?;
    Ok(super::policy::evidence(
        &history,
        &active,
        half_life_days,
        now,
    ))
}

/// `tie_break = "least_loaded"` counts the tasks taken on in this many days.
const LOAD_DAYS: i64 = 7;

/// How one round chooses whom to ask, with what the adaptive policy read for it.
enum Chooser {
    /// A batch of `batch` (looking for one more, to see whether the pool runs out); with the
    /// tasks each worker took on in the last 7 days under `tie_break = "least_loaded"`.
    Orchestra {
        batch: usize,
        load: Option<HashMap<i64, u32>>,
    },
    Adaptive {
        settings: AdaptiveSettings,
        /// The window of a prompt acceptance.
        horizon: chrono::Duration,
        /// Per worker: one read of the pools' past offers.
        evidence: HashMap<i64, Evidence>,
        /// Per request of the current chunk: its offers still out (worker, sent at).
        in_flight: HashMap<i64, Vec<(i64, DateTime<Utc>)>>,
    },
}

impl Chooser {
    async fn new<C: ConnectionTrait>(
        db: &C,
        policy: Policy,
        settings: &BatchSettings,
        pools: &Pools,
        now: DateTime<Utc>,
    ) -> Result<Chooser, DbErr> {
        let Policy::Adaptive(a) = policy else {
            let load = match settings.tie_break {
                TieBreak::Random => None,
                TieBreak::LeastLoaded => {
                    let workers = pools.worker_ids();
                    let since = now - chrono::Duration::days(LOAD_DAYS);
                    Some(db::tasks::taken_on_since(db, &workers, since).await?)
                }
            };
            return Ok(Chooser::Orchestra {
                batch: settings.batch_size as usize,
                load,
            });
        };
        let horizon = a.horizon();
        let workers = pools.worker_ids();
        Ok(Chooser::Adaptive {
            settings: a,
            horizon,
            evidence: read_evidence(db, &workers, a.half_life_days, now).await?,
            in_flight: HashMap::new(),
        })
    }

    /// Offers one request may get in this round at most.
    fn per_request(&self) -> usize {
        match self {
            Chooser::Orchestra { batch, .. } => batch + 1,
            Chooser::Adaptive { settings, .. } => settings.max_batch.max(1),
        }
    }

    /// Reads the offers still out of the chunk's requests `ids` (the adaptive policy counts them).
    async fn read_in_flight<C: ConnectionTrait>(
        &mut self,
        db: &C,
        ids: &[i64],
    ) -> Result<(), DbErr> {
        if let Chooser::Adaptive { in_flight, .. } = self {
            *in_flight = db::offers::in_flight(db, ids).await?;
        }
        Ok(())
    }

    /// Whom request `request_id` asks now from `pool`, and whether nobody is left after them.
    fn choose<'a>(
        &mut self,
        pool: &'a Pool,
        request_id: i64,
        excluded: &HashSet<i64>,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> (Vec<&'a Candidate>, bool) {
        match self {
            Chooser::Orchestra { batch, load } => {
                let mut chosen = match load {
                    Some(load) => pool.choose_least_loaded(*batch + 1, excluded, load, rng),
                    None => pool.choose(*batch + 1, excluded, rng),
                };
                // One more than a batch was looked for: if it is not there, this batch empties
                // the pool.
                let exhausted = chosen.len() <= *batch;
                chosen.truncate(*batch);
                (chosen, exhausted)
            }
            Chooser::Adaptive {
                settings,
                horizon,
                evidence,
                in_flight,
            } => {
                let none = Evidence::default();
                let flying: Vec<f64> = in_flight
                    .get(&request_id)
                    .into_iter()
                    .flatten()
                    .map(|(w, at)| {
                        let e = evidence.get(w).unwrap_or(&none);
                        super::policy::in_flight_p(e, *at, *horizon, now)
                    })
                    .collect();
                let (chosen, exhausted) = super::policy::choose_adaptive(
                    pool, excluded, evidence, &flying, settings, *horizon, rng,
                );
                // Offers of this round count toward the day's cap of the next requests.
                for c in &chosen {
                    evidence.entry(c.worker_id).or_default().offers_today += 1;
                }
                (chosen, exhausted)
            }
        }
    }
}

/// One request's batch, decided.
struct Plan<'a> {
    request: &'a RequestContext,
    chosen: Vec<&'a Candidate>,
    /// This batch empties the pool.
    exhausted: bool,
    /// Nobody is asked this round: everyone left is outside their working hours; the first
    /// of them starts then.
    waiting: Option<Later>,
    /// What the offers show.
    offer: OfferContent,
    /// The detailed description was rendered this round: store it with the request.
    store_details: bool,
}

/// The detailed descriptions of the `due` requests that have none stored yet, rendered on a
/// blocking thread (each a team's template or script, under its limits).
async fn render_details(due: &[RequestContext]) -> HashMap<i64, Details> {
    let todo: Vec<RequestContext> = due
        .iter()
        .filter(|r| r.stored_details.is_none() && r.has_details_function())
        .cloned()
        .collect();
    if todo.is_empty() {
        return HashMap::new();
    }
    let render = move || {
        todo.iter()
            .map(|r| (r.request_id, r.render_details()))
            .collect::<HashMap<i64, Details>>()
    };
    tokio::task::spawn_blocking(render)
        .await
        .unwrap_or_else(|e| {
            tracing::error!("detailed descriptions: their rendering thread failed: {e}");
            HashMap::new()
        })
}

/// Writes the batches of one chunk: the offers, their DMs and the announcements (outbox), the
/// requests' new state; requests whose pool ran out and whose every offer was declined close.
async fn write_batches<C: ConnectionTrait>(
    conn: &C,
    plans: &[Plan<'_>],
    email: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let details: Vec<(i64, serde_json::Value)> = plans
        .iter()
        .filter(|p| p.store_details)
        .filter_map(|p| {
            let value = serde_json::to_value(&p.offer.details).ok()?;
            Some((p.request.request_id, value))
        })
        .collect();
    db::requests::set_details(conn, &details).await?;
    let pairs: Vec<(i64, i64)> = plans
        .iter()
        .flat_map(|p| p.chosen.iter().map(|c| (p.request.request_id, c.worker_id)))
        .collect();
    let inquiry_ids = db::offers::insert_many(conn, &pairs, now).await?;
    let mut messages: Vec<(String, Outgoing)> = Vec::with_capacity(pairs.len() + 1);
    // The Homes that show these tasks (the workers offered them, the admins) are published
    // again: one more row in the same insert.
    let tasks: Vec<i64> = plans.iter().map(|p| p.request.task_id).collect();
    messages.push(crate::outbox::refresh_row(&tasks, Vec::new()));
    let mut sending: Vec<i64> = Vec::new();
    let mut done: Vec<i64> = Vec::new();
    let mut tokens: Vec<(String, i64)> = Vec::new();
    for plan in plans {
        let request = plan.request;
        offer_messages(plan, &inquiry_ids, email, &mut messages, &mut tokens);
        if plan.exhausted {
            done.push(request.request_id);
            match &request.slack_channel_id {
                Some(channel) => messages.push((
                    format!("all-sent:{}", request.request_id),
                    Outgoing::post(
                        channel,
                        Message::PoolExhausted {
                            task: request.display(),
                        },
                    ),
                )),
                None => tracing::warn!(
                    project_id = request.project_id,
                    "project has no Slack channel; not announcing that task {}'s pool is exhausted",
                    request.task_id
                ),
            }
        } else {
            sending.push(request.request_id);
        }
    }
    db::email::insert_tokens(conn, &tokens, now).await?;
    crate::outbox::enqueue_all(conn, messages, now).await?;
    db::requests::set_batched(conn, &sending, RequestStatus::Sending, now).await?;
    db::requests::set_batched(conn, &done, RequestStatus::DoneSending, now).await?;
    let waiting: Vec<(i64, DateTime<Utc>, String)> = plans
        .iter()
        .filter_map(|p| {
            let w = p.waiting.as_ref()?;
            Some((p.request.request_id, w.next_start, w.tz.clone()))
        })
        .collect();
    let were_waiting: Vec<i64> = plans
        .iter()
        .filter(|p| p.request.stored_waiting_until.is_some())
        .map(|p| p.request.request_id)
        .collect();
    db::requests::set_waiting(conn, &were_waiting, &waiting).await?;
    for &request_id in &done {
        super::respond::close_if_everyone_declined(conn, request_id, now).await?;
    }
    Ok(())
}

/// Auto-staffs `worker_id` to request `request_id` in a transaction fenced by the staffing
/// lease; false when the request closed meanwhile (an accept won it).
async fn auto_staff<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    request_id: i64,
    worker_id: i64,
    settings: &BatchSettings,
    now: DateTime<Utc>,
) -> Result<bool, crate::error::Error> {
    let tx = db::begin_write(db).await?;
    let staffed = async {
        lease.fence(&tx).await?;
        super::respond::auto_staff(&tx, request_id, worker_id, &settings.notices, now).await
    }
    .await;
    let staffed = match staffed {
        Ok(false) => {
            tx.rollback().await?;
            false
        }
        other => db::settle(tx, other).await?,
    };
    if staffed {
        tracing::info!(request_id, worker_id, "auto-staffed by availability");
        metrics::counter!("staffbot_auto_staffed_total").increment(1);
    }
    Ok(staffed)
}

/// How candidate `c` is reached.
fn reach(c: &Candidate, email: bool) -> crate::notify::Reach<'_> {
    crate::notify::reach(c.notify, c.slack_user_id.as_deref(), &c.email, email)
}

/// The offers of one request's batch: a DM, an email (with a new reply token), or both, as each
/// worker prefers.
fn offer_messages(
    plan: &Plan<'_>,
    inquiry_ids: &HashMap<(i64, i64), i64>,
    email: bool,
    out: &mut Vec<(String, Outgoing)>,
    tokens: &mut Vec<(String, i64)>,
) {
    let (request, offer) = (plan.request, &plan.offer);
    for c in &plan.chosen {
        let Some(&inquiry_id) = inquiry_ids.get(&(request.request_id, c.worker_id)) else {
            continue;
        };
        let message = || Message::Offer {
            inquiry_id,
            first_name: c.first_name.clone(),
            offer: offer.clone(),
        };
        let reach = reach(c, email);
        if let Some(slack) = reach.slack {
            out.push((
                format!("offer:{inquiry_id}"),
                Outgoing::post(slack, message()),
            ));
        }
        if let Some(address) = reach.email {
            let token = crate::notify::new_token();
            tokens.push((token.clone(), inquiry_id));
            let to = crate::notify::EmailTo {
                to: address,
                token: Some(token),
                in_reply_to: None,
                slack_user: c.slack_user_id.as_deref(),
                only_channel: reach.slack.is_none(),
            };
            out.push((format!("offer-email:{inquiry_id}"), to.outgoing(message())));
        }
    }
}
