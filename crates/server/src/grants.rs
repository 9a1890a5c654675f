//! Download grants: a link that carries its own permission, so a `<video src>` plays it without
//! an `Authorization` header (SPEC §5). A grant names a recording's file and an expiry, signed
//! with HMAC-SHA256 under a key all nodes share (kept in the metadata database; the first node
//! to start offers the one in its data directory, mode 0600); it is checked in constant time
//! and refused once expired. The same key signs a forwarding node's statement of whom it
//! forwards for (see [`crate::limits`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a download link works.
pub const GRANT_LIFETIME_MS: i64 = 60 * 60 * 1000;

/// Where the key is kept.
const KEY_FILE: &str = "grant-key";

/// Signs and checks grants.
#[derive(Clone)]
pub struct Grants {
    key: [u8; 32],
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Grants(…)")
    }
}

impl Grants {
    /// The key stored in `data_dir`, or a new one stored there.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(Self { key });
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a 32-byte key",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&key)?;
        file.sync_all()?;
        Ok(Self { key })
    }

    /// The key as hex (to be shared through the database).
    pub fn to_hex(&self) -> String {
        self.key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Grants under a key given as 64 hex digits; `None` if it is not one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self { key })
    }

    /// A grant for `file` of `recording`, valid until `expires_ms`.
    pub fn sign(&self, recording: &str, file: u32, expires_ms: i64) -> String {
        self.sign_statement(&download(recording, file), expires_ms)
    }

    /// Whether `grant` admits `file` of `recording` at `now_ms`.
    pub fn check(&self, grant: &str, recording: &str, file: u32, now_ms: i64) -> bool {
        self.check_statement(grant, &download(recording, file), now_ms)
    }

    /// A forwarding node's proof that it names `client` as the request's client (see
    /// [`crate::limits`]); valid for [`FORWARD_PROOF_LIFETIME_MS`].
    pub fn sign_forwarded_for(&self, client: std::net::IpAddr) -> String {
        self.sign_statement(
            &forwarded_for(client),
            crate::now_ms() + FORWARD_PROOF_LIFETIME_MS,
        )
    }

    /// Whether `proof` is a node's proof that `client` is the request's client.
    pub fn check_forwarded_for(&self, client: std::net::IpAddr, proof: &str) -> bool {
        self.check_statement(proof, &forwarded_for(client), crate::now_ms())
    }

    /// The value of a forwarding node's [`FORWARDED_BY`] header: its id and its proof of it,
    /// valid for [`FORWARD_PROOF_LIFETIME_MS`].
    ///
    /// [`FORWARDED_BY`]: crate::cluster::route::FORWARDED_BY
    pub fn sign_forwarded_by(&self, node_id: &str) -> String {
        let proof = self.sign_statement(
            &forwarded_by(node_id),
            crate::now_ms() + FORWARD_PROOF_LIFETIME_MS,
        );
        format!("{node_id} {proof}")
    }

    /// The node a [`Self::sign_forwarded_by`] value names, if its proof holds: a client cannot
    /// pass for a node of this deployment.
    pub fn check_forwarded_by<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (node_id, proof) = value.rsplit_once(' ')?;
        self.check_statement(proof, &forwarded_by(node_id), crate::now_ms())
            .then_some(node_id)
    }

    /// `EXPIRES.MAC` over the statement and its expiry.
    fn sign_statement(&self, statement: &str, expires_ms: i64) -> String {
        format!(
            "{expires_ms}.{}",
            B64.encode(self.mac(statement, expires_ms).finalize().into_bytes())
        )
    }

    /// Whether `signed` is [`Self::sign_statement`] of `statement`, unexpired at `now_ms`
    /// (compared in constant time).
    fn check_statement(&self, signed: &str, statement: &str, now_ms: i64) -> bool {
        let Some((expires, signature)) = signed.split_once('.') else {
            return false;
        };
        let (Ok(expires_ms), Ok(signature)) = (expires.parse::<i64>(), B64.decode(signature))
        else {
            return false;
        };
        now_ms < expires_ms
            && self
                .mac(statement, expires_ms)
                .verify_slice(&signature)
                .is_ok()
    }

    fn mac(&self, statement: &str, expires_ms: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("bug: any key length");
        mac.update(format!("{statement}:{expires_ms}").as_bytes());
        mac
    }
}

/// How long a forwarding node's proof is valid (it is made for each forwarded request).
pub const FORWARD_PROOF_LIFETIME_MS: i64 = 60 * 1000;

fn download(recording: &str, file: u32) -> String {
    format!("download:{recording}:{file}")
}

fn forwarded_for(client: std::net::IpAddr) -> String {
    format!("forwarded-for:{client}")
}

fn forwarded_by(node_id: &str) -> String {
    format!("forwarded-by:{node_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_admits_its_file_until_it_expires_and_nothing_else() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let grants = Grants::load_or_create(dir.path()).expect("a key");
        let grant = grants.sign("rec_1", 0, 1_000);
        assert!(grants.check(&grant, "rec_1", 0, 999));
        // Shared as hex, the key checks the same grants.
        let shared = Grants::from_hex(&grants.to_hex()).unwrap();
        assert!(shared.check(&grant, "rec_1", 0, 999));
        assert!(Grants::from_hex("zz").is_none());
        assert!(Grants::from_hex(&"g".repeat(64)).is_none());
        assert!(!grants.check(&grant, "rec_1", 0, 1_000), "expired");
        assert!(!grants.check(&grant, "rec_1", 1, 999), "another file");
        assert!(!grants.check(&grant, "rec_2", 0, 999), "another recording");
        assert!(
            !grants.check(&grant.replace("1000.", "9999."), "rec_1", 0, 999),
            "a longer life"
        );
        assert!(!grants.check("nonsense", "rec_1", 0, 999));
        // A forwarding node's name, and only a node's.
        let by = grants.sign_forwarded_by("node a");
        assert_eq!(grants.check_forwarded_by(&by), Some("node a"));
        assert_eq!(grants.check_forwarded_by("node-a"), None, "no proof");
        let other = Grants::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(other.check_forwarded_by(&by), None, "another deployment's");
        let (_, proof) = by.rsplit_once(' ').unwrap();
        assert_eq!(
            grants.check_forwarded_by(&format!("node-b {proof}")),
            None,
            "renamed"
        );
        let for_client = grants.sign_forwarded_for("127.0.0.1".parse().unwrap());
        assert_eq!(
            grants.check_forwarded_by(&format!("node-a {for_client}")),
            None,
            "a proof of something else"
        );
        // The same key after a restart.
        let again = Grants::load_or_create(dir.path()).expect("the key");
        assert!(again.check(&grant, "rec_1", 0, 999));
    }
}
