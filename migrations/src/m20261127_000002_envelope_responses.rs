//! Remembers the ack payload of each handled envelope, so a redelivered envelope gets the same
//! reply without being acted on twice.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000002_envelope_responses"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE handled_envelopes ADD COLUMN response {json};
             CREATE INDEX handled_envelopes_by_time ON handled_envelopes (handled_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "DROP INDEX IF EXISTS handled_envelopes_by_time;
             ALTER TABLE handled_envelopes DROP COLUMN response",
        )
        .await
    }
}
