//! An index on every staffing request's task: the warning loop looks up each task's latest
//! request, which without it costs a scan of all requests per task on PostgreSQL.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000003_request_task_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "CREATE INDEX staffing_requests_by_task ON staffing_requests (task_id, id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, "DROP INDEX IF EXISTS staffing_requests_by_task").await
    }
}
