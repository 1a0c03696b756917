//! The injected clock and the other process-wide sources of variety: domain code receives `now`
//! and never reads the system time itself; randomness comes from [`rng_for`], and a process's
//! name from [`instance_name`].

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests, benchmarks).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The process's random source: seeded by `staffbot.random_seed` when set.
pub fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    }
}

/// This process's name in leases and outbox claims: `host/` and 128 random bits in hex
/// (`db1/3f2a…`). The random part alone tells processes apart: hostnames and pids repeat
/// (every container is pid 1 on a host named after its image), and two replicas sharing a
/// name would share leases and claims. It comes from the OS-seeded generator, never from
/// `staffbot.random_seed` (replicas with the same seed would collide). The host is for people.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "staffbot".to_string());
    format!("{host}/{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::instance_name;

    #[test]
    fn instance_names_carry_128_random_bits() {
        let (a, b) = (instance_name(), instance_name());
        assert_ne!(a, b);
        for name in [&a, &b] {
            let (host, id) = name.rsplit_once('/').expect("host/id");
            assert!(!host.is_empty(), "{name}");
            assert_eq!(id.len(), 32, "{name}");
            assert!(u128::from_str_radix(id, 16).is_ok(), "{name}");
        }
        // Same process, same host: only the random part differs.
        assert_eq!(
            a.rsplit_once('/').map(|p| p.0),
            b.rsplit_once('/').map(|p| p.0)
        );
    }
}
