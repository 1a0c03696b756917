//! Database migrations for staffbot. One file per migration; `Migrator` lists them in order.
//!
//! The schema is written as SQL with a handful of type placeholders so that one text serves
//! SQLite and PostgreSQL alike (see [`dialect`]). The integrity rules the rest of staffbot relies
//! on (one live assignment per task and counter, one winner per request, one response per
//! inquiry, one open request per task, unique outbox dedupe keys) are enforced here, by the
//! database, not by application code.

pub use sea_orm_migration;
use sea_orm_migration::prelude::*;

mod dialect;
mod m20261127_000001_init;
mod m20261127_000002_envelope_responses;
mod m20261127_000003_request_task_index;
mod m20261127_000004_assignment_handovers;
mod m20261202_000004_offer_failures;
mod m20261202_000005_lease_tokens;
mod m20261203_000006_machine_steps;
mod m20261203_000007_task_status_changes;
mod m20261204_000008_home_tabs;
mod m20261205_000009_workflow_scripts;
mod m20261206_000010_email;
mod m20261207_000011_script_hardening;
mod m20261208_000012_availability;
mod m20261208_000013_outbox_format;
mod m20261209_000014_row_formats;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_init::Migration),
            Box::new(m20261127_000002_envelope_responses::Migration),
            Box::new(m20261127_000003_request_task_index::Migration),
            Box::new(m20261127_000004_assignment_handovers::Migration),
            Box::new(m20261202_000004_offer_failures::Migration),
            Box::new(m20261202_000005_lease_tokens::Migration),
            Box::new(m20261203_000006_machine_steps::Migration),
            Box::new(m20261203_000007_task_status_changes::Migration),
            Box::new(m20261204_000008_home_tabs::Migration),
            Box::new(m20261205_000009_workflow_scripts::Migration),
            Box::new(m20261206_000010_email::Migration),
            Box::new(m20261207_000011_script_hardening::Migration),
            Box::new(m20261208_000012_availability::Migration),
            Box::new(m20261208_000013_outbox_format::Migration),
            Box::new(m20261209_000014_row_formats::Migration),
        ]
    }
}
