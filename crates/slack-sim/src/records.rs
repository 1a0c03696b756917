//! What the app did, as tests read it: the Web API calls it made, the messages stored per
//! channel (and their text as a person reads it), and the bodies posted to `response_url`s.

use std::time::Duration;

use serde_json::Value;

use crate::state;
use crate::{ApiCall, FakeSlack, Message, render};

impl FakeSlack {
    /// Every `/api/*` call so far, in order, failed and faulted ones included.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.inner.read(|s| s.calls.clone())
    }

    /// The calls of one method, in order.
    pub fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.inner.read(|s| {
            s.calls
                .iter()
                .filter(|c| c.method == method)
                .cloned()
                .collect()
        })
    }

    /// Waits until `calls_to(method).len() >= n`; `false` on timeout.
    pub async fn wait_for_calls(&self, method: &str, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| {
                s.calls.iter().filter(|c| c.method == method).count() >= n
            })
            .await
    }

    /// `text` as a person sees it in Slack: mentions and channel links by name, links by their
    /// label, escapes undone; a raw `<…>` in it reads as a link (see [`render::render`]).
    pub fn render(&self, text: &str) -> String {
        self.inner.read(|s| {
            let channels = s
                .channels
                .iter()
                .map(|(id, c)| (id.clone(), c.name.clone()))
                .collect();
            render::render(text, &s.users, &channels)
        })
    }

    /// The messages currently stored in a channel (after updates), oldest first. A user id
    /// (`U…`/`W…`) is read as that user's DM.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let channel = if channel.starts_with('U') || channel.starts_with('W') {
            state::dm_id(channel)
        } else {
            channel.to_string()
        };
        self.inner.read(|s| {
            s.messages
                .iter()
                .filter(|m| m.channel == channel)
                .cloned()
                .collect()
        })
    }

    /// The bodies POSTed to `response_url`s, in order (non-JSON bodies as JSON strings).
    pub fn response_posts(&self) -> Vec<Value> {
        self.inner.read(|s| s.response_posts.clone())
    }
}
