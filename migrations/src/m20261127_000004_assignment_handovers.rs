//! Counts how many times each assignment changed hands. The Slack effects of a hand-over (the
//! new worker's invite and welcome, the previous worker's kick and DM) are keyed on this count,
//! so a task handed back and forth gets them every time, while a retried transaction (which
//! rolls the count back too) still queues them once.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000004_assignment_handovers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE task_assignments ADD COLUMN handovers INTEGER NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE task_assignments DROP COLUMN handovers",
        )
        .await
    }
}
