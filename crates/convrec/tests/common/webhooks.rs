//! A webhook receiver as an integrator runs one: verifying every delivery with the published
//! Standard Webhooks library.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::Value;

/// A webhook receiver (`tests/webhook_receiver.py`) that verifies each delivery with the
/// published Standard Webhooks library and answers 500 to its first `fail_first` requests.
pub struct Receiver {
    process: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A Standard Webhooks secret for the tests.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

impl Receiver {
    pub fn start(dir: &Path, fail_first: u32, port: u16) -> Self {
        use std::io::BufRead;
        let out = dir.join(format!("webhooks-{port}-{fail_first}.jsonl"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhook_receiver.py");
        let mut process = std::process::Command::new("python3")
            .arg(script)
            .args([WEBHOOK_SECRET, &fail_first.to_string()])
            .arg(&out)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver (the test command installs standardwebhooks)");
        let mut line = String::new();
        std::io::BufReader::new(process.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver says its port");
        Self { process, port, out }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// The deliveries it verified, by event type.
    pub fn verified(&self, event: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .inspect(|d| assert_eq!(d["verified"], true, "a delivery failed verification: {d}"))
            .filter(|d| d["payload"]["type"] == event)
            .collect()
    }

    /// Whether it has verified at least one delivery of each of `events` (in any order:
    /// deliveries are not ordered).
    pub fn has_all(&self, events: &[&str]) -> bool {
        events.iter().all(|event| !self.verified(event).is_empty())
    }
}
