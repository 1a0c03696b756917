//! The built `staffbot` binary on a temporary database: the README's walk-through, `--json`
//! shapes, and one-line errors with non-zero exit codes.

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::common::{TestDb, example_dir, readme_section, table_code_cells};

struct Cli {
    url: String,
    cwd: tempfile::TempDir,
    _db: TestDb,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    async fn new() -> Cli {
        let db = TestDb::empty().await;
        Cli {
            url: db.url.clone(),
            cwd: tempfile::tempdir().expect("tempdir"),
            _db: db,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// [`Cli::run`] with these environment variables set too.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::cargo_bin("staffbot")
            .expect("binary built")
            .args(args)
            .current_dir(self.cwd.path())
            .env_clear()
            .env("STAFFBOT_DATABASE_URL", &self.url)
            .envs(env.iter().copied())
            .output()
            .expect("runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "{args:?} failed: {}", out.stderr);
        out.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("valid JSON on stdout")
    }

    /// Runs a command that must fail; returns its one-line error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_ne!(out.code, 0, "{args:?} should fail; stdout: {}", out.stdout);
        assert!(out.stdout.is_empty(), "errors go to stderr: {}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {}", out.stderr);
        lines[0].to_string()
    }
}

fn task_row<'a>(tasks: &'a Value, step: &str) -> &'a Value {
    tasks
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["step"] == step)
        .unwrap_or_else(|| panic!("no {step} task in {tasks}"))
}

#[tokio::test]
async fn walk_a_project_from_the_command_line() {
    let cli = Cli::new().await;
    let example = example_dir();
    let example = example.to_str().expect("utf-8 path");
    assert_eq!(
        cli.ok(&["workflow", "load", example]),
        "workflow newsroom version v1: created\n"
    );
    let workflows = cli.json(&["workflow", "list", "--json"]);
    assert_eq!(workflows[0]["slug"], "newsroom");
    assert_eq!(workflows[0]["versions"][0]["steps"][1], "reporting");

    cli.ok(&[
        "worker",
        "add",
        "erin",
        "--slack-user-id",
        "U_ERIN",
        "--first-name",
        "Erin",
        "--admin",
    ]);
    cli.ok(&["worker", "add", "rob", "--slack-user-id", "U_ROB"]);
    cli.ok(&["worker", "add", "rae", "--slack-user-id", "U_RAE"]);
    cli.ok(&["worker", "certify", "erin", "editor"]);
    cli.ok(&["worker", "certify", "rob", "reporter", "--priority", "5"]);
    cli.ok(&[
        "worker",
        "certify",
        "rae",
        "reporter",
        "--workflow",
        "newsroom",
        "--role",
        "entry_level",
    ]);
    cli.ok(&[
        "worker",
        "certify",
        "rae",
        "reporter",
        "--role",
        "reviewer",
        "--staffbot-disabled",
    ]);
    let workers = cli.json(&["worker", "list", "--json"]);
    let rae = &workers.as_array().expect("array")[1];
    assert_eq!(rae["username"], "rae");
    assert_eq!(rae["slack_user_id"], "U_RAE");
    assert_eq!(rae["certifications"][1]["role"], "reviewer");
    assert_eq!(rae["certifications"][1]["staffbot_enabled"], false);
    assert_eq!(workers[2]["certifications"][0]["staffing_priority"], 5);

    let id = cli.ok(&[
        "project",
        "create",
        "--workflow",
        "newsroom",
        "--description",
        "Mayor race",
        "--priority",
        "2",
        "--channel",
        "C_MAYOR",
    ]);
    assert_eq!(id, "1\n", "only the id on stdout");
    let created = cli.json(&[
        "project",
        "create",
        "--workflow",
        "newsroom",
        "--description",
        "Other",
        "--json",
    ]);
    assert_eq!(created, serde_json::json!({"id": 2}));
    let projects = cli.json(&["project", "list", "--json"]);
    assert_eq!(projects[0]["status"], "active");
    assert_eq!(projects[0]["slack_channel_id"], "C_MAYOR");
    assert_eq!(projects[0]["tasks"], 1);

    let tasks = cli.json(&["task", "list", "--project", "1", "--json"]);
    assert_eq!(
        tasks,
        serde_json::json!([{"id": 1, "project_id": 1, "step": "planning", "status": "awaiting_processing", "assignments": [], "output": null, "machine": null}])
    );

    assert_eq!(
        cli.ok(&["task", "assign", "1", "erin"]),
        "task 1: assigned to erin (assignment 0)\n"
    );
    assert_eq!(
        cli.ok(&["task", "submit", "1", "--worker", "erin"]),
        "task 1: complete\n"
    );
    let tasks = cli.json(&["task", "list", "--project", "1", "--json"]);
    let reporting = task_row(&tasks, "reporting");
    assert_eq!(reporting["status"], "awaiting_processing");
    let rid = reporting["id"].as_i64().expect("id").to_string();
    assert_eq!(
        task_row(&tasks, "planning")["assignments"][0],
        serde_json::json!({"worker": "erin", "counter": 0, "status": "submitted"})
    );

    cli.ok(&["task", "assign", &rid, "rob"]);
    assert_eq!(
        cli.ok(&["task", "submit", &rid, "--worker", "rob"]),
        format!("task {rid}: pending_review\n")
    );
    cli.ok(&["task", "assign", &rid, "rae"]);
    assert_eq!(
        cli.ok(&["task", "review", &rid, "--worker", "rae", "--reject"]),
        format!("task {rid}: post_review_processing\n")
    );
    assert_eq!(
        cli.ok(&["task", "submit", &rid, "--worker", "rob"]),
        format!("task {rid}: reviewing\n")
    );
    assert_eq!(
        cli.ok(&["task", "review", &rid, "--worker", "rae", "--approve"]),
        format!("task {rid}: complete\n")
    );

    let reviewing = cli.json(&["task", "list", "--status", "complete", "--json"]);
    assert_eq!(reviewing.as_array().expect("array").len(), 2);
    assert_eq!(
        task_row(&reviewing, "reporting")["assignments"],
        serde_json::json!([{"worker": "rob", "counter": 0, "status": "submitted"}, {"worker": "rae", "counter": 1, "status": "submitted"}])
    );

    assert_eq!(cli.ok(&["project", "abort", "2"]), "project 2 aborted\n");
    let aborted = cli.json(&["task", "list", "--project", "2", "--json"]);
    assert_eq!(aborted[0]["status"], "aborted");
}

#[tokio::test]
async fn errors_are_one_clear_line() {
    let cli = Cli::new().await;
    let example = example_dir();
    cli.ok(&["workflow", "load", example.to_str().expect("utf-8")]);
    cli.ok(&["worker", "add", "erin", "--slack-user-id", "U1"]);
    cli.ok(&[
        "project",
        "create",
        "--workflow",
        "newsroom",
        "--description",
        "P",
    ]);

    assert_eq!(
        cli.fails(&["task", "assign", "1", "zed"]),
        "error: Worker with username zed does not exist"
    );
    assert_eq!(
        cli.fails(&["task", "assign", "1", "erin"]),
        "error: Worker not certified for this task."
    );
    assert_eq!(
        cli.fails(&["task", "assign", "77", "erin"]),
        "error: Task 77 does not exist"
    );
    assert_eq!(
        cli.fails(&["task", "submit", "1", "--worker", "erin"]),
        "error: Task assignment with worker is in broken state."
    );
    assert_eq!(
        cli.fails(&["worker", "add", "erin"]),
        "error: Worker erin already exists"
    );
    assert_eq!(
        cli.fails(&["worker", "add", "other", "--slack-user-id", "U1"]),
        "error: Slack user id U1 already belongs to worker erin"
    );
    assert_eq!(
        cli.fails(&["worker", "certify", "erin", "editor", "--role", "reviewer"]),
        "error: You are trying to add a reviewer certification (editor) for a worker without an entry-level certification"
    );
    assert_eq!(
        cli.fails(&["worker", "certify", "erin", "plumber"]),
        "error: Certification plumber does not exist"
    );
    assert_eq!(
        cli.fails(&[
            "project",
            "create",
            "--workflow",
            "nope",
            "--description",
            "P"
        ]),
        "error: Workflow nope does not exist"
    );
    assert_eq!(
        cli.fails(&[
            "project",
            "create",
            "--workflow",
            "newsroom",
            "--version",
            "v9",
            "--description",
            "P"
        ]),
        "error: Invalid version requested: v9"
    );
    assert_eq!(cli.fails(&["staff", "99"]), "error: Task 99 does not exist");
    cli.ok(&["worker", "certify", "erin", "editor"]);
    cli.ok(&["task", "assign", "1", "erin"]);
    assert_eq!(
        cli.fails(&["staff", "1"]),
        "error: Task 1 got an error: \"Status incompatible with new assignment\""
    );
    assert_eq!(
        cli.ok(&["restaff", "1", "erin"]),
        "Got it! I will start restaffing task 1!\n"
    );
    // Issue 27, item 14: the path is named.
    assert_eq!(
        cli.fails(&["workflow", "load", "nope"]),
        "error: nope: Workflow directory does not exist."
    );
    assert_eq!(
        cli.fails(&["workflow", "load", "/nonexistent/wf"]),
        "error: /nonexistent/wf: Workflow directory does not exist."
    );
    // Every missing token is named at once.
    assert_eq!(
        cli.fails(&["serve"]),
        "error: SLACK_BOT_TOKEN and SLACK_APP_TOKEN are not set (or slack.bot_token and slack.app_token in the config file)"
    );
    let out = cli.run_with(&["serve"], &[("SLACK_BOT_TOKEN", "xoxb-x")]);
    assert_eq!(
        (out.code, out.stderr.trim_end()),
        (
            1,
            "error: SLACK_APP_TOKEN is not set (or slack.app_token in the config file)"
        )
    );

    // Usage errors come from clap, with exit code 2.
    let out = cli.run(&["task", "list", "--status", "done"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown status \"done\""),
        "{}",
        out.stderr
    );

    // Configuration errors name the key.
    std::fs::write(
        cli.cwd.path().join("staffbot.toml"),
        "[staffbot]\nbatch_size = 3\n",
    )
    .expect("write");
    assert_eq!(
        cli.fails(&["worker", "list"]),
        "error: unknown configuration key `staffbot.batch_size` in staffbot.toml"
    );
}

/// Issue 27, item 14: `staffbot task list | head -1` ends quietly when the reader has gone: no
/// panic, no backtrace, exit 0.
#[tokio::test]
async fn a_reader_that_goes_away_is_not_an_error() {
    let cli = Cli::new().await;
    let example = example_dir();
    cli.ok(&["workflow", "load", example.to_str().expect("utf-8")]);
    for _ in 0..3 {
        cli.ok(&[
            "project",
            "create",
            "--workflow",
            "newsroom",
            "--description",
            "P",
        ]);
    }
    for args in [
        &["task", "list"][..],
        &["task", "list", "--json"],
        &["worker", "list"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_staffbot"))
            .args(args)
            .current_dir(cli.cwd.path())
            .env_clear()
            .env("STAFFBOT_DATABASE_URL", &cli.url)
            .env("RUST_BACKTRACE", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn migrate_subcommand() {
    use migrations::sea_orm_migration::MigratorTrait;
    let names: Vec<String> = migrations::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let n = names.len();
    let status = |applied: usize| -> String {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let state = if i < applied { "applied" } else { "pending" };
                format!("{state}  {name}\n")
            })
            .collect()
    };
    let cli = Cli::new().await;
    assert_eq!(cli.ok(&["migrate", "status"]), status(0));
    assert_eq!(cli.ok(&["migrate"]), format!("applied {n} migration(s)\n"));
    assert_eq!(cli.ok(&["migrate", "status"]), status(n));
    assert_eq!(cli.ok(&["migrate", "down"]), "rolled back 1 migration(s)\n");
    assert_eq!(cli.ok(&["migrate", "status"]), status(n - 1));
    assert_eq!(cli.ok(&["migrate", "up"]), "applied 1 migration(s)\n");
    assert_eq!(
        cli.ok(&["migrate", "down", "--steps", "0"]),
        format!("rolled back {n} migration(s)\n")
    );
    assert_eq!(cli.ok(&["migrate", "status"]), status(0));
    // Every other command migrates by itself.
    assert_eq!(cli.ok(&["worker", "list", "--json"]), "[]\n");
    assert_eq!(cli.ok(&["migrate", "up"]), "applied 0 migration(s)\n");
}

/// Issue 30: this release runs on a database a newer release migrated (rolling upgrades and
/// rollbacks): it applies nothing, says so, lists the newer migrations, and refuses to roll
/// back past them or to run on migrations of another line of releases.
#[tokio::test]
async fn a_database_a_newer_release_migrated_is_served_not_refused() {
    let cli = Cli::new().await;
    cli.ok(&["migrate"]);
    let db = staffbot::db::connect(&cli.url).await.expect("connect");
    let add = |version: &'static str| {
        let db = db.clone();
        async move {
            use sea_orm::ConnectionTrait;
            db.execute_unprepared(&format!(
                "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{version}', 0)"
            ))
            .await
            .expect("insert");
        }
    };
    add("m20991231_000099_a_newer_release").await;

    let out = cli.run(&["worker", "list", "--json"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "[]\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("migrated by a newer release"),
        "{}",
        out.stderr
    );
    assert!(
        cli.ok(&["migrate", "status"])
            .ends_with("applied  m20991231_000099_a_newer_release  (a newer release's)\n")
    );
    assert!(cli.ok(&["migrate"]).starts_with("applied 0 migration(s)\n"));
    let refused = cli.run(&["migrate", "down"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("roll them back with that release's binary first"),
        "{}",
        refused.stderr
    );

    add("m20261127_000001_b_another_line").await;
    let refused = cli.run(&["worker", "list"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("m20261127_000001_b_another_line"),
        "{}",
        refused.stderr
    );
}

/// Issue 18: no database password reaches the terminal, from `check` or from any error: a
/// password in the user info or in a query parameter, a URL that does not parse, a driver that
/// quotes the URL it failed on, a config file that does not parse, and debug logs.
#[tokio::test]
async fn database_passwords_are_never_printed() {
    let db = TestDb::new().await;
    let sep = if db.url.contains('?') { '&' } else { '?' };
    // A "server" that hangs up at once: the driver fails at once (a refused connection would be
    // retried until the pool's timeout).
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    std::thread::spawn(move || for _ in server.incoming() {});
    let urls = [
        "postgres://u:pw-s3cret@[bad/db".to_string(),
        format!("postgres://u@127.0.0.1:{port}/db?password=pw-s3cret"),
        format!("postgres://u:pw-s3cret@127.0.0.1:{port}/db?sslpassword=pw-s3cret&PWD=pw-s3cret"),
        "mysql://u:pw-s3cret@127.0.0.1:1/db".to_string(),
        "not a url?password=pw-s3cret".to_string(),
        // Reachable (PostgreSQL ignores the parameter under trust auth; SQLite refuses it).
        format!("{}{sep}password=pw-s3cret", db.url),
    ];
    let cwd = tempfile::tempdir().expect("tempdir");
    let run = |url: &str, args: &[&str]| {
        let out = Command::cargo_bin("staffbot")
            .expect("binary built")
            .args(args)
            .current_dir(cwd.path())
            .env_clear()
            .env("STAFFBOT_DATABASE_URL", url)
            .env("SLACK_API_URL", "http://127.0.0.1:1/api")
            .env("RUST_LOG", "debug")
            .output()
            .expect("runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    };
    for url in &urls {
        for args in [&["check"][..], &["worker", "list"], &["migrate", "status"]] {
            let (code, text) = run(url, args);
            assert!(!text.contains("s3cret"), "{url} {args:?} printed:\n{text}");
            if args == ["check"] {
                assert!(text.contains("database: "), "{text}");
            } else if !url.starts_with(&db.url) {
                assert_eq!(code, 1, "{url} {args:?}: {text}");
                assert!(text.contains("error: "), "{text}");
            }
        }
    }
    // A config file that does not parse is reported without the line it failed on.
    std::fs::write(
        cwd.path().join("staffbot.toml"),
        "database_url = \"postgres://u:pw-s3cret@db/x\nstaffbot = 1\n",
    )
    .expect("write");
    let (code, text) = run("", &["worker", "list"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("invalid config file") && text.contains("line 1, column"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

/// Splits a usage line into words and bracketed groups (`[--role a|b]`, `(--approve | --reject)`),
/// an option taking a metavariable staying with it (`--workflow SLUG`).
fn usage_elements(usage: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut depth) = (String::new(), 0);
    for c in usage.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ' ' if depth == 0 => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            _ => {}
        }
        word.push(c);
    }
    words.push(word);
    let mut out: Vec<String> = Vec::new();
    for w in words {
        match out.last_mut() {
            Some(prev) if prev.starts_with("--") && is_metavar(&w) => *prev = format!("{prev} {w}"),
            _ => out.push(w),
        }
    }
    out
}

/// `<task>`, `SLUG`, `N`, `C…`: a value the user chooses, not a literal.
fn is_metavar(word: &str) -> bool {
    word.starts_with('<') || !word.chars().any(|c| c.is_ascii_lowercase())
}

/// The argument lists an element stands for: each enumerated value (`a|b` in `[x a|b]`, or
/// `--a | --b`), a placeholder for a metavariable, and nothing for an optional group.
fn alternatives(element: &str) -> Vec<Vec<String>> {
    let optional = element.starts_with('[');
    let inner = element.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')'));
    let mut alts: Vec<Vec<String>> = if inner.contains(" | ") {
        inner.split(" | ").flat_map(alternatives).collect()
    } else {
        let (flag, value) = match inner.split_once(' ') {
            Some((flag, value)) => (Some(flag), value),
            None => (None, inner),
        };
        let values: Vec<&str> = if is_metavar(value) {
            // A value of the metavariable's kind (a number fits most).
            vec![match value {
                "ADDR" => "127.0.0.1:8080",
                "YYYY-MM-DD" => "2026-12-07",
                _ => "1",
            }]
        } else {
            value.split('|').collect()
        };
        values
            .into_iter()
            .map(|v| flag.into_iter().chain([v]).map(String::from).collect())
            .collect()
    };
    if optional {
        alts.push(Vec::new());
    }
    alts
}

/// The README's command-line table, row by row, against the binary's parser: every command,
/// every option, and every value an option or argument enumerates is accepted; and every value
/// the parser enumerates is in the README.
#[test]
fn the_binary_accepts_what_the_readme_documents() {
    use clap::{CommandFactory, Parser};
    use staffbot::cli::Cli;

    let rows = table_code_cells(&readme_section("Command line"));
    assert!(rows.len() >= 18, "{rows:?}");
    let mut documented: Vec<(String, String)> = Vec::new();
    for usage in &rows {
        let choices: Vec<Vec<Vec<String>>> = usage_elements(usage)
            .iter()
            .map(|e| alternatives(e))
            .collect();
        let command: Vec<&str> = usage
            .split(' ')
            .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        for (i, alts) in choices.iter().enumerate() {
            for alt in alts {
                let args: Vec<String> = choices
                    .iter()
                    .enumerate()
                    .flat_map(|(j, a)| if i == j { alt.clone() } else { a[0].clone() })
                    .collect();
                if let Err(e) =
                    Cli::try_parse_from(std::iter::once("staffbot".into()).chain(args.clone()))
                {
                    panic!(
                        "README `{usage}`: `staffbot {}` is refused:\n{e}",
                        args.join(" ")
                    );
                }
                if let Some(value) = alt.last() {
                    documented.push((command.join(" "), value.clone()));
                }
            }
        }
    }

    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(String, String)>) {
        for arg in cmd
            .get_arguments()
            .filter(|a| a.get_action().takes_values())
        {
            for value in arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
            {
                out.push((path.join(" "), value.get_name().to_string()));
            }
        }
        for sub in cmd.get_subcommands() {
            let mut path = path.clone();
            path.push(sub.get_name().to_string());
            walk(sub, path, out);
        }
    }
    let mut cli = Cli::command();
    cli.build();
    let mut enumerated = Vec::new();
    walk(&cli, Vec::new(), &mut enumerated);
    assert!(enumerated.len() >= 10, "{enumerated:?}");
    for (command, value) in enumerated {
        assert!(
            documented.contains(&(command.clone(), value.clone())),
            "`staffbot {command}` accepts `{value}`, which README's command-line table does not list"
        );
    }
}

/// `task complete`: what a team's own automation calls for a machine step staffbot does not run.
#[tokio::test]
async fn task_complete_records_the_output_of_a_machine_step() {
    let cli = Cli::new().await;
    use crate::common::{flow, machine_step, step};
    let setup = machine_step("setup", "press.setup").described("Create folders");
    let write = step("write", "writer")
        .described("Write it")
        .after(&["setup"]);
    let dir = flow(&["writer"], vec![setup, write.no_review()])
        .named("press", "Articles")
        .dir();
    cli.ok(&["workflow", "load", &dir.path().to_string_lossy()]);
    cli.ok(&[
        "project",
        "create",
        "--workflow",
        "press",
        "--description",
        "Mayor race",
    ]);
    let file = cli.cwd.path().join("out.json");
    std::fs::write(&file, r#"{"folder": "https://docs.example/1"}"#).expect("write");
    cli.ok(&[
        "task",
        "complete",
        "1",
        "--output",
        &format!("@{}", file.display()),
    ]);
    let tasks = cli.json(&["task", "list", "--json"]);
    let setup = task_row(&tasks, "setup");
    assert_eq!(setup["status"], "complete");
    assert_eq!(
        setup["output"],
        serde_json::json!({"folder": "https://docs.example/1"})
    );
    assert_eq!(task_row(&tasks, "write")["status"], "awaiting_processing");
    assert_eq!(
        cli.fails(&["task", "complete", "1"]),
        "error: Task 1 is complete; only a task waiting for its automation can be completed"
    );
    assert_eq!(
        cli.fails(&["task", "complete", "2"]),
        "error: Task 2 is a human step; workers submit it (`staffbot task submit`)"
    );
    let bad = cli.fails(&["task", "complete", "2", "--output", "{"]);
    assert!(bad.starts_with("error:") && bad.contains("JSON"), "{bad}");
}

#[tokio::test]
async fn stored_data_that_no_longer_parses_is_named_and_not_called_a_database_error() {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use staffbot::db::entities::step;

    let cli = Cli::new().await;
    let example = example_dir();
    cli.ok(&["workflow", "load", example.to_str().expect("utf-8 path")]);
    // A step's assignment policy as another release might have stored it.
    let db = staffbot::db::connect(&cli.url).await.expect("connect");
    step::Entity::update_many()
        .col_expr(
            step::Column::AssignmentPolicy,
            Expr::value(serde_json::json!("assign the fastest")),
        )
        .filter(step::Column::Slug.eq("planning"))
        .exec(&db)
        .await
        .expect("policy overwritten");
    db.close().await.expect("close");

    let error = cli.fails(&[
        "project",
        "create",
        "--workflow",
        "newsroom",
        "--description",
        "x",
    ]);
    assert!(
        error.starts_with("error: the stored assignment policy of step planning (id "),
        "{error}"
    );
    assert!(error.contains(") is invalid: "), "{error}");
    assert!(!error.contains("database error"), "{error}");
    assert_eq!(
        cli.json(&["project", "list", "--json"]),
        serde_json::json!([]),
        "nothing was created"
    );
}

/// The rush-desk example from the command line: project data, a description from it, and
/// SanityBot's dry run and real run for one project.
#[tokio::test]
async fn project_data_descriptions_and_sanity_dry_runs() {
    let cli = Cli::new().await;
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rush-desk");
    cli.ok(&["workflow", "load", example.to_str().expect("utf-8 path")]);
    let workflows = cli.json(&["workflow", "list", "--json"]);
    assert_eq!(
        workflows[0]["versions"][0]["scripts"],
        serde_json::json!(["checks.rhai"])
    );
    cli.ok(&["worker", "add", "rob", "--slack-user-id", "U0ROB"]);
    cli.ok(&["worker", "certify", "rob", "reporter"]);
    let data = r#"{"rush": true, "sources": ["fire chief", "mayor"], "words": 400}"#;
    let id = cli.ok(&[
        "project",
        "create",
        "--workflow",
        "rush_desk",
        "--description",
        "Fire & smoke",
        "--channel",
        "C0FIRE",
        "--data",
        data,
    ]);
    assert_eq!(id.trim(), "1");
    std::fs::write(cli.cwd.path().join("calm.json"), "{}").expect("write");
    cli.ok(&[
        "project",
        "create",
        "--workflow",
        "rush_desk",
        "--description",
        "Garden show",
        "--data",
        "@calm.json",
    ]);
    let projects = cli.json(&["project", "list", "--json"]);
    assert_eq!(
        projects[0]["data"],
        serde_json::json!({"rush": true, "sources": ["fire chief", "mayor"], "words": 400})
    );
    assert_eq!(projects[1]["data"], serde_json::json!({}));
    assert_eq!(
        cli.fails(&[
            "project",
            "create",
            "--workflow",
            "rush_desk",
            "--description",
            "x",
            "--data",
            "[1]"
        ]),
        "error: --data must be a JSON object, such as {\"rush\": true}"
    );
    // Project data is capped (64 KiB by default): SanityBot and offers load it.
    let big = format!(r#"{{"notes": "{}"}}"#, "x".repeat(70_000));
    std::fs::write(cli.cwd.path().join("big.json"), &big).expect("write");
    let args = [
        "project",
        "create",
        "--workflow",
        "rush_desk",
        "--description",
        "x",
        "--data",
        "@big.json",
    ];
    assert_eq!(
        cli.fails(&args),
        "error: --data is 70012 bytes as compact JSON, more than the 65536 a project may hold (staffbot.max_project_data_bytes); keep large files elsewhere and put their address in the data"
    );
    std::fs::write(
        cli.cwd.path().join("staffbot.toml"),
        "[staffbot]\nmax_project_data_bytes = 100000\n",
    )
    .expect("write");
    assert_eq!(cli.ok(&args).trim(), "3", "a larger cap set in the config");
    std::fs::remove_file(cli.cwd.path().join("staffbot.toml")).expect("rm");

    assert_eq!(
        cli.ok(&["workflow", "render-description", "1"]),
        "RUSH: Fire & smoke, about 400 words; sources: fire chief, mayor. Questions: the news desk.\n"
    );
    let out = cli.run(&["workflow", "render-description", "2"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert_eq!(
        out.stderr,
        "task 2: step photography has no detailed description\n"
    );

    assert_eq!(
        cli.ok(&["sanity", "run", "--project", "1", "--dry-run"]),
        "project 1: the check function returned nothing\ndry run: nothing posted or recorded\n"
    );
    cli.ok(&["task", "assign", "1", "rob"]);
    cli.ok(&["task", "submit", "1", "--worker", "rob"]);
    let photo =
        "<@U0ROB>: the story is written but nobody has the photos yet. Can someone take them?";
    assert_eq!(
        cli.ok(&["sanity", "run", "--project", "1", "--dry-run"]),
        format!(
            "project 1: the check function returned photo_unassigned\n\
             photo_unassigned: fires (first time)\n  would post to C0FIRE: {photo}\n\
             dry run: nothing posted or recorded\n"
        )
    );
    // A dry run records nothing: the real run fires it, then it is not due.
    let out = cli.ok(&["sanity", "run", "--project", "1"]);
    assert!(
        out.starts_with(&format!(
            "project 1: the check function returned photo_unassigned\n\
             photo_unassigned: fires (first time)\n  posts to C0FIRE: {photo}\n\
             sanity: 1 check(s) fired, 1 message(s) queued\n"
        )),
        "{out}"
    );
    let out = cli.ok(&["sanity", "run", "--project", "1", "--dry-run"]);
    assert!(
        out.contains("photo_unassigned: not due (last fired ")
            && out.contains("; fires again 14400 s after that)"),
        "{out}"
    );
    assert_eq!(
        cli.fails(&["sanity", "run", "--project", "9"]),
        "error: Project 9 does not exist"
    );
}

#[tokio::test]
async fn workers_choose_how_they_hear_about_work() {
    let cli = Cli::new().await;
    assert_eq!(
        cli.fails(&["worker", "add", "erin", "--notify", "email"]),
        "error: Worker erin cannot be notified by email without an email address (--email)"
    );
    let out = cli.run(&[
        "worker",
        "add",
        "erin",
        "--email",
        "erin@example.com",
        "--notify",
        "email",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "added worker erin (id 1)\n");
    // Email is not configured here: the command says what that means for her.
    assert!(
        out.stderr.contains("email is not configured") && out.stderr.contains("not offered work"),
        "{}",
        out.stderr
    );
    cli.ok(&["worker", "add", "rob", "--slack-user-id", "U0ROB"]);
    cli.ok(&[
        "worker",
        "update",
        "rob",
        "--email",
        "rob@example.com",
        "--notify",
        "both",
    ]);
    assert_eq!(
        cli.fails(&["worker", "update", "rob", "--email", "", "--notify", "both"]),
        "error: Worker rob cannot be notified by both without an email address (--email)"
    );
    cli.ok(&[
        "worker",
        "update",
        "erin",
        "--slack-user-id",
        "U0ERIN",
        "--admin",
        "true",
    ]);
    cli.ok(&["worker", "update", "erin", "--slack-user-id", "none"]);
    assert_eq!(
        cli.fails(&["worker", "update", "nobody", "--notify", "slack"]),
        "error: Worker with username nobody does not exist"
    );
    let list = cli.json(&["worker", "list", "--json"]);
    let summary: Vec<(String, String, Value, bool)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|w| {
            (
                w["username"].as_str().unwrap_or_default().to_string(),
                w["notify"].as_str().unwrap_or_default().to_string(),
                w["slack_user_id"].clone(),
                w["is_admin"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("erin".into(), "email".into(), Value::Null, true),
            ("rob".into(), "both".into(), Value::from("U0ROB"), false),
        ]
    );
}

/// `worker availability` and the working-hours options of `worker update`, as an admin uses
/// them; `worker list --json` shows the result.
#[tokio::test]
async fn admins_set_availability_and_working_hours() {
    let cli = Cli::new().await;
    assert_eq!(
        cli.fails(&["worker", "add", "ann", "--max-autostaff-hours", "30"]),
        "error: --max-autostaff-hours must be between 0 and 24 (not 30)"
    );
    cli.ok(&["worker", "add", "ann", "--slack-user-id", "U0ANN"]);
    cli.ok(&["worker", "add", "bo", "--max-autostaff-hours", "3"]);
    let out = cli.ok(&["worker", "availability", "ann", "--week", "2026-12-09"]);
    assert_eq!(out, "ann — week of 2026-12-07: no availability set\n");
    let out = cli.run(&[
        "worker",
        "availability",
        "ann",
        "--week",
        "2026-12-09",
        "--mon",
        "4",
        "--tue",
        "2.5",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "ann — week of 2026-12-07: mon 4, tue 2.5 (auto-staffed up to 0 h a day)\n"
    );
    assert!(
        out.stderr.contains(
            "never auto-staffed until `staffbot worker update ann --max-autostaff-hours N`"
        ),
        "{}",
        out.stderr
    );
    // Days not given keep their hours.
    let week = cli.json(&[
        "worker",
        "availability",
        "ann",
        "--week",
        "2026-12-07",
        "--wed",
        "8",
        "--json",
    ]);
    assert_eq!(
        (
            week["week"].clone(),
            week["mon"].clone(),
            week["tue"].clone(),
            week["wed"].clone()
        ),
        (json!("2026-12-07"), json!(4.0), json!(2.5), json!(8.0))
    );
    assert_eq!(
        cli.fails(&["worker", "availability", "ann", "--mon", "25"]),
        "error: --mon: 25 is not a number of hours between 0 and 24"
    );
    cli.ok(&[
        "worker",
        "update",
        "ann",
        "--max-autostaff-hours",
        "6",
        "--tz",
        "Europe/Berlin",
        "--working-hours",
        "8:00-16:00",
        "--working-days",
        "Mon-Thu",
    ]);
    assert_eq!(
        cli.fails(&["worker", "update", "ann", "--tz", "Mars/Olympus"]),
        "error: \"Mars/Olympus\" is not a time zone name like \"Europe/Berlin\""
    );
    assert_eq!(
        cli.fails(&["worker", "update", "ann", "--working-hours", "9-5"]),
        "error: \"9-5\" is not working hours like \"09:00-18:00\""
    );
    let list = cli.json(&["worker", "list", "--json"]);
    let ann = &list[0];
    assert_eq!(list[1]["max_autostaff_hours_per_day"], json!(3.0), "bo");
    assert_eq!(ann["max_autostaff_hours_per_day"], json!(6.0));
    assert_eq!(ann["tz"], json!("Europe/Berlin"));
    assert_eq!(ann["tz_set_by_admin"], json!(true));
    assert_eq!(ann["working_hours"], json!("08:00-16:00"));
    assert_eq!(ann["working_days"], json!("mon,tue,wed,thu"));
    // `none` goes back to Slack's time zone and the configured hours.
    cli.ok(&[
        "worker",
        "update",
        "ann",
        "--tz",
        "none",
        "--working-hours",
        "none",
    ]);
    let list = cli.json(&["worker", "list", "--json"]);
    assert_eq!(list[0]["tz"], Value::Null);
    assert_eq!(list[0]["tz_set_by_admin"], json!(false));
    assert_eq!(list[0]["working_hours"], json!("09:00-18:00"));
}
