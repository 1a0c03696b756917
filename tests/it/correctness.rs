//! Defects found by testing staffbot as a user would (issue 17): each test failed before its fix.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use slack_sim::Fault;
use staffbot::db::AssignmentStatus;
use staffbot::db::entities::{outbox, staffing_inquiry, task_assignment};
use staffbot::lifecycle;
use staffbot::requests;
use staffbot::staffing::respond;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{ABORTED, AWAITING_REVIEW, all, count, submit};
use crate::harness::{CHANNEL, Team, TeamSpec, per_channel, text, texts_of, update_text};

const STAFFING: &str = "G0STAFF";

/// [`crate::harness::team`] with staffing notices in [`STAFFING`] and a round whenever the test
/// ticks.
async fn team(description: &str, workers: &[&str]) -> Team {
    let spec = TeamSpec::new().described(description).workers(workers);
    let spec = spec.staffing_channel(STAFFING);
    spec.config(|c| c.staffbot.batch_frequency = std::time::Duration::ZERO)
        .start()
        .await
}

#[tokio::test]
async fn a_submission_ends_the_restaff_of_the_submitted_work() {
    let mut t = team("Mayor race", &["bob", "carl"]).await;
    let bob = t.assign("bob").await;
    requests::restaff_task(t.h.db(), t.task, &bob, "bob", Utc::now())
        .await
        .expect("restaff");
    t.h.next_post(CHANNEL).await;
    assert!(
        t.offers(2)
            .await
            .iter()
            .any(|c| c.body["channel"] == "U0CARL")
    );

    // bob hands in his work: the restaff has nothing left to hand over.
    submit(t.h.db(), t.task, "bob", SubmitKind::RequestedReview).await;
    let gone = (
        "DU0CARL".into(),
        "Sorry, this task is no longer available.".into(),
    );
    let calls = per_channel(t.h.next_messages(2).await);
    assert_eq!(update_text(&calls["DU0CARL"][0]), gone);
    assert_eq!(
        texts_of(&calls[CHANNEL]),
        [t.notice(AWAITING_REVIEW, "bob")]
    );

    // A late Accept changes nothing: bob keeps his submitted work and his channel.
    t.accept("carl").await;
    let a = all::<task_assignment::Entity>(t.h.db()).await;
    assert_eq!(
        (a.len(), a[0].worker_id, a[0].status),
        (1, bob.id, AssignmentStatus::Submitted)
    );
    assert_eq!(t.h.fake.channel_members(CHANNEL), ["U0BOB"]);

    // And restaffing work that is no longer in progress is refused, clearly.
    let err = requests::restaff_task(t.h.db(), t.task, &bob, "bob", Utc::now())
        .await
        .expect_err("nothing in progress to restaff");
    assert_eq!(
        err.to_string(),
        format!(
            "bob is not currently working on task {} (their assignment is submitted); only work in progress can be restaffed",
            t.task
        )
    );
    t.h.finish().await;
}

#[tokio::test]
async fn restaffing_a_finished_task_says_so() {
    let mut t = team("Mayor race", &["bob"]).await;
    let bob = t.assign("bob").await;
    lifecycle::abort_project(t.h.db(), t.project, &Default::default(), Utc::now())
        .await
        .expect("abort");
    let aborted = t.notice(ABORTED, "bob");
    assert_eq!(t.h.next_post(CHANNEL).await, aborted);
    let err = requests::restaff_task(t.h.db(), t.task, &bob, "bob", Utc::now())
        .await
        .expect_err("finished");
    assert_eq!(
        err.to_string(),
        format!(
            "Task {} is aborted; only unfinished tasks can be restaffed",
            t.task
        )
    );
    t.h.finish().await;
}

#[tokio::test]
async fn an_offer_answered_while_its_dm_is_being_recorded_loses_its_buttons() {
    let mut t = team("Mayor race", &["carl"]).await;
    t.staff().await;
    // Slack takes the offer, but its answer (the DM's ts) is held back: carl clicks meanwhile.
    t.h.fake.hold_responses("chat.postMessage");
    t.h.tick(Utc::now(), 1).await;
    assert!(
        t.h.fake
            .wait_for_held("chat.postMessage", 1, crate::harness::WAIT)
            .await
    );
    t.accept("carl").await;
    t.h.fake.release("chat.postMessage");
    // The offer, the exhausted pool, the welcome and the status notice, the DM's update.
    let calls = t.h.next_messages(5).await;
    let update = calls
        .iter()
        .find(|c| c.method == "chat.update")
        .expect("the offer DM is updated once its ts is known");
    let (to, outcome) = update_text(update);
    assert_eq!(to, "DU0CARL");
    assert!(outcome.starts_with("You got the task!"), "{outcome}");
    t.h.finish().await;
}

/// Both transactions in flight at once: the answer and the recording of its DM. Whichever
/// commits second queues the DM's update (PostgreSQL: the second waits for the first's lock;
/// SQLite: writers are serialised, the second runs after the first).
#[tokio::test]
async fn answer_and_delivery_in_flight_together_update_the_dm_in_either_order() {
    for answer_first in [true, false] {
        let mut t = team("Mayor race", &["carl"]).await;
        t.staff().await;
        t.h.stop().await;
        t.h.tick(Utc::now(), 1).await;
        let inquiry = t.inquiry_of("carl").await.id;
        let db = t.h.db().clone();
        let other = staffbot::db::connect(&t.h.t.url).await.expect("connect");
        let answer = move |conn: sea_orm::DatabaseTransaction| async move {
            respond::respond(
                &conn,
                inquiry,
                "U0CARL",
                true,
                &Default::default(),
                Utc::now(),
            )
            .await
            .expect("respond");
            conn
        };
        let deliver = move |conn: sea_orm::DatabaseTransaction| async move {
            respond::on_offer_delivered(&conn, inquiry, "DU0CARL", "1.000001", Utc::now())
                .await
                .expect("delivered");
            conn
        };
        let first = staffbot::db::begin_write(&db).await.expect("begin");
        let first = if answer_first {
            answer(first).await
        } else {
            deliver(first).await
        };
        let second = tokio::spawn(async move {
            let tx = staffbot::db::begin_write(&other).await.expect("begin");
            let tx = if answer_first {
                deliver(tx).await
            } else {
                answer(tx).await
            };
            sea_orm::DatabaseTransaction::commit(tx)
                .await
                .expect("commit");
        });
        crate::common::wait_for_a_lock_wait(&db).await;
        sea_orm::DatabaseTransaction::commit(first)
            .await
            .expect("commit");
        second.await.expect("second");
        let finals = outbox::Entity::find()
            .filter(outbox::Column::DedupeKey.eq(format!("offer-final:{inquiry}")))
            .count(&db)
            .await
            .expect("q");
        assert_eq!(finals, 1, "answer first: {answer_first}");
        t.h.finish().await;
    }
}

#[tokio::test]
async fn users_words_reach_slack_as_they_were_written() {
    let mut t = team("Q&A <draft>", &["carl"]).await;
    let calls = t.staffed(2).await;
    let seen: Vec<String> = calls.iter().map(|c| t.h.fake.render(text(c))).collect();
    let all_sent = "All staffing requests for task v1 (Q&A <draft>) - write have been sent!";
    assert!(
        seen.iter()
            .any(|s| s.contains("Project description: Q&A <draft>")),
        "{seen:?}"
    );
    assert!(seen.contains(&all_sent.to_string()), "{seen:?}");
    t.reject("carl").await;
    let calls = t.h.next_messages(2).await;
    assert_eq!(
        t.h.fake.render(text(&calls[1])),
        "No worker has accepted to work on task v1 (Q&A <draft>) - write"
    );
    t.h.finish().await;
}

#[tokio::test]
async fn a_long_description_still_reaches_the_worker_within_slacks_limits() {
    let long = format!("{} end", "word ".repeat(900));
    let mut t = team(&long, &["carl"]).await;
    let calls = t.staffed(2).await;
    let offer = calls.iter().find(|c| c.body["channel"] == "U0CARL");
    let offer = offer.expect("the offer was delivered");
    let section = offer.body["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or("");
    assert_eq!(section.chars().count(), 3000);
    assert!(section.ends_with('…'));
    t.h.finish().await;
}

#[tokio::test]
async fn an_offer_slack_refuses_for_good_is_not_an_offer_made() {
    let mut t = team("Mayor race", &["carl"]).await;
    t.staff().await;
    t.h.fake.fail_next(
        "chat.postMessage",
        Fault::ApiError("invalid_blocks".into()),
        1,
    );
    t.h.tick(Utc::now(), 1).await;
    // The pool's end is announced, then the staffing channel hears of the refusal.
    let posts = [t.h.next_post(CHANNEL).await, t.h.next_post(STAFFING).await];
    assert_eq!(
        t.h.fake.render(&posts[1]),
        "Could not deliver the offer of task v1 (Mayor race) - write to carl: Slack answered `invalid_blocks`. They will be asked again."
    );
    let asked = count::<staffing_inquiry::Entity>(t.h.db()).await;
    assert_eq!(asked, 0, "not counted as asked");
    // The next round asks carl again, and this time it arrives.
    let later = Utc::now();
    t.h.tick(later, 1).await;
    assert!(
        t.h.next_message().await.body["blocks"][1]["elements"][0]["action_id"] == "offer_accept"
    );
    t.h.finish().await;
}
