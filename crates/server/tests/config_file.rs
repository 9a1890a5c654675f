//! The config file: flags over the file over the defaults, every bad value refused naming its
//! key and flag.

use std::path::PathBuf;

use convrec_server::config_file::{ConfigFile, ConfigFileError, Environment, split_ranges};

fn env() -> Environment {
    Environment {
        bootstrap_admin_key: None,
        turn_secret: None,
        recorder_program: PathBuf::from("convrec"),
    }
}

#[test]
fn flags_win_over_the_file_which_wins_over_the_defaults() {
    let file = ConfigFile::parse(
        "listen = \"127.0.0.1:9000\"\nrecording_api_key_id = \"key_1\"\n[limits]\nmax_connections = 100\nfailed_auth_per_minute = 7\n",
    )
    .expect("a valid file");
    let mut flags = ConfigFile::default();
    flags.limits.max_connections = Some(200);
    flags.trusted_proxies = Some(split_ranges("10.0.0.0/8, ::1"));
    let config = flags.over(file).resolve(env()).expect("valid settings");
    assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(config.recording_api_key_id.as_deref(), Some("key_1"));
    assert_eq!(config.limits.max_connections, 200);
    assert_eq!(config.limits.failed_auth_per_minute, 7);
    assert_eq!(config.limits.max_body_bytes, 1024 << 10);
    assert_eq!(config.limits.trusted_proxies.len(), 2);
}

#[test]
fn bad_values_are_refused_naming_the_key_and_the_flag() {
    let cases = [
        ("unknown = 1", "unknown field `unknown`"),
        (
            "[limits]\nmax_body_kib = 63",
            "limits.max_body_kib (--max-body-kib): cannot be 63; allowed: 64 to 65536",
        ),
        (
            "[object_store]\npart_size_mib = 4",
            "object_store.part_size_mib (--part-size-mib): cannot be 4",
        ),
        (
            "[database]\nurl = \"mysql://x\"",
            "database.url (--database-url): must be a postgres://",
        ),
        (
            "node_lease_secs = 1",
            "node_lease_secs (--node-lease-secs): cannot be 1",
        ),
        (
            "trusted_proxies = [\"10.0.0.0/99\"]",
            "trusted_proxies (--trusted-proxies)",
        ),
        (
            "[turn]\nforce_relay = true",
            "turn.force_relay (--force-relay): needs a relay",
        ),
        (
            "[turn]\nurl = \"turn:relay:3478\"",
            "needs the secret shared with the relay in CONVREC_TURN_SECRET",
        ),
        (
            "recording_api_key_id = \"key 1\"",
            "conversation.recording.recordingApiKeyId (recording_api_key_id, --recording-api-key-id): must be the id of a RECORDER API key",
        ),
        (
            "recorder_command = \" \"",
            "recorder_command (--recorder-command): cannot be empty",
        ),
        (
            "public_url = \"ftp://x\"",
            "identifier.recordingEntryPointBaseUrl (--public-url): cannot be 'ftp://x'",
        ),
    ];
    for (text, expected) in cases {
        let error = ConfigFile::parse(text)
            .and_then(|f| f.resolve(env()).map(|_| ()))
            .expect_err(text);
        assert!(error.to_string().contains(expected), "{text}: {error}");
        if text.starts_with("unknown") {
            assert!(matches!(error, ConfigFileError::Parse(_)));
        }
    }
}
