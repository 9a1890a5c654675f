//! What one client may take of a server: request bodies up to a size, connections up to a
//! number, a few failed authentications a minute per client address, and per account a number
//! of recordings running at once. Past a limit the answer says which limit, its value and the
//! setting that raises it; nothing already accepted is touched.
//!
//! Failed authentications are counted per client address (an IPv6 client by its /64, which one
//! subscriber usually holds whole) in a fixed one-minute window: a missing or wrong API key or
//! participant token (401), and a refused recorder entry point. Past the allowance every
//! request of that client is answered 429 with `Retry-After` until its window ends, so keys
//! and tokens cannot be guessed at speed. Behind another node of the deployment the client is
//! the one that node saw: forwarding nodes name it in [`FORWARDED_FOR`] with a proof made with
//! the deployment's shared key, so a client cannot name itself someone else. Behind a reverse
//! proxy the operator trusts ([`Limits::trusted_proxies`]), the client is the nearest address in
//! `X-Forwarded-For` that is not one of those proxies: without that, every client would share
//! the proxy's address, and one guesser would lock everyone out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;
use crate::api::error::ApiError;
use crate::destinations::IpRange;

/// The header reverse proxies name the client in.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The header a forwarding node names the client in.
pub const FORWARDED_FOR: &str = "x-convrec-forwarded-for";
/// The header with the forwarding node's proof of [`FORWARDED_FOR`].
pub const FORWARDED_PROOF: &str = "x-convrec-forwarded-proof";

/// The window failed authentications are counted in.
pub const FAILED_AUTH_WINDOW: Duration = Duration::from_secs(60);

/// How many clients' failures are remembered at most (a bound on memory under a flood from
/// many addresses; past it, new clients are not counted until old windows end).
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// The limits of a server. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// HTTP connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Failed authentications a client may make in [`FAILED_AUTH_WINDOW`].
    pub failed_auth_per_minute: u32,
    /// Recordings of one account running at once (across the nodes sharing the database).
    pub recordings_per_account: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: Vec<IpRange>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_connections: 4096,
            failed_auth_per_minute: 20,
            recordings_per_account: 200,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Marks a response as a failed authentication (set by [`ApiError`]'s answers).
#[derive(Debug, Clone, Copy)]
pub struct FailedAuthentication;

/// The client a request came from, as [`guard`] worked it out (for forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub IpAddr);

/// Failed authentications per client in fixed windows. Sans-IO: time is an input.
#[derive(Debug)]
pub struct FailedAuthentications {
    allowed: u32,
    window: Duration,
    clients: HashMap<IpAddr, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    began: Instant,
    failures: u32,
}

impl FailedAuthentications {
    /// `allowed` failures per `window`.
    pub fn new(allowed: u32, window: Duration) -> Self {
        Self {
            allowed,
            window,
            clients: HashMap::new(),
        }
    }

    /// `None` if `client` may try at `now`; else how long until it may.
    pub fn refusal(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let w = self.clients.get(&key(client))?;
        let ends = w.began + self.window;
        (w.failures >= self.allowed && now < ends).then(|| ends - now)
    }

    /// `client` failed to authenticate at `now`.
    pub fn record_failure(&mut self, client: IpAddr, now: Instant) {
        let window = self.window;
        if self.clients.len() >= MAX_TRACKED_CLIENTS {
            self.clients
                .retain(|_, w| now.saturating_duration_since(w.began) < window);
        }
        let key = key(client);
        if self.clients.len() >= MAX_TRACKED_CLIENTS && !self.clients.contains_key(&key) {
            return;
        }
        let w = self.clients.entry(key).or_insert(Window {
            began: now,
            failures: 0,
        });
        if now.saturating_duration_since(w.began) >= window {
            *w = Window {
                began: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

/// Whose failures a client's count: an IPv4 address, or an IPv6 client's /64.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << 64;
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
        v4 => v4,
    }
}

/// Middleware, outermost: works out the client, answers 429 to one that failed to
/// authenticate too often, counts the failures it makes, and answers 413 at once to a body
/// whose declared length is over the limit.
pub async fn guard(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let client = client_of(&app, &request);
    if let Some(client) = client {
        request.extensions_mut().insert(Client(client));
        let refusal = app
            .failed_auth
            .lock()
            .expect("bug: the failed-authentication table is never poisoned")
            .refusal(client, Instant::now());
        if let Some(wait) = refusal {
            return too_many_failures(&app, wait);
        }
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.limits.max_body_bytes as u64) {
        return body_too_large(app.limits.max_body_bytes).into_response();
    }
    let response = next.run(request).await;
    if let Some(client) = client
        && response
            .extensions()
            .get::<FailedAuthentication>()
            .is_some()
    {
        app.failed_auth
            .lock()
            .expect("bug: the failed-authentication table is never poisoned")
            .record_failure(client, Instant::now());
    }
    response
}

/// 413 for a body over `limit` bytes.
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!(
            "the request body is larger than {limit} bytes, the limit (limits.max_body_kib, --max-body-kib)"
        ),
    )
}

fn too_many_failures(app: &AppState, wait: Duration) -> Response {
    let seconds = wait.as_secs() + 1;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_FAILED_AUTHENTICATIONS",
        format!(
            "more than {} failed authentications from this address within a minute (limits.failed_auth_per_minute, --max-failed-auth-per-minute); try again in {seconds} s",
            app.limits.failed_auth_per_minute
        ),
    )
    .retry_after(seconds)
    .into_response()
}

/// The client of `request`: the one a forwarding node of this deployment names with a valid
/// proof, else the connection's peer.
fn client_of(app: &AppState, request: &Request) -> Option<IpAddr> {
    let headers = request.headers();
    let forwarded = headers
        .get(FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<IpAddr>().ok());
    let proof = headers.get(FORWARDED_PROOF).and_then(|v| v.to_str().ok());
    if let (Some(client), Some(proof)) = (forwarded, proof)
        && app.grants.check_forwarded_for(client, proof)
    {
        return Some(client);
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0.ip())?;
    let forwarded: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(client_behind_proxies(
        peer,
        &forwarded,
        &app.limits.trusted_proxies,
    ))
}

/// The client of a connection from `peer` whose request carries `X-Forwarded-For` values
/// `forwarded`: walking back from the peer through the proxies the operator trusts, the first
/// address that is not one of them (the nearest hop nobody trusted could have made up).
pub fn client_behind_proxies(peer: IpAddr, forwarded: &[&str], trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    let mut client = peer;
    let hops = forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        if !is_trusted(client) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = ip,
            // Garbage where an address should be: the last hop we could read is the client.
            Err(_) => break,
        }
    }
    client
}

/// The peer address of a connection accepted by a [`LimitedListener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A TCP listener that holds at most a number of connections open: past it, the next
/// connection is accepted only when one closes (until then it waits in the kernel's queue).
#[derive(Debug)]
pub struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    open: prometheus_client::metrics::gauge::Gauge,
}

impl LimitedListener {
    /// At most `max` connections of `listener` open at once, counted in `open`.
    pub fn new(
        listener: TcpListener,
        max: usize,
        open: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        Self {
            listener,
            permits: Arc::new(Semaphore::new(max)),
            open,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("bug: the connection semaphore is never closed");
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        self.open.inc();
        (
            CountedStream {
                stream,
                _permit: permit,
                open: self.open.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted connection, holding its place among the open ones until it is dropped.
#[derive(Debug)]
pub struct CountedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    open: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The shared table of failed authentications.
pub type FailedAuthTable = Mutex<FailedAuthentications>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn a_client_past_its_allowance_waits_until_its_window_ends() {
        let start = Instant::now();
        let mut table = FailedAuthentications::new(3, FAILED_AUTH_WINDOW);
        let client = ip("203.0.113.7");
        for n in 0..3 {
            assert_eq!(table.refusal(client, start), None, "failure {n} is allowed");
            table.record_failure(client, start + Duration::from_secs(n));
        }
        let at = start + Duration::from_secs(10);
        assert_eq!(table.refusal(client, at), Some(Duration::from_secs(50)));
        assert_eq!(table.refusal(ip("203.0.113.8"), at), None, "others may");
        assert_eq!(table.refusal(client, start + FAILED_AUTH_WINDOW), None);
        // A new window counts afresh.
        table.record_failure(client, start + FAILED_AUTH_WINDOW);
        assert_eq!(table.refusal(client, start + FAILED_AUTH_WINDOW), None);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let now = Instant::now();
        let mut table = FailedAuthentications::new(2, FAILED_AUTH_WINDOW);
        table.record_failure(ip("2001:db8:1:2::1"), now);
        table.record_failure(ip("2001:db8:1:2:ffff::9"), now);
        assert!(table.refusal(ip("2001:db8:1:2::77"), now).is_some());
        assert_eq!(table.refusal(ip("2001:db8:1:3::1"), now), None);
        table.record_failure(ip("::ffff:198.51.100.1"), now);
        table.record_failure(ip("198.51.100.1"), now);
        assert!(table.refusal(ip("198.51.100.1"), now).is_some());
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_nearest_untrusted_hop() {
        let proxies: Vec<IpRange> = ["10.0.0.0/8", "::1"]
            .iter()
            .map(|r| r.parse().expect("a range"))
            .collect();
        let client = |peer: &str, forwarded: &[&str]| {
            client_behind_proxies(ip(peer), forwarded, &proxies).to_string()
        };
        // No proxy in front: the peer, whatever the header says.
        assert_eq!(client("203.0.113.5", &["198.51.100.1"]), "203.0.113.5");
        // One trusted proxy.
        assert_eq!(client("10.0.0.2", &["198.51.100.1"]), "198.51.100.1");
        // A client that forges the header gets the address its first trusted proxy saw.
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4, 198.51.100.1", "10.0.0.3"]),
            "198.51.100.1"
        );
        // A trusted proxy without the header, or garbage in it: the last readable hop.
        assert_eq!(client("::1", &[]), "::1");
        assert_eq!(client("10.0.0.2", &["not-an-ip"]), "10.0.0.2");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let now = Instant::now();
        let mut table = FailedAuthentications::new(1, FAILED_AUTH_WINDOW);
        for n in 0..(MAX_TRACKED_CLIENTS as u32 + 10) {
            table.record_failure(IpAddr::V4(n.into()), now);
        }
        assert_eq!(table.clients.len(), MAX_TRACKED_CLIENTS);
        // Once the old windows end, new clients are counted again.
        let later = now + FAILED_AUTH_WINDOW;
        table.record_failure(ip("192.0.2.1"), later);
        assert!(table.refusal(ip("192.0.2.1"), later).is_some());
        assert_eq!(table.clients.len(), 1);
    }
}
