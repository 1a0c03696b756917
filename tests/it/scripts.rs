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
