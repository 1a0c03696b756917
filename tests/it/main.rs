//! Integration tests: real migrations on a real database (SQLite by default, PostgreSQL when
//! `STAFFBOT_TEST_PG_URL` is set: each test gets a fresh schema), and the built binary.

mod availability;
mod cli;
mod common;
mod correctness;
mod demo;
mod email;
mod faults;
mod fencing;
mod harness;
mod home;
mod layout;
mod lifecycle;
mod loops;
mod machine;
mod mailserver;
mod manifest;
mod migrations;
mod notices;
mod ops;
mod process;
mod properties;
mod replicas;
mod retention;
mod scripts;
mod seen;
mod simulate;
mod slack;
mod socket;
mod staffing;
mod upgrade;
mod whitelists;
mod workflow_load;
