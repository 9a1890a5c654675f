//! coturn, the TURN server from Debian, on a free loopback port with a shared secret (the TURN
//! REST API credentials convrec hands out) and loopback peers allowed.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::KillOnDrop;

/// A running coturn.
pub struct Coturn {
    port: u16,
    dir: tempfile::TempDir,
    _process: KillOnDrop,
}

/// What coturn counted for one allocation when it ended (its `usage` log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes received from the client (what it sent through the relay).
    pub from_client: u64,
    /// Bytes sent to the client (what the relay delivered to it).
    pub to_client: u64,
}

impl Coturn {
    /// Starts it with `secret` (coturn's `static-auth-secret`).
    pub fn start(secret: &str) -> Self {
        super::require_program("turnserver");
        let dir = tempfile::tempdir().unwrap();
        let free = || {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .unwrap()
                .port()
        };
        let port = free();
        let relays = free().clamp(1024, 65_000);
        let process = Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relays}"))
            .arg(format!("--max-port={}", relays + 200))
            .args(["--use-auth-secret", "--realm=convrec"])
            .arg(format!("--static-auth-secret={secret}"))
            .args([
                "--allow-loopback-peers",
                "--no-tcp",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .args(["--simple-log", "-v", "--log-file"])
            .arg(dir.path().join("turn.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver");
        let coturn = Self {
            port,
            dir,
            _process: KillOnDrop(process),
        };
        // It listens once its log says so.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !coturn.log().contains("UDP listener opened on") {
            assert!(
                Instant::now() < deadline,
                "coturn did not start\n{}",
                coturn.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        coturn
    }

    /// Its URL, as convrec is configured with it.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}", self.port)
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turn.log")).unwrap_or_default()
    }

    /// Waits (up to 20 s) until the allocation of the user whose name ends with `who` ended,
    /// and returns what it carried.
    pub fn usage_of(&self, who: &str) -> Usage {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            let found = log
                .lines()
                .find(|line| line.contains(": usage: ") && line.contains(&format!(":{who}>")));
            if let Some(line) = found {
                let field = |name: &str| -> u64 {
                    line.split(&format!(" {name}="))
                        .nth(1)
                        .and_then(|rest| rest.split(',').next())
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0)
                };
                return Usage {
                    from_client: field("rb"),
                    to_client: field("sb"),
                };
            }
            assert!(Instant::now() < deadline, "no usage for {who}\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
