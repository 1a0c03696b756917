//! The warning loop (behaviour §6.13, with W-17 fixed): tasks whose latest staffing request is
//! older than `staffing_min_time` and has no winner are reported to the staffing channel, grouped
//! by step, in Orchestra's line format. Tasks nobody could be asked about are reported too (the
//! line says so), restaffs are reported like any request, and a task is not reported again
//! within `staffing_min_time`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};

use crate::db::statement;
use crate::loops::LeaseProof;
use crate::outbox::SlackWrite;
use crate::slack::mrkdwn::Mrkdwn;
use crate::workflow::lifecycle::task_display;

const UNSTAFFED: &str = "
SELECT r.id AS request_id, r.task_id, r.created_at AS requested_at, r.last_warned_at,
       s.slug AS step_slug,
       s.position AS step_position, v.slug AS version_slug, p.short_description,
       (SELECT COUNT(*) FROM staffing_inquiries i WHERE i.request_id = r.id) AS inquiries
FROM staffing_requests r
JOIN tasks t ON t.id = r.task_id
JOIN projects p ON p.id = t.project_id
JOIN steps s ON s.id = t.step_id
JOIN workflow_versions v ON v.id = p.workflow_version_id
WHERE r.id = (SELECT MAX(r2.id) FROM staffing_requests r2 WHERE r2.task_id = r.task_id)
  AND t.status NOT IN ('complete', 'aborted')
  AND p.status NOT IN ('completed', 'aborted')
  AND r.created_at < $1
  AND (r.last_warned_at IS NULL OR r.last_warned_at < $1)
  AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.request_id = r.id AND x.is_winner = TRUE)
  AND NOT (r.status = 'closed' AND EXISTS (
      SELECT 1 FROM task_assignments a
      WHERE a.task_id = r.task_id AND a.assignment_counter = r.required_role_counter
        AND a.updated_at >= r.created_at))
ORDER BY s.position, v.slug, r.task_id";

/// Machine tasks whose automation failed and that have waited longer than `staffing_min_time`.
const MACHINE_WAITING: &str = "
SELECT t.id AS task_id, t.machine_warned_at, t.machine_last_error, s.slug AS step_slug,
       s.position AS step_position, v.slug AS version_slug, p.short_description
FROM tasks t
JOIN steps s ON s.id = t.step_id
JOIN projects p ON p.id = t.project_id
JOIN workflow_versions v ON v.id = p.workflow_version_id
WHERE s.is_human = FALSE
  AND t.status = 'awaiting_processing'
  AND p.status = 'active'
  AND t.machine_last_error IS NOT NULL
  AND t.created_at < $1
  AND (t.machine_warned_at IS NULL OR t.machine_warned_at < $1)
ORDER BY s.position, v.slug, t.id";

#[derive(Debug, Clone, FromQueryResult)]
struct MachineWaiting {
    task_id: i64,
    machine_warned_at: Option<DateTime<Utc>>,
    machine_last_error: String,
    step_slug: String,
    step_position: i32,
    version_slug: String,
    short_description: String,
}

/// `Task N - <display>: waiting for automation: <error>`.
fn machine_line(m: &MachineWaiting) -> Mrkdwn {
    crate::mrkdwn!(
        "Task {} - {}: waiting for automation: {}",
        m.task_id,
        task_display(&m.version_slug, &m.short_description, &m.step_slug),
        m.machine_last_error
    )
}

#[derive(Debug, Clone, FromQueryResult)]
struct Unstaffed {
    request_id: i64,
    task_id: i64,
    requested_at: DateTime<Utc>,
    last_warned_at: Option<DateTime<Utc>>,
    step_slug: String,
    step_position: i32,
    version_slug: String,
    short_description: String,
    inquiries: i64,
}

/// `No winner request for task N - <display>! Created at <time>.` (+ why nobody was asked).
fn line(u: &Unstaffed) -> Mrkdwn {
    let mut line = crate::mrkdwn!(
        "No winner request for task {} - {}! Created at {}.",
        u.task_id,
        task_display(&u.version_slug, &u.short_description, &u.step_slug),
        u.requested_at
            .format("%Y-%m-%d %H:%M:%S%.6f%:z")
            .to_string()
    );
    if u.inquiries == 0 {
        line.push(&" Nobody could be asked: no certified worker with Slack and staffbot enabled.");
    }
    line
}

/// FNV-1a over a list of numbers: a name for a set of facts, the same in every process.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, n: i64) {
        for b in n.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Characters one warning message carries at most (Slack's advice for a message's text).
const MAX_MESSAGE_CHARS: usize = 4000;

/// Joins lines into messages of at most `max` characters (a longer single line is its own
/// message).
fn split_lines(lines: &[Mrkdwn], max: usize) -> Vec<Mrkdwn> {
    let mut out: Vec<Mrkdwn> = Vec::new();
    let mut current = Mrkdwn::default();
    for line in lines {
        let extra = line.chars() + usize::from(!current.is_empty());
        if !current.is_empty() && current.chars() + extra > max {
            out.push(std::mem::take(&mut current));
        }
        current.push_line(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One round; returns how many tasks were reported. Does nothing without a staffing channel.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    staffing_channel: Option<&str>,
    min_time: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let Some(channel) = staffing_channel else {
        return Ok(0);
    };
    let cutoff = now - chrono::Duration::from_std(min_time).unwrap_or_default();
    let rows = Unstaffed::find_by_statement(statement(
        db.get_database_backend(),
        UNSTAFFED,
        vec![cutoff.into()],
    ))
    .all(db)
    .await?;
    let machine = MachineWaiting::find_by_statement(statement(
        db.get_database_backend(),
        MACHINE_WAITING,
        vec![cutoff.into()],
    ))
    .all(db)
    .await?;
    if rows.is_empty() && machine.is_empty() {
        return Ok(0);
    }
    // One message per step, steps in workflow order.
    // Each step's warning is named by what it reports (the requests and when each was last
    // reported), so two runs over the same state queue it once.
    let mut by_step: BTreeMap<(i32, String, String), (Vec<Mrkdwn>, Fnv)> = BTreeMap::new();
    for r in &rows {
        let (lines, event) = by_step
            .entry((r.step_position, r.version_slug.clone(), r.step_slug.clone()))
            .or_insert_with(|| (Vec::new(), Fnv::default()));
        lines.push(line(r));
        event.add(r.request_id);
        event.add(r.last_warned_at.map_or(-1, |at| at.timestamp_micros()));
    }
    for m in &machine {
        let (lines, event) = by_step
            .entry((m.step_position, m.version_slug.clone(), m.step_slug.clone()))
            .or_insert_with(|| (Vec::new(), Fnv::default()));
        lines.push(machine_line(m));
        // Negative: a task id never collides with a request id in the name.
        event.add(-m.task_id);
        event.add(m.machine_warned_at.map_or(-1, |at| at.timestamp_micros()));
    }
    // Long lists are split: Slack truncates a message's text beyond 40,000 characters and
    // advises at most 4,000.
    let mut writes: Vec<(String, SlackWrite)> = Vec::new();
    for ((_, version, step), (lines, event)) in by_step {
        let event = event.0;
        for (part, text) in split_lines(&lines, MAX_MESSAGE_CHARS)
            .into_iter()
            .enumerate()
        {
            let key = if part == 0 {
                format!("warn:{version}:{step}:{event:016x}")
            } else {
                format!("warn:{version}:{step}:{event:016x}:{part}")
            };
            writes.push((key, SlackWrite::post(channel, text)));
        }
    }
    super::queue_and_stamp_many(
        db,
        lease,
        writes,
        &[
            (
                "staffing_requests",
                "last_warned_at",
                rows.iter().map(|r| r.request_id).collect(),
            ),
            (
                "tasks",
                "machine_warned_at",
                machine.iter().map(|m| m.task_id).collect(),
            ),
        ],
        now,
    )
    .await?;
    Ok(rows.len() + machine.len())
}

#[cfg(test)]
mod tests {
    use super::split_lines;
    use crate::slack::mrkdwn::Mrkdwn;

    #[test]
    fn long_lists_split_on_line_boundaries() {
        let lines: Vec<Mrkdwn> = (0..10)
            .map(|i| Mrkdwn::text(&format!("line {i:02}")))
            .collect();
        let parts = split_lines(&lines, 24);
        assert_eq!(parts[0].as_str(), "line 00\nline 01\nline 02");
        assert!(parts.iter().all(|p| p.chars() <= 24));
        let joined: Vec<&str> = parts.iter().map(Mrkdwn::as_str).collect();
        let all: Vec<&str> = lines.iter().map(Mrkdwn::as_str).collect();
        assert_eq!(joined.join("\n"), all.join("\n"));
        assert_eq!(split_lines(&lines[..1], 3), vec![Mrkdwn::text("line 00")]);
        assert!(split_lines(&[], 10).is_empty());
    }
}
