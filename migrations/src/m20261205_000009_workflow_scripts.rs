//! Teams' own scripts (issue 15): the source of every `script:<file>.rhai` a workflow version
//! uses, read when the version is loaded and stored with it (`{"checks.rhai": "…"}`), so the
//! daemon never reads files at run time and `workflow load` sees when a script changed.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000009_workflow_scripts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE workflow_versions ADD COLUMN scripts {json}",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, "ALTER TABLE workflow_versions DROP COLUMN scripts").await
    }
}
