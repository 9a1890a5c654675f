//! The TURN relay handed to participants and recorders (SPEC §7, "a TURN relay for isolated
//! deployments"; the seed's `RELAYED` calls): each gets time-limited credentials made with the
//! secret it shares with the relay (the TURN REST API scheme coturn implements as
//! `use-auth-secret`: user name `EXPIRY:WHO`, password `base64(HMAC-SHA1(secret, user name))`),
//! so the server never hands out a lasting password. With `force_relay`, participants and
//! recorders reach the SFU only through the relay.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use convrec_core::recorder_protocol::TurnRelay;
use hmac::{Hmac, KeyInit, Mac};

/// How long credentials last: longer than any call or recording is expected to (a relay
/// checks them again at each refresh).
pub const CREDENTIAL_LIFETIME_SECS: i64 = 24 * 3600;

/// The TURN relay of a deployment.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSettings {
    /// `turn:HOST:PORT` URLs (UDP).
    pub urls: Vec<String>,
    /// The secret shared with the relay (coturn's `static-auth-secret`).
    pub secret: String,
    /// Participants and recorders use nothing but the relay.
    pub force_relay: bool,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("urls", &self.urls)
            .field("secret", &"…")
            .field("force_relay", &self.force_relay)
            .finish()
    }
}

impl TurnSettings {
    /// Credentials for `who` (a participant's or a recording's id), valid from `now_ms` for
    /// [`CREDENTIAL_LIFETIME_SECS`].
    pub fn relay_for(&self, who: &str, now_ms: i64) -> TurnRelay {
        let expiry = now_ms / 1000 + CREDENTIAL_LIFETIME_SECS;
        let username = format!("{expiry}:{who}");
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(self.secret.as_bytes())
            .expect("bug: any key length");
        mac.update(username.as_bytes());
        TurnRelay {
            urls: self.urls.clone(),
            username,
            credential: B64.encode(mac.finalize().into_bytes()),
        }
    }
}

/// A `turn:HOST:PORT[?transport=udp]` URL, checked: `Err` says what is wrong.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("turn:")
        .ok_or_else(|| format!("'{url}' is not a turn: URL"))?;
    let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !(query.is_empty() || query == "transport=udp") {
        return Err(format!("'{url}': only UDP is supported (transport=udp)"));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("'{url}' has no port"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("'{url}' needs a host and a port 1 to 65535"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_api() {
        let settings = TurnSettings {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret: "north".into(),
            force_relay: true,
        };
        let relay = settings.relay_for("par_1", 1_000_000);
        assert_eq!(
            relay.username,
            format!("{}:par_1", 1_000 + CREDENTIAL_LIFETIME_SECS)
        );
        // base64(HMAC-SHA1("north", username)), as coturn computes it.
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"north").unwrap();
        mac.update(relay.username.as_bytes());
        assert_eq!(relay.credential, B64.encode(mac.finalize().into_bytes()));
        assert!(format!("{settings:?}").contains('…'));
        assert!(!format!("{settings:?}").contains("north"));
    }

    #[test]
    fn only_udp_turn_urls_with_a_port_are_taken() {
        assert!(check_url("turn:127.0.0.1:3478").is_ok());
        assert!(check_url("turn:relay.example.com:3478?transport=udp").is_ok());
        for bad in [
            "stun:x:1",
            "turn:x",
            "turn::1",
            "turn:x:0",
            "turn:x:1?transport=tcp",
            "turns:x:5349",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
