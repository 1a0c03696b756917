//! Offers by email (issue 16): each worker's preference (`workers.notify`: `slack`, `email` or
//! `both`), the unguessable token of every emailed offer (in its `Reply-To` plus-address and
//! subject), and every email reply read from the mailbox, by `Message-ID`, so each is handled
//! once across crashes and replicas.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000010_email"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "ALTER TABLE workers ADD COLUMN notify TEXT NOT NULL DEFAULT 'slack'
                 CHECK (notify IN ('slack', 'email', 'both'));
             CREATE TABLE offer_reply_tokens (
                 token TEXT NOT NULL PRIMARY KEY,
                 inquiry_id {id} NOT NULL UNIQUE
                     REFERENCES staffing_inquiries (id) ON DELETE CASCADE,
                 created_at {ts} NOT NULL
             );
             CREATE TABLE email_replies (
                 message_id TEXT NOT NULL PRIMARY KEY,
                 inquiry_id {id},
                 verdict TEXT NOT NULL,
                 handled_at {ts} NOT NULL
             );
             CREATE INDEX email_replies_by_time ON email_replies (handled_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(
            manager,
            "DROP TABLE email_replies;
             DROP TABLE offer_reply_tokens;
             ALTER TABLE workers DROP COLUMN notify",
        )
        .await
    }
}
