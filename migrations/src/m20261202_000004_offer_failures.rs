//! Offers Slack refused for good. An undeliverable offer does not count as asked: its inquiry is
//! removed and the failure recorded here, so the worker can be asked again (once), and the
//! failure stays visible.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000004_offer_failures"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "CREATE TABLE offer_failures (
                id {pk},
                request_id {id} NOT NULL REFERENCES staffing_requests (id) ON DELETE CASCADE,
                worker_id {id} NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
                error TEXT NOT NULL,
                failed_at {ts} NOT NULL
            );
            CREATE INDEX offer_failures_by_request ON offer_failures (request_id, worker_id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, "DROP TABLE IF EXISTS offer_failures").await
    }
}
