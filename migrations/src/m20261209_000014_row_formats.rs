//! Rolling upgrades (issue 30, part 1 continued): besides the outbox, every shared row whose
//! meaning a release can change says which format wrote it, and a release reads only the
//! formats it knows: a lease (`leases.format`), a stored reply to an envelope
//! (`handled_envelopes.format`), a Home's notice (`home_tabs.format`), a machine task's state
//! (`tasks.machine_format`) and a request's stored description
//! (`staffing_requests.details_format`). Rows written before are format 1. Expand only: the
//! defaults satisfy older releases' inserts.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261209_000014_row_formats"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE leases ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE handled_envelopes ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE home_tabs ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE tasks ADD COLUMN machine_format INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE staffing_requests ADD COLUMN details_format INTEGER NOT NULL DEFAULT 1",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE staffing_requests DROP COLUMN details_format;
             ALTER TABLE tasks DROP COLUMN machine_format;
             ALTER TABLE home_tabs DROP COLUMN format;
             ALTER TABLE handled_envelopes DROP COLUMN format;
             ALTER TABLE leases DROP COLUMN format",
        )
        .await
    }
}
