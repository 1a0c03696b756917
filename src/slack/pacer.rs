//! Pacing of Web API calls within Slack's published limits (slack-protocol §3.3), so staffbot
//! waits instead of provoking 429s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

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

/// Slack's published limits (slack-protocol §3.3): per method and workspace, and for
/// `chat.postMessage` one message per second per channel. We pace instead of provoking 429s.
///
/// There is a bucket per DM channel, so idle state is dropped (at most every [`SWEEP_EVERY`]):
/// a bucket refilled to capacity is what a new one would be, and a block that has passed
/// blocks nothing. Memory follows the channels written to recently, not all channels ever.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Rates set for methods besides Slack's (`smtp`: `email.per_minute`).
    rates: HashMap<String, (f64, f64)>,
    buckets: HashMap<String, Bucket>,
    blocked_until: HashMap<String, DateTime<Utc>>,
    swept_at: Option<DateTime<Utc>>,
}

/// How often the pacer drops idle buckets and expired blocks.
const SWEEP_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

fn method_rate(method: &str) -> (f64, f64) {
    match method {
        // Special tier: a workspace-wide limit Slack does not publish; stay well inside it.
        "chat.postMessage" => (60.0, 600.0),
        "chat.postEphemeral" | "views.publish" | "users.info" => (100.0, 100.0),
        "auth.test" => (100.0, 6000.0),
        // Tier 3: chat.update, conversations.open/invite/kick and anything else.
        _ => (50.0, 50.0),
    }
}

impl Pacer {
    /// Paces `method` at `per_minute` calls a minute, in bursts of `burst` at most.
    pub fn with_rate(mut self, method: &str, burst: f64, per_minute: f64) -> Pacer {
        self.rates
            .insert(method.to_string(), (burst.max(1.0), per_minute.max(1.0)));
        self
    }

    fn keys(&self, method: &str, body: &Value) -> Vec<(String, (f64, f64))> {
        let rate = self
            .rates
            .get(method)
            .copied()
            .unwrap_or_else(|| method_rate(method));
        let mut keys = vec![(method.to_string(), rate)];
        if method == "chat.postMessage"
            && let Some(channel) = body.get("channel").and_then(Value::as_str)
        {
            // One per second per channel, with a small burst.
            keys.push((format!("{method}:{channel}"), (2.0, 60.0)));
        }
        keys
    }

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

    /// When a call of `method` with `body` may go out.
    pub fn ready_at(&mut self, method: &str, body: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
        self.sweep(now);
        let mut at = now;
        if let Some(until) = self.blocked_until.get(method) {
            at = at.max(*until);
        }
        for (key, (capacity, per_minute)) in self.keys(method, body) {
            let bucket = self
                .buckets
                .entry(key)
                .or_insert_with(|| Bucket::new(capacity, per_minute, now));
            at = at.max(bucket.ready_at(now));
        }
        at
    }

    pub fn record(&mut self, method: &str, body: &Value, now: DateTime<Utc>) {
        for (key, (capacity, per_minute)) in self.keys(method, body) {
            self.buckets
                .entry(key)
                .or_insert_with(|| Bucket::new(capacity, per_minute, now))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn one_post_per_second_per_channel() {
        let mut p = Pacer::default();
        let dm = json!({"channel": "U1"});
        let other = json!({"channel": "U2"});
        for _ in 0..2 {
            assert_eq!(p.ready_at("chat.postMessage", &dm, t(0)), t(0));
            p.record("chat.postMessage", &dm, t(0));
        }
        // The burst of two is spent: the third waits a second; another channel does not.
        assert_eq!(p.ready_at("chat.postMessage", &dm, t(0)), t(1));
        assert_eq!(p.ready_at("chat.postMessage", &other, t(0)), t(0));
        assert_eq!(p.ready_at("chat.postMessage", &dm, t(1)), t(1));
    }

    #[test]
    fn a_429_blocks_only_its_method() {
        let mut p = Pacer::default();
        p.block("chat.update", t(5));
        assert_eq!(p.ready_at("chat.update", &json!({}), t(0)), t(5));
        assert_eq!(
            p.ready_at("chat.postMessage", &json!({"channel": "C"}), t(0)),
            t(0)
        );
        assert_eq!(p.ready_at("chat.update", &json!({}), t(6)), t(6));
    }

    #[test]
    fn idle_buckets_and_past_blocks_are_dropped() {
        let mut p = Pacer::default();
        for i in 0..1000 {
            p.record(
                "chat.postMessage",
                &json!({"channel": format!("U{i}")}),
                t(0),
            );
        }
        p.block("chat.update", t(30));
        let busy = json!({"channel": "UBUSY"});
        for _ in 0..2 {
            p.record("chat.postMessage", &busy, t(100));
        }
        assert_eq!(p.buckets.len(), 1002);
        // At t(100) the 1000 DM buckets are full again, the block is over; the method bucket
        // (1002 posts, 10 a second back) and UBUSY's (just emptied) still pace.
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(100)), t(101));
        let mut kept: Vec<&str> = p.buckets.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["chat.postMessage", "chat.postMessage:UBUSY"]);
        assert!(p.blocked_until.is_empty());
        // Sweeps are at most a minute apart; a dropped bucket comes back full.
        p.record("chat.postMessage", &json!({"channel": "U1"}), t(100));
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(130)), t(130));
        assert_eq!(p.buckets.len(), 3);
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(160)), t(160));
        assert_eq!(
            p.buckets.len(),
            2,
            "U1's went, the two just asked about are new"
        );
        assert!(!p.buckets.contains_key("chat.postMessage:U1"));
    }

    #[test]
    fn tier_buckets_allow_bursts_then_pace() {
        let mut p = Pacer::default();
        for _ in 0..50 {
            assert_eq!(p.ready_at("conversations.invite", &json!({}), t(0)), t(0));
            p.record("conversations.invite", &json!({}), t(0));
        }
        assert_eq!(
            p.ready_at("conversations.invite", &json!({}), t(0)),
            t(0) + chrono::Duration::milliseconds(1200)
        );
    }
}
