//! The only place in the WebRTC layer that touches a socket or reads the clock: a tokio task
//! that owns one UDP socket and one sans-IO endpoint (a [`Room`] or a [`Client`]), feeds it
//! datagrams and timeouts, sends what it transmits, and forwards its events on a channel.
//! Callers change the endpoint with [`DriverHandle::call`], which runs inside the task.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::client::{Client, ClientEvent};
use crate::room::{Datagram, Room, RoomEvent};

/// Largest datagram read (above any WebRTC packet on a normal path).
const MAX_DATAGRAM: usize = 2048;
/// The shortest sleep between two timeouts.
const MIN_WAKEUP: Duration = Duration::from_millis(1);
/// How long the task sleeps when the endpoint has nothing scheduled.
const IDLE_WAKEUP: Duration = Duration::from_millis(500);

/// A sans-IO state machine the driver can run.
pub trait Endpoint: Send + 'static {
    /// What it reports.
    type Event: Send + 'static;
    /// A datagram arrived.
    fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]);
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Datagram>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When to call `handle_timeout` next.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl Endpoint for Room {
    type Event = RoomEvent;
    fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        Room::handle_receive(self, now, source, contents)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Room::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        Room::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<RoomEvent> {
        Room::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Room::poll_timeout(self)
    }
}

impl Endpoint for Client {
    type Event = ClientEvent;
    fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        Client::handle_receive(self, now, source, contents)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Client::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        Client::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<ClientEvent> {
        Client::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Client::poll_timeout(self)
    }
}

type Command<E> = Box<dyn FnOnce(&mut E, Instant) + Send>;

/// The driver task ended (its socket failed, or it was shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the media driver has stopped")]
pub struct DriverStopped;

/// Talks to a running driver; dropping every handle stops it.
pub struct DriverHandle<E: Endpoint> {
    commands: mpsc::UnboundedSender<Command<E>>,
    local_addr: SocketAddr,
}

impl<E: Endpoint> Clone for DriverHandle<E> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            local_addr: self.local_addr,
        }
    }
}

impl<E: Endpoint> DriverHandle<E> {
    /// The socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs `f` on the endpoint inside the driver task, with the current time.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut E, Instant) -> R + Send + 'static,
    ) -> Result<R, DriverStopped> {
        let (reply, answer) = oneshot::channel();
        let command: Command<E> = Box::new(move |endpoint, now| {
            let _ = reply.send(f(endpoint, now));
        });
        self.commands.send(command).map_err(|_| DriverStopped)?;
        answer.await.map_err(|_| DriverStopped)
    }
}

/// Starts driving `endpoint` on `socket`; returns a handle and the endpoint's events.
pub fn spawn<E: Endpoint>(
    socket: UdpSocket,
    endpoint: E,
) -> std::io::Result<(DriverHandle<E>, mpsc::UnboundedReceiver<E::Event>)> {
    let local_addr = socket.local_addr()?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (events, event_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(socket, endpoint, command_rx, events));
    Ok((
        DriverHandle {
            commands,
            local_addr,
        },
        event_rx,
    ))
}

async fn run<E: Endpoint>(
    socket: UdpSocket,
    mut endpoint: E,
    mut commands: mpsc::UnboundedReceiver<Command<E>>,
    events: mpsc::UnboundedSender<E::Event>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some(datagram) = endpoint.poll_transmit() {
            if let Err(e) = socket
                .send_to(&datagram.contents, datagram.destination)
                .await
            {
                tracing::debug!(error = %e, to = %datagram.destination, "send failed");
            }
        }
        while let Some(event) = endpoint.poll_event() {
            let _ = events.send(event);
        }
        // Never a deadline in the past: an endpoint that does not move it must not spin the loop.
        let now = Instant::now();
        let deadline = endpoint
            .poll_timeout()
            .unwrap_or(now + IDLE_WAKEUP)
            .max(now + MIN_WAKEUP);
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => endpoint.handle_receive(Instant::now(), source, &buf[..n]),
                // ICMP errors (a peer's port closed) surface here on Linux; they are not fatal.
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            },
            () = tokio::time::sleep_until(deadline.into()) => endpoint.handle_timeout(Instant::now()),
            command = commands.recv() => match command {
                Some(command) => command(&mut endpoint, Instant::now()),
                None => return,
            },
        }
    }
}
