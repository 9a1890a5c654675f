//! The top level of a fragmented MP4 file: boxes one after another, each starting with its size
//! and type. Shared by [`crate::inspect`] and by whoever stores the blocks [`crate::fmp4`] writes
//! (the server's spool), which must accept only whole blocks of the expected shape.

use thiserror::Error;

/// A top-level box: where it starts, its type, and its header and total sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    /// Byte offset of the box.
    pub offset: u64,
    /// Four-character type.
    pub box_type: [u8; 4],
    /// 8, or 16 with a 64-bit size.
    pub header_size: u64,
    /// Total size, header included.
    pub size: u64,
    /// The header said size 0: "to the end of the file". Valid only for a file's last box, so
    /// never in a block that more may follow.
    pub to_end: bool,
}

impl TopBox {
    /// The offset just past the box.
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// Why a box header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The bytes end inside the box.
    #[error("truncated at byte {offset}: {what}")]
    Truncated {
        /// Where the box starts.
        offset: u64,
        /// What is missing.
        what: String,
    },
    /// The header is impossible, or the box is out of place.
    #[error("corrupt at byte {offset}: {what}")]
    Corrupt {
        /// Where the box starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

impl LayoutError {
    /// Where the bad or cut box starts.
    pub fn offset(&self) -> u64 {
        match self {
            LayoutError::Truncated { offset, .. } | LayoutError::Corrupt { offset, .. } => *offset,
        }
    }
}

/// A four-character code for messages (non-printable bytes as `?`).
pub fn fourcc(t: [u8; 4]) -> String {
    t.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Reads the header of the box at `offset`. `header` holds the bytes from `offset` on (at least
/// 16 when that many exist), and `available` is how many bytes exist from `offset` to the end.
/// A size of 0 ("to the end") takes all that is available.
pub fn parse_box_header(offset: u64, header: &[u8], available: u64) -> Result<TopBox, LayoutError> {
    let truncated = |what: String| LayoutError::Truncated { offset, what };
    let Some((size_bytes, rest)) = header.split_first_chunk::<4>().filter(|_| available >= 8)
    else {
        return Err(truncated(format!(
            "a box header needs 8 bytes but only {available} remain"
        )));
    };
    let box_type: [u8; 4] = *rest.first_chunk::<4>().ok_or_else(|| {
        truncated(format!(
            "a box header needs 8 bytes but only {available} remain"
        ))
    })?;
    let declared = u32::from_be_bytes(*size_bytes);
    let (header_size, size) = match declared {
        0 => (8, available),
        1 => {
            let large = rest.get(4..12).filter(|_| available >= 16).ok_or_else(|| {
                truncated(format!(
                    "box '{}' has a 64-bit size that is cut short",
                    fourcc(box_type)
                ))
            })?;
            (
                16,
                u64::from_be_bytes(large.try_into().expect("bug: 8 bytes")),
            )
        }
        n => (8, u64::from(n)),
    };
    if size < header_size {
        return Err(LayoutError::Corrupt {
            offset,
            what: format!(
                "box '{}' declares {size} bytes, less than its own header",
                fourcc(box_type)
            ),
        });
    }
    if size > available {
        return Err(truncated(format!(
            "box '{}' declares {size} bytes but only {available} remain",
            fourcc(box_type)
        )));
    }
    Ok(TopBox {
        offset,
        box_type,
        header_size,
        size,
        to_end: declared == 0,
    })
}

/// The top-level boxes of an in-memory block, in order; stops at the first bad one.
pub fn boxes_in(bytes: &[u8]) -> impl Iterator<Item = Result<TopBox, LayoutError>> + '_ {
    let mut offset = 0u64;
    let mut failed = false;
    std::iter::from_fn(move || {
        let len = bytes.len() as u64;
        if failed || offset >= len {
            return None;
        }
        let start = usize::try_from(offset).expect("bug: offset is within a slice");
        let result = parse_box_header(offset, &bytes[start..], len - offset);
        match &result {
            Ok(b) => offset = b.end(),
            Err(_) => failed = true,
        }
        Some(result)
    })
}

/// The three kinds of block [`crate::fmp4::Fmp4Writer`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// `ftyp` + `moov`.
    Init,
    /// `moof` + `mdat`.
    Fragment,
    /// `mfra`.
    Index,
}

/// Checks that `bytes` is exactly one whole block — `ftyp`+`moov`, `moof`+`mdat`, or `mfra` —
/// and says which.
pub fn classify_block(bytes: &[u8]) -> Result<BlockKind, LayoutError> {
    let boxes = boxes_in(bytes).collect::<Result<Vec<_>, _>>()?;
    if let Some(b) = boxes.iter().find(|b| b.to_end) {
        // Appended to a file, it would swallow every later block.
        return Err(LayoutError::Corrupt {
            offset: b.offset,
            what: format!(
                "box '{}' has size 0 (\"to the end of the file\"), which no block may use",
                fourcc(b.box_type)
            ),
        });
    }
    let types: Vec<&[u8; 4]> = boxes.iter().map(|b| &b.box_type).collect();
    match types.as_slice() {
        [b"ftyp", b"moov"] => Ok(BlockKind::Init),
        [b"moof", b"mdat"] => Ok(BlockKind::Fragment),
        [b"mfra"] => Ok(BlockKind::Index),
        other => Err(LayoutError::Corrupt {
            offset: 0,
            what: format!(
                "a block must be ftyp+moov, moof+mdat or mfra, not [{}]",
                other
                    .iter()
                    .map(|t| fourcc(**t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut b = u32::try_from(payload + 8).unwrap().to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(payload + 8, 0xab);
        b
    }

    #[test]
    fn blocks_are_classified_only_when_whole_and_in_shape() {
        let fragment = [boxed(b"moof", 20), boxed(b"mdat", 100)].concat();
        assert_eq!(classify_block(&fragment), Ok(BlockKind::Fragment));
        assert_eq!(
            classify_block(&[boxed(b"ftyp", 16), boxed(b"moov", 50)].concat()),
            Ok(BlockKind::Init)
        );
        assert_eq!(classify_block(&boxed(b"mfra", 30)), Ok(BlockKind::Index));
        let cut = &fragment[..fragment.len() - 1];
        assert!(matches!(
            classify_block(cut),
            Err(LayoutError::Truncated { offset: 28, .. })
        ));
        let err = classify_block(&[boxed(b"mdat", 4), boxed(b"moof", 4)].concat()).unwrap_err();
        assert!(err.to_string().contains("not [mdat, moof]"), "{err}");
        assert!(classify_block(&[]).is_err());
        let mut to_end = fragment.clone();
        to_end[28..32].copy_from_slice(&[0, 0, 0, 0]);
        let err = classify_block(&to_end).unwrap_err();
        assert!(err.to_string().contains("size 0"), "{err}");
    }

    #[test]
    fn headers_with_impossible_sizes_are_refused() {
        assert!(matches!(
            parse_box_header(0, &[0, 0, 0, 4, b'a', b'b', b'c', b'd'], 8),
            Err(LayoutError::Corrupt { .. })
        ));
        let large = [0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 32];
        assert_eq!(parse_box_header(0, &large, 40).unwrap().size, 32);
        assert!(matches!(
            parse_box_header(0, &large[..12], 12),
            Err(LayoutError::Truncated { .. })
        ));
        assert_eq!(
            parse_box_header(5, &[0, 0, 0, 0, b'm', b'd', b'a', b't'], 99)
                .unwrap()
                .size,
            99
        );
    }
}
