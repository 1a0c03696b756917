//! SanityBot's data: the projects it checks and the checks it fired.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, QueryFilter,
};
use serde_json::Value;

use super::entities::sanity_check;
use super::{ProjectStatus, statement};

/// A project SanityBot looks at, with its version's raw `sanity_checks`.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CheckedProject {
    pub id: i64,
    pub slack_channel_id: Option<String>,
    pub sanity_checks: Value,
}

/// Every active or paused project whose workflow version has checks, by id.
pub async fn projects_with_checks<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<CheckedProject>, DbErr> {
    CheckedProject::find_by_statement(statement(
        conn.get_database_backend(),
        "SELECT p.id, p.slack_channel_id, v.sanity_checks FROM projects p
         JOIN workflow_versions v ON v.id = p.workflow_version_id
         WHERE p.status IN ($1, $2) AND v.sanity_checks IS NOT NULL
         ORDER BY p.id",
        vec![
            ProjectStatus::Active.as_str().into(),
            ProjectStatus::Paused.as_str().into(),
        ],
    ))
    .all(conn)
    .await
}

/// Every check fired for a project.
pub async fn checks_of<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
) -> Result<Vec<sanity_check::Model>, DbErr> {
    sanity_check::Entity::find()
        .filter(sanity_check::Column::ProjectId.eq(project_id))
        .all(conn)
        .await
}

/// Records that check `slug` fired (and was handled) for a project at `now`.
pub async fn record_fired<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    sanity_check::ActiveModel {
        project_id: Set(project_id),
        check_slug: Set(slug.to_string()),
        created_at: Set(now),
        handled_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}
