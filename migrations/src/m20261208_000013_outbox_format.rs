//! Rolling upgrades (issue 30, part 1): every outbox row says which format wrote it
//! (`outbox.format`), so a sender claims only rows it can read and leaves a newer release's to
//! a newer sender. Rows written before this column existed are format 1. Expand only: the
//! default satisfies older releases' inserts.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261208_000013_outbox_format"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE outbox ADD COLUMN format INTEGER NOT NULL DEFAULT 1",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, "ALTER TABLE outbox DROP COLUMN format").await
    }
}
