//! The entry-point protocol between a recorder and the server, over one WebSocket opened to
//! `{recordingEntryPointBaseUrl}/recording/entry/{token}` (the token is single-use; a recorder
//! key, when configured, goes in the handshake's `Authorization` header).
//!
//! Control messages are JSON text frames, tagged by `type`. Media travels as binary frames, each
//! one block of one file (an init segment, a fragment, or the final index), numbered per file
//! from 0; the server acknowledges a block once it is durable. The conversation:
//!
//! ```text
//! recorder                                   server
//!    ── hello {protocol} ─────────────────────►
//!    ◄──────────── welcome {recordingId, publications}
//!    ── subscribe {publicationId, offer} ─────►           (one per publication)
//!    ◄──────────── subscribed {publicationId, answer}
//!    ── ready ────────────────────────────────►           (subscribed to all there were)
//!    ◄──────────── publicationAdded / publicationEnded    (any time)
//!    ── fileStarted {file, publicationId} ────►
//!    ══ block {file, seq, bytes} ═════════════►           (binary)
//!    ◄──────────── ack {file, seq}
//!    ◄──────────── stop {reason}
//!    ── done {files} ─────────────────────────►           (after the last ack)
//! ```
//!
//! Everything a recorder sends is untrusted: [`decode_from_recorder`] refuses unknown message
//! types and fields, oversized frames and malformed block headers, naming what was wrong.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest text frame accepted (SDP offers are a few kilobytes).
pub const MAX_TEXT_FRAME: usize = 64 * 1024;
/// Largest block accepted: far above a 2-second fragment of any sane bitrate.
pub const MAX_BLOCK: usize = 64 * 1024 * 1024;
/// Binary frame header: magic `CRB1`, file (u32), sequence (u64), all big-endian.
pub const BLOCK_HEADER_LEN: usize = 16;
const BLOCK_MAGIC: &[u8; 4] = b"CRB1";

/// A TURN relay and the (time-limited) credentials to use it, as WebRTC names them
/// (`RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TurnRelay {
    /// `turn:HOST:PORT?transport=udp`.
    pub urls: Vec<String>,
    /// The user name.
    pub username: String,
    /// The password.
    pub credential: String,
}

/// How a composed recording looks (SPEC §2's `recordingResolution`, `recordingFrameRate`,
/// `recordingVideoBitrate`; `AUDIO` recordings have no picture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Composition {
    /// Picture width (none: sound only).
    pub width: Option<u32>,
    /// Picture height.
    pub height: Option<u32>,
    /// Pictures per second.
    pub fps: u32,
    /// Video bits per second.
    pub video_bitrate: u32,
    /// Mixed sound bits per second.
    pub audio_bitrate: u32,
}

/// A publication the recorder should receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicationInfo {
    /// Who publishes it, by name (written under its tile in a composed recording).
    #[serde(default)]
    pub participant_name: String,
    /// The publication.
    pub publication_id: String,
    /// The call or collaboration layer it belongs to.
    pub interaction_id: String,
    /// `CALL` or `SCREEN_SHARING`.
    pub interaction_type: String,
    /// Who publishes it.
    pub participant_id: String,
    /// It carries audio.
    pub audio: bool,
    /// It carries video.
    pub video: bool,
    /// When it started (Unix milliseconds).
    pub started_at_ms: i64,
}

/// A file the recorder finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSummary {
    /// The file's number.
    pub file: u32,
    /// Blocks sent (init, fragments and index).
    pub blocks: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// What a recorder says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum FromRecorder {
    /// First message: the protocol version it speaks.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// A WHEP-style subscription to one publication.
    Subscribe {
        /// Which.
        publication_id: String,
        /// SDP offer (recvonly).
        offer: String,
    },
    /// Subscribed to every publication of `welcome` (SPEC §4 "ready"). An empty struct, not a
    /// unit variant, so unknown fields are refused here too.
    Ready {},
    /// A new file begins (raw mode: one per publication).
    FileStarted {
        /// Its number, unique within the recording.
        file: u32,
        /// The publication it records (raw mode); none for the composed file.
        #[serde(default)]
        publication_id: Option<String>,
    },
    /// All files are finished and acknowledged.
    Done {
        /// What was sent.
        files: Vec<FileSummary>,
    },
    /// The recorder cannot go on.
    Failed {
        /// Why, for the logs.
        reason: String,
    },
    /// One block of a file (a binary frame on the wire).
    #[serde(skip)]
    Block {
        /// Which file.
        file: u32,
        /// Its number within the file, from 0.
        seq: u64,
        /// `ftyp`+`moov`, `moof`+`mdat`, or `mfra`.
        bytes: Vec<u8>,
    },
}

/// What the server says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum FromServer {
    /// The entry point was valid: what to record.
    Welcome {
        /// The recording.
        recording_id: String,
        /// The conversation.
        conversation_id: String,
        /// `AUDIO` or `AUDIO_VIDEO`.
        recording_type: String,
        /// Publications to subscribe to now.
        publications: Vec<PublicationInfo>,
        /// Compose one file of everything (SPEC §6 `COMPOSED`); none: one file per publication.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        composition: Option<Composition>,
        /// Reach the server's media only through this TURN relay; none: directly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<TurnRelay>,
    },
    /// The answer to a `subscribe`.
    Subscribed {
        /// Which.
        publication_id: String,
        /// SDP answer.
        answer: String,
    },
    /// A publication began; subscribe to it.
    PublicationAdded {
        /// It.
        publication: PublicationInfo,
    },
    /// A publication ended; finish its file.
    PublicationEnded {
        /// Which.
        publication_id: String,
    },
    /// A block is durable.
    Ack {
        /// Which file.
        file: u32,
        /// Which block.
        seq: u64,
    },
    /// Finish every file (write its index) and say `done`.
    Stop {
        /// Why (`NORMAL`, or an end reason).
        reason: String,
    },
    /// Something the recorder sent was refused; the connection closes after it.
    Error {
        /// Stable code.
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// One WebSocket frame's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// Why a frame from a recorder was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A text frame over [`MAX_TEXT_FRAME`].
    #[error("text frame of {len} bytes is over the {MAX_TEXT_FRAME}-byte limit")]
    TextTooLarge {
        /// Its length.
        len: usize,
    },
    /// A binary frame over the block limit.
    #[error("block of {len} bytes is over the {MAX_BLOCK}-byte limit")]
    BlockTooLarge {
        /// Its length.
        len: usize,
    },
    /// Not a valid message.
    #[error("invalid message: {0}")]
    BadMessage(String),
    /// A binary frame without a proper block header.
    #[error("invalid block header: {0}")]
    BadBlockHeader(&'static str),
}

impl FromRecorder {
    /// The frame that carries this message.
    pub fn encode(&self) -> Frame {
        match self {
            FromRecorder::Block { file, seq, bytes } => {
                let mut out = Vec::with_capacity(BLOCK_HEADER_LEN + bytes.len());
                out.extend_from_slice(BLOCK_MAGIC);
                out.extend_from_slice(&file.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(bytes);
                Frame::Binary(out)
            }
            other => {
                Frame::Text(serde_json::to_string(other).expect("bug: protocol messages serialize"))
            }
        }
    }
}

impl FromServer {
    /// The frame that carries this message.
    pub fn encode(&self) -> Frame {
        Frame::Text(serde_json::to_string(self).expect("bug: protocol messages serialize"))
    }

    /// Reads a frame from the server (trusted, but checked all the same).
    pub fn decode(frame: &Frame) -> Result<Self, ProtocolError> {
        match frame {
            Frame::Text(text) => {
                serde_json::from_str(text).map_err(|e| ProtocolError::BadMessage(e.to_string()))
            }
            Frame::Binary(_) => Err(ProtocolError::BadMessage(
                "the server sends no binary frames".into(),
            )),
        }
    }
}

/// Reads a frame from a recorder, refusing anything not exactly of the protocol.
pub fn decode_from_recorder(frame: &Frame) -> Result<FromRecorder, ProtocolError> {
    match frame {
        Frame::Text(text) => {
            if text.len() > MAX_TEXT_FRAME {
                return Err(ProtocolError::TextTooLarge { len: text.len() });
            }
            serde_json::from_str(text).map_err(|e| ProtocolError::BadMessage(e.to_string()))
        }
        Frame::Binary(data) => {
            if data.len() > BLOCK_HEADER_LEN + MAX_BLOCK {
                return Err(ProtocolError::BlockTooLarge {
                    len: data.len() - BLOCK_HEADER_LEN,
                });
            }
            let header =
                data.first_chunk::<BLOCK_HEADER_LEN>()
                    .ok_or(ProtocolError::BadBlockHeader(
                        "shorter than its 16-byte header",
                    ))?;
            if &header[..4] != BLOCK_MAGIC {
                return Err(ProtocolError::BadBlockHeader("does not start with CRB1"));
            }
            let file = u32::from_be_bytes(header[4..8].try_into().expect("bug: 4 bytes"));
            let seq = u64::from_be_bytes(header[8..16].try_into().expect("bug: 8 bytes"));
            let bytes = data[BLOCK_HEADER_LEN..].to_vec();
            if bytes.is_empty() {
                return Err(ProtocolError::BadBlockHeader("a block without bytes"));
            }
            Ok(FromRecorder::Block { file, seq, bytes })
        }
    }
}

/// The fuzz harness (`fuzz/fuzz_targets/entry_protocol.rs`, replayed by the tests): the first
/// byte picks a text or binary frame; whatever decodes must encode back to the same frame.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let frame = if kind & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(text) => Frame::Text(text.to_owned()),
            Err(_) => return,
        }
    } else {
        Frame::Binary(rest.to_vec())
    };
    if let Ok(message) = decode_from_recorder(&frame) {
        let again = decode_from_recorder(&message.encode()).expect("an encoded message decodes");
        assert_eq!(again, message, "decode ∘ encode is the identity");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip_and_look_as_documented() {
        let hello = FromRecorder::Hello {
            protocol: PROTOCOL_VERSION,
        };
        assert_eq!(
            hello.encode(),
            Frame::Text(r#"{"type":"hello","protocol":1}"#.into())
        );
        let started = FromRecorder::FileStarted {
            file: 2,
            publication_id: Some("pub-1".into()),
        };
        assert_eq!(
            started.encode(),
            Frame::Text(r#"{"type":"fileStarted","file":2,"publicationId":"pub-1"}"#.into())
        );
        for message in [
            hello,
            started,
            FromRecorder::Ready {},
            FromRecorder::Subscribe {
                publication_id: "p".into(),
                offer: "v=0".into(),
            },
            FromRecorder::Done {
                files: vec![FileSummary {
                    file: 0,
                    blocks: 5,
                    bytes: 1234,
                }],
            },
            FromRecorder::Failed {
                reason: "camera gone".into(),
            },
            FromRecorder::Block {
                file: 7,
                seq: 1 << 40,
                bytes: vec![1, 2, 3],
            },
        ] {
            assert_eq!(decode_from_recorder(&message.encode()), Ok(message));
        }
        let ack = FromServer::Ack { file: 1, seq: 9 };
        assert_eq!(
            ack.encode(),
            Frame::Text(r#"{"type":"ack","file":1,"seq":9}"#.into())
        );
        assert_eq!(FromServer::decode(&ack.encode()), Ok(ack));
    }

    #[test]
    fn anything_off_protocol_is_refused_with_a_reason() {
        let unknown_field = Frame::Text(r#"{"type":"ready","extra":1}"#.into());
        assert!(
            matches!(decode_from_recorder(&unknown_field), Err(ProtocolError::BadMessage(m)) if m.contains("extra"))
        );
        let unknown_type = Frame::Text(r#"{"type":"launchMissiles"}"#.into());
        assert!(
            matches!(decode_from_recorder(&unknown_type), Err(ProtocolError::BadMessage(m)) if m.contains("launchMissiles"))
        );
        let block_as_json = Frame::Text(r#"{"type":"block","file":1,"seq":1,"bytes":[]}"#.into());
        assert!(
            decode_from_recorder(&block_as_json).is_err(),
            "blocks travel only as binary frames"
        );
        let huge = Frame::Text("x".repeat(MAX_TEXT_FRAME + 1));
        assert_eq!(
            decode_from_recorder(&huge),
            Err(ProtocolError::TextTooLarge {
                len: MAX_TEXT_FRAME + 1
            })
        );
        assert_eq!(
            decode_from_recorder(&Frame::Binary(b"CRB1".to_vec())),
            Err(ProtocolError::BadBlockHeader(
                "shorter than its 16-byte header"
            ))
        );
        let mut wrong_magic = FromRecorder::Block {
            file: 0,
            seq: 0,
            bytes: vec![0],
        }
        .encode();
        if let Frame::Binary(b) = &mut wrong_magic {
            b[0] = b'X';
        }
        assert_eq!(
            decode_from_recorder(&wrong_magic),
            Err(ProtocolError::BadBlockHeader("does not start with CRB1"))
        );
        let empty = Frame::Binary([&BLOCK_MAGIC[..], &[0; 12]].concat());
        assert_eq!(
            decode_from_recorder(&empty),
            Err(ProtocolError::BadBlockHeader("a block without bytes"))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(text in ".{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_from_recorder(&Frame::Text(text));
            let _ = decode_from_recorder(&Frame::Binary(bytes));
        }
    }
}
