//! Slack's published limits (slack-protocol §3.3), as the buckets the sender paces Slack's calls
//! with ([`crate::delivery::Pacer`]): per method and workspace, and for `chat.postMessage` one
//! message per second per channel. We pace instead of provoking 429s.

use serde_json::Value;

use crate::delivery::Pace;

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

/// The buckets a call of `method` with `body` draws from.
pub fn paces(method: &str, body: &Value) -> Vec<Pace> {
    let (burst, per_minute) = method_rate(method);
    let mut keys = vec![Pace::new(method, burst, per_minute)];
    if method == "chat.postMessage"
        && let Some(channel) = body.get("channel").and_then(Value::as_str)
    {
        // One per second per channel, with a small burst.
        keys.push(Pace::new(format!("{method}:{channel}"), 2.0, 60.0));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    /// The sender's pacer, as it paces Slack's calls.
    #[derive(Default)]
    struct Pacer(crate::delivery::Pacer);

    impl Pacer {
        fn ready_at(&mut self, method: &str, body: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
            self.0.ready_at(method, &paces(method, body), now)
        }
        fn record(&mut self, method: &str, body: &Value, now: DateTime<Utc>) {
            self.0.record(&paces(method, body), now);
        }
        fn block(&mut self, method: &str, until: DateTime<Utc>) {
            self.0.block(method, until);
        }
    }

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
        assert_eq!(p.0.bucket_keys().len(), 1002);
        // At t(100) the 1000 DM buckets are full again, the block is over; the method bucket
        // (1002 posts, 10 a second back) and UBUSY's (just emptied) still pace.
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(100)), t(101));
        assert_eq!(
            p.0.bucket_keys(),
            ["chat.postMessage", "chat.postMessage:UBUSY"]
        );
        assert_eq!(p.0.blocks(), 0);
        // Sweeps are at most a minute apart; a dropped bucket comes back full.
        p.record("chat.postMessage", &json!({"channel": "U1"}), t(100));
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(130)), t(130));
        assert_eq!(p.0.bucket_keys().len(), 3);
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(160)), t(160));
        assert_eq!(
            p.0.bucket_keys().len(),
            2,
            "U1's went, the two just asked about are new"
        );
        assert!(
            !p.0.bucket_keys()
                .contains(&"chat.postMessage:U1".to_string())
        );
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
