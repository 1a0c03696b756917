//! Teams' own checks and descriptions (issue 15): Rhai scripts for SanityBot, descriptions and
//! machine steps, Jinja templates over project data, and their load-time errors.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use staffbot::config::MachineConfig;
use staffbot::db::entities::{sanity_check, workflow_version};
use staffbot::db::{TaskStatus, tasks as task_store};
use staffbot::lease::LeaseProof;
use staffbot::sanity::{SanityReport, run_once};
use staffbot::workflow::definition;
use staffbot::workflow::functions::describe;
use staffbot::workflow::rules::SubmitKind;

use crate::common::{
    TestDb, assign, count, first_task, flow, load_workflow, machine_step, outbox_rows, post, step,
    submit, task, tasks, worker,
};

const CHANNEL: &str = "C0FIRE";

fn rush_desk() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rush-desk")
}

async fn lease(db: &DatabaseConnection, name: &str) -> LeaseProof {
    staffbot::lease::try_lease(db, name, "test", Duration::from_secs(3600))
        .await
        .expect("lease")
        .expect("held by the test")
}

async fn project(
    db: &DatabaseConnection,
    version: &workflow_version::Model,
    description: &str,
    data: Value,
    at: DateTime<Utc>,
) -> i64 {
    let project = staffbot::db::projects::NewProject {
        workflow_version_id: version.id,
        short_description: description,
        priority: 0,
        slack_channel_id: Some(CHANNEL.to_string()),
        project_data: data,
    };
    staffbot::lifecycle::create_project_with_data(db, project, &Default::default(), at)
        .await
        .expect("project created")
}

/// The texts SanityBot queued, oldest first.
async fn sanity_posts(db: &DatabaseConnection) -> Vec<staffbot::slack::write::SlackWrite> {
    outbox_rows(db)
        .await
        .into_iter()
        .filter(|(key, _)| key.starts_with("sanity:"))
        .map(|(_, w)| w)
        .collect()
}

async fn sanity(db: &DatabaseConnection, at: DateTime<Utc>) -> SanityReport {
    let l = lease(db, "sanity").await;
    run_once(db, &l, at).await.expect("sanity round")
}

async fn description(db: &DatabaseConnection, task_id: i64) -> String {
    let source = task_store::description_source(db, task_id)
        .await
        .expect("query")
        .expect("the task");
    describe(&source.detailed_description_function, &source.input())
        .expect("renders")
        .as_written()
}

#[tokio::test]
async fn the_example_describes_from_project_data_and_its_script_check_repeats() {
    let t = TestDb::new().await;
    let db = &t.db;
    let version = load_workflow(db, &rush_desk()).await;
    let created = Utc::now();
    let rush = project(
        db,
        &version,
        "Fire downtown",
        json!({"rush": true, "sources": ["fire chief", "mayor"], "words": 400}),
        created,
    )
    .await;
    let calm = project(db, &version, "Garden show", json!({}), created).await;
    let reporting = |project: i64| async move {
        tasks(db)
            .await
            .into_iter()
            .find(|t| t.project_id == project)
            .expect("reporting task")
            .id
    };
    // The template's conditionals follow each project's data.
    assert_eq!(
        description(db, reporting(rush).await).await,
        "RUSH: Fire downtown, about 400 words; sources: fire chief, mayor. Questions: the news desk."
    );
    assert_eq!(
        description(db, reporting(calm).await).await,
        "Garden show, about 600 words. Questions: the news desk."
    );

    // Nothing to say yet.
    let r = sanity(db, created).await;
    assert_eq!((r.projects, r.checks, r.failed_projects), (2, 0, 0));

    // Rob writes the rush story; nobody has the photos: the script's check fires, once.
    worker("rob").writes("reporter").add(db).await;
    let story = reporting(rush).await;
    assign(db, story, "rob").await;
    submit(db, story, "rob", SubmitKind::RequestedReview).await;
    let now = Utc::now();
    let r = sanity(db, now).await;
    assert_eq!((r.checks, r.messages), (1, 1));
    let photo =
        "<@U0ROB>: the story is written but nobody has the photos yet. Can someone take them?";
    assert_eq!(sanity_posts(db).await, [post(CHANNEL, photo)]);
    let r = sanity(db, now + chrono::Duration::hours(4)).await;
    assert_eq!(r.checks, 0, "not again within repetition_seconds (4 h)");

    // Past 4 hours it repeats; past a day the rush check fires too (the calm project never).
    let later = now + chrono::Duration::hours(4) + chrono::Duration::seconds(1);
    let r = sanity(db, later).await;
    assert_eq!((r.checks, r.messages), (1, 1));
    let next_day = created + chrono::Duration::days(1) + chrono::Duration::seconds(1);
    let r = sanity(db, next_day).await;
    assert_eq!((r.checks, r.messages), (2, 2));
    assert_eq!(
        sanity_posts(db).await,
        [
            post(CHANNEL, photo),
            post(CHANNEL, photo),
            post(CHANNEL, photo),
            post(CHANNEL, "<@U0ROB>: this rush story is more than a day old."),
        ]
    );
    assert_eq!(count::<sanity_check::Entity>(db).await, 4);
}

/// A workflow whose check script runs `script` over a one-step project.
async fn scripted(
    db: &DatabaseConnection,
    script: &str,
    slugs: &[&str],
) -> workflow_version::Model {
    let configurations: serde_json::Map<String, Value> = slugs
        .iter()
        .map(|s| {
            (
                s.to_string(),
                json!({"handlers": [{"type": "slack_project_channel", "message": format!("{s} fired"), "steps": ["draft"]}]}),
            )
        })
        .collect();
    flow(&["writer"], vec![step("draft", "writer")])
        .with(
            "sanity_checks",
            json!({"sanity_check_function": {"path": "script:checks.rhai"},
                   "check_configurations": configurations}),
        )
        .file("checks.rhai", script)
        .load(db)
        .await
}

#[tokio::test]
async fn a_script_error_or_a_limit_hit_skips_only_its_project() {
    let t = TestDb::new().await;
    let db = &t.db;
    let version = scripted(
        db,
        r#"
        fn down(n) { down(n + 1) }
        if project.data.mode == "throw" { throw "no data for " + project.description; }
        if project.data.mode == "spin" { loop { } }
        if project.data.mode == "grow" { let s = "x"; loop { s += s; } }
        if project.data.mode == "deep" { down(0); }
        ["ok", "ghost"]
        "#,
        &["ok"],
    )
    .await;
    let now = Utc::now();
    for mode in ["throw", "spin", "grow", "deep"] {
        project(db, &version, mode, json!({"mode": mode}), now).await;
    }
    let fine = project(db, &version, "fine", json!({}), now).await;
    let r = sanity(db, now).await;
    assert_eq!(
        (r.projects, r.checks, r.messages, r.failed_projects),
        (5, 1, 1, 4)
    );
    // `ghost` has no configuration: logged, not posted.
    assert_eq!(sanity_posts(db).await, [post(CHANNEL, "ok fired")]);
    let fired: Vec<i64> = crate::common::all::<sanity_check::Entity>(db)
        .await
        .into_iter()
        .map(|c| c.project_id)
        .collect();
    assert_eq!(fired, [fine]);
}

fn load_error(wf: crate::common::Flow) -> String {
    let dir = wf.dir();
    definition::read(dir.path()).expect_err("must not load").0
}

#[test]
fn load_errors_name_the_file_line_and_column() {
    let checks = |path: &str| {
        json!({"sanity_check_function": {"path": path},
               "check_configurations": {"a": {"handlers": []}}})
    };
    let base = || flow(&["writer"], vec![step("draft", "writer")]);

    let err = load_error(
        base()
            .with("sanity_checks", checks("script:checks.rhai"))
            .file("checks.rhai", "let fired = [];\nfired.push(\"a\"\n"),
    );
    assert!(
        err.contains("sanity_checks: script checks.rhai, line 3, column 1: "),
        "{err}"
    );
    let err = load_error(
        base()
            .with("sanity_checks", checks("script:checks.rhai"))
            .file(
                "checks.rhai",
                "let fired = [];\n\nif projct.id > 1 { fired.push(\"a\"); }\nfired",
            ),
    );
    assert!(
        err.contains("script checks.rhai, line 3, column 4: Undefined variable: projct"),
        "{err}"
    );
    let err = load_error(base().with("sanity_checks", checks("script:missing.rhai")));
    assert!(
        err.contains("cannot read script") && err.contains("missing.rhai"),
        "{err}"
    );
    let err = load_error(base().with("sanity_checks", checks("script:../outside.rhai")));
    assert!(err.contains("relative, without .."), "{err}");
    let err = load_error(base().with("sanity_checks", checks("my_project.checks.run")));
    assert!(
        err.contains("unknown sanity check function path \"my_project.checks.run\"")
            && err.contains("port it to a Rhai script")
            && err.contains("README.md#custom-checks-and-descriptions"),
        "{err}"
    );

    let described = |template: &str| {
        flow(
            &["writer"],
            vec![step("draft", "writer").with(
                "detailed_description_function",
                json!({"path": "staffbot.template", "kwargs": {"template": template, "words": 300}}),
            )],
        )
    };
    let err = load_error(described(
        "About {{ words }} words.\n{% if project.data.rush %}Rush!",
    ));
    assert!(err.contains("template line 2, column"), "{err}");
    assert!(err.contains("syntax error"), "{err}");
    let err = load_error(described("{{ words }}\n  {{ project.deadline }}"));
    assert!(
        err.contains("unknown variable {{ project.deadline }} in template, line 2, column 6"),
        "{err}"
    );
    let err = load_error(
        flow(
            &["writer"],
            vec![step("draft", "writer").with(
                "detailed_description_function",
                json!({"path": "script:describe.rhai"}),
            )],
        )
        .file("describe.rhai", "`Story ${project.description}` +"),
    );
    assert!(err.contains("script describe.rhai, line 1"), "{err}");
}

async fn store_dir(
    db: &DatabaseConnection,
    dir: &Path,
    force: bool,
) -> Result<staffbot::workflow::load::LoadSummary, String> {
    let def = definition::read(dir).map_err(|e| e.0)?;
    staffbot::workflow::load::store(db, &def, force, Utc::now())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn scripts_are_stored_with_their_version_and_force_reloads_them() {
    let t = TestDb::new().await;
    let db = &t.db;
    let wf = flow(&["writer"], vec![step("draft", "writer")]).with(
        "sanity_checks",
        json!({"sanity_check_function": {"path": "script:checks.rhai"},
               "check_configurations": {"a": {"handlers": [{"type": "slack_project_channel", "message": "A", "steps": ["draft"]}]},
                                        "b": {"handlers": [{"type": "slack_project_channel", "message": "B", "steps": ["draft"]}]}}}),
    );
    let dir = wf.clone().file("checks.rhai", r#"["a"]"#).dir();
    let store = |force: bool| store_dir(db, dir.path(), force);
    let summary = store(false).await.expect("created");
    assert_eq!(
        summary.versions[0].1,
        staffbot::workflow::load::VersionOutcome::Created
    );
    let version = crate::common::all::<workflow_version::Entity>(db)
        .await
        .remove(0);
    assert_eq!(version.scripts, Some(json!({"checks.rhai": r#"["a"]"#})));
    project(db, &version, "P", json!({}), Utc::now()).await;
    assert_eq!(
        store(false).await.expect("same files").versions[0].1,
        staffbot::workflow::load::VersionOutcome::Unchanged
    );

    // The file changes; the daemon keeps running what was loaded until --force.
    std::fs::write(dir.path().join("v1/checks.rhai"), r#"["b"]"#).expect("write");
    let err = store(false).await.expect_err("changed");
    assert_eq!(
        err,
        "Version v1 already exists and its scripts changed (use --force to update it)"
    );
    let r = sanity(db, Utc::now()).await;
    assert_eq!(r.checks, 1);
    assert_eq!(sanity_posts(db).await, [post(CHANNEL, "A")]);
    assert_eq!(
        store(true).await.expect("forced").versions[0].1,
        staffbot::workflow::load::VersionOutcome::Updated
    );
    let r = sanity(db, Utc::now()).await;
    assert_eq!(r.checks, 1);
    assert_eq!(
        sanity_posts(db).await,
        [post(CHANNEL, "A"), post(CHANNEL, "B")]
    );
}

#[tokio::test]
async fn a_description_script_and_a_machine_script() {
    let t = TestDb::new().await;
    let db = &t.db;
    let wf = flow(
        &["writer"],
        vec![
            machine_step("prepare", "script:prepare.rhai")
                .with("execution_function", json!({"path": "script:prepare.rhai", "kwargs": {"prefix": "F"}})),
            step("draft", "writer").after(&["prepare"]).with(
                "detailed_description_function",
                json!({"path": "script:describe.rhai", "kwargs": {"unit": "words"}}),
            ),
        ],
    )
    .file(
        "prepare.rhai",
        r#"if project_data.fail == true { throw "no folder today"; }
           #{folder: kwargs.prefix + project.id, words: project_data.words, step: step.slug}"#,
    )
    .file(
        "describe.rhai",
        r#"`${project.data.words} ${kwargs.unit} for ${project.description} (${step.name}, task ${task.id})`"#,
    );
    let version = wf.load(db).await;
    let config = MachineConfig::default();
    let id = project(
        db,
        &version,
        "Budget <draft>",
        json!({"words": 900}),
        Utc::now(),
    )
    .await;
    let l = lease(db, "machine").await;
    let r = staffbot::machine::run_once(db, &l, &config, &Default::default(), Utc::now())
        .await
        .expect("machine round");
    assert_eq!((r.completed, r.failed), (1, 0));
    let prepare = task(db, first_task(db).await).await;
    assert_eq!(prepare.status, TaskStatus::Complete);
    assert_eq!(
        prepare.output,
        Some(json!({"folder": format!("F{id}"), "words": 900, "step": "prepare"}))
    );
    let draft = tasks(db)
        .await
        .into_iter()
        .find(|t| t.id != prepare.id)
        .expect("draft");
    assert_eq!(
        description(db, draft.id).await,
        format!("900 words for Budget <draft> (Draft, task {})", draft.id)
    );

    // A script that throws leaves its task waiting, with the error, like a failed command.
    project(db, &version, "Broken", json!({"fail": true}), Utc::now()).await;
    let r = staffbot::machine::run_once(db, &l, &config, &Default::default(), Utc::now())
        .await
        .expect("machine round");
    assert_eq!((r.completed, r.failed), (0, 1));
    let waiting = tasks(db)
        .await
        .into_iter()
        .find(|t| {
            t.status == TaskStatus::AwaitingProcessing
                && t.output.is_none()
                && t.machine_attempts == 1
        })
        .expect("the failed machine task");
    let error = waiting.machine_last_error.unwrap_or_default();
    assert!(
        error.starts_with("script prepare.rhai, line 1") && error.contains("no folder today"),
        "{error}"
    );
}

/// Rhai's `sleep` blocked its thread whatever the wall time: a description script that slept
/// held the staffing round (and, on SQLite, the database) for as long. Now it fails at once:
/// the offers go out without the description, and commands and clicks are answered.
#[tokio::test]
async fn a_description_script_that_sleeps_holds_up_nothing() {
    let mut t = crate::harness::TeamSpec::new()
        .workers(&["ann", "bob"])
        .admin("ada")
        .description_script("sleep(3600); `never shown`")
        .start()
        .await;
    t.staff().await;
    let round = tokio::time::timeout(Duration::from_secs(10), t.h.tick(Utc::now(), 1))
        .await
        .expect("the round does not wait for the script");
    assert_eq!(round.offers, 2);
    let calls = t.h.next_messages(3).await;
    let offers: Vec<&str> = calls
        .iter()
        .map(crate::harness::text)
        .filter(|text| text.starts_with("Hello"))
        .collect();
    assert_eq!(offers.len(), 2, "{calls:?}");
    assert!(
        offers.iter().all(|o| o.ends_with("Task: Write the story")),
        "no details: {offers:?}"
    );
    let help = t.h.reply("U0ADA", "help").await;
    assert!(
        help["text"]
            .as_str()
            .unwrap_or_default()
            .contains("/staffbot"),
        "{help}"
    );
    // The description was rendered (and failed) once, in the round: a click does not run it.
    t.accept("ann").await;
    let winner = crate::common::find_worker(t.h.db(), "ann").await;
    assert_eq!(crate::common::assignments(t.h.db()).await, [(winner.id, 0)]);
    // The welcome, the status notice, and both offers updated (the win, the other taken).
    let calls = t.h.next_messages(4).await;
    let texts: Vec<&str> = calls.iter().map(crate::harness::text).collect();
    assert!(
        texts.iter().any(|t| t.ends_with(
            "Task: Write the story\nYou got the task! Task 1 is yours; the team is in <#G0PROJ>."
        )) && texts
            .iter()
            .any(|t| t
                .ends_with("Task: Write the story\nThis task has been taken by another expert.")),
        "{texts:?}"
    );
    t.h.finish().await;
}

#[tokio::test]
async fn a_check_script_that_sleeps_fails_its_project_at_once() {
    let t = TestDb::new().await;
    let db = &t.db;
    let version = scripted(db, "sleep(3600); [\"ok\"]", &["ok"]).await;
    project(db, &version, "P", json!({}), Utc::now()).await;
    let r = tokio::time::timeout(Duration::from_secs(10), sanity(db, Utc::now()))
        .await
        .expect("the round does not wait for the script");
    assert_eq!((r.projects, r.checks, r.failed_projects), (1, 0, 1));
}

/// The old rule skipped a version's other projects after 20 limit hits, and retried the same
/// 20 first every round: a healthy project behind them was never checked. Now each project
/// that hits a limit waits longer each time, alone.
#[tokio::test]
async fn projects_that_hit_limits_back_off_alone() {
    let t = TestDb::new().await;
    let db = &t.db;
    let version = scripted(
        db,
        r#"if project.data.spin == true { loop { } } ["ok"]"#,
        &["ok"],
    )
    .await;
    let now = Utc::now();
    for n in 0..21 {
        project(
            db,
            &version,
            &format!("spin {n}"),
            json!({"spin": true}),
            now,
        )
        .await;
    }
    let healthy = project(db, &version, "healthy", json!({}), now).await;
    let r = sanity(db, now).await;
    assert_eq!((r.projects, r.checks, r.failed_projects), (22, 1, 21));
    let fired: Vec<i64> = crate::common::all::<sanity_check::Entity>(db)
        .await
        .into_iter()
        .map(|c| c.project_id)
        .collect();
    assert_eq!(fired, [healthy]);
    // The next rounds skip the spinning projects until their backoff (10 min, then 20) ends.
    let r = sanity(db, now + chrono::Duration::minutes(5)).await;
    assert_eq!((r.projects, r.failed_projects), (1, 0));
    let r = sanity(db, now + chrono::Duration::minutes(11)).await;
    assert_eq!((r.projects, r.failed_projects), (22, 21));
    let r = sanity(db, now + chrono::Duration::minutes(25)).await;
    assert_eq!((r.projects, r.failed_projects), (1, 0));
    let waiting = crate::common::all::<staffbot::db::entities::project::Entity>(db).await;
    assert_eq!(waiting.len(), 22);
    assert_eq!(
        staffbot::sanity::limit_backoff(2),
        chrono::Duration::minutes(20)
    );
    assert_eq!(
        staffbot::sanity::limit_backoff(40),
        chrono::Duration::days(1)
    );
}

#[test]
fn scripts_cannot_lead_out_of_their_version_directory() {
    let checks = json!({"sanity_check_function": {"path": "script:c.rhai"},
                        "check_configurations": {"a": {"handlers": []}}});
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("c.rhai"), "[]").expect("write");
    std::fs::create_dir(outside.path().join("lib")).expect("mkdir");
    std::fs::write(outside.path().join("lib/c.rhai"), "[]").expect("write");
    for target in [
        Path::new("/etc/passwd").to_path_buf(),
        outside.path().join("c.rhai"),
    ] {
        let dir = flow(&["writer"], vec![step("draft", "writer")])
            .with("sanity_checks", checks.clone())
            .dir();
        std::os::unix::fs::symlink(&target, dir.path().join("v1/c.rhai")).expect("link");
        let err = definition::read(dir.path()).expect_err("a link out").0;
        assert!(
            err.contains("c.rhai\" leads outside the version's directory"),
            "{err}"
        );
    }
    // A directory link: `lib/c.rhai` through `v1/lib -> elsewhere`.
    let dir = flow(&["writer"], vec![step("draft", "writer")])
        .with(
            "sanity_checks",
            json!({"sanity_check_function": {"path": "script:lib/c.rhai"},
                   "check_configurations": {"a": {"handlers": []}}}),
        )
        .dir();
    std::os::unix::fs::symlink(outside.path().join("lib"), dir.path().join("v1/lib"))
        .expect("link");
    let err = definition::read(dir.path())
        .expect_err("a directory link out")
        .0;
    assert!(
        err.contains("leads outside the version's directory"),
        "{err}"
    );
    // A link that stays inside is fine.
    let dir = flow(&["writer"], vec![step("draft", "writer")])
        .with("sanity_checks", checks.clone())
        .file("real.rhai", "[]")
        .dir();
    std::os::unix::fs::symlink("real.rhai", dir.path().join("v1/c.rhai")).expect("link");
    assert!(definition::read(dir.path()).is_ok());
    // Not a .rhai file: refused where version.json names it.
    let dir = flow(&["writer"], vec![step("draft", "writer")])
        .with(
            "sanity_checks",
            json!({"sanity_check_function": {"path": "script:checks.py"},
                   "check_configurations": {"a": {"handlers": []}}}),
        )
        .file("checks.py", "[]")
        .dir();
    let err = definition::read(dir.path()).expect_err("not rhai").0;
    assert!(
        err.contains("version.json, line ") && err.contains("must name a Rhai script"),
        "{err}"
    );
}

/// The peak resident memory (KiB) of `child` as its own program (the high-water mark of its
/// address space after `exec`, read from `/proc` until it exits), and its exit code. (The
/// `ru_maxrss` of `wait4` would count the test process's own memory: the child starts as a
/// copy of it before `exec`.)
fn peak_rss_kib(mut child: std::process::Child) -> (i32, i64) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        {
            peak = peak.max(kib);
        }
        match child.try_wait().expect("wait") {
            Some(status) => return (status.code().unwrap_or(-1), peak),
            // Sampling a high-water mark: a late sample still sees the earlier peak.
            None => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
}

/// A map grown by assignment (`m[k] = v`) is past Rhai's map size limit, and a check script
/// took the daemon past a gigabyte that way. The memory a call holds is capped: 25 such
/// projects in one SanityBot round leave the process small.
#[tokio::test]
async fn hostile_check_scripts_keep_the_process_small() {
    let t = TestDb::new().await;
    let db = &t.db;
    let version = scripted(
        db,
        r#"let v = "v"; v.pad(20000, "x"); let m = #{}; let i = 0; loop { m["k" + i] = v + i; i += 1; }"#,
        &["ok"],
    )
    .await;
    for n in 0..25 {
        project(db, &version, &format!("hostile {n}"), json!({}), Utc::now()).await;
    }
    let fake = slack_sim::FakeSlack::start(slack_sim::FakeSlackConfig::default()).await;
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = crate::process::staffbot(&fake, &t.url, "xoxb-test", "xapp-test")
        .args(["tick", "sanity"])
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("spawn");
    let (code, peak) = tokio::task::spawn_blocking(move || peak_rss_kib(child))
        .await
        .expect("join");
    let logged = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert_eq!(code, 0, "{logged}");
    assert!(
        peak < 120 * 1024,
        "peak RSS {} MiB; the log:\n{logged}",
        peak / 1024
    );
    assert_eq!(
        logged.matches("limit hit: held more than 16 MiB").count(),
        25,
        "{logged}"
    );
    let projects = crate::common::all::<staffbot::db::entities::project::Entity>(db).await;
    assert_eq!(projects.len(), 25);
}

/// A script that prints in a loop, or returns thousands of slugs nobody configured, wrote a
/// log line for each. Now a call logs its first 20 printed lines (control characters removed)
/// and one line for the rest, and the unconfigured slugs are one line per project and round.
#[tokio::test]
async fn a_script_cannot_flood_the_log() {
    let (tap, _guard) = crate::faults::LogTap::install("staffbot=info");
    let t = TestDb::new().await;
    let db = &t.db;
    let version = scripted(
        db,
        "let out = [\"ok\"];\n\
         for i in 0..5000 { print(\"line \" + i + \" \\x1b[31mred\"); out.push(`g${i}`); }\n\
         out",
        &["ok"],
    )
    .await;
    let id = project(db, &version, "P", json!({}), Utc::now()).await;
    // Evaluated here, on this thread, so that the tap sees the script's lines.
    let round = staffbot::sanity::Round::read(db, staffbot::db::sanity::Checked::Project(id))
        .await
        .expect("round");
    let plan = staffbot::sanity::plan(&round, &round.projects[0], Utc::now()).expect("plan");
    assert_eq!(plan.returned.len(), 5001);
    let log = tap.text();
    let printed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("script print: "))
        .collect();
    assert_eq!(printed.len(), 20, "{log}");
    assert!(
        printed[0].contains("script print: line 0 red"),
        "{}",
        printed[0]
    );
    assert!(!log.contains('\x1b'), "no terminal escapes reach the log");
    assert!(log.contains("5000 lines printed in one call; the first 20 were logged"));
    let ghosts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no check_configurations entry"))
        .collect();
    assert_eq!(ghosts.len(), 1, "{log}");
    assert!(
        ghosts[0].contains("5000 slug(s)")
            && ghosts[0].contains("g0, g1, g2, g3, g4 and 4995 more"),
        "{}",
        ghosts[0]
    );
}

/// SanityBot loaded every project's data each round, even for checks that never read it.
#[tokio::test]
async fn sanitybot_loads_project_data_only_for_a_script_that_reads_it() {
    let t = TestDb::new().await;
    let db = &t.db;
    let data = json!({"notes": "x".repeat(60_000)});
    let blind = scripted(
        db,
        r#"if project.tasks.is_empty() { [] } else { ["ok"] }"#,
        &["ok"],
    )
    .await;
    let reads = flow(&["editor"], vec![step("edit", "editor")])
        .named("reader", "Reader")
        .with(
            "sanity_checks",
            json!({"sanity_check_function": {"path": "script:checks.rhai"},
                   "check_configurations": {}}),
        )
        .file(
            "checks.rhai",
            r#"if project.data.notes.len() > 10 { [] } else { [] }"#,
        )
        .load(db)
        .await;
    let blind_id = project(db, &blind, "blind", data.clone(), Utc::now()).await;
    let reads_id = project(db, &reads, "reads", data.clone(), Utc::now()).await;
    let round = staffbot::sanity::Round::read(db, staffbot::db::sanity::Checked::Running)
        .await
        .expect("round");
    let loaded = |id: i64| {
        round
            .projects
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.project_data.is_some())
    };
    assert_eq!(loaded(blind_id), Some(false));
    assert_eq!(loaded(reads_id), Some(true));
    let r = sanity(db, Utc::now()).await;
    assert_eq!((r.projects, r.failed_projects), (2, 0));
}
