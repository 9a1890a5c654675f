//! Faults on real sockets, for the fault suite: a UDP relay that loses, delays and so reorders
//! datagrams like a bad network ([`ImpairedUdpRelay`]), and a TCP proxy that can be cut off and
//! restored ([`TcpProxy`], a database going away). Both run on their own threads; what they do
//! to each datagram is decided by [`Impairment`], a seeded, clock-free core that tests check
//! on its own.

use std::collections::{BinaryHeap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What a bad network does to datagrams: loses a share of them and delays each of the others
/// by a random time up to `jitter` (datagrams sent close together then arrive out of order).
#[derive(Debug, Clone)]
pub struct Impairment {
    /// Share of datagrams lost, 0 to 1.
    pub loss: f64,
    /// The longest extra delay.
    pub jitter: Duration,
    state: u64,
}

impl Impairment {
    /// An impairment whose random choices follow `seed` (so a run can be repeated).
    pub fn new(loss: f64, jitter: Duration, seed: u64) -> Self {
        Self {
            loss,
            jitter,
            state: seed.max(1),
        }
    }

    /// The fate of the next datagram: `None` if it is lost, else the delay it gets.
    pub fn decide(&mut self) -> Option<Duration> {
        let unit = |n: u64| (n >> 11) as f64 / (1u64 << 53) as f64;
        if unit(crate::xorshift64(&mut self.state)) < self.loss {
            return None;
        }
        Some(
            self.jitter
                .mul_f64(unit(crate::xorshift64(&mut self.state))),
        )
    }
}

/// Counters of what a relay did.
#[derive(Debug, Default)]
pub struct RelayCounts {
    /// Datagrams received from either side.
    pub received: AtomicU64,
    /// Of them, lost on purpose.
    pub lost: AtomicU64,
    /// Delivered later than one received after them.
    pub reordered: AtomicU64,
}

/// A datagram waiting for its time.
struct Due {
    at: Instant,
    seq: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Earliest first out of the max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Shared {
    impairment: Mutex<Impairment>,
    queue: Mutex<BinaryHeap<Due>>,
    wakeup: Condvar,
    counts: RelayCounts,
    next_seq: AtomicU64,
    last_sent_seq: AtomicU64,
}

impl Shared {
    /// Queues `bytes` for `to` through `socket`, or loses it.
    fn pass(&self, socket: &Arc<UdpSocket>, to: SocketAddr, bytes: &[u8]) {
        self.counts.received.fetch_add(1, Ordering::Relaxed);
        let fate = self.impairment.lock().expect("relay lock").decide();
        let Some(delay) = fate else {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let due = Due {
            at: Instant::now() + delay,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed) + 1,
            socket: Arc::clone(socket),
            to,
            bytes: bytes.to_vec(),
        };
        self.queue.lock().expect("relay lock").push(due);
        self.wakeup.notify_one();
    }

    /// Sends what is due, for ever.
    fn deliver(&self) {
        let mut queue = self.queue.lock().expect("relay lock");
        loop {
            let now = Instant::now();
            match queue.peek().map(|d| d.at) {
                Some(at) if at <= now => {
                    let due = queue.pop().expect("peeked");
                    let last = self.last_sent_seq.fetch_max(due.seq, Ordering::Relaxed);
                    if due.seq < last {
                        self.counts.reordered.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = due.socket.send_to(&due.bytes, due.to);
                }
                Some(at) => {
                    queue = self
                        .wakeup
                        .wait_timeout(queue, at - now)
                        .expect("relay lock")
                        .0;
                }
                None => queue = self.wakeup.wait(queue).expect("relay lock"),
            }
        }
    }
}

/// A UDP relay in front of `upstream`: each client gets its own upstream socket (like a NAT),
/// and every datagram either way goes through the [`Impairment`]. Runs until the process ends.
pub struct ImpairedUdpRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ImpairedUdpRelay {
    /// Listens on a free loopback port and relays to `upstream`.
    pub fn start(upstream: SocketAddr, impairment: Impairment) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind the relay"));
        let addr = front.local_addr().expect("the relay's address");
        let shared = Arc::new(Shared {
            impairment: Mutex::new(impairment),
            queue: Mutex::new(BinaryHeap::new()),
            wakeup: Condvar::new(),
            counts: RelayCounts::default(),
            next_seq: AtomicU64::new(0),
            last_sent_seq: AtomicU64::new(0),
        });
        let delivering = Arc::clone(&shared);
        std::thread::spawn(move || delivering.deliver());
        let relaying = Arc::clone(&shared);
        std::thread::spawn(move || {
            let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf) else {
                    continue;
                };
                let back = clients.entry(client).or_insert_with(|| {
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind upstream"));
                    let (reader, front, shared) =
                        (Arc::clone(&back), Arc::clone(&front), Arc::clone(&relaying));
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65536];
                        while let Ok((n, _)) = reader.recv_from(&mut buf) {
                            shared.pass(&front, client, &buf[..n]);
                        }
                    });
                    back
                });
                relaying.pass(back, upstream, &buf[..n]);
            }
        });
        Self { addr, shared }
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it did so far.
    pub fn counts(&self) -> &RelayCounts {
        &self.shared.counts
    }
}

/// A TCP proxy in front of `upstream` that can be cut off: every connection through it is
/// closed and new ones are refused until it is restored. Runs until the process ends.
pub struct TcpProxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Listens on a free loopback port and passes connections to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accepting_down, accepting_open) = (Arc::clone(&down), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if accepting_down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut streams = accepting_open.lock().expect("proxy lock");
                for s in [&client, &server] {
                    if let Ok(clone) = s.try_clone() {
                        streams.push(clone);
                    }
                }
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { addr, down, open }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection through it and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for stream in self.open.lock().expect("proxy lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impairment_loses_its_share_and_delays_within_its_jitter() {
        let mut impairment = Impairment::new(0.05, Duration::from_millis(200), 7);
        let fates: Vec<_> = (0..100_000).map(|_| impairment.decide()).collect();
        let lost = fates.iter().filter(|f| f.is_none()).count();
        assert!((4_500..5_500).contains(&lost), "{lost} of 100000 lost");
        let delays: Vec<Duration> = fates.into_iter().flatten().collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(200)));
        let mean = delays.iter().sum::<Duration>() / delays.len() as u32;
        assert!(
            (Duration::from_millis(95)..Duration::from_millis(105)).contains(&mean),
            "{mean:?}"
        );
        // The same seed, the same fates.
        let mut again = Impairment::new(0.05, Duration::from_millis(200), 7);
        let mut first = Impairment::new(0.05, Duration::from_millis(200), 7);
        assert!((0..1000).all(|_| again.decide() == first.decide()));
    }

    #[test]
    fn a_relay_passes_datagrams_both_ways_and_reorders_them() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay = ImpairedUdpRelay::start(
            server.local_addr().unwrap(),
            Impairment::new(0.0, Duration::from_millis(20), 3),
        );
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for n in 0u8..50 {
            client.send_to(&[n], relay.addr()).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        let mut back_to = None;
        while got.len() < 50 {
            let (_, from) = server.recv_from(&mut buf).unwrap();
            back_to = Some(from);
            got.push(buf[0]);
        }
        assert_ne!(got, (0u8..50).collect::<Vec<_>>(), "jitter reorders");
        got.sort_unstable();
        assert_eq!(got, (0u8..50).collect::<Vec<_>>(), "nothing lost");
        server.send_to(b"back", back_to.unwrap()).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], relay.addr()));
        assert!(relay.counts().reordered.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_cut_proxy_closes_connections_and_refuses_new_ones_until_restored() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in upstream.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = TcpProxy::start(upstream_addr);
        let echo = |stream: &mut TcpStream| -> bool {
            let mut buf = [0u8; 4];
            stream.write_all(b"ping").is_ok() && stream.read_exact(&mut buf).is_ok()
        };
        let mut before = TcpStream::connect(proxy.addr()).unwrap();
        assert!(echo(&mut before));
        proxy.cut();
        assert!(!echo(&mut before), "cut off");
        let mut during = TcpStream::connect(proxy.addr()).unwrap();
        assert!(!echo(&mut during), "refused while down");
        proxy.restore();
        let mut after = TcpStream::connect(proxy.addr()).unwrap();
        assert!(echo(&mut after));
    }
}
