//! staffbot: StaffBot and SanityBot for Orchestra-style workflows, over Slack Socket Mode.
//!
//! Layout (design.md §3): [`config`] reads settings; [`db`] owns entities and queries;
//! [`workflow`] loads workflow definitions and runs the task lifecycle; [`staffing`] owns
//! staffing requests; [`outbox`] queues every Slack write; [`machine`] runs machine steps' commands; [`retention`] prunes
//! what is no longer needed; [`cli`] is the admin command line.

pub mod availability;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod db;
pub mod delivery;
pub mod email;
pub mod error;
pub mod handlers;
pub mod home;
pub mod lease;
pub mod lifecycle;
pub mod loops;
pub mod machine;
pub mod messages;
pub mod notify;
pub mod ops;
pub mod outbox;
pub mod requests;
pub mod retention;
pub mod sanity;
pub mod secrets;
pub mod simulate;
pub mod slack;
pub mod staffing;
pub mod workers;
pub mod workflow;
