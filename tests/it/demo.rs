//! `staffbot demo` in a real browser: headless Chromium driven over chromedriver (WebDriver,
//! `fantoccini`) against the built binary. The admin staffs a task with a slash command, a
//! worker accepts the offer by clicking its button, another worker's offer says it was taken.
//! The test also saves the screenshot the README shows (`docs/demo.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them and sets
//! `STAFFBOT_REQUIRE_BROWSER=1`, without which the test is skipped (with a message) where they
//! are missing. It runs in the SQLite run only: the demo brings its own database.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);

fn find(program: &str, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .chain(std::env::var_os("PATH").into_iter().flat_map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .collect::<Vec<_>>()
        }))
        .find(|p| p.is_file())
}

/// Starts `program args…` and reads its stdout until a line contains `needle`; returns the
/// process and that line.
async fn start_until(program: &Path, args: &[&str], needle: &str) -> (Child, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(needle) {
                return (line, seen);
            }
            seen.push(line);
        }
        panic!(
            "{} ended before printing {needle:?}: {seen:?}",
            program.display()
        );
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} did not print {needle:?} within {WAIT:?}",
            program.display()
        )
    });
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut all = found.1;
    all.push(found.0);
    (child, all.join("\n"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits for the element at `xpath` and clicks it, again if the page re-rendered it meanwhile
/// (the page redraws on every change in the workspace).
async fn click(c: &Client, xpath: &str) {
    for _ in 0..20 {
        let element = wait_for(c, xpath).await;
        match element.click().await {
            Ok(_) => return,
            Err(CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference => {}
            Err(e) => panic!("click {xpath}: {e}"),
        }
    }
    panic!("{xpath} kept changing under the click");
}

async fn wait_for(c: &Client, xpath: &str) -> Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath} within {WAIT:?}: {e}"))
}

/// Waits until the main pane shows `text`.
async fn wait_for_text(c: &Client, text: &str) {
    wait_for(c, &format!("//main[contains(., \"{text}\")]")).await;
}

async fn be(c: &Client, user_id: &str) {
    for _ in 0..20 {
        let select = wait_for(c, "//select[@id='user']").await;
        match select.select_by_value(user_id).await {
            Ok(_) => return,
            Err(CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference => {}
            Err(e) => panic!("switch to {user_id}: {e}"),
        }
    }
}

#[tokio::test]
async fn the_demo_in_a_browser() {
    if crate::common::pg_url().is_some() {
        return; // the demo brings its own SQLite database: once is enough
    }
    let required = std::env::var_os("STAFFBOT_REQUIRE_BROWSER").is_some();
    let chromium = find("chromium", &["/usr/bin/chromium"]);
    let driver = find("chromedriver", &["/usr/bin/chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            !required,
            "chromium and chromedriver are required (STAFFBOT_REQUIRE_BROWSER)"
        );
        eprintln!("skipped: the browser test needs Debian's chromium and chromium-driver");
        return;
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_staffbot"));
    let (_demo, out) = start_until(bin, &["demo", "--listen", "127.0.0.1:0"], "Press Ctrl-C").await;
    let url = out
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the demo prints its URL")
        .to_string();
    let task = out
        .split("/staffbot staff ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the demo suggests a task to staff")
        .to_string();
    let port = free_port();
    let (_driver, _) = start_until(
        &driver,
        &[&format!("--port={port}")],
        "started successfully",
    )
    .await;
    let caps = serde_json::json!({"goog:chromeOptions": {
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,820"]}});
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");

    // The admin staffs the photography task from the project's channel.
    c.goto(&url).await.expect("open the page");
    click(
        &c,
        "//a[contains(@class,'conv')][contains(., 'proj-mayor-race')]",
    )
    .await;
    let compose = wait_for(&c, "//input[@id='compose']").await;
    compose
        .send_keys(&format!("/staffbot staff {task}\u{E007}"))
        .await
        .expect("type the command");
    wait_for_text(&c, &format!("Got it! I will start staffing task {task}!")).await;

    // A photographer accepts the offer in their DM.
    be(&c, "U0PAT").await;
    let offer = "//div[contains(@class,'msg')][contains(., 'Shoot and select the photos')]";
    click(&c, &format!("{offer}//button[.='Accept']")).await;
    wait_for_text(&c, "You got the task!").await;
    let shot = c.screenshot().await.expect("screenshot");
    click(
        &c,
        "//a[contains(@class,'conv')][contains(., 'proj-mayor-race')]",
    )
    .await;
    wait_for_text(&c, "@pat has been added to the team. Welcome aboard!").await;

    // Another photographer's offer now says it was taken.
    be(&c, "U0PIA").await;
    wait_for_text(&c, "This task has been taken by another expert.").await;

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/demo.png");
    std::fs::write(&docs, shot).expect("save the screenshot");
    c.close().await.expect("close the browser");
}

/// `staffbot demo` with its own temporary directory; stdout piped.
fn demo_in(tmp: &Path, listen: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_staffbot"));
    c.args(["demo", "--listen", listen])
        .env_clear()
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// The demo's files left in `tmp`.
fn left_in(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .expect("tmp")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("staffbot-demo"))
        .collect()
}

/// Issue 27: a demo on a busy port says so, with what to do, before writing anything; a demo
/// logs warnings only by default (its banner stays in view); stopped with Ctrl-C it exits 0
/// and leaves no database file behind.
#[tokio::test]
async fn a_busy_port_is_said_first_and_a_stopped_demo_leaves_nothing() {
    if crate::common::pg_url().is_some() {
        return; // the demo brings its own SQLite database: once is enough
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = demo_in(tmp.path(), &addr).output().await.expect("demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: the address is in use"))
            && stderr.contains("--listen"),
        "{stderr}"
    );
    assert_eq!(left_in(tmp.path()), Vec::<String>::new(), "nothing seeded");

    let mut child = demo_in(tmp.path(), &format!("127.0.0.1:{}", free_port()))
        .spawn()
        .expect("demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, lines.next_line()).await {
        let done = line.contains("Press Ctrl-C to stop.");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("removed when the demo stops")),
        "{seen:?}"
    );
    assert!(
        !left_in(tmp.path()).is_empty(),
        "the database is there while it runs"
    );
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("stopped in time")
        .expect("status");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        left_in(tmp.path()),
        Vec::<String>::new(),
        "nothing left behind"
    );
    // The banner is not buried under the daemon's log: warnings only, by default.
    let log = log.await.expect("stderr");
    assert!(!log.contains(" INFO "), "{log}");
}
