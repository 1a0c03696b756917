//! Socket Mode deliveries: writing envelopes and raw frames to one open connection, recording
//! the client's acks, and what every envelope the fake builds shares (fresh ids, overrides, the
//! payload's `user` and verification token).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::fixtures;
use crate::state::Outgoing;
use crate::{Ack, FakeSlack, Inner};

/// How long an envelope waits for an open connection before the send panics.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);

impl FakeSlack {
    /// Sends any envelope as given to one connection; returns its `envelope_id` (or `""`).
    ///
    /// # Panics
    ///
    /// If no connection opens within 10 s.
    pub async fn send_envelope(&self, envelope: Value) -> String {
        let envelope_id = envelope
            .get("envelope_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let frame = envelope.to_string();
        if let Some(id) = &envelope_id {
            let (id, f) = (id.clone(), frame.clone());
            self.inner.update(move |s| {
                s.frames.insert(id, f);
            });
        }
        self.inner.deliver(frame, envelope_id.clone()).await;
        envelope_id.unwrap_or_default()
    }

    /// Sends an envelope sent before once more, unchanged, as Slack does when it did not see
    /// the ack in time.
    ///
    /// # Panics
    ///
    /// If no envelope with that id was sent.
    pub async fn redeliver(&self, envelope_id: &str) {
        let frame = self
            .inner
            .update(|s| s.frames.get(envelope_id).cloned())
            .unwrap_or_else(|| panic!("slack-sim: no envelope {envelope_id} to redeliver"));
        self.inner
            .deliver(frame, Some(envelope_id.to_string()))
            .await;
    }

    /// Sends a raw text frame, unparsed, to one connection.
    ///
    /// # Panics
    ///
    /// If no connection opens within 10 s.
    pub async fn send_raw(&self, frame: &str) {
        self.inner.deliver(frame.to_string(), None).await;
    }

    /// Waits until an ack for `envelope_id` arrives (or has arrived); `None` on timeout.
    pub async fn wait_ack(&self, envelope_id: &str, timeout: Duration) -> Option<Ack> {
        let mut found = None;
        self.inner
            .wait_until(timeout, |s| {
                found = s
                    .acks
                    .iter()
                    .find(|a| a.envelope_id == envelope_id)
                    .cloned();
                found.is_some()
            })
            .await;
        found
    }

    /// All acks so far, in arrival order.
    pub fn acks(&self) -> Vec<Ack> {
        self.inner.read(|s| s.acks.clone())
    }

    /// A fresh envelope id, trigger id and loopback response URL.
    pub(crate) fn fresh_envelope_ids(&self) -> (String, String, String) {
        let nonce = self.inner.nonce;
        let n = self.inner.update(|s| s.next_id());
        let envelope_id = format!("{nonce:08x}-fa4e-4000-8000-{n:012x}");
        let trigger_id = format!("{}.{}.{nonce:08x}{n:024x}", 10_000 + n, 26_768_298_162u64);
        let response_url = format!("{}/response/{n}", self.inner.base_url());
        (envelope_id, trigger_id, response_url)
    }
}

impl Inner {
    /// Writes `frame` to one open connection, round-robin, waiting up to 10 s for one.
    async fn deliver(&self, frame: String, envelope_id: Option<String>) {
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let available = self.wait_until(left, |s| !s.deliverable().is_empty()).await;
            assert!(
                available,
                "slack-sim: no open Socket Mode connection within {DELIVERY_WAIT:?} to deliver {frame}"
            );
            let Some(tx) = self.update(|s| {
                let ids = s.deliverable();
                if ids.is_empty() {
                    return None;
                }
                let id = ids[s.round_robin % ids.len()];
                s.round_robin = s.round_robin.wrapping_add(1);
                s.conns.get(&id).map(|c| c.tx.clone())
            }) else {
                continue;
            };
            let (done, written) = oneshot::channel();
            let sent = tx.send(Outgoing::Text {
                text: frame.clone(),
                envelope_id: envelope_id.clone(),
                done,
            });
            if sent.is_ok() && written.await == Ok(true) {
                return;
            }
            // That connection went away between picking and writing; try another one.
            tokio::task::yield_now().await;
        }
    }

    /// Parses a client frame as an ack and records it.
    pub(crate) fn record_frame(&self, raw: &str) {
        let parsed: Option<Value> = serde_json::from_str(raw).ok();
        let Some(envelope_id) = parsed
            .as_ref()
            .and_then(|v| v.get("envelope_id"))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            tracing::warn!(frame = raw, "slack-sim: client frame is not an ack");
            return;
        };
        let payload = parsed
            .as_ref()
            .and_then(|v| v.get("payload"))
            .filter(|p| !p.is_null())
            .cloned();
        let now = Instant::now();
        self.update(|s| {
            let latency = s
                .sent_at
                .get(&envelope_id)
                .map(|t| now.saturating_duration_since(*t))
                .unwrap_or_default();
            tracing::debug!(%envelope_id, ?latency, "slack-sim: ack");
            s.acks.push(Ack {
                envelope_id,
                payload,
                latency,
                raw: raw.to_string(),
            });
        });
    }
}

/// Merges `overrides` over the top level of `payload`; a `null` removes the field.
pub(crate) fn merge_overrides(payload: &mut Value, overrides: serde_json::Map<String, Value>) {
    if let Some(obj) = payload.as_object_mut() {
        for (key, value) in overrides {
            if value.is_null() {
                obj.remove(&key);
            } else {
                obj.insert(key, value);
            }
        }
    }
}

/// The `user` object of an interactive payload.
pub(crate) fn payload_user(user_id: &str, name: &str, team_id: &str) -> Value {
    json!({"id": user_id, "username": name, "name": name, "team_id": team_id})
}

/// The verification token every payload the fake builds carries: the one of Slack's
/// `block_actions` example (`verification_token`), so that all payloads agree.
pub(crate) fn payload_token() -> Value {
    fixtures::load(fixtures::BLOCK_ACTIONS_PAYLOAD)["token"].take()
}
