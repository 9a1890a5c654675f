//! Access control, black-box: the table in `docs/security.md` is read and every row is walked with
//! every kind of caller against a real `convrec serve` (with a real recording made by a real
//! recorder), asserting exactly the table's status. The table's rows must be exactly the
//! operations of the server's OpenAPI document, so a new endpoint cannot go unchecked, and every
//! answer must be one the document describes (a listed status, a body its schema accepts).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::deployment::{ADMIN_KEY, Deployment};
use common::openapi::OpenApi;
use convrec_media::timeline::MediaKind;
use convrec_rtc::client::Client;
use serde_json::{Value, json};

/// The caller kinds, in the table's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GlobalAdmin,
    AccountAdmin,
    AssignedAgent,
    SecondaryAgent,
    Visitor,
    ForeignAdmin,
    NoCredentials,
    RevokedKey,
}

const KINDS: [Kind; 8] = [
    Kind::GlobalAdmin,
    Kind::AccountAdmin,
    Kind::AssignedAgent,
    Kind::SecondaryAgent,
    Kind::Visitor,
    Kind::ForeignAdmin,
    Kind::NoCredentials,
    Kind::RevokedKey,
];

/// The participant roles, in the order participants are added to each conversation.
const ROLES: [&str; 3] = ["ASSIGNED_AGENT", "SECONDARY_AGENT", "VISITOR"];

/// Which conversation a request acts on (participant callers use their token there).
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The world's busy conversation.
    Busy,
    /// The world's idle conversation (to delete).
    Idle,
    /// The shared conversation with a completed recording.
    Recorded,
}

/// A request body.
enum Body {
    None,
    Json(Value),
    Sdp(String),
}

/// The account-wide fixtures every world shares.
struct Shared {
    d: Deployment,
    account_admin: String,
    foreign_admin: String,
    revoked: String,
    manual_template: String,
    /// Tokens of the recorded conversation, by role.
    recorded_tokens: Vec<String>,
    recording: String,
}

/// One caller's fresh objects: what its row requests act on.
struct World {
    busy: String,
    idle: String,
    busy_tokens: Vec<String>,
    idle_tokens: Vec<String>,
    call: String,
    layer: String,
    publication: String,
    subscription: String,
    template: String,
    key: String,
    webhook: String,
}

/// `(status, body)` of a request.
async fn send(
    d: &Deployment,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Body,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = d
        .http
        .request(method.parse().unwrap(), format!("{}{path}", d.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match body {
        Body::None => request,
        Body::Json(json) => request.json(&json),
        Body::Sdp(sdp) => request.header("content-type", "application/sdp").body(sdp),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    // An event stream does not end: its status and headers are the answer.
    if path.ends_with("/events") && status == 200 {
        return (status, Value::Null, headers);
    }
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

/// A request that must succeed; its JSON body, or the last segment of its `Location`.
async fn must(d: &Deployment, method: &str, path: &str, token: &str, body: Body) -> Value {
    let (status, value, headers) = send(d, method, path, Some(token), body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}\n{}",
        d.log()
    );
    match headers.get("location") {
        Some(location) => json!(location.to_str().unwrap().rsplit('/').next().unwrap()),
        None => value,
    }
}

fn offer(kinds: &[MediaKind]) -> String {
    Client::publisher(
        Instant::now(),
        "127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap(),
        kinds,
    )
    .unwrap()
    .1
}

fn subscriber_offer() -> String {
    Client::subscriber(
        Instant::now(),
        "127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap(),
    )
    .unwrap()
    .1
}

async fn participants(d: &Deployment, conversation: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for role in ROLES {
        let p = must(
            d,
            "POST",
            &format!("/v1/conversations/{conversation}/participants"),
            ADMIN_KEY,
            Body::Json(json!({"name": role.to_lowercase(), "role": role})),
        )
        .await;
        tokens.push(p["token"].as_str().unwrap().to_owned());
    }
    tokens
}

fn id(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v["id"].as_str().unwrap().to_owned())
}

async fn admin_key(d: &Deployment, account: &str, name: &str) -> (String, String) {
    let key = must(
        d,
        "POST",
        "/v1/apikeys",
        ADMIN_KEY,
        Body::Json(json!({"accountId": account, "role": "ADMIN", "name": name})),
    )
    .await;
    (id(&key), key["apiKey"].as_str().unwrap().to_owned())
}

impl Shared {
    async fn start() -> Self {
        let d = Deployment::start(2).await;
        // The recorded conversation: agent (0), visitor (1), and a secondary agent.
        let secondary = must(
            &d,
            "POST",
            &format!("/v1/conversations/{}/participants", d.conversation),
            ADMIN_KEY,
            Body::Json(json!({"name": "second", "role": "SECONDARY_AGENT"})),
        )
        .await;
        let recorded_tokens = vec![
            d.tokens[0].clone(),
            secondary["token"].as_str().unwrap().to_owned(),
            d.tokens[1].clone(),
        ];
        let talking = d.participant(0, 3.0);
        let out = talking.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recording = d.complete_recordings().await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, account_admin) = admin_key(&d, &d.account, "ops").await;
        let foreign = must(
            &d,
            "POST",
            "/v1/accounts",
            ADMIN_KEY,
            Body::Json(json!({"name": "other bank"})),
        )
        .await;
        let (_, foreign_admin) = admin_key(&d, &id(&foreign), "their ops").await;
        let (revoked_id, revoked) = admin_key(&d, &d.account, "former employee").await;
        must(
            &d,
            "DELETE",
            &format!("/v1/apikeys/{revoked_id}"),
            ADMIN_KEY,
            Body::None,
        )
        .await;
        let template = must(
            &d,
            "POST",
            "/v1/templates",
            ADMIN_KEY,
            Body::Json(json!({"accountId": d.account, "name": "manual"})),
        )
        .await;
        let manual_template = id(&template);
        must(
            &d,
            "PUT",
            &format!("/v1/templates/{manual_template}/configuration"),
            ADMIN_KEY,
            Body::Json(
                json!({"properties": {"conversation.recording.recordingTriggeringMode": "MANUAL"}}),
            ),
        )
        .await;
        Self {
            d,
            account_admin,
            foreign_admin,
            revoked,
            manual_template,
            recorded_tokens,
            recording,
        }
    }

    /// Fresh objects for one caller (made by the global admin and the assigned agent).
    async fn world(&self) -> World {
        let d = &self.d;
        let conversation = || {
            Body::Json(
                json!({"accountId": d.account, "templateId": self.manual_template, "topic": "claim 42"}),
            )
        };
        let busy = id(&must(d, "POST", "/v1/conversations", ADMIN_KEY, conversation()).await);
        let idle = id(&must(d, "POST", "/v1/conversations", ADMIN_KEY, conversation()).await);
        let busy_tokens = participants(d, &busy).await;
        let idle_tokens = participants(d, &idle).await;
        let call = id(&must(
            d,
            "POST",
            &format!("/v1/conversations/{busy}/calls"),
            ADMIN_KEY,
            Body::Json(json!({"type": "AUDIO_VIDEO"})),
        )
        .await);
        let layer = id(&must(
            d,
            "POST",
            &format!("/v1/conversations/{busy}/layers"),
            ADMIN_KEY,
            Body::Json(json!({"type": "SCREEN_SHARING"})),
        )
        .await);
        let agent = &busy_tokens[0];
        let publication = id(&must(
            d,
            "POST",
            &format!("/v1/conversations/{busy}/calls/{call}/whip"),
            agent,
            Body::Sdp(offer(&[MediaKind::Audio, MediaKind::Video])),
        )
        .await);
        // A second publisher keeps the call going when the first publication is ended.
        must(
            d,
            "POST",
            &format!("/v1/conversations/{busy}/calls/{call}/whip"),
            &busy_tokens[1],
            Body::Sdp(offer(&[MediaKind::Audio, MediaKind::Video])),
        )
        .await;
        let subscription = id(&must(
            d,
            "POST",
            &format!("/v1/conversations/{busy}/publications/{publication}/whep"),
            agent,
            Body::Sdp(subscriber_offer()),
        )
        .await);
        let template = id(&must(
            d,
            "POST",
            "/v1/templates",
            ADMIN_KEY,
            Body::Json(json!({"accountId": d.account, "name": "t"})),
        )
        .await);
        let (key, _) = admin_key(d, &d.account, "temporary").await;
        let webhook = id(&must(
            d,
            "POST",
            "/v1/webhooks",
            ADMIN_KEY,
            Body::Json(webhook_body(&d.account)),
        )
        .await);
        World {
            busy,
            idle,
            busy_tokens,
            idle_tokens,
            call,
            layer,
            publication,
            subscription,
            template,
            key,
            webhook,
        }
    }

    fn token<'a>(&'a self, kind: Kind, world: &'a World, target: Target) -> Option<&'a str> {
        let tokens = match target {
            Target::Busy => &world.busy_tokens,
            Target::Idle => &world.idle_tokens,
            Target::Recorded => &self.recorded_tokens,
        };
        match kind {
            Kind::GlobalAdmin => Some(ADMIN_KEY),
            Kind::AccountAdmin => Some(&self.account_admin),
            Kind::AssignedAgent => Some(&tokens[0]),
            Kind::SecondaryAgent => Some(&tokens[1]),
            Kind::Visitor => Some(&tokens[2]),
            Kind::ForeignAdmin => Some(&self.foreign_admin),
            Kind::NoCredentials => None,
            Kind::RevokedKey => Some(&self.revoked),
        }
    }
}

fn webhook_body(account: &str) -> Value {
    json!({
        "accountId": account,
        "endpoint": "http://127.0.0.1:9/hooks",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "events": ["conversation.recording_available"],
    })
}

/// The rows in the order they are walked (each world's state moves on as the rows go), as
/// `(method, OpenAPI path)`.
const WALK: [(&str, &str); 38] = [
    ("POST", "/v1/accounts"),
    ("GET", "/v1/accounts/{id}"),
    ("PUT", "/v1/accounts/{id}/configuration"),
    ("GET", "/v1/accounts/{id}/configuration"),
    ("GET", "/v1/accounts/{id}/getRecordedMinutes"),
    ("POST", "/v1/apikeys"),
    ("GET", "/v1/apikeys"),
    ("DELETE", "/v1/apikeys/{id}"),
    ("POST", "/v1/templates"),
    ("GET", "/v1/templates/{id}"),
    ("PUT", "/v1/templates/{id}/configuration"),
    ("GET", "/v1/templates/{id}/configuration"),
    ("POST", "/v1/conversations"),
    ("GET", "/v1/conversations"),
    ("GET", "/v1/conversations/{id}"),
    ("POST", "/v1/conversations/{id}/participants"),
    ("POST", "/v1/conversations/{id}/messages"),
    ("GET", "/v1/conversationhistory/{id}"),
    ("GET", "/v1/conversations/{id}/events"),
    ("GET", "/v1/conversations/{id}/iceServers"),
    ("POST", "/v1/conversations/{id}/getRecordingState"),
    ("POST", "/v1/conversations/{id}/calls/{callId}/whip"),
    ("POST", "/v1/conversations/{id}/layers/{layerId}/whip"),
    (
        "POST",
        "/v1/conversations/{id}/publications/{publicationId}/whep",
    ),
    (
        "DELETE",
        "/v1/conversations/{id}/subscriptions/{subscriptionId}",
    ),
    (
        "DELETE",
        "/v1/conversations/{id}/publications/{publicationId}",
    ),
    ("POST", "/v1/conversations/{id}/calls/{callId}/end"),
    ("POST", "/v1/conversations/{id}/layers/{layerId}/end"),
    ("POST", "/v1/conversations/{id}/startRecording"),
    ("POST", "/v1/conversations/{id}/stopRecording"),
    ("POST", "/v1/conversations/{id}/calls"),
    ("POST", "/v1/conversations/{id}/layers"),
    (
        "GET",
        "/v1/conversationhistory/{id}/getConversationRecordings",
    ),
    ("GET", "/v1/recordings/{id}/download"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("DELETE", "/v1/conversations/{id}"),
];

/// The concrete request of a row in a world: path, body, and the conversation it acts on.
fn request(shared: &Shared, w: &World, method: &str, path: &str) -> (String, Body, Target) {
    let account = &shared.d.account;
    let busy = &w.busy;
    let json = Body::Json;
    let (path, body, target) = match (method, path) {
        ("POST", "/v1/accounts") => (
            "/v1/accounts".into(),
            json(json!({"name": "new"})),
            Target::Busy,
        ),
        ("GET", "/v1/accounts/{id}") => {
            (format!("/v1/accounts/{account}"), Body::None, Target::Busy)
        }
        ("PUT", "/v1/accounts/{id}/configuration") => (
            format!("/v1/accounts/{account}/configuration"),
            json(json!({"properties": {"conversation.recording.showRecordingBanner": true}})),
            Target::Busy,
        ),
        ("GET", "/v1/accounts/{id}/configuration") => (
            format!("/v1/accounts/{account}/configuration"),
            Body::None,
            Target::Busy,
        ),
        ("GET", "/v1/accounts/{id}/getRecordedMinutes") => (
            format!("/v1/accounts/{account}/getRecordedMinutes?fromTime=0&toTime=99999999999999"),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/apikeys") => (
            "/v1/apikeys".into(),
            json(json!({"accountId": account, "role": "ADMIN", "name": "k"})),
            Target::Busy,
        ),
        ("GET", "/v1/apikeys") => (
            format!("/v1/apikeys?accountId={account}"),
            Body::None,
            Target::Busy,
        ),
        ("DELETE", "/v1/apikeys/{id}") => {
            (format!("/v1/apikeys/{}", w.key), Body::None, Target::Busy)
        }
        ("POST", "/v1/templates") => (
            "/v1/templates".into(),
            json(json!({"accountId": account, "name": "n"})),
            Target::Busy,
        ),
        ("GET", "/v1/templates/{id}") => (
            format!("/v1/templates/{}", w.template),
            Body::None,
            Target::Busy,
        ),
        ("PUT", "/v1/templates/{id}/configuration") => (
            format!("/v1/templates/{}/configuration", w.template),
            json(json!({"properties": {"conversation.recording.recordingType": "AUDIO"}})),
            Target::Busy,
        ),
        ("GET", "/v1/templates/{id}/configuration") => (
            format!("/v1/templates/{}/configuration", w.template),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations") => (
            "/v1/conversations".into(),
            json(json!({"accountId": account, "topic": "x"})),
            Target::Busy,
        ),
        ("GET", "/v1/conversations") => (
            format!("/v1/conversations?accountId={account}"),
            Body::None,
            Target::Busy,
        ),
        ("GET", "/v1/conversations/{id}") => (
            format!("/v1/conversations/{busy}"),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/participants") => (
            format!("/v1/conversations/{busy}/participants"),
            json(json!({"name": "n", "role": "VISITOR"})),
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/messages") => (
            format!("/v1/conversations/{busy}/messages"),
            json(json!({"text": "hello"})),
            Target::Busy,
        ),
        ("GET", "/v1/conversationhistory/{id}") => (
            format!("/v1/conversationhistory/{busy}"),
            Body::None,
            Target::Busy,
        ),
        ("GET", "/v1/conversations/{id}/events") => (
            format!("/v1/conversations/{busy}/events"),
            Body::None,
            Target::Busy,
        ),
        ("GET", "/v1/conversations/{id}/iceServers") => (
            format!("/v1/conversations/{busy}/iceServers"),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/getRecordingState") => (
            format!("/v1/conversations/{busy}/getRecordingState"),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/calls/{callId}/whip") => (
            format!("/v1/conversations/{busy}/calls/{}/whip", w.call),
            Body::Sdp(offer(&[MediaKind::Audio, MediaKind::Video])),
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/layers/{layerId}/whip") => (
            format!("/v1/conversations/{busy}/layers/{}/whip", w.layer),
            Body::Sdp(offer(&[MediaKind::Video])),
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/publications/{publicationId}/whep") => (
            format!(
                "/v1/conversations/{busy}/publications/{}/whep",
                w.publication
            ),
            Body::Sdp(subscriber_offer()),
            Target::Busy,
        ),
        ("DELETE", "/v1/conversations/{id}/subscriptions/{subscriptionId}") => (
            format!("/v1/conversations/{busy}/subscriptions/{}", w.subscription),
            Body::None,
            Target::Busy,
        ),
        ("DELETE", "/v1/conversations/{id}/publications/{publicationId}") => (
            format!("/v1/conversations/{busy}/publications/{}", w.publication),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/calls/{callId}/end") => (
            format!("/v1/conversations/{busy}/calls/{}/end", w.call),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/layers/{layerId}/end") => (
            format!("/v1/conversations/{busy}/layers/{}/end", w.layer),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/startRecording") => (
            format!("/v1/conversations/{busy}/startRecording"),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/stopRecording") => (
            format!("/v1/conversations/{busy}/stopRecording"),
            Body::None,
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/calls") => (
            format!("/v1/conversations/{busy}/calls"),
            json(json!({"type": "AUDIO"})),
            Target::Busy,
        ),
        ("POST", "/v1/conversations/{id}/layers") => (
            format!("/v1/conversations/{busy}/layers"),
            json(json!({"type": "SCREEN_SHARING"})),
            Target::Busy,
        ),
        ("GET", "/v1/conversationhistory/{id}/getConversationRecordings") => (
            format!(
                "/v1/conversationhistory/{}/getConversationRecordings",
                shared.d.conversation
            ),
            Body::None,
            Target::Recorded,
        ),
        ("GET", "/v1/recordings/{id}/download") => (
            format!("/v1/recordings/{}/download", shared.recording),
            Body::None,
            Target::Recorded,
        ),
        ("POST", "/v1/webhooks") => (
            "/v1/webhooks".into(),
            json(webhook_body(account)),
            Target::Busy,
        ),
        ("GET", "/v1/webhooks/{id}/deliveries") => (
            format!("/v1/webhooks/{}/deliveries", w.webhook),
            Body::None,
            Target::Busy,
        ),
        ("DELETE", "/v1/webhooks/{id}") => (
            format!("/v1/webhooks/{}", w.webhook),
            Body::None,
            Target::Busy,
        ),
        ("DELETE", "/v1/conversations/{id}") => (
            format!("/v1/conversations/{}", w.idle),
            Body::None,
            Target::Idle,
        ),
        other => panic!("the walk has no request for {other:?}"),
    };
    (path, body, target)
}

/// `docs/security.md`'s table: `(method, path)` → the status for each caller kind.
fn documented_table() -> BTreeMap<(String, String), Vec<u16>> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/security.md"
    ))
    .unwrap();
    let mut table = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let endpoint = cells[0].trim_matches('`');
        let Some((method, path)) = endpoint.split_once(' ') else {
            continue;
        };
        if !path.starts_with("/v1/") || cells.len() != 1 + KINDS.len() {
            continue;
        }
        let statuses = cells[1..]
            .iter()
            .map(|c| {
                c.parse()
                    .unwrap_or_else(|_| panic!("{line}: '{c}' is not a status"))
            })
            .collect();
        assert!(
            table
                .insert((method.to_owned(), path.to_owned()), statuses)
                .is_none(),
            "{endpoint} is in the table twice"
        );
    }
    table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_kind_of_caller_as_docs_security_md_says() {
    let shared = Shared::start().await;
    let d = &shared.d;
    let table = documented_table();
    let documented: BTreeSet<_> = table.keys().cloned().collect();
    let walked: BTreeSet<_> = WALK
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let openapi = OpenApi::fetch(&d.http, &d.base).await;
    assert_eq!(
        documented,
        openapi.operations().into_iter().collect(),
        "docs/security.md's rows are the OpenAPI operations"
    );
    assert_eq!(walked, documented, "the walk covers every row");

    let mut wrong = Vec::new();
    for (column, kind) in KINDS.into_iter().enumerate() {
        let world = shared.world().await;
        for (method, path) in WALK {
            let (concrete, body, target) = request(&shared, &world, method, path);
            let token = shared.token(kind, &world, target);
            let (status, answer, _) = send(d, method, &concrete, token, body).await;
            let expected = table[&(method.to_owned(), path.to_owned())][column];
            // Every answer is one the OpenAPI document describes.
            let downloaded = path.ends_with("/download") && status == 200;
            if !downloaded {
                wrong.extend(openapi.mismatch(method, path, status, &answer));
            }
            if status != expected {
                wrong.push(format!(
                    "{kind:?} {method} {path}: {status} (table: {expected}) {answer}"
                ));
            }
            if method == "GET" && path.ends_with("getConversationRecordings") && status == 200 {
                // Recordings follow the role: a VISITOR sees none by default.
                let listed = answer["items"].as_array().unwrap().len();
                let expected = if kind == Kind::Visitor { 0 } else { 1 };
                if listed != expected {
                    wrong.push(format!("{kind:?} sees {listed} recordings, not {expected}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answers that differ from docs/security.md:\n{}\n{}",
        wrong.join("\n"),
        d.log()
    );
}
