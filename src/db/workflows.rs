//! Workflows and what loading one stores: versions, certifications, steps, the steps'
//! dependencies and required certifications.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use serde_json::Value;

use super::DependencyKind;
use super::entities::{
    certification, step, step_certification, step_dependency, workflow, workflow_version,
};

// ---- workflows ----

pub async fn by_slug<C: ConnectionTrait>(
    conn: &C,
    slug: &str,
) -> Result<Option<workflow::Model>, DbErr> {
    workflow::Entity::find()
        .filter(workflow::Column::Slug.eq(slug))
        .one(conn)
        .await
}

pub async fn by_ids<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<workflow::Model>, DbErr> {
    workflow::Entity::find()
        .filter(workflow::Column::Id.is_in(ids))
        .all(conn)
        .await
}

/// Every workflow, in no particular order.
pub async fn all<C: ConnectionTrait>(conn: &C) -> Result<Vec<workflow::Model>, DbErr> {
    workflow::Entity::find().all(conn).await
}

/// Every workflow, by slug.
pub async fn all_by_slug<C: ConnectionTrait>(conn: &C) -> Result<Vec<workflow::Model>, DbErr> {
    workflow::Entity::find()
        .order_by_asc(workflow::Column::Slug)
        .all(conn)
        .await
}

/// A workflow's name and description, as `workflow.json` gives them.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowText<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    text: WorkflowText<'_>,
    now: DateTime<Utc>,
) -> Result<workflow::Model, DbErr> {
    workflow::ActiveModel {
        slug: Set(text.slug.to_string()),
        name: Set(text.name.to_string()),
        description: Set(text.description.to_string()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Sets a stored workflow's name and description.
pub async fn update_text<C: ConnectionTrait>(
    conn: &C,
    existing: workflow::Model,
    text: WorkflowText<'_>,
) -> Result<(), DbErr> {
    let mut am: workflow::ActiveModel = existing.into();
    am.name = Set(text.name.to_string());
    am.description = Set(text.description.to_string());
    am.update(conn).await?;
    Ok(())
}

// ---- certifications ----

/// Certifications with `slug`, in `workflow_id` when given.
pub async fn certifications_by_slug<C: ConnectionTrait>(
    conn: &C,
    slug: &str,
    workflow_id: Option<i64>,
) -> Result<Vec<certification::Model>, DbErr> {
    let mut query = certification::Entity::find().filter(certification::Column::Slug.eq(slug));
    if let Some(id) = workflow_id {
        query = query.filter(certification::Column::WorkflowId.eq(id));
    }
    query.all(conn).await
}

/// A workflow's certifications, in no particular order.
pub async fn certifications_of<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
) -> Result<Vec<certification::Model>, DbErr> {
    certification::Entity::find()
        .filter(certification::Column::WorkflowId.eq(workflow_id))
        .all(conn)
        .await
}

/// A workflow's certifications, by slug.
pub async fn certifications_of_by_slug<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
) -> Result<Vec<certification::Model>, DbErr> {
    certification::Entity::find()
        .filter(certification::Column::WorkflowId.eq(workflow_id))
        .order_by_asc(certification::Column::Slug)
        .all(conn)
        .await
}

/// Every certification, in no particular order.
pub async fn all_certifications<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<certification::Model>, DbErr> {
    certification::Entity::find().all(conn).await
}

pub async fn certifications_by_ids<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<certification::Model>, DbErr> {
    certification::Entity::find()
        .filter(certification::Column::Id.is_in(ids))
        .all(conn)
        .await
}

/// A certification as `workflow.json` describes it.
#[derive(Debug, Clone)]
pub struct CertificationText<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub required_certifications: Value,
}

pub async fn insert_certification<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    text: CertificationText<'_>,
) -> Result<certification::Model, DbErr> {
    certification::ActiveModel {
        workflow_id: Set(workflow_id),
        slug: Set(text.slug.to_string()),
        name: Set(text.name.to_string()),
        description: Set(text.description.to_string()),
        required_certifications: Set(text.required_certifications),
        ..Default::default()
    }
    .insert(conn)
    .await
}

pub async fn update_certification<C: ConnectionTrait>(
    conn: &C,
    existing: certification::Model,
    text: CertificationText<'_>,
) -> Result<(), DbErr> {
    let mut am: certification::ActiveModel = existing.into();
    am.name = Set(text.name.to_string());
    am.description = Set(text.description.to_string());
    am.required_certifications = Set(text.required_certifications);
    am.update(conn).await?;
    Ok(())
}

// ---- versions ----

pub async fn version_by_id<C: ConnectionTrait>(
    conn: &C,
    id: i64,
) -> Result<Option<workflow_version::Model>, DbErr> {
    workflow_version::Entity::find_by_id(id).one(conn).await
}

pub async fn version_by_slug<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    slug: &str,
) -> Result<Option<workflow_version::Model>, DbErr> {
    workflow_version::Entity::find()
        .filter(workflow_version::Column::WorkflowId.eq(workflow_id))
        .filter(workflow_version::Column::Slug.eq(slug))
        .one(conn)
        .await
}

/// The newest version of a workflow (the last loaded), or the newest with `slug` when given.
pub async fn newest_version<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    slug: Option<&str>,
) -> Result<Option<workflow_version::Model>, DbErr> {
    let mut query = workflow_version::Entity::find()
        .filter(workflow_version::Column::WorkflowId.eq(workflow_id));
    if let Some(v) = slug {
        query = query.filter(workflow_version::Column::Slug.eq(v));
    }
    query
        .order_by_desc(workflow_version::Column::Id)
        .one(conn)
        .await
}

/// A workflow's versions, in the order they were loaded.
pub async fn versions_of<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
) -> Result<Vec<workflow_version::Model>, DbErr> {
    workflow_version::Entity::find()
        .filter(workflow_version::Column::WorkflowId.eq(workflow_id))
        .order_by_asc(workflow_version::Column::Id)
        .all(conn)
        .await
}

/// Every version of every workflow, in no particular order.
pub async fn all_versions<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<workflow_version::Model>, DbErr> {
    workflow_version::Entity::find().all(conn).await
}

/// What a version's row holds besides its steps.
#[derive(Debug, Clone)]
pub struct VersionRow<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub sanity_checks: Option<Value>,
    pub definition: Value,
    /// The version's scripts by file name (`None`: it has none).
    pub scripts: Option<Value>,
}

pub async fn insert_version<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    row: VersionRow<'_>,
    now: DateTime<Utc>,
) -> Result<workflow_version::Model, DbErr> {
    workflow_version::ActiveModel {
        workflow_id: Set(workflow_id),
        slug: Set(row.slug.to_string()),
        name: Set(row.name.to_string()),
        description: Set(row.description.to_string()),
        sanity_checks: Set(row.sanity_checks),
        definition: Set(row.definition),
        scripts: Set(row.scripts),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Replaces a stored version's text, checks and definition (`workflow load --force`).
pub async fn update_version<C: ConnectionTrait>(
    conn: &C,
    existing: workflow_version::Model,
    row: VersionRow<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut am: workflow_version::ActiveModel = existing.into();
    am.name = Set(row.name.to_string());
    am.description = Set(row.description.to_string());
    am.sanity_checks = Set(row.sanity_checks);
    am.definition = Set(row.definition);
    am.scripts = Set(row.scripts);
    am.updated_at = Set(now);
    am.update(conn).await?;
    Ok(())
}

// ---- steps ----

pub async fn step_by_id<C: ConnectionTrait>(
    conn: &C,
    id: i64,
) -> Result<Option<step::Model>, DbErr> {
    step::Entity::find_by_id(id).one(conn).await
}

/// A version's steps, in their order in `version.json`.
pub async fn steps_of_version<C: ConnectionTrait>(
    conn: &C,
    version_id: i64,
) -> Result<Vec<step::Model>, DbErr> {
    step::Entity::find()
        .filter(step::Column::WorkflowVersionId.eq(version_id))
        .order_by_asc(step::Column::Position)
        .all(conn)
        .await
}

/// A version's steps, in no particular order.
pub async fn steps_of_version_unordered<C: ConnectionTrait>(
    conn: &C,
    version_id: i64,
) -> Result<Vec<step::Model>, DbErr> {
    step::Entity::find()
        .filter(step::Column::WorkflowVersionId.eq(version_id))
        .all(conn)
        .await
}

/// The steps of a version with a slug in `slugs`, in their order in `version.json`.
pub async fn steps_by_slugs<C: ConnectionTrait>(
    conn: &C,
    version_id: i64,
    slugs: &[String],
) -> Result<Vec<step::Model>, DbErr> {
    step::Entity::find()
        .filter(step::Column::WorkflowVersionId.eq(version_id))
        .filter(step::Column::Slug.is_in(slugs.iter().map(String::as_str)))
        .order_by_asc(step::Column::Position)
        .all(conn)
        .await
}

pub async fn steps_by_ids<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<step::Model>, DbErr> {
    step::Entity::find()
        .filter(step::Column::Id.is_in(ids))
        .all(conn)
        .await
}

/// The ids among `ids` of machine steps (done by automation, not people).
pub async fn machine_step_ids<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<i64>, DbErr> {
    Ok(step::Entity::find()
        .filter(step::Column::Id.is_in(ids))
        .filter(step::Column::IsHuman.eq(false))
        .all(conn)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// The ids among `ids` of steps with a slug in `slugs`.
pub async fn step_ids_with_slugs<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
    slugs: &[String],
) -> Result<Vec<i64>, DbErr> {
    Ok(step::Entity::find()
        .filter(step::Column::Id.is_in(ids))
        .filter(step::Column::Slug.is_in(slugs.iter().map(String::as_str)))
        .all(conn)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// A step as `workflow load` stores it.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub position: i32,
    pub is_human: bool,
    pub execution_function: Option<Value>,
    pub assignable_hours_function: Option<Value>,
    pub assignment_policy: Value,
    pub review_policy: Value,
    pub creation_policy: Value,
    pub detailed_description_function: Value,
    pub completion_ends_project: bool,
}

fn fill_step(am: &mut step::ActiveModel, row: StepRow) {
    am.slug = Set(row.slug);
    am.name = Set(row.name);
    am.description = Set(row.description);
    am.position = Set(row.position);
    am.is_human = Set(row.is_human);
    am.execution_function = Set(row.execution_function);
    am.assignable_hours_function = Set(row.assignable_hours_function);
    am.assignment_policy = Set(row.assignment_policy);
    am.review_policy = Set(row.review_policy);
    am.creation_policy = Set(row.creation_policy);
    am.detailed_description_function = Set(row.detailed_description_function);
    am.completion_ends_project = Set(row.completion_ends_project);
}

/// Inserts a step of version `version_id`; returns its id.
pub async fn insert_step<C: ConnectionTrait>(
    conn: &C,
    version_id: i64,
    row: StepRow,
) -> Result<i64, DbErr> {
    let mut am = step::ActiveModel {
        workflow_version_id: Set(version_id),
        ..Default::default()
    };
    fill_step(&mut am, row);
    Ok(am.insert(conn).await?.id)
}

/// Writes stored step `old` as `row` (`workflow load --force`).
pub async fn update_step<C: ConnectionTrait>(
    conn: &C,
    old: step::Model,
    row: StepRow,
) -> Result<(), DbErr> {
    let mut am: step::ActiveModel = old.into();
    fill_step(&mut am, row);
    am.update(conn).await?;
    Ok(())
}

/// The dependencies of the steps `step_ids` (both kinds).
pub async fn dependencies_of<C: ConnectionTrait>(
    conn: &C,
    step_ids: Vec<i64>,
) -> Result<Vec<step_dependency::Model>, DbErr> {
    step_dependency::Entity::find()
        .filter(step_dependency::Column::StepId.is_in(step_ids))
        .all(conn)
        .await
}

/// The dependencies of kind `kind` of the steps `step_ids`.
pub async fn dependencies_of_kind<C: ConnectionTrait>(
    conn: &C,
    step_ids: impl IntoIterator<Item = i64>,
    kind: DependencyKind,
) -> Result<Vec<step_dependency::Model>, DbErr> {
    step_dependency::Entity::find()
        .filter(step_dependency::Column::StepId.is_in(step_ids))
        .filter(step_dependency::Column::Kind.eq(kind.as_str()))
        .all(conn)
        .await
}

pub async fn insert_dependency<C: ConnectionTrait>(
    conn: &C,
    step_id: i64,
    depends_on_step_id: i64,
    kind: DependencyKind,
) -> Result<(), DbErr> {
    step_dependency::ActiveModel {
        step_id: Set(step_id),
        depends_on_step_id: Set(depends_on_step_id),
        kind: Set(kind.as_str().to_string()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The required-certification rows of the steps `step_ids`.
pub async fn required_certifications_of<C: ConnectionTrait>(
    conn: &C,
    step_ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<step_certification::Model>, DbErr> {
    step_certification::Entity::find()
        .filter(step_certification::Column::StepId.is_in(step_ids))
        .all(conn)
        .await
}

/// The ids of the certifications step `step_id` requires.
pub async fn required_certification_ids<C: ConnectionTrait>(
    conn: &C,
    step_id: i64,
) -> Result<Vec<i64>, DbErr> {
    Ok(step_certification::Entity::find()
        .filter(step_certification::Column::StepId.eq(step_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| c.certification_id)
        .collect())
}

pub async fn insert_required_certification<C: ConnectionTrait>(
    conn: &C,
    step_id: i64,
    certification_id: i64,
) -> Result<(), DbErr> {
    step_certification::ActiveModel {
        step_id: Set(step_id),
        certification_id: Set(certification_id),
    }
    .insert(conn)
    .await?;
    Ok(())
}
