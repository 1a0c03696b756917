//! Migrations run on an empty database, roll back completely and apply again; the integrity
//! rules the design relies on are enforced by the database itself.

use migrations::Migrator;
use migrations::sea_orm_migration::MigratorTrait;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde_json::json;
use staffbot::db::entities::{
    outbox, staffing_inquiry, staffing_request, staffing_response, task, task_assignment,
};
use staffbot::db::{
    AssignmentStatus, InquiryMethod, OutboxStatus, RequestCause, RequestStatus, is_unique_violation,
};
use staffbot::lifecycle;
use staffbot::outbox::enqueue;

use crate::common::{TestDb, add_worker, example_dir, load_workflow, t0};

async fn table_count(db: &impl ConnectionTrait) -> usize {
    let sql = if staffbot::db::is_postgres(db) {
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema()"
    } else {
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .expect("count tables")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n") as usize
}

#[tokio::test]
async fn up_down_up_on_an_empty_database() {
    let t = TestDb::empty().await;
    Migrator::up(&t.db, None).await.expect("up");
    // 23 tables of the data model + seaql_migrations.
    assert_eq!(table_count(&t.db).await, 24);
    assert!(
        Migrator::get_pending_migrations(&t.db)
            .await
            .expect("status")
            .is_empty()
    );

    // Seed data survives nothing across a full rollback, and the schema comes back whole.
    let version = load_workflow(&t.db, &example_dir()).await;
    lifecycle::create_project(&t.db, &version, "seed", 0, None, &Default::default(), t0())
        .await
        .expect("project");

    Migrator::down(&t.db, None).await.expect("down");
    assert_eq!(table_count(&t.db).await, 1, "only seaql_migrations is left");
    Migrator::up(&t.db, None).await.expect("up again");
    assert_eq!(table_count(&t.db).await, 24);
    let version = load_workflow(&t.db, &example_dir()).await;
    let project =
        lifecycle::create_project(&t.db, &version, "again", 0, None, &Default::default(), t0())
            .await
            .expect("project after re-up");
    assert_eq!(project, 1, "ids restart on a fresh schema");
}

/// Replicas starting at the same instant: every one migrates (or finds nothing to do) and
/// starts; the schema is applied once. (PostgreSQL only: SQLite is one process.)
#[tokio::test]
async fn replicas_starting_together_all_start() {
    let t = TestDb::empty().await;
    if !staffbot::db::is_postgres(&t.db) {
        return;
    }
    let starts = (0..4).map(|_| staffbot::db::connect_and_migrate(&t.url));
    for result in futures_util::future::join_all(starts).await {
        result.expect("every replica starts");
    }
    assert_eq!(table_count(&t.db).await, 24);
    assert!(
        Migrator::get_pending_migrations(&t.db)
            .await
            .expect("status")
            .is_empty()
    );
}

fn expect_unique(result: Result<impl std::fmt::Debug, DbErr>, what: &str) {
    match result {
        Err(e) => assert!(is_unique_violation(&e), "{what}: wrong error {e:?}"),
        Ok(v) => panic!("{what}: the database accepted a duplicate: {v:?}"),
    }
}

#[tokio::test]
async fn the_database_enforces_the_integrity_rules() {
    let t = TestDb::new().await;
    let db = &t.db;
    let version = load_workflow(db, &example_dir()).await;
    let project = lifecycle::create_project(db, &version, "p", 0, None, &Default::default(), t0())
        .await
        .expect("project");
    let first_task = task::Entity::find()
        .one(db)
        .await
        .expect("q")
        .expect("task");
    assert_eq!(first_task.project_id, project);
    let alice = add_worker(db, "alice", Some("U1")).await;
    let bob = add_worker(db, "bob", Some("U2")).await;

    // One live assignment per (task, counter).
    let assignment = |worker_id: i64| task_assignment::ActiveModel {
        task_id: Set(first_task.id),
        worker_id: Set(worker_id),
        assignment_counter: Set(0),
        status: Set(AssignmentStatus::Processing),
        in_progress_task_data: Set(json!({})),
        created_at: Set(t0()),
        updated_at: Set(t0()),
        ..Default::default()
    };
    assignment(alice.id)
        .insert(db)
        .await
        .expect("first assignment");
    expect_unique(
        assignment(bob.id).insert(db).await,
        "second counter-0 assignment",
    );

    // One open request per task (the example's autoassign opened one already).
    let request = |status: RequestStatus| staffing_request::ActiveModel {
        task_id: Set(first_task.id),
        required_role_counter: Set(0),
        cause: Set(RequestCause::User),
        status: Set(status),
        created_at: Set(t0()),
        ..Default::default()
    };
    expect_unique(
        request(RequestStatus::Sending).insert(db).await,
        "second open request",
    );
    let closed = request(RequestStatus::Closed)
        .insert(db)
        .await
        .expect("closed ones may pile up");

    // One response per inquiry; one winner per request.
    let inquiry = |worker_id: i64| staffing_inquiry::ActiveModel {
        request_id: Set(closed.id),
        worker_id: Set(worker_id),
        method: Set(InquiryMethod::Slack),
        created_at: Set(t0()),
        ..Default::default()
    };
    let qa = inquiry(alice.id).insert(db).await.expect("inquiry a");
    let qb = inquiry(bob.id).insert(db).await.expect("inquiry b");
    expect_unique(
        inquiry(bob.id).insert(db).await,
        "second inquiry for one worker",
    );
    let response = |inquiry_id: i64, worker_id: i64, winner: bool| staffing_response::ActiveModel {
        inquiry_id: Set(inquiry_id),
        request_id: Set(closed.id),
        worker_id: Set(worker_id),
        is_available: Set(true),
        is_winner: Set(winner),
        created_at: Set(t0()),
        ..Default::default()
    };
    response(qa.id, alice.id, true)
        .insert(db)
        .await
        .expect("winner");
    expect_unique(
        response(qa.id, alice.id, false).insert(db).await,
        "second response",
    );
    expect_unique(
        response(qb.id, bob.id, true).insert(db).await,
        "second winner",
    );
    response(qb.id, bob.id, false)
        .insert(db)
        .await
        .expect("a loser is fine");

    // Outbox dedupe keys.
    let write = crate::common::note("C1", "hi");
    assert!(
        enqueue(db, "k1", write.clone(), t0())
            .await
            .expect("enqueue")
    );
    assert!(
        !enqueue(db, "k1", write, t0())
            .await
            .expect("enqueue again is a no-op")
    );
    let raw = outbox::ActiveModel {
        dedupe_key: Set("k1".into()),
        method: Set("chat.postMessage".into()),
        payload: Set(json!({})),
        status: Set(OutboxStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(t0()),
        created_at: Set(t0()),
        ..Default::default()
    };
    expect_unique(raw.insert(db).await, "duplicate dedupe key");
}

/// Migrations are expand-then-contract across releases (README "Development"): from the
/// baseline on, a migration's `up` only adds. No DROP, no RENAME; a NOT NULL column it adds
/// has a DEFAULT that an older release's inserts satisfy. (A later release may drop what the
/// release before it stopped using: such a migration names itself here with the reason.)
#[test]
fn migrations_from_the_baseline_only_expand() {
    const BASELINE: &str = "m20261207_000011";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/src");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("migrations/src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.starts_with('m') || name.as_str() < BASELINE {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let start = text.find("async fn up(").expect("an up()");
        let end = text.find("async fn down(").expect("a down()");
        let up = text[start..end].to_uppercase();
        assert!(
            !up.contains("DROP ") && !up.contains("RENAME"),
            "{name}: up() drops or renames"
        );
        for line in up.lines().filter(|l| l.contains("ADD COLUMN")) {
            assert!(
                !line.contains("NOT NULL") || line.contains("DEFAULT"),
                "{name}: a NOT NULL column without a DEFAULT: {line}"
            );
        }
        checked.push(name);
    }
    assert!(checked.len() >= 3, "{checked:?}");
}

/// Rows a newer release wrote in a format this one does not know are left to it (issue 30):
/// a lease (until it has been expired for ten TTLs: a rollback), an envelope's stored reply
/// (acked without it), a Home notice (not shown), a machine task (not run) and a request's
/// stored description (neither read nor overwritten).
#[tokio::test]
async fn rows_of_a_newer_release_s_format_are_left_to_it() {
    use staffbot::db::{envelopes, home, leases, machine, requests};
    use std::time::Duration;
    let t = TestDb::new().await;
    let sql = |s: &str| sea_orm::Statement::from_string(t.db.get_database_backend(), s);
    let now = chrono::Utc::now();
    let ago = |secs: i64| (now - chrono::Duration::seconds(secs)).to_rfc3339();

    // A lease: expired 5 s ago, held by a newer release.
    t.db.execute_raw(sql(&format!(
        "INSERT INTO leases (name, holder, expires_at, token, format) VALUES ('staffing', 'newer', '{}', 3, 2)",
        ago(5)
    )))
    .await
    .expect("lease");
    let ttl = Duration::from_secs(2);
    assert_eq!(
        leases::take(&t.db, "staffing", "older", ttl)
            .await
            .expect("take"),
        None
    );
    t.db.execute_raw(sql(&format!(
        "UPDATE leases SET expires_at = '{}' WHERE name = 'staffing'",
        ago(60)
    )))
    .await
    .expect("gone");
    assert_eq!(
        leases::take(&t.db, "staffing", "older", ttl)
            .await
            .expect("take"),
        Some(4)
    );

    // An envelope's stored reply.
    t.db.execute_raw(sql(&format!(
        "INSERT INTO handled_envelopes (envelope_id, handled_at, response, format)
         VALUES ('e-new', '{0}', '{{\"text\": \"newer\"}}', 2), ('e-old', '{0}', '{{\"text\": \"older\"}}', 1)",
        ago(1)
    )))
    .await
    .expect("envelopes");
    assert_eq!(
        envelopes::stored_reply(&t.db, "e-new").await.expect("q"),
        Some(None)
    );
    assert_eq!(
        envelopes::stored_reply(&t.db, "e-old").await.expect("q"),
        Some(Some(json!({"text": "older"})))
    );

    // A Home notice.
    home::set_notice(&t.db, "U1", "Accepted", now)
        .await
        .expect("notice");
    assert!(home::notice(&t.db, "U1", now).await.expect("q").is_some());
    t.db.execute_raw(sql("UPDATE home_tabs SET format = 2"))
        .await
        .expect("newer");
    assert_eq!(home::notice(&t.db, "U1", now).await.expect("q"), None);

    // A machine task and a request's stored description.
    let wf = crate::common::flow(
        &["w"],
        vec![
            crate::common::step("s", "w").policy(
                "entry_level",
                "staffbot_autoassign",
                serde_json::Value::Null,
            ),
            crate::common::machine_step("m", "a.b"),
        ],
    );
    wf.project(&t.db, "P", None).await;
    assert_eq!(machine::due(&t.db, now).await.expect("due").len(), 1);
    t.db.execute_raw(sql("UPDATE tasks SET machine_format = 2"))
        .await
        .expect("newer");
    assert!(machine::due(&t.db, now).await.expect("due").is_empty());

    let request = staffing_request::Entity::find()
        .one(&t.db)
        .await
        .expect("q")
        .expect("a request");
    t.db.execute_raw(sql(
        "UPDATE staffing_requests SET details = '{\"text\": \"newer\"}', details_format = 2",
    ))
    .await
    .expect("newer");
    let context = requests::context(&t.db, request.id)
        .await
        .expect("q")
        .expect("context");
    assert_eq!(context.stored_details, None);
    requests::set_details(&t.db, &[(request.id, json!({"text": "older"}))])
        .await
        .expect("set");
    t.db.execute_raw(sql("UPDATE staffing_requests SET details_format = 1"))
        .await
        .expect("readable");
    let context = requests::context(&t.db, request.id)
        .await
        .expect("q")
        .expect("context");
    assert_eq!(
        context.stored_details,
        Some(json!({"text": "newer"})),
        "not overwritten"
    );
}
