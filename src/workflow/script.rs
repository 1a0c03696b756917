//! Teams' own functions as [Rhai](https://rhai.rs) scripts: `{"path": "script:<file>.rhai"}`
//! for `sanity_check_function`, `detailed_description_function` and a machine step's
//! `execution_function`.
//!
//! A script's source is read when its workflow version is loaded (relative to the version's
//! directory) and stored with the version; it is compiled then (a syntax error or an unknown
//! variable is a load error with the file, line and column) and again, once per process and
//! source, when it first runs (the compiled form is cached). A script is a sequence of
//! statements run top to bottom with a few read-only variables (which ones depends on what the
//! script is for, see [`Purpose`]); the value of its last statement is its result.
//!
//! Scripts are sandboxed: no `import` (no module resolver, so no file access), no `eval`, no
//! network or process functions (Rhai has none), `print`/`debug` go to the log, and every call
//! runs under [`Limits`]: operations, call depth, expression depth, string, array and map
//! sizes, and wall time. A call that hits a limit fails with an error saying which.

use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A function path naming a script: `script:<file>.rhai`.
pub const SCRIPT_PREFIX: &str = "script:";

/// The limits every call of a script runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations (each expression, statement, function call…) per call.
    pub operations: u64,
    /// Nested function calls.
    pub call_depth: usize,
    /// Characters of one string.
    pub string_size: usize,
    /// Items of one array.
    pub array_size: usize,
    /// Entries of one object map.
    pub map_size: usize,
    /// Wall time of one call.
    pub wall_time: Duration,
}

/// The limits of every script call (README "Custom checks and descriptions").
pub const LIMITS: Limits = Limits {
    operations: 1_000_000,
    call_depth: 32,
    string_size: 64 * 1024,
    array_size: 10_000,
    map_size: 10_000,
    wall_time: Duration::from_millis(250),
};

/// What a script is for: decides the variables it sees (and so what compiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// `sanity_check_function`: `project`, `now`, `kwargs`; returns check slugs.
    SanityCheck,
    /// `detailed_description_function`: `task`, `step`, `project`, `workflow`, `kwargs`;
    /// returns the text.
    Description,
    /// A machine step's `execution_function`: `task`, `step`, `project`, `project_data`,
    /// `prerequisites`, `now`, `kwargs`; returns the task's output.
    Machine,
}

impl Purpose {
    /// The variables a script for this purpose sees.
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Purpose::SanityCheck => &["project", "now", "kwargs"],
            Purpose::Description => &["task", "step", "project", "workflow", "kwargs"],
            Purpose::Machine => &[
                "task",
                "step",
                "project",
                "project_data",
                "prerequisites",
                "now",
                "kwargs",
            ],
        }
    }
}

/// A script as stored with its workflow version: its file name (relative to the version's
/// directory) and its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSource {
    pub file: String,
    pub source: String,
}

/// A script that did not compile or failed while it ran: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The call was stopped by one of the [`Limits`].
    pub limit: bool,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, ", line {l}, column {c}")?,
            (Some(l), None) => write!(f, ", line {l}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl ScriptError {
    fn at(file: &str, pos: Position, message: String, limit: bool) -> ScriptError {
        ScriptError {
            file: file.to_string(),
            line: pos.line(),
            column: pos.position(),
            message,
            limit,
        }
    }

    /// An error about the script's result (not tied to a position).
    pub fn result(file: &str, message: impl Into<String>) -> ScriptError {
        ScriptError {
            file: file.to_string(),
            line: None,
            column: None,
            message: message.into(),
            limit: false,
        }
    }
}

thread_local! {
    /// When the call running on this thread must stop (scripts run synchronously).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// What the progress callback returns when a call ran past its wall time.
const WALL_TIME_TOKEN: &str = "staffbot:wall-time";

fn engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(LIMITS.operations)
        .set_max_call_levels(LIMITS.call_depth)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(LIMITS.string_size)
        .set_max_array_size(LIMITS.array_size)
        .set_max_map_size(LIMITS.map_size)
        .set_max_variables(1_000)
        .set_max_functions(200)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(false);
    engine.disable_symbol("eval");
    engine.on_print(|text| tracing::info!(target: "staffbot::script", "script print: {text}"));
    engine.on_debug(|text, source, pos| {
        tracing::info!(target: "staffbot::script", source, %pos, "script debug: {text}")
    });
    engine.on_progress(|operations| {
        // Checking the clock every few hundred operations keeps its cost out of the way.
        if operations % 256 == 0
            && DEADLINE
                .get()
                .is_some_and(|deadline| Instant::now() > deadline)
        {
            return Some(Dynamic::from(WALL_TIME_TOKEN));
        }
        None
    });
    register_helpers(&mut engine);
    engine
}

/// Helpers for time arithmetic: times are Unix seconds (`now`, `created_at`, …).
fn register_helpers(engine: &mut Engine) {
    engine.register_fn("minutes", |n: i64| n.saturating_mul(60));
    engine.register_fn("hours", |n: i64| n.saturating_mul(3_600));
    engine.register_fn("days", |n: i64| n.saturating_mul(86_400));
    engine.register_fn(
        "duration",
        |text: &str| -> Result<i64, Box<EvalAltResult>> {
            crate::config::parse_duration(text)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .map_err(|e| format!("duration({text:?}): {e}").into())
        },
    );
    engine.register_fn("iso", |ts: i64| -> String {
        chrono::DateTime::from_timestamp(ts, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    });
}

static ENGINE: LazyLock<Engine> = LazyLock::new(engine);

/// Compiled scripts by purpose and source: each source compiles once per process.
type Cache = HashMap<u64, Vec<(Purpose, ScriptSource, Arc<AST>)>>;
static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);
/// Distinct scripts kept compiled at most (a reload past this starts the cache afresh).
const CACHE_CAPACITY: usize = 256;

/// A compiled script, ready to run.
#[derive(Debug, Clone)]
pub struct Script {
    file: String,
    ast: Arc<AST>,
}

fn cache_key(purpose: Purpose, script: &ScriptSource) -> u64 {
    let mut h = DefaultHasher::new();
    purpose.hash(&mut h);
    script.file.hash(&mut h);
    script.source.hash(&mut h);
    h.finish()
}

/// Compiles `script` for `purpose` (or takes it from the cache). A syntax error, or a variable
/// the script never defines and `purpose` does not provide, is an error with its position.
pub fn compile(purpose: Purpose, script: &ScriptSource) -> Result<Script, ScriptError> {
    let key = cache_key(purpose, script);
    if let Ok(cache) = CACHE.lock()
        && let Some((_, _, ast)) = cache
            .get(&key)
            .and_then(|v| v.iter().find(|(p, s, _)| *p == purpose && s == script))
    {
        return Ok(Script {
            file: script.file.clone(),
            ast: ast.clone(),
        });
    }
    let mut scope = Scope::new();
    for name in purpose.variables() {
        // Plain variables (not constants) so that the optimiser does not fold them away.
        scope.push_dynamic(*name, Dynamic::UNIT);
    }
    let ast = ENGINE
        .compile_with_scope(&scope, &script.source)
        .map_err(|e| ScriptError::at(&script.file, e.1, e.0.to_string(), false))?;
    let ast = Arc::new(ast);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache
            .entry(key)
            .or_default()
            .push((purpose, script.clone(), ast.clone()));
    }
    Ok(Script {
        file: script.file.clone(),
        ast,
    })
}

/// A script's input as a Rhai value (JSON objects become object maps).
pub fn to_dynamic<T: Serialize>(value: &T) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

impl Script {
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Runs the script once with `variables` (read-only: assigning to one is an error) under
    /// [`LIMITS`], and returns the value of its last statement.
    pub fn call(&self, variables: Vec<(&'static str, Dynamic)>) -> Result<Dynamic, ScriptError> {
        let mut scope = Scope::new();
        for (name, value) in variables {
            scope.push_constant_dynamic(name, value);
        }
        DEADLINE.set(Some(Instant::now() + LIMITS.wall_time));
        let result = ENGINE.eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
        DEADLINE.set(None);
        result.map_err(|e| self.runtime_error(*e))
    }

    fn runtime_error(&self, e: EvalAltResult) -> ScriptError {
        let pos = e.position();
        let limit = |message: String| ScriptError::at(&self.file, pos, message, true);
        match e {
            EvalAltResult::ErrorTooManyOperations(_) => limit(format!(
                "limit hit: more than {} operations",
                LIMITS.operations
            )),
            EvalAltResult::ErrorStackOverflow(_) => limit(format!(
                "limit hit: calls nested more than {} deep",
                LIMITS.call_depth
            )),
            EvalAltResult::ErrorDataTooLarge(what, _) => limit(format!(
                "limit hit: {what} (strings {} characters, arrays {} items, maps {} entries at most)",
                LIMITS.string_size, LIMITS.array_size, LIMITS.map_size
            )),
            EvalAltResult::ErrorTooManyVariables(_) | EvalAltResult::ErrorTooManyModules(_) => {
                limit(format!("limit hit: {e}"))
            }
            EvalAltResult::ErrorTerminated(ref token, _)
                if token.clone().into_string().ok().as_deref() == Some(WALL_TIME_TOKEN) =>
            {
                limit(format!(
                    "limit hit: ran longer than {} ms",
                    LIMITS.wall_time.as_millis()
                ))
            }
            EvalAltResult::ErrorRuntime(ref value, _) => {
                ScriptError::at(&self.file, pos, format!("the script threw: {value}"), false)
            }
            other => {
                // The message without Rhai's own " (line x, position y)" suffix.
                let text = other.to_string();
                let text = match text.rfind(" (line ") {
                    Some(i) if text.ends_with(')') => text[..i].to_string(),
                    _ => text,
                };
                ScriptError::at(&self.file, pos, text, false)
            }
        }
    }
}

/// A sanity check script's result as check slugs: a list of strings, one string, or nothing
/// (`()` or `[]`).
pub fn slugs_of(file: &str, value: Dynamic) -> Result<Vec<String>, ScriptError> {
    if value.is_unit() {
        return Ok(Vec::new());
    }
    if value.is_string() {
        return Ok(vec![value.into_string().unwrap_or_default()]);
    }
    let type_name = value.type_name().to_string();
    let Some(items) = value.try_cast::<rhai::Array>() else {
        return Err(ScriptError::result(
            file,
            format!("a sanity check script returns a list of check slugs, not {type_name}"),
        ));
    };
    items
        .into_iter()
        .map(|item| {
            let type_name = item.type_name().to_string();
            item.into_string().map_err(|_| {
                ScriptError::result(file, format!("a check slug is a string, not {type_name}"))
            })
        })
        .collect()
}

/// A description script's result as text (`()` is no text; numbers and the like are shown as
/// written).
pub fn text_of(file: &str, value: Dynamic) -> Result<String, ScriptError> {
    if value.is_unit() {
        return Ok(String::new());
    }
    if value.is_string() {
        return Ok(value.into_string().unwrap_or_default());
    }
    if value.is_map() || value.is_array() {
        return Err(ScriptError::result(
            file,
            format!(
                "a description script returns a string, not {}",
                value.type_name()
            ),
        ));
    }
    Ok(value.to_string())
}

/// A machine script's result as the task's output (JSON; `()` is `{}`).
pub fn output_of(file: &str, value: Dynamic) -> Result<Value, ScriptError> {
    if value.is_unit() {
        return Ok(Value::Object(Default::default()));
    }
    rhai::serde::from_dynamic::<Value>(&value)
        .map_err(|e| ScriptError::result(file, format!("the script's result is not JSON: {e}")))
}

/// Unix seconds, as scripts see times.
pub fn unix(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp()
}

/// A project as a sanity check script sees it (read-only; times are Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectView {
    pub id: i64,
    pub description: String,
    pub priority: i32,
    /// `active` or `paused` (SanityBot checks no other).
    pub status: String,
    pub created_at: i64,
    /// The project's data (`project create --data`).
    pub data: Value,
    pub workflow: String,
    pub version: String,
    pub tasks: Vec<TaskView>,
}

/// A task of a [`ProjectView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub id: i64,
    pub step: String,
    /// False for a machine step's task.
    pub is_human: bool,
    pub status: String,
    pub created_at: i64,
    /// When the task entered its current status.
    pub status_changed_at: i64,
    pub assignments: Vec<AssignmentView>,
}

/// An assignment of a [`TaskView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignmentView {
    /// The worker's username.
    pub worker: String,
    /// 0 = entry level, 1.. = reviewers.
    pub counter: i32,
    pub status: String,
    pub assigned_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> ScriptSource {
        ScriptSource {
            file: "t.rhai".into(),
            source: text.into(),
        }
    }

    fn run(text: &str) -> Result<Dynamic, ScriptError> {
        compile(Purpose::SanityCheck, &source(text))?.call(vec![
            (
                "project",
                to_dynamic(&serde_json::json!({"id": 7, "tasks": []})),
            ),
            ("now", Dynamic::from(1_000_i64)),
            ("kwargs", to_dynamic(&serde_json::json!({"after": "2h"}))),
        ])
    }

    #[test]
    fn a_script_sees_its_variables_and_returns_its_last_value() {
        let v = run(r#"if project.id == 7 && now > 10 { ["late"] } else { [] }"#).expect("runs");
        assert_eq!(slugs_of("t.rhai", v).expect("slugs"), vec!["late"]);
        let v = run("duration(kwargs.after) + hours(1) + days(0) + minutes(1)").expect("runs");
        assert_eq!(v.as_int().ok(), Some(7200 + 3600 + 60));
        assert_eq!(
            run("iso(0)").expect("runs").into_string().ok().as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn syntax_errors_and_unknown_variables_have_positions() {
        let err = compile(Purpose::SanityCheck, &source("let x = ;")).expect_err("syntax");
        assert_eq!((err.line, err.column), (Some(1), Some(9)), "{err}");
        assert!(
            err.to_string().starts_with("t.rhai, line 1, column 9: "),
            "{err}"
        );
        let err = compile(Purpose::SanityCheck, &source("\n  task.id")).expect_err("unknown");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains("task"), "{err}");
        // `task` is known to descriptions.
        assert!(compile(Purpose::Description, &source("task.id")).is_ok());
    }

    #[test]
    fn variables_are_read_only_and_there_is_no_eval_or_import() {
        let err = run("project.id = 8; []").expect_err("constant");
        assert!(!err.limit, "{err}");
        assert!(compile(Purpose::SanityCheck, &source(r#"eval("1")"#)).is_err());
        assert!(compile(Purpose::SanityCheck, &source(r#"import "x" as y; 1"#)).is_err());
    }

    #[test]
    fn limits_stop_a_call() {
        // The operation count or, in a slow debug build, the wall time stops it.
        let err = run("loop {}").expect_err("operations");
        assert!(err.limit && err.message.starts_with("limit hit: "), "{err}");
        let err = run("fn f(n) { f(n + 1) } f(0)").expect_err("depth");
        assert!(err.limit && err.message.contains("nested"), "{err}");
        let err = run(r#"let s = "x"; loop { s += s; }"#).expect_err("string");
        assert!(err.limit, "{err}");
        let err = run("let a = []; loop { a.push(1); }").expect_err("array");
        assert!(err.limit, "{err}");
    }

    #[test]
    fn results_are_checked() {
        assert!(slugs_of("t.rhai", Dynamic::from(1_i64)).is_err());
        assert_eq!(
            slugs_of("t.rhai", Dynamic::from("one")).expect("one"),
            vec!["one"]
        );
        assert!(slugs_of("t.rhai", Dynamic::UNIT).expect("none").is_empty());
        assert_eq!(text_of("t.rhai", Dynamic::from(3_i64)).expect("text"), "3");
        let v = run(r#"#{a: [1, "b"], c: ()}"#).expect("map");
        assert_eq!(
            output_of("t.rhai", v).expect("json"),
            serde_json::json!({"a": [1, "b"], "c": null})
        );
    }
}
