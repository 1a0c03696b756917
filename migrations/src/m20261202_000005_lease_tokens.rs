//! Fencing tokens for leases: every time a lease changes hands its token grows, and a write
//! under a lease checks the token it was given (see `staffbot::loops::LeaseProof::fence`).

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000005_lease_tokens"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE leases ADD COLUMN token BIGINT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, "ALTER TABLE leases DROP COLUMN token").await
    }
}
