//! Cuts samples into `moof` + `mdat` fragments and indexes them with `mfra`.

use std::collections::VecDeque;
use std::time::Duration;

use shiguredo_mp4::Encode;
use shiguredo_mp4::boxes::{
    MfhdBox, MfraBox, MfroBox, MoofBox, TfdtBox, TfhdBox, TfraBox, TfraEntry, TrafBox, TrunBox,
    TrunSample,
};
use thiserror::Error;

use super::init::{TrackSpec, init_segment};
use super::{non_sync_sample_flags, sync_sample_flags};
use crate::h264::H264Error;
use crate::rtp_time::ticks_to_nanos;
use crate::timeline::MediaKind;

/// Most media bytes in one fragment, well inside what its 32-bit offsets address.
const MAX_FRAGMENT_DATA: usize = 1 << 30;

/// Default longest stretch of media in one fragment (SPEC §6: at most ~2 s).
pub const DEFAULT_FRAGMENT_DURATION: Duration = Duration::from_secs(2);

/// Settings of a [`Fmp4Writer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// The file's tracks.
    pub tracks: Vec<TrackSpec>,
    /// A fragment is cut before a sample that would make it span this much media time or more.
    pub fragment_duration: Duration,
    /// Creation time written into `mvhd`/`tkhd`/`mdhd` (Unix seconds).
    pub creation_unix_secs: u64,
}

/// A sample for [`Fmp4Writer::push_sample`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSample {
    /// Which track.
    pub track_id: u32,
    /// Decode time in the track's timescale.
    pub dts: u64,
    /// Duration in the track's timescale (not zero).
    pub duration: u32,
    /// A sync sample.
    pub keyframe: bool,
    /// Sample bytes as they go into `mdat`.
    pub data: Vec<u8>,
}

/// A finished `moof` + `mdat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// `mfhd` sequence number (1-based).
    pub sequence: u32,
    /// Byte offset of the fragment in the file.
    pub offset: u64,
    /// Earliest sample time in the fragment, from the file's time 0.
    pub start: Duration,
    /// Latest sample end in the fragment.
    pub end: Duration,
    /// `moof` + `mdat`.
    pub bytes: Vec<u8>,
}

/// Byte blocks to append to the file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterOutput {
    /// `ftyp` + `moov`: always the first block.
    Init(Vec<u8>),
    /// One fragment.
    Fragment(Fragment),
    /// `mfra` with its `mfro`: the last block of a normally finished file.
    Index(Vec<u8>),
}

impl WriterOutput {
    /// The bytes to append.
    pub fn bytes(&self) -> &[u8] {
        match self {
            WriterOutput::Init(b) | WriterOutput::Index(b) => b,
            WriterOutput::Fragment(f) => &f.bytes,
        }
    }
}

/// Why the writer refused something.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WriterError {
    /// A file needs at least one track.
    #[error("a file needs at least one track")]
    NoTracks,
    /// Two tracks share an id, or an id is 0.
    #[error("track id {0} is zero or used twice")]
    BadTrackId(u32),
    /// `avc1` was chosen without parameter sets.
    #[error("an avc1 track needs its SPS and PPS up front (use avc3 when they come later)")]
    Avc1NeedsParameterSets,
    /// The parameter sets could not be read.
    #[error("bad parameter sets: {0}")]
    BadParameterSets(#[from] H264Error),
    /// A sample names no track of this file.
    #[error("no track with id {0}")]
    UnknownTrack(u32),
    /// A sample without duration.
    #[error("sample at {dts} on track {track_id} has zero duration")]
    ZeroDuration {
        /// Track id.
        track_id: u32,
        /// Its decode time.
        dts: u64,
    },
    /// A sample starts before the previous one of its track ended.
    #[error(
        "sample at {dts} on track {track_id} starts before the previous sample ends ({expected})"
    )]
    TimeWentBackwards {
        /// Track id.
        track_id: u32,
        /// Its decode time.
        dts: u64,
        /// End of the previous sample.
        expected: u64,
    },
    /// A sample or fragment too large for 32-bit fields.
    #[error("{0} exceeds the 4 GiB an MP4 fragment can address")]
    TooLarge(&'static str),
    /// The file was already finished.
    #[error("the file is already finished")]
    Finished,
    /// The box library refused to encode (a bug in how boxes were filled).
    #[error("could not encode MP4 boxes: {0}")]
    Encode(String),
}

impl From<shiguredo_mp4::Error> for WriterError {
    fn from(e: shiguredo_mp4::Error) -> Self {
        WriterError::Encode(e.to_string())
    }
}

#[derive(Debug)]
struct TrackState {
    spec: TrackSpec,
    /// Samples of the open fragment.
    samples: Vec<TrunSample>,
    /// Their bytes, in order.
    data: Vec<u8>,
    /// Decode time of the first sample in the open fragment.
    first_dts: Option<u64>,
    /// End of the last sample written (open fragment included).
    next_dts: Option<u64>,
    /// Random access points for `tfra`.
    index: Vec<TfraEntry>,
    /// Sample numbers (1-based) of sync samples in the open fragment to index.
    sync_in_fragment: Vec<(u32, u64)>,
}

/// Turns samples into a fragmented MP4, block by block. See the [module docs](super).
#[derive(Debug)]
pub struct Fmp4Writer {
    tracks: Vec<TrackState>,
    fragment_duration_ns: i128,
    fragment_start_ns: Option<i128>,
    sequence: u32,
    offset: u64,
    finished: bool,
    outputs: VecDeque<WriterOutput>,
}

impl Fmp4Writer {
    /// A writer for `config`; its init segment is the first output.
    pub fn new(config: WriterConfig) -> Result<Self, WriterError> {
        let mut ids: Vec<u32> = config.tracks.iter().map(|t| t.track_id).collect();
        ids.sort_unstable();
        if let Some(bad) = ids
            .windows(2)
            .find(|w| w[0] == w[1])
            .map(|w| w[0])
            .or_else(|| ids.first().copied().filter(|&id| id == 0))
        {
            return Err(WriterError::BadTrackId(bad));
        }
        let init = init_segment(&config.tracks, config.creation_unix_secs)?;
        let offset = init.len() as u64;
        Ok(Self {
            tracks: config
                .tracks
                .into_iter()
                .map(|spec| TrackState {
                    spec,
                    samples: Vec::new(),
                    data: Vec::new(),
                    first_dts: None,
                    next_dts: None,
                    index: Vec::new(),
                    sync_in_fragment: Vec::new(),
                })
                .collect(),
            fragment_duration_ns: i128::try_from(config.fragment_duration.as_nanos())
                .unwrap_or(i128::MAX),
            fragment_start_ns: None,
            sequence: 0,
            offset,
            finished: false,
            outputs: VecDeque::from([WriterOutput::Init(init)]),
        })
    }

    /// The track that carries `kind`, if the file has one.
    pub fn track_id_of(&self, kind: MediaKind) -> Option<u32> {
        self.tracks
            .iter()
            .find(|t| t.spec.kind() == kind)
            .map(|t| t.spec.track_id)
    }

    /// Whether samples wait in a fragment that is not cut yet.
    pub fn has_open_fragment(&self) -> bool {
        self.tracks.iter().any(|t| !t.samples.is_empty())
    }

    /// Bytes handed out or queued so far (the file's length once all outputs are written).
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Adds a sample. A fragment is cut first when the sample would make the open one span the
    /// fragment duration, or when it does not start where its track's last sample ended (a
    /// fragment's track run cannot hold a jump in time).
    pub fn push_sample(&mut self, sample: WriterSample) -> Result<(), WriterError> {
        if self.finished {
            return Err(WriterError::Finished);
        }
        let index = self
            .tracks
            .iter()
            .position(|t| t.spec.track_id == sample.track_id)
            .ok_or(WriterError::UnknownTrack(sample.track_id))?;
        if sample.duration == 0 {
            return Err(WriterError::ZeroDuration {
                track_id: sample.track_id,
                dts: sample.dts,
            });
        }
        if sample.data.len() > MAX_FRAGMENT_DATA {
            return Err(WriterError::TooLarge("a sample"));
        }
        let size = u32::try_from(sample.data.len()).expect("bug: bounded by MAX_FRAGMENT_DATA");
        let end = sample
            .dts
            .checked_add(u64::from(sample.duration))
            .ok_or(WriterError::TooLarge("a sample's end time"))?;
        let track = &self.tracks[index];
        let open_data: usize = self.tracks.iter().map(|t| t.data.len()).sum();
        // Keep every fragment addressable by the 32-bit sizes and offsets of moof/mdat.
        let mut cut = open_data + sample.data.len() > MAX_FRAGMENT_DATA;
        if let Some(expected) = track.next_dts {
            if sample.dts < expected {
                return Err(WriterError::TimeWentBackwards {
                    track_id: sample.track_id,
                    dts: sample.dts,
                    expected,
                });
            }
            cut |= sample.dts > expected && !track.samples.is_empty();
        }
        let sample_ns = ticks_to_nanos(
            i64::try_from(sample.dts).unwrap_or(i64::MAX),
            track.spec.timescale(),
        );
        if let Some(start) = self.fragment_start_ns {
            cut |= sample_ns >= start.saturating_add(self.fragment_duration_ns);
        }
        if cut {
            self.cut_fragment()?;
        }
        let track = &mut self.tracks[index];
        track.samples.push(TrunSample {
            duration: Some(sample.duration),
            size: Some(size),
            flags: Some(if sample.keyframe {
                sync_sample_flags()
            } else {
                non_sync_sample_flags()
            }),
            composition_time_offset: None,
        });
        let number =
            u32::try_from(track.samples.len()).map_err(|_| WriterError::TooLarge("a fragment"))?;
        let index_it = match track.spec.kind() {
            MediaKind::Video => sample.keyframe,
            // Audio: every packet is a sync sample; index the first of each fragment.
            MediaKind::Audio => number == 1,
        };
        if index_it {
            track.sync_in_fragment.push((number, sample.dts));
        }
        track.data.extend_from_slice(&sample.data);
        track.first_dts.get_or_insert(sample.dts);
        track.next_dts = Some(end);
        self.fragment_start_ns = Some(
            self.fragment_start_ns
                .map_or(sample_ns, |s| s.min(sample_ns)),
        );
        Ok(())
    }

    /// Cuts the open fragment now (if it holds anything), e.g. on a wall-clock timer when media
    /// stopped flowing.
    pub fn flush(&mut self) -> Result<(), WriterError> {
        if self.finished {
            return Err(WriterError::Finished);
        }
        self.cut_fragment()
    }

    /// Cuts the last fragment and appends the `mfra` index. Nothing can be added afterwards.
    pub fn finish(&mut self) -> Result<(), WriterError> {
        if self.finished {
            return Err(WriterError::Finished);
        }
        self.cut_fragment()?;
        self.finished = true;
        let tfras: Vec<TfraBox> =
            self.tracks
                .iter()
                .filter(|t| !t.index.is_empty())
                .map(|t| {
                    let wide = t.index.iter().any(|e| {
                        e.time > u64::from(u32::MAX) || e.moof_offset > u64::from(u32::MAX)
                    });
                    TfraBox {
                        version: u8::from(wide),
                        track_id: t.spec.track_id,
                        length_size_of_traf_num: 3,
                        length_size_of_trun_num: 3,
                        length_size_of_sample_num: 3,
                        entries: t.index.clone(),
                    }
                })
                .collect();
        let mut mfra = MfraBox {
            tfra_boxes: tfras,
            mfro_box: MfroBox { size: 0 },
        };
        let size = mfra.encode_to_vec()?.len();
        mfra.mfro_box.size = u32::try_from(size).map_err(|_| WriterError::TooLarge("the index"))?;
        let bytes = mfra.encode_to_vec()?;
        self.offset += bytes.len() as u64;
        self.outputs.push_back(WriterOutput::Index(bytes));
        Ok(())
    }

    /// The next block to append to the file.
    pub fn poll_output(&mut self) -> Option<WriterOutput> {
        self.outputs.pop_front()
    }

    fn cut_fragment(&mut self) -> Result<(), WriterError> {
        // Take the open runs first: whatever happens below, the writer is left consistent.
        let mut runs: Vec<OpenRun> = self
            .tracks
            .iter_mut()
            .enumerate()
            .filter(|(_, t)| !t.samples.is_empty())
            .map(|(index, t)| OpenRun {
                index,
                first_dts: t
                    .first_dts
                    .take()
                    .expect("bug: a track with samples has a first dts"),
                end: t.next_dts.expect("bug: a track with samples has an end"),
                samples: std::mem::take(&mut t.samples),
                data: std::mem::take(&mut t.data),
                sync: std::mem::take(&mut t.sync_in_fragment),
            })
            .collect();
        self.fragment_start_ns = None;
        if runs.is_empty() {
            return Ok(());
        }
        let sequence = self.sequence + 1;
        let mut moof = MoofBox {
            mfhd_box: MfhdBox {
                sequence_number: sequence,
            },
            traf_boxes: runs
                .iter_mut()
                .map(|run| TrafBox {
                    tfhd_box: TfhdBox {
                        track_id: self.tracks[run.index].spec.track_id,
                        base_data_offset: None,
                        sample_description_index: None,
                        default_sample_duration: None,
                        default_sample_size: None,
                        default_sample_flags: None,
                        duration_is_empty: false,
                        default_base_is_moof: true,
                    },
                    tfdt_box: Some(TfdtBox {
                        version: u8::from(run.first_dts > u64::from(u32::MAX)),
                        base_media_decode_time: run.first_dts,
                    }),
                    trun_boxes: vec![TrunBox {
                        data_offset: Some(0),
                        first_sample_flags: None,
                        samples: std::mem::take(&mut run.samples),
                    }],
                    unknown_boxes: Vec::new(),
                })
                .collect(),
            unknown_boxes: Vec::new(),
        };
        // The data offsets do not change the moof's size: measure, then fill them in.
        let moof_size = moof.encode_to_vec()?.len();
        let data_size: usize = runs.iter().map(|run| run.data.len()).sum();
        let mdat_size =
            u32::try_from(8 + data_size).map_err(|_| WriterError::TooLarge("a fragment"))?;
        let mut data_offset = moof_size + 8;
        for (traf, run) in moof.traf_boxes.iter_mut().zip(&runs) {
            traf.trun_boxes[0].data_offset =
                Some(i32::try_from(data_offset).map_err(|_| WriterError::TooLarge("a fragment"))?);
            data_offset += run.data.len();
        }
        let mut bytes = Vec::with_capacity(moof_size + 8 + data_size);
        bytes.extend_from_slice(&moof.encode_to_vec()?);
        bytes.extend_from_slice(&mdat_size.to_be_bytes());
        bytes.extend_from_slice(b"mdat");
        let (mut start_ns, mut end_ns) = (i128::MAX, 0i128);
        for (traf_number, run) in runs.into_iter().enumerate() {
            bytes.extend_from_slice(&run.data);
            let track = &mut self.tracks[run.index];
            let rate = track.spec.timescale();
            let nanos = |ticks: u64| ticks_to_nanos(i64::try_from(ticks).unwrap_or(i64::MAX), rate);
            start_ns = start_ns.min(nanos(run.first_dts));
            end_ns = end_ns.max(nanos(run.end));
            track
                .index
                .extend(run.sync.into_iter().map(|(sample_number, time)| TfraEntry {
                    time,
                    moof_offset: self.offset,
                    traf_number: u32::try_from(traf_number + 1).expect("bug: at most a few tracks"),
                    trun_number: 1,
                    sample_number,
                }));
        }
        let fragment = Fragment {
            sequence,
            offset: self.offset,
            start: nanos_to_duration(start_ns),
            end: nanos_to_duration(end_ns),
            bytes,
        };
        self.sequence = sequence;
        self.offset += fragment.bytes.len() as u64;
        self.outputs.push_back(WriterOutput::Fragment(fragment));
        Ok(())
    }
}

/// One track's part of the fragment being cut.
struct OpenRun {
    index: usize,
    first_dts: u64,
    end: u64,
    samples: Vec<TrunSample>,
    data: Vec<u8>,
    sync: Vec<(u32, u64)>,
}

fn nanos_to_duration(nanos: i128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}
