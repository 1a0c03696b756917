//! Results: one JSON line per (backend, size, phase) ([`recording`]), the targets of issues 6 and
//! 14 they are checked against ([`targets`]), and `docs/benchmarks.md` ([`markdown`]) with a table
//! per backend, the socket measurements, the targets (met or missed), the machine and the command.

mod markdown;
mod recording;
mod targets;

pub use markdown::{MarkdownInput, write_markdown};
pub use recording::{JsonLines, Record, from_phase, percentile};
pub use targets::target_lines;

#[cfg(test)]
mod tests;
