//! Handled Socket Mode envelopes: the idempotency record a handler writes in its own
//! transaction, and the reply a redelivery is acked with.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde_json::Value;

use super::entities::handled_envelope;

/// The format of the replies this release stores, and the newest it replays. A newer
/// release's reply (a redelivery of an envelope it handled) is acked without a payload: the
/// envelope was handled, and what it answered is not this release's to repeat.
pub const FORMAT: i32 = 1;

/// The reply stored for `envelope_id` when it was handled before: `Some(None)` for an envelope
/// acked without a payload (or with a reply in a newer release's format), `None` when it was
/// never handled.
pub async fn stored_reply<C: ConnectionTrait>(
    conn: &C,
    envelope_id: &str,
) -> Result<Option<Option<Value>>, DbErr> {
    Ok(
        handled_envelope::Entity::find_by_id(envelope_id.to_string())
            .one(conn)
            .await?
            .map(|row| {
                if row.format > FORMAT {
                    tracing::debug!(
                        format = row.format,
                        "a redelivered envelope's reply is a newer release's: acked without it"
                    );
                    return None;
                }
                row.response.filter(|p| !p.is_null())
            }),
    )
}

/// Records `envelope_id` as handled at `now` with its reply. No `ON CONFLICT`: an envelope
/// handled twice (a redelivery, another replica at the same moment) fails on the primary key,
/// and the caller's transaction rolls back.
pub async fn record_handled<C: ConnectionTrait>(
    conn: &C,
    envelope_id: &str,
    response: Option<Value>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    handled_envelope::Entity::insert(handled_envelope::ActiveModel {
        envelope_id: Set(envelope_id.to_string()),
        handled_at: Set(now),
        response: Set(response),
        format: Set(FORMAT),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
