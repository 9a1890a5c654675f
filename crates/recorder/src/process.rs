//! The recorder process's I/O: it connects to its entry point over WebSocket, runs a
//! [`RecorderSession`] on UDP sockets (through the WebRTC driver), and carries messages between
//! the two until the session is done or fails.

use std::net::SocketAddr;
use std::time::Duration;

use convrec_core::recorder_protocol::{
    BLOCK_HEADER_LEN, Frame, FromRecorder, FromServer, MAX_BLOCK, TurnRelay,
};
use convrec_rtc::driver;
use convrec_rtc::relay::{Relayed, RelayedEvent};
use convrec_rtc::turn::TurnServer;
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::session::{Phase, RecorderSession};

/// Why a recorder stopped without finishing.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The entry point is not a usable URL.
    #[error("the entry point is not an http(s) URL with a host: {0}")]
    EntryPoint(String),
    /// The entry point could not be reached or refused us.
    #[error("cannot join through the entry point: {0}")]
    Connect(String),
    /// A local socket could not be made.
    #[error("cannot open a media socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The connection to the server broke before the recording was done.
    #[error("the connection to the server was lost: {0}")]
    Lost(String),
    /// The server sent something outside the protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The session failed (the server refused us, or WebRTC failed).
    #[error("the recording failed: {0}")]
    Failed(String),
}

/// Joins the recording behind `entry_point` (`http(s)://host:port/recording/entry/TOKEN`),
/// presenting `recorder_key` (the server's `RECORDER` API key) if it requires one, and records
/// until the server says stop and every block is acknowledged.
pub async fn run(entry_point: &str, recorder_key: Option<&str>) -> Result<(), RecorderError> {
    let mut request = websocket_url(entry_point)?
        .into_client_request()
        .map_err(|e| RecorderError::EntryPoint(e.to_string()))?;
    if let Some(key) = recorder_key {
        let bearer = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            RecorderError::EntryPoint(
                "the recorder key holds characters a header cannot carry".into(),
            )
        })?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
    }
    let local_ip = convrec_rtc::net::local_ip_towards(entry_point)
        .await
        .map_err(|e| RecorderError::EntryPoint(e.to_string()))?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(BLOCK_HEADER_LEN + MAX_BLOCK))
        .max_frame_size(Some(BLOCK_HEADER_LEN + MAX_BLOCK));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| RecorderError::Connect(e.to_string()))?;
    let (mut outgoing, mut incoming) = socket.split();
    let udp = tokio::net::UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?;
    // Relayed once the server says so (in its welcome), before any session socket is made.
    let relayed = Relayed::new(RecorderSession::new(), None, Vec::new());
    let (session, mut messages) = driver::spawn(udp, relayed)?;
    loop {
        tokio::select! {
            message = messages.recv() => {
                let message = match message {
                    Some(RelayedEvent::Inner(message)) => message,
                    Some(RelayedEvent::RelayFailed(reason)) => FromRecorder::Failed {
                        reason: format!("the TURN relay failed: {reason}"),
                    },
                    None => return Err(RecorderError::Failed("the media driver stopped".into())),
                };
                let done = matches!(message, FromRecorder::Done { .. });
                let failed = match &message {
                    FromRecorder::Failed { reason } => Some(reason.clone()),
                    _ => None,
                };
                let frame = match message.encode() {
                    Frame::Text(text) => Message::Text(text.into()),
                    Frame::Binary(bytes) => Message::Binary(bytes.into()),
                };
                send_unless_failed(&mut outgoing, frame, &session).await?;
                if done {
                    let _ = outgoing.close().await;
                    // The relays go back before the process ends.
                    let _ = session.call(|r, now| r.close_relays(now)).await;
                    let _ = session.call(|_, _| ()).await;
                    return Ok(());
                }
                if let Some(reason) = failed {
                    let _ = outgoing.close().await;
                    return Err(RecorderError::Failed(reason));
                }
            }
            received = incoming.next() => {
                let frame = match received {
                    Some(Ok(Message::Text(text))) => Frame::Text(text.to_string()),
                    Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => {
                        return Err(RecorderError::Lost("the server closed the connection".into()));
                    }
                    Some(Err(e)) => return Err(RecorderError::Lost(e.to_string())),
                };
                let message = FromServer::decode(&frame)
                    .map_err(|e| RecorderError::Protocol(e.to_string()))?;
                if let FromServer::Error { code, message } = &message {
                    return Err(RecorderError::Failed(format!("{code}: {message}")));
                }
                let relay = match &message {
                    FromServer::Welcome { relay: Some(relay), .. } => Some(turn_server(relay).await?),
                    _ => None,
                };
                let phase = session
                    .call(move |r, now| {
                        if let Some(server) = relay {
                            r.relay_through(server);
                            r.inner().set_relayed();
                        }
                        r.inner().handle_server(now, message);
                        r.inner().phase()
                    })
                    .await
                    .map_err(|e| RecorderError::Failed(e.to_string()))?;
                if phase == Phase::Failed {
                    // Its `failed` message is on the way out through `messages`.
                    continue;
                }
            }
        }
    }
}

/// Sends `frame` to the server. A server that stops reading (its spool's disk stalled) would
/// hold the send, and the recorder with it, while blocks pile up behind it: every second the
/// session is asked whether it failed meanwhile (past its unacknowledged limit), and if so the
/// recorder gives up at once with the session's reason. Its `failed` message cannot pass a
/// socket the server does not read; the server treats the dropped connection as it treats
/// `failed` (an attempt that crashed), and only the reason stays in the recorder's own log.
async fn send_unless_failed<S>(
    outgoing: &mut S,
    frame: Message,
    session: &driver::DriverHandle<Relayed<RecorderSession>>,
) -> Result<(), RecorderError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let sending = outgoing.send(frame);
    tokio::pin!(sending);
    loop {
        tokio::select! {
            sent = &mut sending => return sent.map_err(|e| RecorderError::Lost(e.to_string())),
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                let failure = session
                    .call(|r, _| r.inner().failure().map(str::to_owned))
                    .await
                    .map_err(|e| RecorderError::Failed(e.to_string()))?;
                if let Some(reason) = failure {
                    return Err(RecorderError::Failed(reason));
                }
            }
        }
    }
}

/// The TURN server the server told us to use.
async fn turn_server(relay: &TurnRelay) -> Result<TurnServer, RecorderError> {
    TurnServer::resolve(&relay.urls, &relay.username, &relay.credential)
        .await
        .map_err(|e| RecorderError::Failed(format!("cannot use the TURN relay: {e}")))
}

/// `http(s)://…` → `ws(s)://…`.
fn websocket_url(entry_point: &str) -> Result<String, RecorderError> {
    if let Some(rest) = entry_point.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = entry_point.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else {
        Err(RecorderError::EntryPoint(
            "it must start with http:// or https://".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_become_websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:8080/recording/entry/abc").ok(),
            Some("ws://127.0.0.1:8080/recording/entry/abc".to_owned())
        );
        assert_eq!(
            websocket_url("https://rec.example/recording/entry/abc").ok(),
            Some("wss://rec.example/recording/entry/abc".to_owned())
        );
        assert!(websocket_url("ftp://x/y").is_err());
    }
}
