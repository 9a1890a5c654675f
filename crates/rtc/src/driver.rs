//! The only place in the WebRTC layer that touches a socket or reads the clock: a tokio task
//! that owns the UDP sockets of one sans-IO endpoint (a [`Room`], a [`Client`], a recorder),
//! feeds it datagrams and timeouts, sends what it transmits from the socket it names, binds
//! further sockets when the endpoint asks (one per WebRTC session of a recorder: sessions that
//! share an address pair cannot be told apart), and forwards its events on a channel. Callers
//! change the endpoint with [`DriverHandle::call`], which runs inside the task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::Datagram;
use crate::client::{Client, ClientEvent};
use crate::room::{Room, RoomEvent};

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
    /// A datagram arrived at the socket bound to `local`.
    fn handle_receive(
        &mut self,
        now: Instant,
        local: SocketAddr,
        source: SocketAddr,
        contents: &[u8],
    );
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Datagram>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When to call `handle_timeout` next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// A new socket wanted, named by a request number (none by default).
    fn poll_socket_request(&mut self) -> Option<u64> {
        None
    }
    /// The socket for request `request` is bound at `local`.
    fn handle_socket(&mut self, _now: Instant, _request: u64, _local: SocketAddr) {}
}

impl Endpoint for Room {
    type Event = RoomEvent;
    fn handle_receive(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        source: SocketAddr,
        contents: &[u8],
    ) {
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
    fn handle_receive(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        source: SocketAddr,
        contents: &[u8],
    ) {
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
    let (arrived, mut received) = mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>(1024);
    let mut sockets = Vec::new();
    // The reader tasks end with the driver.
    let mut readers = Readers(Vec::new());
    match listen(socket, arrived.clone()) {
        Ok((socket, reader)) => {
            sockets.push(socket);
            readers.0.push(reader);
        }
        Err(e) => {
            tracing::warn!(error = %e, "the media socket has no address");
            return;
        }
    }
    loop {
        while let Some(request) = endpoint.poll_socket_request() {
            let ip = sockets[0].local_addr().map(|a| a.ip());
            let bound = match ip {
                Ok(ip) => UdpSocket::bind((ip, 0))
                    .await
                    .and_then(|s| listen(s, arrived.clone())),
                Err(e) => Err(e),
            };
            match bound {
                Ok((socket, reader)) => {
                    let local = socket
                        .local_addr()
                        .expect("bug: listen checked the address");
                    sockets.push(socket);
                    readers.0.push(reader);
                    endpoint.handle_socket(Instant::now(), request, local);
                }
                Err(e) => tracing::warn!(error = %e, "cannot bind another media socket"),
            }
        }
        while let Some(datagram) = endpoint.poll_transmit() {
            let socket = sockets
                .iter()
                .find(|s| s.local_addr().is_ok_and(|a| a == datagram.source))
                .unwrap_or(&sockets[0]);
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
            Some((local, source, contents)) = received.recv() => {
                endpoint.handle_receive(Instant::now(), local, source, &contents);
            }
            () = tokio::time::sleep_until(deadline.into()) => endpoint.handle_timeout(Instant::now()),
            command = commands.recv() => match command {
                Some(command) => {
                    // What arrived before the command is handled before it: a busy endpoint
                    // told to stop must not cut off media it had already received.
                    for _ in 0..received.len() {
                        let Ok((local, source, contents)) = received.try_recv() else {
                            break;
                        };
                        endpoint.handle_receive(Instant::now(), local, source, &contents);
                    }
                    command(&mut endpoint, Instant::now())
                }
                None => return,
            },
        }
    }
}

/// The receive buffer asked of the kernel for each media socket. The default (about 200 KiB on
/// Linux) overflows when one SFU port takes dozens of sessions' bursts at once: at 30 recorded
/// calls on one machine the kernel dropped thousands of datagrams (`RcvbufErrors`). The kernel
/// caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Reads `socket` in a task of its own, passing (local, source, bytes) on.
fn listen(
    socket: UdpSocket,
    arrived: mpsc::Sender<(SocketAddr, SocketAddr, Vec<u8>)>,
) -> std::io::Result<(Arc<UdpSocket>, tokio::task::JoinHandle<()>)> {
    let local = socket.local_addr()?;
    let buffer = socket2::SockRef::from(&socket);
    if let Err(e) = buffer.set_recv_buffer_size(RECEIVE_BUFFER) {
        tracing::warn!(error = %e, "cannot enlarge a media socket's receive buffer");
    }
    // Linux reports twice what it grants (its bookkeeping); below the ask means rmem_max. Said
    // once per process: every socket would say the same.
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Ok(granted) = buffer.recv_buffer_size()
        && granted < RECEIVE_BUFFER
        && !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::info!(
            granted,
            asked = RECEIVE_BUFFER,
            "the kernel caps media socket receive buffers (raise net.core.rmem_max for many calls on one port)"
        );
    }
    let socket = Arc::new(socket);
    let reader = Arc::clone(&socket);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match reader.recv_from(&mut buf).await {
                Ok((n, source)) => {
                    if arrived
                        .send((local, source, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // ICMP errors (a peer's port closed) surface here on Linux; they are not fatal.
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            }
        }
    });
    Ok((socket, task))
}

/// Aborts the reader tasks when dropped.
struct Readers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notes what it handled, in order; each datagram takes it 5 ms (a recorder busy composing).
    #[derive(Default)]
    struct Busy {
        handled: Vec<String>,
    }

    impl Endpoint for Busy {
        type Event = ();
        fn handle_receive(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, contents: &[u8]) {
            std::thread::sleep(Duration::from_millis(5));
            self.handled
                .push(String::from_utf8_lossy(contents).into_owned());
        }
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_transmit(&mut self) -> Option<Datagram> {
            None
        }
        fn poll_event(&mut self) -> Option<()> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn datagrams_that_arrived_before_a_command_are_handled_before_it() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        let address = socket.local_addr().expect("an address");
        let (driver, _events) = spawn(socket, Busy::default()).expect("a driver");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        for n in 0..100 {
            sender
                .send_to(format!("d{n}").as_bytes(), address)
                .await
                .expect("sent");
        }
        // The reader has queued them long before the endpoint, at 5 ms each, has handled them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        driver
            .call(|busy, _| busy.handled.push("stop".into()))
            .await
            .expect("the driver runs");
        let handled = driver
            .call(|busy, _| busy.handled.clone())
            .await
            .expect("the driver runs");
        let expected: Vec<String> = (0..100)
            .map(|n| format!("d{n}"))
            .chain(["stop".into()])
            .collect();
        assert_eq!(handled, expected);
    }
}
