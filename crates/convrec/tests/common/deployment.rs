//! A server with an account that records, one conversation and its participants: what the
//! black-box recording tests start from.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use serde_json::{Value, json};

use super::{poll_until, serve_in, wait_until};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A server with an account that records, one conversation and its participants.
pub struct Deployment {
    pub server: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub account: String,
    pub conversation: String,
    pub tokens: Vec<String>,
    pub http: reqwest::Client,
    /// Where the server's object store keeps its objects as files (its data directory's
    /// `objects/` unless a test points it elsewhere).
    pub objects: PathBuf,
    /// The server's environment, again at each restart.
    pub env: Vec<(String, String)>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Deployment {
    pub async fn start(participants: usize) -> Self {
        Self::start_with(participants, json!({}), &[]).await
    }

    /// A deployment whose account also sets `properties` (short names after
    /// `conversation.recording.`).
    pub async fn start_with(
        participants: usize,
        properties: Value,
        server_env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (server, addr) = serve_in(dir.path(), ADMIN_KEY, "server.log", server_env);
        let objects = dir.path().join("data/objects");
        let mut d = Deployment {
            server,
            base: format!("http://{addr}"),
            dir,
            account: String::new(),
            conversation: String::new(),
            tokens: Vec::new(),
            http: reqwest::Client::new(),
            objects,
            env: server_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let account = d
            .call("POST", "/v1/accounts", ADMIN_KEY, json!({"name": "bank"}))
            .await;
        let account = account["id"].as_str().unwrap().to_owned();
        d.account = account.clone();
        d.call(
            "PUT",
            &format!("/v1/accounts/{account}/configuration"),
            ADMIN_KEY,
            {
                // These tests check per-publication files: RAW_TRACKS unless a test says otherwise.
                let mut set = json!({"messenger.recordingEnabled": true, "conversation.recording.recordingEnabled": true, "conversation.recording.recordingLayout": "RAW_TRACKS"});
                for (k, v) in properties.as_object().unwrap() {
                    set[format!("conversation.recording.{k}")] = v.clone();
                }
                json!({ "properties": set })
            },
        )
        .await;
        let (conversation, tokens) = d.add_conversation(participants).await;
        d.conversation = conversation;
        d.tokens = tokens;
        d
    }

    /// Another conversation of the account with `participants` (the first an agent): its id
    /// and their tokens.
    pub async fn add_conversation(&self, participants: usize) -> (String, Vec<String>) {
        let conversation = self
            .call(
                "POST",
                "/v1/conversations",
                ADMIN_KEY,
                json!({"accountId": self.account, "topic": "t"}),
            )
            .await;
        let conversation = conversation["id"].as_str().unwrap().to_owned();
        let mut tokens = Vec::new();
        for n in 0..participants {
            let role = if n == 0 { "ASSIGNED_AGENT" } else { "VISITOR" };
            let p = self
                .call(
                    "POST",
                    &format!("/v1/conversations/{conversation}/participants"),
                    ADMIN_KEY,
                    json!({"name": format!("p{n}"), "role": role}),
                )
                .await;
            tokens.push(p["token"].as_str().unwrap().to_owned());
        }
        (conversation, tokens)
    }

    /// A JSON request that must succeed.
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path}: {status} {text}\n{}",
            self.log()
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The status of a request that may be refused.
    pub async fn status(&self, method: &str, path: &str, token: &str) -> u16 {
        self.http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A sample of `GET /metrics` (the Prometheus text format): the value of the line that
    /// starts with `series` (a name with its labels, e.g. `convrec_recordings{status="COMPLETE"}`);
    /// `None` when there is no such line.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_of(&self.http, &self.base, series).await
    }

    /// `GET /health`: its status and body.
    pub async fn health(&self) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The server's log (of both runs, if it was restarted), without terminal colours.
    pub fn log(&self) -> String {
        let coloured: String = ["server.log", "server-restarted.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect();
        without_colours(&coloured)
    }

    /// Kills the server with SIGKILL (a crash) and starts it again on the same data.
    pub fn crash_and_restart(&mut self) {
        self.server.kill().unwrap();
        self.server.wait().unwrap();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (server, addr) = serve_in(self.dir.path(), ADMIN_KEY, "server-restarted.log", &env);
        self.server = server;
        self.base = format!("http://{addr}");
    }

    /// `convrec participant` for participant `n`, publishing for `seconds`.
    pub fn participant(&self, n: usize, seconds: f64) -> Child {
        let seconds = seconds.to_string();
        super::participant(
            &self.base,
            &self.conversation,
            &self.tokens[n],
            &["--seconds", &seconds],
        )
    }

    /// `getRecordingState`, asked by participant 0.
    async fn recording_state(&self) -> Value {
        let path = format!("/v1/conversations/{}/getRecordingState", self.conversation);
        self.call("POST", &path, &self.tokens[0], Value::Null).await
    }

    pub async fn state(&self) -> String {
        let state = self.recording_state().await;
        state["recordingState"].as_str().unwrap().to_owned()
    }

    pub async fn recording_id(&self) -> String {
        let state = self.recording_state().await;
        state["recordingId"].as_str().unwrap_or_default().to_owned()
    }

    /// The conversation as participant 0 sees it now.
    pub async fn conversation_now(&self) -> Value {
        self.call(
            "GET",
            &format!("/v1/conversations/{}", self.conversation),
            &self.tokens[0],
            Value::Null,
        )
        .await
    }

    /// The active call, ended by the agent.
    pub async fn end_the_call(&self) {
        let conversation = self.conversation_now().await;
        let call = conversation["activeInteractions"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.call(
            "POST",
            &format!("/v1/conversations/{}/calls/{call}/end", self.conversation),
            &self.tokens[0],
            Value::Null,
        )
        .await;
    }

    /// Waits (up to 20 s) until the conversation has no active interaction.
    pub async fn wait_until_the_calls_ended(&self) {
        wait_until(
            Duration::from_secs(20),
            async || {
                self.conversation_now().await["activeInteractions"]
                    .as_array()
                    .expect("a conversation lists its active interactions")
                    .is_empty()
            },
            || format!("the call goes on\n{}", self.log()),
        )
        .await;
    }

    pub async fn wait_for_state(&self, wanted: &str) {
        wait_until(
            Duration::from_secs(30),
            async || self.state().await == wanted,
            || format!("no {wanted} state\n{}", self.log()),
        )
        .await;
    }

    /// The recordings, once all are complete.
    pub async fn complete_recordings(&self) -> Vec<Value> {
        self.complete_recordings_of(&self.conversation, &self.tokens[0])
            .await
    }

    /// The recordings of `conversation` as `token` sees them, once all are complete.
    pub async fn complete_recordings_of(&self, conversation: &str, token: &str) -> Vec<Value> {
        poll_until(
            Duration::from_secs(60),
            async || {
                let list = self
                    .call(
                        "GET",
                        &format!(
                            "/v1/conversationhistory/{conversation}/getConversationRecordings"
                        ),
                        token,
                        Value::Null,
                    )
                    .await;
                let items = list["items"].as_array().unwrap().clone();
                if !items.is_empty() && items.iter().all(|r| r["status"] == "COMPLETE") {
                    Ok(items)
                } else {
                    Err(list)
                }
            },
            |list| format!("not complete: {list}\n{}", self.log()),
        )
        .await
    }

    pub fn object(&self, key: &str) -> PathBuf {
        self.objects.join(key)
    }

    pub fn manifest(&self, recording_id: &str) -> Value {
        let path = self.object(&format!("recordings/{recording_id}/manifest.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Waits until the conversation's one recording, `id`, is complete; checks it ended with
    /// `end_reason` and holds one file, stored as long as its manifest says. Returns that file
    /// and its size.
    pub async fn the_one_stored_file(&self, id: &str, end_reason: &str) -> (PathBuf, u64) {
        let recordings = self.complete_recordings().await;
        assert_eq!(recordings.len(), 1, "{recordings:?}");
        assert_eq!(recordings[0]["id"], id);
        assert_eq!(recordings[0]["endReason"], end_reason);
        let manifest = self.manifest(id);
        let files = manifest["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{manifest}");
        let object = self.object(files[0]["objectKey"].as_str().unwrap());
        let size = std::fs::metadata(&object).unwrap().len();
        assert_eq!(size, files[0]["bytes"].as_u64().unwrap(), "{manifest}");
        (object, size)
    }
}

/// The value of the metric line of the server at `base` that starts with `series`.
pub async fn metric_of(http: &reqwest::Client, base: &str, series: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
