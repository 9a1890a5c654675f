//! A TURN client (RFC 8656) over UDP, sans-IO: one [`Allocation`] on a TURN server, made with
//! the long-term credential mechanism (RFC 8489 §9.2: the first `Allocate` is refused with a
//! realm and a nonce, the second carries `MESSAGE-INTEGRITY`), kept alive with `Refresh`, with a
//! permission per peer IP (`CreatePermission`, renewed before its five minutes end), and data
//! carried in `Send` and `Data` indications. Responses are accepted only with a valid
//! `MESSAGE-INTEGRITY` once the key is known. str0m has no TURN client; this is the part of one
//! a relayed WebRTC peer needs (see [`crate::relay`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

use crate::Datagram;

const MAGIC: u32 = 0x2112_A442;
const HEADER: usize = 20;

const ALLOCATE: u16 = 0x003;
const REFRESH: u16 = 0x004;
const SEND: u16 = 0x006;
const DATA: u16 = 0x007;
const CREATE_PERMISSION: u16 = 0x008;

const REQUEST: u16 = 0x000;
const INDICATION: u16 = 0x010;
const SUCCESS: u16 = 0x100;
const ERROR: u16 = 0x110;

const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_LIFETIME: u16 = 0x000D;
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
const ATTR_DATA: u16 = 0x0013;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;

/// How long a request waits for its answer before it is sent again, and how often.
const RETRANSMIT: Duration = Duration::from_millis(500);
const MAX_SENDS: u32 = 7;
/// Permissions last five minutes (RFC 8656 §9); renewed a minute before.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// Asked for, and what a server that says nothing gives.
const LIFETIME: Duration = Duration::from_secs(600);

/// A TURN server and the credentials to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl TurnServer {
    /// The server of the first UDP URL in `urls` (`turn:HOST:PORT[?transport=udp]`; TCP and
    /// TLS ones, which browsers may use, are passed over), its host looked up.
    pub async fn resolve(urls: &[String], username: &str, password: &str) -> std::io::Result<Self> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let url = urls.iter().find(|url| is_udp_url(url)).ok_or_else(|| {
            invalid(format!(
                "none of {urls:?} is a UDP relay (turn:HOST:PORT), the only kind this client speaks"
            ))
        })?;
        let address = url
            .strip_prefix("turn:")
            .and_then(|rest| rest.split('?').next())
            .unwrap_or_default();
        let addr = tokio::net::lookup_host(address)
            .await?
            .next()
            .ok_or_else(|| invalid(format!("'{url}': the host has no address")))?;
        Ok(Self {
            addr,
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Whether `url` names a relay reached over UDP: `turn:HOST:PORT` or
/// `turn:HOST:PORT?transport=udp` (not `turns:`, which is TLS, nor `?transport=tcp`).
pub fn is_udp_url(url: &str) -> bool {
    url.strip_prefix("turn:")
        .is_some_and(|rest| matches!(rest.split_once('?'), None | Some((_, "transport=udp"))))
}

/// What an allocation reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocationEvent {
    /// The server relays for us at this address.
    Allocated(SocketAddr),
    /// The server refused, or never answered; nothing is relayed.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allocate,
    Refresh,
    Release,
    Permission(IpAddr),
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    message: Vec<u8>,
    next_send: Instant,
    sends: u32,
}

/// One allocation on a TURN server, for one local socket. See the [module docs](self).
#[derive(Debug)]
pub struct Allocation {
    server: TurnServer,
    local: SocketAddr,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<[u8; 16]>,
    relay: Option<SocketAddr>,
    failed: bool,
    refresh_at: Option<Instant>,
    /// Peer IP → when its permission must be renewed; `None` while being asked for.
    permissions: HashMap<IpAddr, Option<Instant>>,
    pending: HashMap<[u8; 12], Pending>,
    /// Data for peers whose permission is being asked for.
    held: Vec<(SocketAddr, Vec<u8>)>,
    transmits: VecDeque<Datagram>,
    events: VecDeque<AllocationEvent>,
    next_id: u64,
}

impl Allocation {
    /// Starts allocating on `server` from the socket bound at `local`.
    pub fn new(now: Instant, local: SocketAddr, server: TurnServer) -> Self {
        let mut allocation = Self {
            server,
            local,
            realm: None,
            nonce: None,
            key: None,
            relay: None,
            failed: false,
            refresh_at: None,
            permissions: HashMap::new(),
            pending: HashMap::new(),
            held: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
        };
        allocation.request(now, Kind::Allocate);
        allocation
    }

    /// The local socket it uses.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The TURN server's address.
    pub fn server(&self) -> SocketAddr {
        self.server.addr
    }

    /// The relayed address, once allocated.
    pub fn relay(&self) -> Option<SocketAddr> {
        self.relay
    }

    /// A datagram from the TURN server arrived; returns the peer data it carried, if any.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        contents: &[u8],
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let message = Message::parse(contents)?;
        if message.class() == INDICATION && message.method() == DATA {
            // Indications carry no integrity (RFC 8656 §11.4): they come from the server's
            // address, and a peer we gave no permission cannot send any.
            let peer = message.xor_address(ATTR_XOR_PEER_ADDRESS)?;
            let data = message.attribute(ATTR_DATA)?.to_vec();
            return self
                .permissions
                .contains_key(&peer.ip())
                .then_some((peer, data));
        }
        let pending = self.pending.remove(&message.transaction)?;
        if let Some(key) = &self.key
            && !message.integrity_holds(key)
        {
            // Not from the server (or damaged): keep waiting for the real answer.
            self.pending.insert(message.transaction, pending);
            return None;
        }
        match message.class() {
            SUCCESS => self.on_success(now, pending.kind, &message),
            ERROR => self.on_error(now, pending.kind, &message),
            _ => {}
        }
        None
    }

    /// Sends `data` to `peer` through the relay (asking for a permission first if needed).
    pub fn send(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        if self.relay.is_none() {
            return;
        }
        match self.permissions.get(&peer.ip()) {
            Some(Some(_)) => {
                let id = self.transaction_id();
                let mut message = Builder::new(SEND | INDICATION, id);
                message.xor_address(ATTR_XOR_PEER_ADDRESS, peer, &id);
                message.attribute(ATTR_DATA, data);
                self.transmit(message.finish());
            }
            Some(None) => self.held.push((peer, data.to_vec())),
            None => {
                self.permissions.insert(peer.ip(), None);
                self.held.push((peer, data.to_vec()));
                self.request(now, Kind::Permission(peer.ip()));
            }
        }
    }

    /// Gives the allocation back (a `Refresh` with lifetime 0), so the relay frees it at once;
    /// nothing is relayed after.
    pub fn close(&mut self, now: Instant) {
        if self.relay.take().is_none() {
            return;
        }
        self.pending.clear();
        self.refresh_at = None;
        self.permissions.clear();
        self.request(now, Kind::Release);
        // Not sent again: a relay that misses it frees the allocation when its lifetime ends.
        self.pending.clear();
        self.failed = true;
    }

    /// Time passed: requests are sent again, the allocation and permissions renewed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut lost = None;
        for pending in self.pending.values_mut() {
            if now < pending.next_send {
                continue;
            }
            if pending.sends >= MAX_SENDS {
                lost = Some(pending.kind);
                continue;
            }
            pending.sends += 1;
            pending.next_send = now + RETRANSMIT;
            self.transmits.push_back(Datagram {
                source: self.local,
                destination: self.server.addr,
                contents: pending.message.clone(),
            });
        }
        if let Some(kind) = lost {
            self.pending.retain(|_, p| p.kind != kind);
            self.fail(format!(
                "the TURN server {} did not answer ({kind:?})",
                self.server.addr
            ));
            return;
        }
        if self.refresh_at.is_some_and(|at| now >= at) {
            self.refresh_at = None;
            self.request(now, Kind::Refresh);
        }
        let due: Vec<IpAddr> = self
            .permissions
            .iter()
            .filter(|(_, at)| at.is_some_and(|at| now >= at))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in due {
            self.permissions.insert(ip, Some(now + PERMISSION_REFRESH));
            self.request(now, Kind::Permission(ip));
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.pending
            .values()
            .map(|p| p.next_send)
            .chain(self.refresh_at)
            .chain(self.permissions.values().flatten().copied())
            .min()
    }

    /// The next datagram to send (to the TURN server).
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<AllocationEvent> {
        self.events.pop_front()
    }

    fn on_success(&mut self, now: Instant, kind: Kind, message: &Message) {
        let lifetime = message
            .attribute(ATTR_LIFETIME)
            .and_then(|v| v.try_into().ok())
            .map(|b: [u8; 4]| Duration::from_secs(u64::from(u32::from_be_bytes(b))))
            .unwrap_or(LIFETIME);
        match kind {
            Kind::Allocate => {
                let Some(relay) = message.xor_address(ATTR_XOR_RELAYED_ADDRESS) else {
                    self.fail("the TURN server allocated no relayed address".into());
                    return;
                };
                self.relay = Some(relay);
                self.refresh_at = Some(now + lifetime / 2);
                self.events.push_back(AllocationEvent::Allocated(relay));
            }
            Kind::Refresh => self.refresh_at = Some(now + lifetime / 2),
            Kind::Release => {}
            Kind::Permission(ip) => {
                self.permissions.insert(ip, Some(now + PERMISSION_REFRESH));
                let (ready, waiting) = std::mem::take(&mut self.held)
                    .into_iter()
                    .partition(|(peer, _)| peer.ip() == ip);
                self.held = waiting;
                for (peer, data) in ready {
                    self.send(now, peer, &data);
                }
            }
        }
    }

    fn on_error(&mut self, now: Instant, kind: Kind, message: &Message) {
        let code = message.error_code().unwrap_or(0);
        let realm = message.text(ATTR_REALM);
        let nonce = message.text(ATTR_NONCE);
        // 401: the credentials are asked for (once); 438: the nonce went stale.
        let retry = match code {
            401 if self.key.is_none() && realm.is_some() && nonce.is_some() => true,
            438 if nonce.is_some() => true,
            _ => false,
        };
        if retry {
            if let Some(realm) = realm {
                self.key = Some(long_term_key(
                    &self.server.username,
                    &realm,
                    &self.server.password,
                ));
                self.realm = Some(realm);
            }
            self.nonce = nonce;
            self.request(now, kind);
            return;
        }
        let reason = message.text(ATTR_ERROR_CODE).unwrap_or_default();
        match kind {
            Kind::Permission(ip) => {
                self.permissions.remove(&ip);
                self.held.retain(|(peer, _)| peer.ip() != ip);
                tracing::warn!(peer = %ip, code, reason, "the TURN server refused a permission");
            }
            Kind::Release => {}
            Kind::Allocate | Kind::Refresh => self.fail(format!(
                "the TURN server {} refused ({code} {reason})",
                self.server.addr
            )),
        }
    }

    fn fail(&mut self, reason: String) {
        if !self.failed {
            self.failed = true;
            self.relay = None;
            self.events.push_back(AllocationEvent::Failed(reason));
        }
    }

    fn request(&mut self, now: Instant, kind: Kind) {
        let id = self.transaction_id();
        let method = match kind {
            Kind::Allocate => ALLOCATE,
            Kind::Refresh | Kind::Release => REFRESH,
            Kind::Permission(_) => CREATE_PERMISSION,
        };
        let mut message = Builder::new(method | REQUEST, id);
        match kind {
            Kind::Allocate => {
                // UDP (17) in the first byte.
                message.attribute(ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
                message.attribute(ATTR_LIFETIME, &(LIFETIME.as_secs() as u32).to_be_bytes());
            }
            Kind::Refresh => {
                message.attribute(ATTR_LIFETIME, &(LIFETIME.as_secs() as u32).to_be_bytes())
            }
            Kind::Release => message.attribute(ATTR_LIFETIME, &0u32.to_be_bytes()),
            Kind::Permission(ip) => {
                message.xor_address(ATTR_XOR_PEER_ADDRESS, SocketAddr::new(ip, 0), &id)
            }
        }
        let bytes = match (&self.key, &self.realm, &self.nonce) {
            (Some(key), Some(realm), Some(nonce)) => {
                message.attribute(ATTR_USERNAME, self.server.username.as_bytes());
                message.attribute(ATTR_REALM, realm.as_bytes());
                message.attribute(ATTR_NONCE, nonce.as_bytes());
                message.finish_with_integrity(key)
            }
            _ => message.finish(),
        };
        self.transmit(bytes.clone());
        self.pending.insert(
            id,
            Pending {
                kind,
                message: bytes,
                next_send: now + RETRANSMIT,
                sends: 1,
            },
        );
    }

    fn transmit(&mut self, contents: Vec<u8>) {
        self.transmits.push_back(Datagram {
            source: self.local,
            destination: self.server.addr,
            contents,
        });
    }

    fn transaction_id(&mut self) -> [u8; 12] {
        self.next_id += 1;
        // Unique per allocation, unpredictable across them (a spoofed answer must guess it).
        let mut id = [0u8; 12];
        let random = std::collections::hash_map::RandomState::new();
        let salt = std::hash::BuildHasher::hash_one(&random, (self.local, self.next_id));
        id[..8].copy_from_slice(&salt.to_be_bytes());
        id[8..].copy_from_slice(&(self.next_id as u32).to_be_bytes());
        id
    }
}

/// `MD5(username:realm:password)`, the long-term credential key (RFC 8489 §9.2.2).
fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    Md5::digest(format!("{username}:{realm}:{password}").as_bytes()).into()
}

/// Whether a datagram is a STUN message (the first two bits zero and the magic cookie), as
/// opposed to media or DTLS.
pub fn is_stun(contents: &[u8]) -> bool {
    contents.len() >= HEADER && contents[0] & 0xC0 == 0 && contents[4..8] == MAGIC.to_be_bytes()
}

/// A parsed STUN message (its attributes borrowed).
struct Message<'a> {
    kind: u16,
    transaction: [u8; 12],
    raw: &'a [u8],
    attributes: Vec<(u16, usize, &'a [u8])>,
}

impl<'a> Message<'a> {
    fn parse(raw: &'a [u8]) -> Option<Self> {
        if !is_stun(raw) {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        let raw = raw.get(..HEADER + length)?;
        let transaction: [u8; 12] = raw[8..20].try_into().ok()?;
        let mut attributes = Vec::new();
        let mut at = HEADER;
        while at + 4 <= raw.len() {
            let kind = u16::from_be_bytes([raw[at], raw[at + 1]]);
            let len = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
            let value = raw.get(at + 4..at + 4 + len)?;
            attributes.push((kind, at, value));
            at += 4 + len.div_ceil(4) * 4;
        }
        Some(Self {
            kind: u16::from_be_bytes([raw[0], raw[1]]),
            transaction,
            raw,
            attributes,
        })
    }

    fn class(&self) -> u16 {
        self.kind & 0x0110
    }

    fn method(&self) -> u16 {
        self.kind & !0x0110
    }

    fn attribute(&self, kind: u16) -> Option<&'a [u8]> {
        self.attributes
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, _, v)| *v)
    }

    fn text(&self, kind: u16) -> Option<String> {
        let value = self.attribute(kind)?;
        let value = if kind == ATTR_ERROR_CODE {
            value.get(4..)?
        } else {
            value
        };
        String::from_utf8(value.to_vec()).ok()
    }

    fn error_code(&self) -> Option<u16> {
        let value = self.attribute(ATTR_ERROR_CODE)?;
        Some(u16::from(*value.get(2)? & 0x7) * 100 + u16::from(*value.get(3)?))
    }

    fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        decode_xor_address(self.attribute(kind)?, &self.transaction)
    }

    /// `MESSAGE-INTEGRITY` is present and right for `key` (HMAC-SHA1 over the message up to
    /// it, with the length as if it ended after it).
    fn integrity_holds(&self, key: &[u8]) -> bool {
        let Some((_, at, value)) = self
            .attributes
            .iter()
            .find(|(k, _, _)| *k == ATTR_MESSAGE_INTEGRITY)
        else {
            return false;
        };
        let mut covered = self.raw[..*at].to_vec();
        let length = u16::try_from(*at + 24 - HEADER).unwrap_or(u16::MAX);
        covered[2..4].copy_from_slice(&length.to_be_bytes());
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("bug: any key length");
        mac.update(&covered);
        mac.verify_slice(value).is_ok()
    }
}

fn decode_xor_address(value: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC >> 16) as u16;
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    let ip = match value.get(1)? {
        0x01 => {
            let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            let octets: Vec<u8> = raw.iter().zip(&mask).map(|(a, m)| a ^ m).collect();
            IpAddr::from(<[u8; 4]>::try_from(octets).ok()?)
        }
        0x02 => {
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            let octets: Vec<u8> = raw.iter().zip(&mask).map(|(a, m)| a ^ m).collect();
            IpAddr::from(<[u8; 16]>::try_from(octets).ok()?)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Writes a STUN message.
struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    fn new(kind: u16, transaction: [u8; 12]) -> Self {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&kind.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&MAGIC.to_be_bytes());
        bytes.extend_from_slice(&transaction);
        Self { bytes }
    }

    fn attribute(&mut self, kind: u16, value: &[u8]) {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.bytes.extend_from_slice(&length.to_be_bytes());
        self.bytes.extend_from_slice(value);
        let padding = value.len().div_ceil(4) * 4 - value.len();
        self.bytes.extend(std::iter::repeat_n(0, padding));
    }

    fn xor_address(&mut self, kind: u16, addr: SocketAddr, transaction: &[u8; 12]) {
        let port = addr.port() ^ (MAGIC >> 16) as u16;
        let mut mask = [0u8; 16];
        mask[..4].copy_from_slice(&MAGIC.to_be_bytes());
        mask[4..].copy_from_slice(transaction);
        let mut value = vec![0];
        match addr.ip() {
            IpAddr::V4(ip) => {
                value.push(0x01);
                value.extend_from_slice(&port.to_be_bytes());
                value.extend(ip.octets().iter().zip(&mask).map(|(a, m)| a ^ m));
            }
            IpAddr::V6(ip) => {
                value.push(0x02);
                value.extend_from_slice(&port.to_be_bytes());
                value.extend(ip.octets().iter().zip(&mask).map(|(a, m)| a ^ m));
            }
        }
        self.attribute(kind, &value);
    }

    fn set_length(&mut self, extra: usize) {
        let length = u16::try_from(self.bytes.len() - HEADER + extra).unwrap_or(u16::MAX);
        self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.set_length(0);
        self.bytes
    }

    fn finish_with_integrity(mut self, key: &[u8]) -> Vec<u8> {
        self.set_length(24);
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("bug: any key length");
        mac.update(&self.bytes);
        let integrity = mac.finalize().into_bytes();
        self.attribute(ATTR_MESSAGE_INTEGRITY, &integrity);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_turn_urls_are_udp() {
        assert!(is_udp_url("turn:r:3478") && is_udp_url("turn:r:3478?transport=udp"));
        for other in ["turn:r:3478?transport=tcp", "turns:r:443", "stun:r:3478"] {
            assert!(!is_udp_url(other), "{other}");
        }
    }

    #[tokio::test]
    async fn a_client_takes_the_first_udp_relay_of_a_list() {
        let urls = [
            "turns:127.0.0.1:443".to_owned(),
            "turn:127.0.0.1:3479".to_owned(),
        ];
        let found = TurnServer::resolve(&urls, "u", "p").await.unwrap();
        assert_eq!(found.addr, "127.0.0.1:3479".parse().unwrap());
        let error = TurnServer::resolve(&urls[..1], "u", "p").await.unwrap_err();
        assert!(error.to_string().contains("is a UDP relay"), "{error}");
    }

    fn server() -> TurnServer {
        TurnServer {
            addr: "127.0.0.1:3478".parse().unwrap(),
            username: "user".into(),
            password: "pass".into(),
        }
    }

    /// The server's side of an exchange, as coturn answers.
    fn answer(request: &[u8], kind: u16, key: Option<&[u8]>, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let request = Message::parse(request).unwrap();
        let mut message = Builder::new(request.method() | kind, request.transaction);
        for (k, v) in attrs {
            message.attribute(*k, v);
        }
        match key {
            Some(key) => message.finish_with_integrity(key),
            None => message.finish(),
        }
    }

    fn xor(addr: SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
        let mut b = Builder::new(0, *transaction);
        b.xor_address(0, addr, transaction);
        b.bytes[HEADER + 4..].to_vec()
    }

    #[test]
    fn allocates_with_the_long_term_credentials_then_relays_both_ways() {
        let now = Instant::now();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut allocation = Allocation::new(now, local, server());
        let first = allocation.poll_transmit().unwrap();
        assert_eq!(first.destination, server().addr);
        let unauthorized = answer(
            &first.contents,
            ERROR,
            None,
            &[
                (ATTR_ERROR_CODE, vec![0, 0, 4, 1, b'U']),
                (ATTR_REALM, b"convrec".to_vec()),
                (ATTR_NONCE, b"n1".to_vec()),
            ],
        );
        allocation.handle_receive(now, &unauthorized);
        let second = allocation.poll_transmit().unwrap();
        let key = long_term_key("user", "convrec", "pass");
        assert!(
            Message::parse(&second.contents)
                .unwrap()
                .integrity_holds(&key)
        );
        let relay: SocketAddr = "127.0.0.1:49152".parse().unwrap();
        let transaction = Message::parse(&second.contents).unwrap().transaction;
        // An answer without integrity is not taken.
        let forged = answer(
            &second.contents,
            SUCCESS,
            None,
            &[(
                ATTR_XOR_RELAYED_ADDRESS,
                xor("10.0.0.1:1".parse().unwrap(), &transaction),
            )],
        );
        allocation.handle_receive(now, &forged);
        assert_eq!(allocation.relay(), None);
        let success = answer(
            &second.contents,
            SUCCESS,
            Some(&key),
            &[(ATTR_XOR_RELAYED_ADDRESS, xor(relay, &transaction))],
        );
        allocation.handle_receive(now, &success);
        assert_eq!(allocation.relay(), Some(relay));
        assert_eq!(
            allocation.poll_event(),
            Some(AllocationEvent::Allocated(relay))
        );
        // Data for a peer waits for its permission.
        let peer: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        allocation.send(now, peer, b"hello");
        let permission = allocation.poll_transmit().unwrap();
        assert_eq!(
            Message::parse(&permission.contents).unwrap().kind,
            CREATE_PERMISSION | REQUEST
        );
        assert_eq!(allocation.poll_transmit(), None);
        let granted = answer(&permission.contents, SUCCESS, Some(&key), &[]);
        allocation.handle_receive(now, &granted);
        let sent = allocation.poll_transmit().unwrap();
        let indication = Message::parse(&sent.contents).unwrap();
        assert_eq!(indication.kind, SEND | INDICATION);
        assert_eq!(indication.xor_address(ATTR_XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(indication.attribute(ATTR_DATA), Some(&b"hello"[..]));
        // A Data indication from the permitted peer comes out; from another, nothing.
        for (from, expected) in [
            (peer, Some((peer, b"back".to_vec()))),
            ("127.0.0.2:1".parse().unwrap(), None),
        ] {
            let id = [7u8; 12];
            let mut data = Builder::new(DATA | INDICATION, id);
            data.xor_address(ATTR_XOR_PEER_ADDRESS, from, &id);
            data.attribute(ATTR_DATA, b"back");
            assert_eq!(allocation.handle_receive(now, &data.finish()), expected);
        }
    }

    #[test]
    fn an_unanswered_allocation_fails_after_its_retransmissions() {
        let start = Instant::now();
        let mut allocation = Allocation::new(start, "127.0.0.1:5000".parse().unwrap(), server());
        let mut sends = 0;
        let mut now = start;
        while let Some(at) = allocation.poll_timeout() {
            while allocation.poll_transmit().is_some() {
                sends += 1;
            }
            now = at.max(now);
            allocation.handle_timeout(now);
            assert!(now - start < Duration::from_secs(10));
        }
        assert_eq!(sends, MAX_SENDS);
        assert!(matches!(
            allocation.poll_event(),
            Some(AllocationEvent::Failed(_))
        ));
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert!(Message::parse(&[0; 19]).is_none());
        assert!(Message::parse(&[0x80; 40]).is_none());
        // A length past the end, an attribute past the end.
        let mut b = Builder::new(ALLOCATE, [1; 12]).finish();
        b[3] = 40;
        assert!(Message::parse(&b).is_none());
        let mut b = Builder::new(ALLOCATE, [1; 12]);
        b.attribute(ATTR_DATA, b"abcd");
        let mut bytes = b.finish();
        bytes[HEADER + 3] = 200;
        assert!(Message::parse(&bytes).is_none());
    }
}
