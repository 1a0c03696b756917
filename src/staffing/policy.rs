//! Whom to ask, and how many at once (design.md §9): a pure function of the request's candidate
//! pool, the evidence about each candidate, the offers in flight, and `now`.
//!
//! - `orchestra`: Orchestra's fixed rule, a batch of `worker_batch_size` every
//!   `batch_frequency`, highest priority first, at random among equals ([`Pool::choose`]).
//! - `adaptive`: the same constraints (certification and role, `staffbot_enabled`, priority tiers
//!   in order, nobody asked twice), but within them it asks the workers most likely to accept
//!   promptly, and only as many as make one acceptance before the next round likely enough
//!   (`staffbot.adaptive.target`), counting the offers still out.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::batch::Pool;
use crate::db::offers::OfferHistory;
use crate::db::requests::Candidate;

pub use crate::config::{AdaptiveSettings, PolicyName};

/// What the offers table says about one worker: decayed counts of offers that had a full round
/// to be answered, and of those accepted within it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// Offers that had a full round to be answered in (weighted by age).
    pub chances: f64,
    /// Of them, answered within the round (weighted).
    pub prompt_answers: f64,
    /// Of them, accepted within the round (weighted).
    pub prompt_accepts: f64,
    /// Offers in the last 24 hours (not weighted).
    pub offers_today: u32,
}

/// The prior every worker starts from: P(prompt accept) of 1 in 5, worth two offers.
const PRIOR_ACCEPTS: f64 = 0.4;
const PRIOR_CHANCES: f64 = 2.0;
/// Weight of the exploration bonus for workers with little evidence.
const EXPLORE: f64 = 0.15;

impl Evidence {
    /// The posterior mean of P(accepts within one round of the offer).
    pub fn p_prompt_accept(&self) -> f64 {
        (self.prompt_accepts + PRIOR_ACCEPTS) / (self.chances + PRIOR_CHANCES)
    }

    /// The estimate plus a bonus that shrinks as evidence grows (so that newcomers and
    /// rarely-asked workers get asked, and their estimates improve).
    fn score(&self) -> f64 {
        self.p_prompt_accept() + EXPLORE / (1.0 + self.chances).sqrt()
    }
}

/// How a staffing round decides whom to ask (`staffbot.policy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    Orchestra,
    Adaptive(AdaptiveSettings),
}

/// How far back the adaptive policy reads offers (older ones weigh little anyway).
pub const HISTORY_DAYS: i64 = 60;

/// Each worker's evidence from their past offers, as of `now`, with `round` the batch
/// frequency.
pub fn evidence(
    history: &[OfferHistory],
    round: chrono::Duration,
    half_life_days: f64,
    now: DateTime<Utc>,
) -> HashMap<i64, Evidence> {
    let mut out: HashMap<i64, Evidence> = HashMap::new();
    for h in history {
        let e = out.entry(h.worker_id).or_default();
        if now - h.offered_at < chrono::Duration::days(1) {
            e.offers_today += 1;
        }
        let window_end = h.offered_at + round;
        let prompt = h.answered_at.is_some_and(|a| a <= window_end);
        // An offer whose request closed within its first round, unanswered, says nothing.
        let had_its_round =
            prompt || (now >= window_end && h.closed_at.is_none_or(|c| c >= window_end));
        if !had_its_round {
            continue;
        }
        let age_days = (now - h.offered_at).num_seconds().max(0) as f64 / 86_400.0;
        let weight = 0.5f64.powf(age_days / half_life_days.max(0.1));
        e.chances += weight;
        if prompt {
            e.prompt_answers += weight;
            if h.accepted == Some(true) {
                e.prompt_accepts += weight;
            }
        }
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
                (e.score() + rng.random_range(0.0..1e-6), c)
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
                .p_prompt_accept();
            p_no_accept *= 1.0 - p;
            chosen.push(c);
            taken += 1;
        }
        left += available.len() - taken;
    }
    (chosen, left == 0)
}

/// P(prompt accept) of an offer in flight, sent at `offered_at`: the worker's estimate,
/// shrinking as the offer ages unanswered.
pub fn in_flight_p(
    e: &Evidence,
    offered_at: DateTime<Utc>,
    round: chrono::Duration,
    now: DateTime<Utc>,
) -> f64 {
    let spent = (now - offered_at).num_seconds().max(0) as f64 / round.num_seconds().max(1) as f64;
    e.p_prompt_accept() * 0.5f64.powf(spent / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn candidate(id: i64, priority: i32) -> Candidate {
        Candidate {
            worker_id: id,
            slack_user_id: Some(format!("U{id}")),
            email: String::new(),
            notify: crate::db::Notify::Slack,
            first_name: format!("W{id}"),
            priority,
        }
    }

    fn with(chances: f64, accepts: f64) -> Evidence {
        Evidence {
            chances,
            prompt_answers: accepts,
            prompt_accepts: accepts,
            offers_today: 0,
        }
    }

    fn ids(chosen: &[&Candidate]) -> Vec<i64> {
        chosen.iter().map(|c| c.worker_id).collect()
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
            target: 0.95,
            ..Default::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (chosen, exhausted) =
            choose_adaptive(&pool, &HashSet::new(), &evidence, &[], &settings, &mut rng);
        // 2 and 5 (~0.8 each) make 1 - 0.2 * 0.2 = 0.96 ≥ 0.95.
        assert_eq!(ids(&chosen), [2, 5]);
        assert!(!exhausted);
        // An offer in flight that is likely to be accepted: one more is enough.
        let (chosen, _) = choose_adaptive(
            &pool,
            &HashSet::new(),
            &evidence,
            &[0.8],
            &settings,
            &mut rng,
        );
        assert_eq!(ids(&chosen), [2]);
        // Never fewer than one, never more than max_batch, never an excluded worker.
        let capped = AdaptiveSettings {
            target: 0.999_999,
            max_batch: 3,
            ..Default::default()
        };
        let excluded: HashSet<i64> = [2].into();
        let (chosen, _) = choose_adaptive(&pool, &excluded, &evidence, &[], &capped, &mut rng);
        assert_eq!(ids(&chosen), [5, 3, 1]);
        let (chosen, _) = choose_adaptive(
            &pool,
            &excluded,
            &evidence,
            &[0.9999999],
            &settings,
            &mut rng,
        );
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
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (chosen, _) =
            choose_adaptive(&pool, &HashSet::new(), &evidence, &[], &settings, &mut rng);
        assert_eq!(ids(&chosen), [1, 2]);
        // Newcomer 3 (no evidence) scores above a worker known never to accept.
        let known_bad: HashMap<i64, Evidence> = [(2, with(50.0, 0.0))].into();
        let flat = Pool::new(vec![candidate(2, 0), candidate(3, 0)]);
        let (chosen, _) =
            choose_adaptive(&flat, &HashSet::new(), &known_bad, &[], &settings, &mut rng);
        assert_eq!(ids(&chosen)[0], 3);
    }

    #[test]
    fn a_worker_at_the_daily_cap_is_not_asked() {
        let pool = Pool::new(vec![candidate(1, 0), candidate(2, 0)]);
        let mut tired = with(50.0, 50.0);
        tired.offers_today = 12;
        let evidence: HashMap<i64, Evidence> = [(1, tired), (2, with(50.0, 5.0))].into();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (chosen, exhausted) = choose_adaptive(
            &pool,
            &HashSet::new(),
            &evidence,
            &[],
            &AdaptiveSettings::default(),
            &mut rng,
        );
        assert_eq!(ids(&chosen), [2]);
        assert!(!exhausted, "the capped worker is left for a later round");
    }

    #[test]
    fn evidence_counts_prompt_answers_and_ignores_offers_closed_too_soon() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let round = chrono::Duration::minutes(2);
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
            h(60, Some(59), Some(true), Some(59)), // accepted within the round
            h(50, Some(40), Some(true), Some(40)), // accepted, but late
            h(30, None, None, None),               // never answered, still open
            h(20, None, None, Some(19)),           // closed after a minute: no information
        ];
        let e = evidence(&history, round, 14.0, now)[&1];
        assert!((e.chances - 3.0).abs() < 0.01, "{e:?}");
        assert!((e.prompt_accepts - 1.0).abs() < 0.01, "{e:?}");
        assert_eq!(e.offers_today, 4);
    }
}
