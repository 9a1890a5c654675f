//! An endpoint forced through a TURN relay: [`Relayed`] wraps any [`Endpoint`] (a participant's
//! [`Client`](crate::client::Client), a recorder) so that each of its sockets is a TURN
//! [`Allocation`] and its local address the relayed one. What it sends from a relayed address
//! goes out as `Send` indications to the TURN server; what the server's `Data` indications carry
//! comes in as if received at the relayed address. Nothing else reaches it: a datagram from
//! anywhere but the TURN server is dropped. Without a TURN server it passes everything through.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::Datagram;
use crate::driver::Endpoint;
use crate::turn::{Allocation, AllocationEvent, TurnServer};

/// What a relayed endpoint reports: its inner endpoint's events, and failures of the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayedEvent<T> {
    /// The inner endpoint's event.
    Inner(T),
    /// An allocation failed: the sessions on it cannot carry media.
    RelayFailed(String),
}

/// An endpoint whose sockets are TURN allocations. See the [module docs](self).
pub struct Relayed<E> {
    inner: E,
    server: Option<TurnServer>,
    allocations: Vec<Allocation>,
    /// Socket requests of the inner endpoint waiting for their allocation: (request, local).
    waiting: Vec<(u64, SocketAddr)>,
    transmits: VecDeque<Datagram>,
    failures: VecDeque<String>,
    now: Instant,
}

impl<E: Endpoint> Relayed<E> {
    /// `inner`, relayed through `server` when there is one. `allocations` are those already
    /// made for its sockets (see [`allocate`]).
    pub fn new(inner: E, server: Option<TurnServer>, allocations: Vec<Allocation>) -> Self {
        Self {
            inner,
            server,
            allocations,
            waiting: Vec::new(),
            transmits: VecDeque::new(),
            failures: VecDeque::new(),
            now: Instant::now(),
        }
    }

    /// The wrapped endpoint.
    pub fn inner(&mut self) -> &mut E {
        &mut self.inner
    }

    /// Whether it relays.
    pub fn is_relayed(&self) -> bool {
        self.server.is_some()
    }

    /// Gives every allocation back to the relay (the session is over). The datagrams go out
    /// before the driver runs its next command.
    pub fn close_relays(&mut self, now: Instant) {
        for allocation in &mut self.allocations {
            allocation.close(now);
        }
        self.collect(now);
    }

    /// From now on, relays every socket the inner endpoint asks for through `server` (for an
    /// endpoint that learns of its relay after it started, before it asks for a socket).
    pub fn relay_through(&mut self, server: TurnServer) {
        self.server = Some(server);
    }

    fn collect(&mut self, now: Instant) {
        for allocation in &mut self.allocations {
            while let Some(d) = allocation.poll_transmit() {
                self.transmits.push_back(d);
            }
            while let Some(event) = allocation.poll_event() {
                match event {
                    AllocationEvent::Allocated(relay) => {
                        let local = allocation.local();
                        if let Some(i) = self.waiting.iter().position(|(_, l)| *l == local) {
                            let (request, _) = self.waiting.remove(i);
                            self.inner.handle_socket(now, request, relay);
                        }
                    }
                    AllocationEvent::Failed(reason) => self.failures.push_back(reason),
                }
            }
        }
    }
}

impl<E: Endpoint> Endpoint for Relayed<E> {
    type Event = RelayedEvent<E::Event>;

    fn handle_receive(
        &mut self,
        now: Instant,
        local: SocketAddr,
        source: SocketAddr,
        contents: &[u8],
    ) {
        self.now = now;
        if self.server.is_none() {
            self.inner.handle_receive(now, local, source, contents);
            return;
        }
        let Some(allocation) = self
            .allocations
            .iter_mut()
            .find(|a| a.local() == local && a.server() == source)
        else {
            return;
        };
        let relayed = allocation.handle_receive(now, contents);
        let relay = allocation.relay();
        if let (Some((peer, data)), Some(relay)) = (relayed, relay) {
            self.inner.handle_receive(now, relay, peer, &data);
        }
        self.collect(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        for allocation in &mut self.allocations {
            allocation.handle_timeout(now);
        }
        self.inner.handle_timeout(now);
        self.collect(now);
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        loop {
            if let Some(d) = self.transmits.pop_front() {
                return Some(d);
            }
            let datagram = self.inner.poll_transmit()?;
            if self.server.is_none() {
                return Some(datagram);
            }
            // Nothing goes out unrelayed: a datagram from an address that is not relayed is
            // dropped.
            let now = self.now;
            if let Some(allocation) = self
                .allocations
                .iter_mut()
                .find(|a| a.relay() == Some(datagram.source))
            {
                allocation.send(now, datagram.destination, &datagram.contents);
            }
            self.collect(now);
        }
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        if let Some(reason) = self.failures.pop_front() {
            return Some(RelayedEvent::RelayFailed(reason));
        }
        self.inner.poll_event().map(RelayedEvent::Inner)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.allocations
            .iter()
            .filter_map(Allocation::poll_timeout)
            .chain(self.inner.poll_timeout())
            .min()
    }

    fn poll_socket_request(&mut self) -> Option<u64> {
        self.inner.poll_socket_request()
    }

    fn handle_socket(&mut self, now: Instant, request: u64, local: SocketAddr) {
        self.now = now;
        match &self.server {
            None => self.inner.handle_socket(now, request, local),
            Some(server) => {
                self.allocations
                    .push(Allocation::new(now, local, server.clone()));
                self.waiting.push((request, local));
                self.collect(now);
            }
        }
    }
}

/// Makes an allocation on `server` from `socket` before a session is offered (its offer must
/// name the relayed address): returns it with its relayed address.
pub async fn allocate(
    socket: &tokio::net::UdpSocket,
    server: &TurnServer,
) -> std::io::Result<(Allocation, SocketAddr)> {
    let local = socket.local_addr()?;
    let mut allocation = Allocation::new(Instant::now(), local, server.clone());
    let mut buffer = vec![0u8; 2048];
    loop {
        while let Some(d) = allocation.poll_transmit() {
            socket.send_to(&d.contents, d.destination).await?;
        }
        match allocation.poll_event() {
            Some(AllocationEvent::Allocated(relay)) => return Ok((allocation, relay)),
            Some(AllocationEvent::Failed(reason)) => return Err(std::io::Error::other(reason)),
            None => {}
        }
        let Some(deadline) = allocation.poll_timeout() else {
            return Err(std::io::Error::other("the TURN allocation stopped"));
        };
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let (n, source) = received?;
                if source == server.addr {
                    allocation.handle_receive(Instant::now(), &buffer[..n]);
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => allocation.handle_timeout(Instant::now()),
        }
    }
}
