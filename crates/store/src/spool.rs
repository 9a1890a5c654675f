//! The spool: a recording file on local disk that grows block by block, each block fsynced
//! before it is acknowledged (SPEC §6). What was acknowledged survives a crash of the recorder or
//! the server and is a playable file on its own.
//!
//! Blocks come from a recorder, which is outside the server's trust: a block is written only if
//! it is exactly one whole `ftyp`+`moov` (first), `moof`+`mdat`, or `mfra` (last), in sequence.
//! Anything else is refused with the reason and nothing is written. A block with a sequence number
//! already made durable is acknowledged again without writing (a recorder that reconnects resends
//! what it was not sure of); a gap in the numbering is refused.
//!
//! After a crash, [`SpoolFile::recover`] cuts the file back to the end of its last whole block (a
//! torn write of the block being appended when power went is discarded: it was never
//! acknowledged), so appending can go on.
//!
//! A spool file created with a [`Sealer`] (the account set a public key) is encrypted as it is
//! written: each block, once checked, is sealed as one chunk (`convrec_seal`), and
//! [`SpoolFile::close`] marks the end of a file that has no index. Only the process that created
//! it holds its data key: a sealed file recovered after a crash takes no more blocks.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use convrec_media::layout::{BlockKind, LayoutError, classify_block, parse_box_header};
use convrec_seal::{ChunkKind, SealError, Sealer};
use thiserror::Error;

/// A block was made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The block's sequence number.
    pub seq: u64,
    /// Bytes of the file that are durable.
    pub durable_len: u64,
}

/// Why the spool refused a block or failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// Reading or writing the file failed.
    #[error("spool file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The block is not one whole block of the fMP4 layout.
    #[error("block {seq} refused: {source}")]
    BadBlock {
        /// Its sequence number.
        seq: u64,
        /// What is wrong with it.
        source: LayoutError,
    },
    /// A block is missing before this one.
    #[error("block {seq} refused: block {expected} comes first")]
    Gap {
        /// Its sequence number.
        seq: u64,
        /// The next one the spool needs.
        expected: u64,
    },
    /// A block of the wrong kind for its place.
    #[error("block {seq} refused: {why}")]
    OutOfPlace {
        /// Its sequence number.
        seq: u64,
        /// What was expected.
        why: &'static str,
    },
    /// The file already ends with its index.
    #[error("block {seq} refused: the file is finished")]
    Finished {
        /// Its sequence number.
        seq: u64,
    },
    /// The block could not be sealed.
    #[error("block {seq} could not be sealed: {source}")]
    Seal {
        /// Its sequence number.
        seq: u64,
        /// Why.
        source: SealError,
    },
    /// A sealed file recovered after a crash: its data key died with the process.
    #[error("block {seq} refused: the file is sealed and its data key was lost in a restart")]
    KeyLost {
        /// Its sequence number.
        seq: u64,
    },
}

/// What recovery found in a spool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Whole blocks kept (the next sequence number).
    pub blocks: u64,
    /// Bytes kept.
    pub durable_len: u64,
    /// Bytes of a torn last block that were cut off.
    pub discarded_bytes: u64,
    /// The file ends with its index.
    pub finished: bool,
    /// The file is sealed (encrypted).
    pub sealed: bool,
}

/// One recording file in the spool. See the [module docs](self).
#[derive(Debug)]
pub struct SpoolFile {
    file: File,
    path: PathBuf,
    len: u64,
    next_seq: u64,
    finished: bool,
    /// Blocks are sealed (encrypted).
    sealed: bool,
    /// The file's sealer; `None` for a plain file, or a sealed one recovered after a crash.
    sealer: Option<Sealer>,
}

impl SpoolFile {
    /// Creates a new, empty spool file (it must not exist) and makes its directory entry durable;
    /// with a `sealer`, its blocks are encrypted.
    pub fn create(path: &Path, sealer: Option<Sealer>) -> Result<Self, SpoolError> {
        let io = io_error(path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        sync_parent(path).map_err(io)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            len: 0,
            next_seq: 0,
            finished: false,
            sealed: sealer.is_some(),
            sealer,
        })
    }

    /// Reopens a spool file after a crash: keeps its whole blocks, cuts off a torn last one.
    pub fn recover(path: &Path) -> Result<(Self, Recovery), SpoolError> {
        let io = io_error(path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let walk = whole_blocks(&file, file_len).map_err(io)?;
        let (blocks, durable_len, finished) = (walk.blocks, walk.durable, walk.finished);
        if durable_len < file_len {
            file.set_len(durable_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let recovery = Recovery {
            blocks,
            durable_len,
            discarded_bytes: file_len - durable_len,
            finished,
            sealed: walk.sealed,
        };
        let spool = Self {
            file,
            path: path.to_owned(),
            len: durable_len,
            next_seq: blocks,
            finished,
            sealed: walk.sealed,
            sealer: None,
        };
        Ok((spool, recovery))
    }

    /// Appends block `seq` and makes it durable; the returned [`Ack`] may be passed on.
    pub fn append(&mut self, seq: u64, block: &[u8]) -> Result<Ack, SpoolError> {
        if seq < self.next_seq {
            return Ok(Ack {
                seq,
                durable_len: self.len,
            });
        }
        if self.finished {
            return Err(SpoolError::Finished { seq });
        }
        if seq > self.next_seq {
            return Err(SpoolError::Gap {
                seq,
                expected: self.next_seq,
            });
        }
        let kind = classify_block(block).map_err(|source| SpoolError::BadBlock { seq, source })?;
        match (self.next_seq, kind) {
            (0, BlockKind::Init) | (1.., BlockKind::Fragment | BlockKind::Index) => {}
            (0, _) => {
                return Err(SpoolError::OutOfPlace {
                    seq,
                    why: "the first block must be ftyp+moov",
                });
            }
            (_, BlockKind::Init) => {
                return Err(SpoolError::OutOfPlace {
                    seq,
                    why: "ftyp+moov may only come first",
                });
            }
        }
        let finished = kind == BlockKind::Index;
        let chunk = match (self.sealed, &mut self.sealer) {
            (false, _) => None,
            (true, None) => return Err(SpoolError::KeyLost { seq }),
            (true, Some(sealer)) => {
                let kind = if finished {
                    ChunkKind::LastBlock
                } else {
                    ChunkKind::Block
                };
                Some(
                    sealer
                        .seal(kind, block)
                        .map_err(|source| SpoolError::Seal { seq, source })?,
                )
            }
        };
        self.write(chunk.as_deref().unwrap_or(block))?;
        self.next_seq += 1;
        self.finished = finished;
        Ok(Ack {
            seq,
            durable_len: self.len,
        })
    }

    /// Ends the file: a sealed file without its index gets an end mark, so that a reader can
    /// tell it ended here from a file cut short. Nothing for a plain file, an empty one, or one
    /// that already ended. Returns the durable length.
    pub fn close(&mut self) -> Result<u64, SpoolError> {
        let seq = self.next_seq;
        if let Some(sealer) = self.sealer.as_mut().filter(|s| !s.is_ended() && seq > 0) {
            let mark = sealer
                .seal(ChunkKind::EndMark, &[])
                .map_err(|source| SpoolError::Seal { seq, source })?;
            self.write(&mark)?;
        }
        Ok(self.len)
    }

    /// Appends `bytes` at the durable end and makes them durable.
    fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        let io = io_error(&self.path);
        self.file.write_all_at(bytes, self.len).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Whether the file is sealed (encrypted).
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Durable bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing is durable yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sequence number the next block must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether the file ends with its index.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Turns an I/O error on the spool file at `path` into a [`SpoolError`] that names the file.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SpoolError + Copy + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What walking a spool file's top-level boxes found.
struct Walk {
    /// Whole blocks.
    blocks: u64,
    /// Bytes up to the end of the last whole block (or end mark).
    durable: u64,
    /// It ends with its index.
    finished: bool,
    /// It is sealed.
    sealed: bool,
    /// A sealed file that ends with an end mark.
    end_marked: bool,
}

/// Walks the file's top-level boxes: a plain file is `ftyp`+`moov`, then `moof`+`mdat` blocks,
/// then perhaps `mfra`; a sealed one is `cvrh`+`cvrc`, then one `cvrc` per block, the final one
/// saying so in its first byte.
fn whole_blocks(file: &File, file_len: u64) -> std::io::Result<Walk> {
    let mut walk = Walk {
        blocks: 0,
        durable: 0,
        finished: false,
        sealed: false,
        end_marked: false,
    };
    let mut offset = 0u64;
    let mut expected: &[&[u8; 4]] = &[b"ftyp", b"moov"];
    let mut position = 0;
    while offset < file_len {
        let mut header = [0u8; 16];
        let n = usize::try_from((file_len - offset).min(16)).expect("bug: at most 16");
        file.read_exact_at(&mut header[..n], offset)?;
        let Ok(b) = parse_box_header(offset, &header[..n], file_len - offset) else {
            break;
        };
        // The spool never wrote a "to the end" box (blocks with one are refused).
        if b.to_end {
            break;
        }
        if offset == 0 && &b.box_type == b"cvrh" {
            walk.sealed = true;
            expected = &[b"cvrh", b"cvrc"];
        }
        if !walk.sealed && &b.box_type == b"mfra" && position == 0 && walk.blocks > 0 {
            walk.blocks += 1;
            walk.durable = b.end();
            walk.finished = true;
            return Ok(walk);
        }
        if expected.get(position) != Some(&&b.box_type) {
            break;
        }
        position += 1;
        offset = b.end();
        if position < expected.len() {
            continue;
        }
        position = 0;
        if !walk.sealed {
            walk.blocks += 1;
            walk.durable = offset;
            expected = &[b"moof", b"mdat"];
            continue;
        }
        // A chunk's first byte says what it holds (a sealed file's boxes have 8-byte headers).
        let kind = (n > 8).then(|| ChunkKind::from_byte(header[8])).flatten();
        match kind {
            Some(ChunkKind::Block) => walk.blocks += 1,
            Some(ChunkKind::LastBlock) => {
                walk.blocks += 1;
                walk.finished = true;
            }
            Some(ChunkKind::EndMark) => walk.end_marked = true,
            None => break,
        }
        walk.durable = offset;
        if walk.finished || walk.end_marked {
            return Ok(walk);
        }
        expected = &[b"cvrc"];
    }
    Ok(walk)
}

/// Creates directory `dir` and any missing ancestors, each made durable in its parent (the
/// parent fsynced), so that a power cut cannot take away the directory of a spool file whose
/// blocks were acknowledged.
pub fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        // Made by someone else meanwhile: its entry may not be durable yet either.
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    sync_parent(dir)
}

/// Makes a new (created or renamed) directory entry durable: fsyncs the directory holding
/// `path`.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}
