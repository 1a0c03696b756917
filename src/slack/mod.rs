//! Slack: the Socket Mode connections, listener and dispatcher (envelopes into calls of
//! [`crate::handlers`], their results into acks), the `/staffbot` replies, the rendering of every message into Block Kit, the Web API client and Slack's
//! way out for the outbox (`transport`).

mod availability;
pub mod blocks;
pub mod dispatch;
pub mod envelope;
pub mod listener;
pub mod mrkdwn;
pub mod pacer;
pub mod render;
pub mod slash;
pub mod socket;
pub mod transport;
pub mod web;
pub mod write;
