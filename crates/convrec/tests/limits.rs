//! The server's limits against a real `convrec serve` on loopback: failed authentications per
//! client address, request body size, open connections. (Recordings per account are in
//! `recording.rs`, where calls are recorded.)
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use common::{KillOnDrop, entry_point_handshake, serve_in};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "limits-admin-key-0123456789abcdef";

/// A server with `env` over the test defaults.
fn server(env: &[(&str, &str)]) -> (tempfile::TempDir, KillOnDrop, String) {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve_in(dir.path(), ADMIN_KEY, "server.log", env);
    (dir, KillOnDrop(child), format!("http://{addr}"))
}

/// A client whose connections come from `source` (another loopback address is another client).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `POST /v1/accounts` with key `key`.
async fn new_account(http: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    http.post(format!("{base}/v1/accounts"))
        .bearer_auth(key)
        .json(&json!({"name": "bank"}))
        .send()
        .await
        .unwrap()
}

/// Past the allowance, every request of that client is refused with 429 and `Retry-After`,
/// its valid ones too; a guessed recorder entry point counts; other clients go on.
#[tokio::test]
async fn a_client_that_fails_to_authenticate_too_often_is_refused_for_the_rest_of_the_minute() {
    let (_dir, _server, base) = server(&[("CONVREC_MAX_FAILED_AUTH_PER_MINUTE", "3")]);
    let guesser = client_from("127.0.0.1");
    for n in 0..2 {
        let answer = new_account(&guesser, &base, &format!("guess-{n}")).await;
        assert_eq!(answer.status(), 401, "guess {n}");
    }
    // A recorder's handshake with a guessed entry point.
    let entry =
        entry_point_handshake(&guesser, &format!("{base}/recording/entry/not-a-token")).await;
    assert_eq!(entry.status(), 403);
    assert_eq!(
        entry.json::<Value>().await.unwrap()["code"],
        "ENTRY_POINT_REFUSED"
    );
    let refused = new_account(&guesser, &base, ADMIN_KEY).await;
    assert_eq!(refused.status(), 429, "even the right key, now");
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&wait), "Retry-After: {wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_FAILED_AUTHENTICATIONS", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("limits.failed_auth_per_minute"),
        "{body}"
    );
    // Another address is another client.
    let other = client_from("127.0.0.2");
    assert_eq!(new_account(&other, &base, ADMIN_KEY).await.status(), 201);
}

/// A body over the limit is refused with 413 whether its length is declared or it comes in
/// chunks, and nothing of it is stored.
#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_nothing_is_stored() {
    let (_dir, _server, base) = server(&[("CONVREC_MAX_BODY_KIB", "64")]);
    let http = reqwest::Client::new();
    let account: Value = new_account(&http, &base, ADMIN_KEY)
        .await
        .json()
        .await
        .unwrap();
    let account = account["id"].as_str().unwrap().to_owned();
    let conversations = format!("{base}/v1/conversations");
    let big = json!({"accountId": account, "topic": "x".repeat(100 << 10)});
    let declared = http
        .post(&conversations)
        .bearer_auth(ADMIN_KEY)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    let body: Value = declared.json().await.unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("65536 bytes"),
        "{body}"
    );

    // The same body in chunks, without a declared length.
    let addr = base.strip_prefix("http://").unwrap().to_owned();
    let chunked = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let text = serde_json::to_vec(&big).unwrap();
        let mut request = format!(
            "POST /v1/conversations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for chunk in text.chunks(8192) {
            request.extend(format!("{:x}\r\n", chunk.len()).bytes());
            request.extend(chunk);
            request.extend(b"\r\n");
        }
        request.extend(b"0\r\n\r\n");
        // The server may answer and close before it read everything.
        let _ = stream.write_all(&request);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("PAYLOAD_TOO_LARGE"), "{chunked}");

    let list: Value = http
        .get(format!("{conversations}?accountId={account}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]), "nothing was stored: {list}");
    // A body within the limit is taken.
    let small = http
        .post(&conversations)
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"accountId": account, "topic": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 201);
}

/// Sends `GET path` on an open connection and reads the answer's body (`Content-Length`).
fn get_on(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: convrec\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no length: {head}"))
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

fn open_connections(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("convrec_http_connections "))
        .unwrap_or_else(|| panic!("no connection gauge in {metrics}"))
        .parse()
        .unwrap()
}

/// At the limit, a new connection is served only once an open one closes; the server never
/// holds more than the limit.
#[tokio::test]
async fn past_the_connection_limit_a_client_waits_for_a_place() {
    let (_dir, _server, base) = server(&[("CONVREC_MAX_CONNECTIONS", "16")]);
    let addr = base.strip_prefix("http://").unwrap().to_owned();
    let mut open: Vec<TcpStream> = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        // Served: it holds a place.
        get_on(&mut stream, "/health/live");
        open.push(stream);
    }
    assert_eq!(open_connections(&get_on(&mut open[0], "/metrics")), 16.0);
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("{base}/health/live"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "a 17th connection was served");
    assert_eq!(open_connections(&get_on(&mut open[1], "/metrics")), 16.0);
    drop(open.pop());
    let status = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("served once a place was free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(open_connections(&get_on(&mut open[0], "/metrics")) <= 16.0);
}

/// Behind a reverse proxy the operator trusts, clients are told apart by `X-Forwarded-For`:
/// one that guesses is refused, another behind the same proxy is not.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_counted_apart() {
    let (_dir, _server, base) = server(&[
        ("CONVREC_MAX_FAILED_AUTH_PER_MINUTE", "2"),
        ("CONVREC_TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    let http = reqwest::Client::new();
    let from = |client: &'static str, key: &str| {
        http.post(format!("{base}/v1/accounts"))
            .bearer_auth(key)
            .header("x-forwarded-for", client)
            .json(&json!({"name": "bank"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(from("198.51.100.7", "guess").await.unwrap().status(), 401);
    }
    assert_eq!(from("198.51.100.7", ADMIN_KEY).await.unwrap().status(), 429);
    assert_eq!(from("198.51.100.8", ADMIN_KEY).await.unwrap().status(), 201);
}
