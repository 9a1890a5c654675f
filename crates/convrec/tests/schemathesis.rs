//! The OpenAPI document against the running server, by an outside tool: Schemathesis generates
//! requests from the document (valid ones, and ones that break it) for every operation, also in
//! stateful sequences that use the ids the server hands out, and checks that the server never
//! answers 500, answers only statuses and content types the document lists, with bodies and
//! headers that match it, rejects requests that break the schema, and rejects requests without
//! credentials.
//!
//! Left out: the event stream (it never ends) and WHIP/WHEP (SDP bodies, which Schemathesis
//! cannot generate; `tests/access.rs` and `crates/server/tests/api.rs` send real and broken
//! offers), and the `positive_data_acceptance` check, which expects every schema-valid request
//! to succeed: some rules are beyond a JSON schema (a `toTime` after `fromTime`, the
//! placeholders of a file-name pattern, an `ADMIN` key needing an `accountId`), and those
//! requests rightly get a 400 or 422 naming the rule.
mod common;

use common::{KillOnDrop, serve_in};

const ADMIN_KEY: &str = "schemathesis-admin-key-0123456789";

/// The checks run on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,response_headers_conformance,negative_data_rejection,\
    ignored_auth,use_after_free,ensure_resource_availability";

#[test]
fn schemathesis_finds_no_answer_that_breaks_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let (server, addr) = serve_in(dir.path(), ADMIN_KEY, "server.log", &[]);
    let _server = KillOnDrop(server);
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; sys.exit(schemathesis())",
        ])
        .arg("run")
        .arg(format!("http://{addr}/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_KEY}")])
        .args(["--checks", &CHECKS.replace(' ', "")])
        .args(["--exclude-path-regex", "/events$|/whip$|/whep$"])
        .args(["--max-examples", "25", "--seed", "20261130", "--no-color"])
        .current_dir(dir.path())
        .output()
        .expect("python3 runs Schemathesis (the test command installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Schemathesis found answers that break the document:\n{report}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(report.contains("passed"), "{report}");
}
