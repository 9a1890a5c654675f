//! Debian's headless Chromium with fake camera, microphone and screen, driven over the Chrome
//! DevTools Protocol (one WebSocket to its page): evaluate script (as a user gesture when asked),
//! navigate, resize, take screenshots.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Chromium process and a DevTools connection to its page.
pub struct Chromium {
    // Locked only to ask whether it exited while it starts.
    process: std::sync::Mutex<Child>,
    profile: tempfile::TempDir,
    socket: tokio::sync::Mutex<Option<(Socket, u64)>>,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if let Ok(process) = self.process.get_mut() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Chromium {
    /// Starts Chromium on `url`.
    pub fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        // Its own messages, for when it does not start.
        let stderr = std::fs::File::create(profile.path().join("stderr.log")).unwrap();
        let process = std::process::Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                // getDisplayMedia picks the fake screen without asking.
                "--auto-accept-this-tab-capture",
                "--auto-select-desktop-capture-source=Entire screen",
                // The SFU is on loopback in tests; WebRTC skips loopback candidates otherwise.
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--autoplay-policy=no-user-gesture-required",
                "--window-size=1280,720",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run chromium (the test command installs it)");
        Self {
            process: std::sync::Mutex::new(process),
            profile,
            socket: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self) -> Socket {
        // Chromium writes its DevTools port here once it listens. A first start on a fresh,
        // busy machine (font caches, profile) can take long; a generous wait costs nothing when
        // it is quick.
        let port_file = self.profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(90);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().map(str::to_owned))
                .filter(|p| !p.is_empty())
            {
                break port;
            }
            let exited = self.process.lock().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() >= deadline {
                let stderr = std::fs::read_to_string(self.profile.path().join("stderr.log"))
                    .unwrap_or_default();
                panic!(
                    "chromium did not start ({}); it said:\n{stderr}",
                    exited.map_or("no DevTools port after 90 s".to_owned(), |s| s.to_string())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("the page");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    /// Waits until Chromium has started and its page has loaded (its own startup can take
    /// many seconds on a busy machine: callers' deadlines should count from here).
    pub async fn loaded(&self) {
        let deadline = self.connected().await + Duration::from_secs(45);
        while self.evaluate("document.readyState").await != "complete" {
            assert!(Instant::now() < deadline, "the page did not load in 45 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Connects to the page unless connected; returns when it is.
    async fn connected(&self) -> Instant {
        let mut guard = self.socket.lock().await;
        if guard.is_none() {
            *guard = Some((self.connect().await, 0));
        }
        Instant::now()
    }

    /// Calls a DevTools method on the page; returns its result.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        self.connected().await;
        let mut guard = self.socket.lock().await;
        let (socket, last) = guard.as_mut().unwrap();
        *last += 1;
        let id = *last;
        let request = json!({ "id": id, "method": method, "params": params });
        socket
            .send(Message::Text(request.to_string().into()))
            .await
            .unwrap();
        while let Some(message) = socket.next().await {
            if let Ok(Message::Text(text)) = message {
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["id"] == id {
                    assert!(answer["error"].is_null(), "{method}: {answer}");
                    return answer["result"].clone();
                }
            }
        }
        panic!("no answer from the page to {method}")
    }

    /// Evaluates `expression` in the page (awaiting a promise); returns its JSON value, or null
    /// when it threw (the exception goes to standard error).
    pub async fn evaluate(&self, expression: &str) -> Value {
        self.run(expression, false).await
    }

    /// Evaluates `expression` as if the user clicked (what `getDisplayMedia` requires).
    pub async fn gesture(&self, expression: &str) -> Value {
        self.run(expression, true).await
    }

    async fn run(&self, expression: &str, user_gesture: bool) -> Value {
        let result = self
            .cdp(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                    "userGesture": user_gesture,
                }),
            )
            .await;
        if !result["exceptionDetails"].is_null() {
            // Often a page still loading; the caller's own checks decide.
            eprintln!("{expression}: {}", result["exceptionDetails"]);
            return Value::Null;
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page; returns the page's `window.convrec`.
    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let deadline = self.connected().await + Duration::from_secs(45);
        loop {
            if self.evaluate(expression).await == Value::Bool(true) {
                return self.evaluate("window.convrec").await;
            }
            let state = self.evaluate("window.convrec").await;
            assert!(Instant::now() < deadline, "{what}: the page is at {state}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Types `text` into the focused element, as a keyboard would.
    pub async fn type_text(&self, text: &str) {
        self.cdp("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases a key (`Enter`, `Tab`, `Escape`) on the focused element.
    pub async fn press(&self, key: &str) {
        let code = match key {
            "Enter" => 13,
            "Tab" => 9,
            "Escape" => 27,
            other => panic!("no key code for {other}"),
        };
        let text = if key == "Enter" { "\r" } else { "" };
        for kind in ["keyDown", "keyUp"] {
            self.cdp(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code, "text": if kind == "keyDown" { text } else { "" } }),
            )
            .await;
        }
    }

    /// Opens `url` in the page and waits for it to load.
    pub async fn navigate(&self, url: &str) {
        self.cdp("Page.navigate", json!({ "url": url })).await;
        self.wait_for(
            "the page loads",
            "document.readyState === 'complete' && !!window.convrec",
        )
        .await;
    }

    /// Gives the page a viewport of `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Saves a PNG of what the page shows.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .cdp("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}
