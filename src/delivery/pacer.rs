//! Pacing of the sender's calls within the limits of the other side, so staffbot waits instead
//! of provoking 429s: token buckets its transports name ([`Pace`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// A bucket a call draws from: `burst` calls at once, refilled at `per_minute`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    pub key: String,
    pub burst: f64,
    pub per_minute: f64,
}

impl Pace {
    pub fn new(key: impl Into<String>, burst: f64, per_minute: f64) -> Pace {
        Pace {
            key: key.into(),
            burst: burst.max(1.0),
            per_minute: per_minute.max(1.0),
        }
    }
}

/// A token bucket: `capacity` calls at once, refilled at `per_minute`.
#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: DateTime<Utc>,
}

impl Bucket {
    fn new(capacity: f64, per_minute: f64, now: DateTime<Utc>) -> Bucket {
        Bucket {
            capacity,
            per_sec: per_minute / 60.0,
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.at = now;
    }

    /// When one token will be available (now if it is).
    fn ready_at(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            let secs = (1.0 - self.tokens) / self.per_sec;
            now + chrono::Duration::milliseconds((secs * 1000.0).ceil() as i64)
        }
    }

    fn take(&mut self, now: DateTime<Utc>) {
        self.refill(now);
        self.tokens -= 1.0;
    }
}

/// Token buckets the sender's calls draw from, each named by its transport ([`Pace`]: Slack's
/// per method and per channel, email's per server), and blocks after a 429.
///
/// There may be a bucket per DM channel, so idle state is dropped (at most every [`SWEEP_EVERY`]):
/// a bucket refilled to capacity is what a new one would be, and a block that has passed
/// blocks nothing. Memory follows the channels written to recently, not all channels ever.
#[derive(Debug, Default)]
pub struct Pacer {
    buckets: HashMap<String, Bucket>,
    blocked_until: HashMap<String, DateTime<Utc>>,
    swept_at: Option<DateTime<Utc>>,
}

/// How often the pacer drops idle buckets and expired blocks.
const SWEEP_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl Pacer {
    /// Drops full buckets and past blocks, unless that was done less than [`SWEEP_EVERY`] ago.
    fn sweep(&mut self, now: DateTime<Utc>) {
        if self.swept_at.is_some_and(|at| now - at < SWEEP_EVERY) {
            return;
        }
        self.swept_at = Some(now);
        self.buckets.retain(|_, bucket| {
            bucket.refill(now);
            bucket.tokens < bucket.capacity
        });
        self.blocked_until.retain(|_, until| *until > now);
    }

    /// When a call of `method` drawing from `paces` may go out.
    pub fn ready_at(&mut self, method: &str, paces: &[Pace], now: DateTime<Utc>) -> DateTime<Utc> {
        self.sweep(now);
        let mut at = now;
        if let Some(until) = self.blocked_until.get(method) {
            at = at.max(*until);
        }
        for pace in paces {
            let bucket = self
                .buckets
                .entry(pace.key.clone())
                .or_insert_with(|| Bucket::new(pace.burst, pace.per_minute, now));
            at = at.max(bucket.ready_at(now));
        }
        at
    }

    /// Counts a call against `paces`.
    pub fn record(&mut self, paces: &[Pace], now: DateTime<Utc>) {
        for pace in paces {
            self.buckets
                .entry(pace.key.clone())
                .or_insert_with(|| Bucket::new(pace.burst, pace.per_minute, now))
                .take(now);
        }
    }

    /// After a 429: nothing of this method goes out before `until`.
    pub fn block(&mut self, method: &str, until: DateTime<Utc>) {
        let entry = self
            .blocked_until
            .entry(method.to_string())
            .or_insert(until);
        *entry = (*entry).max(until);
    }

    /// The buckets kept now, sorted.
    #[cfg(test)]
    pub fn bucket_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.buckets.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// How many methods are blocked now.
    #[cfg(test)]
    pub fn blocks(&self) -> usize {
        self.blocked_until.len()
    }
}
