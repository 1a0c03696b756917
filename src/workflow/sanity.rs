//! SanityBot's configuration in a workflow version (`sanity_checks`), validated when the
//! workflow is loaded: the built-in check function and the handlers of each check. Running the
//! checks is [`crate::sanity`]'s.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use std::collections::BTreeMap;

use crate::config::parse_duration;
use crate::workflow::functions::{PORTING_HELP, SANITY_FUNCTIONS, resolve_path, resolve_script};
use crate::workflow::script::{Purpose, SCRIPT_PREFIX, ScriptSource};

/// A built-in check function with its kwargs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "function", rename_all = "snake_case")]
pub enum SanityFunction {
    /// Emits the listed slugs on every run.
    Always { checks: Vec<String> },
    /// A task awaiting a worker longer than `after` (slug `task_unstaffed`).
    TaskUnstaffed { after_secs: u64 },
    /// A task `processing` longer than `after` (slug `task_in_progress_too_long`).
    TaskInProgressTooLong { after_secs: u64 },
    /// A task `reviewing` longer than `after` (slug `review_waiting`).
    ReviewWaiting { after_secs: u64 },
    /// A team's own script (`script:<file>.rhai`), run with the project, `now` and its kwargs;
    /// it returns the slugs of the checks that fire.
    Script {
        script: ScriptSource,
        #[serde(default)]
        kwargs: Map<String, Value>,
    },
}

impl SanityFunction {
    /// Every slug this function can emit (a script's are known only when it runs).
    pub fn slugs(&self) -> Vec<String> {
        match self {
            SanityFunction::Script { .. } => Vec::new(),
            SanityFunction::Always { checks } => checks.clone(),
            SanityFunction::TaskUnstaffed { .. } => vec!["task_unstaffed".to_string()],
            SanityFunction::TaskInProgressTooLong { .. } => {
                vec!["task_in_progress_too_long".to_string()]
            }
            SanityFunction::ReviewWaiting { .. } => vec!["review_waiting".to_string()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handler {
    pub message: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckConfiguration {
    pub slug: String,
    pub handlers: Vec<Handler>,
    pub repetition_seconds: Option<u64>,
}

/// A version's `sanity_checks`, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityConfig {
    pub function: SanityFunction,
    pub checks: Vec<CheckConfiguration>,
}

fn after_kwarg(kwargs: &Map<String, Value>, name: &str) -> Result<u64, String> {
    match kwargs.get("after") {
        Some(Value::String(s)) => parse_duration(s)
            .map(|d: Duration| d.as_secs())
            .map_err(|e| format!("{name}: kwargs.after: {e}")),
        _ => Err(format!(
            "{name} needs kwargs.after, a duration such as \"2h\" or \"1d\""
        )),
    }
}

/// A list of strings, `None` when it is missing, empty, or holds anything else.
fn non_empty_strings(value: Option<&Value>) -> Option<Vec<String>> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or(None)
        .filter(|c| !c.is_empty())
}

/// `sanity_check_function`: a built-in function's path or a script, and its kwargs.
fn parse_function(
    function_spec: &Value,
    scripts: &BTreeMap<String, String>,
) -> Result<SanityFunction, String> {
    let path = function_spec
        .get("path")
        .and_then(Value::as_str)
        .ok_or("sanity_check_function needs a \"path\"")?;
    let kwargs = match function_spec.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("sanity_check_function kwargs must be an object".to_string()),
    };
    if let Some(file) = path.strip_prefix(SCRIPT_PREFIX) {
        let script = resolve_script(file, scripts, Purpose::SanityCheck)?;
        return Ok(SanityFunction::Script { script, kwargs });
    }
    let name = resolve_path(path, SANITY_FUNCTIONS, "sanity check").map_err(|e| {
        if path.contains('.') && !path.starts_with("staffbot.") {
            format!("{e}. {PORTING_HELP}")
        } else {
            e
        }
    })?;
    Ok(match name {
        "always" => {
            let checks = non_empty_strings(kwargs.get("checks"))
                .ok_or("staffbot.sanity.always needs kwargs.checks, a non-empty list of slugs")?;
            SanityFunction::Always { checks }
        }
        "task_unstaffed" => SanityFunction::TaskUnstaffed {
            after_secs: after_kwarg(&kwargs, path)?,
        },
        "task_in_progress_too_long" => SanityFunction::TaskInProgressTooLong {
            after_secs: after_kwarg(&kwargs, path)?,
        },
        "review_waiting" => SanityFunction::ReviewWaiting {
            after_secs: after_kwarg(&kwargs, path)?,
        },
        _ => unreachable!("resolve_path only returns listed names"),
    })
}

/// One entry of `check_configurations`: its handlers and repetition.
fn parse_check(
    slug: &str,
    conf: &Value,
    step_slugs: &[&str],
) -> Result<CheckConfiguration, String> {
    let handlers_value = conf
        .get("handlers")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("No handlers for {slug}"))?;
    let handlers = handlers_value
        .iter()
        .map(|h| parse_handler(h, step_slugs))
        .collect::<Result<Vec<_>, _>>()?;
    let repetition_seconds =
        match conf.get("repetition_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                format!("{slug}.repetition_seconds must be a non-negative integer")
            })?),
        };
    Ok(CheckConfiguration {
        slug: slug.to_string(),
        handlers,
        repetition_seconds,
    })
}

/// A `slack_project_channel` handler: a message and the steps whose workers it mentions.
fn parse_handler(h: &Value, step_slugs: &[&str]) -> Result<Handler, String> {
    let invalid = || format!("Invalid handler: {h}");
    if h.get("type").and_then(Value::as_str) != Some("slack_project_channel") {
        return Err(invalid());
    }
    let message = h
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(invalid)?;
    let steps = non_empty_strings(h.get("steps")).ok_or_else(invalid)?;
    if let Some(unknown) = steps.iter().find(|s| !step_slugs.contains(&s.as_str())) {
        return Err(format!(
            "Invalid handler: {h} (step {unknown} is not in this version)"
        ));
    }
    Ok(Handler {
        message: message.to_string(),
        steps,
    })
}

impl SanityConfig {
    /// Validates the shape of `sanity_checks`. `None` when the workflow has no checks (`{}` or
    /// absent). `step_slugs` are the version's steps, which handlers may name; `scripts` the
    /// version's script sources by file name.
    pub fn parse(
        value: &Value,
        step_slugs: &[&str],
        scripts: &BTreeMap<String, String>,
    ) -> Result<Option<SanityConfig>, String> {
        let Some(obj) = value.as_object() else {
            return if value.is_null() {
                Ok(None)
            } else {
                Err("sanity_checks must be an object".to_string())
            };
        };
        if obj.is_empty() {
            return Ok(None);
        }
        let function_spec = obj
            .get("sanity_check_function")
            .ok_or("sanity_checks needs \"sanity_check_function\"")?;
        let function = parse_function(function_spec, scripts)?;
        let configurations = obj
            .get("check_configurations")
            .and_then(Value::as_object)
            .ok_or("sanity_checks needs \"check_configurations\", an object keyed by check slug")?;
        let checks = configurations
            .iter()
            .map(|(slug, conf)| parse_check(slug, conf, step_slugs))
            .collect::<Result<Vec<_>, _>>()?;
        for slug in function.slugs() {
            if !checks.iter().any(|c| c.slug == slug) {
                return Err(format!("No configuration for {slug}"));
            }
        }
        Ok(Some(SanityConfig { function, checks }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STEPS: &[&str] = &["draft", "edit"];

    #[test]
    fn a_valid_configuration() {
        let c = SanityConfig::parse(
            &json!({
                "sanity_check_function": {"path": "staffbot.sanity.task_unstaffed", "kwargs": {"after": "2h"}},
                "check_configurations": {
                    "task_unstaffed": {
                        "handlers": [{"type": "slack_project_channel", "message": "Nobody is on it", "steps": ["draft"]}],
                        "repetition_seconds": 3600
                    }
                }
            }),
            STEPS,
            &BTreeMap::new(),
        )
        .expect("valid")
        .expect("present");
        assert_eq!(
            c.function,
            SanityFunction::TaskUnstaffed { after_secs: 7200 }
        );
        assert_eq!(c.checks[0].repetition_seconds, Some(3600));
        assert_eq!(
            SanityConfig::parse(&json!({}), STEPS, &BTreeMap::new()),
            Ok(None)
        );
    }

    #[test]
    fn shape_errors() {
        let base = |conf: Value| {
            json!({
                "sanity_check_function": {"path": "staffbot.sanity.always", "kwargs": {"checks": ["a"]}},
                "check_configurations": conf
            })
        };
        let err =
            SanityConfig::parse(&base(json!({})), STEPS, &BTreeMap::new()).expect_err("missing");
        assert_eq!(err, "No configuration for a");
        let err = SanityConfig::parse(&base(json!({"a": {}})), STEPS, &BTreeMap::new())
            .expect_err("no handlers");
        assert_eq!(err, "No handlers for a");
        let err = SanityConfig::parse(
            &base(
                json!({"a": {"handlers": [{"type": "email", "message": "m", "steps": ["draft"]}]}}),
            ),
            STEPS,
            &BTreeMap::new(),
        )
        .expect_err("bad handler");
        assert!(err.starts_with("Invalid handler: "), "{err}");
        let err = SanityConfig::parse(
            &base(json!({"a": {"handlers": [{"type": "slack_project_channel", "message": "m", "steps": ["nope"]}]}})),
            STEPS,
            &BTreeMap::new(),
        )
        .expect_err("unknown step");
        assert!(err.contains("step nope"), "{err}");
        let err = SanityConfig::parse(
            &json!({"sanity_check_function": {"path": "my.checks"}, "check_configurations": {}}),
            STEPS,
            &BTreeMap::new(),
        )
        .expect_err("unknown fn");
        assert!(err.contains("staffbot.sanity.task_unstaffed"), "{err}");
        let err = SanityConfig::parse(
            &json!({"sanity_check_function": {"path": "staffbot.sanity.review_waiting"}, "check_configurations": {}}),
            STEPS,
            &BTreeMap::new(),
        )
        .expect_err("no after");
        assert!(err.contains("kwargs.after"), "{err}");
    }

    #[test]
    fn orchestra_paths_say_how_to_port_them_and_scripts_load() {
        let err = SanityConfig::parse(
            &json!({"sanity_check_function": {"path": "my_project.checks.run"}, "check_configurations": {}}),
            STEPS,
            &BTreeMap::new(),
        )
        .expect_err("orchestra path");
        assert!(err.contains("\"my_project.checks.run\""), "{err}");
        assert!(err.contains("script:<file>.rhai"), "{err}");
        assert!(
            err.contains("README.md#custom-checks-and-descriptions"),
            "{err}"
        );
        let scripts: BTreeMap<String, String> = [(
            "checks.rhai".to_string(),
            "if project.tasks.len() > 2 { [\"busy\"] } else { [] }".to_string(),
        )]
        .into();
        let c = SanityConfig::parse(
            &json!({"sanity_check_function": {"path": "script:checks.rhai", "kwargs": {"n": 1}},
                    "check_configurations": {"busy": {"handlers": []}}}),
            STEPS,
            &scripts,
        )
        .expect("valid")
        .expect("present");
        assert!(matches!(c.function, SanityFunction::Script { .. }));
        let err = SanityConfig::parse(
            &json!({"sanity_check_function": {"path": "script:other.rhai"}, "check_configurations": {}}),
            STEPS,
            &scripts,
        )
        .expect_err("not read");
        assert!(err.contains("other.rhai"), "{err}");
    }
}
