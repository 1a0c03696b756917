//! Slack: the Socket Mode connections, listener and dispatcher, the `/staffbot` grammar and
//! replies, the Web API client and the outbox sender.

pub mod blocks;
pub mod command;
pub mod dispatch;
pub mod envelope;
pub mod listener;
pub mod mrkdwn;
pub mod sender;
pub mod slash;
pub mod socket;
pub mod web;
