//! The task lifecycle on a real database: every transition of behaviour §4.2, role counters with
//! gaps, submit errors in Orchestra's order, assignment policies and their Slack effects.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, ModelTrait,
    QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use staffbot::db::AssignmentStatus::{Processing, Submitted};
use staffbot::db::entities::{
    project, staffing_inquiry, staffing_request, staffing_response, task, task_assignment, worker,
};
use staffbot::db::{
    AssignmentStatus, InquiryMethod, ProjectStatus, RequestCause, RequestStatus, Role, TaskStatus,
};
use staffbot::error::{Error, UserError};
use staffbot::lifecycle;
use staffbot::requests;
use staffbot::slack::write::SlackWrite;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{
    TestDb, add_worker, by_id, certify, load_workflow, outbox_rows, t0, write_workflow,
};

/// Submitting work (or approving it, for a reviewer).
const SUBMIT: SubmitKind = SubmitKind::RequestedReview;
/// A reviewer sending work back.
const REJECT: SubmitKind = SubmitKind::ProvidedReview;

/// A workflow with certifications `writer` and `editor` and the given steps.
fn flow(steps: Value) -> tempfile::TempDir {
    write_workflow(
        &json!({"slug": "wf", "name": "WF", "description": "Test workflow", "certifications": [
            {"slug": "writer", "name": "Writer"}, {"slug": "editor", "name": "Editor"}]}),
        &[("v1", json!({"slug": "v1", "name": "V1", "steps": steps}))],
    )
}

struct World {
    t: TestDb,
    project: i64,
}

impl World {
    async fn new(steps: Value, channel: Option<&str>) -> World {
        let t = TestDb::new().await;
        let dir = flow(steps);
        let version = load_workflow(&t.db, dir.path()).await;
        let project = lifecycle::create_project(
            &t.db,
            &version,
            "Story",
            3,
            channel.map(str::to_string),
            &Default::default(),
            t0(),
        )
        .await
        .expect("project created");
        World { t, project }
    }

    fn db(&self) -> &DatabaseConnection {
        &self.t.db
    }

    async fn tasks(&self) -> Vec<task::Model> {
        task::Entity::find()
            .filter(task::Column::ProjectId.eq(self.project))
            .order_by_asc(task::Column::Id)
            .all(self.db())
            .await
            .expect("tasks")
    }

    async fn task(&self, id: i64) -> task::Model {
        task::Entity::find_by_id(id)
            .one(self.db())
            .await
            .expect("q")
            .expect("task")
    }

    /// (counter, worker id, status) of every assignment of a task.
    async fn assignments(&self, task_id: i64) -> Vec<(i32, i64, AssignmentStatus)> {
        task_assignment::Entity::find()
            .filter(task_assignment::Column::TaskId.eq(task_id))
            .order_by_asc(task_assignment::Column::AssignmentCounter)
            .all(self.db())
            .await
            .expect("assignments")
            .into_iter()
            .map(|a| (a.assignment_counter, a.worker_id, a.status))
            .collect()
    }

    async fn worker(&self, name: &str, certs: &[(&str, Role)]) -> worker::Model {
        let slack = format!("U_{}", name.to_uppercase());
        let w = add_worker(self.db(), name, Some(&slack)).await;
        for (cert, role) in certs {
            if *role == Role::Reviewer {
                certify(self.db(), &w, cert, Role::EntryLevel).await;
            }
            certify(self.db(), &w, cert, *role).await;
        }
        w
    }

    async fn assign(&self, task_id: i64, w: &worker::Model) -> task_assignment::Model {
        lifecycle::assign_task(self.db(), task_id, w, &Default::default(), t0())
            .await
            .expect("assigned")
    }

    /// `task assign` on a task that may be in progress: the assignment, and whether it was
    /// handed over from someone else.
    async fn hand_over(&self, task_id: i64, w: &worker::Model) -> (task_assignment::Model, bool) {
        lifecycle::assign_or_reassign(self.db(), task_id, w, &Default::default(), t0())
            .await
            .expect("assigned")
    }

    /// The Slack users removed from a project channel so far.
    async fn kicked(&self) -> Vec<String> {
        let writes = self.writes().await.into_iter();
        let kicks = writes.filter_map(|m| match m {
            SlackWrite::Kick { user, .. } => Some(user),
            _ => None,
        });
        kicks.collect()
    }

    /// `w` submits `task_id`, which must succeed; the task's new status.
    async fn submits(&self, task_id: i64, w: &worker::Model, kind: SubmitKind) -> TaskStatus {
        self.submit(task_id, w, kind).await.expect("submitted")
    }

    /// `w` submits `task_id`, which must be refused; why.
    async fn refusal(&self, task_id: i64, w: &worker::Model, kind: SubmitKind) -> UserError {
        user_err(self.submit(task_id, w, kind).await)
    }

    /// Every queued Slack write, oldest first.
    async fn writes(&self) -> Vec<SlackWrite> {
        outbox_rows(self.db())
            .await
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    async fn submit(
        &self,
        task_id: i64,
        w: &worker::Model,
        kind: SubmitKind,
    ) -> Result<TaskStatus, Error> {
        let mut rng = StdRng::seed_from_u64(7);
        lifecycle::submit(
            self.db(),
            task_id,
            w,
            kind,
            &Default::default(),
            t0(),
            &mut rng,
        )
        .await
    }

    async fn requests(&self, task_id: i64) -> Vec<staffing_request::Model> {
        staffing_request::Entity::find()
            .filter(staffing_request::Column::TaskId.eq(task_id))
            .order_by_asc(staffing_request::Column::Id)
            .all(self.db())
            .await
            .expect("requests")
    }
}

fn user_err<T: std::fmt::Debug>(r: Result<T, Error>) -> UserError {
    match r {
        Err(Error::User(u)) => u,
        other => panic!("expected a user error, got {other:?}"),
    }
}

fn two_steps(review: Value) -> Value {
    json!([
        {"slug": "draft", "name": "Draft", "description": "Write the draft", "required_certifications": ["writer"], "review_policy": review},
        {"slug": "edit", "name": "Edit", "description": "Edit it", "creation_depends_on": ["draft"], "required_certifications": ["editor"], "review_policy": {"policy": "no_review"}}
    ])
}

/// Draft (reviewed once) then edit, in channel C_STORY; the draft task, a writer (alice) and a
/// reviewer (rita).
async fn reviewed_draft() -> (World, i64, worker::Model, worker::Model) {
    let review = json!({"policy": "sampled_review", "rate": 1, "max_reviews": 1});
    let w = World::new(two_steps(review), Some("C_STORY")).await;
    let draft = w.tasks().await[0].id;
    let alice = w.worker("alice", &[("writer", Role::EntryLevel)]).await;
    let rita = w.worker("rita", &[("writer", Role::Reviewer)]).await;
    (w, draft, alice, rita)
}

/// alice writes the draft and submits it; rita takes the review.
async fn under_review(w: &World, draft: i64, alice: &worker::Model, rita: &worker::Model) {
    w.assign(draft, alice).await;
    w.submits(draft, alice, SUBMIT).await;
    w.assign(draft, rita).await;
}

#[tokio::test]
async fn an_assignment_starts_the_work_and_brings_the_worker_in() {
    let (w, draft, alice, _) = reviewed_draft().await;
    let tasks = w.tasks().await;
    assert_eq!(tasks.len(), 1, "edit waits for draft");
    assert_eq!(tasks[0].status, TaskStatus::AwaitingProcessing);
    // AWAITING_PROCESSING → PROCESSING
    w.assign(draft, &alice).await;
    assert_eq!(w.task(draft).await.status, TaskStatus::Processing);
    assert_eq!(w.assignments(draft).await, vec![(0, alice.id, Processing)]);
    let invite = SlackWrite::Invite {
        channel: "C_STORY".into(),
        users: "U_ALICE".into(),
    };
    let welcome = crate::common::post("C_STORY", crate::common::welcome("U_ALICE"));
    let picked_up = crate::common::post(
        "C_STORY",
        "*Task has been picked up by a worker.*\n>>>Current worker: alice (<@U_ALICE>)\n\nProject: v1 | Story\nTask: draft 1",
    );
    assert_eq!(w.writes().await, vec![invite, welcome, picked_up]);
}

#[tokio::test]
async fn submitted_work_waits_for_a_certified_reviewer() {
    let (w, draft, alice, rita) = reviewed_draft().await;
    w.assign(draft, &alice).await;
    // PROCESSING → PENDING_REVIEW (rate 1)
    assert_eq!(
        w.submits(draft, &alice, SUBMIT).await,
        TaskStatus::PendingReview
    );
    assert_eq!(w.assignments(draft).await, vec![(0, alice.id, Submitted)]);
    // PENDING_REVIEW → REVIEWING, counter 1, reviewer role needed
    let bob = w.worker("bob", &[("writer", Role::EntryLevel)]).await;
    let refused = lifecycle::assign_task(w.db(), draft, &bob, &Default::default(), t0()).await;
    assert_eq!(user_err(refused), UserError::NotCertifiedForTask);
    w.assign(draft, &rita).await;
    assert_eq!(w.task(draft).await.status, TaskStatus::Reviewing);
}

#[tokio::test]
async fn a_rejection_sends_the_work_back_and_a_resubmission_returns_it() {
    let (w, draft, alice, rita) = reviewed_draft().await;
    under_review(&w, draft, &alice, &rita).await;
    // REVIEWING → POST_REVIEW_PROCESSING (reject): the work goes back to counter 0
    let status = w.submits(draft, &rita, REJECT).await;
    assert_eq!(status, TaskStatus::PostReviewProcessing);
    let back = vec![(0, alice.id, Processing), (1, rita.id, Submitted)];
    assert_eq!(w.assignments(draft).await, back);
    // POST_REVIEW_PROCESSING → REVIEWING (resubmit)
    assert_eq!(
        w.submits(draft, &alice, SUBMIT).await,
        TaskStatus::Reviewing
    );
    let again = vec![(0, alice.id, Submitted), (1, rita.id, Processing)];
    assert_eq!(w.assignments(draft).await, again);
}

#[tokio::test]
async fn approvals_complete_the_task_and_the_last_task_the_project() {
    let (w, draft, alice, rita) = reviewed_draft().await;
    under_review(&w, draft, &alice, &rita).await;
    // REVIEWING → COMPLETE (approve, max_reviews 1); the follow-on task appears
    let mut rng = StdRng::seed_from_u64(1);
    let approved = lifecycle::review(
        w.db(),
        draft,
        &rita,
        true,
        &Default::default(),
        t0(),
        &mut rng,
    )
    .await;
    assert_eq!(approved.expect("approve"), TaskStatus::Complete);
    let tasks = w.tasks().await;
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[1].status, TaskStatus::AwaitingProcessing);
    // PROCESSING → COMPLETE (no_review) completes the project: nothing is left.
    let ed = w.worker("ed", &[("editor", Role::EntryLevel)]).await;
    w.assign(tasks[1].id, &ed).await;
    assert_eq!(
        w.submits(tasks[1].id, &ed, SUBMIT).await,
        TaskStatus::Complete
    );
    let p = by_id::<project::Entity>(w.db(), w.project).await;
    assert_eq!(p.status, ProjectStatus::Completed);
}

#[tokio::test]
async fn two_review_levels_and_a_second_level_rejection() {
    let w = World::new(
        two_steps(json!({"policy": "sampled_review", "rate": 1, "max_reviews": 2})),
        None,
    )
    .await;
    let draft = w.tasks().await[0].id;
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    let r1 = w.worker("r1", &[("writer", Role::Reviewer)]).await;
    let r2 = w.worker("r2", &[("writer", Role::Reviewer)]).await;
    w.assign(draft, &a).await;
    w.submits(draft, &a, SUBMIT).await;
    w.assign(draft, &r1).await;
    // REVIEWING → PENDING_REVIEW: the first reviewer approves, a second level is due.
    assert_eq!(
        w.submits(draft, &r1, SUBMIT).await,
        TaskStatus::PendingReview
    );
    let (assignment, _) = w.hand_over(draft, &r2).await;
    assert_eq!(assignment.assignment_counter, 2);
    // The second reviewer rejects: the work returns to the first reviewer, not the writer.
    assert_eq!(
        w.submits(draft, &r2, REJECT).await,
        TaskStatus::PostReviewProcessing
    );
    assert_eq!(
        w.assignments(draft).await,
        vec![
            (0, a.id, Submitted),
            (1, r1.id, Processing),
            (2, r2.id, Submitted)
        ]
    );
    // …who can only resubmit.
    assert_eq!(
        w.refusal(draft, &r1, REJECT).await,
        UserError::NotRejectable
    );
    assert_eq!(w.submits(draft, &r1, SUBMIT).await, TaskStatus::Reviewing);
    // max_reviews 2 reached: the second reviewer's approval completes.
    assert_eq!(w.submits(draft, &r2, SUBMIT).await, TaskStatus::Complete);
}

#[tokio::test]
async fn submit_errors_in_orchestras_order() {
    let steps = json!([
        {"slug": "draft", "name": "Draft", "required_certifications": ["writer"], "review_policy": {"policy": "no_review"}},
        {"slug": "notes", "name": "Notes", "required_certifications": ["writer"], "review_policy": {"policy": "no_review"}},
        {"slug": "final", "name": "Final", "required_certifications": ["writer"], "submission_depends_on": ["notes"],
         "review_policy": {"policy": "sampled_review", "rate": 1, "max_reviews": 1}}
    ]);
    let w = World::new(steps, None).await;
    let tasks = w.tasks().await;
    let (draft, notes, fin) = (tasks[0].id, tasks[1].id, tasks[2].id);
    let a = w.worker("a", &[("writer", Role::Reviewer)]).await;
    let b = w.worker("b", &[("writer", Role::EntryLevel)]).await;

    // Illegal status: nobody is working on it yet (the worker check comes first, so assign b elsewhere).
    assert_eq!(
        w.refusal(draft, &a, SUBMIT).await,
        UserError::AssignmentBroken
    );
    // 1. submission prerequisites
    w.assign(fin, &a).await;
    assert_eq!(
        w.refusal(fin, &a, SUBMIT).await,
        UserError::SubmissionPrerequisitesIncomplete
    );
    w.assign(notes, &b).await;
    w.submits(notes, &b, SUBMIT).await;
    // 2. already complete
    assert_eq!(
        w.refusal(notes, &b, SUBMIT).await,
        UserError::TaskAlreadyCompleted
    );
    // 3. a worker without an assignment on the task
    assert_eq!(
        w.refusal(fin, &b, SUBMIT).await,
        UserError::AssignmentBroken
    );
    // 5. rejecting what is not under review
    assert_eq!(w.refusal(fin, &a, REJECT).await, UserError::NotRejectable);
    // 4. an assignment that is no longer processing
    assert_eq!(w.submits(fin, &a, SUBMIT).await, TaskStatus::PendingReview);
    assert_eq!(
        w.refusal(fin, &a, SUBMIT).await,
        UserError::NotAllowedToSubmit
    );
    // 5. status: pending review cannot be submitted by anyone
    w.assign(draft, &b).await;
    let mut rng = StdRng::seed_from_u64(1);
    assert_eq!(
        user_err(
            lifecycle::review(w.db(), draft, &b, true, &Default::default(), t0(), &mut rng).await
        ),
        UserError::NotUnderReview(draft)
    );
    // Aborted tasks cannot be submitted.
    lifecycle::abort_project(w.db(), w.project, &Default::default(), t0())
        .await
        .expect("abort");
    assert_eq!(
        w.refusal(draft, &b, SUBMIT).await,
        UserError::NotSubmittable
    );
    assert_eq!(
        user_err(lifecycle::abort_project(w.db(), w.project, &Default::default(), t0()).await),
        UserError::ProjectFinished {
            id: w.project,
            status: "aborted".into()
        }
    );
}

#[tokio::test]
async fn assignment_errors() {
    let w = World::new(two_steps(json!({"policy": "no_review"})), None).await;
    let draft = w.tasks().await[0].id;
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    let e = w.worker("e", &[("editor", Role::EntryLevel)]).await;
    assert_eq!(
        user_err(lifecycle::assign_task(w.db(), draft, &e, &Default::default(), t0()).await),
        UserError::NotCertifiedForTask
    );
    assert_eq!(
        user_err(lifecycle::assign_task(w.db(), 999, &a, &Default::default(), t0()).await),
        UserError::TaskNotFound(999)
    );
    w.assign(draft, &a).await;
    assert_eq!(
        user_err(lifecycle::assign_task(w.db(), draft, &a, &Default::default(), t0()).await),
        UserError::StatusIncompatibleWithNewAssignment
    );
    // `task assign` on a task in progress hands it over; certification is checked for the role.
    assert_eq!(
        user_err(lifecycle::assign_or_reassign(w.db(), draft, &e, &Default::default(), t0()).await),
        UserError::NotCertifiedForAssignment
    );
    assert_eq!(
        user_err(lifecycle::assign_or_reassign(w.db(), draft, &a, &Default::default(), t0()).await),
        UserError::AlreadyAssigned
    );
    w.submits(draft, &a, SUBMIT).await;
    assert_eq!(
        user_err(lifecycle::assign_or_reassign(w.db(), draft, &a, &Default::default(), t0()).await),
        UserError::TaskFinished {
            task: draft,
            status: "complete".into()
        }
    );
}

#[tokio::test]
async fn a_reviewer_certification_needs_the_entry_level_one() {
    let t = TestDb::new().await;
    let dir = flow(two_steps(json!({"policy": "no_review"})));
    load_workflow(&t.db, dir.path()).await;
    let w = add_worker(&t.db, "a", None).await;
    let cert = staffbot::workers::find_certification(&t.db, "writer", Some("wf"))
        .await
        .expect("cert");
    let how = |role| staffbot::workers::Certify {
        role,
        staffing_priority: 2,
        staffbot_enabled: true,
    };
    let err =
        user_err(staffbot::workers::certify(&t.db, &w, &cert, how(Role::Reviewer), t0()).await);
    assert_eq!(
        err.to_string(),
        "You are trying to add a reviewer certification (writer) for a worker without an entry-level certification"
    );
    staffbot::workers::certify(&t.db, &w, &cert, how(Role::EntryLevel), t0())
        .await
        .expect("entry");
    staffbot::workers::certify(&t.db, &w, &cert, how(Role::Reviewer), t0())
        .await
        .expect("reviewer");
}

#[tokio::test]
async fn role_counter_gaps_are_filled_and_staffed_consistently() {
    let w = World::new(
        two_steps(json!({"policy": "sampled_review", "rate": 1, "max_reviews": 3})),
        Some("C1"),
    )
    .await;
    let draft = w.tasks().await[0].id;
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    let r1 = w.worker("r1", &[("writer", Role::Reviewer)]).await;
    let r2 = w.worker("r2", &[("writer", Role::Reviewer)]).await;
    let r3 = w.worker("r3", &[("writer", Role::Reviewer)]).await;
    w.assign(draft, &a).await;
    w.submits(draft, &a, SUBMIT).await;
    w.assign(draft, &r1).await;
    w.submits(draft, &r1, SUBMIT).await;
    w.assign(draft, &r2).await;
    w.submits(draft, &r2, SUBMIT).await;
    // A gap: counter 1 disappears (Orchestra can get here through deleted assignments).
    task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(draft))
        .filter(task_assignment::Column::AssignmentCounter.eq(1))
        .one(w.db())
        .await
        .expect("q")
        .expect("row")
        .delete(w.db())
        .await
        .expect("delete");

    // staff asks for counter 1, and the assignment that wins it IS counter 1 (W-9 fixed).
    let request = requests::staff_task(w.db(), draft, RequestCause::User, t0())
        .await
        .expect("staff");
    assert_eq!(request.required_role_counter, 1);
    let assignment = w.assign(draft, &r3).await;
    assert_eq!(assignment.assignment_counter, 1);
    let requests = w.requests(draft).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].status,
        RequestStatus::Closed,
        "the request for counter 1 closed"
    );
}

#[tokio::test]
async fn assignment_policies_run_on_creation_and_review() {
    let steps = json!([
        {"slug": "draft", "name": "Draft", "description": "Write", "required_certifications": ["writer"],
         "assignment_policy": {"policy_function": {"entry_level": {"path": "orchestra.assignment_policies.specified_worker", "kwargs": {"username": "alice"}}}},
         "review_policy": {"policy": "no_review"}},
        {"slug": "rewrite", "name": "Rewrite", "creation_depends_on": ["draft"], "required_certifications": ["writer"],
         "assignment_policy": {"policy_function": {
             "entry_level": {"path": "orchestra.assignment_policies.previously_completed_steps", "kwargs": {"related_steps": ["draft"]}},
             "reviewer": {"path": "orchestra.bots.assignment_policies.staffbot_autoassign"}}},
         "review_policy": {"policy": "sampled_review", "rate": 1, "max_reviews": 1}},
        {"slug": "edit", "name": "Edit", "creation_depends_on": ["rewrite"], "required_certifications": ["editor"],
         "assignment_policy": {"policy_function": {"entry_level": {"path": "staffbot_autoassign"}}},
         "review_policy": {"policy": "no_review"}}
    ]);
    let t = TestDb::new().await;
    let dir = flow(steps);
    let version = load_workflow(&t.db, dir.path()).await;
    // specified_worker fails clearly while alice does not exist.
    let err = user_err(
        lifecycle::create_project(
            &t.db,
            &version,
            "Story",
            0,
            Some("C9".into()),
            &Default::default(),
            t0(),
        )
        .await,
    );
    assert_eq!(
        err.to_string(),
        "Assignment policy of step draft failed: Worker with username alice does not exist"
    );
    let w = World { t, project: 0 };
    let alice = w.worker("alice", &[("writer", Role::EntryLevel)]).await;
    let project = lifecycle::create_project(
        w.db(),
        &version,
        "Story",
        0,
        Some("C9".into()),
        &Default::default(),
        t0(),
    )
    .await
    .expect("project");
    let w = World { project, ..w };
    let tasks = w.tasks().await;
    assert_eq!(
        w.assignments(tasks[0].id).await,
        vec![(0, alice.id, Processing)]
    );

    // draft completes → rewrite is created and previously_completed_steps gives it to alice.
    w.submits(tasks[0].id, &alice, SUBMIT).await;
    let tasks = w.tasks().await;
    let rewrite = tasks[1].id;
    assert_eq!(
        w.assignments(rewrite).await,
        vec![(0, alice.id, Processing)]
    );

    // rewrite goes to review → the reviewer policy (staffbot_autoassign) opens a request for counter 1.
    w.submits(rewrite, &alice, SUBMIT).await;
    let requests = w.requests(rewrite).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (
            requests[0].required_role_counter,
            requests[0].cause,
            requests[0].status
        ),
        (1, RequestCause::TaskPolicy, RequestStatus::Sending)
    );
    let got_it = crate::common::post(
        "C9",
        format!("Got it! I will start staffing task {rewrite}!"),
    );
    assert!(
        outbox_rows(w.db()).await.iter().any(|(_, m)| *m == got_it),
        "announced in the channel"
    );

    // A worker who had been offered the review and is assigned by hand becomes the winner.
    let rita = w.worker("rita", &[("writer", Role::Reviewer)]).await;
    let inquiry = staffing_inquiry::ActiveModel {
        request_id: Set(requests[0].id),
        worker_id: Set(rita.id),
        method: Set(InquiryMethod::Slack),
        created_at: Set(t0()),
        ..Default::default()
    }
    .insert(w.db())
    .await
    .expect("inquiry");
    w.assign(rewrite, &rita).await;
    assert_eq!(w.requests(rewrite).await[0].status, RequestStatus::Closed);
    let response = staffing_response::Entity::find()
        .filter(staffing_response::Column::InquiryId.eq(inquiry.id))
        .one(w.db())
        .await
        .expect("q")
        .expect("winner row");
    assert!(response.is_winner && response.is_available);

    // Approving completes rewrite; edit is created and autoassign opens its request.
    let mut rng = StdRng::seed_from_u64(1);
    lifecycle::review(
        w.db(),
        rewrite,
        &rita,
        true,
        &Default::default(),
        t0(),
        &mut rng,
    )
    .await
    .expect("approve");
    let edit = w.tasks().await[2].id;
    let requests = w.requests(edit).await;
    assert_eq!(
        (requests[0].required_role_counter, requests[0].cause),
        (0, RequestCause::TaskPolicy)
    );
}

#[tokio::test]
async fn reassigning_moves_the_work_and_tells_the_previous_worker() {
    let w = World::new(two_steps(json!({"policy": "no_review"})), Some("C7")).await;
    let draft = w.tasks().await[0].id;
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    let b = w.worker("b", &[("writer", Role::EntryLevel)]).await;
    w.assign(draft, &a).await;
    let (moved, reassigned) = w.hand_over(draft, &b).await;
    assert!(reassigned);
    assert_eq!(moved.assignment_counter, 0);
    assert_eq!(w.assignments(draft).await, vec![(0, b.id, Processing)]);
    // a's invite, welcome and status notice; then the hand-over, which has no status notice.
    let writes: Vec<SlackWrite> = w.writes().await.into_iter().skip(3).collect();
    assert_eq!(
        writes[0],
        SlackWrite::Invite {
            channel: "C7".into(),
            users: "U_B".into()
        }
    );
    assert_eq!(
        writes[1],
        crate::common::post("C7", "<@U_B> has been added to the team. Welcome aboard!")
    );
    assert_eq!(
        writes[2],
        SlackWrite::Kick {
            channel: "C7".into(),
            user: "U_A".into()
        }
    );
    match &writes[3] {
        SlackWrite::PostMessage { channel, text, .. } => {
            assert_eq!(channel, "U_A");
            assert!(
                text.contains(&format!("Task {draft} (v1 (Story) - draft)")),
                "{text}"
            );
        }
        other => panic!("expected a DM, got {other:?}"),
    }
    assert_eq!(writes.len(), 4);
    // The new worker can submit; the old one cannot.
    assert_eq!(
        w.refusal(draft, &a, SUBMIT).await,
        UserError::AssignmentBroken
    );
    w.submits(draft, &b, SUBMIT).await;
}

/// Issue 18: handing a task away removes the previous worker from the project channel only
/// when they have no other work there (another task in progress, a review, submitted work
/// under review).
#[tokio::test]
async fn a_worker_with_other_work_in_the_project_is_not_kicked() {
    let w = World::new(
        json!([
            {"slug": "draft", "name": "Draft", "description": "Write", "required_certifications": ["writer"],
             "review_policy": {"policy": "sampled_review", "rate": 1, "max_reviews": 1}},
            {"slug": "photo", "name": "Photo", "description": "Shoot", "required_certifications": ["writer"],
             "review_policy": {"policy": "no_review"}}
        ]),
        Some("C7"),
    )
    .await;
    let (draft, photo) = (w.tasks().await[0].id, w.tasks().await[1].id);
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    let b = w.worker("b", &[("writer", Role::EntryLevel)]).await;
    let rita = w.worker("rita", &[("writer", Role::Reviewer)]).await;
    for task in [draft, photo] {
        w.assign(task, &a).await;
    }
    // a still writes the draft: stays.
    w.hand_over(photo, &b).await;
    assert_eq!(w.kicked().await, Vec::<String>::new());
    // a's draft goes to review with rita; b has nothing else: removed.
    w.submits(draft, &a, SUBMIT).await;
    w.assign(draft, &rita).await;
    w.hand_over(photo, &rita).await;
    assert_eq!(w.kicked().await, vec!["U_B".to_string()]);
    // rita still reviews the draft: stays.
    w.hand_over(photo, &b).await;
    assert_eq!(w.kicked().await, vec!["U_B".to_string()]);
    // Every hand-over told the previous worker.
    let told: Vec<String> = outbox_rows(w.db())
        .await
        .into_iter()
        .filter(|(key, _)| key.starts_with("removed:"))
        .filter_map(|(_, m)| match m {
            SlackWrite::PostMessage { channel, .. } => Some(channel),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["U_A", "U_B", "U_RITA"]);
}

#[tokio::test]
async fn aborting_closes_requests_and_restaff_needs_an_assignment() {
    let w = World::new(two_steps(json!({"policy": "no_review"})), None).await;
    let draft = w.tasks().await[0].id;
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    assert_eq!(
        user_err(requests::restaff_task(w.db(), draft, &a, "a", t0()).await),
        UserError::AssignmentNotFound {
            username: "a".into(),
            task: draft.to_string()
        }
    );
    w.assign(draft, &a).await;
    let request = requests::restaff_task(w.db(), draft, &a, "a", t0())
        .await
        .expect("restaff");
    assert_eq!(
        (request.cause, request.required_role_counter),
        (RequestCause::Restaff, 0)
    );
    // staff on a task in progress: Orchestra's wrapped error text.
    let err = user_err(requests::staff_task(w.db(), draft, RequestCause::User, t0()).await);
    assert_eq!(
        requests::staff_error_text(&draft.to_string(), &err),
        format!("Task {draft} got an error: \"Status incompatible with new assignment\"")
    );
    lifecycle::abort_project(w.db(), w.project, &Default::default(), t0())
        .await
        .expect("abort");
    assert!(
        w.tasks()
            .await
            .iter()
            .all(|t| t.status == TaskStatus::Aborted)
    );
    assert!(
        w.requests(draft)
            .await
            .iter()
            .all(|r| r.status == RequestStatus::Closed)
    );
}

#[tokio::test]
async fn completion_ends_project() {
    let steps = json!([
        {"slug": "pitch", "name": "Pitch", "required_certifications": ["writer"], "review_policy": {"policy": "no_review"}, "completion_ends_project": true},
        {"slug": "notes", "name": "Notes", "required_certifications": ["writer"], "review_policy": {"policy": "no_review"}}
    ]);
    let w = World::new(steps, None).await;
    let tasks = w.tasks().await;
    assert_eq!(tasks.len(), 2);
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    w.assign(tasks[0].id, &a).await;
    w.submits(tasks[0].id, &a, SUBMIT).await;
    let p = by_id::<project::Entity>(w.db(), w.project).await;
    assert_eq!(
        p.status,
        ProjectStatus::Completed,
        "pitch ends the project though notes is open"
    );
}

/// Status notices are keyed per status change: a task's abort is told once for the task a
/// worker had (naming them), and not for the one nobody worked on.
#[tokio::test]
async fn an_abort_is_told_for_the_tasks_somebody_worked_on() {
    let steps = json!([
        {"slug": "pitch", "name": "Pitch", "required_certifications": ["writer"], "review_policy": {"policy": "no_review"}},
        {"slug": "notes", "name": "Notes", "required_certifications": ["writer"], "review_policy": {"policy": "no_review"}}
    ]);
    let w = World::new(steps, Some("C_STORY")).await;
    let tasks = w.tasks().await;
    let a = w.worker("a", &[("writer", Role::EntryLevel)]).await;
    w.assign(tasks[0].id, &a).await;
    lifecycle::abort_project(w.db(), w.project, &Default::default(), t0())
        .await
        .expect("abort");
    let notices: Vec<(String, SlackWrite)> = outbox_rows(w.db())
        .await
        .into_iter()
        .filter(|(key, _)| key.starts_with("notice:"))
        .collect();
    let pitch = tasks[0].id;
    let keys: Vec<&str> = notices.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("notice:task:{pitch}:change:1:channel"),
            format!("notice:task:{pitch}:change:2:channel")
        ]
    );
    let aborted = crate::common::post(
        "C_STORY",
        format!(
            "*Task has been aborted.*\n>>>Current worker: a (<@U_A>)\n\nProject: v1 | Story\nTask: pitch {pitch}"
        ),
    );
    assert_eq!(notices[1].1, aborted);
}
