//! Availability and working hours (issue 28): each worker's hours per weekday for a week
//! (`worker_availability`, Orchestra's `WorkerAvailability`), the most hours a day they may be
//! auto-staffed (`workers.max_autostaff_hours_per_day`, Orchestra's default 0), their time zone
//! (from Slack, or set by an admin) and their own working hours and days; and a request's
//! task hours as its step's `assignable_hours_function` gave them (`staffing_requests.task_hours`,
//! computed once), and when a request waits for working hours (`waiting_until`, in
//! `waiting_tz`). Expand only: every new column may be null or has a default that older
//! releases' inserts satisfy.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261208_000012_availability"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "CREATE TABLE worker_availability (
                 id {pk},
                 worker_id {id} NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
                 week TEXT NOT NULL,
                 mon DOUBLE PRECISION NOT NULL DEFAULT 0,
                 tue DOUBLE PRECISION NOT NULL DEFAULT 0,
                 wed DOUBLE PRECISION NOT NULL DEFAULT 0,
                 thu DOUBLE PRECISION NOT NULL DEFAULT 0,
                 fri DOUBLE PRECISION NOT NULL DEFAULT 0,
                 sat DOUBLE PRECISION NOT NULL DEFAULT 0,
                 sun DOUBLE PRECISION NOT NULL DEFAULT 0,
                 updated_at {ts} NOT NULL,
                 UNIQUE (worker_id, week)
             );
             CREATE INDEX worker_availability_by_week ON worker_availability (week);
             ALTER TABLE workers ADD COLUMN max_autostaff_hours_per_day DOUBLE PRECISION NOT NULL DEFAULT 0;
             ALTER TABLE workers ADD COLUMN tz TEXT;
             ALTER TABLE workers ADD COLUMN tz_set_by_admin BOOLEAN NOT NULL DEFAULT FALSE;
             ALTER TABLE workers ADD COLUMN tz_checked_at {ts};
             ALTER TABLE workers ADD COLUMN working_hours TEXT;
             ALTER TABLE workers ADD COLUMN working_days TEXT;
             ALTER TABLE staffing_requests ADD COLUMN task_hours DOUBLE PRECISION;
             ALTER TABLE staffing_requests ADD COLUMN waiting_until {ts};
             ALTER TABLE staffing_requests ADD COLUMN waiting_tz TEXT",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE staffing_requests DROP COLUMN waiting_tz;
             ALTER TABLE staffing_requests DROP COLUMN waiting_until;
             ALTER TABLE staffing_requests DROP COLUMN task_hours;
             ALTER TABLE workers DROP COLUMN working_days;
             ALTER TABLE workers DROP COLUMN working_hours;
             ALTER TABLE workers DROP COLUMN tz_checked_at;
             ALTER TABLE workers DROP COLUMN tz_set_by_admin;
             ALTER TABLE workers DROP COLUMN tz;
             ALTER TABLE workers DROP COLUMN max_autostaff_hours_per_day;
             DROP TABLE worker_availability",
        )
        .await
    }
}
