//! Workers and their certifications (behaviour §2.2).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};

use crate::db::Role;
use crate::db::entities::{certification, worker, worker_certification, workflow};
use crate::error::{Result, UserError};

#[derive(Debug, Clone, Default)]
pub struct NewWorker {
    pub username: String,
    pub first_name: String,
    pub email: String,
    pub slack_user_id: Option<String>,
    pub slack_username: Option<String>,
    pub is_admin: bool,
}

pub async fn add<C: ConnectionTrait>(
    conn: &C,
    new: NewWorker,
    now: DateTime<Utc>,
) -> Result<worker::Model> {
    if worker::Entity::find()
        .filter(worker::Column::Username.eq(&new.username))
        .one(conn)
        .await?
        .is_some()
    {
        return Err(UserError::WorkerExists(new.username).into());
    }
    if let Some(slack_id) = &new.slack_user_id
        && let Some(other) = worker::Entity::find()
            .filter(worker::Column::SlackUserId.eq(slack_id))
            .one(conn)
            .await?
    {
        return Err(UserError::SlackIdTaken {
            slack_user_id: slack_id.clone(),
            username: other.username,
        }
        .into());
    }
    Ok(worker::ActiveModel {
        username: Set(new.username),
        first_name: Set(new.first_name),
        email: Set(new.email),
        slack_user_id: Set(new.slack_user_id),
        slack_username: Set(new.slack_username),
        is_admin: Set(new.is_admin),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?)
}

/// Finds a certification by slug, within `workflow_slug` when given.
pub async fn find_certification<C: ConnectionTrait>(
    conn: &C,
    slug: &str,
    workflow_slug: Option<&str>,
) -> Result<certification::Model> {
    let mut query = certification::Entity::find().filter(certification::Column::Slug.eq(slug));
    if let Some(wf) = workflow_slug {
        let w = workflow::Entity::find()
            .filter(workflow::Column::Slug.eq(wf))
            .one(conn)
            .await?
            .ok_or_else(|| UserError::WorkflowNotFound(wf.to_string()))?;
        query = query.filter(certification::Column::WorkflowId.eq(w.id));
    }
    let mut found = query.all(conn).await?;
    match found.len() {
        0 => Err(UserError::CertificationNotFound(slug.to_string()).into()),
        1 => Ok(found.remove(0)),
        _ => {
            let ids: Vec<i64> = found.iter().map(|c| c.workflow_id).collect();
            let names: Vec<String> = workflow::Entity::find()
                .filter(workflow::Column::Id.is_in(ids))
                .all(conn)
                .await?
                .into_iter()
                .map(|w| w.slug)
                .collect();
            Err(UserError::AmbiguousCertification {
                slug: slug.to_string(),
                workflows: names.join(", "),
            }
            .into())
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Certify {
    pub role: Role,
    pub staffing_priority: i32,
    pub staffbot_enabled: bool,
}

/// Grants (or updates) a certification. A reviewer certification needs the entry-level one.
pub async fn certify<C: ConnectionTrait>(
    conn: &C,
    worker: &worker::Model,
    cert: &certification::Model,
    how: Certify,
    now: DateTime<Utc>,
) -> Result<worker_certification::Model> {
    let held = worker_certification::Entity::find()
        .filter(worker_certification::Column::WorkerId.eq(worker.id))
        .filter(worker_certification::Column::CertificationId.eq(cert.id))
        .all(conn)
        .await?;
    if how.role == Role::Reviewer && !held.iter().any(|c| c.role == Role::EntryLevel) {
        return Err(UserError::ReviewerWithoutEntryLevel(cert.slug.clone()).into());
    }
    match held.into_iter().find(|c| c.role == how.role) {
        Some(existing) => {
            let mut am: worker_certification::ActiveModel = existing.into();
            am.staffing_priority = Set(how.staffing_priority);
            am.staffbot_enabled = Set(how.staffbot_enabled);
            Ok(am.update(conn).await?)
        }
        None => Ok(worker_certification::ActiveModel {
            worker_id: Set(worker.id),
            certification_id: Set(cert.id),
            role: Set(how.role),
            staffbot_enabled: Set(how.staffbot_enabled),
            staffing_priority: Set(how.staffing_priority),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(conn)
        .await?),
    }
}
