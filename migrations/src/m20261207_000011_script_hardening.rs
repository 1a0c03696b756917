//! Hardening of teams' scripts (issue 25): a request's detailed description is rendered once,
//! by the staffing tick, and stored with the request (`staffing_requests.details`), so clicks,
//! Homes and email answers never run a team's script or template; and each project whose check
//! script hit a limit waits longer before SanityBot evaluates it again
//! (`projects.sanity_failures`, `projects.sanity_retry_at`). Expand only: both columns may be
//! null or have defaults that older releases' inserts satisfy.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000011_script_hardening"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE staffing_requests ADD COLUMN details {json};
             ALTER TABLE projects ADD COLUMN sanity_failures INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE projects ADD COLUMN sanity_retry_at {ts}",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE projects DROP COLUMN sanity_retry_at;
             ALTER TABLE projects DROP COLUMN sanity_failures;
             ALTER TABLE staffing_requests DROP COLUMN details",
        )
        .await
    }
}
