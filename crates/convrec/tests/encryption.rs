//! Encryption at rest, black-box: an account sets a public key made with OpenSSL, its calls are
//! recorded by real processes over real WebRTC, and what lands in the object store is sealed.
//! Only `convrec decrypt` with the private key gives back a file ffmpeg plays; cut or altered
//! files are caught; a key that cannot encrypt is refused; a file whose server crashed opens up
//! to its last chunk.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::chromium::Chromium;
use common::deployment::{ADMIN_KEY, Deployment};
use common::{assert_decodes, assert_playable, convrec, finished_participant};
use serde_json::{Value, json};

/// A key pair made with OpenSSL, as an operator makes one: (private key file, public key PEM).
fn openssl_key(dir: &Path, name: &str, algorithm: &[&str]) -> (PathBuf, String) {
    common::require_program("openssl");
    let private = dir.join(format!("{name}.pem"));
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-out"])
        .arg(&private)
        .args(algorithm)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(public.status.success());
    (private, String::from_utf8(public.stdout).unwrap())
}

/// An X25519 and an RSA key pair made with OpenSSL in the deployment's `keys/`: (that
/// directory, X25519 pair, RSA pair).
fn account_keys(d: &Deployment) -> (PathBuf, (PathBuf, String), (PathBuf, String)) {
    let keys = d.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let x25519 = openssl_key(&keys, "x25519", &["-algorithm", "X25519"]);
    let rsa = openssl_key(
        &keys,
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    (keys, x25519, rsa)
}

/// `convrec decrypt --key KEY IN OUT`: (succeeded, its stderr).
fn decrypt(key: &Path, input: &Path, output: &Path) -> (bool, String) {
    let out = convrec()
        .arg("decrypt")
        .arg("--key")
        .arg(key)
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sets the account's encryption key (a PEM string, or null).
async fn set_key(d: &Deployment, key: Value) -> (u16, Value) {
    let response = d
        .http
        .put(format!(
            "{}/v1/accounts/{}/configuration",
            d.base, d.account
        ))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"properties": {"conversation.recording.encryptionPublicKey": key}}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Records one call of `seconds` in a new conversation of the account; returns its one file's
/// listing.
async fn record_a_call(d: &Deployment, seconds: f64) -> Value {
    let (conversation, tokens) = d.add_conversation(1).await;
    let talking = common::participant(
        &d.base,
        &conversation,
        &tokens[0],
        &["--seconds", &seconds.to_string()],
    );
    finished_participant(talking);
    let recordings = d.complete_recordings_of(&conversation, &tokens[0]).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let files = recordings[0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{recordings:?}");
    let mut file = files[0].clone();
    file["recordingId"] = recordings[0]["id"].clone();
    file["conversationId"] = json!(conversation);
    file
}

/// What the download link serves: (content type, bytes).
async fn download(d: &Deployment, file: &Value) -> (String, Vec<u8>) {
    let response = d
        .http
        .get(file["downloadLink"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_sealed_for_the_accounts_key_and_only_its_private_key_opens_them() {
    let d = Deployment::start(0).await;
    let (keys, (x25519, x25519_public), (rsa, rsa_public)) = account_keys(&d);
    let (ed25519, ed25519_public) = openssl_key(&keys, "ed25519", &["-algorithm", "ED25519"]);

    // Keys that cannot encrypt are refused, saying why and what to use.
    let (status, body) = set_key(&d, json!(ed25519_public)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Ed25519"),
        "{body}"
    );
    let private_pem = std::fs::read_to_string(&x25519).unwrap();
    let (status, body) = set_key(&d, json!(private_pem)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("PUBLIC KEY"),
        "{body}"
    );

    // An X25519 key: the stored file holds no plaintext and opens with the private key only.
    assert_eq!(set_key(&d, json!(x25519_public)).await.0, 200);
    let file = record_a_call(&d, 5.0).await;
    let key_id = convrec_seal::RecipientKey::from_pem(&x25519_public)
        .unwrap()
        .key_id_hex();
    assert_eq!(file["encryptionKeyId"], key_id.as_str());
    assert!(
        file["fileName"].as_str().unwrap().ends_with(".mp4.sealed"),
        "{file}"
    );
    let manifest = d.manifest(file["recordingId"].as_str().unwrap());
    assert_eq!(manifest["files"][0]["encryptionKeyId"], key_id.as_str());
    let stored = d.object(file["objectKey"].as_str().unwrap());
    let sealed = std::fs::read(&stored).unwrap();
    assert_eq!(&sealed[4..8], b"cvrh");
    for plain in [&b"ftyp"[..], b"moov", b"moof", b"mdat", b"avc1", b"Opus"] {
        assert!(
            !sealed.windows(4).any(|w| w == plain),
            "{plain:?} in a sealed file"
        );
    }
    let (content_type, downloaded) = download(&d, &file).await;
    assert_eq!(content_type, "application/octet-stream");
    assert_eq!(downloaded, sealed);
    let inspected = convrec().arg("inspect").arg(&stored).output().unwrap();
    assert!(!inspected.status.success());
    assert!(
        String::from_utf8_lossy(&inspected.stderr).contains("convrec decrypt"),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let opened = keys.join("opened.mp4");
    let (ok, said) = decrypt(&x25519, &stored, &opened);
    assert!(ok, "{said}");
    let length = assert_playable(&opened, true);
    assert!((length - 5.0).abs() < 1.0, "{length} s of 5 s");

    // Another key does not open it, and writes nothing.
    let wrong = keys.join("wrong.mp4");
    let (ok, said) = decrypt(&rsa, &stored, &wrong);
    assert!(!ok && said.contains("sealed for key"), "{said}");
    assert!(!wrong.exists());
    let (ok, said) = decrypt(&ed25519, &stored, &wrong);
    assert!(!ok && said.contains("Ed25519"), "{said}");

    // Cut short: what comes before the cut opens and plays, and the cut is reported.
    let cut = keys.join("cut.sealed");
    std::fs::write(&cut, &sealed[..sealed.len() / 2]).unwrap();
    let prefix = keys.join("prefix.mp4");
    let (ok, said) = decrypt(&x25519, &cut, &prefix);
    assert!(!ok && said.contains("cut short"), "{said}");
    let probe = assert_decodes(&prefix, true);
    let kept = convrec_testkit::media_length(convrec_testkit::stream(&probe, "video"));
    assert!(kept > 1.0 && kept < length, "{kept} s kept of {length} s");

    // One byte altered: caught at its chunk; the chunks before it are given, and play.
    let altered = keys.join("altered.sealed");
    let mut bytes = sealed.clone();
    let at = bytes.len() * 3 / 4;
    bytes[at] ^= 0x20;
    std::fs::write(&altered, &bytes).unwrap();
    let (ok, said) = decrypt(&x25519, &altered, &prefix);
    assert!(!ok && said.contains("failed authentication"), "{said}");
    assert_decodes(&prefix, true);

    // The account turns to an RSA key: new recordings are sealed for it, earlier ones stay
    // sealed for the key they were made with.
    assert_eq!(set_key(&d, json!(rsa_public)).await.0, 200);
    let file = record_a_call(&d, 3.0).await;
    let stored = d.object(file["objectKey"].as_str().unwrap());
    let (ok, said) = decrypt(&rsa, &stored, &opened);
    assert!(ok, "{said}");
    assert_playable(&opened, true);

    // null: recordings are stored as recorded again.
    assert_eq!(set_key(&d, Value::Null).await.0, 200);
    let file = record_a_call(&d, 3.0).await;
    assert_eq!(file["encryptionKeyId"], Value::Null);
    assert!(file["fileName"].as_str().unwrap().ends_with(".mp4"));
    assert_playable(&d.object(file["objectKey"].as_str().unwrap()), true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_file_whose_server_crashed_opens_up_to_its_last_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(dir.path(), "x25519", &["-algorithm", "X25519"]);
    let mut d = Deployment::start_with(1, json!({"encryptionPublicKey": public}), &[]).await;
    let mut talking = d.participant(0, 30.0);
    d.wait_for_state("STARTED").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    d.crash_and_restart();
    let _ = talking.kill();
    let _ = talking.wait();
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings[0]["endReason"], "ABORT_SYSTEM", "{}", d.log());
    let stored = d.object(recordings[0]["files"][0]["objectKey"].as_str().unwrap());
    let opened = dir.path().join("opened.mp4");
    // The data key died with the server: the file has no end mark, so it reads as cut short,
    // and every chunk acknowledged before the crash opens.
    let (ok, said) = decrypt(&key, &stored, &opened);
    assert!(!ok && said.contains("cut short"), "{said}");
    let probe = assert_decodes(&opened, true);
    let kept = convrec_testkit::media_length(convrec_testkit::stream(&probe, "video"));
    assert!(kept > 2.0, "{kept} s kept of about 4 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_page_plays_a_sealed_recording_with_a_key_that_never_leaves_the_browser() {
    common::require_program("chromium");
    let d = Deployment::start(0).await;
    let (keys, (x25519, x25519_public), (rsa, rsa_public)) = account_keys(&d);
    let mut recorded = Vec::new();
    for (private, public) in [(&x25519, &x25519_public), (&rsa, &rsa_public)] {
        assert_eq!(set_key(&d, json!(public)).await.0, 200);
        let file = record_a_call(&d, 4.0).await;
        recorded.push((private.clone(), file));
    }
    let browser = Chromium::open(&format!(
        "{}/web/history.html#token={ADMIN_KEY}&account={}",
        d.base, d.account
    ));
    browser
        .wait_for("the history", "window.convrec && window.convrec.ready")
        .await;
    for (private, file) in &recorded {
        let recording = file["recordingId"].as_str().unwrap();
        let conversation = file["conversationId"].as_str().unwrap();
        browser
            .gesture(&format!(
                "document.querySelector('[data-conversation=\"{conversation}\"]').click()"
            ))
            .await;
        browser
            .wait_for("the fly-in", &format!("window.convrec.open === '{conversation}' && window.convrec.recordings.length === 1"))
            .await;
        browser
            .gesture(&format!(
                "document.querySelector('[data-recording=\"{recording}\"] button').click()"
            ))
            .await;
        let form_shown = browser
            .evaluate("!document.getElementById('key-form').hidden")
            .await;
        assert_eq!(form_shown, true, "the page asks for the key");

        // A key of another recording's account key first: refused, saying so.
        let other = &recorded.iter().find(|(p, _)| p != private).unwrap().0;
        submit_key(&browser, other).await;
        let state = browser
            .wait_for("a refusal", "window.convrec.decrypted !== null")
            .await;
        assert!(
            state["decrypted"]["error"]
                .as_str()
                .unwrap()
                .contains("not for this key"),
            "{state}"
        );

        // The right key: the recording plays, as long as the file `convrec decrypt` makes, and
        // the page fetched nothing but the download.
        let before = browser
            .evaluate("performance.getEntriesByType('resource').length")
            .await
            .as_u64()
            .unwrap();
        browser
            .evaluate(
                "window.canplay = false; document.getElementById('player').addEventListener('canplay', () => window.canplay = true, { once: true }); window.convrec.decrypted = null",
            )
            .await;
        submit_key(&browser, private).await;
        let state = browser
            .wait_for(
                "the recording decrypted",
                "window.convrec.decrypted !== null",
            )
            .await;
        assert_eq!(state["decrypted"]["error"], Value::Null, "{state}");
        browser.wait_for("canplay", "window.canplay === true").await;
        let duration = browser
            .evaluate("document.getElementById('player').duration")
            .await
            .as_f64()
            .unwrap();
        let opened = keys.join("opened.mp4");
        let stored = d.object(file["objectKey"].as_str().unwrap());
        let (ok, said) = decrypt(private, &stored, &opened);
        assert!(ok, "{said}");
        let length = assert_playable(&opened, true);
        assert!(
            (duration - length).abs() < 0.5,
            "the page plays {duration} s of {length} s"
        );
        let fetched = browser
            .evaluate(&format!(
                "performance.getEntriesByType('resource').slice({before}).map((e) => e.name)"
            ))
            .await;
        let fetched = fetched.as_array().unwrap();
        assert_eq!(fetched.len(), 1, "{fetched:?}");
        assert!(
            fetched[0]
                .as_str()
                .unwrap()
                .contains(&format!("/v1/recordings/{recording}/download")),
            "{fetched:?}"
        );
        assert_eq!(
            browser
                .evaluate("document.getElementById('private-key').value")
                .await,
            "",
            "the key is not left in the page"
        );
        browser
            .evaluate("document.getElementById('close').click()")
            .await;
    }
}

/// Types `key`'s PEM into the page's key field and submits it.
async fn submit_key(browser: &Chromium, key: &Path) {
    let pem = std::fs::read_to_string(key).unwrap();
    browser
        .evaluate(&format!(
            "window.convrec.decrypted = null; document.getElementById('key-form').hidden = false; document.getElementById('private-key').value = {}",
            serde_json::to_string(&pem).unwrap()
        ))
        .await;
    browser
        .gesture("document.querySelector('#key-form button[type=submit]').click()")
        .await;
}
