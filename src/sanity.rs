//! Running SanityBot (behaviour §9.2, with W-22 fixed): for active and paused projects whose
//! workflow version has checks, evaluate the check function (a built-in or the team's script),
//! keep the checks due under the repetition rule, post each handler's message, and store the
//! check. One project's failure (a script error, a limit hit) is logged and never stops the
//! others.
//!
//! A round reads what it needs in a handful of statements for every project at once (projects,
//! versions, tasks, assignments, latest firings), parses each version's configuration and
//! compiles its script once, evaluates every project in memory, and opens a write transaction
//! only for a project with a check to fire.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::db::TaskStatus;
use crate::db::sanity::{
    self as store, Checked, CheckedAssignment, CheckedProject, CheckedTask, CheckedVersion,
};
use crate::error::Error;
use crate::lease::LeaseProof;
use crate::messages::{Message, Outgoing};
use crate::outbox;
use crate::workflow::sanity::{SanityConfig, SanityFunction};
use crate::workflow::script::{
    self, AssignmentView, ProjectView, Purpose, Script, ScriptError, TaskView, unix,
};

impl SanityFunction {
    /// The slugs a built-in function emits for a project whose human tasks are
    /// `(status, since)`; nothing for a script (see [`evaluate`]).
    pub fn evaluate(
        &self,
        tasks: &[(TaskStatus, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let older = |after: u64, statuses: &[TaskStatus]| {
            let cutoff = now - chrono::Duration::seconds(i64::try_from(after).unwrap_or(i64::MAX));
            tasks
                .iter()
                .any(|(status, since)| statuses.contains(status) && *since < cutoff)
        };
        match self {
            SanityFunction::Always { checks } => checks.clone(),
            SanityFunction::TaskUnstaffed { after_secs } => {
                if older(
                    *after_secs,
                    &[TaskStatus::AwaitingProcessing, TaskStatus::PendingReview],
                ) {
                    vec!["task_unstaffed".into()]
                } else {
                    vec![]
                }
            }
            SanityFunction::TaskInProgressTooLong { after_secs } => {
                if older(*after_secs, &[TaskStatus::Processing]) {
                    vec!["task_in_progress_too_long".into()]
                } else {
                    vec![]
                }
            }
            SanityFunction::ReviewWaiting { after_secs } => {
                if older(*after_secs, &[TaskStatus::Reviewing]) {
                    vec!["review_waiting".into()]
                } else {
                    vec![]
                }
            }
            SanityFunction::Script { .. } => vec![],
        }
    }
}

/// Orchestra's repetition rule: a check is due when its slug never fired for the project, or it
/// has `repetition_seconds` and the last one is strictly older than that.
pub fn is_due(
    latest: Option<DateTime<Utc>>,
    repetition_seconds: Option<u64>,
    now: DateTime<Utc>,
) -> bool {
    match (latest, repetition_seconds) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(at), Some(secs)) => {
            (now - at).num_milliseconds() > i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SanityReport {
    pub projects: usize,
    pub checks: usize,
    pub messages: usize,
    pub failed_projects: usize,
}

/// A version's checks, parsed and (for a script) compiled once per round.
pub struct VersionChecks {
    pub workflow: String,
    pub version: String,
    pub config: SanityConfig,
    script: Option<Script>,
    /// The check reads the project's data (a script that names `data`): only then is it loaded.
    pub reads_data: bool,
}

/// Whether a script's source names `data` (as a word): the projects of a script that does not
/// are read without their data.
fn names_data(source: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    source.match_indices("data").any(|(i, _)| {
        !source[..i].chars().next_back().is_some_and(word)
            && !source[i + 4..].chars().next().is_some_and(word)
    })
}

impl VersionChecks {
    fn load(v: &CheckedVersion) -> Result<VersionChecks, String> {
        let config: SanityConfig = serde_json::from_value(v.sanity_checks.clone())
            .map_err(|e| format!("stored sanity_checks cannot be read: {e}"))?;
        let (script, reads_data) = match &config.function {
            SanityFunction::Script { script, .. } => (
                Some(script::compile(Purpose::SanityCheck, script).map_err(|e| e.to_string())?),
                names_data(&script.source),
            ),
            _ => (None, false),
        };
        Ok(VersionChecks {
            workflow: v.workflow_slug.clone(),
            version: v.slug.clone(),
            config,
            script,
            reads_data,
        })
    }
}

/// Everything a round knows about one project.
pub struct ProjectFacts<'a> {
    pub project: &'a CheckedProject,
    pub version: &'a VersionChecks,
    pub tasks: &'a [CheckedTask],
    /// Assignments by task id.
    pub assignments: &'a HashMap<i64, Vec<CheckedAssignment>>,
    /// The latest firing of each slug.
    pub latest: HashMap<&'a str, DateTime<Utc>>,
}

/// Why a project's checks could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluateError {
    #[error("script {0}")]
    Script(#[from] ScriptError),
    #[error("{0}")]
    Config(String),
}

impl ProjectFacts<'_> {
    /// The project as a script sees it.
    pub fn view(&self) -> ProjectView {
        let p = self.project;
        ProjectView {
            id: p.id,
            description: p.short_description.clone(),
            priority: p.priority,
            status: p.status.to_string(),
            created_at: unix(p.created_at),
            data: p
                .project_data
                .clone()
                .unwrap_or_else(|| serde_json::json!({})),
            workflow: self.version.workflow.clone(),
            version: self.version.version.clone(),
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskView {
                    id: t.id,
                    step: t.step_slug.clone(),
                    is_human: t.is_human,
                    status: t.status.to_string(),
                    created_at: unix(t.created_at),
                    status_changed_at: unix(t.status_changed_at),
                    assignments: self
                        .assignments
                        .get(&t.id)
                        .into_iter()
                        .flatten()
                        .map(|a| AssignmentView {
                            worker: a.username.clone(),
                            counter: a.assignment_counter,
                            status: a.status.to_string(),
                            assigned_at: unix(a.created_at),
                            updated_at: unix(a.updated_at),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The slugs the check function returns for this project now.
    pub fn evaluate(&self, now: DateTime<Utc>) -> Result<Vec<String>, EvaluateError> {
        match (&self.version.config.function, &self.version.script) {
            (SanityFunction::Script { kwargs, .. }, Some(compiled)) => {
                let value = compiled.call(vec![
                    ("project", script::to_dynamic(&self.view())),
                    ("now", rhai::Dynamic::from(unix(now))),
                    ("kwargs", script::to_dynamic(kwargs)),
                ])?;
                Ok(script::slugs_of(compiled.file(), value)?)
            }
            (SanityFunction::Script { .. }, None) => {
                Err(EvaluateError::Config("the script is not compiled".into()))
            }
            (function, _) => {
                // Machine tasks wait for automation, not for a worker: the built-in checks are
                // about people's work.
                let states: Vec<(TaskStatus, DateTime<Utc>)> = self
                    .tasks
                    .iter()
                    .filter(|t| t.is_human)
                    .map(|t| (t.status, t.status_changed_at))
                    .collect();
                Ok(function.evaluate(&states, now))
            }
        }
    }

    /// What to do with each slug returned, in order.
    pub fn decide(&self, slugs: &[String], now: DateTime<Utc>) -> Vec<Decision> {
        let mut seen = BTreeSet::new();
        let mut decisions = Vec::new();
        for slug in slugs {
            // The same slug twice in one run is handled once.
            if !seen.insert(slug.as_str()) {
                continue;
            }
            let Some(conf) = self.version.config.checks.iter().find(|c| c.slug == *slug) else {
                decisions.push(Decision::Unconfigured { slug: slug.clone() });
                continue;
            };
            let latest = self.latest.get(slug.as_str()).copied();
            if !is_due(latest, conf.repetition_seconds, now) {
                decisions.push(Decision::NotDue {
                    slug: slug.clone(),
                    last: latest.unwrap_or(now),
                    repetition_seconds: conf.repetition_seconds,
                });
                continue;
            }
            let posts = conf
                .handlers
                .iter()
                .map(|h| Post {
                    mentions: self.mentions(&h.steps).into_iter().collect(),
                    message: h.message.clone(),
                })
                .collect();
            decisions.push(Decision::Fire {
                slug: slug.clone(),
                previous: latest,
                posts,
            });
        }
        decisions
    }

    /// Slack ids of every worker assigned (any level, any status) to the project's tasks of
    /// `steps`.
    fn mentions(&self, steps: &[String]) -> BTreeSet<String> {
        self.tasks
            .iter()
            .filter(|t| steps.contains(&t.step_slug))
            .flat_map(|t| self.assignments.get(&t.id).into_iter().flatten())
            .filter_map(|a| a.slack_user_id.clone())
            .collect()
    }
}

/// What SanityBot does with one slug a check function returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The check fires: its posts go to the project channel and it is stored.
    Fire {
        slug: String,
        previous: Option<DateTime<Utc>>,
        posts: Vec<Post>,
    },
    /// It fired before and is not due again yet.
    NotDue {
        slug: String,
        last: DateTime<Utc>,
        repetition_seconds: Option<u64>,
    },
    /// No `check_configurations` entry: logged, not posted.
    Unconfigured { slug: String },
}

/// One handler's post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Slack ids, sorted.
    pub mentions: Vec<String>,
    pub message: String,
}

impl Post {
    pub fn message(&self) -> Message {
        Message::SanityAlert {
            mentions: self.mentions.clone(),
            message: self.message.clone(),
        }
    }
}

/// A round's data, read at once.
pub struct Round {
    pub projects: Vec<CheckedProject>,
    versions: HashMap<i64, Result<VersionChecks, String>>,
    tasks: HashMap<i64, Vec<CheckedTask>>,
    assignments: HashMap<i64, Vec<CheckedAssignment>>,
    latest: HashMap<i64, Vec<(String, DateTime<Utc>)>>,
}

impl Round {
    /// Reads the projects of `checked` and what their checks need.
    pub async fn read<C: ConnectionTrait>(conn: &C, checked: Checked) -> Result<Round, Error> {
        let versions: HashMap<i64, Result<VersionChecks, String>> = store::versions(conn, checked)
            .await?
            .iter()
            .map(|v| (v.id, VersionChecks::load(v)))
            .collect();
        let data_versions: Vec<i64> = versions
            .iter()
            .filter(|(_, v)| v.as_ref().is_ok_and(|v| v.reads_data))
            .map(|(id, _)| *id)
            .collect();
        let projects = store::projects(conn, checked, &data_versions).await?;
        let mut tasks: HashMap<i64, Vec<CheckedTask>> = HashMap::new();
        for t in store::tasks(conn, checked).await? {
            tasks.entry(t.project_id).or_default().push(t);
        }
        let mut assignments: HashMap<i64, Vec<CheckedAssignment>> = HashMap::new();
        for a in store::assignments(conn, checked).await? {
            assignments.entry(a.task_id).or_default().push(a);
        }
        let mut latest: HashMap<i64, Vec<(String, DateTime<Utc>)>> = HashMap::new();
        for c in store::latest_checks(conn, checked).await? {
            latest
                .entry(c.project_id)
                .or_default()
                .push((c.check_slug, c.latest));
        }
        Ok(Round {
            projects,
            versions,
            tasks,
            assignments,
            latest,
        })
    }

    /// The facts of one of the round's projects; an error when its version's checks cannot be
    /// used.
    pub fn facts<'a>(&'a self, p: &'a CheckedProject) -> Result<ProjectFacts<'a>, String> {
        let version = match self.versions.get(&p.workflow_version_id) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err("its workflow version has no checks".into()),
        };
        Ok(ProjectFacts {
            project: p,
            version,
            tasks: self.tasks.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
            assignments: &self.assignments,
            latest: self
                .latest
                .get(&p.id)
                .into_iter()
                .flatten()
                .map(|(slug, at)| (slug.as_str(), *at))
                .collect(),
        })
    }
}

/// One SanityBot round over every active or paused project with checks.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    now: DateTime<Utc>,
) -> Result<SanityReport, Error> {
    let round = Round::read(db, Checked::Running).await?;
    // Scripts run on a blocking thread: a slow one never holds up envelopes.
    let (round, plans) = tokio::task::spawn_blocking(move || {
        let plans = plan_all(&round, now);
        (round, plans)
    })
    .await
    .map_err(|e| crate::error::StoredDataInvalid {
        what: "SanityBot's round".into(),
        detail: format!("its evaluation thread failed: {e}"),
    })?;
    let mut report = SanityReport::default();
    let mut recovered = Vec::new();
    for (p, outcome) in round.projects.iter().zip(plans) {
        let plan = match outcome {
            Outcome::Waiting => continue,
            Outcome::Planned(plan) => plan,
            // A script error skips this project only (`plan` logged it); a limit hit also
            // makes it wait longer each time before it is evaluated again.
            Outcome::Failed { limit } => {
                report.projects += 1;
                report.failed_projects += 1;
                if limit {
                    back_off(db, lease, p, now).await?;
                }
                continue;
            }
        };
        report.projects += 1;
        if p.sanity_failures > 0 {
            recovered.push(p.id);
        }
        match write(db, lease, p, &plan.decisions, now).await {
            Ok((checks, messages)) => {
                report.checks += checks;
                report.messages += messages;
            }
            // The lease passed to another process: stop here, write nothing more.
            Err(e @ Error::LeaseLost(_)) => return Err(e),
            Err(e) => {
                report.failed_projects += 1;
                tracing::error!(project_id = p.id, "SanityBot failed for this project: {e}");
            }
        }
    }
    if !recovered.is_empty() {
        let tx = crate::db::begin_write(db).await?;
        let written = async {
            lease.fence(&tx).await?;
            Ok::<_, Error>(store::clear_limit_hits(&tx, &recovered).await?)
        }
        .await;
        crate::db::settle(tx, written).await?;
    }
    Ok(report)
}

/// How long a project whose check script hit a limit `failures` rounds in a row waits before
/// it is evaluated again: 10 minutes, doubling, at most a day.
pub fn limit_backoff(failures: i32) -> chrono::Duration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    let minutes = 10i64.saturating_mul(1i64 << doublings).min(24 * 60);
    chrono::Duration::minutes(minutes)
}

/// Records one more limit hit for `p`, and when it is evaluated again.
async fn back_off<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    p: &CheckedProject,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let failures = p.sanity_failures.saturating_add(1);
    let retry_at = now + limit_backoff(failures);
    tracing::warn!(
        project_id = p.id,
        failures,
        retry_at = %retry_at.to_rfc3339(),
        "the check script hit a limit; this project waits before its next check"
    );
    let tx = crate::db::begin_write(db).await?;
    let written = async {
        lease.fence(&tx).await?;
        Ok::<_, Error>(store::record_limit_hit(&tx, p.id, failures, retry_at).await?)
    }
    .await;
    crate::db::settle(tx, written).await
}

/// What a round does with one project.
enum Outcome {
    /// It hit a limit in an earlier round and waits (`sanity_retry_at`).
    Waiting,
    /// Its check failed (logged); `limit`: a limit stopped the script.
    Failed {
        limit: bool,
    },
    Planned(ProjectPlan),
}

/// Every project's outcome. A project whose script hit a limit waits out its backoff; the
/// others are evaluated whatever their neighbours did.
fn plan_all(round: &Round, now: DateTime<Utc>) -> Vec<Outcome> {
    round
        .projects
        .iter()
        .map(|p| {
            if p.sanity_retry_at.is_some_and(|at| at > now) {
                return Outcome::Waiting;
            }
            match plan(round, p, now) {
                Ok(plan) => Outcome::Planned(plan),
                Err(EvaluateError::Script(e)) => Outcome::Failed { limit: e.limit },
                Err(_) => Outcome::Failed { limit: false },
            }
        })
        .collect()
}

/// A project's evaluation and decisions (what `sanity run --dry-run` prints).
pub struct ProjectPlan {
    pub returned: Vec<String>,
    pub decisions: Vec<Decision>,
}

/// Evaluates one project of `round` and decides; a script error or a limit hit is logged with
/// the project id and returned.
pub fn plan(
    round: &Round,
    p: &CheckedProject,
    now: DateTime<Utc>,
) -> Result<ProjectPlan, EvaluateError> {
    let facts = round.facts(p).map_err(EvaluateError::Config)?;
    let returned = facts.evaluate(now).inspect_err(|e| {
        tracing::error!(project_id = p.id, "SanityBot check function failed: {e}")
    })?;
    let decisions = facts.decide(&returned, now);
    // One line per project and round, however many: the first few slugs, and how many.
    let unconfigured: Vec<String> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Unconfigured { slug } => Some(script::printable(slug, 60)),
            _ => None,
        })
        .collect();
    if !unconfigured.is_empty() {
        let shown = unconfigured.iter().take(5).cloned().collect::<Vec<_>>();
        let more = unconfigured.len().saturating_sub(shown.len());
        tracing::warn!(
            project_id = p.id,
            "the check function returned {} slug(s) with no check_configurations entry, not posted: {}{}",
            unconfigured.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    Ok(ProjectPlan {
        returned,
        decisions,
    })
}

/// Writes the checks that fire for `p`: their posts and the checks, fenced by the lease.
/// Nothing to fire, nothing written.
pub async fn write<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    p: &CheckedProject,
    decisions: &[Decision],
    now: DateTime<Utc>,
) -> Result<(usize, usize), Error> {
    if !decisions.iter().any(|d| matches!(d, Decision::Fire { .. })) {
        return Ok((0, 0));
    }
    let tx = crate::db::begin_write(db).await?;
    let written = async {
        lease.fence(&tx).await?;
        let mut checks = 0;
        let mut messages = 0;
        for d in decisions {
            let Decision::Fire {
                slug,
                previous,
                posts,
            } = d
            else {
                continue;
            };
            let previous = previous.map_or_else(
                || "first".to_string(),
                |at| at.timestamp_micros().to_string(),
            );
            for (n, post) in posts.iter().enumerate() {
                match &p.slack_channel_id {
                    Some(channel) => {
                        outbox::enqueue(
                            &tx,
                            // One post per handler per firing: the firing is named by the
                            // check's previous firing, so two runs over the same state queue it
                            // once.
                            &format!("sanity:{}:{slug}:{previous}:{n}", p.id),
                            Outgoing::post(channel, post.message()),
                            now,
                        )
                        .await?;
                        messages += 1;
                    }
                    None => tracing::warn!(
                        project_id = p.id,
                        "project has no Slack channel; SanityBot check {slug} not posted"
                    ),
                }
            }
            store::record_fired(&tx, p.id, slug, now).await?;
            checks += 1;
        }
        Ok::<_, Error>((checks, messages))
    }
    .await;
    crate::db::settle(tx, written).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn repetition_rule() {
        assert!(is_due(None, None, at(0)));
        assert!(
            !is_due(Some(at(0)), None, at(1_000_000)),
            "no repetition: once ever"
        );
        assert!(
            !is_due(Some(at(0)), Some(3600), at(3600)),
            "strictly greater"
        );
        assert!(is_due(Some(at(0)), Some(3600), at(3601)));
    }

    #[test]
    fn check_functions() {
        let tasks = vec![
            (TaskStatus::Processing, at(0)),
            (TaskStatus::PendingReview, at(500)),
        ];
        let f = SanityFunction::TaskInProgressTooLong { after_secs: 100 };
        assert_eq!(f.evaluate(&tasks, at(50)), Vec::<String>::new());
        assert_eq!(
            f.evaluate(&tasks, at(101)),
            vec!["task_in_progress_too_long"]
        );
        let f = SanityFunction::TaskUnstaffed { after_secs: 100 };
        assert!(f.evaluate(&tasks, at(550)).is_empty());
        assert_eq!(f.evaluate(&tasks, at(601)), vec!["task_unstaffed"]);
        assert!(
            SanityFunction::ReviewWaiting { after_secs: 1 }
                .evaluate(&tasks, at(9999))
                .is_empty()
        );
        let always = SanityFunction::Always {
            checks: vec!["a".into(), "b".into()],
        };
        assert_eq!(always.evaluate(&[], at(0)), vec!["a", "b"]);
    }
}
