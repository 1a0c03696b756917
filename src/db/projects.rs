//! Projects.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::ProjectStatus;
use super::entities::project;

pub async fn by_id<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<project::Model>, DbErr> {
    project::Entity::find_by_id(id).one(conn).await
}

/// Every project, by id.
pub async fn all_by_id<C: ConnectionTrait>(conn: &C) -> Result<Vec<project::Model>, DbErr> {
    project::Entity::find()
        .order_by_asc(project::Column::Id)
        .all(conn)
        .await
}

/// Projects with one of `statuses` that have no Slack channel.
pub async fn without_channel<C: ConnectionTrait>(
    conn: &C,
    statuses: &[ProjectStatus],
) -> Result<Vec<project::Model>, DbErr> {
    project::Entity::find()
        .filter(project::Column::SlackChannelId.is_null())
        .filter(project::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
        .all(conn)
        .await
}

/// A new project's row.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    pub workflow_version_id: i64,
    pub short_description: &'a str,
    pub priority: i32,
    pub slack_channel_id: Option<String>,
    /// The project's data (a JSON object; `{}` for none).
    pub project_data: serde_json::Value,
}

/// Inserts an active project with its data.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    new: NewProject<'_>,
    now: DateTime<Utc>,
) -> Result<project::Model, DbErr> {
    project::ActiveModel {
        workflow_version_id: Set(new.workflow_version_id),
        short_description: Set(new.short_description.to_string()),
        priority: Set(new.priority),
        status: Set(ProjectStatus::Active),
        slack_channel_id: Set(new.slack_channel_id),
        project_data: Set(new.project_data),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

pub async fn set_status<C: ConnectionTrait>(
    conn: &C,
    project: project::Model,
    status: ProjectStatus,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut am: project::ActiveModel = project.into();
    am.status = Set(status);
    am.updated_at = Set(now);
    am.update(conn).await?;
    Ok(())
}
