//! The `machine` loop: runs machine steps (issue 10). A machine task waits in
//! `awaiting_processing` until its automation completes it: the command that
//! `machine.functions` maps its step's `execution_function` to, `complete = true`, or (for a
//! path that is not mapped) `staffbot task complete`.
//!
//! One replica at a time runs the loop (its lease). Each due task's command runs once per run,
//! up to `machine.concurrency` at once, with no database transaction open: the task's details
//! are read first, the command runs (renewing the lease meanwhile, and killed with its process
//! group at its timeout or when the lease is lost), and its result is written afterwards in a
//! short transaction fenced by the lease. A completion can make new machine tasks due (the next
//! steps of a chain): the run looks again and runs them too, so a chain finishes in one run. A
//! failed run (non-zero exit, bad JSON, timeout) leaves the task waiting, with its error (the
//! end of stderr, cleaned of terminal escapes and with every known secret masked), until the
//! next attempt after a backoff. A crash mid-run leaves nothing written: the command runs again
//! once the lease has expired, so commands should be idempotent.
//!
//! A command gets a clean environment: `PATH`, `HOME`, `LANG` and `TZ` from staffbot's own, and
//! what its function's `env` sets; never staffbot's tokens, passwords or database URL.

use std::collections::{HashSet, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{
    MACHINE_INHERITED_ENV, MachineCommand, MachineConfig, MachineFunction, NoticeSettings,
};
use crate::error::Error;
use crate::lease::LeaseProof;
use crate::workflow::definition::ExecutionFunction;
use crate::workflow::script::{self, Purpose, ScriptError, ScriptSource};

/// The most a command may print on stdout (its output is stored in the database).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// The end of a command's stderr kept for the log and the error.
const STDERR_TAIL_BYTES: usize = 8 << 10;
/// Characters of stderr quoted in a task's error.
const ERROR_STDERR_CHARS: usize = 300;
/// How long the end of stderr is waited for once the command has ended (a process that left
/// the group may still hold the pipe).
const STDERR_GRACE: Duration = Duration::from_secs(1);
/// Backoff after a failed run: doubling from the first, up to the last.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// The wait before the next run after `attempts` failed runs (1 = the first failure).
pub fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_RETRY)
}

/// A machine task due to run.
type Due = crate::db::machine::DueTask;

/// The `path` of a due task's execution function (what `machine.functions` maps).
fn path(task: &Due) -> &str {
    task.execution_function
        .as_ref()
        .and_then(|f| f.get("path"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineReport {
    /// Tasks completed (by a command or `complete = true`).
    pub completed: usize,
    /// Commands that failed (the tasks wait for their next attempt).
    pub failed: usize,
    /// Due tasks whose function is not mapped: they wait for `staffbot task complete`.
    pub external: usize,
}

/// Why a command's run did not produce an output. The `stderr` texts are the end of what the
/// command printed there, cleaned and masked (see [`crate::secrets::sanitize`]), ready to quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("exited with {status}{}", quote(stderr, ": "))]
    Exit { status: String, stderr: String },
    #[error(
        "timed out after {after} (its process group was killed){}",
        quote(stderr, "; stderr: ")
    )]
    Timeout { after: String, stderr: String },
    #[error(
        "printed no valid JSON on stdout: {error}{}",
        quote(stderr, "; stderr: ")
    )]
    BadJson { error: String, stderr: String },
    #[error(
        "printed more than {MAX_OUTPUT_BYTES} bytes on stdout{}",
        quote(stderr, "; stderr: ")
    )]
    TooLarge { stderr: String },
    #[error("the machine lease was lost while it ran (its process group was killed)")]
    LeaseLost,
    #[error("failed while running: {0}")]
    Io(String),
}

/// The end of stderr as quoted in an error: `prefix` and its last [`ERROR_STDERR_CHARS`]
/// characters, or nothing when it printed nothing.
fn quote(stderr: &str, prefix: &str) -> String {
    let quoted = tail_chars(stderr, ERROR_STDERR_CHARS);
    if quoted.is_empty() {
        String::new()
    } else {
        format!("{prefix}{quoted}")
    }
}

/// What one due task needs.
enum Work<'a> {
    /// Not mapped: waits for `staffbot task complete`.
    External,
    /// `complete = true`.
    Complete,
    /// A script or a command to run.
    Run(Run<'a>),
}

/// What runs a task.
enum Run<'a> {
    Script(ScriptSource),
    Command(&'a MachineCommand),
}

fn work_of<'a>(task: &Due, config: &'a MachineConfig) -> Work<'a> {
    if let Some(script) = script_of(task) {
        return Work::Run(Run::Script(script));
    }
    match config.functions.get(path(task)) {
        None => Work::External,
        Some(MachineFunction::Complete) => Work::Complete,
        Some(MachineFunction::Command(command)) => Work::Run(Run::Command(command)),
    }
}

/// How one task's run ended.
enum Outcome {
    Completed,
    /// Its result was not recorded (the task no longer waited, or it vanished).
    NotRecorded,
    Failed,
    /// The lease was lost mid-run: the command was killed; nothing more is started.
    LeaseLost,
}

/// One round: every due machine task whose function is mapped runs (or completes) once, up to
/// `config.concurrency` commands and scripts at once. Whenever a task completes, the due tasks
/// are read again, so the machine steps it made due (a chain's next step) run in this round
/// too. A task runs at most once per round (a failed one waits for its backoff anyway).
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    config: &MachineConfig,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<MachineReport, crate::error::Error> {
    let concurrency = config.concurrency.max(1);
    let mut report = MachineReport::default();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut queue: VecDeque<Due> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    // Read the due tasks (at the start, and after each completion).
    let mut look = true;
    // Start nothing more (the lease was lost, or the database failed); what runs is awaited,
    // so no command is left running unsupervised.
    let mut stop = false;
    let mut failure: Option<Error> = None;
    loop {
        if look && !stop {
            look = false;
            match crate::db::machine::due(db, now).await {
                Ok(due) => queue.extend(due.into_iter().filter(|t| seen.insert(t.task_id))),
                Err(e) => {
                    failure.get_or_insert(e.into());
                    stop = true;
                }
            }
        }
        while !stop && running.len() < concurrency {
            let Some(task) = queue.pop_front() else {
                break;
            };
            match work_of(&task, config) {
                Work::External => report.external += 1,
                Work::Complete => {
                    let output = Value::Object(Default::default());
                    match record_output(db, lease, &task, output, notices, now).await {
                        Ok(true) => {
                            report.completed += 1;
                            look = true;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            failure.get_or_insert(e);
                            stop = true;
                        }
                    }
                }
                Work::Run(run) => running.push(run_task(db, lease, task, run, notices, now)),
            }
        }
        if look && !stop {
            continue;
        }
        let Some(outcome) = running.next().await else {
            break;
        };
        match outcome {
            Ok(Outcome::Completed) => {
                report.completed += 1;
                look = true;
            }
            Ok(Outcome::Failed) => report.failed += 1,
            Ok(Outcome::NotRecorded) => {}
            Ok(Outcome::LeaseLost) => stop = true,
            Err(e) => {
                failure.get_or_insert(e);
                stop = true;
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Runs one task's script or command and records what came of it.
async fn run_task<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    task: Due,
    run: Run<'_>,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    let Some(input) = input_of(db, &task).await? else {
        return Ok(Outcome::NotRecorded);
    };
    let (kind, result) = match run {
        Run::Script(script) => (
            "script",
            run_script(script, input, now)
                .await
                .map_err(|e| format!("script {e}")),
        ),
        Run::Command(command) => {
            let started = std::time::Instant::now();
            tracing::info!(task_id = task.task_id, step = %task.step_slug, function = path(&task), "running machine command");
            match run_command(db, lease, command, &input).await {
                Ok(output) => {
                    tracing::info!(
                        task_id = task.task_id,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "machine command succeeded"
                    );
                    ("command", Ok(output))
                }
                Err(RunError::LeaseLost) => {
                    tracing::warn!(
                        task_id = task.task_id,
                        "machine lease lost mid-run; the command was killed and is left to the new holder"
                    );
                    return Ok(Outcome::LeaseLost);
                }
                Err(e) => ("command", Err(e.to_string())),
            }
        }
    };
    match result {
        Ok(output) => Ok(
            if record_output(db, lease, &task, output, notices, now).await? {
                Outcome::Completed
            } else {
                Outcome::NotRecorded
            },
        ),
        Err(error) => {
            // Stored, logged and (by the warnings) posted: no escapes, no secrets.
            let error = crate::secrets::sanitize(&error);
            tracing::warn!(task_id = task.task_id, step = %task.step_slug, function = path(&task), attempt = task.machine_attempts + 1, "machine {kind} failed: {error}");
            record_failure(db, lease, &task, &error, now).await?;
            Ok(Outcome::Failed)
        }
    }
}

/// The script a due task's `execution_function` names (`script:<file>.rhai`), as loaded.
fn script_of(task: &Due) -> Option<ScriptSource> {
    let function: ExecutionFunction =
        serde_json::from_value(task.execution_function.clone()?).ok()?;
    function.script
}

/// The task's details for its automation; `None` (logged) when it can no longer run.
async fn input_of<C: ConnectionTrait>(db: &C, task: &Due) -> Result<Option<Value>, Error> {
    match crate::lifecycle::machine_input(db, task.task_id).await {
        Ok(input) => Ok(Some(input)),
        Err(e @ (Error::Db(_) | Error::LeaseLost(_))) => Err(e),
        Err(Error::User(e)) => {
            tracing::warn!(task_id = task.task_id, "machine task vanished: {e}");
            Ok(None)
        }
        Err(Error::StoredDataInvalid(e)) => {
            tracing::error!(task_id = task.task_id, "machine task cannot run: {e}");
            Ok(None)
        }
    }
}

/// Runs a machine step's script with the task's details (the same object a command gets on
/// stdin, as variables) on a blocking thread; its result is the task's output.
pub async fn run_script(
    source: ScriptSource,
    mut input: Value,
    now: DateTime<Utc>,
) -> Result<Value, ScriptError> {
    // The script sees its function's path and kwargs, not its own source.
    if let Some(f) = input
        .pointer_mut("/step/execution_function")
        .and_then(Value::as_object_mut)
    {
        f.remove("script");
    }
    let file = source.file.clone();
    let run = move || {
        let compiled = script::compile(Purpose::Machine, &source)?;
        let kwargs = input
            .pointer("/step/execution_function/kwargs")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let var = |key: &str| script::to_dynamic(input.get(key).unwrap_or(&Value::Null));
        let value = compiled.call(vec![
            ("task", var("task")),
            ("step", var("step")),
            ("project", var("project")),
            ("project_data", var("project_data")),
            ("prerequisites", var("prerequisites")),
            ("now", rhai::Dynamic::from(now.timestamp())),
            ("kwargs", script::to_dynamic(&kwargs)),
        ])?;
        script::output_of(compiled.file(), value)
    };
    tokio::task::spawn_blocking(run).await.unwrap_or_else(|e| {
        Err(ScriptError::result(
            &file,
            format!("the script's thread failed: {e}"),
        ))
    })
}

/// Completes the task with `output` in a transaction fenced by the lease. False when the task
/// no longer waited (completed by `task complete`, its project ended).
async fn record_output<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    task: &Due,
    output: Value,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<bool, crate::error::Error> {
    let tx = crate::db::begin_write(db).await?;
    let done: Result<(), Error> = async {
        lease.fence(&tx).await?;
        crate::lifecycle::complete_machine_task(&tx, task.task_id, output, notices, now).await
    }
    .await;
    match crate::db::settle(tx, done).await {
        Ok(()) => Ok(true),
        Err(Error::User(e)) => {
            tracing::info!(task_id = task.task_id, "machine result not recorded: {e}");
            Ok(false)
        }
        // The task stays waiting and its command runs again next time; the log says why.
        Err(Error::StoredDataInvalid(e)) => {
            tracing::error!(task_id = task.task_id, "machine result not recorded: {e}");
            Ok(false)
        }
        Err(e @ (Error::Db(_) | Error::LeaseLost(_))) => Err(e),
    }
}

/// Records a failed run: one more attempt, its error, the next attempt after the backoff.
async fn record_failure<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    task: &Due,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    let attempts = task.machine_attempts + 1;
    let next = now + chrono::Duration::from_std(backoff(attempts)).unwrap_or_default();
    let tx = crate::db::begin_write(db).await?;
    let written = async {
        lease.fence(&tx).await?;
        Ok::<_, Error>(
            crate::db::machine::record_failure(&tx, task.task_id, attempts, error, next).await?,
        )
    }
    .await;
    crate::db::settle(tx, written).await?;
    Ok(())
}

/// Sends SIGKILL to a whole process group (the command and anything it started).
fn kill_group(pgid: Option<u32>) {
    let Some(pgid) = pgid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: killpg only sends a signal; a group that is already gone gives ESRCH.
    let rc = unsafe { libc::killpg(pgid, libc::SIGKILL) };
    if rc != 0 {
        tracing::debug!(pgid, "killpg: {}", std::io::Error::last_os_error());
    }
}

/// The last `max` bytes or so of `buf`, as text. When the start is cut, text up to the first
/// whitespace after the cut is dropped too, so no part of a token is shown.
fn tail(buf: &[u8], max: usize) -> String {
    let mut start = buf.len().saturating_sub(max);
    if start > 0 {
        start = buf[start..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(buf.len(), |i| start + i);
    }
    String::from_utf8_lossy(&buf[start..]).trim().to_string()
}

/// The last `max` characters of `text`, cut at whitespace as [`tail`] does (with `…` before).
fn tail_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.trim().to_string();
    }
    let cut: String = text.chars().skip(count - max).collect();
    match cut.find(char::is_whitespace) {
        Some(i) => format!("…{}", cut[i..].trim()),
        None => "…".to_string(),
    }
}

/// Runs `command` in a process group of its own with `input` (JSON) on stdin, and returns its
/// stdout parsed as JSON. Its environment is `PATH`, `HOME`, `LANG` and `TZ` from staffbot's
/// (when set) plus its `env`; it runs in its `cwd`. While it runs, the lease is renewed (no
/// transaction is open: each renewal is one statement); the group is killed at its timeout or
/// when the lease is lost.
pub async fn run_command<C: ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    command: &MachineCommand,
    input: &Value,
) -> Result<Value, RunError> {
    let Some((program, args)) = command.argv.split_first() else {
        return Err(RunError::Spawn {
            program: String::new(),
            message: "empty command".into(),
        });
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env_clear();
    for name in MACHINE_INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(&command.env);
    if let Some(cwd) = &command.cwd {
        if !tokio::fs::metadata(cwd).await.is_ok_and(|m| m.is_dir()) {
            return Err(RunError::Spawn {
                program: program.clone(),
                message: format!("its working directory {} is not a directory", cwd.display()),
            });
        }
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RunError::Spawn {
            program: program.clone(),
            message: e.to_string(),
        })?;
    let pgid = child.id();
    // Stderr is read on a task of its own into a shared buffer, so its end is known however
    // the run ends (a timeout too).
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_stderr_tail(err, Arc::clone(&stderr))));
    let input = serde_json::to_vec(input).map_err(|e| RunError::Io(e.to_string()))?;
    let ended = supervise(db, lease, &mut child, input, command.timeout).await;
    if !matches!(ended, Ended::Finished(_)) {
        kill_group(pgid);
        let _ = child.wait().await;
    }
    if let Some(mut reader) = reader
        && tokio::time::timeout(STDERR_GRACE, &mut reader)
            .await
            .is_err()
    {
        reader.abort();
    }
    let stderr = {
        let buf = match stderr.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        crate::secrets::sanitize(&tail(&buf, STDERR_TAIL_BYTES))
    };
    if !stderr.is_empty() {
        tracing::info!(program = %program, "machine command stderr: {stderr}");
    }
    match ended {
        Ended::TimedOut => Err(RunError::Timeout {
            after: crate::config::format_duration(command.timeout),
            stderr,
        }),
        Ended::LeaseLost => Err(RunError::LeaseLost),
        Ended::Finished(finished) => finished.output(stderr),
    }
}

/// How a command's run ended.
enum Ended {
    Finished(Finished),
    TimedOut,
    LeaseLost,
}

/// A command that exited by itself: its status and what it printed on stdout.
struct Finished {
    status: std::io::Result<std::process::ExitStatus>,
    stdout: Vec<u8>,
    /// Stdout went past [`MAX_OUTPUT_BYTES`] (and was not kept).
    too_large: bool,
}

impl Finished {
    /// The command's output, or why there is none (quoting `stderr`, the end of its stderr).
    fn output(self, stderr: String) -> Result<Value, RunError> {
        let status = self.status.map_err(|e| RunError::Io(e.to_string()))?;
        if !status.success() {
            return Err(RunError::Exit {
                status: status.to_string(),
                stderr,
            });
        }
        if self.too_large {
            return Err(RunError::TooLarge { stderr });
        }
        serde_json::from_slice(&self.stdout).map_err(|e| RunError::BadJson {
            error: e.to_string(),
            stderr,
        })
    }
}

/// Feeds `input` to the child, reads its output, and waits for it to exit, for `timeout`
/// at most, renewing the lease meanwhile (and giving up when it is lost).
async fn supervise<C: ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    child: &mut tokio::process::Child,
    input: Vec<u8>,
    timeout: Duration,
) -> Ended {
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let work = async {
        let (_, (stdout, too_large), status) =
            tokio::join!(write_input(stdin, input), read_stdout(stdout), child.wait());
        Ended::Finished(Finished {
            status,
            stdout,
            too_large,
        })
    };
    tokio::pin!(work);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut renew = tokio::time::interval((lease.ttl() / 3).max(Duration::from_millis(100)));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    loop {
        tokio::select! {
            ended = &mut work => break ended,
            () = &mut deadline => break Ended::TimedOut,
            _ = renew.tick() => {
                if let Err(e) = lease.fence(db).await {
                    tracing::warn!("machine lease not renewed: {e}");
                    break Ended::LeaseLost;
                }
            }
        }
    }
}

async fn write_input(stdin: Option<tokio::process::ChildStdin>, input: Vec<u8>) {
    if let Some(mut stdin) = stdin {
        // A command that does not read its input closes the pipe: not an error.
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    }
}

/// Stdout up to [`MAX_OUTPUT_BYTES`], and whether there was more (read to the end either way).
async fn read_stdout(stdout: Option<tokio::process::ChildStdout>) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut too_large = false;
    if let Some(mut out) = stdout {
        let mut chunk = [0u8; 8192];
        loop {
            match out.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if kept.len() + n > MAX_OUTPUT_BYTES {
                        too_large = true;
                    } else {
                        kept.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        }
    }
    (kept, too_large)
}

/// Reads stderr to the end into `kept`, keeping its last [`STDERR_TAIL_BYTES`] or so.
async fn read_stderr_tail(mut err: tokio::process::ChildStderr, kept: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 4096];
    loop {
        match err.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut kept = match kept.lock() {
                    Ok(k) => k,
                    Err(poisoned) => poisoned.into_inner(),
                };
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * STDERR_TAIL_BYTES {
                    // Cut at whitespace, so no part of a token is kept.
                    let cut = kept.len() - STDERR_TAIL_BYTES;
                    let cut = kept[cut..]
                        .iter()
                        .position(u8::is_ascii_whitespace)
                        .map_or(kept.len(), |i| cut + i);
                    kept.drain(..cut);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(1000), MAX_RETRY);
        assert_eq!(backoff(0), FIRST_RETRY);
    }
}
