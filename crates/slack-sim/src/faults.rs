//! Fault injection: Web API calls answered with a [`Fault`], and answers held back until
//! released.

use std::time::Duration;

use crate::{FakeSlack, Fault};

impl FakeSlack {
    /// Makes the next `times` calls of `method` answer with `fault` (queued after any faults
    /// already pending for that method).
    pub fn fail_next(&self, method: &str, fault: Fault, times: usize) {
        self.inner.update(|s| {
            let queue = s.faults.entry(method.to_string()).or_default();
            queue.extend(std::iter::repeat_n(fault, times));
        });
    }

    /// Makes every call of `method` (`"*"`: of every Web API method) answer with `fault` until
    /// [`FakeSlack::clear_faults`]. Faults queued by [`FakeSlack::fail_next`] come first.
    pub fn fail_until_cleared(&self, method: &str, fault: Fault) {
        self.inner.update(|s| {
            s.lasting_faults.insert(method.to_string(), fault);
        });
    }

    /// Ends [`FakeSlack::fail_until_cleared`] for `method` (`"*"` as given there), and drops
    /// the faults still queued for it by [`FakeSlack::fail_next`].
    pub fn clear_faults(&self, method: &str) {
        self.inner.update(|s| {
            s.lasting_faults.remove(method);
            s.faults.remove(method);
        });
    }

    /// The number of calls answered with HTTP `status` so far, all methods.
    pub fn calls_with_status(&self, status: u16) -> usize {
        self.inner
            .read(|s| s.calls.iter().filter(|c| c.status == status).count())
    }

    /// From now on, calls of `method` take effect (the message is stored, the call recorded)
    /// but their HTTP answers are held back until [`FakeSlack::release`]: the window in which
    /// Slack did the work and the client does not know it yet.
    pub fn hold_responses(&self, method: &str) {
        self.hold_responses_after(method, 0);
    }

    /// Like [`FakeSlack::hold_responses`], but the next `n` calls still get their answers.
    pub fn hold_responses_after(&self, method: &str, n: usize) {
        self.inner.update(|s| {
            s.holds.insert(method.to_string(), n);
        });
    }

    /// Sends every held answer of `method` and stops holding new ones.
    pub fn release(&self, method: &str) {
        self.inner.update(|s| {
            s.holds.remove(method);
            *s.releases.entry(method.to_string()).or_default() += 1;
        });
    }

    /// Waits until at least `n` answers of `method` are being held; `false` on timeout.
    pub async fn wait_for_held(&self, method: &str, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| s.held.get(method).copied().unwrap_or(0) >= n)
            .await
    }
}
