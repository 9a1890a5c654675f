//! The client's-eye test: an integrator's program that knows only HTTP and the server's OpenAPI
//! document (operations are looked up by `operationId`, every answer is checked against the
//! document). It sets up an account and a recording template, registers a webhook (verified
//! with the published Standard Webhooks library), lets two synthetic participants
//! (`convrec participant`, real WebRTC) talk in a call, waits for `recording_available`, then
//! finds the recording in the history and downloads it through its link, and ffprobe plays it.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::process::Child;
use std::time::Duration;

use common::openapi::OpenApi;
use common::serve_in;
use common::webhooks::{Receiver, WEBHOOK_SECRET};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "client-test-admin-key-0123456789";

/// A client of the API that knows its OpenAPI document.
struct ApiClient {
    http: reqwest::Client,
    base: String,
    openapi: OpenApi,
    log: std::path::PathBuf,
}

impl ApiClient {
    /// Calls an operation by its `operationId`, with `{name}` path parameters filled from
    /// `params`, and checks the answer is a success the document describes; returns its body.
    async fn call(
        &self,
        operation: &str,
        token: &str,
        params: &[(&str, &str)],
        query: &str,
        body: Option<Value>,
    ) -> Value {
        let (method, template) = self.openapi.operation(operation);
        let mut path = template.clone();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !path.contains('{'),
            "{operation}: a path parameter is missing: {path}"
        );
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}{query}", self.base),
            )
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            (200..300).contains(&status),
            "{operation}: {status} {text}\n{log}"
        );
        if let Some(wrong) = self.openapi.mismatch(&method, &template, status, &answer) {
            panic!("{operation}: {wrong}");
        }
        answer
    }
}

/// `convrec participant` publishing into the conversation's call for 4 s.
fn participant(base: &str, conversation: &str, token: &str, video: &str) -> Child {
    common::participant(
        base,
        conversation,
        token,
        &["--seconds", "4", "--video", video],
    )
}

fn ffprobe_streams(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (the test command installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probed: Value = serde_json::from_slice(&out.stdout).unwrap();
    probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_records_a_call_and_downloads_it_using_only_http_and_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let (server, addr) = serve_in(dir.path(), ADMIN_KEY, "server.log", &[]);
    let _server = common::KillOnDrop(server);
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let api = ApiClient {
        openapi: OpenApi::fetch(&http, &base).await,
        http: http.clone(),
        base: base.clone(),
        log: log.clone(),
    };
    let receiver = Receiver::start(dir.path(), 0, 0);

    // The account, with recording on through a template.
    let account = api
        .call(
            "createAccount",
            ADMIN_KEY,
            &[],
            "",
            Some(json!({"name": "Insurer"})),
        )
        .await;
    let account = account["id"].as_str().unwrap();
    api.call(
        "setAccountConfiguration",
        ADMIN_KEY,
        &[("id", account)],
        "",
        Some(json!({"properties": {"messenger.recordingEnabled": true}})),
    )
    .await;
    let template = api
        .call(
            "createTemplate",
            ADMIN_KEY,
            &[],
            "",
            Some(json!({"accountId": account, "name": "recorded claims"})),
        )
        .await;
    let template = template["id"].as_str().unwrap();
    api.call(
        "setTemplateConfiguration",
        ADMIN_KEY,
        &[("id", template)],
        "",
        Some(json!({"properties": {"conversation.recording.recordingEnabled": true}})),
    )
    .await;
    // An account admin key does the rest, as an integration would.
    let key = api
        .call(
            "createApiKey",
            ADMIN_KEY,
            &[],
            "",
            Some(json!({"accountId": account, "role": "ADMIN", "name": "claims integration"})),
        )
        .await;
    let key = key["apiKey"].as_str().unwrap().to_owned();
    api.call(
        "registerWebhook",
        &key,
        &[],
        "",
        Some(json!({
            "accountId": account,
            "endpoint": receiver.url(),
            "secret": WEBHOOK_SECRET,
            "events": ["conversation.recording_started", "conversation.recording_available"],
        })),
    )
    .await;
    let conversation = api
        .call(
            "createConversation",
            &key,
            &[],
            "",
            Some(json!({"accountId": account, "templateId": template, "topic": "claim 7"})),
        )
        .await;
    let conversation = conversation["id"].as_str().unwrap().to_owned();
    let c = conversation.as_str();
    let agent = api
        .call(
            "addParticipant",
            &key,
            &[("id", c)],
            "",
            Some(json!({"name": "Agent", "role": "ASSIGNED_AGENT"})),
        )
        .await;
    let visitor = api
        .call(
            "addParticipant",
            &key,
            &[("id", c)],
            "",
            Some(json!({"name": "Customer", "role": "VISITOR"})),
        )
        .await;
    let (agent, visitor) = (
        agent["token"].as_str().unwrap().to_owned(),
        visitor["token"].as_str().unwrap().to_owned(),
    );
    api.call(
        "postMessage",
        &visitor,
        &[("id", c)],
        "",
        Some(json!({"text": "Hello, I had an accident"})),
    )
    .await;

    // Two people in a call; the recording starts with it.
    let talking = [
        participant(&base, c, &agent, "720p"),
        participant(&base, c, &visitor, "240p"),
    ];
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    common::wait_until(
        Duration::from_secs(60),
        async || {
            let state = api
                .call("getRecordingState", &agent, &[("id", c)], "", None)
                .await;
            state["recordingState"] == "STARTED"
        },
        || format!("no recording\n{}", server_log()),
    )
    .await;
    api.call(
        "postMessage",
        &agent,
        &[("id", c)],
        "",
        Some(json!({"text": "This call is recorded"})),
    )
    .await;
    for p in talking {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The webhook says it is available; the history lists it.
    let available = common::poll_until(
        Duration::from_secs(60),
        async || {
            receiver
                .verified("conversation.recording_available")
                .into_iter()
                .next()
                .ok_or(())
        },
        |()| format!("no recording_available webhook\n{}", server_log()),
    )
    .await;
    let payload = &available["payload"];
    assert_eq!(payload["conversationId"], c);
    let recordings = api
        .call("getConversationRecordings", &agent, &[("id", c)], "", None)
        .await;
    let recording = &recordings["items"][0];
    assert_eq!(recording["id"], payload["recordingId"]);
    assert_eq!(recording["status"], "COMPLETE");
    assert_eq!(recording["endReason"], "NORMAL");
    assert_eq!(
        recording["callIds"].as_array().unwrap().len(),
        1,
        "{recording}"
    );
    assert_eq!(
        recording["participants"].as_array().unwrap().len(),
        2,
        "{recording}"
    );
    let links = recording["downloadLinks"].as_array().unwrap();
    assert_eq!(
        links.len(),
        1,
        "one composed file (the default layout): {recording}"
    );
    assert_eq!(recording["layout"], "COMPOSED");

    // Each link downloads without credentials, named and typed, and ffprobe accepts it.
    for (n, link) in links.iter().enumerate() {
        let response = http.get(link.as_str().unwrap()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "video/mp4");
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            disposition.contains(recording["files"][n]["fileName"].as_str().unwrap()),
            "{disposition}"
        );
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            bytes.len() as u64,
            recording["files"][n]["size"].as_u64().unwrap()
        );
        let file = dir.path().join(format!("download-{n}.mp4"));
        std::fs::write(&file, &bytes).unwrap();
        let mut codecs = ffprobe_streams(&file);
        codecs.sort();
        assert_eq!(codecs, ["h264", "opus"], "{}", file.display());
    }

    // The timeline: the recording's start and end, the message said during it between them,
    // and the RECORDING_AVAILABLE message after its end.
    let history = api
        .call("getConversationHistory", &agent, &[("id", c)], "", None)
        .await;
    let timeline = history["timeline"].as_array().unwrap();
    let at = |wanted: &dyn Fn(&Value) -> bool| {
        timeline
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("{history}"))
    };
    let hello = at(&|e| e["text"] == "Hello, I had an accident");
    let call = at(&|e| e["type"] == "CALL_STARTED");
    let started = at(&|e| e["type"] == "RECORDING_STARTED");
    let during = at(&|e| e["text"] == "This call is recorded");
    let ended = at(&|e| e["type"] == "RECORDING_ENDED");
    let message = at(&|e| e["type"] == "RECORDING_AVAILABLE");
    assert!(
        hello < call && call <= started && started < during && during < ended && ended < message,
        "{history}"
    );
    assert_eq!(timeline[message]["recordingId"], recording["id"]);
    assert_eq!(timeline[message]["size"], recording["totalSize"]);
    // The visitor's role may not see recordings (the default): neither the list nor the message.
    let theirs = api
        .call(
            "getConversationRecordings",
            &visitor,
            &[("id", c)],
            "",
            None,
        )
        .await;
    assert_eq!(theirs["items"], json!([]));
    let their_history = api
        .call("getConversationHistory", &visitor, &[("id", c)], "", None)
        .await;
    assert!(
        their_history["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "RECORDING_AVAILABLE")
    );

    // Billing: the recorded time, and the account's conversations.
    let minutes = api
        .call(
            "getRecordedMinutes",
            &key,
            &[("id", account)],
            "?fromTime=0&toTime=99999999999999",
            None,
        )
        .await;
    let span = recording["recordingEndTimestamp"].as_i64().unwrap()
        - recording["recordingStartTimestamp"].as_i64().unwrap();
    assert_eq!(minutes["recordedMilliseconds"].as_i64().unwrap(), span);
    assert_eq!(minutes["recordedMinutes"], 1);
    // A period that cuts a second off the start and half a second off the end.
    let (start, end) = (
        recording["recordingStartTimestamp"].as_i64().unwrap(),
        recording["recordingEndTimestamp"].as_i64().unwrap(),
    );
    let period = format!("?fromTime={}&toTime={}", start + 1000, end - 500);
    let clipped = api
        .call(
            "getRecordedMinutes",
            &key,
            &[("id", account)],
            &period,
            None,
        )
        .await;
    assert_eq!(
        clipped["recordedMilliseconds"].as_i64().unwrap(),
        span - 1500
    );
    let listed = api.call("listConversations", &key, &[], "", None).await;
    assert_eq!(listed["items"][0]["id"], c);
}
