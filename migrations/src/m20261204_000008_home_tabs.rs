//! The App Home (issue 12): which Slack users have opened staffbot's Home tab (their Home is
//! published again whenever what it shows changes; nobody else's is), and the outcome of their
//! last click there, which their Home shows on top for a while. Admins' Homes show the
//! last seven days of staffing, by when requests were opened.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000008_home_tabs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "CREATE TABLE home_tabs (
                 slack_user_id TEXT PRIMARY KEY,
                 opened_at {ts} NOT NULL,
                 notice TEXT,
                 notice_at {ts}
             );
             CREATE INDEX staffing_requests_by_creation ON staffing_requests (created_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "DROP INDEX staffing_requests_by_creation;
             DROP TABLE home_tabs",
        )
        .await
    }
}
