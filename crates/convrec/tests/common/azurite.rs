//! Azurite, Microsoft's Azure Blob Storage emulator (from npm), on a free loopback port: it
//! checks every request's Shared Key signature, as Azure does.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};

use super::KillOnDrop;

/// The emulator's one account and its well-known key (public, in Microsoft's documentation).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob service with one container.
pub struct Azurite {
    endpoint: String,
    _data: tempfile::TempDir,
    _process: KillOnDrop,
}

impl Azurite {
    /// Starts it with an empty `container`.
    pub fn start(container: &str) -> Self {
        super::require_program("azurite-blob");
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let process = Command::new("azurite-blob")
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--skipApiVersionCheck", "--silent", "--location"])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        let address = format!("127.0.0.1:{port}");
        super::wait_for_port(&address, "azurite-blob");
        let azurite = Self {
            endpoint: format!("http://{address}"),
            _data: data,
            _process: KillOnDrop(process),
        };
        azurite.create_container(container);
        azurite
    }

    /// `Create Container`, signed with the account key.
    fn create_container(&self, container: &str) {
        let date = rfc1123_now();
        let version = "2021-08-06";
        // Shared Key: the verb, eleven empty standard headers, the x-ms- headers, then the
        // resource (the emulator's paths start with the account, hence it twice).
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&B64.decode(ACCOUNT_KEY).unwrap())
            .expect("any key length");
        mac.update(to_sign.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        // One plain HTTP/1.1 request: nothing else is needed to make a container.
        let address = self.endpoint.trim_start_matches("http://");
        let mut connection = std::net::TcpStream::connect(address).unwrap();
        write!(
            connection,
            "PUT /{ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: {address}\r\n\
             x-ms-date: {date}\r\nx-ms-version: {version}\r\nContent-Length: 0\r\n\
             Authorization: SharedKey {ACCOUNT}:{signature}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        BufReader::new(connection).read_line(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 201"),
            "the container is created: {answer}"
        );
    }

    /// The server environment that stores recordings at `az://CONTAINER/PREFIX` here.
    pub fn server_env(&self, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CONVREC_OBJECT_STORE_URL", url.to_owned()),
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_owned()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
        ]
    }
}

/// Now as an HTTP date (`Tue, 01 Dec 2026 02:05:36 GMT`).
fn rfc1123_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap();
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let (year, month, day) = convrec_core::config::civil_date(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month} {year} {h:02}:{m:02}:{s:02} GMT")
}
