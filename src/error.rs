//! Errors users see. [`UserError`] carries Orchestra's texts where Orchestra has them; callers
//! (CLI, slash command) print or reply with its `Display`. Data staffbot stored itself but can
//! no longer read (a workflow version saved by another release, a hand-edited row) is
//! [`StoredDataInvalid`]; only failures of the database itself are [`Error::Db`].

use sea_orm::DbErr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("Task {0} does not exist")]
    TaskNotFound(i64),
    #[error("Project {0} does not exist")]
    ProjectNotFound(i64),
    #[error("Worker with username {0} does not exist")]
    WorkerNotFound(String),
    #[error("Workflow {0} does not exist")]
    WorkflowNotFound(String),
    #[error("Invalid version requested: {0}")]
    VersionNotFound(String),
    #[error("Workflow {workflow} has no versions; load one with `staffbot workflow load`")]
    NoVersions { workflow: String },
    #[error("Certification {0} does not exist")]
    CertificationNotFound(String),
    #[error("Certification {slug} exists in several workflows ({workflows}); pass --workflow")]
    AmbiguousCertification { slug: String, workflows: String },
    #[error(
        "You are trying to add a reviewer certification ({0}) for a worker without an entry-level certification"
    )]
    ReviewerWithoutEntryLevel(String),
    #[error("Worker {0} already exists")]
    WorkerExists(String),
    #[error("Worker {username} cannot be notified by {notify} without an email address (--email)")]
    EmailNeeded { username: String, notify: String },
    #[error("Slack user id {slack_user_id} already belongs to worker {username}")]
    SlackIdTaken {
        slack_user_id: String,
        username: String,
    },
    #[error("Status incompatible with new assignment")]
    StatusIncompatibleWithNewAssignment,
    #[error("Task is in incorrect state")]
    TaskInIncorrectState,
    #[error("Worker not certified for this task.")]
    NotCertifiedForTask,
    #[error("Worker not certified for this assignment.")]
    NotCertifiedForAssignment,
    #[error("Worker already assigned to this task.")]
    AlreadyAssigned,
    #[error("Submission prerequisites are not complete.")]
    SubmissionPrerequisitesIncomplete,
    #[error("Task already completed")]
    TaskAlreadyCompleted,
    #[error("Task assignment with worker is in broken state.")]
    AssignmentBroken,
    #[error("Worker is not allowed to submit")]
    NotAllowedToSubmit,
    #[error("Task has illegal status for submit.")]
    IllegalStatusForSubmit,
    #[error("Task not in submittable state.")]
    NotSubmittable,
    #[error("Task not in rejectable state.")]
    NotRejectable,
    #[error("Task {0} is not under review.")]
    NotUnderReview(i64),
    #[error("Review policy incorrectly specified.")]
    ReviewPolicyIncorrect,
    #[error("Task {task}'s assignment changed in the meantime; try again")]
    AssignmentChanged { task: i64 },
    #[error("Task {task} has no assignment to reassign")]
    NothingToReassign { task: i64 },
    #[error("Task {task} is {status}; only unfinished tasks can be assigned")]
    TaskFinished { task: i64, status: String },
    #[error("Task {task} is {status}; only unfinished tasks can be restaffed")]
    RestaffTaskFinished { task: i64, status: String },
    #[error(
        "{username} is not currently working on task {task} (their assignment is {status}); only work in progress can be restaffed"
    )]
    RestaffNotInProgress {
        username: String,
        task: i64,
        status: String,
    },
    #[error("Project {id} is already {status}")]
    ProjectFinished { id: i64, status: String },
    #[error("Assignment policy of step {step} failed: {message}")]
    AssignmentPolicyFailed { step: String, message: String },
    #[error(
        "Task {task} is a machine step ({step}): automation completes it (`staffbot task complete`), nobody is assigned to it"
    )]
    MachineTask { task: i64, step: String },
    #[error("Task {task} is a human step; workers submit it (`staffbot task submit`)")]
    NotAMachineTask { task: i64 },
    #[error("Task {task} is {status}; only a task waiting for its automation can be completed")]
    MachineTaskNotWaiting { task: i64, status: String },
    #[error("TaskAssignment associated with user {username} and task {task} does not exist.")]
    AssignmentNotFound { username: String, task: String },
    /// A time zone, working hours or days, or hours of availability that do not parse.
    #[error("{0}")]
    InvalidAvailability(String),
}

/// Data read back from the database that does not parse as what staffbot stored (written by
/// another release, or edited by hand): `what` names the data and where it is (e.g. "review
/// policy of step draft (id 4)"), `detail` says why it does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored {what} is invalid: {detail}")]
pub struct StoredDataInvalid {
    pub what: String,
    pub detail: String,
}

/// A write refused because the lease it runs under passed to another holder or lapsed: the
/// caller's transaction must roll back (see `lease::LeaseProof::fence`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lease is no longer held by this process (lease {lease}, token {token})")]
pub struct LeaseLost {
    pub lease: String,
    pub token: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    StoredDataInvalid(#[from] StoredDataInvalid),
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl Error {
    pub fn user(&self) -> Option<&UserError> {
        match self {
            Error::User(e) => Some(e),
            Error::StoredDataInvalid(_) | Error::LeaseLost(_) | Error::Db(_) => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
