//! `staffbot sanity run --project N [--dry-run]`: SanityBot's checks for one project, now,
//! saying which fire and what they post.

use clap::{Args, Subcommand};

use super::App;
use crate::db::ProjectStatus;
use crate::db::sanity::Checked;
use crate::error::UserError;
use crate::lease::try_lease;
use crate::sanity::{Decision, Round, plan, write};
use crate::slack::render::message_parts;

#[derive(Debug, Subcommand)]
pub enum SanityCommand {
    /// Run SanityBot's checks for one project now and print which fire and what they post
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The project
    #[arg(long, value_name = "ID")]
    project: i64,
    /// Print what would happen; post and record nothing
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(app: &App, command: SanityCommand) -> anyhow::Result<()> {
    let SanityCommand::Run(args) = command;
    let now = app.clock.now();
    let round = Round::read(&app.db, Checked::Project(args.project)).await?;
    let Some(p) = round.projects.first() else {
        if crate::db::projects::by_id(&app.db, args.project)
            .await?
            .is_none()
        {
            return Err(UserError::ProjectNotFound(args.project).into());
        }
        anyhow::bail!(
            "project {} has no SanityBot checks (its workflow version has no sanity_checks)",
            args.project
        );
    };
    if !matches!(p.status, ProjectStatus::Active | ProjectStatus::Paused) {
        outln!(
            "note: project {} is {}; SanityBot checks only active and paused projects",
            p.id,
            p.status
        );
    }
    let plan = plan(&round, p, now).map_err(|e| anyhow::anyhow!("project {}: {e}", p.id))?;
    let returned = if plan.returned.is_empty() {
        "nothing".to_string()
    } else {
        plan.returned.join(", ")
    };
    outln!("project {}: the check function returned {returned}", p.id);
    print_decisions(&plan.decisions, p.slack_channel_id.as_deref(), args.dry_run);
    if args.dry_run {
        outln!("dry run: nothing posted or recorded");
        return Ok(());
    }
    let holder = crate::clock::instance_name();
    let Some(lease) = try_lease(&app.db, "sanity", &holder, app.config.loops.lease_ttl).await?
    else {
        anyhow::bail!("another process holds the sanity lease; try again, or use --dry-run");
    };
    let written = write(&app.db, &lease, p, &plan.decisions, now).await;
    crate::lease::release(&app.db, "sanity", &holder).await?;
    let (checks, messages) = written?;
    outln!("sanity: {checks} check(s) fired, {messages} message(s) queued");
    super::tick::deliver(app, &holder).await
}

/// What each check of the project decided, and what it posts (or would, with `--dry-run`).
fn print_decisions(decisions: &[Decision], channel: Option<&str>, dry_run: bool) {
    let verb = if dry_run { "would post" } else { "posts" };
    for d in decisions {
        match d {
            Decision::Fire {
                slug,
                previous,
                posts,
            } => {
                let when = match previous {
                    None => "first time".to_string(),
                    Some(at) => format!("last fired {}", at.to_rfc3339()),
                };
                outln!("{slug}: fires ({when})");
                for post in posts {
                    let text = message_parts(&post.message()).0.into_string();
                    match channel {
                        Some(channel) => outln!("  {verb} to {channel}: {text}"),
                        None => outln!("  no Slack channel: not posted: {text}"),
                    }
                }
            }
            Decision::NotDue {
                slug,
                last,
                repetition_seconds,
            } => {
                let again = match repetition_seconds {
                    Some(s) => format!("fires again {s} s after that"),
                    None => "fires once per project".to_string(),
                };
                outln!(
                    "{slug}: not due (last fired {}; {again})",
                    last.to_rfc3339()
                );
            }
            Decision::Unconfigured { slug } => {
                outln!("{slug}: no check_configurations entry; not posted");
            }
        }
    }
}
