//! `convrec serve` as an operator runs it: the listening line, `/health`, the environment
//! variables, and a graceful stop on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use std::process::Command;

use common::{serve, terminate};

fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn serve_prints_its_address_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (child, addr) = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !addr.ends_with(":0"),
        "port 0 is replaced by the real port: {addr}"
    );
    let response = get(&addr, "/health");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "checks": {"database": "ok", "objectStore": "ok"}}),
        "{response}"
    );
    let live = get(&addr, "/health/live");
    assert!(
        live.starts_with("HTTP/1.1 200") && live.contains(r#"{"status":"ok"}"#),
        "{live}"
    );
    let metrics = get(&addr, "/metrics");
    assert!(
        metrics.starts_with("HTTP/1.1 200")
            && metrics.contains("convrec_recorder_launches_total 0")
            && metrics.contains("# EOF"),
        "{metrics}"
    );
    assert!(
        data.join("convrec.db").is_file(),
        "the metadata database is in the data directory"
    );
    terminate(child);
}

#[test]
fn environment_variables_configure_serve_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("from-env");
    let (child, _) = serve(
        &[],
        &[
            ("CONVREC_LISTEN", "127.0.0.1:0"),
            ("CONVREC_DATA_DIR", from_env.to_str().unwrap()),
        ],
    );
    assert!(from_env.join("convrec.db").is_file());
    terminate(child);

    let from_flag = dir.path().join("from-flag");
    let (child, _) = serve(
        &["--data-dir", from_flag.to_str().unwrap()],
        &[
            ("CONVREC_LISTEN", "127.0.0.1:0"),
            (
                "CONVREC_DATA_DIR",
                from_env.join("unused").to_str().unwrap(),
            ),
        ],
    );
    assert!(from_flag.join("convrec.db").is_file());
    assert!(
        !from_env.join("unused").exists(),
        "the flag wins over the environment"
    );
    terminate(child);
}

#[test]
fn a_bad_listen_address_database_url_store_or_node_name_is_a_clear_error() {
    let stderr = serve_fails(Command::new(env!("CARGO_BIN_EXE_convrec")).args([
        "serve",
        "--listen",
        "localhost:http",
    ]));
    assert!(stderr.contains("--listen"), "{stderr}");
    // A database URL of another kind, from the config file's [database] table.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("convrec.toml");
    std::fs::write(&config, "[database]\nurl = \"mysql://db/convrec\"\n").unwrap();
    let stderr = serve_fails(Command::new(env!("CARGO_BIN_EXE_convrec")).args([
        "serve",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert!(
        stderr
            .contains("database.url (--database-url): must be a postgres:// or postgresql:// URL"),
        "{stderr}"
    );
    // An object store of a kind convrec does not know.
    let stderr = serve_fails(
        Command::new(env!("CARGO_BIN_EXE_convrec"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--object-store-url",
                "ftp://host/recordings",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    assert!(
        stderr.contains("'ftp' is not a supported scheme; allowed: s3, gs, az, file"),
        "{stderr}"
    );
    // Parts smaller than S3 takes, from the config file; a node name with a slash.
    std::fs::write(&config, "[object_store]\npart_size_mib = 2\n").unwrap();
    let stderr = serve_fails(Command::new(env!("CARGO_BIN_EXE_convrec")).args([
        "serve",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains(
            "object_store.part_size_mib (--part-size-mib): cannot be 2; allowed: 5 to 5120"
        ),
        "{stderr}"
    );
    let stderr = serve_fails(
        Command::new(env!("CARGO_BIN_EXE_convrec"))
            .args(["serve", "--listen", "127.0.0.1:0", "--node-id", "a/b"])
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    assert!(
        stderr.contains("node_id (--node-id) 'a/b' is not a node name; allowed: 1 to 64 letters"),
        "{stderr}"
    );
    let stderr = serve_fails(
        Command::new(env!("CARGO_BIN_EXE_convrec"))
            .args(["serve", "--listen", "127.0.0.1:0", "--node-lease-secs", "1"])
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    assert!(
        stderr.contains(
            "node_lease_secs (--node-lease-secs): cannot be 1; allowed: 2 to 300 seconds"
        ),
        "{stderr}"
    );
    let stderr = serve_fails(
        Command::new(env!("CARGO_BIN_EXE_convrec"))
            .args(["serve", "--listen", "127.0.0.1:0", "--node-url", "ftp://x"])
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    assert!(
        stderr.contains("node_url (--node-url): cannot be 'ftp://x'"),
        "{stderr}"
    );
    for (args, error) in [
        (
            &["--force-relay"][..],
            "turn.force_relay (--force-relay): needs a relay: set turn.url (--turn-url)",
        ),
        (
            &["--turn-url", "turn:127.0.0.1:3478"][..],
            "turn.url (--turn-url): needs the secret shared with the relay in CONVREC_TURN_SECRET",
        ),
        (
            &["--webhook-allow", "127.0.0.1,10.0.0.0/33"][..],
            "webhooks.allow (--webhook-allow): '10.0.0.0/33': the prefix must be 0 to 32",
        ),
        (
            &[
                "--turn-url",
                "turn:127.0.0.1:3478?transport=tcp,turns:127.0.0.1:443",
            ][..],
            "turn.url (--turn-url): 'turn:127.0.0.1:3478?transport=tcp,turns:127.0.0.1:443' has no UDP URL (turn:HOST:PORT): convrec's recorders reach the relay over UDP",
        ),
        (
            &[
                "--turn-url",
                "turn:127.0.0.1:3478,turn:127.0.0.1:3478?transport=sctp",
            ][..],
            "turn.url (--turn-url): 'turn:127.0.0.1:3478?transport=sctp': the query may only be transport=udp or transport=tcp",
        ),
    ] {
        let stderr = serve_fails(
            Command::new(env!("CARGO_BIN_EXE_convrec"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(args)
                .arg("--data-dir")
                .arg(dir.path().join("data")),
        );
        assert!(stderr.contains(error), "{args:?}: {stderr}");
    }
}

#[test]
fn a_config_file_sets_what_flags_and_the_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let config = dir.path().join("convrec.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            from_file.display()
        ),
    )
    .unwrap();
    let (child, addr) = serve(&["--config", config.to_str().unwrap()], &[]);
    assert!(
        from_file.join("convrec.db").is_file(),
        "the file's data_dir"
    );
    assert!(get(&addr, "/health").starts_with("HTTP/1.1 200"));
    terminate(child);

    // The environment wins over the file.
    let from_env = dir.path().join("from-env");
    let (child, _) = serve(
        &[],
        &[
            ("CONVREC_CONFIG", config.to_str().unwrap()),
            ("CONVREC_DATA_DIR", from_env.to_str().unwrap()),
        ],
    );
    assert!(from_env.join("convrec.db").is_file());
    terminate(child);

    // A mistake in the file names the file and the key.
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisen = 1\n").unwrap();
    let stderr = serve_fails(Command::new(env!("CARGO_BIN_EXE_convrec")).args([
        "serve",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert!(stderr.contains("convrec.toml is not valid"), "{stderr}");
    assert!(stderr.contains("lisen"), "{stderr}");
    std::fs::write(&config, "public_url = \"ftp://x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convrec"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("identifier.recordingEntryPointBaseUrl (--public-url): cannot be 'ftp://x'"),
        "{stderr}"
    );
}

/// Runs `command` (a `convrec serve` that must not start); its standard error.
fn serve_fails(command: &mut Command) -> String {
    let out = command.output().expect("run convrec serve");
    assert!(!out.status.success(), "it must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
