//! Storing a validated workflow (`staffbot workflow load`), with Orchestra's `--force` rules.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use serde_json::json;

use super::definition::{LoadError, StepDef, VersionDef, WorkflowDef};
use crate::db::entities::{
    certification, step, step_certification, step_dependency, workflow, workflow_version,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionOutcome {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadSummary {
    pub workflow: String,
    pub versions: Vec<(String, VersionOutcome)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Invalid(#[from] LoadError),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Stores `def` (inside the caller's transaction).
pub async fn store<C: ConnectionTrait>(
    conn: &C,
    def: &WorkflowDef,
    force: bool,
    now: DateTime<Utc>,
) -> Result<LoadSummary, StoreError> {
    let existing = workflow::Entity::find()
        .filter(workflow::Column::Slug.eq(&def.slug))
        .one(conn)
        .await?;
    let workflow_id = match existing {
        Some(w) => {
            let mut am: workflow::ActiveModel = w.clone().into();
            am.name = Set(def.name.clone());
            am.description = Set(def.description.clone());
            am.update(conn).await?;
            w.id
        }
        None => {
            workflow::ActiveModel {
                slug: Set(def.slug.clone()),
                name: Set(def.name.clone()),
                description: Set(def.description.clone()),
                created_at: Set(now),
                ..Default::default()
            }
            .insert(conn)
            .await?
            .id
        }
    };

    let mut cert_ids: HashMap<String, i64> = HashMap::new();
    let stored_certs = certification::Entity::find()
        .filter(certification::Column::WorkflowId.eq(workflow_id))
        .all(conn)
        .await?;
    for c in &def.certifications {
        let required = json!(c.required_certifications);
        match stored_certs.iter().find(|s| s.slug == c.slug) {
            Some(s) => {
                let mut am: certification::ActiveModel = s.clone().into();
                am.name = Set(c.name.clone());
                am.description = Set(c.description.clone());
                am.required_certifications = Set(required);
                am.update(conn).await?;
                cert_ids.insert(c.slug.clone(), s.id);
            }
            None => {
                let row = certification::ActiveModel {
                    workflow_id: Set(workflow_id),
                    slug: Set(c.slug.clone()),
                    name: Set(c.name.clone()),
                    description: Set(c.description.clone()),
                    required_certifications: Set(required),
                    ..Default::default()
                }
                .insert(conn)
                .await?;
                cert_ids.insert(c.slug.clone(), row.id);
            }
        }
    }
    for s in stored_certs {
        cert_ids.entry(s.slug).or_insert(s.id);
    }

    let mut outcomes = Vec::new();
    for version in &def.versions {
        let outcome = store_version(conn, workflow_id, version, &cert_ids, force, now).await?;
        outcomes.push((version.slug.clone(), outcome));
    }
    Ok(LoadSummary {
        workflow: def.slug.clone(),
        versions: outcomes,
    })
}

async fn store_version<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    version: &VersionDef,
    cert_ids: &HashMap<String, i64>,
    force: bool,
    now: DateTime<Utc>,
) -> Result<VersionOutcome, StoreError> {
    let sanity = version
        .sanity_checks
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let existing = workflow_version::Entity::find()
        .filter(workflow_version::Column::WorkflowId.eq(workflow_id))
        .filter(workflow_version::Column::Slug.eq(&version.slug))
        .one(conn)
        .await?;
    let Some(existing) = existing else {
        let row = workflow_version::ActiveModel {
            workflow_id: Set(workflow_id),
            slug: Set(version.slug.clone()),
            name: Set(version.name.clone()),
            description: Set(version.description.clone()),
            sanity_checks: Set(sanity),
            definition: Set(version.raw.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        let mut step_ids = HashMap::new();
        for (position, s) in version.steps.iter().enumerate() {
            let id = insert_step(conn, row.id, position, s).await?;
            step_ids.insert(s.slug.clone(), id);
        }
        for s in &version.steps {
            insert_relations(conn, s, &step_ids, cert_ids).await?;
        }
        return Ok(VersionOutcome::Created);
    };

    if existing.definition == version.raw {
        return Ok(VersionOutcome::Unchanged);
    }
    if !force {
        return Err(LoadError(format!(
            "Version {} already exists (use --force to update it)",
            version.slug
        ))
        .into());
    }
    let stored_steps = step::Entity::find()
        .filter(step::Column::WorkflowVersionId.eq(existing.id))
        .order_by_asc(step::Column::Position)
        .all(conn)
        .await?;
    if stored_steps
        .iter()
        .any(|s| !version.steps.iter().any(|n| n.slug == s.slug))
    {
        return Err(LoadError(
            "Even with --force, you cannot remove steps from a workflow.Drop and recreate the database to reset, or create a new version for your workflow.".into(),
        )
        .into());
    }
    let topology = stored_topology(conn, &stored_steps).await?;
    for s in &version.steps {
        if stored_steps
            .iter()
            .any(|o| o.slug == s.slug && o.is_human != s.is_human)
        {
            return Err(LoadError(format!(
                "Even with --force, you cannot turn step {} from a human step into a machine step or back. Create a new version for your workflow.",
                s.slug
            ))
            .into());
        }
        if let Some(old) = topology.get(&s.slug) {
            let new = (
                s.creation_depends_on
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>(),
                s.submission_depends_on
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>(),
                s.required_certifications
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>(),
            );
            if *old != new {
                return Err(LoadError(
                    "Even with --force, you cannot change the topology of a workflow. Drop and recreate the database to reset, or create a new version for your workflow.".into(),
                )
                .into());
            }
        }
    }

    let mut am: workflow_version::ActiveModel = existing.clone().into();
    am.name = Set(version.name.clone());
    am.description = Set(version.description.clone());
    am.sanity_checks = Set(sanity);
    am.definition = Set(version.raw.clone());
    am.updated_at = Set(now);
    am.update(conn).await?;

    let mut step_ids: HashMap<String, i64> = stored_steps
        .iter()
        .map(|s| (s.slug.clone(), s.id))
        .collect();
    let mut added = Vec::new();
    for (position, s) in version.steps.iter().enumerate() {
        match stored_steps.iter().find(|o| o.slug == s.slug) {
            Some(old) => {
                let mut am: step::ActiveModel = old.clone().into();
                fill_step(&mut am, position, s)?;
                am.update(conn).await?;
            }
            None => {
                let id = insert_step(conn, existing.id, position, s).await?;
                step_ids.insert(s.slug.clone(), id);
                added.push(s);
            }
        }
    }
    for s in added {
        insert_relations(conn, s, &step_ids, cert_ids).await?;
    }
    Ok(VersionOutcome::Updated)
}

type Topology = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);

async fn stored_topology<C: ConnectionTrait>(
    conn: &C,
    steps: &[step::Model],
) -> Result<HashMap<String, Topology>, DbErr> {
    let ids: Vec<i64> = steps.iter().map(|s| s.id).collect();
    let slug_of: HashMap<i64, &str> = steps.iter().map(|s| (s.id, s.slug.as_str())).collect();
    let deps = step_dependency::Entity::find()
        .filter(step_dependency::Column::StepId.is_in(ids.clone()))
        .all(conn)
        .await?;
    let certs = step_certification::Entity::find()
        .filter(step_certification::Column::StepId.is_in(ids))
        .all(conn)
        .await?;
    let cert_rows = certification::Entity::find()
        .filter(certification::Column::Id.is_in(certs.iter().map(|c| c.certification_id)))
        .all(conn)
        .await?;
    let cert_slug: HashMap<i64, &str> = cert_rows.iter().map(|c| (c.id, c.slug.as_str())).collect();
    let mut out: HashMap<String, Topology> = steps
        .iter()
        .map(|s| (s.slug.clone(), Default::default()))
        .collect();
    for d in deps {
        let (Some(step), Some(on)) = (slug_of.get(&d.step_id), slug_of.get(&d.depends_on_step_id))
        else {
            continue;
        };
        if let Some(entry) = out.get_mut(*step) {
            if d.kind == "creation" {
                entry.0.insert(on.to_string());
            } else {
                entry.1.insert(on.to_string());
            }
        }
    }
    for c in certs {
        if let (Some(step), Some(slug)) =
            (slug_of.get(&c.step_id), cert_slug.get(&c.certification_id))
            && let Some(entry) = out.get_mut(*step)
        {
            entry.2.insert(slug.to_string());
        }
    }
    Ok(out)
}

fn fill_step(am: &mut step::ActiveModel, position: usize, s: &StepDef) -> Result<(), DbErr> {
    let to_json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| DbErr::Custom(e.to_string()))
    };
    am.slug = Set(s.slug.clone());
    am.name = Set(s.name.clone());
    am.description = Set(s.description.clone());
    am.position = Set(i32::try_from(position).unwrap_or(i32::MAX));
    am.is_human = Set(s.is_human);
    am.execution_function = Set(match &s.execution_function {
        Some(f) => Some(to_json(serde_json::to_value(f))?),
        None => None,
    });
    am.assignable_hours_function = Set(s.assignable_hours_function.clone());
    am.assignment_policy = Set(to_json(serde_json::to_value(&s.assignment_policy))?);
    am.review_policy = Set(to_json(serde_json::to_value(&s.review_policy))?);
    am.creation_policy = Set(json!({"policy": "always_create"}));
    am.detailed_description_function = Set(match &s.detailed_description {
        Some(f) => to_json(serde_json::to_value(f))?,
        None => json!({}),
    });
    am.completion_ends_project = Set(s.completion_ends_project);
    Ok(())
}

async fn insert_step<C: ConnectionTrait>(
    conn: &C,
    version_id: i64,
    position: usize,
    s: &StepDef,
) -> Result<i64, DbErr> {
    let mut am = step::ActiveModel {
        workflow_version_id: Set(version_id),
        ..Default::default()
    };
    fill_step(&mut am, position, s)?;
    Ok(am.insert(conn).await?.id)
}

async fn insert_relations<C: ConnectionTrait>(
    conn: &C,
    s: &StepDef,
    step_ids: &HashMap<String, i64>,
    cert_ids: &HashMap<String, i64>,
) -> Result<(), DbErr> {
    let Some(&step_id) = step_ids.get(&s.slug) else {
        return Ok(());
    };
    for (kind, list) in [
        ("creation", &s.creation_depends_on),
        ("submission", &s.submission_depends_on),
    ] {
        for on in list {
            if let Some(&on_id) = step_ids.get(on) {
                step_dependency::ActiveModel {
                    step_id: Set(step_id),
                    depends_on_step_id: Set(on_id),
                    kind: Set(kind.to_string()),
                }
                .insert(conn)
                .await?;
            }
        }
    }
    for c in &s.required_certifications {
        if let Some(&cert_id) = cert_ids.get(c) {
            step_certification::ActiveModel {
                step_id: Set(step_id),
                certification_id: Set(cert_id),
            }
            .insert(conn)
            .await?;
        }
    }
    Ok(())
}
