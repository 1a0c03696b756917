//! Whom to ask, and how many at once (design.md §9): a pure function of the request's candidate
//! pool, the evidence about each candidate, the offers in flight, and `now`.
//!
//! - `orchestra`: Orchestra's fixed rule, a batch of `worker_batch_size` every
//!   `batch_frequency`, highest priority first, at random among equals ([`Pool::choose`]).
//! - `adaptive`: the same constraints (certification and role, `staffbot_enabled`, priority tiers
//!   in order, nobody asked twice), but within them it asks the workers most likely to accept
//!   within `staffbot.adaptive.horizon_minutes`, and only as many as make one acceptance within
//!   it `staffbot.adaptive.target` likely, counting the offers still out by what is left of
//!   their chance.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::pool::Pool;
use crate::db::offers::OfferHistory;
use crate::db::requests::Candidate;

pub use crate::config::{AdaptiveSettings, PolicyName};

/// What the offers table says about one worker: decayed counts of their past offers and
/// answers, how fast they answer, and what they hold now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Offers, each counted by the share of this worker's answer delays it waited out
    /// (weighted by age): an offer closed by someone else's acceptance after a minute counts
    /// little, one left unanswered for hours counts fully.
    pub chances: f64,
    /// Offers answered (weighted).
    pub answers: f64,
    /// Of the answers, acceptances (weighted).
    pub accepts: f64,
    /// The median of this worker's answer delays, in minutes (posterior: the prior's 10
    /// minutes worth two answers).
    pub median_delay_minutes: f64,
    /// Offers in the last 24 hours (not weighted).
    pub offers_today: u32,
    /// Acceptances in the last 7 days (not weighted): the load the policy spreads.
    pub accepts_this_week: u32,
    /// Tasks the worker holds in progress now.
    pub active: u32,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence {
            chances: 0.0,
            answers: 0.0,
            accepts: 0.0,
            median_delay_minutes: PRIOR_DELAY_MINUTES,
            offers_today: 0,
            accepts_this_week: 0,
            active: 0,
        }
    }
}

/// The priors every worker starts from, each worth two observations: answers 7 offers in 10,
/// accepts 3 answers in 10, answers in 10 minutes (median).
const PRIOR_WEIGHT: f64 = 2.0;
const PRIOR_ANSWER: f64 = 0.7;
const PRIOR_ACCEPT: f64 = 0.3;
const PRIOR_DELAY_MINUTES: f64 = 10.0;
/// The shape of the answer delays around a worker's median (log-logistic): half of the answers
/// within a third of the median and three times it.
const DELAY_SHAPE: f64 = 2.0;
/// Weight of the exploration bonus for workers with little evidence.
const EXPLORE: f64 = 0.05;
/// Each task in progress multiplies a worker's chances of accepting another by this.
const BUSY: f64 = 0.25;

/// P(an answer comes within `minutes`), for answers with this median delay.
fn answered_within(minutes: f64, median: f64) -> f64 {
    if minutes <= 0.0 {
        return 0.0;
    }
    1.0 / (1.0 + (minutes / median.max(0.1)).powf(-DELAY_SHAPE))
}

impl Evidence {
    /// P(answers an offer at all), posterior mean.
    pub fn p_answer(&self) -> f64 {
        (self.answers + PRIOR_ANSWER * PRIOR_WEIGHT) / (self.chances + PRIOR_WEIGHT)
    }

    /// P(accepts | answers), posterior mean.
    pub fn p_accept(&self) -> f64 {
        (self.accepts + PRIOR_ACCEPT * PRIOR_WEIGHT) / (self.answers + PRIOR_WEIGHT)
    }

    /// P(an offer out for `age`, unanswered so far, is accepted within the next `horizon`).
    /// Tasks in progress lower it ([`BUSY`]).
    pub fn p_accept_within(&self, age: chrono::Duration, horizon: chrono::Duration) -> f64 {
        let age = age.num_seconds().max(0) as f64 / 60.0;
        let end = age + horizon.num_seconds().max(0) as f64 / 60.0;
        let m = self.median_delay_minutes;
        let (before, by_end) = (answered_within(age, m), answered_within(end, m));
        let pa = self.p_answer();
        // P(answers in (age, end]) / P(silent until age).
        let answer_next = pa * (by_end - before) / (1.0 - pa * before).max(1e-9);
        answer_next * self.p_accept() * BUSY.powi(self.active as i32)
    }

    /// The order within a tier: the chance of a prompt acceptance, lowered by each acceptance of
    /// the week (× `spread`, so that the load spreads), plus a bonus that shrinks as evidence grows (so that
    /// newcomers and rarely-asked workers get asked, and their estimates improve).
    fn score(&self, horizon: chrono::Duration, spread: f64) -> f64 {
        self.p_accept_within(chrono::Duration::zero(), horizon)
            * spread.powi(self.accepts_this_week as i32)
            + EXPLORE / (1.0 + self.chances).sqrt()
    }
}

/// How a staffing round decides whom to ask (`staffbot.policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Policy {
    #[default]
    Orchestra,
    Adaptive(AdaptiveSettings),
}

impl Policy {
    /// The policy `staffbot.policy` names, with its settings.
    pub fn of(config: &crate::config::StaffbotConfig) -> Policy {
        match config.policy {
            PolicyName::Orchestra => Policy::Orchestra,
            PolicyName::Adaptive => Policy::Adaptive(config.adaptive),
        }
    }
}

/// How far back the adaptive policy reads offers (older ones weigh little anyway).
pub const HISTORY_DAYS: i64 = 60;

/// Each worker's evidence from their past offers and the tasks they hold (`active`), as of
/// `now`.
pub fn evidence(
    history: &[OfferHistory],
    active: &HashMap<i64, u32>,
    half_life_days: f64,
    now: DateTime<Utc>,
) -> HashMap<i64, Evidence> {
    let weight = |h: &OfferHistory| {
        let age_days = (now - h.offered_at).num_seconds().max(0) as f64 / 86_400.0;
        0.5f64.powf(age_days / half_life_days.max(0.1))
    };
    let minutes =
        |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_seconds().max(0) as f64 / 60.0;
    // First the answer delays (the median of each worker's), then the offers counted by how
    // much of those delays each waited out.
    let mut delays: HashMap<i64, (f64, f64)> = HashMap::new();
    for h in history {
        if let Some(at) = h.answered_at {
            let (sum, n) = delays.entry(h.worker_id).or_default();
            let w = weight(h);
            *sum += w * minutes(h.offered_at, at).max(0.25).ln();
            *n += w;
        }
    }
    let mut out: HashMap<i64, Evidence> = HashMap::new();
    for h in history {
        let e = out.entry(h.worker_id).or_insert_with(|| {
            let (sum, n) = delays.get(&h.worker_id).copied().unwrap_or_default();
            Evidence {
                median_delay_minutes: ((sum + PRIOR_WEIGHT * PRIOR_DELAY_MINUTES.ln())
                    / (n + PRIOR_WEIGHT))
                    .exp(),
                ..Default::default()
            }
        });
        if now - h.offered_at < chrono::Duration::days(1) {
            e.offers_today += 1;
        }
        if h.accepted == Some(true) && now - h.offered_at < chrono::Duration::days(7) {
            e.accepts_this_week += 1;
        }
        let w = weight(h);
        if h.answered_at.is_some() {
            e.chances += w;
            e.answers += w;
            if h.accepted == Some(true) {
                e.accepts += w;
            }
        } else {
            // Silent until its request closed (or until now).
            let until = h.closed_at.map_or(now, |c| c.min(now));
            e.chances += w * answered_within(minutes(h.offered_at, until), e.median_delay_minutes);
        }
    }
    for (worker, n) in active {
        out.entry(*worker).or_default().active = *n;
    }
    out
}

/// The adaptive choice for one request: up to `settings.max_batch` candidates of `pool` not in
/// `excluded`, tier by tier (a lower priority only once the higher ones are all asked), best
/// score first within a tier, until the offers in flight (`in_flight`: P(prompt accept) of
/// each) and the chosen make one prompt acceptance at least `settings.target` likely. At least
/// one when anyone is left. Returns the chosen, and whether nobody is left after them.
pub fn choose_adaptive<'a>(
    pool: &'a Pool,
    excluded: &HashSet<i64>,
    evidence: &HashMap<i64, Evidence>,
    in_flight: &[f64],
    settings: &AdaptiveSettings,
    horizon: chrono::Duration,
    rng: &mut impl Rng,
) -> (Vec<&'a Candidate>, bool) {
    let none = Evidence::default();
    let mut p_no_accept: f64 = in_flight.iter().map(|p| 1.0 - p).product();
    let mut chosen: Vec<&Candidate> = Vec::new();
    let mut left = 0usize;
    let mut done = false;
    for tier in pool.tiers() {
        let open: Vec<&Candidate> = tier
            .iter()
            .filter(|c| !excluded.contains(&c.worker_id))
            .collect();
        // A worker at the day's cap is left for a later round, not asked now.
        let (mut available, capped): (Vec<&Candidate>, Vec<&Candidate>) =
            open.into_iter().partition(|c| {
                evidence.get(&c.worker_id).map_or(0, |e| e.offers_today)
                    < settings.max_offers_per_worker_per_day
            });
        left += capped.len();
        let mut available: Vec<(f64, &Candidate)> = available
            .drain(..)
            // A random tie-break among equal scores, as Orchestra's order among equals.
            .map(|c| {
                let e = evidence.get(&c.worker_id).unwrap_or(&none);
                (
                    e.score(horizon, settings.spread) + rng.random_range(0.0..1e-6),
                    c,
                )
            })
            .collect();
        if done {
            left += available.len();
            continue;
        }
        available.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut taken = 0;
        for (_, c) in &available {
            let enough = !chosen.is_empty() && 1.0 - p_no_accept >= settings.target;
            if enough || chosen.len() >= settings.max_batch.max(1) {
                done = true;
                break;
            }
            let p = evidence
                .get(&c.worker_id)
                .unwrap_or(&none)
                .p_accept_within(chrono::Duration::zero(), horizon);
            p_no_accept *= 1.0 - p;
            chosen.push(c);
            taken += 1;
        }
        left += available.len() - taken;
    }
    (chosen, left == 0)
}

/// P(an offer in flight, sent at `offered_at`, is accepted within the next `horizon`).
pub fn in_flight_p(
    e: &Evidence,
    offered_at: DateTime<Utc>,
    horizon: chrono::Duration,
    now: DateTime<Utc>,
) -> f64 {
    e.p_accept_within(now - offered_at, horizon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    use crate::staffing::pool::tests::candidate;

    const HORIZON: chrono::Duration = chrono::Duration::minutes(10);

    /// A worker who answered every one of `offers` within two minutes (median), accepting
    /// `accepts` of them.
    fn with(offers: f64, accepts: f64) -> Evidence {
        Evidence {
            chances: offers,
            answers: offers,
            accepts,
            median_delay_minutes: 2.0,
            ..Default::default()
        }
    }

    /// The ids [`choose_adaptive`] picks from `pool` over a horizon of [`HORIZON`], and whether
    /// nobody is left after them.
    fn pick(
        pool: &Pool,
        excluded: &[i64],
        evidence: &HashMap<i64, Evidence>,
        in_flight: &[f64],
        settings: &AdaptiveSettings,
    ) -> (Vec<i64>, bool) {
        let excluded: HashSet<i64> = excluded.iter().copied().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (chosen, exhausted) = choose_adaptive(
            pool, &excluded, evidence, in_flight, settings, HORIZON, &mut rng,
        );
        (chosen.iter().map(|c| c.worker_id).collect(), exhausted)
    }

    #[test]
    fn the_likeliest_are_asked_first_and_only_as_many_as_needed() {
        let pool = Pool::new((1..=6).map(|i| candidate(i, 0)).collect());
        let evidence: HashMap<i64, Evidence> = [
            (1, with(20.0, 2.0)),
            (2, with(20.0, 18.0)),
            (3, with(20.0, 10.0)),
            (4, with(20.0, 0.0)),
            (5, with(20.0, 17.0)),
            (6, with(20.0, 1.0)),
        ]
        .into();
        let settings = AdaptiveSettings {
            target: 0.9,
            ..Default::default()
        };
        let (chosen, exhausted) = pick(&pool, &[], &evidence, &[], &settings);
        // 2 and 5 (0.79 and 0.75 within the horizon) make 1 - 0.21 * 0.25 = 0.95 ≥ 0.9.
        assert_eq!(chosen, [2, 5]);
        assert!(!exhausted);
        // An offer in flight that is likely to be accepted: one more is enough.
        let (chosen, _) = pick(&pool, &[], &evidence, &[0.8], &settings);
        assert_eq!(chosen, [2]);
        // Never fewer than one, never more than max_batch, never an excluded worker.
        let capped = AdaptiveSettings {
            target: 0.999_999,
            max_batch: 3,
            ..Default::default()
        };
        let (chosen, _) = pick(&pool, &[2], &evidence, &[], &capped);
        assert_eq!(chosen, [5, 3, 1]);
        let (chosen, _) = pick(&pool, &[2], &evidence, &[0.9999999], &settings);
        assert_eq!(chosen.len(), 1);
    }

    #[test]
    fn priority_tiers_stay_a_hard_order_and_newcomers_get_explored() {
        let pool = Pool::new(vec![candidate(1, 5), candidate(2, 0), candidate(3, 0)]);
        // The priority-5 worker never accepts; the priority-0 ones always do: 1 is still first.
        let evidence: HashMap<i64, Evidence> = [(1, with(50.0, 0.0)), (2, with(50.0, 50.0))].into();
        let settings = AdaptiveSettings {
            target: 0.5,
            ..Default::default()
        };
        let (chosen, _) = pick(&pool, &[], &evidence, &[], &settings);
        assert_eq!(chosen, [1, 2]);
        // Newcomer 3 (no evidence) scores above a worker known never to accept.
        let known_bad: HashMap<i64, Evidence> = [(2, with(50.0, 0.0))].into();
        let flat = Pool::new(vec![candidate(2, 0), candidate(3, 0)]);
        let (chosen, _) = pick(&flat, &[], &known_bad, &[], &settings);
        assert_eq!(chosen[0], 3);
    }

    #[test]
    fn of_equals_the_one_with_fewer_tasks_this_week_and_none_in_hand_goes_first() {
        let pool = Pool::new((1..=3).map(|i| candidate(i, 0)).collect());
        let winner = Evidence {
            accepts_this_week: 2,
            ..with(20.0, 10.0)
        };
        let holding = Evidence {
            active: 1,
            ..with(20.0, 10.0)
        };
        let evidence: HashMap<i64, Evidence> =
            [(1, winner), (2, holding), (3, with(20.0, 10.0))].into();
        let settings = AdaptiveSettings {
            target: 0.999,
            spread: 0.8,
            ..Default::default()
        };
        let (chosen, _) = pick(&pool, &[], &evidence, &[], &settings);
        assert_eq!(chosen, [3, 1, 2]);
    }

    #[test]
    fn a_worker_at_the_daily_cap_is_not_asked() {
        let pool = Pool::new(vec![candidate(1, 0), candidate(2, 0)]);
        let mut tired = with(50.0, 50.0);
        tired.offers_today = AdaptiveSettings::default().max_offers_per_worker_per_day;
        let evidence: HashMap<i64, Evidence> = [(1, tired), (2, with(50.0, 5.0))].into();
        let (chosen, exhausted) = pick(&pool, &[], &evidence, &[], &AdaptiveSettings::default());
        assert_eq!(chosen, [2]);
        assert!(!exhausted, "the capped worker is left for a later round");
    }

    #[test]
    fn evidence_weighs_silent_offers_by_the_delays_they_waited_out() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let at = |m: i64| now - chrono::Duration::minutes(m);
        let h =
            |offered: i64, answered: Option<i64>, accepted: Option<bool>, closed: Option<i64>| {
                OfferHistory {
                    worker_id: 1,
                    offered_at: at(offered),
                    answered_at: answered.map(at),
                    accepted,
                    closed_at: closed.map(at),
                }
            };
        let history = vec![
            h(60, Some(59), Some(true), Some(59)), // accepted after a minute
            h(50, Some(40), Some(false), Some(40)), // declined after ten
            h(30, None, None, None),               // silent for half an hour, still open
            h(20, None, None, Some(19)),           // closed by someone else after a minute
        ];
        let active = [(1, 1)].into();
        let e = evidence(&history, &active, 14.0, now)[&1];
        // The median delay: (ln 1 + ln 10 + the prior's 2 × ln 10) / 4 → 5.6 minutes.
        assert!((e.median_delay_minutes - 5.62).abs() < 0.05, "{e:?}");
        // Two answers, then 0.97 for the half hour of silence, 0.03 for the minute.
        assert!((e.chances - 3.0).abs() < 0.02, "{e:?}");
        assert!((e.answers - 2.0).abs() < 0.01 && (e.accepts - 1.0).abs() < 0.01);
        assert_eq!((e.offers_today, e.accepts_this_week, e.active), (4, 1, 1));
        // Busy with a task: a quarter of the chance; an offer silent for an hour: less again.
        let idle = Evidence { active: 0, ..e };
        let fresh = idle.p_accept_within(chrono::Duration::zero(), HORIZON);
        let busy = e.p_accept_within(chrono::Duration::zero(), HORIZON);
        assert!((busy - fresh / 4.0).abs() < 1e-9);
        assert!(idle.p_accept_within(chrono::Duration::hours(1), HORIZON) < fresh / 4.0);
    }
}
