//! Status notices (issue 12, behaviour §10.4) through the fake Slack: each change of a task's
//! status is told in its project's channel, naming (and mentioning) the current worker, and
//! copied to `staffbot.notifications_channel`; never on a hand-over; not at all when
//! `staffbot.status_notices = false`.

use chrono::Utc;
use staffbot::db::entities::task_assignment;
use staffbot::lifecycle;
use staffbot::workflow::rules::SubmitKind::{ProvidedReview, RequestedReview};

use crate::common::{
    ABORTED, AUTO_STAFFED, AWAITING_REVIEW, COMPLETED, PICKED_UP, RETURNED, UNDER_REVIEW, assign,
    count, find_worker, flow, outbox_rows, step, submit, welcome, worker,
};
use crate::harness::{CHANNEL, Harness, TeamSpec, per_channel, team, texts_of, update_text};

const NOTES: &str = "G0NOTES";

/// The queued status notices (their dedupe keys).
async fn notice_keys(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let rows = outbox_rows(db).await.into_iter().map(|(key, _)| key);
    rows.filter(|k| k.starts_with("notice:")).collect()
}

#[tokio::test]
async fn a_won_offer_is_picked_up_in_the_channel_and_copied_to_the_notifications_channel() {
    let spec = TeamSpec::new()
        .workers(&["ann"])
        .notifications_channel(NOTES);
    let mut t = spec.start().await;
    t.staffed(2).await; // the offer and the exhausted pool
    t.accept("ann").await;
    let calls = per_channel(t.h.next_messages(4).await);
    assert_eq!(
        texts_of(&calls[CHANNEL]),
        [welcome("U0ANN"), t.notice(PICKED_UP, "ann")]
    );
    let copy = format!(
        "*{PICKED_UP}*\n>>>Current worker: ann\n\nProject: v1 | Mayor race\nTask: write {}\n\nView Slack channel: <#{CHANNEL}>",
        t.task
    );
    assert_eq!(texts_of(&calls[NOTES]), [copy]);
    assert!(
        update_text(&calls["DU0ANN"][0])
            .1
            .starts_with("You got the task!")
    );
    t.h.finish().await;
}

#[tokio::test]
async fn every_change_of_a_reviewed_task_is_told_returns_each_time() {
    let mut t = team(&["rob"]).await;
    worker("rae").reviews("writer").add(t.h.db()).await;
    t.h.fake.add_user("U0RAE", "rae");
    let db = t.h.db().clone();
    t.assign("rob").await; // the welcome and "picked up"
    let steps = [
        ("rob", RequestedReview, AWAITING_REVIEW, "rob"),
        ("rae", ProvidedReview, RETURNED, "rob"),
        ("rob", RequestedReview, UNDER_REVIEW, "rae"),
        ("rae", ProvidedReview, RETURNED, "rob"),
        ("rob", RequestedReview, UNDER_REVIEW, "rae"),
        ("rae", RequestedReview, COMPLETED, "rae"),
    ];
    for (i, (who, kind, line, named)) in steps.into_iter().enumerate() {
        submit(&db, t.task, who, kind).await;
        assert_eq!(t.h.next_post(CHANNEL).await, t.notice(line, named), "{i}");
        if i == 0 {
            // The reviewer takes the task (`task assign`): under review.
            assign(&db, t.task, "rae").await;
            assert_eq!(t.h.next_post(CHANNEL).await, welcome("U0RAE"));
            assert_eq!(t.h.next_post(CHANNEL).await, t.notice(UNDER_REVIEW, "rae"));
        }
    }
    assert_eq!(notice_keys(&db).await.len(), 8, "one per status change");
    t.h.finish().await;
}

#[tokio::test]
async fn an_aborted_project_tells_the_channel_of_each_task_worked_on() {
    let spec = TeamSpec::new()
        .workers(&["bob"])
        .notifications_channel(NOTES);
    let mut t = spec.start().await;
    let notices = t.h.config.notices();
    let bob = t.worker("bob").await;
    lifecycle::assign_task(t.h.db(), t.task, &bob, &notices, Utc::now())
        .await
        .expect("assigned");
    t.h.next_messages(3).await; // the welcome, "picked up" and its copy
    lifecycle::abort_project(t.h.db(), t.project, &notices, Utc::now())
        .await
        .expect("abort");
    let calls = per_channel(t.h.next_messages(2).await);
    assert_eq!(texts_of(&calls[CHANNEL]), [t.notice(ABORTED, "bob")]);
    let copy = &texts_of(&calls[NOTES])[0];
    assert!(
        copy.starts_with(&format!("*{ABORTED}*\n>>>Current worker: bob\n")),
        "{copy}"
    );
    t.h.finish().await;
}

#[tokio::test]
async fn a_hand_over_has_no_notice() {
    let mut t = team(&["bob", "carl"]).await;
    t.assign("bob").await;
    let carl = t.worker("carl").await;
    lifecycle::assign_or_reassign(t.h.db(), t.task, &carl, &Default::default(), Utc::now())
        .await
        .expect("handed over");
    let calls = per_channel(t.h.next_messages(2).await);
    assert_eq!(texts_of(&calls[CHANNEL]), [welcome("U0CARL")]);
    assert!(texts_of(&calls["U0BOB"])[0].contains("no longer assigned"));
    assert_eq!(notice_keys(t.h.db()).await.len(), 1, "bob's pick-up only");
    t.h.finish().await;
}

/// `staffbot.status_notices = false`: an offer won, a submission and an abort say nothing
/// (neither in the project channel nor in the notifications channel).
#[tokio::test]
async fn notices_can_be_turned_off() {
    let spec = TeamSpec::new()
        .workers(&["rob"])
        .notifications_channel(NOTES);
    let mut t = spec
        .config(|c| c.staffbot.status_notices = false)
        .start()
        .await;
    let off = t.h.config.notices();
    t.staffed(2).await;
    t.accept("rob").await;
    let calls = per_channel(t.h.next_messages(2).await);
    assert_eq!(texts_of(&calls[CHANNEL]), [welcome("U0ROB")]);
    let db = t.h.db().clone();
    let rob = find_worker(&db, "rob").await;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    lifecycle::submit(
        &db,
        t.task,
        &rob,
        RequestedReview,
        &off,
        Utc::now(),
        &mut rng,
    )
    .await
    .expect("submitted");
    lifecycle::abort_project(&db, t.project, &off, Utc::now())
        .await
        .expect("abort");
    assert!(notice_keys(&db).await.is_empty());
    t.h.finish().await;
}

/// An assignment policy (`specified_worker`) staffs the task when it is created: auto-staffed.
#[tokio::test]
async fn a_policy_assignment_is_auto_staffed() {
    let mut h = Harness::new().await;
    let policy = serde_json::json!({"username": "ann"});
    let s = step("s", "writer")
        .policy(
            "entry_level",
            "orchestra.assignment_policies.specified_worker",
            policy,
        )
        .no_review();
    let version = flow(&["writer"], vec![s]).load(h.db()).await;
    worker("ann").writes("writer").add(h.db()).await;
    h.fake.add_channel(CHANNEL, "p", &[]);
    crate::common::create_project(h.db(), &version, "P", Some(CHANNEL)).await;
    h.hold_loop_leases().await;
    h.start().await;
    let task = crate::common::first_task(h.db()).await;
    assert_eq!(h.next_post(CHANNEL).await, welcome("U0ANN"));
    let auto = crate::common::notice(AUTO_STAFFED, "ann", "P", "s", task);
    assert_eq!(h.next_post(CHANNEL).await, auto);
    assert_eq!(count::<task_assignment::Entity>(h.db()).await, 1);
    h.finish().await;
}

/// A project without a channel: no channel post; the copy still goes to the notifications
/// channel (without a channel link), naming a worker who has no Slack id.
#[tokio::test]
async fn without_a_project_channel_only_the_copy_is_posted() {
    let mut h = Harness::new().await;
    h.config.staffbot.notifications_channel = Some(NOTES.into());
    h.fake.add_channel(NOTES, "notes", &[]);
    flow(&["writer"], vec![step("s", "writer").no_review()])
        .project(h.db(), "P", None)
        .await;
    worker("nel").no_slack().writes("writer").add(h.db()).await;
    h.hold_loop_leases().await;
    h.start().await;
    let task = crate::common::first_task(h.db()).await;
    let nel = find_worker(h.db(), "nel").await;
    lifecycle::assign_task(h.db(), task, &nel, &h.config.notices(), Utc::now())
        .await
        .expect("assigned");
    let text = h.next_post(NOTES).await;
    assert_eq!(
        text,
        format!("*{PICKED_UP}*\n>>>Current worker: nel\n\nProject: v1 | P\nTask: s {task}")
    );
    assert_eq!(notice_keys(h.db()).await.len(), 1);
    h.finish().await;
}
