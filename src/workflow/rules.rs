//! Pure lifecycle decisions (no I/O): role counters, review sampling, submit transitions.

use rand::Rng;

use super::functions::ReviewPolicy;
use crate::db::{Role, TaskStatus};
use crate::error::UserError;

/// The counter a new assignment on a task needs (behaviour §4.4): the smallest free counter
/// below the number of assignments, else that number. `counters` are the task's existing ones.
pub fn required_role_counter(status: TaskStatus, counters: &[i32]) -> Result<i32, UserError> {
    match status {
        TaskStatus::AwaitingProcessing | TaskStatus::PendingReview => {}
        _ => return Err(UserError::StatusIncompatibleWithNewAssignment),
    }
    if status == TaskStatus::AwaitingProcessing && counters.contains(&0) {
        return Err(UserError::TaskInIncorrectState);
    }
    let n = i32::try_from(counters.len()).unwrap_or(i32::MAX);
    Ok((0..n).find(|c| !counters.contains(c)).unwrap_or(n))
}

/// The role a task in `status` needs from its next worker (used by assign).
pub fn required_role(status: TaskStatus) -> Result<Role, UserError> {
    match status {
        TaskStatus::AwaitingProcessing => Ok(Role::EntryLevel),
        TaskStatus::PendingReview => Ok(Role::Reviewer),
        _ => Err(UserError::StatusIncompatibleWithNewAssignment),
    }
}

/// Whether a submission ("requested review") is sent to review (behaviour §4.3). `assignments`
/// counts every assignment on the task, the submitter's included.
pub fn needs_review(policy: &ReviewPolicy, assignments: usize, rng: &mut impl Rng) -> bool {
    match policy {
        ReviewPolicy::NoReview => false,
        ReviewPolicy::SampledReview { rate, max_reviews } => {
            let reviews_so_far = assignments.saturating_sub(1);
            if (*max_reviews as usize) <= reviews_so_far {
                return false;
            }
            rng.random::<f64>() < *rate
        }
    }
}

/// What a worker does when submitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitKind {
    /// Done with the work (entry level or an approving reviewer): Orchestra's "requested review".
    RequestedReview,
    /// A reviewer sends the work back: Orchestra's "provided review".
    ProvidedReview,
}

/// The status check of a submit (behaviour §4.2, check 5), after the assignment checks.
pub fn check_submit_status(status: TaskStatus, kind: SubmitKind) -> Result<(), UserError> {
    use TaskStatus::*;
    match (status, kind) {
        (AwaitingProcessing | PendingReview | Complete, _) => {
            Err(UserError::IllegalStatusForSubmit)
        }
        (Processing | Reviewing | PostReviewProcessing, SubmitKind::RequestedReview) => Ok(()),
        (_, SubmitKind::RequestedReview) => Err(UserError::NotSubmittable),
        (Reviewing, SubmitKind::ProvidedReview) => Ok(()),
        (_, SubmitKind::ProvidedReview) => Err(UserError::NotRejectable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn role_counters() {
        use TaskStatus::*;
        let cases: &[(TaskStatus, &[i32], Result<i32, UserError>)] = &[
            (AwaitingProcessing, &[], Ok(0)),
            (PendingReview, &[0], Ok(1)),
            (PendingReview, &[0, 1, 2], Ok(3)),
            // Gaps are filled first (W-9 fixed: the new assignment gets this same counter).
            (PendingReview, &[0, 2], Ok(1)),
            (PendingReview, &[1, 2], Ok(0)),
            (
                AwaitingProcessing,
                &[0],
                Err(UserError::TaskInIncorrectState),
            ),
            (
                Processing,
                &[0],
                Err(UserError::StatusIncompatibleWithNewAssignment),
            ),
            (
                Reviewing,
                &[0, 1],
                Err(UserError::StatusIncompatibleWithNewAssignment),
            ),
            (
                Complete,
                &[0],
                Err(UserError::StatusIncompatibleWithNewAssignment),
            ),
            (
                Aborted,
                &[],
                Err(UserError::StatusIncompatibleWithNewAssignment),
            ),
        ];
        for (status, counters, expected) in cases {
            assert_eq!(
                &required_role_counter(*status, counters),
                expected,
                "{status} {counters:?}"
            );
        }
    }

    fn completions(policy: &ReviewPolicy, assignments: usize, seed: u64) -> usize {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..1000)
            .filter(|_| !needs_review(policy, assignments, &mut rng))
            .count()
    }

    #[test]
    fn review_sampling_rates() {
        let rate = |rate| ReviewPolicy::SampledReview {
            rate,
            max_reviews: 1,
        };
        assert_eq!(completions(&rate(0.0), 1, 1), 1000);
        assert_eq!(completions(&rate(1.0), 1, 1), 0);
        for seed in 0..5 {
            let done = completions(&rate(0.5), 1, seed);
            assert!((400..=600).contains(&done), "seed {seed}: {done}");
        }
        assert_eq!(completions(&ReviewPolicy::NoReview, 1, 1), 1000);
    }

    #[test]
    fn max_reviews_caps_review_levels() {
        let max = |max_reviews| ReviewPolicy::SampledReview {
            rate: 1.0,
            max_reviews,
        };
        let mut rng = StdRng::seed_from_u64(3);
        // max_reviews 0: never reviewed.
        assert!(!needs_review(&max(0), 1, &mut rng));
        // max_reviews 1: entry level is reviewed, the first reviewer's approval completes.
        assert!(needs_review(&max(1), 1, &mut rng));
        assert!(!needs_review(&max(1), 2, &mut rng));
        // max_reviews 2: two reviewer levels.
        assert!(needs_review(&max(2), 1, &mut rng));
        assert!(needs_review(&max(2), 2, &mut rng));
        assert!(!needs_review(&max(2), 3, &mut rng));
    }

    #[test]
    fn submit_status_checks() {
        use SubmitKind::*;
        use TaskStatus::*;
        for s in [AwaitingProcessing, PendingReview, Complete] {
            assert_eq!(
                check_submit_status(s, RequestedReview),
                Err(UserError::IllegalStatusForSubmit)
            );
            assert_eq!(
                check_submit_status(s, ProvidedReview),
                Err(UserError::IllegalStatusForSubmit)
            );
        }
        for s in [Processing, Reviewing, PostReviewProcessing] {
            assert_eq!(check_submit_status(s, RequestedReview), Ok(()));
        }
        assert_eq!(
            check_submit_status(Aborted, RequestedReview),
            Err(UserError::NotSubmittable)
        );
        assert_eq!(check_submit_status(Reviewing, ProvidedReview), Ok(()));
        for s in [Processing, PostReviewProcessing, Aborted] {
            assert_eq!(
                check_submit_status(s, ProvidedReview),
                Err(UserError::NotRejectable)
            );
        }
    }
}
