//! Opening a sealed file box by box: each chunk is checked before its block is given out, so a
//! file cut short or altered gives every block up to the damage and then says what is wrong.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use thiserror::Error;

use crate::format::{
    BOX_HEADER_LEN, CHUNK_BOX, HEADER_BOX, HEADER_FIXED_LEN, MAX_CHUNK, TAG_LEN, VERSION,
    chunk_aad, chunk_nonce, read_box_header, sha256,
};
use crate::keys::{OpeningKey, Scheme, hex};
use crate::sealer::ChunkKind;

/// Why a sealed file does not open (further).
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The file does not begin with a `cvrh` header.
    #[error("not a sealed recording: it does not begin with a convrec encryption header (cvrh)")]
    NotSealed,
    /// The structure is broken.
    #[error("malformed sealed file: {0}")]
    Malformed(String),
    /// A header of a later format.
    #[error("sealed with format version {0}; this convrec reads version 1")]
    UnsupportedVersion(u8),
    /// An unknown key-wrapping scheme.
    #[error("unknown key-wrapping scheme {0} (known: 1 X25519, 2 RSA-OAEP-256)")]
    UnknownScheme(u8),
    /// The file was sealed for another key.
    #[error("the file was sealed for key {file}, not for this key ({key})")]
    WrongKey {
        /// The key id in the file.
        file: String,
        /// The key id of the key given.
        key: String,
    },
    /// The data key does not unwrap though the key ids match.
    #[error("the data key does not unwrap with this key: the header was altered")]
    Unwrap,
    /// A chunk failed authentication.
    #[error(
        "chunk {chunk} failed authentication: the file was altered, or chunks were moved or taken from another file"
    )]
    Tampered {
        /// Its number (from 0).
        chunk: u64,
    },
    /// The file ends before its final chunk.
    #[error(
        "the file ends after {chunks} chunks without its final chunk: it was cut short (or the server that wrote it stopped abruptly)"
    )]
    Truncated {
        /// Whole chunks that opened.
        chunks: u64,
    },
    /// Bytes follow the final chunk.
    #[error("data follows the final chunk ({chunks} chunks)")]
    AfterEnd {
        /// Chunks before it.
        chunks: u64,
    },
}

/// Opens one sealed file. See the [crate docs](crate).
pub struct Opener<'k> {
    key: &'k OpeningKey,
    state: State,
    chunks: u64,
}

enum State {
    Header,
    Chunks {
        key: LessSafeKey,
        header_digest: [u8; 32],
    },
    Ended,
}

impl<'k> Opener<'k> {
    /// An opener for a file sealed for `key`'s public half.
    pub fn new(key: &'k OpeningKey) -> Self {
        Self {
            key,
            state: State::Header,
            chunks: 0,
        }
    }

    /// Takes the next box of the file; returns the block a chunk holds (none for the header
    /// and an end mark).
    pub fn handle_box(&mut self, kind: [u8; 4], body: &[u8]) -> Result<Option<Vec<u8>>, OpenError> {
        match &self.state {
            State::Header if kind == HEADER_BOX => {
                self.state = self.open_header(body)?;
                Ok(None)
            }
            State::Header => Err(OpenError::NotSealed),
            State::Ended => Err(OpenError::AfterEnd {
                chunks: self.chunks,
            }),
            State::Chunks { .. } if kind != CHUNK_BOX => Err(OpenError::Malformed(format!(
                "box '{}' where chunk {} belongs",
                String::from_utf8_lossy(&kind),
                self.chunks
            ))),
            State::Chunks { key, header_digest } => {
                let chunk = self.chunks;
                let (&kind_byte, sealed) = body
                    .split_first()
                    .ok_or_else(|| OpenError::Malformed(format!("chunk {chunk} is empty")))?;
                let kind = ChunkKind::from_byte(kind_byte).ok_or(OpenError::Tampered { chunk })?;
                if sealed.len() < TAG_LEN {
                    return Err(OpenError::Malformed(format!(
                        "chunk {chunk} is shorter than its tag"
                    )));
                }
                let mut in_out = sealed.to_vec();
                let block_len = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(chunk_nonce(chunk, kind.is_final())),
                        Aad::from(chunk_aad(header_digest, kind_byte)),
                        &mut in_out,
                    )
                    .map_err(|_| OpenError::Tampered { chunk })?
                    .len();
                in_out.truncate(block_len);
                self.chunks += 1;
                if kind.is_final() {
                    self.state = State::Ended;
                }
                Ok((kind != ChunkKind::EndMark).then_some(in_out))
            }
        }
    }

    /// The file ended: whole chunks opened, or why the file is incomplete.
    pub fn finish(&self) -> Result<u64, OpenError> {
        match self.state {
            State::Ended => Ok(self.chunks),
            State::Header => Err(OpenError::NotSealed),
            State::Chunks { .. } => Err(OpenError::Truncated {
                chunks: self.chunks,
            }),
        }
    }

    /// Chunks opened so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    fn open_header(&self, body: &[u8]) -> Result<State, OpenError> {
        if body.len() < HEADER_FIXED_LEN {
            return Err(OpenError::Malformed("the header is too short".into()));
        }
        if body[0] != VERSION {
            return Err(OpenError::UnsupportedVersion(body[0]));
        }
        let scheme = Scheme::from_byte(body[1]).ok_or(OpenError::UnknownScheme(body[1]))?;
        let key_id = &body[2..34];
        let wrapped_len = usize::from(u16::from_be_bytes([body[34], body[35]]));
        let wrapped = &body[HEADER_FIXED_LEN..];
        if wrapped.len() != wrapped_len {
            return Err(OpenError::Malformed(format!(
                "the header says the wrapped key has {wrapped_len} bytes; it has {}",
                wrapped.len()
            )));
        }
        // The key id tells a wrong key from an altered header; the unwrap alone decides (an
        // RSA key written in another but equal encoding has another id).
        let data_key = match self.key.unwrap_key(scheme, wrapped) {
            Some(data_key) => data_key,
            None if key_id != self.key.recipient().key_id() => {
                return Err(OpenError::WrongKey {
                    file: hex(key_id),
                    key: self.key.recipient().key_id_hex(),
                });
            }
            None => return Err(OpenError::Unwrap),
        };
        let key = UnboundKey::new(&AES_256_GCM, &data_key).map_err(|_| OpenError::Unwrap)?;
        Ok(State::Chunks {
            key: LessSafeKey::new(key),
            header_digest: sha256(body),
        })
    }
}

/// What [`open_stream`] got out of a sealed file.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// Chunks that opened (their blocks were written out).
    pub chunks: u64,
    /// Whether the whole file opened, or what stopped it.
    pub outcome: Result<(), OpenError>,
}

/// Opens a sealed file from `input`, writing the block of every chunk that opens to `output`:
/// the plain fMP4, or its prefix up to the damage when the file is cut short or altered.
/// `Err` only when reading or writing fails.
pub fn open_stream(
    key: &OpeningKey,
    mut input: impl std::io::Read,
    mut output: impl std::io::Write,
) -> std::io::Result<Opened> {
    let mut opener = Opener::new(key);
    let mut at = 0u64;
    let outcome = loop {
        let mut header = [0u8; BOX_HEADER_LEN];
        match read_full(&mut input, &mut header)? {
            0 => break opener.finish().map(|_| ()),
            BOX_HEADER_LEN => {}
            _ => break Err(cut_short(&opener, None)),
        }
        let Some((size, kind)) = read_box_header(header) else {
            break Err(OpenError::Malformed(format!(
                "a box size under 8 at byte {at}"
            )));
        };
        if size > MAX_CHUNK + BOX_HEADER_LEN as u64 {
            break Err(OpenError::Malformed(format!(
                "a box of {size} bytes at byte {at}, over the {MAX_CHUNK}-byte limit"
            )));
        }
        let mut body =
            vec![0u8; usize::try_from(size).expect("bug: under MAX_CHUNK") - BOX_HEADER_LEN];
        if read_full(&mut input, &mut body)? < body.len() {
            break Err(cut_short(&opener, Some(kind)));
        }
        match opener.handle_box(kind, &body) {
            Ok(Some(block)) => output.write_all(&block)?,
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        at += size;
    };
    output.flush()?;
    Ok(Opened {
        chunks: opener.chunks(),
        outcome,
    })
}

/// Opens a whole sealed file held in memory: the plaintext (up to any damage) and the outcome.
pub fn open_all(key: &OpeningKey, bytes: &[u8]) -> (Vec<u8>, Opened) {
    let mut plaintext = Vec::new();
    let opened = open_stream(key, bytes, &mut plaintext)
        .expect("bug: reading a slice and writing a Vec cannot fail");
    (plaintext, opened)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The error for a file that ends inside a box (of type `kind`, when its header was read).
fn cut_short(opener: &Opener<'_>, kind: Option<[u8; 4]>) -> OpenError {
    match opener.state {
        State::Header if kind != Some(HEADER_BOX) => OpenError::NotSealed,
        State::Header => OpenError::Truncated { chunks: 0 },
        State::Chunks { .. } => OpenError::Truncated {
            chunks: opener.chunks,
        },
        State::Ended => OpenError::AfterEnd {
            chunks: opener.chunks,
        },
    }
}
