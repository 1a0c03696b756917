//! A step's candidate pool for one role: the workers who may be offered a task, in tiers of
//! equal `staffing_priority`, and Orchestra's choice among them (highest priority first, at
//! random among equals).

use std::collections::{HashMap, HashSet};

use rand::Rng;

use crate::db::requests::Candidate;

/// A step's candidates, highest priority first, grouped in tiers of equal priority.
#[derive(Debug, Default)]
pub struct Pool {
    candidates: Vec<Candidate>,
    /// `(start, end)` ranges of `candidates` with one priority, highest first.
    tiers: Vec<(usize, usize)>,
    /// worker id → tier index.
    tier_of: HashMap<i64, usize>,
}

impl Pool {
    pub fn new(mut candidates: Vec<Candidate>) -> Pool {
        candidates.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.worker_id.cmp(&b.worker_id))
        });
        let mut tiers = Vec::new();
        let mut tier_of = HashMap::with_capacity(candidates.len());
        let mut start = 0;
        for i in 0..candidates.len() {
            if i > start && candidates[i].priority != candidates[start].priority {
                tiers.push((start, i));
                start = i;
            }
            tier_of.insert(candidates[i].worker_id, tiers.len());
        }
        if start < candidates.len() {
            tiers.push((start, candidates.len()));
        }
        Pool {
            candidates,
            tiers,
            tier_of,
        }
    }

    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// The candidates of each priority, highest first (in worker id order within one).
    pub fn tiers(&self) -> impl Iterator<Item = &[Candidate]> {
        self.tiers
            .iter()
            .map(|&(start, end)| &self.candidates[start..end])
    }

    /// Every candidate's worker id.
    pub fn worker_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.candidates.iter().map(|c| c.worker_id)
    }

    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Per tier (highest priority first), the places of the candidates `keep` keeps.
    pub fn places_where(&self, keep: impl Fn(&Candidate) -> bool) -> Vec<Vec<usize>> {
        self.tiers
            .iter()
            .map(|&(start, end)| {
                (start..end)
                    .filter(|&i| keep(&self.candidates[i]))
                    .collect()
            })
            .collect()
    }

    /// The candidate at place `i` (from [`Pool::places_where`]).
    pub fn at(&self, i: usize) -> &Candidate {
        &self.candidates[i]
    }

    /// Up to `n` candidates not in `excluded`: highest priority first, in a random order among
    /// equal priorities. Costs O(n) per tier when few of a tier are excluded, O(tier) otherwise.
    pub fn choose(&self, n: usize, excluded: &HashSet<i64>, rng: &mut impl Rng) -> Vec<&Candidate> {
        let mut chosen: Vec<&Candidate> = Vec::with_capacity(n);
        let mut excluded_in_tier = vec![0usize; self.tiers.len()];
        for w in excluded {
            if let Some(&t) = self.tier_of.get(w) {
                excluded_in_tier[t] += 1;
            }
        }
        for (t, &(start, end)) in self.tiers.iter().enumerate() {
            let wanted = n - chosen.len();
            if wanted == 0 {
                break;
            }
            let tier = &self.candidates[start..end];
            let available = tier.len() - excluded_in_tier[t];
            if available == 0 {
                continue;
            }
            if available <= wanted || available * 2 < tier.len() || tier.len() <= 64 {
                // Few left (or a small tier): shuffle what is left and take the first ones.
                let mut left: Vec<&Candidate> = tier
                    .iter()
                    .filter(|c| !excluded.contains(&c.worker_id))
                    .collect();
                let take = wanted.min(left.len());
                for i in 0..take {
                    let j = rng.random_range(i..left.len());
                    left.swap(i, j);
                }
                chosen.extend(left.into_iter().take(take));
            } else {
                // Most of the tier is left: sample without replacement by rejection; every
                // draw succeeds with probability > 1/2.
                let mut picked: HashSet<usize> = HashSet::with_capacity(wanted);
                while picked.len() < wanted {
                    let i = rng.random_range(0..tier.len());
                    if excluded.contains(&tier[i].worker_id) || !picked.insert(i) {
                        continue;
                    }
                    chosen.push(&tier[i]);
                }
            }
        }
        chosen
    }

    /// Up to `n` candidates not in `excluded`: highest priority first; among equal priorities,
    /// fewest tasks taken on lately (`load`) first, at random among equal loads
    /// (`staffbot.tie_break = "least_loaded"`). Costs O(tier log tier).
    pub fn choose_least_loaded(
        &self,
        n: usize,
        excluded: &HashSet<i64>,
        load: &HashMap<i64, u32>,
        rng: &mut impl Rng,
    ) -> Vec<&Candidate> {
        let mut chosen: Vec<&Candidate> = Vec::with_capacity(n);
        for tier in self.tiers() {
            if chosen.len() >= n {
                break;
            }
            let mut left: Vec<&Candidate> = tier
                .iter()
                .filter(|c| !excluded.contains(&c.worker_id))
                .collect();
            for i in 0..left.len() {
                let j = rng.random_range(i..left.len());
                left.swap(i, j);
            }
            left.sort_by_key(|c| load.get(&c.worker_id).copied().unwrap_or(0));
            let take = (n - chosen.len()).min(left.len());
            chosen.extend(left.into_iter().take(take));
        }
        chosen
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A Slack worker `id` at `priority`.
    pub(crate) fn candidate(id: i64, priority: i32) -> Candidate {
        Candidate {
            worker_id: id,
            slack_user_id: Some(format!("U{id}")),
            email: String::new(),
            notify: crate::db::Notify::Slack,
            first_name: format!("W{id}"),
            priority,
            max_autostaff_hours_per_day: 0.0,
            tz: None,
            tz_checked_at: None,
            working_hours: None,
            working_days: None,
        }
    }

    fn pool(priorities: &[(i64, i32)]) -> Pool {
        Pool::new(
            priorities
                .iter()
                .map(|&(id, priority)| candidate(id, priority))
                .collect(),
        )
    }

    fn ids(chosen: &[&Candidate]) -> Vec<i64> {
        chosen.iter().map(|c| c.worker_id).collect()
    }

    #[test]
    fn highest_priority_first_and_never_an_excluded_worker() {
        let p = pool(&[(1, 1), (2, 9), (3, 5), (4, 9), (5, 5), (6, 0)]);
        let mut rng = StdRng::seed_from_u64(7);
        let excluded: HashSet<i64> = [4].into();
        let chosen = p.choose(3, &excluded, &mut rng);
        let got = ids(&chosen);
        assert_eq!(got[0], 2);
        let mut rest = got[1..].to_vec();
        rest.sort();
        assert_eq!(rest, vec![3, 5]);
        // Asking for more than there is gives everyone not excluded, in priority order.
        let all = p.choose(10, &excluded, &mut rng);
        let prios: Vec<i32> = all.iter().map(|c| c.priority).collect();
        assert_eq!(prios, vec![9, 5, 5, 1, 0]);
    }

    #[test]
    fn equal_priorities_are_chosen_at_random_without_repeats() {
        // A big tier takes the sampling path, a small one the shuffle path; both must be fair.
        for size in [10i64, 1000] {
            let p = pool(&(0..size).map(|i| (i, 3)).collect::<Vec<_>>());
            let mut rng = StdRng::seed_from_u64(size as u64);
            let mut firsts = HashSet::new();
            for _ in 0..200 {
                let chosen = ids(&p.choose(5, &HashSet::new(), &mut rng));
                let distinct: HashSet<i64> = chosen.iter().copied().collect();
                assert_eq!(distinct.len(), 5, "no worker twice in one batch");
                firsts.insert(chosen[0]);
            }
            assert!(
                firsts.len() as i64 >= size.min(50),
                "ties not random: {} distinct first picks out of {size}",
                firsts.len()
            );
        }
    }

    #[test]
    fn a_mostly_excluded_tier_still_finds_the_rest() {
        let p = pool(&(0..1000).map(|i| (i, 1)).collect::<Vec<_>>());
        let excluded: HashSet<i64> = (0..997).collect();
        let mut rng = StdRng::seed_from_u64(1);
        let mut got = ids(&p.choose(6, &excluded, &mut rng));
        got.sort();
        assert_eq!(got, vec![997, 998, 999]);
        assert!(Pool::default().choose(3, &excluded, &mut rng).is_empty());
    }
}
