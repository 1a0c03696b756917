//! The leases table: one holder per name, with a fencing token, on the database's clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{db_now, db_now_plus, duration_param, statement};

/// The format of the leases this release writes, and the newest it takes over. A lease a newer
/// release wrote passes to an older one only once it has been expired for
/// [`NEWER_RELEASE_GONE`] × its TTL: during a rolling upgrade the newer release keeps the loops
/// it took; after a rollback (the newer release gone) the older one takes them back.
pub const FORMAT: i32 = 1;

/// See [`FORMAT`].
pub const NEWER_RELEASE_GONE: u32 = 10;

/// Takes or renews lease `name` for `holder` until the database's now + `ttl`; returns its
/// fencing token, or `None` when another holder's lease has not expired (or is a newer
/// release's, see [`FORMAT`]). Taking a lease that was another's, or that lapsed, bumps the
/// token.
pub async fn take<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<i64>, DbErr> {
    let backend = conn.get_database_backend();
    let now = db_now(backend);
    let expires = db_now_plus(backend, 3);
    let gone = db_now_plus(backend, 4);
    let row = conn
        .query_one_raw(statement(
            backend,
            &format!(
                "INSERT INTO leases (name, holder, expires_at, token, format)
                 VALUES ($1, $2, {expires}, 1, {FORMAT})
                 ON CONFLICT (name) DO UPDATE SET
                     token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > {now}
                                  THEN leases.token ELSE leases.token + 1 END,
                     holder = excluded.holder, expires_at = excluded.expires_at,
                     format = excluded.format
                 WHERE (leases.expires_at <= {now} OR leases.holder = excluded.holder)
                   AND (leases.format <= {FORMAT} OR leases.expires_at <= {gone})
                 RETURNING token"
            ),
            vec![
                name.into(),
                holder.into(),
                duration_param(backend, ttl),
                ago(backend, ttl * NEWER_RELEASE_GONE),
            ],
        ))
        .await?;
    row.map(|row| row.try_get("", "token")).transpose()
}

/// The parameter [`db_now_plus`] expects for `d` before now.
fn ago(backend: sea_orm::DatabaseBackend, d: Duration) -> sea_orm::Value {
    match backend {
        sea_orm::DatabaseBackend::Postgres => (-d.as_secs_f64()).into(),
        _ => format!("-{:.3} seconds", d.as_secs_f64()).into(),
    }
}

/// Extends lease `name` by `ttl` if `holder` still holds it with `token` and it has not lapsed;
/// the row stays locked until the caller's transaction ends. False when it was lost.
pub async fn renew_fenced<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    token: i64,
    ttl: Duration,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let now = db_now(backend);
    let expires = db_now_plus(backend, 4);
    Ok(conn
        .execute_raw(statement(
            backend,
            &format!(
                "UPDATE leases SET expires_at = {expires}
                 WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > {now}"
            ),
            vec![
                name.into(),
                holder.into(),
                token.into(),
                duration_param(backend, ttl),
            ],
        ))
        .await?
        .rows_affected()
        == 1)
}

/// Gives lease `name` up if `holder` has it.
pub async fn release<C: ConnectionTrait>(conn: &C, name: &str, holder: &str) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "UPDATE leases SET expires_at = $3 WHERE name = $1 AND holder = $2",
        vec![
            name.into(),
            holder.into(),
            DateTime::<Utc>::UNIX_EPOCH.into(),
        ],
    ))
    .await?;
    Ok(())
}
