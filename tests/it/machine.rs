//! Machine steps (issue 10): tasks completed by a command, by `complete = true`, or by
//! `task complete`; never staffed; failures retried with backoff and reported; timeouts kill
//! the command's process group; a journalism-shaped project end to end through Slack.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use staffbot::config::{MachineCommand, MachineConfig, MachineFunction};
use staffbot::db::entities::{project, step, task};
use staffbot::db::{ProjectStatus, RequestCause, TaskStatus};
use staffbot::error::{Error, UserError};
use staffbot::lease::{LeaseProof, try_lease};
use staffbot::lifecycle;
use staffbot::machine::{self, MachineReport};
use staffbot::workflow::rules::SubmitKind;

use crate::common::{
    TestDb, assign, by_id, load_workflow, outbox_rows, slack_id, submit, t0, welcome, worker,
    write_workflow,
};
use crate::harness::CHANNEL;
use crate::harness::Harness;

fn sh(script: &str) -> MachineFunction {
    MachineFunction::Command(MachineCommand {
        timeout: Duration::from_secs(20),
        ..MachineCommand::new(vec!["sh".into(), "-c".into(), script.into()])
    })
}

fn functions(list: Vec<(&str, MachineFunction)>) -> MachineConfig {
    MachineConfig {
        functions: list.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Default::default()
    }
}

/// Orchestra's shape: a machine step first (`press.setup`), a human step, then two machine
/// steps in the middle (`press.resize`, `press.tidy`), then a last one for a team's own
/// automation (`press.publish`) that ends the project.
fn press() -> (Value, Value) {
    (
        json!({"slug": "press", "name": "Press", "description": "Articles",
               "certifications": [{"slug": "writer", "name": "Writer"}, {"slug": "editor", "name": "Editor"}],
               "sample_data_load_function": {"path": "press.sample.load"}}),
        json!({"slug": "v1", "name": "V1", "steps": [
            {"slug": "setup", "name": "Setup", "description": "Create folders", "is_human": false,
             "execution_function": {"path": "press.setup", "kwargs": {"size": 2}}},
            {"slug": "write", "name": "Write", "description": "Write it", "is_human": true,
             "creation_depends_on": ["setup"], "required_certifications": ["writer"],
             "assignment_policy": {"policy_function": {"entry_level": {"path": "orchestra.bots.assignment_policies.staffbot_autoassign"}}},
             "review_policy": {"policy": "no_review"},
             "user_interface": {"angular_module": "press.write"}},
            {"slug": "resize", "name": "Resize", "description": "Resize photos", "is_human": false,
             "creation_depends_on": ["write"], "execution_function": {"path": "press.resize"}},
            {"slug": "tidy", "name": "Tidy", "description": "Tidy up", "is_human": false,
             "creation_depends_on": ["write"], "execution_function": {"path": "press.tidy"}},
            {"slug": "edit", "name": "Edit", "description": "Edit it", "is_human": true,
             "creation_depends_on": ["resize", "tidy"], "required_certifications": ["editor"],
             "assignment_policy": {"policy_function": {"entry_level": {"path": "orchestra.bots.assignment_policies.staffbot_autoassign"}}},
             "review_policy": {"policy": "no_review"}},
            {"slug": "publish", "name": "Publish", "description": "Publish", "is_human": false,
             "creation_depends_on": ["edit"], "completion_ends_project": true,
             "execution_function": {"path": "press.publish"}}
        ]}),
    )
}

async fn machine_lease(db: &DatabaseConnection) -> LeaseProof {
    try_lease(db, "machine", "test", Duration::from_secs(3600))
        .await
        .expect("lease")
        .expect("the test holds the machine lease")
}

async fn task_of(db: &DatabaseConnection, project: i64, slug: &str) -> task::Model {
    let s = step::Entity::find()
        .filter(step::Column::Slug.eq(slug))
        .one(db)
        .await
        .expect("q")
        .expect("step");
    task::Entity::find()
        .filter(task::Column::ProjectId.eq(project))
        .filter(task::Column::StepId.eq(s.id))
        .one(db)
        .await
        .expect("q")
        .unwrap_or_else(|| panic!("no {slug} task"))
}

async fn create(db: &DatabaseConnection, channel: Option<&str>) -> i64 {
    let (w, v) = press();
    let dir = write_workflow(&w, &[("v1", v)]);
    let version = load_workflow(db, dir.path()).await;
    lifecycle::create_project(
        db,
        &version,
        "Mayor race",
        1,
        channel.map(Into::into),
        &Default::default(),
        t0(),
    )
    .await
    .expect("project")
}

#[tokio::test]
async fn machine_tasks_complete_by_command_by_config_and_by_task_complete() {
    let t = TestDb::new().await;
    let db = &t.db;
    let tmp = tempfile::tempdir().expect("tmp");
    let input_file = tmp.path().join("input.json");
    let project = create(db, None).await;
    let setup = task_of(db, project, "setup").await;
    assert_eq!(setup.status, TaskStatus::AwaitingProcessing);

    // Never staffed, never assigned.
    let err = staffbot::requests::staff_task(db, setup.id, RequestCause::User, t0())
        .await
        .expect_err("machine task");
    assert_eq!(
        err.to_string(),
        format!(
            "Task {} is a machine step (setup): automation completes it (`staffbot task complete`), nobody is assigned to it",
            setup.id
        )
    );
    let ann = worker("ann").no_slack().writes("writer").add(db).await;
    assert!(matches!(
        lifecycle::assign_task(db, setup.id, &ann, &Default::default(), t0()).await,
        Err(Error::User(UserError::MachineTask { .. }))
    ));

    let config = functions(vec![
        (
            "press.setup",
            sh(&format!(
                "cat > {}; echo '{{\"folder\": \"F1\"}}'",
                input_file.display()
            )),
        ),
        ("press.resize", sh("cat")),
        ("press.tidy", MachineFunction::Complete),
    ]);
    let lease = machine_lease(db).await;
    let r = machine::run_once(db, &lease, &config, &Default::default(), t0())
        .await
        .expect("run");
    assert_eq!(
        r,
        MachineReport {
            completed: 1,
            failed: 0,
            external: 0
        }
    );
    let setup = task_of(db, project, "setup").await;
    assert_eq!(setup.status, TaskStatus::Complete);
    assert_eq!(setup.output, Some(json!({"folder": "F1"})));
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(&input_file).expect("input")).expect("json");
    assert_eq!(input["task"], json!({"id": setup.id, "step": "setup"}));
    assert_eq!(input["project"]["description"], "Mayor race");
    assert_eq!(input["project_data"], json!({"project_id": project}));
    assert_eq!(input["prerequisites"], json!({}));
    assert_eq!(
        input["step"]["execution_function"],
        json!({"path": "press.setup", "kwargs": {"size": 2}})
    );

    // The human step, done by hand.
    let write = task_of(db, project, "write").await;
    assign(db, write.id, "ann").await;
    submit(db, write.id, "ann", SubmitKind::RequestedReview).await;

    // A command in the middle gets every earlier output; `complete = true` completes at once.
    let r = machine::run_once(db, &lease, &config, &Default::default(), t0())
        .await
        .expect("run");
    assert_eq!(r.completed, 2);
    let resize = task_of(db, project, "resize").await;
    let echoed = resize.output.expect("output");
    assert_eq!(
        echoed["prerequisites"],
        json!({"setup": {"folder": "F1"}, "write": {}})
    );
    assert_eq!(task_of(db, project, "tidy").await.output, Some(json!({})));

    let edit = task_of(db, project, "edit").await;
    worker("eve").no_slack().writes("editor").add(db).await;
    assign(db, edit.id, "eve").await;
    submit(db, edit.id, "eve", SubmitKind::RequestedReview).await;

    // An unmapped path waits for `task complete`.
    let r = machine::run_once(db, &lease, &config, &Default::default(), t0())
        .await
        .expect("run");
    assert_eq!(r.external, 1);
    let publish = task_of(db, project, "publish").await;
    assert_eq!(publish.status, TaskStatus::AwaitingProcessing);
    assert!(matches!(
        lifecycle::complete_machine_task(db, edit.id, json!({}), &Default::default(), t0()).await,
        Err(Error::User(UserError::NotAMachineTask { .. }))
    ));
    lifecycle::complete_machine_task(
        db,
        publish.id,
        json!({"url": "https://x"}),
        &Default::default(),
        t0(),
    )
    .await
    .expect("complete");
    assert_eq!(
        task_of(db, project, "publish").await.output,
        Some(json!({"url": "https://x"}))
    );
    let p = by_id::<project::Entity>(db, project).await;
    assert_eq!(p.status, ProjectStatus::Completed);
    assert!(matches!(
        lifecycle::complete_machine_task(db, publish.id, json!({}), &Default::default(), t0())
            .await,
        Err(Error::User(UserError::MachineTaskNotWaiting { .. }))
    ));
}

#[tokio::test]
async fn a_failing_command_waits_retries_with_backoff_is_reported_and_recovers() {
    let t = TestDb::new().await;
    let db = &t.db;
    let tmp = tempfile::tempdir().expect("tmp");
    let ok = tmp.path().join("ok");
    let project = create(db, None).await;
    let config = functions(vec![(
        "press.setup",
        sh(&format!(
            "cat >/dev/null; if [ -f {ok} ]; then cat {ok}; else echo 'no token' >&2; exit 3; fi",
            ok = ok.display()
        )),
    )]);
    let lease = machine_lease(db).await;
    let r = machine::run_once(db, &lease, &config, &Default::default(), t0())
        .await
        .expect("run");
    assert_eq!(r.failed, 1);
    let setup = task_of(db, project, "setup").await;
    assert_eq!(setup.status, TaskStatus::AwaitingProcessing);
    assert_eq!(setup.machine_attempts, 1);
    assert_eq!(
        setup.machine_last_error.as_deref(),
        Some("exited with exit status: 3: no token")
    );
    assert_eq!(
        setup.machine_next_attempt_at,
        Some(t0() + chrono::Duration::seconds(30))
    );
    // Not due before its backoff.
    let r = machine::run_once(
        db,
        &lease,
        &config,
        &Default::default(),
        t0() + chrono::Duration::seconds(29),
    )
    .await
    .expect("run");
    assert_eq!(r, MachineReport::default());
    // Bad JSON is a failure too; the backoff doubles.
    std::fs::write(&ok, "not json").expect("write");
    let r = machine::run_once(
        db,
        &lease,
        &config,
        &Default::default(),
        t0() + chrono::Duration::seconds(30),
    )
    .await
    .expect("run");
    assert_eq!(r.failed, 1);
    let setup = task_of(db, project, "setup").await;
    assert!(
        setup
            .machine_last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("printed no valid JSON on stdout")),
        "{setup:?}"
    );
    assert_eq!(
        setup.machine_next_attempt_at,
        Some(t0() + chrono::Duration::seconds(90))
    );

    // The unstaffed-task warnings list it once it has waited staffing_min_time.
    let warnings = try_lease(db, "warnings", "test", Duration::from_secs(3600))
        .await
        .expect("lease")
        .expect("held");
    let later = t0() + chrono::Duration::minutes(31);
    let n = staffbot::staffing::warnings::run_once(
        db,
        &warnings,
        Some("C0STAFF"),
        Duration::from_secs(1800),
        later,
    )
    .await
    .expect("warnings");
    assert_eq!(n, 1);
    let rows = outbox_rows(db).await;
    let texts: Vec<String> = rows
        .iter()
        .map(|(_, w)| serde_json::to_value(w).expect("json")["text"].to_string())
        .collect();
    assert_eq!(rows.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains(&format!(
            "Task {} - v1 (Mayor race) - setup: waiting for automation: printed no valid JSON on stdout",
            setup.id
        )),
        "{texts:?}"
    );

    std::fs::write(&ok, "{\"folder\": \"F2\"}").expect("write");
    let r = machine::run_once(db, &lease, &config, &Default::default(), later)
        .await
        .expect("run");
    assert_eq!(r.completed, 1);
    let setup = task_of(db, project, "setup").await;
    assert_eq!(setup.status, TaskStatus::Complete);
    assert_eq!(setup.output, Some(json!({"folder": "F2"})));
    assert_eq!(setup.machine_attempts, 2);
}

/// True once `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_its_process_group() {
    let t = TestDb::new().await;
    let db = &t.db;
    let tmp = tempfile::tempdir().expect("tmp");
    let pid_file = tmp.path().join("child");
    let project = create(db, None).await;
    let config = functions(vec![(
        "press.setup",
        MachineFunction::Command(MachineCommand {
            timeout: Duration::from_secs(1),
            ..MachineCommand::new(vec![
                "sh".into(),
                "-c".into(),
                format!("sleep 60 & echo $! > {}; wait", pid_file.display()),
            ])
        }),
    )]);
    let lease = machine_lease(db).await;
    let r = machine::run_once(db, &lease, &config, &Default::default(), t0())
        .await
        .expect("run");
    assert_eq!(r.failed, 1);
    let setup = task_of(db, project, "setup").await;
    assert_eq!(
        setup.machine_last_error.as_deref(),
        Some("timed out after 1s (its process group was killed)")
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !exited(pid.trim()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command's child {pid} survived the timeout"
        );
        tokio::task::yield_now().await;
    }
}

/// A journalism-shaped project from creation to completion: machine steps run by commands, human
/// steps staffed through Slack.
#[tokio::test]
async fn a_project_runs_through_machine_steps_and_slack_staffing() {
    let mut h = Harness::new().await;
    let db = h.db().clone();
    let project = create(&db, Some(CHANNEL)).await;
    for (name, cert) in [("wes", "writer"), ("eda", "editor")] {
        worker(name).writes(cert).add(&db).await;
        h.fake.add_user(&slack_id(name), name);
    }
    h.fake.add_channel(CHANNEL, "mayor-race", &[]);
    h.hold_loop_leases().await;
    h.start().await;
    let config = functions(vec![
        (
            "press.setup",
            sh("cat >/dev/null; echo '{\"folder\": \"F1\"}'"),
        ),
        ("press.resize", sh("cat")),
        ("press.tidy", MachineFunction::Complete),
        ("press.publish", MachineFunction::Complete),
    ]);
    let lease = machine_lease(&db).await;

    for (slug, worker, machine_runs) in [("write", "wes", 1), ("edit", "eda", 2)] {
        let r = machine::run_once(&db, &lease, &config, &Default::default(), Utc::now())
            .await
            .expect("run");
        assert_eq!(r.completed, machine_runs, "before {slug}");
        let task = task_of(&db, project, slug).await;
        assert_eq!(
            h.next_post(CHANNEL).await,
            format!("Got it! I will start staffing task {}!", task.id)
        );
        h.tick(Utc::now(), 1).await;
        // The offer, and the note that everyone in the pool has been asked.
        let sent = h.next_messages(2).await;
        assert!(
            sent.iter()
                .any(|c| c.body["blocks"][1]["elements"][0]["action_id"] == "offer_accept"),
            "{sent:?}"
        );
        let inquiry = staffbot::db::entities::staffing_inquiry::Entity::find()
            .order_by_desc(staffbot::db::entities::staffing_inquiry::Column::Id)
            .one(&db)
            .await
            .expect("q")
            .expect("inquiry");
        h.click(worker, "offer_accept", &inquiry).await;
        let notice = |line| crate::common::notice(line, worker, "Mayor race", slug, task.id);
        let texts = h.texts(3).await;
        assert!(texts.contains(&welcome(&slack_id(worker))), "{texts:?}");
        assert!(
            texts.contains(&notice(crate::common::PICKED_UP)),
            "{texts:?}"
        );
        let status = submit(&db, task.id, worker, SubmitKind::RequestedReview).await;
        assert_eq!(status, TaskStatus::Complete);
        assert_eq!(h.next_post(CHANNEL).await, notice(crate::common::COMPLETED));
    }
    let r = machine::run_once(&db, &lease, &config, &Default::default(), Utc::now())
        .await
        .expect("run");
    assert_eq!(r.completed, 1);
    let p = by_id::<project::Entity>(&db, project).await;
    assert_eq!(p.status, ProjectStatus::Completed);
    let resize = task_of(&db, project, "resize").await;
    assert_eq!(
        resize.output.expect("output")["prerequisites"]["setup"],
        json!({"folder": "F1"})
    );
    h.finish().await;
}

/// Issue 25 (12): output that is not JSON (or too much of it, or a timeout) records the end of
/// stderr in the task's error, as a non-zero exit does.
#[tokio::test]
async fn every_failed_run_records_the_end_of_stderr() {
    let t = TestDb::new().await;
    let db = &t.db;
    let project = create(db, None).await;
    let lease = machine_lease(db).await;
    let cases = [
        (
            sh("cat >/dev/null; echo 'warning: disk full' >&2; echo 'not json'"),
            "printed no valid JSON on stdout: expected ident at line 1 column 2; stderr: warning: disk full",
        ),
        (
            MachineFunction::Command(MachineCommand {
                timeout: Duration::from_secs(1),
                ..MachineCommand::new(vec![
                    "sh".into(),
                    "-c".into(),
                    "cat >/dev/null; echo 'step 1 of 3' >&2; sleep 30".into(),
                ])
            }),
            "timed out after 1s (its process group was killed); stderr: step 1 of 3",
        ),
    ];
    for (attempt, (function, expected)) in cases.into_iter().enumerate() {
        let now = t0() + chrono::Duration::hours(attempt as i64);
        let config = functions(vec![("press.setup", function)]);
        let r = machine::run_once(db, &lease, &config, &Default::default(), now)
            .await
            .expect("run");
        assert_eq!(r.failed, 1);
        let setup = task_of(db, project, "setup").await;
        assert_eq!(setup.machine_last_error.as_deref(), Some(expected));
    }
}

/// Issue 25 (13): due commands run at once (up to `machine.concurrency`), so a slow one holds
/// no other; and a chain of machine steps finishes in one run.
#[tokio::test]
async fn due_commands_run_concurrently_and_a_chain_finishes_in_one_run() {
    let t = TestDb::new().await;
    let db = &t.db;
    let tmp = tempfile::tempdir().expect("tmp");
    // `wait` (created first, so run first) finishes only once `release` has run.
    let wf = crate::common::flow(
        &[],
        vec![
            crate::common::machine_step("wait", "t.wait"),
            crate::common::machine_step("release", "t.release"),
            crate::common::machine_step("next", "t.next").after(&["wait", "release"]),
            crate::common::machine_step("last", "t.last").after(&["next"]),
        ],
    );
    let config = |flag: &std::path::Path, concurrency: usize| MachineConfig {
        concurrency,
        ..functions(vec![
            (
                "t.wait",
                MachineFunction::Command(MachineCommand {
                    timeout: Duration::from_secs(2),
                    ..MachineCommand::new(vec![
                        "sh".into(),
                        "-c".into(),
                        format!(
                            "cat >/dev/null; while [ ! -f {f} ]; do sleep 0.05; done; echo '{{}}'",
                            f = flag.display()
                        ),
                    ])
                }),
            ),
            (
                "t.release",
                sh(&format!(
                    "cat >/dev/null; touch {}; echo '{{\"released\": true}}'",
                    flag.display()
                )),
            ),
            ("t.next", sh("cat >/dev/null; echo '{\"n\": 1}'")),
            ("t.last", MachineFunction::Complete),
        ])
    };
    let lease = machine_lease(db).await;

    // One at a time: `wait` holds the run until its timeout.
    let one = wf.project_at(db, "One at a time", None, t0()).await;
    let r = machine::run_once(
        db,
        &lease,
        &config(&tmp.path().join("a"), 1),
        &Default::default(),
        t0(),
    )
    .await
    .expect("run");
    assert_eq!((r.completed, r.failed), (1, 1), "{r:?}");
    assert_eq!(
        task_of(db, one, "wait").await.machine_last_error.as_deref(),
        Some("timed out after 2s (its process group was killed)")
    );
    project_done(db, one).await;

    // The default (4): both run at once, and the chain after them completes in the same run.
    assert_eq!(MachineConfig::default().concurrency, 4);
    let two = wf.project_at(db, "At once", None, t0()).await;
    let r = machine::run_once(
        db,
        &lease,
        &config(&tmp.path().join("b"), 4),
        &Default::default(),
        t0(),
    )
    .await
    .expect("run");
    assert_eq!(
        r,
        MachineReport {
            completed: 4,
            failed: 0,
            external: 0
        }
    );
    for slug in ["wait", "release", "next", "last"] {
        assert_eq!(
            task_of(db, two, slug).await.status,
            TaskStatus::Complete,
            "{slug}"
        );
    }
    assert_eq!(
        by_id::<project::Entity>(db, two).await.status,
        ProjectStatus::Completed
    );
}

/// Ends a project (so its tasks are no longer due).
async fn project_done(db: &DatabaseConnection, project: i64) {
    staffbot::lifecycle::abort_project(db, project, &Default::default(), t0())
        .await
        .expect("abort");
}

/// A machine step run by the binary (`tick …`), with every secret staffbot can hold set.
struct Leaky {
    fake: slack_sim::FakeSlack,
    t: TestDb,
    dir: tempfile::TempDir,
    conf: std::path::PathBuf,
}

const SMTP_PASSWORD: &str = "smtp-Pass-4711";
const IMAP_PASSWORD: &str = "imap-Pass-0815";
const VERIFICATION_TOKEN: &str = "vt-secret-42";
const DB_PASSWORD: &str = "db-Pass-9999";

impl Leaky {
    /// A project on a one-step machine workflow whose function runs `script` (sh), created an
    /// hour ago; `[staffbot]` and `[email]` settings as an operator would have them.
    async fn new(script: &str, function_extra: &str) -> Leaky {
        let fake = slack_sim::FakeSlack::start(slack_sim::FakeSlackConfig::default()).await;
        fake.add_channel("G0STAFF", "staffing", &[]);
        let t = TestDb::new().await;
        let dir = tempfile::tempdir().expect("tmp");
        let script_file = dir.path().join("run.sh");
        std::fs::write(&script_file, script).expect("script");
        let conf = dir.path().join("staffbot.toml");
        std::fs::write(
            &conf,
            format!(
                r#"
[staffbot]
staffing_group_id = "G0STAFF"
staffing_min_time = "30m"

[email]
smtp_url = "smtp://staffbot:{SMTP_PASSWORD}@127.0.0.1:9"
from = "staffbot <staffbot@example.com>"
imap_url = "imap://staffbot@127.0.0.1:9"

[machine.functions."t.leak"]
command = ["sh", "{}"]
{function_extra}
"#,
                script_file.display()
            ),
        )
        .expect("config");
        crate::common::flow(&[], vec![crate::common::machine_step("leak", "t.leak")])
            .project_at(
                &t.db,
                "Leaky",
                None,
                Utc::now() - chrono::Duration::hours(1),
            )
            .await;
        Leaky { fake, t, dir, conf }
    }

    /// `staffbot <args>` with every secret in its environment; (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(&[], args).await
    }

    /// [`Leaky::run`] with more environment variables.
    async fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
        let mut cmd = crate::process::staffbot(&self.fake, &self.t.url, "xoxb-test", "xapp-test");
        cmd.envs(env.iter().copied())
            .env("SLACK_VERIFICATION_TOKEN", VERIFICATION_TOKEN)
            .env("STAFFBOT_IMAP_PASSWORD", IMAP_PASSWORD)
            .env("STAFFBOT_SMTP_PASSWORD", SMTP_PASSWORD)
            // A variable a command must not see either.
            .env("PGPASSWORD", DB_PASSWORD)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("LANG", "C.UTF-8")
            .env("TZ", "Europe/Berlin")
            .arg("--config")
            .arg(&self.conf)
            .args(args);
        crate::process::finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(60)).await
    }

    /// `task list --json`'s one task.
    async fn task(&self) -> Value {
        let (code, stdout, stderr) = self.run(&["task", "list", "--json"]).await;
        assert_eq!(code, 0, "{stderr}");
        let list: Value = serde_json::from_str(&stdout).expect("json");
        list[0].clone()
    }
}

/// Issue 25 (11): a failing command that prints staffbot's secrets on stderr (with terminal
/// colours) shows them nowhere: not in the log, not in `task list --json`, not in the
/// staffing channel's warning.
#[tokio::test]
async fn secrets_a_command_prints_are_masked_in_the_log_the_task_and_slack() {
    let l = Leaky::new(
        &format!(
            "cat >/dev/null\nprintf '\\033[31mlogin failed: xoxb-test xapp-test {VERIFICATION_TOKEN} {SMTP_PASSWORD} {IMAP_PASSWORD}\\033[0m\\n' >&2\nexit 1\n"
        ),
        "",
    )
    .await;
    let secrets = [
        "xoxb-test",
        "xapp-test",
        VERIFICATION_TOKEN,
        SMTP_PASSWORD,
        IMAP_PASSWORD,
        "\u{1b}",
    ];
    let (code, stdout, log) = l.run(&["tick", "machine"]).await;
    assert_eq!(code, 0, "{stdout}{log}");
    assert!(
        stdout.contains("0 machine task(s) completed, 1 failed"),
        "{stdout}"
    );
    assert!(
        log.contains("login failed: [secret] [secret] [secret] [secret] [secret]"),
        "the stderr is logged, masked: {log}"
    );
    let task = l.task().await;
    let error = task["machine"]["last_error"].as_str().expect("an error");
    assert_eq!(
        error,
        "exited with exit status: 1: login failed: [secret] [secret] [secret] [secret] [secret]"
    );

    let (code, stdout, log2) = l.run(&["tick", "warnings"]).await;
    assert_eq!(code, 0, "{stdout}{log2}");
    let posts = l.fake.calls_to("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].body["channel"], "G0STAFF");
    let text = posts[0].body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("waiting for automation: exited with exit status: 1: login failed: [secret]"),
        "{text}"
    );
    let everything_slack_got =
        serde_json::to_string(&l.fake.calls().iter().map(|c| &c.body).collect::<Vec<_>>())
            .expect("json");
    for secret in secrets {
        assert!(!log.contains(secret), "{secret:?} in the log: {log}");
        assert!(!log2.contains(secret), "{secret:?} in the log: {log2}");
        assert!(!error.contains(secret), "{secret:?} in the task: {error}");
        assert!(
            !everything_slack_got.contains(secret),
            "{secret:?} posted to Slack: {everything_slack_got}"
        );
    }
}

/// Issue 25 (11): a command's environment is `PATH`, `HOME`, `LANG`, `TZ` and its function's
/// `env`, never staffbot's secrets; it runs in its `cwd`.
#[tokio::test]
async fn commands_get_a_clean_environment_their_env_and_their_cwd() {
    let work = tempfile::tempdir().expect("tmp");
    let cwd = work.path().canonicalize().expect("canonical");
    let l = Leaky::new(
        "cat >/dev/null\nprintf '{\"names\": \"%s\", \"path\": \"%s\", \"lang\": \"%s\", \"tz\": \"%s\", \"press\": \"%s\", \"pwd\": \"%s\"}\\n' \"$(env | cut -d= -f1 | sort | tr '\\n' ' ')\" \"$PATH\" \"$LANG\" \"$TZ\" \"$PRESS_API\" \"$(pwd -P)\"\n",
        &format!(
            "env = {{ PRESS_API = \"https://press.internal\" }}\ncwd = \"{}\"",
            cwd.display()
        ),
    )
    .await;
    let (code, stdout, log) = l.run(&["tick", "machine"]).await;
    assert_eq!(code, 0, "{stdout}{log}");
    assert!(
        stdout.contains("1 machine task(s) completed"),
        "{stdout}{log}"
    );
    let task = l.task().await;
    let output = &task["output"];
    let names: Vec<&str> = output["names"]
        .as_str()
        .expect("names")
        .split_whitespace()
        .collect();
    for name in ["PATH", "HOME", "LANG", "TZ", "PRESS_API"] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    for name in [
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_VERIFICATION_TOKEN",
        "SLACK_API_URL",
        "STAFFBOT_DATABASE_URL",
        "STAFFBOT_SMTP_PASSWORD",
        "STAFFBOT_IMAP_PASSWORD",
        "PGPASSWORD",
        "RUST_LOG",
    ] {
        assert!(!names.contains(&name), "{name} passed on: {names:?}");
    }
    assert_eq!(
        output["path"],
        std::env::var("PATH").unwrap_or_default().as_str()
    );
    assert_eq!(output["lang"], "C.UTF-8");
    assert_eq!(output["tz"], "Europe/Berlin");
    assert_eq!(output["press"], "https://press.internal");
    assert_eq!(output["pwd"], cwd.display().to_string());
}

/// Issue 25 (11): every log line is masked, whatever text from outside it quotes (here an
/// error code Slack sent back, which the sender logs as it came), in both log formats.
#[tokio::test]
async fn log_lines_quoting_text_from_outside_are_masked() {
    for format in ["text", "json"] {
        let l = Leaky::new("cat >/dev/null\necho 'it broke' >&2\nexit 1\n", "").await;
        let (code, stdout, log) = l.run(&["tick", "machine"]).await;
        assert_eq!(code, 0, "{stdout}{log}");
        l.fake.fail_next(
            "chat.postMessage",
            slack_sim::Fault::ApiError(format!("not_allowed_for_xoxb-test_{SMTP_PASSWORD}")),
            10,
        );
        let (code, stdout, log) = l
            .run_with(&[("STAFFBOT_LOG_FORMAT", format)], &["tick", "warnings"])
            .await;
        assert_eq!(code, 0, "{stdout}{log}");
        assert!(
            log.contains("not_allowed_for_[secret]_[secret]"),
            "Slack's error is logged, masked ({format}): {log}"
        );
        for secret in ["xoxb-test", SMTP_PASSWORD] {
            assert!(!log.contains(secret), "{secret:?} in the log: {log}");
        }
        if format == "json" {
            for line in log.lines() {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            }
        }
    }
}
