//! Process memory (`/proc/<pid>/status`) and a description of the machine.

use std::process::Command;

const MIB: f64 = 1024.0 * 1024.0;

/// A `kB` field of `/proc/<pid>/status` (`self` for this process), in MiB.
pub fn status_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024.0 / MIB)
}

/// This process's resident set now.
pub fn rss_mib() -> Option<f64> {
    status_mib("self", "VmRSS")
}

/// This process's peak resident set since the last [`reset_peak`].
pub fn peak_mib() -> Option<f64> {
    status_mib("self", "VmHWM")
}

/// Returns freed heap to the OS, so a phase's peak is not inflated by what the previous phase
/// (the data builder) left in malloc's free lists.
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resets the peak resident set (`VmHWM`) to the current one by writing `5` to
/// `/proc/self/clear_refs`. `false` when that is not permitted (the peak is then not reported).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The machine, for the report: CPUs, memory, CPU model, kernel, rustc.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = status_meminfo("MemTotal").map(|kb| kb / 1024.0 / 1024.0);
    serde_json::json!({
        "nproc": nproc,
        "memory_gib": mem_gib.map(|g| (g * 10.0).round() / 10.0),
        "cpu": model,
        "kernel": command_output("uname", &["-sr"]),
        "rustc": command_output("rustc", &["--version"]),
        "postgres": command_output("psql", &["--version"]),
    })
}

fn status_meminfo(field: &str) -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
