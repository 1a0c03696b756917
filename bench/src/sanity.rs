//! The SanityBot phase (issue 15): one round of `sanity::run_once` over N projects (10,000 by
//! default) on the rush-desk example workflow, whose check is a script (`checks.rhai`). Every
//! project has its reporting task assigned; one in a hundred is a rush project more than a day
//! old, so the first round fires one check in a hundred projects; the second round, a minute
//! later, finds nothing due (the steady state of a daemon running every five minutes).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use staffbot::workers::{self, Certify, NewWorker};

use crate::phases::{Counted, Phase, Sample};

/// Reporters the assignments are spread over.
const REPORTERS: usize = 20;

fn t0() -> DateTime<Utc> {
    crate::data::t0()
}

/// Builds the projects in one transaction through staffbot's own functions.
async fn build(c: &Counted, workspace: &Path, projects: usize) -> Result<()> {
    let def = staffbot::workflow::definition::read(&workspace.join("examples/rush-desk"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tx = staffbot::db::begin_write(&c.db).await?;
    staffbot::workflow::load::store(&tx, &def, false, t0())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = staffbot::db::workflows::all_versions(&tx)
        .await?
        .pop()
        .context("the rush-desk version")?;
    let mut reporters = Vec::new();
    for i in 0..REPORTERS {
        let w = workers::add(
            &tx,
            NewWorker {
                username: format!("reporter{i}"),
                first_name: format!("R{i}"),
                slack_user_id: Some(format!("U0R{i:04}")),
                ..Default::default()
            },
            t0(),
        )
        .await?;
        let cert = workers::find_certification(&tx, "reporter", None).await?;
        workers::certify(
            &tx,
            &w,
            &cert,
            Certify {
                role: staffbot::db::Role::EntryLevel,
                staffing_priority: 0,
                staffbot_enabled: true,
            },
            t0(),
        )
        .await?;
        reporters.push(w);
    }
    for i in 0..projects {
        let data = json!({"rush": i % 100 == 0, "words": 400 + i % 7 * 100, "sources": ["desk"]});
        let description = format!("Story {i}");
        let project = staffbot::db::projects::NewProject {
            workflow_version_id: version.id,
            short_description: &description,
            priority: 0,
            slack_channel_id: Some(format!("C0S{i:06}")),
            project_data: data,
        };
        let notices = staffbot::config::NoticeSettings::off();
        let id =
            staffbot::lifecycle::create_project_with_data(&tx, project, &notices, t0()).await?;
        let reporting = staffbot::db::tasks::of_project(&tx, id)
            .await?
            .into_iter()
            .min_by_key(|t| t.id)
            .context("a task")?;
        staffbot::lifecycle::assign_task(
            &tx,
            reporting.id,
            &reporters[i % REPORTERS],
            &notices,
            t0(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One measured round at `now`.
async fn round(c: &Counted, name: &'static str, now: DateTime<Utc>) -> Result<Phase> {
    let lease = staffbot::lease::try_lease(&c.db, "sanity", "bench", Duration::from_secs(3600))
        .await?
        .context("the sanity lease")?;
    let (report, sample, before, peak) =
        crate::phases::measure(c, staffbot::sanity::run_once(&c.db, &lease, now)).await;
    let report = report?;
    Ok(Phase {
        name,
        total: sample,
        samples: Vec::<Sample>::new(),
        rss_before_mib: before,
        peak_rss_mib: peak,
        timed_out: false,
        detail: json!({
            "projects": report.projects,
            "checks_fired": report.checks,
            "messages_queued": report.messages,
            "failed_projects": report.failed_projects,
        }),
    })
}

/// Builds the data and runs both rounds.
pub async fn run(c: &Counted, workspace: &Path, projects: usize) -> Result<Vec<Phase>> {
    build(c, workspace, projects).await?;
    let first_at = t0() + chrono::Duration::days(2);
    let first = round(c, "sanity_first", first_at).await?;
    let steady = round(c, "sanity_steady", first_at + chrono::Duration::minutes(1)).await?;
    Ok(vec![first, steady])
}
