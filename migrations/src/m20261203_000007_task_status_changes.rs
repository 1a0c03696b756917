//! Counts how many times each task's status changed. A task's status notices (issue 12) are
//! keyed on this count, so a task returned twice gets a notice each time, while a retried
//! transaction (which rolls the count back too) still queues its notice once.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000007_task_status_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE tasks ADD COLUMN status_changes INTEGER NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, "ALTER TABLE tasks DROP COLUMN status_changes").await
    }
}
