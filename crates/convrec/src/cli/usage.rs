//! CPU time and peak memory of child processes, read from Linux's `/proc` (for the demo's
//! figures about the recorder it launches).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Linux reports CPU time in `USER_HZ` ticks, 100 per second on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// What a process used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User + system CPU time.
    pub cpu_seconds: f64,
    /// Peak resident memory (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Reads a process's usage so far.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Usage {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        peak_rss_bytes: peak_kib * 1024,
    })
}

/// This process's children.
pub fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// A child's usage over its life, as last seen.
#[derive(Debug, Clone, Copy)]
pub struct Sampled {
    /// Its usage when last read.
    pub usage: Usage,
    /// When it was first and last seen.
    pub first_seen: Instant,
    /// When it was last seen.
    pub last_seen: Instant,
}

impl Sampled {
    /// CPU use as a share of one core over its sampled life.
    pub fn cpu_share(&self) -> f64 {
        let wall = self.last_seen.duration_since(self.first_seen).as_secs_f64();
        if wall > 0.0 {
            self.usage.cpu_seconds / wall
        } else {
            0.0
        }
    }
}

/// Samples every child every `period` until `stop` fires (or its sender is dropped).
pub fn sample_children(
    period: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<BTreeMap<u32, Sampled>> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<u32, Sampled> = BTreeMap::new();
        loop {
            let now = Instant::now();
            for pid in children() {
                if let Some(usage) = usage(pid) {
                    seen.entry(pid)
                        .and_modify(|s| {
                            s.usage = usage;
                            s.last_seen = now;
                        })
                        .or_insert(Sampled {
                            usage,
                            first_seen: now,
                            last_seen: now,
                        });
                }
            }
            tokio::select! {
                _ = &mut stop => return seen,
                () = tokio::time::sleep(period) => {}
            }
        }
    })
}
