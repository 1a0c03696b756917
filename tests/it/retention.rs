//! Retention: handled envelopes and finished outbox rows past `retention.*` are deleted, newer
//! ones and pending ones are kept: by the loop's `run_once` and by `staffbot tick retention`.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};
use staffbot::config::Config;
use staffbot::db::statement;
use staffbot::lease::try_lease;
use staffbot::loops::{Loop, run_loop_once};
use staffbot::outbox::enqueue;

use crate::common::TestDb;

async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) {
    db.execute_raw(statement(db.get_database_backend(), sql, values))
        .await
        .expect(sql);
}

/// With the default retention (envelopes 7 days, outbox 30 days) at `now`: envelopes `old` and
/// `new`, plus `bulk` old ones; outbox rows by status and age (`old-*` are 31 days old).
async fn seed(db: &DatabaseConnection, now: DateTime<Utc>, bulk: u32) {
    let days = |n| now - Duration::days(n);
    for (id, at) in [("old", days(8)), ("new", days(6))] {
        exec(
            db,
            "INSERT INTO handled_envelopes (envelope_id, handled_at) VALUES ($1, $2)",
            vec![id.into(), at.into()],
        )
        .await;
        // An email reply read at the same time, by its Message-ID.
        exec(
            db,
            "INSERT INTO email_replies (message_id, verdict, handled_at) VALUES ($1, 'ignored', $2)",
            vec![format!("{id}@mail.example.com").into(), at.into()],
        )
        .await;
    }
    exec(
        db,
        "INSERT INTO handled_envelopes (envelope_id, handled_at)
         SELECT 'bulk-' || CAST(i AS TEXT), $1
         FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
               SELECT i FROM n WHERE i <= $2) AS s",
        vec![days(9).into(), (bulk as i64).into()],
    )
    .await;
    // (key, status, last attempt, handed to Slack at)
    for (key, status, at, sent_at) in [
        ("old-sent", "sent", days(31), Some(days(31))),
        ("old-failed", "failed", days(31), None),
        ("new-sent", "sent", days(29), Some(days(29))),
        ("old-pending", "pending", days(31), None),
        (
            "old-pending-handed-over",
            "pending",
            days(31),
            Some(days(31)),
        ),
    ] {
        enqueue(db, key, crate::common::note("C0PROJ", key), at)
            .await
            .expect("queued");
        exec(
            db,
            "UPDATE outbox SET status = $1, sent_at = $2 WHERE dedupe_key = $3",
            vec![status.into(), sent_at.into(), key.into()],
        )
        .await;
    }
}

#[derive(Debug, FromQueryResult)]
struct Key {
    key: String,
}

/// The envelope ids and outbox keys left, sorted (bulk envelopes counted, not listed).
async fn left(db: &DatabaseConnection) -> (Vec<String>, Vec<String>) {
    let keys = |sql: &str| {
        Key::find_by_statement(statement(db.get_database_backend(), sql, vec![])).all(db)
    };
    let envelopes = keys(
        "SELECT envelope_id AS key FROM handled_envelopes WHERE envelope_id NOT LIKE 'bulk-%'
         UNION ALL SELECT 'bulk: ' || CAST(COUNT(*) AS TEXT) FROM handled_envelopes
         WHERE envelope_id LIKE 'bulk-%' ORDER BY 1",
    )
    .await
    .expect("envelopes");
    let outbox = keys("SELECT dedupe_key AS key FROM outbox ORDER BY dedupe_key")
        .await
        .expect("outbox");
    let replies = keys("SELECT message_id AS key FROM email_replies ORDER BY message_id")
        .await
        .expect("email replies");
    let names = |rows: Vec<Key>| rows.into_iter().map(|k| k.key).collect::<Vec<_>>();
    let mut envelopes = names(envelopes);
    envelopes.extend(names(replies));
    (envelopes, names(outbox))
}

const KEPT_OUTBOX: [&str; 3] = ["new-sent", "old-pending", "old-pending-handed-over"];

#[tokio::test]
async fn the_retention_loop_deletes_what_is_past_retention_in_batches() {
    let t = TestDb::new().await;
    let now = Utc::now();
    // More than two statements' worth of old envelopes.
    seed(&t.db, now, 2500).await;
    let lease = try_lease(
        &t.db,
        "retention",
        "test",
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("lease")
    .expect("free");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let config = Config::default();
    let run = run_loop_once(&t.db, Loop::Retention, &lease, &config, now, &mut rng)
        .await
        .expect("run");
    assert_eq!(
        run.summary,
        "2501 handled envelope(s), 1 email reply id(s) and 2 sent or failed outbox row(s) deleted"
    );
    assert_eq!(
        left(&t.db).await,
        (
            vec![
                "bulk: 0".to_string(),
                "new".to_string(),
                "new@mail.example.com".to_string()
            ],
            KEPT_OUTBOX.map(String::from).to_vec()
        )
    );
    let again = run_loop_once(&t.db, Loop::Retention, &lease, &config, now, &mut rng)
        .await
        .expect("run");
    assert_eq!(
        again.summary,
        "0 handled envelope(s), 0 email reply id(s) and 0 sent or failed outbox row(s) deleted"
    );
}

#[tokio::test]
async fn tick_retention_deletes_what_is_past_retention() {
    let t = TestDb::new().await;
    seed(&t.db, Utc::now(), 0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = assert_cmd::Command::cargo_bin("staffbot")
        .expect("binary built")
        .args(["tick", "retention"])
        .current_dir(dir.path())
        .env_clear()
        .env("STAFFBOT_DATABASE_URL", &t.url)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "retention: 1 handled envelope(s), 1 email reply id(s) and 2 sent or failed outbox row(s) deleted\n\
         outbox: not delivered (SLACK_BOT_TOKEN is not set)\n"
    );
    assert_eq!(
        left(&t.db).await,
        (
            vec![
                "bulk: 0".to_string(),
                "new".to_string(),
                "new@mail.example.com".to_string()
            ],
            KEPT_OUTBOX.map(String::from).to_vec()
        )
    );
}
