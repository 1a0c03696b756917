//! Storing a validated workflow (`staffbot workflow load`), with Orchestra's `--force` rules.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::json;

use super::definition::{LoadError, StepDef, VersionDef, WorkflowDef};
use crate::db::DependencyKind;
use crate::db::entities::{step, workflow_version};
use crate::db::workflows::{self as store, CertificationText, StepRow, VersionRow, WorkflowText};

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
    let workflow_id = store_workflow(conn, def, now).await?;
    let cert_ids = store_certifications(conn, workflow_id, def).await?;
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

/// Inserts the workflow, or updates its name and description; returns its id.
async fn store_workflow<C: ConnectionTrait>(
    conn: &C,
    def: &WorkflowDef,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let text = WorkflowText {
        slug: &def.slug,
        name: &def.name,
        description: &def.description,
    };
    match store::by_slug(conn, &def.slug).await? {
        Some(w) => {
            let id = w.id;
            store::update_text(conn, w, text).await?;
            Ok(id)
        }
        None => Ok(store::insert(conn, text, now).await?.id),
    }
}

/// Inserts or updates the definition's certifications; returns the id of every certification
/// of the workflow (stored before or now) by slug.
async fn store_certifications<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    def: &WorkflowDef,
) -> Result<HashMap<String, i64>, DbErr> {
    let mut cert_ids: HashMap<String, i64> = HashMap::new();
    let stored_certs = store::certifications_of(conn, workflow_id).await?;
    for c in &def.certifications {
        let text = CertificationText {
            slug: &c.slug,
            name: &c.name,
            description: &c.description,
            required_certifications: json!(c.required_certifications),
        };
        match stored_certs.iter().find(|s| s.slug == c.slug) {
            Some(s) => {
                store::update_certification(conn, s.clone(), text).await?;
                cert_ids.insert(c.slug.clone(), s.id);
            }
            None => {
                let row = store::insert_certification(conn, workflow_id, text).await?;
                cert_ids.insert(c.slug.clone(), row.id);
            }
        }
    }
    for s in stored_certs {
        cert_ids.entry(s.slug).or_insert(s.id);
    }
    Ok(cert_ids)
}

/// A value of the definition as stored JSON. Serialising a definition that was just parsed
/// does not fail; if it ever did, the definition is what cannot be loaded.
fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<serde_json::Value, LoadError> {
    serde_json::to_value(value).map_err(|e| LoadError(format!("cannot store {what}: {e}")))
}

/// The row of `version` (its steps aside).
fn version_row(version: &VersionDef) -> Result<VersionRow<'_>, LoadError> {
    Ok(VersionRow {
        slug: &version.slug,
        name: &version.name,
        description: &version.description,
        sanity_checks: version
            .sanity_checks
            .as_ref()
            .map(|c| to_json("sanity_checks", c))
            .transpose()?,
        definition: version.raw.clone(),
        scripts: scripts_json(version),
    })
}

/// The version's scripts as stored: `{"file.rhai": "source", …}`, or nothing.
fn scripts_json(version: &VersionDef) -> Option<serde_json::Value> {
    (!version.scripts.is_empty()).then(|| json!(version.scripts))
}

async fn store_version<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    version: &VersionDef,
    cert_ids: &HashMap<String, i64>,
    force: bool,
    now: DateTime<Utc>,
) -> Result<VersionOutcome, StoreError> {
    let row = version_row(version)?;
    let Some(existing) = store::version_by_slug(conn, workflow_id, &version.slug).await? else {
        create_version(conn, workflow_id, version, row, cert_ids, now).await?;
        return Ok(VersionOutcome::Created);
    };
    let scripts_changed = existing.scripts != scripts_json(version);
    if existing.definition == version.raw && !scripts_changed {
        return Ok(VersionOutcome::Unchanged);
    }
    if !force {
        let what = if existing.definition == version.raw {
            " and its scripts changed"
        } else {
            ""
        };
        return Err(LoadError(format!(
            "Version {} already exists{what} (use --force to update it)",
            version.slug
        ))
        .into());
    }
    let stored_steps = store::steps_of_version(conn, existing.id).await?;
    check_forced_update(conn, version, &stored_steps).await?;
    update_version(conn, existing, version, row, &stored_steps, cert_ids, now).await?;
    Ok(VersionOutcome::Updated)
}

/// Inserts a new version, its steps, and their relations.
async fn create_version<C: ConnectionTrait>(
    conn: &C,
    workflow_id: i64,
    version: &VersionDef,
    row: VersionRow<'_>,
    cert_ids: &HashMap<String, i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stored = store::insert_version(conn, workflow_id, row, now).await?;
    let mut step_ids = HashMap::new();
    for (position, s) in version.steps.iter().enumerate() {
        let id = insert_step(conn, stored.id, position, s).await?;
        step_ids.insert(s.slug.clone(), id);
    }
    for s in &version.steps {
        insert_relations(conn, s, &step_ids, cert_ids).await?;
    }
    Ok(())
}

/// Orchestra's `--force` rules: no step removed, none turned from human to machine or back, no
/// change of dependencies or required certifications.
async fn check_forced_update<C: ConnectionTrait>(
    conn: &C,
    version: &VersionDef,
    stored_steps: &[step::Model],
) -> Result<(), StoreError> {
    if stored_steps
        .iter()
        .any(|s| !version.steps.iter().any(|n| n.slug == s.slug))
    {
        return Err(LoadError(
            "Even with --force, you cannot remove steps from a workflow.Drop and recreate the database to reset, or create a new version for your workflow.".into(),
        )
        .into());
    }
    let topology = stored_topology(conn, stored_steps).await?;
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
        if let Some(old) = topology.get(&s.slug)
            && *old != step_topology(s)
        {
            return Err(LoadError(
                "Even with --force, you cannot change the topology of a workflow. Drop and recreate the database to reset, or create a new version for your workflow.".into(),
            )
            .into());
        }
    }
    Ok(())
}

/// A step's creation dependencies, submission dependencies and required certifications.
fn step_topology(s: &StepDef) -> Topology {
    (
        s.creation_depends_on.iter().cloned().collect(),
        s.submission_depends_on.iter().cloned().collect(),
        s.required_certifications.iter().cloned().collect(),
    )
}

/// Writes a forced update: the version's row, its steps (updated in place or added), and the
/// relations of the added steps.
async fn update_version<C: ConnectionTrait>(
    conn: &C,
    existing: workflow_version::Model,
    version: &VersionDef,
    row: VersionRow<'_>,
    stored_steps: &[step::Model],
    cert_ids: &HashMap<String, i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let version_id = existing.id;
    store::update_version(conn, existing, row, now).await?;
    let mut step_ids: HashMap<String, i64> = stored_steps
        .iter()
        .map(|s| (s.slug.clone(), s.id))
        .collect();
    let mut added = Vec::new();
    for (position, s) in version.steps.iter().enumerate() {
        match stored_steps.iter().find(|o| o.slug == s.slug) {
            Some(old) => {
                store::update_step(conn, old.clone(), step_row(position, s)?).await?;
            }
            None => {
                let id = insert_step(conn, version_id, position, s).await?;
                step_ids.insert(s.slug.clone(), id);
                added.push(s);
            }
        }
    }
    for s in added {
        insert_relations(conn, s, &step_ids, cert_ids).await?;
    }
    Ok(())
}

type Topology = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);

async fn stored_topology<C: ConnectionTrait>(
    conn: &C,
    steps: &[step::Model],
) -> Result<HashMap<String, Topology>, DbErr> {
    let ids: Vec<i64> = steps.iter().map(|s| s.id).collect();
    let slug_of: HashMap<i64, &str> = steps.iter().map(|s| (s.id, s.slug.as_str())).collect();
    let deps = store::dependencies_of(conn, ids.clone()).await?;
    let certs = store::required_certifications_of(conn, ids).await?;
    let cert_rows =
        store::certifications_by_ids(conn, certs.iter().map(|c| c.certification_id)).await?;
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
            if d.kind == DependencyKind::Creation.as_str() {
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

/// Step `s` at `position` as stored.
fn step_row(position: usize, s: &StepDef) -> Result<StepRow, LoadError> {
    let what = |field: &str| format!("{field} of step {}", s.slug);
    Ok(StepRow {
        slug: s.slug.clone(),
        name: s.name.clone(),
        description: s.description.clone(),
        position: i32::try_from(position).unwrap_or(i32::MAX),
        is_human: s.is_human,
        execution_function: match &s.execution_function {
            Some(f) => Some(to_json(&what("execution_function"), f)?),
            None => None,
        },
        assignable_hours_function: s.assignable_hours_function.clone(),
        assignment_policy: to_json(&what("assignment_policy"), &s.assignment_policy)?,
        review_policy: to_json(&what("review_policy"), &s.review_policy)?,
        creation_policy: json!({"policy": "always_create"}),
        detailed_description_function: match &s.detailed_description {
            Some(f) => to_json(&what("detailed_description"), f)?,
            None => json!({}),
        },
        completion_ends_project: s.completion_ends_project,
    })
}

async fn insert_step<C: ConnectionTrait>(
    conn: &C,
    version_id: i64,
    position: usize,
    s: &StepDef,
) -> Result<i64, StoreError> {
    Ok(store::insert_step(conn, version_id, step_row(position, s)?).await?)
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
        (DependencyKind::Creation, &s.creation_depends_on),
        (DependencyKind::Submission, &s.submission_depends_on),
    ] {
        for on in list {
            if let Some(&on_id) = step_ids.get(on) {
                store::insert_dependency(conn, step_id, on_id, kind).await?;
            }
        }
    }
    for c in &s.required_certifications {
        if let Some(&cert_id) = cert_ids.get(c) {
            store::insert_required_certification(conn, step_id, cert_id).await?;
        }
    }
    Ok(())
}
