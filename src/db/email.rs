//! Offers by email: the reply tokens of emailed offers, and the replies read (once each).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::entities::{email_reply, offer_reply_token};

/// Stores the reply token of each emailed offer `(token, inquiry_id)`, in one statement.
pub async fn insert_tokens<C: ConnectionTrait>(
    conn: &C,
    tokens: &[(String, i64)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if tokens.is_empty() {
        return Ok(());
    }
    let rows = tokens
        .iter()
        .map(|(token, inquiry_id)| offer_reply_token::ActiveModel {
            token: Set(token.clone()),
            inquiry_id: Set(*inquiry_id),
            created_at: Set(now),
        });
    offer_reply_token::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(offer_reply_token::Column::InquiryId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The offer whose reply token is `token`.
pub async fn inquiry_of<C: ConnectionTrait>(conn: &C, token: &str) -> Result<Option<i64>, DbErr> {
    Ok(offer_reply_token::Entity::find_by_id(token.to_string())
        .one(conn)
        .await?
        .map(|t| t.inquiry_id))
}

/// The reply token of offer `inquiry_id`, if it was emailed.
pub async fn token_of<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
) -> Result<Option<String>, DbErr> {
    Ok(offer_reply_token::Entity::find()
        .filter(offer_reply_token::Column::InquiryId.eq(inquiry_id))
        .one(conn)
        .await?
        .map(|t| t.token))
}

/// Claims the email `message_id` for handling: false when it was handled already (by this
/// process before a crash, or by another replica). On PostgreSQL a concurrent claim of the same
/// id waits for this transaction and then finds the row.
pub async fn claim_reply<C: ConnectionTrait>(
    conn: &C,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = email_reply::ActiveModel {
        message_id: Set(message_id.to_string()),
        inquiry_id: Set(None),
        verdict: Set("handling".to_string()),
        handled_at: Set(now),
    };
    let inserted = email_reply::Entity::insert(row)
        .on_conflict(
            OnConflict::column(email_reply::Column::MessageId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// What handling the email `message_id` decided.
pub async fn set_verdict<C: ConnectionTrait>(
    conn: &C,
    message_id: &str,
    inquiry_id: Option<i64>,
    verdict: &str,
) -> Result<(), DbErr> {
    email_reply::Entity::update_many()
        .col_expr(
            email_reply::Column::InquiryId,
            sea_orm::sea_query::Expr::value(inquiry_id),
        )
        .col_expr(
            email_reply::Column::Verdict,
            sea_orm::sea_query::Expr::value(verdict),
        )
        .filter(email_reply::Column::MessageId.eq(message_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The verdict stored for the email `message_id`, if it was handled.
pub async fn verdict_of<C: ConnectionTrait>(
    conn: &C,
    message_id: &str,
) -> Result<Option<String>, DbErr> {
    Ok(email_reply::Entity::find_by_id(message_id.to_string())
        .one(conn)
        .await?
        .map(|r| r.verdict))
}
