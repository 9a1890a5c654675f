//! The web API's answers to good and bad requests, against a real server on loopback: who may
//! do what, precise errors for bad input (and nothing half-applied), calls and layers, WHIP's
//! refusals, and the event stream.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use convrec_server::{Server, ServerConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "admin-key-for-api-tests";

struct Api {
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    /// PostgreSQL when the test command's second pass asks for it; `None`: SQLite in `dir`.
    database: Option<convrec_testkit::TestDatabase>,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = convrec_testkit::database_for_servers();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            database_url: database.as_ref().map(|d| d.url()),
            object_store_url: None,
            media_listen: None,
            media_advertise: None,
            public_url: None,
            // Recording stays off in these tests: no recorder is launched.
            recorder_program: "/bin/false".into(),
            recorder_command: None,
            recording_api_key_id: None,
            bootstrap_admin_key: Some(ADMIN.into()),
            node_id: None,
            upload: Default::default(),
            cluster: Default::default(),
            turn: None,
            webhook_destinations: Default::default(),
            // These tests fail to authenticate on purpose, many times.
            limits: convrec_server::limits::Limits {
                failed_auth_per_minute: 100_000,
                ..Default::default()
            },
        };
        let server = Server::bind(&config).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        tokio::spawn(server.serve(std::future::pending()));
        Self {
            base,
            http: reqwest::Client::new(),
            dir,
            database,
        }
    }

    /// (status, JSON body) of a request; `body` is JSON unless it is a string (sent as SDP).
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Value::Null => request,
            Value::String(sdp) => request.header("content-type", "application/sdp").body(sdp),
            json => request.json(&json),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.send(method, path, Some(token), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    /// An account, a conversation and a participant of each role; returns (conversation, tokens).
    async fn conversation(&self) -> (String, Vec<String>) {
        let account = self
            .ok("POST", "/v1/accounts", ADMIN, json!({"name": "a"}))
            .await;
        let conversation = self
            .ok(
                "POST",
                "/v1/conversations",
                ADMIN,
                json!({"accountId": account["id"], "topic": "t"}),
            )
            .await;
        let id = conversation["id"].as_str().unwrap().to_owned();
        let mut tokens = Vec::new();
        for role in ["ASSIGNED_AGENT", "VISITOR"] {
            let p = self
                .ok(
                    "POST",
                    &format!("/v1/conversations/{id}/participants"),
                    ADMIN,
                    json!({"name": role, "role": role}),
                )
                .await;
            tokens.push(p["token"].as_str().unwrap().to_owned());
        }
        (id, tokens)
    }
}

#[tokio::test]
async fn callers_see_only_what_is_theirs() {
    let api = Api::start().await;
    let (mine, tokens) = api.conversation().await;
    let (theirs, _) = api.conversation().await;
    let (status, body) = api
        .send(
            "GET",
            &format!("/v1/conversations/{mine}"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _) = api
        .send(
            "GET",
            &format!("/v1/conversations/{mine}"),
            Some("wrong"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 401);
    api.ok(
        "GET",
        &format!("/v1/conversations/{mine}"),
        &tokens[1],
        Value::Null,
    )
    .await;
    // Another conversation does not exist as far as this participant knows.
    let (status, body) = api
        .send(
            "GET",
            &format!("/v1/conversations/{theirs}"),
            Some(&tokens[1]),
            Value::Null,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{body}"
    );
    // Seen, but not theirs to do.
    let (status, _) = api
        .send(
            "POST",
            "/v1/accounts",
            Some(&tokens[0]),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .send(
            "POST",
            &format!("/v1/conversations/{mine}/participants"),
            Some(&tokens[0]),
            json!({"name": "x", "role": "VISITOR"}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn bad_bodies_get_precise_errors() {
    let api = Api::start().await;
    let response = api
        .http
        .post(format!("{}/v1/accounts", api.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "MALFORMED_JSON", "{body}");
    let (status, body) = api
        .send(
            "POST",
            "/v1/accounts",
            Some(ADMIN),
            json!({"name": "a", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "INVALID_BODY");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let (_, tokens) = api.conversation().await;
    let (status, body) = api
        .send(
            "POST",
            "/v1/conversations",
            Some(ADMIN),
            json!({"accountId": "acc_nope", "topic": "t"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    assert!(!tokens.is_empty());
}

/// A raw request: (status, JSON body).
async fn raw(
    api: &Api,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = api
        .http
        .request(method.parse().unwrap(), format!("{}{path}", api.base))
        .bearer_auth(ADMIN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// (method, path, content type, body, status, code, what the message mentions).
type Malformed = (
    &'static str,
    String,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn malformed_requests_get_a_json_4xx_naming_the_problem_never_a_500() {
    let api = Api::start().await;
    let (conversation, tokens) = api.conversation().await;
    let cases: Vec<Malformed> = vec![
        // (method, path, content type, body, status, code, the message mentions)
        (
            "POST",
            "/v1/accounts".into(),
            "application/json",
            br#"{"name": 5}"#.to_vec(),
            422,
            "INVALID_BODY",
            "invalid type",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            "application/json",
            br#"[]"#.to_vec(),
            422,
            "INVALID_BODY",
            "expected struct NewAccount",
        ),
        // Text no database may store (PostgreSQL's cannot hold NUL): refused, field named.
        (
            "POST",
            "/v1/accounts".into(),
            "application/json",
            br#"{"name": "a\u0000b"}"#.to_vec(),
            422,
            "INVALID_BODY",
            "field 'name' must not contain the NUL character",
        ),
        (
            "GET",
            "/v1/conversations/conv%00x".into(),
            "application/json",
            Vec::new(),
            400,
            "BAD_REQUEST",
            "NUL character",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            "text/plain",
            br#"{"name": "a"}"#.to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "application/json",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            "application/json",
            vec![b' '; 3 << 20],
            413,
            "PAYLOAD_TOO_LARGE",
            "larger than 1048576 bytes",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            "application/json",
            br#"{"name": "   "}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "'name'",
        ),
        (
            "GET",
            "/v1/accounts/%FF%FE".into(),
            "application/json",
            vec![],
            400,
            "INVALID_PATH",
            "UTF-8",
        ),
        (
            "GET",
            "/v1/conversations?accountId=a&colour=red".into(),
            "application/json",
            vec![],
            400,
            "INVALID_QUERY",
            "unknown field `colour`",
        ),
        (
            "GET",
            "/v1/conversations?limit=many".into(),
            "application/json",
            vec![],
            400,
            "INVALID_QUERY",
            "limit",
        ),
        (
            "GET",
            "/v1/accounts/acc_x/getRecordedMinutes?fromTime=abc&toTime=1".into(),
            "application/json",
            vec![],
            400,
            "INVALID_QUERY",
            "fromTime",
        ),
        (
            "GET",
            "/v1/conversations?cursor=nonsense&accountId=acc_x".into(),
            "application/json",
            vec![],
            404,
            "NOT_FOUND",
            "acc_x",
        ),
        (
            "GET",
            "/v1/no/such/thing".into(),
            "application/json",
            vec![],
            404,
            "NO_ROUTE",
            "/v1/no/such/thing",
        ),
        (
            "PATCH",
            "/v1/accounts".into(),
            "application/json",
            vec![],
            405,
            "METHOD_NOT_ALLOWED",
            "PATCH",
        ),
        (
            "POST",
            format!("/v1/conversations/{conversation}/messages"),
            "application/json",
            format!(r#"{{"text": "{}"}}"#, "x".repeat(10_001)).into_bytes(),
            400,
            "BAD_REQUEST",
            "10000",
        ),
    ];
    for (method, path, content_type, body, status, code, mentions) in cases {
        let (got, answer) = raw(&api, method, &path, content_type, body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(mentions),
            "{method} {path}: {answer}"
        );
    }
    // A WHIP offer that is not text at all.
    let call = api
        .ok(
            "POST",
            &format!("/v1/conversations/{conversation}/calls"),
            &tokens[0],
            json!({"type": "AUDIO"}),
        )
        .await;
    let whip = format!(
        "/v1/conversations/{conversation}/calls/{}/whip",
        call["id"].as_str().unwrap()
    );
    let response = api
        .http
        .post(format!("{}{whip}", api.base))
        .bearer_auth(&tokens[0])
        .header("content-type", "application/sdp")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["message"].as_str().unwrap().contains("UTF-8"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_configuration_change_is_validated_whole_and_applied_whole() {
    let api = Api::start().await;
    let account = api
        .ok("POST", "/v1/accounts", ADMIN, json!({"name": "a"}))
        .await;
    let path = format!(
        "/v1/accounts/{}/configuration",
        account["id"].as_str().unwrap()
    );
    let (status, body) = api
        .send(
            "PUT",
            &path,
            Some(ADMIN),
            json!({"properties": {"messenger.recordingEnabled": true, "conversation.recording.recordingEnabled": "yes"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "INVALID_CONFIGURATION");
    assert_eq!(
        body["message"],
        "property 'conversation.recording.recordingEnabled' cannot be \"yes\"; allowed: true or false"
    );
    // Nothing of the refused change was applied.
    let set = api.ok("GET", &path, ADMIN, Value::Null).await;
    assert_eq!(set["properties"], json!({}));
    api.ok(
        "PUT",
        &path,
        ADMIN,
        json!({"properties": {"messenger.recordingEnabled": true}}),
    )
    .await;
    let set = api.ok("GET", &path, ADMIN, Value::Null).await;
    assert_eq!(
        set["properties"],
        json!({"messenger.recordingEnabled": true})
    );
    // null unsets a property: it is no longer set in the scope, and falls back to its default.
    api.ok(
        "PUT",
        &path,
        ADMIN,
        json!({"properties": {"messenger.recordingEnabled": null, "conversation.recording.recordingType": "AUDIO"}}),
    )
    .await;
    let set = api.ok("GET", &path, ADMIN, Value::Null).await;
    assert_eq!(
        set["properties"],
        json!({"conversation.recording.recordingType": "AUDIO"})
    );
}

#[tokio::test]
async fn calls_and_layers_start_once_and_cobrowsing_is_refused_for_now() {
    let api = Api::start().await;
    let (id, tokens) = api.conversation().await;
    let calls = format!("/v1/conversations/{id}/calls");
    let layers = format!("/v1/conversations/{id}/layers");
    let (status, body) = api
        .send("POST", &calls, Some(&tokens[0]), json!({"type": "VIDEO"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("allowed: AUDIO, AUDIO_VIDEO")
    );
    let call = api
        .ok("POST", &calls, &tokens[0], json!({"type": "AUDIO_VIDEO"}))
        .await;
    let (status, body) = api
        .send("POST", &calls, Some(&tokens[1]), json!({"type": "AUDIO"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("INTERACTION_ACTIVE"))
    );
    assert_eq!(body["details"]["interactionId"], call["id"]);
    for kind in [
        "DOCUMENT_COBROWSING",
        "EMBEDDED_COBROWSING",
        "UNIVERSAL_COBROWSING",
    ] {
        let (status, body) = api
            .send("POST", &layers, Some(&tokens[0]), json!({"type": kind}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("NOT_SUPPORTED")),
            "{body}"
        );
    }
    let layer = api
        .ok(
            "POST",
            &layers,
            &tokens[0],
            json!({"type": "SCREEN_SHARING"}),
        )
        .await;
    let read = api
        .ok(
            "GET",
            &format!("/v1/conversations/{id}"),
            &tokens[1],
            Value::Null,
        )
        .await;
    assert_eq!(read["activeInteractions"].as_array().unwrap().len(), 2);
    // A layer is not a call, nor the other way round.
    let layer_id = layer["id"].as_str().unwrap();
    let (status, _) = api
        .send(
            "POST",
            &format!("{calls}/{layer_id}/end"),
            Some(&tokens[0]),
            Value::Null,
        )
        .await;
    assert_eq!(status, 404);
    let call_id = call["id"].as_str().unwrap();
    api.ok(
        "POST",
        &format!("{calls}/{call_id}/end"),
        &tokens[0],
        Value::Null,
    )
    .await;
    let (status, _) = api
        .send(
            "POST",
            &format!("{calls}/{call_id}/end"),
            Some(&tokens[0]),
            Value::Null,
        )
        .await;
    assert_eq!(status, 404, "an ended call is no longer active");
    assert!(layer["id"].as_str().unwrap().starts_with("layer_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_started_at_the_same_moment_make_one_call() {
    let api = Api::start().await;
    let (id, tokens) = api.conversation().await;
    let calls = format!("/v1/conversations/{id}/calls");
    let attempts = (0..10).map(|n| {
        let (api, calls, token) = (&api, &calls, &tokens[n % tokens.len()]);
        async move {
            api.send("POST", calls, Some(token), json!({"type": "AUDIO"}))
                .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let started: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(started.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        if *status != 201 {
            assert_eq!(*status, 409, "{body}");
            assert_eq!(body["details"]["interactionId"], started[0]["id"], "{body}");
        }
    }
    let history = api
        .ok(
            "GET",
            &format!("/v1/conversationhistory/{id}"),
            ADMIN,
            Value::Null,
        )
        .await;
    let calls_in_history = history["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "CALL_STARTED")
        .count();
    assert_eq!(calls_in_history, 1, "the losers leave no trace: {history}");
}

#[tokio::test]
async fn whip_refuses_what_cannot_be_recorded_and_says_why() {
    let api = Api::start().await;
    let (id, tokens) = api.conversation().await;
    let call = api
        .ok(
            "POST",
            &format!("/v1/conversations/{id}/calls"),
            &tokens[0],
            json!({"type": "AUDIO_VIDEO"}),
        )
        .await;
    let whip = format!(
        "/v1/conversations/{id}/calls/{}/whip",
        call["id"].as_str().unwrap()
    );
    let vp8 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n";
    let (status, body) = api.send("POST", &whip, Some(&tokens[0]), json!(vp8)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("UNSUPPORTED_CODECS")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("video offers VP8/90000"),
        "{body}"
    );
    // Not SDP.
    let (status, body) = api
        .send("POST", &whip, Some(&tokens[0]), json!({"sdp": vp8}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE"))
    );
    // Media sessions belong to participants, not to API keys.
    let (status, _) = api.send("POST", &whip, Some(ADMIN), json!(vp8)).await;
    assert_eq!(status, 403);
    let (status, _) = api
        .send(
            "POST",
            &format!("/v1/conversations/{id}/calls/call_nope/whip"),
            Some(&tokens[0]),
            json!(vp8),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_event_stream_starts_with_what_is_active_then_follows_changes() {
    let api = Api::start().await;
    let (id, tokens) = api.conversation().await;
    let call = api
        .ok(
            "POST",
            &format!("/v1/conversations/{id}/calls"),
            &tokens[0],
            json!({"type": "AUDIO"}),
        )
        .await;
    let response = api
        .http
        .get(format!("{}/v1/conversations/{id}/events", api.base))
        .bearer_auth(&tokens[1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let call_id = call["id"].as_str().unwrap();
    api.ok(
        "POST",
        &format!("/v1/conversations/{id}/calls/{call_id}/end"),
        &tokens[0],
        Value::Null,
    )
    .await;
    while !seen.contains("interactionEnded") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let started = seen
        .find("\"type\":\"interactionStarted\"")
        .expect("the snapshot");
    let ended = seen.find("\"type\":\"interactionEnded\"").unwrap();
    assert!(started < ended, "{seen}");
    assert!(seen.contains(call_id));
}

#[tokio::test]
async fn a_call_that_ends_before_its_recorder_joins_leaves_no_recording_running() {
    // Recording on, but the "recorder" (/bin/false) never joins.
    let api = Api::start().await;
    let account = api
        .ok("POST", "/v1/accounts", ADMIN, json!({"name": "a"}))
        .await;
    let account = account["id"].as_str().unwrap();
    api.ok(
        "PUT",
        &format!("/v1/accounts/{account}/configuration"),
        ADMIN,
        json!({"properties": {"messenger.recordingEnabled": true, "conversation.recording.recordingEnabled": true}}),
    )
    .await;
    let conversation = api
        .ok(
            "POST",
            "/v1/conversations",
            ADMIN,
            json!({"accountId": account, "topic": "t"}),
        )
        .await;
    let id = conversation["id"].as_str().unwrap();
    let state = format!("/v1/conversations/{id}/getRecordingState");
    assert_eq!(
        api.ok("POST", &state, ADMIN, Value::Null).await["recordingState"],
        "IDLE"
    );
    for _ in 0..2 {
        let call = api
            .ok(
                "POST",
                &format!("/v1/conversations/{id}/calls"),
                ADMIN,
                json!({"type": "AUDIO"}),
            )
            .await;
        let waiting = api.ok("POST", &state, ADMIN, Value::Null).await;
        assert_eq!(waiting["recordingState"], "WAITING_READY", "{waiting}");
        let call = call["id"].as_str().unwrap();
        api.ok(
            "POST",
            &format!("/v1/conversations/{id}/calls/{call}/end"),
            ADMIN,
            Value::Null,
        )
        .await;
        // Ended, and the next call may record again.
        let ended = api.ok("POST", &state, ADMIN, Value::Null).await;
        assert_eq!(ended["recordingState"], "STOPPED", "{ended}");
        assert_eq!(
            ended["recordingStartTimestamp"],
            Value::Null,
            "it never started"
        );
    }
    let listed = api
        .ok(
            "GET",
            &format!("/v1/conversationhistory/{id}/getConversationRecordings"),
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(
        listed["items"],
        json!([]),
        "recordings without media are not listed"
    );
}

#[tokio::test]
async fn templates_are_a_narrower_scope_and_immutable_settings_are_refused() {
    let api = Api::start().await;
    let account = api
        .ok("POST", "/v1/accounts", ADMIN, json!({"name": "a"}))
        .await;
    let other = api
        .ok("POST", "/v1/accounts", ADMIN, json!({"name": "b"}))
        .await;
    let template = api
        .ok(
            "POST",
            "/v1/templates",
            ADMIN,
            json!({"accountId": account["id"], "name": "sales"}),
        )
        .await;
    let tpl = template["id"].as_str().unwrap();
    let path = format!("/v1/templates/{tpl}/configuration");
    api.ok(
        "PUT",
        &path,
        ADMIN,
        json!({"properties": {"conversation.recording.recordingMaxRetries": 5, "conversation.recording.recordingFilenamePattern": "{accountId}-{startTime}.mp4"}}),
    )
    .await;
    let set = api.ok("GET", &path, ADMIN, Value::Null).await;
    assert_eq!(set["scope"], "TEMPLATE");
    assert_eq!(
        set["properties"]["conversation.recording.recordingMaxRetries"],
        5
    );
    // Account-only and immutable properties are refused in a template, naming where they belong.
    for (name, value, scope) in [
        ("messenger.recordingEnabled", json!(true), "ACCOUNT"),
        (
            "identifier.recordingEntryPointBaseUrl",
            json!("http://x"),
            "IMMUTABLE",
        ),
    ] {
        let (status, body) = api
            .send(
                "PUT",
                &path,
                Some(ADMIN),
                json!({"properties": {name: value}}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .ends_with(&format!("it can be set in: {scope}")),
            "{body}"
        );
    }
    let (status, body) = api
        .send(
            "PUT",
            &path,
            Some(ADMIN),
            json!({"properties": {"conversation.recording.recordingFilenamePattern": "../{recordingId}.mp4"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    // A template of another account cannot be used.
    let (status, body) = api
        .send(
            "POST",
            "/v1/conversations",
            Some(ADMIN),
            json!({"accountId": other["id"], "templateId": tpl, "topic": "t"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{body}"
    );
    let conversation = api
        .ok(
            "POST",
            "/v1/conversations",
            ADMIN,
            json!({"accountId": account["id"], "templateId": tpl, "topic": "t"}),
        )
        .await;
    assert_eq!(conversation["templateId"], tpl);

    // The account records, its template does not: the template wins for its conversations.
    let account_id = account["id"].as_str().unwrap();
    api.ok(
        "PUT",
        &format!("/v1/accounts/{account_id}/configuration"),
        ADMIN,
        json!({"properties": {"messenger.recordingEnabled": true, "conversation.recording.recordingEnabled": true}}),
    )
    .await;
    api.ok(
        "PUT",
        &path,
        ADMIN,
        json!({"properties": {"conversation.recording.recordingEnabled": false}}),
    )
    .await;
    let plain = api
        .ok(
            "POST",
            "/v1/conversations",
            ADMIN,
            json!({"accountId": account_id, "topic": "t"}),
        )
        .await;
    for (c, expected) in [(&conversation, "IDLE"), (&plain, "WAITING_READY")] {
        let id = c["id"].as_str().unwrap();
        api.ok(
            "POST",
            &format!("/v1/conversations/{id}/calls"),
            ADMIN,
            json!({"type": "AUDIO"}),
        )
        .await;
        let state = api
            .ok(
                "POST",
                &format!("/v1/conversations/{id}/getRecordingState"),
                ADMIN,
                Value::Null,
            )
            .await;
        assert_eq!(state["recordingState"], expected, "{c}");
    }
}

#[tokio::test]
async fn a_synchronous_start_holds_the_call_until_the_attempts_give_up() {
    // Recording on, synchronous (the default), 2 attempts; the "recorder" exits at once.
    let api = Api::start().await;
    let account = api
        .ok("POST", "/v1/accounts", ADMIN, json!({"name": "a"}))
        .await;
    let account = account["id"].as_str().unwrap();
    api.ok(
        "PUT",
        &format!("/v1/accounts/{account}/configuration"),
        ADMIN,
        json!({"properties": {"messenger.recordingEnabled": true, "conversation.recording.recordingEnabled": true, "conversation.recording.recordingMaxRetries": 2}}),
    )
    .await;
    let conversation = api
        .ok(
            "POST",
            "/v1/conversations",
            ADMIN,
            json!({"accountId": account, "topic": "t"}),
        )
        .await;
    let id = conversation["id"].as_str().unwrap();
    let response = api
        .http
        .get(format!("{}/v1/conversations/{id}/events", api.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    api.ok(
        "POST",
        &format!("/v1/conversations/{id}/calls"),
        ADMIN,
        json!({"type": "AUDIO"}),
    )
    .await;
    let mut seen = String::new();
    while !seen.contains("\"held\":false") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let held = seen.find("\"held\":true").expect("held while waiting");
    let failed = seen
        .find("\"recordingState\":\"FAILED\"")
        .expect("the attempts gave up");
    let released = seen.find("\"held\":false").unwrap();
    assert!(held < failed && failed < released, "{seen}");
    // RETRY: the call goes on, released.
    let read = api
        .ok(
            "GET",
            &format!("/v1/conversations/{id}"),
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(read["activeInteractions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn manual_start_and_stop_answer_with_spec_5_s_codes() {
    let api = Api::start().await;
    let account = api
        .ok("POST", "/v1/accounts", ADMIN, json!({"name": "a"}))
        .await;
    let account_id = account["id"].as_str().unwrap();
    api.ok(
        "PUT",
        &format!("/v1/accounts/{account_id}/configuration"),
        ADMIN,
        json!({"properties": {
            "messenger.recordingEnabled": true,
            "conversation.recording.recordingEnabled": true,
            "conversation.recording.recordingTriggeringMode": "MANUAL",
        }}),
    )
    .await;
    let conversation = api
        .ok(
            "POST",
            "/v1/conversations",
            ADMIN,
            json!({"accountId": account_id, "topic": "t"}),
        )
        .await;
    let id = conversation["id"].as_str().unwrap();
    let mut tokens = Vec::new();
    for role in ["ASSIGNED_AGENT", "VISITOR"] {
        let p = api
            .ok(
                "POST",
                &format!("/v1/conversations/{id}/participants"),
                ADMIN,
                json!({"name": role, "role": role}),
            )
            .await;
        tokens.push(p["token"].as_str().unwrap().to_owned());
    }
    let (agent, visitor) = (tokens[0].as_str(), tokens[1].as_str());
    let start = format!("/v1/conversations/{id}/startRecording");
    let stop = format!("/v1/conversations/{id}/stopRecording");
    let code = |r: (u16, Value)| (r.0, r.1["code"].as_str().map(str::to_owned));
    let expect = |status: u16, c: &str| (status, Some(c.to_owned()));

    assert_eq!(
        code(api.send("POST", &start, Some(agent), Value::Null).await),
        expect(409, "NOTHING_TO_RECORD")
    );
    api.ok(
        "POST",
        &format!("/v1/conversations/{id}/calls"),
        agent,
        json!({"type": "AUDIO"}),
    )
    .await;
    assert_eq!(
        code(api.send("POST", &start, Some(visitor), Value::Null).await),
        expect(403, "RECORDING_DENIED")
    );
    assert_eq!(
        code(api.send("POST", &stop, Some(agent), Value::Null).await),
        expect(409, "RECORDING_NOT_RUNNING")
    );
    let (status, _) = api.send("POST", &start, Some(agent), Value::Null).await;
    assert_eq!(status, 204);
    assert_eq!(
        code(api.send("POST", &start, Some(agent), Value::Null).await),
        expect(409, "RECORDING_RUNNING")
    );
    assert_eq!(
        code(api.send("POST", &stop, Some(visitor), Value::Null).await),
        expect(403, "RECORDING_DENIED")
    );
    let (status, _) = api.send("POST", &stop, Some(agent), Value::Null).await;
    assert_eq!(status, 204);
    let state = api
        .ok(
            "POST",
            &format!("/v1/conversations/{id}/getRecordingState"),
            agent,
            Value::Null,
        )
        .await;
    assert_eq!(state["recordingState"], "STOPPED", "{state}");
    // Storage that cannot take a file: 503 before anything starts.
    let spool = api.dir.path().join("spool");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, "not a directory").unwrap();
    assert_eq!(
        code(api.send("POST", &start, Some(agent), Value::Null).await),
        expect(503, "STORAGE_UNAVAILABLE")
    );
}

#[tokio::test]
async fn webhook_registrations_are_checked_and_only_admins_see_them() {
    let api = Api::start().await;
    let (id, tokens) = api.conversation().await;
    let conversation = api
        .ok(
            "GET",
            &format!("/v1/conversations/{id}"),
            ADMIN,
            Value::Null,
        )
        .await;
    let account = conversation["accountId"].clone();
    let good = json!({
        "accountId": account,
        "endpoint": "https://hooks.example/convrec",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "events": ["conversation.recording_available"],
    });
    for (field, value, says) in [
        (
            "endpoint",
            json!("ftp://x"),
            "'endpoint' must be an absolute http:// or https:// URL",
        ),
        (
            "endpoint",
            json!("http://127.0.0.1:8080/hook"),
            "'endpoint' cannot be reached: 127.0.0.1 is a loopback address",
        ),
        (
            "endpoint",
            json!("http://[::ffff:169.254.169.254]/latest"),
            "169.254.169.254 is a link-local address",
        ),
        ("secret", json!("hunter2"), "'secret' must be 'whsec_'"),
        ("events", json!([]), "'events' is empty"),
        (
            "events",
            json!(["conversation.deleted"]),
            "'events' holds 'conversation.deleted'",
        ),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = api.send("POST", "/v1/webhooks", Some(ADMIN), body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some("INVALID_WEBHOOK")),
            "{answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
    let (status, _) = api
        .send("POST", "/v1/webhooks", Some(&tokens[0]), good.clone())
        .await;
    assert_eq!(status, 404, "participants see no account");
    let webhook = api.ok("POST", "/v1/webhooks", ADMIN, good).await;
    assert!(
        webhook.get("secret").is_none(),
        "the secret is never echoed"
    );
    let deliveries = format!(
        "/v1/webhooks/{}/deliveries",
        webhook["id"].as_str().unwrap()
    );
    assert_eq!(
        api.ok("GET", &deliveries, ADMIN, Value::Null).await["items"],
        json!([])
    );
    let (status, _) = api
        .send("GET", &deliveries, Some(&tokens[0]), Value::Null)
        .await;
    assert_eq!(status, 404, "participants do not see registrations");
}

#[tokio::test]
async fn api_keys_are_shown_once_act_for_their_account_only_and_stop_at_revocation() {
    let api = Api::start().await;
    let (conversation, _) = api.conversation().await;
    let read = api
        .ok(
            "GET",
            &format!("/v1/conversations/{conversation}"),
            ADMIN,
            Value::Null,
        )
        .await;
    let account = read["accountId"].as_str().unwrap().to_owned();
    let made = api
        .ok(
            "POST",
            "/v1/apikeys",
            ADMIN,
            json!({"accountId": account, "role": "ADMIN", "name": "crm"}),
        )
        .await;
    let secret = made["apiKey"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("crk_") && secret.len() > 60, "{made}");
    // Listed without its secret; the data directory keeps only a hash.
    let listed = api
        .ok(
            "GET",
            &format!("/v1/apikeys?accountId={account}"),
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(listed["items"][0]["id"], made["id"]);
    assert!(listed["items"][0].get("apiKey").is_none(), "{listed}");
    let stored = match &api.database {
        Some(database) => database.raw_contents(),
        None => [
            std::fs::read(api.dir.path().join("convrec.db")).unwrap_or_default(),
            std::fs::read(api.dir.path().join("convrec.db-wal")).unwrap_or_default(),
        ]
        .concat(),
    };
    assert!(
        stored
            .windows(made["id"].as_str().unwrap().len())
            .any(|w| w == made["id"].as_str().unwrap().as_bytes()),
        "the metadata database is where the test looks: the key's id is there"
    );
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not stored"
    );
    // It acts as its account's admin, and only there.
    let (status, _) = api
        .send(
            "GET",
            &format!("/v1/conversations/{conversation}"),
            Some(&secret),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    let (other, _) = api.conversation().await;
    let (status, _) = api
        .send(
            "GET",
            &format!("/v1/conversations/{other}"),
            Some(&secret),
            Value::Null,
        )
        .await;
    assert_eq!(
        status, 404,
        "another account's conversation does not exist for it"
    );
    let (status, body) = api
        .send(
            "POST",
            "/v1/apikeys",
            Some(&secret),
            json!({"role": "GLOBAL_ADMIN", "name": "escalate"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    // An event stream it opened, which must not outlive the key.
    let events = api
        .http
        .get(format!(
            "{}/v1/conversations/{conversation}/events",
            api.base
        ))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream();
    // Revoked: no credential any more, and listed as revoked.
    api.ok(
        "DELETE",
        &format!("/v1/apikeys/{}", made["id"].as_str().unwrap()),
        ADMIN,
        Value::Null,
    )
    .await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(chunk) = events.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the revoked key's event stream goes on");
    let (status, body) = api
        .send(
            "GET",
            &format!("/v1/conversations/{conversation}"),
            Some(&secret),
            Value::Null,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let listed = api
        .ok(
            "GET",
            &format!("/v1/apikeys?accountId={account}"),
            ADMIN,
            Value::Null,
        )
        .await;
    assert!(listed["items"][0]["revokedAt"].is_i64(), "{listed}");
}

#[tokio::test]
async fn conversations_are_listed_in_pages_that_miss_and_repeat_none() {
    let api = Api::start().await;
    let (first, _) = api.conversation().await;
    let read = api
        .ok(
            "GET",
            &format!("/v1/conversations/{first}"),
            ADMIN,
            Value::Null,
        )
        .await;
    let account = read["accountId"].as_str().unwrap().to_owned();
    let mut made = vec![first];
    for n in 0..6 {
        let c = api
            .ok(
                "POST",
                "/v1/conversations",
                ADMIN,
                json!({"accountId": account, "topic": format!("t{n}")}),
            )
            .await;
        made.push(c["id"].as_str().unwrap().to_owned());
    }
    // Another account's conversation is never on this account's pages.
    api.conversation().await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .ok(
                "GET",
                &format!("/v1/conversations?accountId={account}&limit=3{cursor}"),
                ADMIN,
                Value::Null,
            )
            .await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|c| {
            (
                c["createdAt"].as_i64().unwrap(),
                c["id"].as_str().unwrap().to_owned(),
            )
        }));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    // Oldest first (conversations made in the same millisecond in id order), each once.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let mut seen: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    seen.sort();
    made.sort();
    assert_eq!(seen, made, "each once");
    let (status, body) = api
        .send(
            "GET",
            "/v1/conversations?cursor=12.nope",
            Some(ADMIN),
            Value::Null,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
    let (status, _) = api
        .send(
            "GET",
            &format!("/v1/conversations?accountId={account}&limit=0"),
            Some(ADMIN),
            Value::Null,
        )
        .await;
    assert_eq!(status, 400);
    // A global admin without accountId sees every account's.
    let all = api
        .ok("GET", "/v1/conversations?limit=200", ADMIN, Value::Null)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), made.len() + 1);
}
