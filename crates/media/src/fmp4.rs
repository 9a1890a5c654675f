//! Fragmented MP4 output: the init segment (`ftyp` + `moov` with `mvex`), `moof` + `mdat`
//! fragments handed out as bytes the moment they are cut, and an `mfra` index at a normal end.
//!
//! Sans-IO like the rest of the crate: [`Fmp4Writer`] takes samples and returns byte blocks to
//! append to a file, in order. Every prefix of the output that ends on a block boundary is a
//! playable file; what a crash can lose is the fragment still being filled.

mod init;
mod writer;

pub use init::{H264Entry, TrackCodec, TrackSpec, init_segment};
pub use writer::{
    DEFAULT_FRAGMENT_DURATION, Fmp4Writer, Fragment, WriterConfig, WriterError, WriterOutput,
    WriterSample,
};

/// Sample flags of a sync sample (`sample_depends_on = 2`, not non-sync).
pub(crate) fn sync_sample_flags() -> shiguredo_mp4::SampleFlags {
    shiguredo_mp4::SampleFlags::from_fields(0, 2, 0, 0, 0, false, 0)
}

/// Sample flags of a sample that depends on others (`sample_depends_on = 1`, non-sync).
pub(crate) fn non_sync_sample_flags() -> shiguredo_mp4::SampleFlags {
    shiguredo_mp4::SampleFlags::from_fields(0, 1, 0, 0, 0, true, 0)
}
