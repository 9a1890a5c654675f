//! The TURN relay handed to participants and recorders (SPEC §7, "a TURN relay for isolated
//! deployments"; the seed's `RELAYED` calls): each gets time-limited credentials made with the
//! secret it shares with the relay (the TURN REST API scheme coturn implements as
//! `use-auth-secret`: user name `EXPIRY:WHO`, password `base64(HMAC-SHA1(secret, user name))`),
//! so the server never hands out a lasting password. With `force_relay`, participants and
//! recorders reach the SFU only through the relay.
//!
//! A relay may be offered over UDP, TCP and TLS (`turn:…`, `turn:…?transport=tcp`, `turns:…`):
//! browsers behind a firewall that drops UDP reach it over TCP or TLS (port 443 passes most).
//! convrec's own TURN client (recorders, `convrec participant`) speaks UDP, so one URL must be
//! UDP.

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
    /// `turn:`/`turns:` URLs, at least one of them UDP.
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

/// A comma-separated list of TURN URLs, checked: the URLs, or what is wrong. Each is
/// `turn:HOST:PORT` or `turn:HOST:PORT?transport=udp` (UDP), `turn:HOST:PORT?transport=tcp`
/// (TCP), or `turns:HOST:PORT[?transport=tcp]` (TLS); one must be UDP.
pub fn check_urls(list: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err("no URL: give one or more turn:HOST:PORT URLs, separated by commas".into());
    }
    for url in &urls {
        check_url(url)?;
    }
    if !urls.iter().any(|url| convrec_rtc::turn::is_udp_url(url)) {
        return Err(format!(
            "'{list}' has no UDP URL (turn:HOST:PORT): convrec's recorders reach the relay over UDP; TCP and TLS URLs are for browsers"
        ));
    }
    Ok(urls)
}

/// One TURN URL, checked: `Err` says what is wrong.
fn check_url(url: &str) -> Result<(), String> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("turns:") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("turn:") {
        (rest, false)
    } else {
        return Err(format!("'{url}' is not a turn: or turns: URL"));
    };
    let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
    match (query, tls) {
        ("" | "transport=tcp", _) | ("transport=udp", false) => {}
        ("transport=udp", true) => {
            return Err(format!(
                "'{url}': TLS (turns:) runs over TCP: transport=tcp or none"
            ));
        }
        _ => {
            return Err(format!(
                "'{url}': the query may only be transport=udp or transport=tcp"
            ));
        }
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
    fn turn_urls_over_udp_tcp_and_tls_with_a_port_are_taken() {
        for good in [
            "turn:127.0.0.1:3478",
            "turn:relay.example.com:3478?transport=udp",
            "turn:relay.example.com:3478?transport=tcp",
            "turns:relay.example.com:443",
            "turns:relay.example.com:443?transport=tcp",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in [
            "stun:x:1",
            "turn:x",
            "turn::1",
            "turn:x:0",
            "turn:x:1?transport=sctp",
            "turn:x:1?transport=udp&x=1",
            "turns:x:5349?transport=udp",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_list_needs_a_udp_url_for_the_recorders() {
        assert_eq!(
            check_urls("turn:r:3478, turns:r:443").unwrap(),
            ["turn:r:3478", "turns:r:443"]
        );
        let why = check_urls("turn:r:3478?transport=tcp,turns:r:443").unwrap_err();
        assert!(why.contains("has no UDP URL"), "{why}");
        assert!(check_urls(" , ").unwrap_err().contains("no URL"));
        assert!(
            check_urls("turn:r:3478,turn:r")
                .unwrap_err()
                .contains("no port")
        );
    }
}
