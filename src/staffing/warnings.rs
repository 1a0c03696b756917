//! The warning loop (behaviour §6.13, with W-17 fixed): tasks whose latest staffing request is
//! older than `staffing_min_time` and has no winner are reported to the staffing channel, grouped
//! by step, in Orchestra's line format. Tasks nobody could be asked about are reported too (the
//! line says so), restaffs are reported like any request, and a task is not reported again
//! within `staffing_min_time`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::db;
use crate::db::requests::Stamp;
use crate::db::warnings::{MachineWaiting, Unstaffed};
use crate::lease::LeaseProof;
use crate::messages::{Message, Outgoing, UnstaffedLine, split_unstaffed, task_display};

/// `No winner request for task N - <display>! Created at <time>.` (+ why nobody was asked).
fn line(u: &Unstaffed) -> UnstaffedLine {
    UnstaffedLine::NoWinner {
        task_id: u.task_id,
        task: task_display(&u.version_slug, &u.short_description, &u.step_slug),
        requested_at: u.requested_at,
        asked: u.asked,
    }
}

/// `Task N - <display>: waiting for automation: <error>`.
fn machine_line(m: &MachineWaiting) -> UnstaffedLine {
    UnstaffedLine::Automation {
        task_id: m.task_id,
        task: task_display(&m.version_slug, &m.short_description, &m.step_slug),
        // Stored masked; masked again for errors stored before (or secrets added since).
        error: crate::secrets::sanitize(&m.machine_last_error),
    }
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

/// Lines by step (steps in workflow order), each step's named by what it reports (the requests
/// and when each was last reported), so two runs over the same state queue it once.
type ByStep = BTreeMap<(i32, String, String), (Vec<UnstaffedLine>, Fnv)>;

fn by_step(rows: &[Unstaffed], machine: &[MachineWaiting]) -> ByStep {
    let mut by_step = ByStep::new();
    for r in rows {
        let (lines, event) = by_step
            .entry((r.step_position, r.version_slug.clone(), r.step_slug.clone()))
            .or_insert_with(|| (Vec::new(), Fnv::default()));
        lines.push(line(r));
        event.add(r.request_id);
        event.add(r.last_warned_at.map_or(-1, |at| at.timestamp_micros()));
    }
    for m in machine {
        let (lines, event) = by_step
            .entry((m.step_position, m.version_slug.clone(), m.step_slug.clone()))
            .or_insert_with(|| (Vec::new(), Fnv::default()));
        lines.push(machine_line(m));
        // Negative: a task id never collides with a request id in the name.
        event.add(-m.task_id);
        event.add(m.machine_warned_at.map_or(-1, |at| at.timestamp_micros()));
    }
    by_step
}

/// One round; returns how many tasks were reported. Does nothing without a staffing channel.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    staffing_channel: Option<&str>,
    min_time: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<usize, crate::error::Error> {
    let Some(channel) = staffing_channel else {
        return Ok(0);
    };
    let cutoff = now - chrono::Duration::from_std(min_time).unwrap_or_default();
    let rows = db::warnings::unstaffed(db, cutoff).await?;
    let machine = db::warnings::machine_waiting(db, cutoff).await?;
    if rows.is_empty() && machine.is_empty() {
        return Ok(0);
    }
    // One message per step; long lists are split (Slack truncates a message's text beyond
    // 40,000 characters and advises at most 4,000).
    let mut messages: Vec<(String, Outgoing)> = Vec::new();
    for ((_, version, step), (lines, event)) in by_step(&rows, &machine) {
        let event = event.0;
        for (part, lines) in split_unstaffed(lines).into_iter().enumerate() {
            let key = if part == 0 {
                format!("warn:{version}:{step}:{event:016x}")
            } else {
                format!("warn:{version}:{step}:{event:016x}:{part}")
            };
            messages.push((key, Outgoing::post(channel, Message::Unstaffed { lines })));
        }
    }
    let stamps = [
        (
            Stamp::RequestsWarned,
            rows.iter().map(|r| r.request_id).collect(),
        ),
        (
            Stamp::MachineTasksWarned,
            machine.iter().map(|m| m.task_id).collect(),
        ),
    ];
    super::queue_and_stamp(db, lease, messages, &stamps, now).await?;
    Ok(rows.len() + machine.len())
}
