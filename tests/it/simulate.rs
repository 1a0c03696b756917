//! `staffbot simulate` (issue 26): staffbot's own staffing engine in simulated time, against a
//! population of simulated workers.

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use staffbot::db::entities::{staffing_inquiry, staffing_response};
use staffbot::simulate::population::Population;
use staffbot::simulate::{PolicyReport, Settings, run_policy};

use crate::common::{TestDb, count};

/// Eight workers in two time zones, six tasks a weekday for two days.
const SMALL: &str = r#"
[simulation]
days = 2
seed = 3
start = "2026-01-05T00:00:00Z"

[[tasks]]
step = "copy_edit"
per_day = 6
hours = [9, 17]

[[workers]]
count = 5
certification = "editor"
priority = 1
tz = "Europe/London"
working_hours = [9, 18]
accept = { beta = [3, 3] }
answer = 0.9
delay_minutes = { uniform = [1, 10] }
busy_after_win_hours = 4

[[workers]]
count = 3
certification = "editor"
tz = "America/New_York"
working_hours = [9, 18]
accept = 0.5
answer = { uniform = [0.5, 1.0] }
delay_minutes = 20
"#;

fn settings() -> Settings {
    Settings {
        batch: staffbot::staffing::batch::BatchSettings {
            batch_size: 2,
            frequency: Duration::from_secs(120),
            ..Default::default()
        },
        reminder_interval: Duration::from_secs(86_400),
        days: None,
        seed: None,
        adaptive: Default::default(),
    }
}

#[tokio::test]
async fn the_engine_staffs_the_population_and_the_same_seed_gives_the_same_run() {
    let population = Population::parse(SMALL).expect("a valid population");
    let first_db = TestDb::empty().await;
    let first = run_policy(&population, "orchestra", &settings(), &first_db.url)
        .await
        .expect("runs");
    let report = PolicyReport::of(&first);
    assert_eq!(report.tasks, 12);
    let staffed = first.tasks.iter().filter(|t| t.staffed.is_some()).count();
    assert!(staffed >= 10, "{staffed} of 12 staffed: {:?}", first.tasks);
    // The real engine kept its books: every offer counted is an offer stored, every task
    // staffed is one winner stored.
    let offers: usize = first.tasks.iter().map(|t| t.offers).sum();
    assert_eq!(
        count::<staffing_inquiry::Entity>(&first_db.db).await,
        offers as u64
    );
    assert_eq!(
        first.wins.iter().sum::<u32>() as usize,
        staffed,
        "one winner a staffed task"
    );
    let winners = staffing_response::Entity::find()
        .filter(staffing_response::Column::IsWinner.eq(true))
        .count(&first_db.db)
        .await
        .expect("count");
    assert_eq!(winners as usize, staffed);
    // Priority 1 (London) is asked before priority 0 (New York): a first offer never goes to
    // New York while a Londoner is left.
    assert!(first.wins[..5].iter().sum::<u32>() >= first.wins[5..].iter().sum::<u32>());

    let again_db = TestDb::empty().await;
    let again = run_policy(&population, "orchestra", &settings(), &again_db.url)
        .await
        .expect("runs");
    assert_eq!(first.tasks, again.tasks, "same seed, same run");
    assert_eq!(first.wins, again.wins);
    assert_eq!(report, PolicyReport::of(&again));

    let other_db = TestDb::empty().await;
    let mut other_seed = settings();
    other_seed.seed = Some(99);
    let other = run_policy(&population, "orchestra", &other_seed, &other_db.url)
        .await
        .expect("runs");
    assert_ne!(first.tasks, other.tasks, "another seed, another run");
}

#[tokio::test]
async fn offers_outside_working_hours_are_counted() {
    // Everyone works in Tokyo; tasks arrive in London's morning (evening in Tokyo).
    let population = Population::parse(
        &SMALL
            .replace("Europe/London", "Asia/Tokyo")
            .replace("America/New_York", "Asia/Tokyo"),
    )
    .expect("valid");
    let t = TestDb::empty().await;
    let run = run_policy(&population, "orchestra", &settings(), &t.url)
        .await
        .expect("runs");
    let report = PolicyReport::of(&run);
    let offers: usize = run.tasks.iter().map(|t| t.offers).sum();
    assert!(offers > 0);
    assert_eq!(
        report.offers_outside_hours, offers,
        "all of them: Orchestra ignores hours"
    );
    // Answers wait for the next Tokyo morning: nothing is staffed within minutes.
    assert!(report.median_minutes > 60.0, "{report:?}");
}

/// `staffbot simulate` as a team runs it on its own population file.
#[test]
fn the_command_prints_a_table_json_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pool.toml");
    std::fs::write(&file, SMALL).expect("write");
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("staffbot")
            .expect("binary")
            .args(["simulate", "--population"])
            .arg(&file)
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .output()
            .expect("runs")
    };
    let out = run(&["--json", "--report", "report"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let orchestra = json["orchestra"]
        .as_object()
        .expect("one object per policy");
    let mut keys: Vec<&str> = orchestra.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "load_gini",
            "median_minutes",
            "offers_outside_hours",
            "offers_per_staffed_task",
            "p90_minutes",
            "tasks",
            "unstaffed_share"
        ]
    );
    assert_eq!(orchestra["tasks"], 12);
    let report = std::fs::read_to_string(dir.path().join("report/report.md")).expect("report");
    assert!(report.contains("| orchestra | 12 |"), "{report}");
    for plot in ["cdf.svg", "offers.svg", "load.svg"] {
        let svg = std::fs::read_to_string(dir.path().join("report").join(plot)).expect("plot");
        assert!(
            svg.starts_with("<svg") && svg.contains("orchestra"),
            "{plot}"
        );
    }

    let out = run(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("policy") && table.contains("orchestra        12"),
        "{table}"
    );

    let out = run(&["--policy", "orchestra,clairvoyant"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: unknown policy \"clairvoyant\"; the policies are: orchestra, adaptive"
    );
    std::fs::write(&file, SMALL.replace("count = 5", "count = 5\nspeed = 2")).expect("write");
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ")
            && err.contains("pool.toml")
            && err.contains("unknown field `speed`"),
        "{err}"
    );
}

/// The adaptive policy (experimental) through the same engine: every staffed task has one
/// winner, and a priority tier is still asked before the next.
#[tokio::test]
async fn the_adaptive_policy_runs_on_the_same_engine() {
    // Days that just passed (and weekends too), so that `worker list` finds them recent.
    let start = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y-%m-%dT00:00:00Z");
    let text = SMALL
        .replace("2026-01-05T00:00:00Z", &start.to_string())
        .replace("per_day = 6", "per_day = 6\nweekend = true");
    let population = Population::parse(&text).expect("valid");
    let t = TestDb::empty().await;
    let run = run_policy(&population, "adaptive", &settings(), &t.url)
        .await
        .expect("runs");
    let staffed = run.tasks.iter().filter(|t| t.staffed.is_some()).count();
    assert!(staffed >= 10, "{:?}", run.tasks);
    let winners = staffing_response::Entity::find()
        .filter(staffing_response::Column::IsWinner.eq(true))
        .count(&t.db)
        .await
        .expect("count");
    assert_eq!(winners as usize, staffed);
    let offers: usize = run.tasks.iter().map(|t| t.offers).sum();
    assert_eq!(
        count::<staffing_inquiry::Entity>(&t.db).await,
        offers as u64
    );
    assert!(run.wins[..5].iter().sum::<u32>() >= run.wins[5..].iter().sum::<u32>());

    // `worker list --json` shows what the policy learnt: London answers sooner than New York
    // (whose working day starts five hours after the tasks arrive).
    let out = assert_cmd::Command::cargo_bin("staffbot")
        .expect("binary")
        .args(["worker", "list", "--json"])
        .env_clear()
        .env("STAFFBOT_DATABASE_URL", &t.url)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let workers: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let estimates = |i: usize| workers[i]["estimates"].clone();
    let mut keys: Vec<String> = estimates(0)
        .as_object()
        .expect("estimates")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "accepts_last_7d",
            "median_answer_minutes",
            "offers_counted",
            "offers_last_24h",
            "p_accept",
            "p_accept_within_horizon",
            "p_answer",
            "tasks_in_progress"
        ]
    );
    let median = |i: usize| {
        estimates(i)["median_answer_minutes"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let london = (0..5).map(median).sum::<f64>() / 5.0;
    let new_york = (5..8).map(median).sum::<f64>() / 3.0;
    assert!(london < new_york, "{workers:#}");
}

/// The populations the README points to stay valid.
#[test]
fn the_shipped_populations_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/populations");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/populations") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        Population::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        read += 1;
    }
    assert_eq!(read, 3);
}
