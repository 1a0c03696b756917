//! `staffbot workflow load|list`.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;

use super::{App, print_json, print_table};
use crate::db::workflows;
use crate::error::UserError;
use crate::workflow::definition;
use crate::workflow::functions::describe;
use crate::workflow::load::{self, StoreError, VersionOutcome};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Load a workflow: a directory (workflow.json + vN/version.json), a workflow.json, or one version.json
    Load {
        path: PathBuf,
        /// Update versions that already exist (steps may be added, not removed or rewired)
        #[arg(long)]
        force: bool,
    },
    /// List loaded workflows and their versions
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print a task's detailed description as its offers show it
    RenderDescription {
        /// The task id
        task: i64,
    },
}

#[derive(Debug, Serialize)]
struct WorkflowJson {
    slug: String,
    name: String,
    description: String,
    certifications: Vec<String>,
    versions: Vec<VersionJson>,
}

#[derive(Debug, Serialize)]
struct VersionJson {
    slug: String,
    name: String,
    steps: Vec<String>,
    sanity_checks: bool,
    /// The `script:` files loaded with the version.
    scripts: Vec<String>,
}

pub async fn run(app: &App, command: WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::Load { path, force } => {
            // Name the path the error is about, unless the error names it already.
            let def = definition::read(&path).map_err(|e| {
                let shown = path.display().to_string();
                let text = e.to_string();
                if text.contains(&shown) {
                    anyhow::anyhow!(text)
                } else {
                    anyhow::anyhow!("{shown}: {text}")
                }
            })?;
            for note in &def.notes {
                eprintln!("note: {note}");
            }
            let tx = crate::db::begin_write(&app.db).await?;
            let summary = match load::store(&tx, &def, force, app.clock.now()).await {
                Ok(s) => s,
                Err(StoreError::Invalid(e)) => return Err(e.into()),
                Err(StoreError::Db(e)) => return Err(e.into()),
            };
            tx.commit().await?;
            for (version, outcome) in &summary.versions {
                let what = match outcome {
                    VersionOutcome::Created => "created",
                    VersionOutcome::Updated => "updated",
                    VersionOutcome::Unchanged => "unchanged",
                };
                outln!("workflow {} version {version}: {what}", summary.workflow);
            }
            Ok(())
        }
        WorkflowCommand::RenderDescription { task } => {
            let source = crate::db::tasks::description_source(&app.db, task)
                .await?
                .ok_or(UserError::TaskNotFound(task))?;
            let details = describe(&source.detailed_description_function, &source.input())
                .map_err(|e| anyhow::anyhow!("task {task}: {e}"))?;
            if details.is_empty() {
                eprintln!(
                    "task {task}: step {} has no detailed description",
                    source.step_slug
                );
            } else {
                outln!("{}", details.as_written());
            }
            Ok(())
        }
        WorkflowCommand::List { json } => {
            let list = list(app).await?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .flat_map(|w| {
                    w.versions.iter().map(move |v| {
                        vec![
                            w.slug.clone(),
                            v.slug.clone(),
                            w.name.clone(),
                            v.steps.join(", "),
                            w.certifications.join(", "),
                        ]
                    })
                })
                .collect();
            print_table(
                &["WORKFLOW", "VERSION", "NAME", "STEPS", "CERTIFICATIONS"],
                &rows,
            );
            Ok(())
        }
    }
}

async fn list(app: &App) -> anyhow::Result<Vec<WorkflowJson>> {
    let mut out = Vec::new();
    for w in workflows::all_by_slug(&app.db).await? {
        let certifications = workflows::certifications_of_by_slug(&app.db, w.id)
            .await?
            .into_iter()
            .map(|c| c.slug)
            .collect();
        let mut versions = Vec::new();
        for v in workflows::versions_of(&app.db, w.id).await? {
            let steps = workflows::steps_of_version(&app.db, v.id)
                .await?
                .into_iter()
                .map(|s| s.slug)
                .collect();
            versions.push(VersionJson {
                slug: v.slug,
                name: v.name,
                steps,
                sanity_checks: v.sanity_checks.is_some(),
                scripts: v
                    .scripts
                    .as_ref()
                    .and_then(|s| s.as_object())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
            });
        }
        out.push(WorkflowJson {
            slug: w.slug,
            name: w.name,
            description: w.description,
            certifications,
            versions,
        });
    }
    Ok(out)
}
