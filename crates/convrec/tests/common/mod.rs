//! What the black-box tests share: `convrec serve` as a child process, a graceful stop, a
//! recording [`deployment`], a headless [`chromium`], the server's [`openapi`] document as clients read it, and a
//! [`webhooks`] receiver.
#![allow(dead_code, reason = "each test binary uses a part")]

pub mod azurite;
pub mod chromium;
pub mod coturn;
pub mod deployment;
pub mod openapi;
pub mod webhooks;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub fn convrec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_convrec"))
}

/// Starts `convrec serve ARGS` with `env`; returns it and the `HOST:PORT` it announced. Its log
/// goes to `log` (or nowhere).
pub fn serve_logging(
    args: &[&str],
    env: &[(&str, &str)],
    log: Option<&std::path::Path>,
) -> (Child, String) {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("create the log")),
        None => Stdio::null(),
    };
    let mut child = convrec()
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start convrec serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the first line");
    let addr = line
        .trim()
        .strip_prefix("convrec listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, addr)
}

/// `convrec participant` publishing into a call of `conversation` with `token` (and `args`); its
/// standard error is piped (it says what it published).
pub fn participant(base: &str, conversation: &str, token: &str, args: &[&str]) -> Child {
    convrec()
        .args([
            "participant",
            "--server",
            base,
            "--conversation",
            conversation,
        ])
        .args(args)
        .env("CONVREC_PARTICIPANT_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start convrec participant")
}

/// `convrec serve` on a free loopback port with its data in `dir/data`, the bootstrap admin key
/// `admin_key` (and `env`), and its log in `dir/log`.
pub fn serve_in(
    dir: &std::path::Path,
    admin_key: &str,
    log: &str,
    env: &[(&str, &str)],
) -> (Child, String) {
    let data = dir.join("data");
    // With CONVREC_TEST_DATABASE=postgres, a database of its own, the same across restarts
    // (unless the test gives it one: nodes sharing a database).
    let given = env.iter().any(|(k, _)| *k == "CONVREC_DATABASE_URL");
    let url_file = dir.join("database-url");
    let database_url = std::fs::read_to_string(&url_file)
        .ok()
        .filter(|_| !given)
        .or_else(|| {
            if given {
                return None;
            }
            let url = convrec_testkit::database_for_servers()?.keep();
            std::fs::write(&url_file, &url).expect("remember the database");
            Some(url)
        });
    let database = database_url
        .as_deref()
        .map(|url| ("CONVREC_DATABASE_URL", url));
    serve_logging(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("a UTF-8 temp dir"),
        ],
        &[
            &[("CONVREC_BOOTSTRAP_ADMIN_KEY", admin_key)],
            // The tests' webhook receivers listen on loopback, which is denied by default.
            &[("CONVREC_WEBHOOK_ALLOW", "127.0.0.0/8,::1")],
            // Many tests fail to authenticate on purpose; the limits test sets its own.
            &[("CONVREC_MAX_FAILED_AUTH_PER_MINUTE", "100000")],
            env,
            database.as_slice(),
        ]
        .concat(),
        Some(&dir.join(log)),
    )
}

/// [`serve_logging`] without a log.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    serve_logging(args, env, None)
}

/// Stops a server with SIGTERM and checks that it exits cleanly.
pub fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = child.wait().expect("wait for the server");
    assert!(exit.success(), "a SIGTERM stop is a clean exit: {exit}");
}

/// Fails the test, saying how to fix it, unless `program` is on the `PATH`.
pub fn require_program(program: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()));
    assert!(
        found,
        "{program} is not installed: run the README's test command, which installs it"
    );
}

/// Asks `check` again every 100 ms until it answers `Ok`, and returns that answer. When
/// `within` passes first, fails the test with `failure` of the last `Err`: what was seen last
/// goes into the message, and logs are read only then.
pub async fn poll_until<T, E>(
    within: std::time::Duration,
    mut check: impl AsyncFnMut() -> Result<T, E>,
    failure: impl FnOnce(E) -> String,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(last) if std::time::Instant::now() >= deadline => panic!("{}", failure(last)),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// [`poll_until`] for a condition: waits (up to `within`) until `done` holds, and fails the
/// test with `failure()` otherwise.
pub async fn wait_until(
    within: std::time::Duration,
    mut done: impl AsyncFnMut() -> bool,
    failure: impl FnOnce() -> String,
) {
    poll_until(
        within,
        async || if done().await { Ok(()) } else { Err(()) },
        |()| failure(),
    )
    .await;
}

/// Waits (up to 30 s) until `program` listens at `address`.
pub fn wait_for_port(address: &str, program: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{program} did not listen at {address}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A recorder's WebSocket handshake at the entry point `url` (`…/recording/entry/TOKEN`), as
/// far as the server's answer to it.
pub async fn entry_point_handshake(http: &reqwest::Client, url: &str) -> reqwest::Response {
    entry_point_handshake_as(http.get(url)).await
}

/// [`entry_point_handshake`] of `request` (made with the URL and any credentials).
pub async fn entry_point_handshake_as(request: reqwest::RequestBuilder) -> reqwest::Response {
    request
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("the server answers a handshake")
}

/// A child process killed when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `s3s-fs`, an S3-compatible server that checks request signatures, on a free loopback port,
/// keeping each object as a file under `root/BUCKET/KEY`. Installed by the test command.
pub struct S3Server {
    pub root: tempfile::TempDir,
    pub endpoint: String,
    port: u16,
    process: Option<KillOnDrop>,
}

impl S3Server {
    pub const ACCESS_KEY: &str = "convrec-test-access";
    pub const SECRET_KEY: &str = "convrec-test-secret-key";

    /// Starts it with an empty `bucket`.
    pub fn start(bucket: &str) -> Self {
        let root = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(root.path().join(bucket)).expect("the bucket");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        require_program("s3s-fs");
        let mut server = Self {
            root,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            process: None,
        };
        server.restart();
        server
    }

    /// Stops it (an outage of the store).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts it again on the same port and files.
    pub fn restart(&mut self) {
        let process = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                Self::ACCESS_KEY,
                "--secret-key",
                Self::SECRET_KEY,
            ])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.process = Some(KillOnDrop(process));
        wait_for_port(&format!("127.0.0.1:{}", self.port), "s3s-fs");
    }

    /// Multipart uploads it holds unfinished (their parts are files named `.upload_id-…`).
    pub fn unfinished_uploads(&self) -> usize {
        std::fs::read_dir(self.root.path())
            .expect("its root")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
            .count()
    }

    /// The server environment that stores recordings at `s3://BUCKET/PREFIX` here.
    pub fn server_env(&self, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CONVREC_OBJECT_STORE_URL", url.to_owned()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.to_owned()),
        ]
    }
}

/// Asserts a file decodes without errors and holds H.264 (and Opus when `audio`); returns
/// ffprobe's view of it.
pub fn assert_decodes(path: &std::path::Path, audio: bool) -> serde_json::Value {
    assert_eq!(
        convrec_testkit::ffmpeg_decode_errors(path),
        "",
        "{}",
        path.display()
    );
    let probe = convrec_testkit::ffprobe(path);
    assert_eq!(
        convrec_testkit::stream(&probe, "video")["codec_name"],
        "h264"
    );
    if audio {
        assert_eq!(
            convrec_testkit::stream(&probe, "audio")["codec_name"],
            "opus"
        );
    }
    probe
}

/// Asserts a file plays: [`assert_decodes`], and its audio (when `audio`) as long as its video
/// within half a second; returns the length of its video.
pub fn assert_playable(path: &std::path::Path, audio: bool) -> f64 {
    let probe = assert_decodes(path, audio);
    let video = convrec_testkit::stream(&probe, "video");
    if audio {
        let sound = convrec_testkit::stream(&probe, "audio");
        assert!(
            (convrec_testkit::media_length(sound) - convrec_testkit::media_length(video)).abs()
                < 0.5,
            "audio {} s, video {} s\n{probe:#}",
            convrec_testkit::media_length(sound),
            convrec_testkit::media_length(video)
        );
    }
    convrec_testkit::media_length(video)
}

/// Waits for a participant; returns (its publication, seconds it published).
pub fn finished_participant(child: Child) -> (String, f64) {
    let out = child.wait_with_output().expect("a participant's report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "participant failed: {stderr}");
    // "published pub_… for 4.0 s: …"
    let line = stderr
        .lines()
        .find(|l| l.starts_with("published "))
        .expect("a participant's report");
    let mut words = line.split_whitespace();
    let publication = words.nth(1).expect("a participant's report").to_owned();
    let seconds = words
        .nth(1)
        .expect("a participant's report")
        .parse()
        .expect("a participant's report");
    (publication, seconds)
}
