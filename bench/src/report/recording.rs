//! Recording: a [`Record`] per (backend, size, phase), made from a measured [`Phase`], and the
//! JSON lines they are appended to as they come in.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::phases::Phase;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<usize>,
    pub phase: String,
    /// Single-shot phases: the wall time. Phases of several operations: the median one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<f64>,
    /// Single-shot phases: all statements. Phases of several operations: the median one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn ms(d: std::time::Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 3)
}

pub fn from_phase(backend: &str, workers: usize, requests: usize, phase: &Phase) -> Record {
    let mut r = Record {
        backend: backend.to_string(),
        workers: Some(workers),
        requests: Some(requests),
        phase: phase.name.to_string(),
        peak_rss_mib: phase.peak_rss_mib.map(|v| round(v, 1)),
        rss_before_mib: phase.rss_before_mib.map(|v| round(v, 1)),
        timed_out: phase.timed_out,
        detail: phase.detail.clone(),
        ..Default::default()
    };
    if phase.samples.is_empty() {
        r.wall_ms = Some(ms(phase.total.wall));
        r.statements = Some(phase.total.statements);
        if phase.name.starts_with("tick") {
            let batched = phase.detail["requests_batched"]
                .as_f64()
                .unwrap_or(requests as f64);
            if batched > 0.0 {
                r.statements_per_request = Some(round(phase.total.statements as f64 / batched, 2));
            }
        }
    } else {
        let mut walls: Vec<f64> = phase.samples.iter().map(|s| ms(s.wall)).collect();
        walls.sort_by(f64::total_cmp);
        let mut statements: Vec<u64> = phase.samples.iter().map(|s| s.statements).collect();
        statements.sort_unstable();
        r.samples = Some(walls.len());
        r.wall_ms = percentile(&walls, 50.0);
        r.p50_ms = r.wall_ms;
        r.p90_ms = percentile(&walls, 90.0);
        r.max_ms = walls.last().copied();
        r.statements = Some(statements[(statements.len() - 1) / 2]);
        r.detail = serde_json::json!({
            "total_ms": ms(phase.total.wall),
            "statements_min": statements.first(),
            "statements_max": statements.last(),
        });
    }
    r
}

/// Appends JSON lines as results come in (a run cut short keeps what it measured).
pub struct JsonLines {
    file: std::fs::File,
    pub records: Vec<Record>,
}

impl JsonLines {
    pub fn create(path: &Path) -> Result<JsonLines> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(JsonLines {
            file,
            records: Vec::new(),
        })
    }

    pub fn push(&mut self, record: Record) -> Result<()> {
        let line = serde_json::to_string(&record)?;
        eprintln!("  {line}");
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        self.records.push(record);
        Ok(())
    }
}
