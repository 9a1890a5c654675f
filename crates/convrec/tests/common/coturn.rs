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
    /// Starts it with `secret` (coturn's `static-auth-secret`), listening on UDP only.
    pub fn start(secret: &str) -> Self {
        Self::launch(secret, false)
    }

    /// The same, listening on TCP as well (on the same port).
    pub fn start_with_tcp(secret: &str) -> Self {
        Self::launch(secret, true)
    }

    fn launch(secret: &str, tcp: bool) -> Self {
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
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .args((!tcp).then_some("--no-tcp"))
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
        let listening = |log: String| {
            log.contains("UDP listener opened on")
                && (!tcp || log.contains("TCP listener opened on"))
        };
        while !listening(coturn.log()) {
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

    /// Its URL over TCP (with [`Coturn::start_with_tcp`]).
    pub fn tcp_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=tcp", self.port)
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turn.log")).unwrap_or_default()
    }

    /// Waits (up to 20 s) until an allocation of the user whose name ends with `who` ended,
    /// and returns what the first that ended carried.
    pub fn usage_of(&self, who: &str) -> Usage {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(usage) = self.usages_of(who).first() {
                return *usage;
            }
            assert!(
                Instant::now() < deadline,
                "no usage for {who}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What each ended allocation of the user whose name ends with `who` carried, in the order
    /// they ended (a browser makes one per relay candidate it tries).
    pub fn usages_of(&self, who: &str) -> Vec<Usage> {
        self.log()
            .lines()
            .filter(|line| line.contains(": usage: ") && line.contains(&format!(":{who}>")))
            .map(|line| {
                let field = |name: &str| -> u64 {
                    line.split(&format!(" {name}="))
                        .nth(1)
                        .and_then(|rest| rest.split(',').next())
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0)
                };
                Usage {
                    from_client: field("rb"),
                    to_client: field("sb"),
                }
            })
            .collect()
    }
}
