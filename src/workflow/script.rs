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

use super::memory::Counting;
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
    /// Wall time of one call (every built-in a script can call returns within it: Rhai's
    /// `sleep` is replaced by one that refuses).
    pub wall_time: Duration,
    /// Bytes a call may hold at once (whatever holds them: maps, strings, arrays).
    pub memory: usize,
    /// Lines a call may `print` or `debug` to the log (the rest are counted, not logged).
    pub log_lines: usize,
    /// Bytes of a machine script's result, as JSON (as for a command's stdout).
    pub output_bytes: usize,
}

/// The limits of every script call (README "Custom checks and descriptions").
pub const LIMITS: Limits = Limits {
    operations: 1_000_000,
    call_depth: 32,
    string_size: 64 * 1024,
    array_size: 10_000,
    map_size: 10_000,
    wall_time: Duration::from_millis(250),
    memory: 16 << 20,
    log_lines: 20,
    output_bytes: 1 << 20,
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
    /// Lines the call running on this thread printed.
    static PRINTED: Cell<usize> = const { Cell::new(0) };
}

/// What the progress callback returns when a call ran past its wall time.
const WALL_TIME_TOKEN: &str = "staffbot:wall-time";
/// What the progress callback returns when a call held more than its memory.
const MEMORY_TOKEN: &str = "staffbot:memory";
/// Characters of one printed line that reach the log.
const LOG_LINE_CHARS: usize = 500;

/// A script's printed line as it is logged: control characters (terminal escapes included)
/// dropped, cut at [`LOG_LINE_CHARS`]; `None` past the call's [`Limits::log_lines`].
fn loggable(text: &str) -> Option<String> {
    let n = PRINTED.get() + 1;
    PRINTED.set(n);
    if n > LIMITS.log_lines {
        return None;
    }
    Some(printable(text, LOG_LINE_CHARS))
}

/// `text` without control characters and terminal escape sequences (newlines and tabs become
/// spaces), at most `max` characters (an ellipsis says it was cut).
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut kept = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\x1b' => {
                // CSI (`ESC [ … final`) and two-character escapes are dropped whole.
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                } else {
                    chars.next();
                }
                continue;
            }
            '\n' | '\t' | '\r' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        if kept == max {
            out.push('…');
            break;
        }
        out.push(c);
        kept += 1;
    }
    out
}

/// Refuses, in place of Rhai's `sleep`, which blocks the thread whatever the wall time.
fn no_sleep() -> Result<(), Box<EvalAltResult>> {
    Err(format!(
        "sleep() is not available in staffbot's scripts (a call must finish within {} ms)",
        LIMITS.wall_time.as_millis()
    )
    .into())
}

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
    engine.on_print(|text| {
        if let Some(text) = loggable(text) {
            tracing::info!(target: "staffbot::script", "script print: {text}")
        }
    });
    engine.on_debug(|text, source, pos| {
        if let Some(text) = loggable(text) {
            tracing::info!(target: "staffbot::script", source, %pos, "script debug: {text}")
        }
    });
    // Rhai's `sleep` blocks the thread, out of the wall time's reach: the same names refuse.
    engine.register_fn("sleep", |_: i64| no_sleep());
    engine.register_fn("sleep", |_: f64| no_sleep());
    engine.on_progress(|operations| {
        // Memory is checked at every operation (a thread-local read); the clock every few
        // hundred operations keeps its cost out of the way.
        if Counting::net() > isize::try_from(LIMITS.memory).unwrap_or(isize::MAX) {
            return Some(Dynamic::from(MEMORY_TOKEN));
        }
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

/// A token of a script's source, as far as [`check_functions`] needs: identifiers (with their
/// byte offset) and single punctuation characters; strings and comments are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str, usize),
    Punct(char),
}

fn tokens(source: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < source.len() {
        let rest = &source[i..];
        let Some(c) = rest.chars().next() else { break };
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(comment) = rest.strip_prefix("/*") {
            i += comment.find("*/").map_or(rest.len(), |e| e + 4);
        } else if c == '"' || c == '`' || c == '\'' {
            // A string (or character) literal, escapes included.
            let mut j = i + 1;
            while j < source.len() && bytes[j] != c as u8 {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = (j + 1).min(source.len());
            while !source.is_char_boundary(i) {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(Token::Ident(&rest[..len], i));
            i += len;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += c.len_utf8();
        }
    }
    out
}

/// A function a script defines (`fn name(params) { … }`) sees only its arguments: it cannot
/// read the script's variables (`project`, `task`, …), and Rhai would find that only when the
/// function is called. Found here, at load, with the line and column.
fn check_functions(purpose: Purpose, script: &ScriptSource) -> Result<(), ScriptError> {
    let toks = tokens(&script.source);
    let mut i = 0;
    while i < toks.len() {
        if !matches!(toks[i], Token::Ident("fn", _)) {
            i += 1;
            continue;
        }
        // `fn name(params) {`
        let mut j = i + 1;
        let mut params: Vec<&str> = Vec::new();
        while j < toks.len() && toks[j] != Token::Punct('{') {
            if let Token::Ident(name, _) = toks[j] {
                params.push(name);
            }
            j += 1;
        }
        let mut depth = 0usize;
        let mut declared: Vec<&str> = Vec::new();
        while j < toks.len() {
            match toks[j] {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                Token::Ident("let" | "const", _) => {
                    if let Some(Token::Ident(name, _)) = toks.get(j + 1) {
                        declared.push(name);
                    }
                }
                Token::Ident(name, at) => {
                    let after_dot =
                        matches!(j.checked_sub(1).map(|k| toks[k]), Some(Token::Punct('.')));
                    let key_or_call = match (toks.get(j + 1), toks.get(j + 2)) {
                        (Some(Token::Punct(':')), Some(Token::Punct(':'))) => false,
                        (Some(Token::Punct(':' | '(')), _) => true,
                        _ => false,
                    };
                    if purpose.variables().contains(&name)
                        && !after_dot
                        && !key_or_call
                        && !params.contains(&name)
                        && !declared.contains(&name)
                    {
                        let (line, column) = super::template::line_column(&script.source, at);
                        return Err(ScriptError {
                            file: script.file.clone(),
                            line: Some(line),
                            column: Some(column),
                            message: format!(
                                "a function sees only its arguments, not `{name}`: pass it in (`fn f({name}) {{ … }}`, called as `f({name})`)"
                            ),
                            limit: false,
                        });
                    }
                }
                Token::Punct(_) => {}
            }
            j += 1;
        }
        i = j + 1;
    }
    Ok(())
}

/// Compiles `script` for `purpose` (or takes it from the cache). A syntax error, or a variable
/// the script never defines and `purpose` does not provide, is an error with its position, and
/// so is a function that reads one of the script's variables.
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
    check_functions(purpose, script)?;
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
        PRINTED.set(0);
        Counting::start();
        let result = ENGINE.eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
        // What the call built is freed here, while it is still counted.
        let result = result.map_err(|e| self.runtime_error(*e));
        drop(scope);
        Counting::stop();
        DEADLINE.set(None);
        let printed = PRINTED.get();
        if printed > LIMITS.log_lines {
            tracing::warn!(
                target: "staffbot::script",
                "script {}: {printed} lines printed in one call; the first {} were logged",
                self.file,
                LIMITS.log_lines
            );
        }
        PRINTED.set(0);
        result
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
            EvalAltResult::ErrorTerminated(ref token, _)
                if token.clone().into_string().ok().as_deref() == Some(MEMORY_TOKEN) =>
            {
                limit(format!(
                    "limit hit: held more than {} MiB",
                    LIMITS.memory >> 20
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

/// A machine script's result as the task's output (JSON; `()` is `{}`), at most
/// [`Limits::output_bytes`] as JSON text (the cap on a command's stdout).
pub fn output_of(file: &str, value: Dynamic) -> Result<Value, ScriptError> {
    if value.is_unit() {
        return Ok(Value::Object(Default::default()));
    }
    let output = rhai::serde::from_dynamic::<Value>(&value)
        .map_err(|e| ScriptError::result(file, format!("the script's result is not JSON: {e}")))?;
    let size = serde_json::to_vec(&output).map_or(usize::MAX, |v| v.len());
    if size > LIMITS.output_bytes {
        return Err(ScriptError {
            limit: true,
            ..ScriptError::result(
                file,
                format!(
                    "limit hit: the result is {size} bytes as JSON, more than {}",
                    LIMITS.output_bytes
                ),
            )
        });
    }
    Ok(output)
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
    fn a_function_that_reads_the_scripts_variables_is_refused_at_load() {
        let err = compile(
            Purpose::SanityCheck,
            &source("// project\nfn late(t) {\n  t.id > project.id\n}\n[]"),
        )
        .expect_err("reads project");
        assert_eq!((err.line, err.column), (Some(3), Some(10)), "{err}");
        assert!(err.message.contains("sees only its arguments"), "{err}");
        for fine in [
            "fn f(project) { project.id } f(project)",
            "fn f(x) { let now = 1; now + x } f(1)",
            r#"fn f(x) { x.project + #{project: 1}.project + "project" } f(project)"#,
            "fn f(x) { x?.now } f(project)",
        ] {
            assert!(
                compile(Purpose::SanityCheck, &source(fine)).is_ok(),
                "{fine}"
            );
        }
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

    /// Every built-in that can block or grow without Rhai's own size limits noticing: each
    /// call ends within its limits, with an error that says which.
    #[test]
    fn no_built_in_outlasts_the_wall_time_or_the_memory() {
        for (text, says) in [
            ("sleep(3600); []", "sleep() is not available"),
            ("sleep(0.5); []", "sleep() is not available"),
            // A map grown by assignment is past Rhai's map size check.
            (
                r#"let v = "v"; v.pad(200, "x"); let m = #{}; let i = 0; loop { m["k" + i] = v; i += 1; }"#,
                "limit hit",
            ),
            // Arrays of arrays: each under the array size, together far over it.
            (
                r#"let a = []; loop { let b = []; b.pad(9000, "x"); a.push(b); }"#,
                "limit hit",
            ),
            (
                r#"let s = "x"; s.pad(60000, "y"); let a = []; loop { a.push(s + a.len()); }"#,
                "limit hit",
            ),
        ] {
            let started = Instant::now();
            let err = run(text).expect_err(text);
            assert!(err.to_string().contains(says), "{text}: {err}");
            assert!(err.line.is_some(), "{text}: no line in {err}");
            // The wall time is 250 ms; a debug build on a loaded machine gets slack.
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{text} ran {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn a_flood_of_prints_logs_the_first_lines_only() {
        PRINTED.set(0);
        let shown: Vec<Option<String>> = (0..25).map(|_| loggable("a\x1b[31mred\nline")).collect();
        assert_eq!(shown[0].as_deref(), Some("ared line"));
        assert!(shown[LIMITS.log_lines - 1].is_some());
        assert!(shown[LIMITS.log_lines].is_none());
        assert!(run(r#"for i in 0..20000 { print(i) } []"#).is_ok());
        assert_eq!(PRINTED.get(), 0, "the call's count is reset after it");
    }

    #[test]
    fn a_machine_result_is_capped_as_a_command_output_is() {
        let big = run(
            r#"let s = "x"; s.pad(40000, "y"); let m = #{}; for i in 0..30 { m["k" + i] = s } m"#,
        )
        .expect("under the memory limit");
        let err = output_of("t.rhai", big).expect_err("over 1 MiB");
        assert!(
            err.limit && err.message.contains("more than 1048576"),
            "{err}"
        );
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
