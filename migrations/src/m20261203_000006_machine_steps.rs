//! Machine steps (issue 10): a step's Orchestra `execution_function` and
//! `assignable_hours_function`; every task's output (JSON, passed to the tasks that depend on
//! it); and a machine task's run state (attempts, when to try again, the last error, when it
//! was last reported as waiting).

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000006_machine_steps"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE steps ADD COLUMN execution_function {json};
             ALTER TABLE steps ADD COLUMN assignable_hours_function {json};
             ALTER TABLE tasks ADD COLUMN output {json};
             ALTER TABLE tasks ADD COLUMN machine_attempts INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE tasks ADD COLUMN machine_next_attempt_at {ts};
             ALTER TABLE tasks ADD COLUMN machine_last_error TEXT;
             ALTER TABLE tasks ADD COLUMN machine_warned_at {ts}",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE tasks DROP COLUMN machine_warned_at;
             ALTER TABLE tasks DROP COLUMN machine_last_error;
             ALTER TABLE tasks DROP COLUMN machine_next_attempt_at;
             ALTER TABLE tasks DROP COLUMN machine_attempts;
             ALTER TABLE tasks DROP COLUMN output;
             ALTER TABLE steps DROP COLUMN assignable_hours_function;
             ALTER TABLE steps DROP COLUMN execution_function",
        )
        .await
    }
}
