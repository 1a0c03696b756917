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
            "step edit: machine steps (is_human: false) are not supported by staffbot",
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
            "step edit: detailed_description_function: unknown placeholder {{ task.colour }} in template",
        ),
        (
            with_step_key("assignable_hours_function", json!({"path": "x.y"})),
            "step edit: \"assignable_hours_function\" is not supported by staffbot",
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
            json!({"path": "my_project.describe"}),
        ),
    );
    assert!(
        err.contains("\"my_project.describe\"") && err.contains("staffbot.template"),
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
