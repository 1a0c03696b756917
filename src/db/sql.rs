//! Raw SQL for both backends: the database's clock and durations as SQL, PostgreSQL's array
//! parameters for bulk writes, and statements written with `$n` placeholders.

use std::time::Duration;

use sea_orm::DatabaseBackend;

/// The database's current time, in SQL: leases and claims are compared on one clock, the
/// database's, whatever the hosts' clocks say.
pub fn db_now(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "clock_timestamp()",
        // Stored timestamps are RFC 3339 text; this compares with them as text.
        _ => "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')",
    }
}

/// The database's current time plus the duration bound as parameter `$n` (see
/// [`duration_param`]).
pub fn db_now_plus(backend: DatabaseBackend, n: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("(clock_timestamp() + make_interval(secs => ${n}))"),
        _ => format!("(strftime('%Y-%m-%dT%H:%M:%f', 'now', ${n}) || '+00:00')"),
    }
}

/// The parameter [`db_now_plus`] expects for `d`.
pub fn duration_param(backend: DatabaseBackend, d: Duration) -> sea_orm::Value {
    match backend {
        DatabaseBackend::Postgres => d.as_secs_f64().into(),
        _ => format!("+{:.3} seconds", d.as_secs_f64()).into(),
    }
}

/// A PostgreSQL array literal of `items` (`{"a","b\"c"}`), bound as one text parameter and
/// cast in SQL (`$1::text[]`): a whole column of a bulk write in one parameter
/// (`INSERT … SELECT … FROM UNNEST(…)`), so the statement's text, and its prepared plan, are
/// the same whatever the number of rows.
pub(crate) fn pg_text_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// [`pg_text_array`] for numbers (`$1::bigint[]`).
pub(crate) fn pg_int_array(items: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item.to_string());
    }
    out.push('}');
    out
}

pub fn is_postgres(db: &impl sea_orm::ConnectionTrait) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}

/// A raw statement for this backend: SQL written with PostgreSQL's `$1, $2…` placeholders
/// becomes `?1, ?2…` on SQLite.
pub fn statement(
    backend: DatabaseBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::Statement {
    let text = match backend {
        DatabaseBackend::Postgres => sql.to_string(),
        _ => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    sea_orm::Statement::from_sql_and_values(backend, text, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element_and_escape_quotes_and_backslashes() {
        assert_eq!(pg_text_array([]), "{}");
        assert_eq!(
            pg_text_array(["a", "", "NULL", "{x, y}", r#"say "hi" \ bye"#]),
            r#"{"a","","NULL","{x, y}","say \"hi\" \\ bye"}"#
        );
        assert_eq!(pg_int_array([1, -2, 30]), "{1,-2,30}");
        assert_eq!(pg_int_array([]), "{}");
    }
}
