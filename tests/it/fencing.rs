//! Replicas and senders that cannot double-act (issue 18): leases on the database's clock with
//! fencing tokens, and outbox claims re-checked before every Slack call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::SeedableRng;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait};
use staffbot::clock::Clock;
use staffbot::db::entities::{lease, staffing_inquiry};
use staffbot::db::statement;
use staffbot::delivery::Sender;
use staffbot::lease::{is_lease_lost, try_lease};
use staffbot::messages::Outgoing;
use staffbot::outbox::enqueue;
use staffbot::staffing::batch::{BatchSettings, run_once};

use crate::common::note;
use crate::harness::{Harness, WAIT};

const CHANNEL: &str = "G0PROJ";

/// A sender against the fake whose claims last `claim_ttl`.
fn sender(h: &Harness, name: &str, claim_ttl: Duration) -> Sender {
    h.sender(name, claim_ttl)
}

/// Waits until `sql` (a count) is at least `n`; polls, with a deadline.
async fn wait_for_count(db: &DatabaseConnection, what: &str, sql: &str, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let row = db
            .query_one_raw(statement(db.get_database_backend(), sql, vec![]))
            .await
            .expect("query")
            .expect("a row");
        if row.try_get::<i64>("", "n").expect("n") >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        // Polling interval, not a wait for something to happen.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_senders_against_a_slack_slower_than_the_claims_send_everything_once() {
    let mut h = Harness::new().await;
    h.fake.add_channel(CHANNEL, "story", &[]);
    h.fake.add_user("U0BOB", "bob");
    let now = Utc::now();
    let invite = Outgoing::Invite {
        channel: CHANNEL.into(),
        user: "U0BOB".into(),
    };
    enqueue(h.db(), "invite", invite, now).await.expect("q");
    for key in ["m1", "m2", "m3"] {
        enqueue(h.db(), key, note(CHANNEL, key), now)
            .await
            .expect("q");
    }
    // Sender A claims all four rows for 300 ms, and Slack takes its time over the first call.
    h.fake.hold_responses("conversations.invite");
    let a = sender(&h, "a", Duration::from_millis(300));
    let a_round = tokio::spawn(async move { a.run_once().await });
    assert!(h.fake.wait_for_held("conversations.invite", 1, WAIT).await);
    let db_now = staffbot::db::db_now(h.db().get_database_backend());
    wait_for_count(
        h.db(),
        "A's claims on the messages lapse",
        &format!(
            "SELECT COUNT(*) AS n FROM outbox
             WHERE dedupe_key LIKE 'm%' AND claim_expires_at < {db_now}"
        ),
        3,
    )
    .await;
    // Sender B takes the messages over and delivers them.
    let b = sender(&h, "b", Duration::from_millis(300));
    // (Its pacing lets two posts to one channel go at once, the third a second later.)
    assert_eq!(b.drain(Duration::from_secs(5)).await.expect("b").sent, 3);
    for key in ["m1", "m2", "m3"] {
        assert_eq!(h.next_post(CHANNEL).await, key);
    }
    // A's call returns: A records its invite, and drops the rows it no longer holds.
    h.fake.release("conversations.invite");
    let a = a_round.await.expect("join").expect("a");
    assert_eq!(a.sent, 1, "{a:?}");
    assert_eq!(h.fake.calls_to("chat.postMessage").len(), 3, "each once");
    assert_eq!(h.fake.calls_to("conversations.invite").len(), 1);
    h.finish().await;
}

/// A clock running `ahead` of the real one.
struct Ahead(chrono::Duration);

impl Clock for Ahead {
    fn now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + self.0
    }
}

#[tokio::test]
async fn a_replica_whose_clock_runs_ahead_does_not_take_the_leases() {
    let mut h = Harness::new().await;
    h.config.loops.tick_interval = Duration::from_millis(100);
    h.config.loops.lease_ttl = Duration::from_secs(2);
    let ttl = h.config.loops.lease_ttl;
    // The holder: this test, renewing every few hundred milliseconds.
    let holder = "holder";
    assert!(
        try_lease(h.db(), "staffing", holder, ttl)
            .await
            .expect("lease")
            .is_some()
    );
    // A replica whose clock is a minute ahead.
    let skewed = staffbot::daemon::Daemon::start(
        &h.config,
        h.db().clone(),
        Arc::new(Ahead(chrono::Duration::seconds(60))),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("starts");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            try_lease(h.db(), "staffing", holder, ttl)
                .await
                .expect("lease")
                .is_some(),
            "the holder keeps its lease"
        );
    }
    // The holder stops: the replica takes over once the lease has run out, not before.
    let stopped = Instant::now();
    let taken = loop {
        let l = lease::Entity::find_by_id("staffing".to_string())
            .one(h.db())
            .await
            .expect("q")
            .expect("row");
        if l.holder != holder {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < ttl * 3, "never taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        taken >= ttl - Duration::from_millis(300),
        "taken over after {taken:?}, before the lease ({ttl:?}) ran out"
    );
    skewed.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_holder_that_stalled_past_its_lease_writes_nothing() {
    let mut t = crate::harness::team(&["ann"]).await;
    t.staff().await;
    // The test drives the rounds (the daemon, stopped, runs none).
    t.h.stop().await;
    let ttl = Duration::from_secs(60);
    let expire = || async {
        t.h.db()
            .execute_raw(statement(
                t.h.db().get_database_backend(),
                "UPDATE leases SET expires_at = $1 WHERE name = 'staffing'",
                vec![(Utc::now() - chrono::Duration::seconds(1)).into()],
            ))
            .await
            .expect("expired");
    };
    expire().await;
    let a = try_lease(t.h.db(), "staffing", "a", ttl)
        .await
        .expect("lease")
        .expect("free");
    // `a` stalls; its lease runs out and `b` takes it.
    expire().await;
    let b = try_lease(t.h.db(), "staffing", "b", ttl)
        .await
        .expect("lease")
        .expect("b takes it");
    assert!(b.token > a.token, "a new fencing token");
    // `a` resumes its round: refused, nothing written.
    let settings = BatchSettings {
        batch_size: 5,
        frequency: Duration::ZERO,
        email: false,
        ..Default::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let err = run_once(t.h.db(), &a, settings.clone(), Utc::now(), &mut rng)
        .await
        .expect_err("fenced");
    assert!(is_lease_lost(&err), "{err}");
    assert_eq!(
        staffing_inquiry::Entity::find()
            .count(t.h.db())
            .await
            .expect("q"),
        0
    );
    // `b`, the holder, staffs.
    let r = run_once(t.h.db(), &b, settings, Utc::now(), &mut rng)
        .await
        .expect("b's round");
    assert_eq!(r.offers, 1);
    t.h.finish().await;
}
