//! Status notices: what a task's change tells its project channel and its workers, as the
//! notice settings say.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{find_project, find_step};
use crate::config::NoticeSettings;
use crate::db::entities::{project, task, worker};
use crate::db::{workers, workflows};
use crate::error::Result;
use crate::messages::{Message, NoticeStatus, Outgoing};
use crate::outbox;

/// What a status notice says about its task, besides the status and the worker.
#[derive(Debug, Clone, Copy)]
pub struct NoticeFacts<'a> {
    pub task_id: i64,
    pub version_slug: &'a str,
    pub project_description: &'a str,
    pub step_slug: &'a str,
    /// The project's channel, if it has one.
    pub channel: Option<&'a str>,
}

/// The outbox key of a task's status notice: one per status change (`count`: the task's
/// `status_changes` once changed) and destination (`channel` or `notifications`). A task
/// returned twice gets a notice each time; a retried transaction (which rolls the count back
/// with everything else) queues it once.
pub fn notice_key(task_id: i64, count: i32, destination: &str) -> String {
    format!("notice:task:{task_id}:change:{count}:{destination}")
}

/// The status notices of one status change of a task whose current worker is `worker`: one to
/// the project's channel (mentioning the worker), when it has one, a copy to the notifications
/// channel (linking the project's channel), when one is set, and an email to the worker when
/// they prefer email (Orchestra's status emails). Nothing when notices are off.
pub fn status_notices(
    settings: &NoticeSettings,
    facts: NoticeFacts<'_>,
    worker: NoticeWorker<'_>,
    status: NoticeStatus,
    count: i32,
) -> Vec<(String, Outgoing)> {
    if !settings.enabled {
        return Vec::new();
    }
    let (username, slack_id) = (worker.username, worker.slack_id);
    let message = |mention: Option<&str>, project_channel: Option<&str>| Message::StatusNotice {
        status,
        task_id: facts.task_id,
        version: facts.version_slug.to_string(),
        project_description: facts.project_description.to_string(),
        step: facts.step_slug.to_string(),
        worker: username.to_string(),
        mention: mention.map(str::to_string),
        project_channel: project_channel.map(str::to_string),
    };
    let mut out = Vec::with_capacity(2);
    if let Some(channel) = facts.channel {
        out.push((
            notice_key(facts.task_id, count, "channel"),
            Outgoing::post(channel, message(slack_id, None)),
        ));
    }
    if let Some(notifications) = &settings.channel {
        out.push((
            notice_key(facts.task_id, count, "notifications"),
            Outgoing::post(notifications, message(None, facts.channel)),
        ));
    }
    let reach = crate::notify::reach(worker.notify, slack_id, worker.email, settings.email);
    if let Some(address) = reach.email {
        let to = crate::notify::EmailTo {
            to: address,
            token: None,
            in_reply_to: None,
            slack_user: slack_id,
            only_channel: false,
        };
        out.push((
            notice_key(facts.task_id, count, "email"),
            to.outgoing(message(None, None)),
        ));
    }
    out
}

/// The worker a status notice is about, and how they are reached.
#[derive(Debug, Clone, Copy)]
pub struct NoticeWorker<'a> {
    pub username: &'a str,
    pub slack_id: Option<&'a str>,
    pub email: &'a str,
    pub notify: crate::db::Notify,
}

impl<'a> From<&'a worker::Model> for NoticeWorker<'a> {
    fn from(w: &'a worker::Model) -> Self {
        NoticeWorker {
            username: &w.username,
            slack_id: w.slack_user_id.as_deref(),
            email: &w.email,
            notify: w.notify,
        }
    }
}

/// One status change of a task, for [`queue_notices`].
pub(super) struct Change<'a> {
    /// The task (its id, project and step).
    pub(super) task: &'a task::Model,
    /// Its project, when the caller has it loaded.
    pub(super) project: Option<&'a project::Model>,
    pub(super) status: NoticeStatus,
    /// The task's `status_changes` once changed.
    pub(super) count: i32,
    /// The task's current worker.
    pub(super) worker_id: i64,
}

/// True when a status change is announced anywhere: notices are on, and the project has a
/// channel or a notifications channel is set.
pub(super) fn announced(settings: &NoticeSettings, project: &project::Model) -> bool {
    settings.enabled
        && (project.slack_channel_id.is_some() || settings.channel.is_some() || settings.email)
}

/// Queues [`status_notices`] for a status change, loading what they say.
pub(super) async fn queue_notices<C: ConnectionTrait>(
    conn: &C,
    settings: &NoticeSettings,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if !settings.enabled {
        return Ok(());
    }
    let loaded;
    let project = match change.project {
        Some(p) => p,
        None => {
            loaded = find_project(conn, change.task.project_id).await?;
            &loaded
        }
    };
    if !announced(settings, project) {
        return Ok(());
    }
    let version = workflows::version_by_id(conn, project.workflow_version_id).await?;
    let step = find_step(conn, change.task.step_id).await?;
    let Some(worker) = workers::by_id(conn, change.worker_id).await? else {
        return Ok(());
    };
    let facts = NoticeFacts {
        task_id: change.task.id,
        version_slug: version.as_ref().map(|v| v.slug.as_str()).unwrap_or(""),
        project_description: &project.short_description,
        step_slug: &step.slug,
        channel: project.slack_channel_id.as_deref(),
    };
    let messages = status_notices(
        settings,
        facts,
        (&worker).into(),
        change.status,
        change.count,
    );
    outbox::enqueue_all(conn, messages, now).await?;
    Ok(())
}
