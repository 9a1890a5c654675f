//! Sealing a file as it streams: one chunk per block, the header before the first.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use thiserror::Error;

use crate::format::{
    CHUNK_BOX, HEADER_BOX, HEADER_FIXED_LEN, TAG_LEN, VERSION, chunk_aad, chunk_nonce, sha256,
    write_box,
};
use crate::keys::{KeyError, RecipientKey};

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChunkKind {
    /// A block; more follow.
    Block = 0,
    /// The file's last block (its index).
    LastBlock = 1,
    /// No block: the file ends here (it has no index).
    EndMark = 2,
}

impl ChunkKind {
    /// The kind numbered `n` in a chunk.
    pub fn from_byte(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::Block),
            1 => Some(Self::LastBlock),
            2 => Some(Self::EndMark),
            _ => None,
        }
    }

    /// Whether the file ends with this chunk.
    pub fn is_final(self) -> bool {
        self != Self::Block
    }
}

/// Why a block could not be sealed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SealError {
    /// The key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The file already has its final chunk.
    #[error("the sealed file has already ended")]
    Ended,
    /// An end mark carries no block.
    #[error("an end mark carries no block")]
    EndMarkWithBlock,
}

/// Seals one file. See the [crate docs](crate).
pub struct Sealer {
    key: LessSafeKey,
    /// The `cvrh` box, written before the first chunk.
    header: Vec<u8>,
    header_digest: [u8; 32],
    next_chunk: u64,
    ended: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Sealer")
            .field("next_chunk", &self.next_chunk)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for a new file, with a fresh data key wrapped for `recipient`.
    pub fn new(recipient: &RecipientKey) -> Result<Self, SealError> {
        let mut data_key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut data_key).map_err(|_| KeyError::Crypto("random data key"))?;
        let wrapped = recipient.wrap(&data_key)?;
        let wrapped_len = u16::try_from(wrapped.len())
            .map_err(|_| KeyError::Crypto("wrapped key over 64 KiB"))?;
        let mut body = Vec::with_capacity(HEADER_FIXED_LEN + wrapped.len());
        body.push(VERSION);
        body.push(recipient.scheme() as u8);
        body.extend_from_slice(&recipient.key_id());
        body.extend_from_slice(&wrapped_len.to_be_bytes());
        body.extend_from_slice(&wrapped);
        let mut header = Vec::new();
        write_box(&mut header, HEADER_BOX, body.len(), |out| {
            out.extend_from_slice(&body)
        });
        let key = UnboundKey::new(&AES_256_GCM, &data_key)
            .map_err(|_| KeyError::Crypto("AES-GCM key"))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            header,
            header_digest: sha256(&body),
            next_chunk: 0,
            ended: false,
        })
    }

    /// Seals `block` as the next chunk; returns the bytes to append to the file (the header
    /// first, before the first chunk).
    pub fn seal(&mut self, kind: ChunkKind, block: &[u8]) -> Result<Vec<u8>, SealError> {
        if self.ended {
            return Err(SealError::Ended);
        }
        if kind == ChunkKind::EndMark && !block.is_empty() {
            return Err(SealError::EndMarkWithBlock);
        }
        let mut out = Vec::with_capacity(self.header.len() + 9 + block.len() + TAG_LEN);
        if self.next_chunk == 0 {
            out.extend_from_slice(&self.header);
        }
        let mut sealed = block.to_vec();
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(chunk_nonce(self.next_chunk, kind.is_final())),
                Aad::from(chunk_aad(&self.header_digest, kind as u8)),
                &mut sealed,
            )
            .map_err(|_| KeyError::Crypto("AES-GCM sealing"))?;
        write_box(&mut out, CHUNK_BOX, 1 + sealed.len() + TAG_LEN, |out| {
            out.push(kind as u8);
            out.extend_from_slice(&sealed);
            out.extend_from_slice(tag.as_ref());
        });
        self.next_chunk += 1;
        self.ended = kind.is_final();
        Ok(out)
    }

    /// Whether the final chunk was sealed.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}
