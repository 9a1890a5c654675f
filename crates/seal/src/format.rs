//! The boxes of a sealed file, their nonces and associated data (see the crate docs).

/// The header box's type.
pub const HEADER_BOX: [u8; 4] = *b"cvrh";
/// A chunk box's type.
pub const CHUNK_BOX: [u8; 4] = *b"cvrc";
/// The largest chunk body an opener accepts (a block is at most 64 MiB; the kind byte and the
/// tag come on top).
pub const MAX_CHUNK: u64 = 64 * 1024 * 1024 + 1 + TAG_LEN as u64;
/// The format version written in the header.
pub(crate) const VERSION: u8 = 1;
/// An AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// The HKDF `info` of the X25519 key wrap.
pub(crate) const WRAP_INFO: &[u8] = b"convrec recording key v1";
/// The box header: a 32-bit size and a type.
pub(crate) const BOX_HEADER_LEN: usize = 8;
/// The fixed part of the header body before the wrapped key.
pub(crate) const HEADER_FIXED_LEN: usize = 1 + 1 + 32 + 2;

/// Whether `bytes` begin like a sealed file (a `cvrh` box).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(&HEADER_BOX[..])
}

/// Reads an 8-byte box header: (the whole box's size, its type). `None` when the size is
/// smaller than the header itself (sealed files never use 64-bit or to-the-end sizes).
pub fn read_box_header(header: [u8; 8]) -> Option<(u64, [u8; 4])> {
    let size = u64::from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let kind = [header[4], header[5], header[6], header[7]];
    (size >= BOX_HEADER_LEN as u64).then_some((size, kind))
}

/// Appends a box of type `kind` around `body` (which `fill` writes) to `out`.
pub(crate) fn write_box(
    out: &mut Vec<u8>,
    kind: [u8; 4],
    body_len: usize,
    fill: impl FnOnce(&mut Vec<u8>),
) {
    let size = u32::try_from(BOX_HEADER_LEN + body_len).expect("bug: a chunk is under 4 GiB");
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&kind);
    let start = out.len();
    fill(out);
    debug_assert_eq!(out.len() - start, body_len, "bug: box body length");
}

/// The nonce of chunk `index`; `last` for the final chunk.
pub(crate) fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// The associated data of a chunk: the header's digest and the chunk's kind.
pub(crate) fn chunk_aad(header_digest: &[u8; 32], kind: u8) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[..32].copy_from_slice(header_digest);
    aad[32] = kind;
    aad
}

/// SHA-256.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
