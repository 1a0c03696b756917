//! Loading Orchestra's workflow layout: a valid directory, every validation error (Orchestra's
//! texts where it has them), unknown function paths, and `--force`.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use staffbot::db::entities::{
    certification, step, step_certification, step_dependency, workflow_version,
};
use staffbot::workflow::definition::{self, LoadError};
use staffbot::workflow::functions::{AssignmentPolicy, ReviewPolicy};
use staffbot::workflow::load::{self, StoreError, VersionOutcome};

use crate::common::{TestDb, example_dir, t0, write_workflow};

fn base_workflow() -> Value {
    json!({
        "slug": "wf", "name": "Workflow", "description": "A workflow",
        "certifications": [
            {"slug": "writer", "name": "Writer"},
            {"slug": "editor", "name": "Editor", "required_certifications": ["writer"]}
        ]
    })
}

fn base_version() -> Value {
    json!({
        "slug": "v1", "name": "Version 1", "description": "",
        "steps": [
            {"slug": "draft", "name": "Draft", "description": "Write it",
             "required_certifications": ["writer"]},
            {"slug": "edit", "name": "Edit", "description": "Edit it",
             "creation_depends_on": ["draft"], "required_certifications": ["editor"],
             "review_policy": {"policy": "no_review"}}
        ]
    })
}

fn read_err(workflow: &Value, version: &Value) -> String {
    let dir = write_workflow(workflow, &[("v1", version.clone())]);
    match definition::read(dir.path()) {
        Err(LoadError(message)) => message,
        Ok(def) => panic!("expected a load error, got {def:?}"),
    }
}

fn with_step_key(key: &str, value: Value) -> Value {
    let mut v = base_version();
    v["steps"][1][key] = value;
    v
}

#[test]
fn the_example_workflow_is_valid() {
    let def = definition::read(&example_dir()).expect("valid");
    assert_eq!(def.slug, "newsroom");
    assert_eq!(def.versions.len(), 1);
    let steps = &def.versions[0].steps;
    let slugs: Vec<&str> = steps.iter().map(|s| s.slug.as_str()).collect();
    assert_eq!(
        slugs,
        ["planning", "reporting", "photography", "copy_editing"]
    );
    let reporting = &steps[1];
    assert_eq!(
        reporting.assignment_policy.entry_level,
        AssignmentPolicy::StaffbotAutoassign
    );
    assert_eq!(
        reporting.assignment_policy.reviewer,
        AssignmentPolicy::StaffbotAutoassign
    );
    assert_eq!(
        reporting.review_policy,
        ReviewPolicy::SampledReview {
            rate: 1.0,
            max_reviews: 1
        }
    );
    assert!(reporting.detailed_description.is_some());
    // Defaults: a human step without policies is manual and reviewed once.
    let photography = &steps[2];
    assert_eq!(
        photography.assignment_policy.entry_level,
        AssignmentPolicy::AnyoneCertified
    );
    assert!(def.versions[0].sanity_checks.is_some());
}

#[test]
fn defaults_of_a_minimal_step() {
    let dir = write_workflow(&base_workflow(), &[("v1", base_version())]);
    let def = definition::read(dir.path()).expect("valid");
    let draft = &def.versions[0].steps[0];
    assert_eq!(
        draft.review_policy,
        ReviewPolicy::SampledReview {
            rate: 1.0,
            max_reviews: 1
        }
    );
    assert_eq!(
        draft.assignment_policy.entry_level,
        AssignmentPolicy::AnyoneCertified
    );
    assert_eq!(
        draft.assignment_policy.reviewer,
        AssignmentPolicy::AnyoneCertified
    );
    assert!(draft.detailed_description.is_none());
    assert!(!draft.completion_ends_project);
}

#[test]
fn directory_errors() {
    let missing = definition::read(std::path::Path::new("/nonexistent/staffbot/wf"));
    assert_eq!(
        missing,
        Err(LoadError("Workflow directory does not exist.".into()))
    );

    let empty = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        definition::read(empty.path()),
        Err(LoadError(
            "No \"workflow.json\" manifest file found.".into()
        ))
    );

    let no_versions = write_workflow(&base_workflow(), &[]);
    assert_eq!(
        definition::read(no_versions.path()),
        Err(LoadError(format!(
            "Workflow directory {} does not contain any versions",
            no_versions.path().display()
        )))
    );

    let bad_json = write_workflow(&base_workflow(), &[("v1", base_version())]);
    std::fs::write(bad_json.path().join("v1/version.json"), "{ not json").expect("write");
    let err = definition::read(bad_json.path()).expect_err("bad JSON");
    assert!(err.0.starts_with("invalid JSON in "), "{err}");
}

#[test]
fn certification_errors() {
    let mut wf = base_workflow();
    wf["certifications"][1]["required_certifications"] = json!(["ghost"]);
    assert_eq!(
        read_err(&wf, &base_version()),
        "Certification editor requires non-existent certification."
    );
}

#[test]
fn relation_errors_name_the_step_and_relation() {
    for (key, value, expected) in [
        (
            "creation_depends_on",
            json!(["ghost"]),
            "edit.creation_depends_on contains a non-existent slug.",
        ),
        (
            "submission_depends_on",
            json!(["ghost"]),
            "edit.submission_depends_on contains a non-existent slug.",
        ),
        (
            "required_certifications",
            json!(["ghost"]),
            "edit.required_certifications contains a non-existent slug.",
        ),
    ] {
        let err = read_err(&base_workflow(), &with_step_key(key, value));
        assert!(err.ends_with(expected), "{key}: {err}");
        assert!(err.contains("v1/version.json"), "names the file: {err}");
    }
}

#[test]
fn step_errors() {
    let cases: Vec<(Value, &str)> = vec![
        (
            with_step_key(
                "review_policy",
                json!({"policy": "sampled_review", "rate": 1}),
            ),
            "step edit: Review policy incorrectly specified.",
        ),
        (
            with_step_key("is_human", json!(false)),
            "step edit: a machine step (is_human: false) needs \"execution_function\" with a \"path\"",
        ),
        (
            with_step_key("assignment_policy", json!({"entry_level": {}})),
            "step edit: Assignment policy incorrectly specified. (needs \"policy_function\")",
        ),
        (
            with_step_key(
                "assignment_policy",
                json!({"policy_function": {"entry_level": {"path": "previously_completed_steps"}}}),
            ),
            "step edit: entry_level policy: No related steps given",
        ),
        (
            with_step_key(
                "assignment_policy",
                json!({"policy_function": {"entry_level": {"path": "previously_completed_steps", "kwargs": {"related_steps": ["ghost"]}}}}),
            ),
            "step edit: previously_completed_steps names step ghost, which is not in this version",
        ),
        (
            with_step_key(
                "assignment_policy",
                json!({"policy_function": {"reviewer": {"path": "specified_worker"}}}),
            ),
            "step edit: reviewer policy: specified_worker needs kwargs.username (a string)",
        ),
        (
            with_step_key(
                "detailed_description_function",
                json!({"path": "staffbot.template", "kwargs": {"template": "{{ task.colour }}"}}),
            ),
            "step edit: detailed_description_function: unknown variable {{ task.colour }} in template, line 1, column 4",
        ),
        (
            with_step_key("creation_depends_on", json!(["edit"])),
            "edit.creation_depends_on forms a cycle",
        ),
    ];
    for (version, expected) in cases {
        let err = read_err(&base_workflow(), &version);
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
    let mut dup = base_version();
    dup["steps"][1]["slug"] = json!("draft");
    assert!(read_err(&base_workflow(), &dup).ends_with("Step draft is defined twice."));
}

#[test]
fn unknown_function_paths_are_named_with_the_builtins() {
    let err = read_err(
        &base_workflow(),
        &with_step_key(
            "assignment_policy",
            json!({"policy_function": {"entry_level": {"path": "my_project.policies.pick_someone"}}}),
        ),
    );
    assert!(
        err.contains(
            "unknown assignment policy function path \"my_project.policies.pick_someone\""
        ),
        "{err}"
    );
    for builtin in [
        "orchestra.assignment_policies.anyone_certified",
        "orchestra.assignment_policies.specified_worker",
        "orchestra.assignment_policies.previously_completed_steps",
        "orchestra.bots.assignment_policies.staffbot_autoassign",
    ] {
        assert!(err.contains(builtin), "{builtin} missing from {err}");
    }

    let err = read_err(
        &base_workflow(),
        &with_step_key(
            "detailed_description_function",
            json!({"path": "staffbot.describe"}),
        ),
    );
    assert!(
        err.contains("\"staffbot.describe\"") && err.contains("staffbot.template"),
        "{err}"
    );

    let err = read_err(
        &base_workflow(),
        &with_step_key(
            "creation_policy",
            json!({"policy_function": {"path": "my.creation"}}),
        ),
    );
    assert!(
        err.contains("orchestra.creation_policies.always_create"),
        "{err}"
    );

    let mut v = base_version();
    v["sanity_checks"] =
        json!({"sanity_check_function": {"path": "my.sanity"}, "check_configurations": {}});
    let err = read_err(&base_workflow(), &v);
    assert!(
        err.contains("sanity_checks: unknown sanity check function path \"my.sanity\""),
        "{err}"
    );
    assert!(err.contains("staffbot.sanity.always"), "{err}");
}

#[test]
fn sanity_checks_are_validated_for_shape() {
    let mut v = base_version();
    v["sanity_checks"] = json!({
        "sanity_check_function": {"path": "staffbot.sanity.always", "kwargs": {"checks": ["nudge"]}},
        "check_configurations": {"nudge": {"handlers": [{"type": "slack_project_channel", "message": "", "steps": ["draft"]}]}}
    });
    let err = read_err(&base_workflow(), &v);
    assert!(err.contains("sanity_checks: Invalid handler: "), "{err}");
}

async fn store(
    db: &sea_orm::DatabaseConnection,
    dir: &std::path::Path,
    force: bool,
) -> Result<Vec<(String, VersionOutcome)>, String> {
    let def = definition::read(dir).map_err(|e| e.0)?;
    match load::store(db, &def, force, t0()).await {
        Ok(summary) => Ok(summary.versions),
        Err(StoreError::Invalid(e)) => Err(e.0),
        Err(StoreError::Db(e)) => panic!("database error: {e}"),
    }
}

#[tokio::test]
async fn storing_the_example_and_reloading() {
    let t = TestDb::new().await;
    let outcome = store(&t.db, &example_dir(), false).await.expect("stored");
    assert_eq!(outcome, vec![("v1".to_string(), VersionOutcome::Created)]);
    assert_eq!(
        certification::Entity::find()
            .count(&t.db)
            .await
            .expect("count"),
        4
    );
    assert_eq!(step::Entity::find().count(&t.db).await.expect("count"), 4);
    // copy_editing depends on reporting and photography; each step needs one certification.
    assert_eq!(
        step_dependency::Entity::find()
            .count(&t.db)
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        step_certification::Entity::find()
            .count(&t.db)
            .await
            .expect("count"),
        4
    );
    let version = workflow_version::Entity::find()
        .one(&t.db)
        .await
        .expect("q")
        .expect("row");
    assert!(version.sanity_checks.is_some());

    // The same files again: nothing to do.
    let outcome = store(&t.db, &example_dir(), false)
        .await
        .expect("idempotent");
    assert_eq!(outcome, vec![("v1".to_string(), VersionOutcome::Unchanged)]);
}

#[tokio::test]
async fn force_rules() {
    let t = TestDb::new().await;
    let dir = write_workflow(&base_workflow(), &[("v1", base_version())]);
    store(&t.db, dir.path(), false).await.expect("first load");

    // A changed version needs --force.
    let mut renamed = base_version();
    renamed["steps"][0]["description"] = json!("Write it well");
    std::fs::write(dir.path().join("v1/version.json"), renamed.to_string()).expect("write");
    let err = store(&t.db, dir.path(), false).await.expect_err("exists");
    assert_eq!(err, "Version v1 already exists (use --force to update it)");
    let outcome = store(&t.db, dir.path(), true).await.expect("forced");
    assert_eq!(outcome, vec![("v1".to_string(), VersionOutcome::Updated)]);
    let draft = step::Entity::find()
        .filter(step::Column::Slug.eq("draft"))
        .one(&t.db)
        .await
        .expect("q")
        .expect("row");
    assert_eq!(draft.description, "Write it well");

    // Adding a step is fine with --force.
    let mut added = renamed.clone();
    added["steps"].as_array_mut().expect("steps").push(json!(
        {"slug": "publish", "name": "Publish", "creation_depends_on": ["edit"], "required_certifications": ["editor"]}
    ));
    std::fs::write(dir.path().join("v1/version.json"), added.to_string()).expect("write");
    store(&t.db, dir.path(), true).await.expect("step added");
    let slugs: Vec<String> = step::Entity::find()
        .order_by_asc(step::Column::Position)
        .all(&t.db)
        .await
        .expect("q")
        .into_iter()
        .map(|s| s.slug)
        .collect();
    assert_eq!(slugs, ["draft", "edit", "publish"]);

    // Removing a step or rewiring one is refused, even with --force.
    std::fs::write(dir.path().join("v1/version.json"), renamed.to_string()).expect("write");
    let err = store(&t.db, dir.path(), true).await.expect_err("removed");
    assert!(
        err.starts_with("Even with --force, you cannot remove steps from a workflow."),
        "{err}"
    );
    let mut rewired = added.clone();
    rewired["steps"][1]["creation_depends_on"] = json!([]);
    std::fs::write(dir.path().join("v1/version.json"), rewired.to_string()).expect("write");
    let err = store(&t.db, dir.path(), true).await.expect_err("rewired");
    assert!(
        err.starts_with("Even with --force, you cannot change the topology of a workflow."),
        "{err}"
    );
}

/// Orchestra's shape: a machine step first, human steps, a machine step in the middle, with
/// the keys Orchestra's own examples use (UI settings, sample data, Python functions).
fn machine_workflow() -> (Value, Value) {
    let workflow = json!({
        "slug": "press", "name": "Press", "description": "Articles",
        "certifications": [{"slug": "writer", "name": "Writer"}],
        "sample_data_load_function": {"path": "press.load_sample_data.load"}
    });
    let version = json!({
        "slug": "v1", "name": "V1", "description": "",
        "steps": [
            {"slug": "setup", "name": "Setup", "description": "Create folders", "is_human": false,
             "execution_function": {"path": "press.v1.setup.create", "kwargs": {"size": 2}},
             "detailed_description_function": {"path": "press.describe.setup"}},
            {"slug": "write", "name": "Write", "description": "Write it", "is_human": true,
             "creation_depends_on": ["setup"], "required_certifications": ["writer"],
             "review_policy": {"policy": "no_review"},
             "assignable_hours_function": {"path": "press.v1.hours", "kwargs": {}},
             "detailed_description_function": {"path": "press.describe.write", "kwargs": {"x": 1}},
             "user_interface": {"angular_module": "press.v1.write"}},
            {"slug": "resize", "name": "Resize", "description": "Resize photos", "is_human": false,
             "creation_depends_on": ["write"],
             "execution_function": {"path": "press.v1.photos.resize"}}
        ]
    });
    (workflow, version)
}

#[tokio::test]
async fn machine_steps_and_orchestras_other_keys_load_with_notes() {
    let (workflow, version) = machine_workflow();
    let dir = write_workflow(&workflow, &[("v1", version)]);
    let def = definition::read(dir.path()).expect("loads");
    let steps = &def.versions[0].steps;
    assert!(!steps[0].is_human && steps[1].is_human && !steps[2].is_human);
    let setup = steps[0].execution_function.as_ref().expect("machine step");
    assert_eq!(setup.path, "press.v1.setup.create");
    assert_eq!(setup.kwargs["size"], 2);
    assert!(steps[1].execution_function.is_none());
    // A Python detailed description falls back to the step's description.
    let write = steps[1].detailed_description.as_ref().expect("fallback");
    assert_eq!(write.template, "Write it");
    for expected in [
        "workflow.json: \"sample_data_load_function\" is ignored",
        "version v1: step write: \"user_interface\" is ignored",
        "version v1: step write: assignable_hours_function \"press.v1.hours\" is a Python function: no hours are known for its tasks, so nobody is auto-staffed",
        "version v1: step write: detailed_description_function \"press.describe.write\" is a Python function; offers show the step's description instead",
        "version v1: step setup: detailed_description_function \"press.describe.setup\" is a Python function",
    ] {
        assert!(
            def.notes.iter().any(|n| n.starts_with(expected)),
            "no note {expected:?} in {:#?}",
            def.notes
        );
    }

    let t = TestDb::new().await;
    load::store(&t.db, &def, false, t0()).await.expect("stored");
    let rows = step::Entity::find()
        .order_by_asc(step::Column::Position)
        .all(&t.db)
        .await
        .expect("steps");
    let machine: Vec<(&str, bool)> = rows.iter().map(|s| (s.slug.as_str(), s.is_human)).collect();
    assert_eq!(
        machine,
        vec![("setup", false), ("write", true), ("resize", false)]
    );
    assert_eq!(
        rows[0].execution_function,
        Some(json!({"path": "press.v1.setup.create", "kwargs": {"size": 2}}))
    );
    assert_eq!(
        rows[1].assignable_hours_function,
        Some(json!({"path": "press.v1.hours", "kwargs": {}}))
    );
    assert_eq!(rows[1].execution_function, None);
}

#[test]
fn machine_step_errors() {
    let (workflow, version) = machine_workflow();
    let mut no_function = version.clone();
    no_function["steps"][2]
        .as_object_mut()
        .expect("object")
        .remove("execution_function");
    let mut with_policy = version.clone();
    with_policy["steps"][0]["assignment_policy"] =
        json!({"policy_function": {"entry_level": {"path": "anyone_certified"}}});
    let mut related = version.clone();
    related["steps"][1]["assignment_policy"] = json!({"policy_function": {"entry_level":
        {"path": "previously_completed_steps", "kwargs": {"related_steps": ["setup"]}}}});
    let mut no_path = version;
    no_path["steps"][0]["execution_function"] = json!({"kwargs": {}});
    for (v, expected) in [
        (
            no_function,
            "step resize: a machine step (is_human: false) needs \"execution_function\" with a \"path\"",
        ),
        (
            with_policy,
            "step setup: Machine step should not have assignment policy.",
        ),
        (
            related,
            "step write: Machine step should not be member of assignment policy",
        ),
        (
            no_path,
            "step setup: execution_function needs \"path\" (a string)",
        ),
    ] {
        let err = read_err(&workflow, &v);
        assert!(
            err.ends_with(expected),
            "expected {expected:?}, got {err:?}"
        );
    }
}

#[tokio::test]
async fn force_cannot_turn_a_human_step_into_a_machine_step() {
    let (workflow, version) = machine_workflow();
    let t = TestDb::new().await;
    let dir = write_workflow(&workflow, &[("v1", version.clone())]);
    let def = definition::read(dir.path()).expect("loads");
    load::store(&t.db, &def, false, t0()).await.expect("stored");
    let mut changed = version;
    changed["steps"][1]["is_human"] = json!(false);
    changed["steps"][1]["execution_function"] = json!({"path": "press.v1.write"});
    changed["steps"][1]
        .as_object_mut()
        .expect("object")
        .remove("required_certifications");
    let dir = write_workflow(&workflow, &[("v1", changed)]);
    let def = definition::read(dir.path()).expect("loads");
    match load::store(&t.db, &def, true, t0()).await {
        Err(StoreError::Invalid(LoadError(m))) => {
            assert!(
                m.contains("cannot turn step write from a human step into a machine step"),
                "{m}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
