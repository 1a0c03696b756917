//! Orchestra function paths mapped to staffbot built-ins (design.md §5.4).
//!
//! Orchestra names Python functions by dotted path; staffbot accepts the same paths (or their
//! last segment) and maps them to typed built-ins at load time. An unknown path is a load error
//! that names it and lists the built-ins of its kind.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::script::{self, Purpose, SCRIPT_PREFIX, ScriptSource};
use super::template::{DescriptionInput, Template};
use crate::messages::Details;

/// README section on porting Orchestra's Python functions, which load errors link to.
pub const PORTING_HELP: &str = "Orchestra's Python functions do not run in staffbot: port it to a Rhai script (\"path\": \"script:<file>.rhai\", beside version.json) or, for a description, a staffbot.template; see README.md#custom-checks-and-descriptions (\"Custom checks and descriptions\")";

/// Turns `{"path": P, "kwargs": {...}}` into (canonical short name, kwargs), given the known
/// names of a kind of function as `(short name, orchestra path)` pairs.
pub fn resolve_path<'a>(
    path: &str,
    known: &'a [(&'a str, &'a str)],
    kind: &str,
) -> Result<&'a str, String> {
    known
        .iter()
        .find(|(short, full)| path == *short || path == *full)
        .map(|(short, _)| *short)
        .ok_or_else(|| {
            let list: Vec<&str> = known.iter().map(|(_, full)| *full).collect();
            format!(
                "unknown {kind} function path {path:?}; the built-ins are: {}",
                list.join(", ")
            )
        })
}

pub const ASSIGNMENT_POLICIES: &[(&str, &str)] = &[
    (
        "anyone_certified",
        "orchestra.assignment_policies.anyone_certified",
    ),
    (
        "specified_worker",
        "orchestra.assignment_policies.specified_worker",
    ),
    (
        "previously_completed_steps",
        "orchestra.assignment_policies.previously_completed_steps",
    ),
    (
        "staffbot_autoassign",
        "orchestra.bots.assignment_policies.staffbot_autoassign",
    ),
];

pub const CREATION_POLICIES: &[(&str, &str)] =
    &[("always_create", "orchestra.creation_policies.always_create")];

pub const DESCRIPTION_FUNCTIONS: &[(&str, &str)] = &[("template", "staffbot.template")];

pub const SANITY_FUNCTIONS: &[(&str, &str)] = &[
    ("always", "staffbot.sanity.always"),
    ("task_unstaffed", "staffbot.sanity.task_unstaffed"),
    (
        "task_in_progress_too_long",
        "staffbot.sanity.task_in_progress_too_long",
    ),
    ("review_waiting", "staffbot.sanity.review_waiting"),
];

/// An assignment policy, run when a task is created (`entry_level`) or enters review (`reviewer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum AssignmentPolicy {
    /// Do nothing: the task waits for `/staffbot staff` or `task assign`.
    AnyoneCertified,
    /// Assign this worker.
    SpecifiedWorker { username: String },
    /// Assign whoever did (counter 0 of) one of these steps in the same project.
    PreviouslyCompletedSteps { related_steps: Vec<String> },
    /// Open a staffing request (cause `task_policy`): StaffBot offers the task.
    StaffbotAutoassign,
}

/// Both policies of a step, normalised. A missing key means `anyone_certified` (manual).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAssignmentPolicies {
    pub entry_level: AssignmentPolicy,
    pub reviewer: AssignmentPolicy,
}

impl Default for StepAssignmentPolicies {
    fn default() -> Self {
        StepAssignmentPolicies {
            entry_level: AssignmentPolicy::AnyoneCertified,
            reviewer: AssignmentPolicy::AnyoneCertified,
        }
    }
}

/// Review policy (behaviour §4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum ReviewPolicy {
    NoReview,
    SampledReview { rate: f64, max_reviews: u32 },
}

impl Default for ReviewPolicy {
    /// Orchestra's default for human steps: always reviewed once.
    fn default() -> Self {
        ReviewPolicy::SampledReview {
            rate: 1.0,
            max_reviews: 1,
        }
    }
}

/// The detailed description shown in offers: a template rendered over task details + kwargs,
/// or a script run with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescriptionFunction {
    /// The template (`staffbot.template`); empty for a script.
    #[serde(default)]
    pub template: String,
    /// The script (`script:<file>.rhai`), its source as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptSource>,
    pub kwargs: Map<String, Value>,
}

impl DescriptionFunction {
    pub fn template(&self) -> Result<Template, String> {
        Template::parse(&self.template, self.kwargs.keys().map(String::as_str))
    }

    /// The description of the task `input` describes.
    pub fn render(&self, input: &DescriptionInput) -> Result<Details, String> {
        let Some(source) = &self.script else {
            return self.template()?.render(input, &self.kwargs);
        };
        let value = run_task_script(source, input, &self.kwargs)?;
        let text = script::text_of(&source.file, value).map_err(|e| e.to_string())?;
        Ok(Details::text(text))
    }
}

/// Runs a script about a task (a description's, or an assignable-hours one's): it sees `task`,
/// `step`, `project`, `workflow` and `kwargs`, under the scripts' limits.
fn run_task_script(
    source: &ScriptSource,
    input: &DescriptionInput,
    kwargs: &Map<String, Value>,
) -> Result<rhai::Dynamic, String> {
    let compiled = script::compile(Purpose::Description, source).map_err(|e| e.to_string())?;
    compiled
        .call(vec![
            ("task", script::to_dynamic(&input.task)),
            ("step", script::to_dynamic(&input.step)),
            ("project", script::to_dynamic(&input.project)),
            ("workflow", script::to_dynamic(&input.workflow)),
            ("kwargs", script::to_dynamic(kwargs)),
        ])
        .map_err(|e| e.to_string())
}

/// The detailed description a step's stored `detailed_description_function` gives the task
/// `input` describes (`{}`: none).
pub fn describe(function: &Value, input: &DescriptionInput) -> Result<Details, String> {
    if function.as_object().is_none_or(Map::is_empty) {
        return Ok(Details::default());
    }
    let function: DescriptionFunction =
        serde_json::from_value(function.clone()).map_err(|e| e.to_string())?;
    function.render(input)
}

/// The script a `script:<file>` path names, from the version's `scripts` (file name to
/// source), compiled for `purpose` to report its errors now.
pub fn resolve_script(
    path: &str,
    scripts: &std::collections::BTreeMap<String, String>,
    purpose: Purpose,
) -> Result<ScriptSource, String> {
    let file = path.strip_prefix(SCRIPT_PREFIX).unwrap_or(path);
    let source = scripts
        .get(file)
        .ok_or_else(|| format!("script {file} was not read (is it beside version.json?)"))?;
    let script = ScriptSource {
        file: file.to_string(),
        source: source.clone(),
    };
    script::compile(purpose, &script).map_err(|e| format!("script {e}"))?;
    Ok(script)
}

fn kwargs_of(spec: &Value) -> Result<Map<String, Value>, String> {
    match spec.get("kwargs") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err("kwargs must be an object".to_string()),
    }
}

fn path_of(spec: &Value) -> Result<&str, String> {
    match spec.get("path") {
        Some(Value::String(p)) => Ok(p.as_str()),
        _ => Err("missing \"path\"".to_string()),
    }
}

/// Parses one `{path, kwargs}` assignment policy spec.
pub fn parse_assignment_policy(spec: &Value) -> Result<AssignmentPolicy, String> {
    let name = resolve_path(path_of(spec)?, ASSIGNMENT_POLICIES, "assignment policy")?;
    let kwargs = kwargs_of(spec)?;
    Ok(match name {
        "anyone_certified" => AssignmentPolicy::AnyoneCertified,
        "staffbot_autoassign" => AssignmentPolicy::StaffbotAutoassign,
        "specified_worker" => match kwargs.get("username") {
            Some(Value::String(u)) if !u.is_empty() => AssignmentPolicy::SpecifiedWorker {
                username: u.clone(),
            },
            _ => return Err("specified_worker needs kwargs.username (a string)".to_string()),
        },
        "previously_completed_steps" => {
            let steps: Vec<String> = match kwargs.get("related_steps") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("related_steps must be a list of step slugs")?,
                None => Vec::new(),
                Some(_) => return Err("related_steps must be a list of step slugs".to_string()),
            };
            if steps.is_empty() {
                return Err("No related steps given".to_string());
            }
            AssignmentPolicy::PreviouslyCompletedSteps {
                related_steps: steps,
            }
        }
        _ => unreachable!("resolve_path only returns listed names"),
    })
}

/// Parses a step's `review_policy`; any deviation is Orchestra's "Review policy incorrectly
/// specified." (caught at load time here, not at the first submit).
pub fn parse_review_policy(spec: &Value) -> Result<ReviewPolicy, String> {
    const MSG: &str = "Review policy incorrectly specified.";
    match spec.get("policy").and_then(Value::as_str) {
        Some("no_review") => Ok(ReviewPolicy::NoReview),
        Some("sampled_review") => {
            let rate = spec.get("rate").and_then(Value::as_f64).ok_or(MSG)?;
            let max_reviews = spec.get("max_reviews").and_then(Value::as_u64).ok_or(MSG)?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{MSG} (rate must be between 0 and 1)"));
            }
            Ok(ReviewPolicy::SampledReview {
                rate,
                max_reviews: u32::try_from(max_reviews).map_err(|_| MSG)?,
            })
        }
        _ => Err(MSG.to_string()),
    }
}

/// Parses `detailed_description_function`; `{}` means no details. `scripts` are the version's
/// script sources by file name.
pub fn parse_description_function(
    spec: &Value,
    scripts: &std::collections::BTreeMap<String, String>,
) -> Result<Option<DescriptionFunction>, String> {
    if spec.as_object().is_some_and(Map::is_empty) || spec.is_null() {
        return Ok(None);
    }
    if let Some(path) = path_of(spec)?.strip_prefix(SCRIPT_PREFIX) {
        let script = resolve_script(path, scripts, Purpose::Description)?;
        return Ok(Some(DescriptionFunction {
            template: String::new(),
            script: Some(script),
            kwargs: kwargs_of(spec)?,
        }));
    }
    resolve_path(
        path_of(spec)?,
        DESCRIPTION_FUNCTIONS,
        "detailed description",
    )?;
    let mut kwargs = kwargs_of(spec)?;
    let template = match kwargs.remove("template") {
        Some(Value::String(t)) => t,
        _ => return Err("staffbot.template needs kwargs.template (a string)".to_string()),
    };
    let function = DescriptionFunction {
        template,
        script: None,
        kwargs,
    };
    function.template()?;
    Ok(Some(function))
}

/// `assignable_hours_function`'s built-ins: `staffbot.hours` with `kwargs.hours`.
pub const HOURS_FUNCTIONS: &[(&str, &str)] = &[("hours", "staffbot.hours")];

/// Parses `assignable_hours_function` (not a Python path: the caller notes those) into what
/// is stored with the step: `{"path": "staffbot.hours", "kwargs": {"hours": H}}`, or for a
/// script `{"path": "script:<file>", "kwargs": {...}, "script": {file, source}}` (the source
/// travels with the step, as a description script's does).
pub fn parse_hours_function(
    spec: &Value,
    scripts: &std::collections::BTreeMap<String, String>,
) -> Result<Value, String> {
    let kwargs = kwargs_of(spec)?;
    let path = path_of(spec)?;
    if let Some(file) = path.strip_prefix(SCRIPT_PREFIX) {
        let script = resolve_script(file, scripts, Purpose::Description)?;
        return Ok(serde_json::json!({
            "path": path,
            "kwargs": kwargs,
            "script": serde_json::to_value(script).map_err(|e| e.to_string())?,
        }));
    }
    resolve_path(path, HOURS_FUNCTIONS, "assignable hours")?;
    match kwargs.get("hours").and_then(Value::as_f64) {
        Some(h) if (0.0..=24.0).contains(&h) => Ok(serde_json::json!({
            "path": "staffbot.hours",
            "kwargs": {"hours": h},
        })),
        _ => Err("staffbot.hours needs kwargs.hours (a number of hours, 0 to 24)".to_string()),
    }
}

/// The hours a task of a step takes, from the step's stored `assignable_hours_function` and
/// the task `input` describes. `Ok(None)`: no hours known (no function, or one of Orchestra's
/// Python paths), so nobody is auto-staffed for it. A script runs under its limits; its error
/// (or a result that is not a number of hours, 0 to 24) is `Err`.
pub fn task_hours(function: &Value, input: &DescriptionInput) -> Result<Option<f64>, String> {
    if let Some(script) = function.get("script").filter(|s| !s.is_null()) {
        let script: ScriptSource =
            serde_json::from_value(script.clone()).map_err(|e| e.to_string())?;
        let value = run_task_script(&script, input, &kwargs_of(function)?)?;
        if value.is_unit() {
            return Ok(None);
        }
        let hours = value
            .as_float()
            .ok()
            .or_else(|| value.as_int().ok().map(|i| i as f64))
            .filter(|h| (0.0..=24.0).contains(h))
            .ok_or_else(|| {
                format!(
                    "script {} returned {value}, not a number of hours (0 to 24)",
                    script.file
                )
            })?;
        return Ok(Some(hours));
    }
    match function.get("path").and_then(Value::as_str) {
        Some("staffbot.hours") => Ok(function
            .get("kwargs")
            .and_then(|k| k.get("hours"))
            .and_then(Value::as_f64)),
        _ => Ok(None),
    }
}

/// Checks `creation_policy`; only "always create" exists.
pub fn check_creation_policy(spec: &Value) -> Result<(), String> {
    if spec.as_object().is_some_and(Map::is_empty) || spec.is_null() {
        return Ok(());
    }
    let function = spec
        .get("policy_function")
        .ok_or("creation_policy needs \"policy_function\"")?;
    resolve_path(path_of(function)?, CREATION_POLICIES, "creation policy")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assignable_hours_from_the_builtin_a_script_or_nothing() {
        let input = DescriptionInput::default();
        let none = std::collections::BTreeMap::new();
        let fixed = parse_hours_function(
            &json!({"path": "staffbot.hours", "kwargs": {"hours": 2.5}}),
            &none,
        )
        .expect("the built-in");
        assert_eq!(task_hours(&fixed, &input), Ok(Some(2.5)));
        let err =
            parse_hours_function(&json!({"path": "staffbot.hours"}), &none).expect_err("no hours");
        assert!(err.contains("kwargs.hours"), "{err}");
        let scripts: std::collections::BTreeMap<String, String> = [
            ("hours.rhai".to_string(), "kwargs.base + 0.5".to_string()),
            ("words.rhai".to_string(), "\"two\"".to_string()),
        ]
        .into();
        let script = parse_hours_function(
            &json!({"path": "script:hours.rhai", "kwargs": {"base": 3}}),
            &scripts,
        )
        .expect("a script");
        assert_eq!(task_hours(&script, &input), Ok(Some(3.5)));
        let words = parse_hours_function(&json!({"path": "script:words.rhai"}), &scripts)
            .expect("a script");
        let err = task_hours(&words, &input).expect_err("not a number");
        assert!(err.contains("not a number of hours"), "{err}");
        // Orchestra's Python paths are stored as written and give no hours.
        assert_eq!(
            task_hours(&json!({"path": "press.v1.hours", "kwargs": {}}), &input),
            Ok(None)
        );
    }

    #[test]
    fn paths_and_short_names_resolve() {
        let p = parse_assignment_policy(
            &json!({"path": "orchestra.bots.assignment_policies.staffbot_autoassign"}),
        );
        assert_eq!(p, Ok(AssignmentPolicy::StaffbotAutoassign));
        let p = parse_assignment_policy(
            &json!({"path": "specified_worker", "kwargs": {"username": "alice"}}),
        );
        assert_eq!(
            p,
            Ok(AssignmentPolicy::SpecifiedWorker {
                username: "alice".into()
            })
        );
    }

    #[test]
    fn unknown_paths_list_the_builtins() {
        let err =
            parse_assignment_policy(&json!({"path": "my.custom.policy"})).expect_err("unknown");
        assert!(err.contains("\"my.custom.policy\""), "{err}");
        assert!(
            err.contains("orchestra.bots.assignment_policies.staffbot_autoassign"),
            "{err}"
        );
    }

    #[test]
    fn review_policies() {
        assert_eq!(
            parse_review_policy(&json!({"policy": "no_review"})),
            Ok(ReviewPolicy::NoReview)
        );
        assert_eq!(
            parse_review_policy(
                &json!({"policy": "sampled_review", "rate": 0.5, "max_reviews": 2})
            ),
            Ok(ReviewPolicy::SampledReview {
                rate: 0.5,
                max_reviews: 2
            })
        );
        for bad in [
            json!({"policy": "sampled_review", "rate": 1}),
            json!({"policy": "sampled_review", "max_reviews": 1}),
            json!({"policy": "peer_review"}),
            json!({}),
        ] {
            assert_eq!(
                parse_review_policy(&bad),
                Err("Review policy incorrectly specified.".to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn related_steps_required() {
        let err = parse_assignment_policy(&json!({"path": "previously_completed_steps"}))
            .expect_err("no steps");
        assert_eq!(err, "No related steps given");
    }
}
