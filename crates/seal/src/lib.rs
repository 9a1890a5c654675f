//! Encryption at rest of recordings (issue 9, `docs/security.md`).
//!
//! When an account sets a public key, every file of its recordings is sealed as it streams: the
//! server draws a fresh 256-bit data key for the file, wraps it for the account's key, and seals
//! each block the recorder sends (the `ftyp`+`moov`, each `moof`+`mdat`, the `mfra`) as one
//! AES-256-GCM chunk. The server never holds the private key; it forgets the data key when the
//! file ends.
//!
//! # The sealed file
//! A sealed file is a sequence of ISO-BMFF-style boxes (a 32-bit big-endian size, then a type),
//! so the spool's recovery and the upload's part planner walk it as they walk an fMP4:
//!
//! - `cvrh`, once, first: the header.
//!   `version (1) | scheme (1) | key id (32) | wrapped length (u16 BE) | wrapped data key`.
//!   - the key id is the SHA-256 of the recipient's `SubjectPublicKeyInfo` (DER);
//!   - scheme 1, X25519: `ephemeral public key (32) | AES-256-GCM(KEK, nonce 0, data key)`,
//!     with KEK = HKDF-SHA256(salt = ephemeral public key ‖ recipient public key,
//!     ikm = X25519(ephemeral, recipient), info = `convrec recording key v1`);
//!   - scheme 2, RSA: RSA-OAEP(SHA-256, MGF1-SHA-256) of the data key.
//! - `cvrc`, one per block: `kind (1) | ciphertext ‖ 16-byte tag`. Kind 0: a block, more follow;
//!   1: the last block (the index); 2: an empty end mark, written when a file ends without its
//!   index. The nonce is the chunk's number (u64 BE), three zero bytes, and 1 for the final
//!   chunk (kinds 1 and 2) or 0 (the STREAM construction); the associated data is the SHA-256 of
//!   the header's body and the kind. A chunk moved, dropped, altered, taken from another file or
//!   relabelled fails to open; a file cut short lacks its final chunk.
//!
//! Everything here is sans-IO: [`Sealer`] turns blocks into bytes, [`Opener`] turns boxes back
//! into blocks.

mod format;
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod opener;
mod sealer;

pub use format::{CHUNK_BOX, HEADER_BOX, MAX_CHUNK, is_sealed, read_box_header};
pub use keys::{KeyError, OpeningKey, RecipientKey, Scheme};
pub use opener::{OpenError, Opened, Opener, open_all, open_stream};
pub use sealer::{ChunkKind, SealError, Sealer};
