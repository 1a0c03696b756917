//! `staffbot project create|list|abort`.

use std::collections::HashMap;

use clap::Subcommand;
use serde::Serialize;

use super::{App, print_json, print_table};
use crate::db::{ProjectStatus, projects, tasks, workflows};
use crate::error::UserError;
use crate::lifecycle;

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and its first tasks; prints the new project id
    Create {
        /// Workflow slug
        #[arg(long, value_name = "SLUG")]
        workflow: String,
        /// Version slug (default: the most recently loaded version)
        #[arg(long, value_name = "SLUG")]
        version: Option<String>,
        /// Short description, shown to workers in offers
        #[arg(long)]
        description: String,
        /// Higher is staffed first
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// The project's private Slack channel id (C… or G…)
        #[arg(long, value_name = "C…")]
        channel: Option<String>,
        /// Project data, a JSON object (or @FILE, @- for stdin) that descriptions and scripts see
        #[arg(long, value_name = "JSON|@FILE")]
        data: Option<String>,
        /// Print {"id": N}
        #[arg(long)]
        json: bool,
    },
    /// List projects
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Abort a project: it and its unfinished tasks end; open staffing requests close
    Abort { id: i64 },
}

#[derive(Debug, Serialize)]
struct ProjectJson {
    id: i64,
    workflow: String,
    version: String,
    description: String,
    priority: i32,
    status: ProjectStatus,
    slack_channel_id: Option<String>,
    tasks: usize,
    created_at: String,
    /// The project's data (`{}` when none was given).
    data: serde_json::Value,
}

/// `--data` as given (`{}` when it is not): a JSON object within
/// `staffbot.max_project_data_bytes`.
fn project_data(app: &App, data: Option<String>) -> anyhow::Result<serde_json::Value> {
    let Some(arg) = data else {
        return Ok(serde_json::json!({}));
    };
    let value = super::read_json_arg(&arg, "--data", "the project data")?;
    if !value.is_object() {
        anyhow::bail!("--data must be a JSON object, such as {{\"rush\": true}}");
    }
    let size = serde_json::to_vec(&value)?.len();
    let max = app.config.staffbot.max_project_data_bytes;
    if size > max {
        anyhow::bail!(
            "--data is {size} bytes as compact JSON, more than the {max} a project may hold (staffbot.max_project_data_bytes); keep large files elsewhere and put their address in the data"
        );
    }
    Ok(value)
}

pub async fn run(app: &App, command: ProjectCommand) -> anyhow::Result<()> {
    let now = app.clock.now();
    let notices = app.config.notices();
    match command {
        ProjectCommand::Create {
            workflow: workflow_slug,
            version,
            description,
            priority,
            channel,
            data,
            json,
        } => {
            let data = project_data(app, data)?;
            let tx = crate::db::begin_write(&app.db).await?;
            let wf = workflows::by_slug(&tx, &workflow_slug)
                .await?
                .ok_or_else(|| UserError::WorkflowNotFound(workflow_slug.clone()))?;
            let v = workflows::newest_version(&tx, wf.id, version.as_deref())
                .await?
                .ok_or_else(|| match &version {
                    Some(v) => UserError::VersionNotFound(v.clone()),
                    None => UserError::NoVersions {
                        workflow: workflow_slug.clone(),
                    },
                })?;
            let project = crate::db::projects::NewProject {
                workflow_version_id: v.id,
                short_description: &description,
                priority,
                slack_channel_id: channel,
                project_data: data,
            };
            let id = lifecycle::create_project_with_data(&tx, project, &notices, now).await?;
            tx.commit().await?;
            if json {
                print_json(&serde_json::json!({ "id": id }))?;
            } else {
                outln!("{id}");
            }
        }
        ProjectCommand::List { json } => print_list(&list(app).await?, json)?,
        ProjectCommand::Abort { id } => {
            let tx = crate::db::begin_write(&app.db).await?;
            lifecycle::abort_project(&tx, id, &notices, now).await?;
            tx.commit().await?;
            outln!("project {id} aborted");
        }
    }
    Ok(())
}

/// `project list`: a table, or the JSON array.
fn print_list(list: &[ProjectJson], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.status.to_string(),
                p.priority.to_string(),
                format!("{}/{}", p.workflow, p.version),
                p.slack_channel_id.clone().unwrap_or_else(|| "-".into()),
                p.tasks.to_string(),
                p.description.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "STATUS",
            "PRIORITY",
            "WORKFLOW",
            "CHANNEL",
            "TASKS",
            "DESCRIPTION",
        ],
        &rows,
    );
    Ok(())
}

async fn list(app: &App) -> anyhow::Result<Vec<ProjectJson>> {
    let workflows: HashMap<i64, String> = workflows::all(&app.db)
        .await?
        .into_iter()
        .map(|w| (w.id, w.slug))
        .collect();
    let versions: HashMap<i64, (String, String)> = workflows::all_versions(&app.db)
        .await?
        .into_iter()
        .map(|v| {
            let wf = workflows.get(&v.workflow_id).cloned().unwrap_or_default();
            (v.id, (wf, v.slug))
        })
        .collect();
    let mut task_counts: HashMap<i64, usize> = HashMap::new();
    for t in tasks::all(&app.db).await? {
        *task_counts.entry(t.project_id).or_default() += 1;
    }
    Ok(projects::all_by_id(&app.db)
        .await?
        .into_iter()
        .map(|p| {
            let (workflow, version) = versions
                .get(&p.workflow_version_id)
                .cloned()
                .unwrap_or_default();
            ProjectJson {
                id: p.id,
                workflow,
                version,
                description: p.short_description,
                priority: p.priority,
                status: p.status,
                slack_channel_id: p.slack_channel_id,
                tasks: task_counts.get(&p.id).copied().unwrap_or(0),
                created_at: p.created_at.to_rfc3339(),
                data: p.project_data,
            }
        })
        .collect())
}
