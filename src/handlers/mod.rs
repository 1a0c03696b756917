//! What people do, whatever way they reach staffbot: answer an offer (a button, an email reply;
//! [`offer`]), press a Home button ([`home`]), submit a form ([`modal`]), type a `/staffbot`
//! command ([`slash`], with its grammar in [`command`]). Each handler runs inside the caller's
//! transaction and returns what the person is told, as data. The transports sit above: Slack's
//! dispatcher turns envelopes into these calls and their results into acks and Block Kit, the
//! mailbox loop does the same for email replies.
//!
//! A refusal (a [`UserError`]: the task moved on, the person may not) undoes everything the
//! handler did and is told instead, in a transaction of its own: [`refusable`] is the one place
//! where that happens.

pub mod command;
pub mod home;
pub mod modal;
pub mod offer;
pub mod slash;

use sea_orm::{DatabaseConnection, DatabaseTransaction};

use crate::db;
use crate::error::{Error, UserError};

/// Runs `act` in a write transaction and commits it. When `act` is refused (a [`UserError`]),
/// nothing of it is kept: `refused` runs with the refusal in a transaction of its own (to tell
/// the person why, and to record what must be recorded either way).
pub async fn refusable<T>(
    db: &DatabaseConnection,
    act: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, Error>,
    refused: impl AsyncFnOnce(&DatabaseTransaction, &UserError) -> Result<T, Error>,
) -> Result<T, Error> {
    let tx = db::begin_write(db).await?;
    let acted = act(&tx).await;
    match db::settle(tx, acted).await {
        Err(Error::User(refusal)) => {
            tracing::info!("refused: {refusal}");
            let tx = db::begin_write(db).await?;
            let told = refused(&tx, &refusal).await;
            db::settle(tx, told).await
        }
        other => other,
    }
}
