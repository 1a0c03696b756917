//! Slack: the Socket Mode connections, listener and dispatcher, the `/staffbot` grammar and
//! replies, the rendering of every message into Block Kit, the Web API client and the outbox
//! sender.

mod actions;
mod availability;
pub mod blocks;
pub mod command;
pub mod dispatch;
pub mod envelope;
pub mod listener;
pub mod mrkdwn;
pub mod pacer;
pub mod render;
pub mod sender;
pub mod slash;
pub mod socket;
pub mod web;
pub mod write;
