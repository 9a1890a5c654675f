//! Reads a fragmented MP4 back and reports what someone checking a recording wants to know:
//! tracks, durations, fragments, key frames, the audio/video start offset, gaps, and whether the
//! file ends with its index. A truncated or corrupt file is an error naming the byte offset where
//! it breaks.
//!
//! The file is read through [`ReadAt`], so a multi-gigabyte recording is never loaded whole: box
//! headers and `moov`/`moof`/`mfra` are read, and each fragment's media is read once (one fragment
//! at a time, up to 256 MiB) to find the facts samples carry (Opus TOC bytes, SPS in key frames).

use std::io;

use serde::Serialize;
use shiguredo_mp4::boxes::{Avc1Box, MfraBox, MoofBox, MoovBox, SampleEntry, TrexBox};
use shiguredo_mp4::{BoxType, Decode, SampleFlags};
use thiserror::Error;

use crate::h264;
use crate::layout::{LayoutError, TopBox, fourcc, parse_box_header};
use crate::opus;
use crate::timeline::MediaKind;

/// Stretches without new media longer than this are reported as gaps.
pub const GAP_THRESHOLD_SECONDS: f64 = 0.5;
/// `moov`, `moof` and `mfra` larger than this are refused rather than read into memory.
const MAX_METADATA_BOX: u64 = 64 << 20;
/// A fragment's media larger than this is not read for facts (its timing is still reported).
const MAX_FRAGMENT_MEDIA: u64 = 256 << 20;
/// Bytes of a key frame read to find its SPS.
const KEYFRAME_PREFIX: u64 = 512;

/// Random-access reads, as a file or a byte slice offers them.
pub trait ReadAt {
    /// Total length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the source has no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; fails if fewer bytes exist.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for &[u8] {
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..start.saturating_add(buf.len()))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for std::fs::File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Why a file could not be inspected.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The file is truncated or corrupt at a byte offset.
    #[error(transparent)]
    Format(#[from] LayoutError),
    /// A whole (not fragmented) MP4: well formed, perhaps, but not what convrec writes.
    #[error(
        "not a fragmented MP4: its moov (at byte {offset}) has no mvex; inspect reads the fragmented MP4 convrec records (ffprobe reads any MP4)"
    )]
    NotFragmented {
        /// Where the `moov` box starts.
        offset: u64,
    },
    /// Reading failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
}

impl InspectError {
    /// Byte offset where the file breaks (a format error), or where a whole MP4's `moov` is.
    pub fn offset(&self) -> Option<u64> {
        match self {
            InspectError::Format(e) => Some(e.offset()),
            InspectError::NotFragmented { offset } => Some(*offset),
            InspectError::Io(_) => None,
        }
    }
}

fn corrupt(offset: u64, what: impl Into<String>) -> InspectError {
    InspectError::Format(LayoutError::Corrupt {
        offset,
        what: what.into(),
    })
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// File size in bytes.
    pub file_size: u64,
    /// `ftyp` major brand.
    pub major_brand: String,
    /// Tracks in `moov` order.
    pub tracks: Vec<TrackReport>,
    /// Fragments in file order.
    pub fragments: Vec<FragmentReport>,
    /// Whether the file ends with an `mfra` index (a normal end).
    pub index_present: bool,
    /// Random access entries in the index.
    pub index_entries: usize,
    /// Video start minus audio start, in milliseconds (both tracks needed).
    pub av_start_offset_ms: Option<f64>,
}

/// One track.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackReport {
    /// `tkhd` track id.
    pub track_id: u32,
    /// Audio or video.
    pub kind: MediaKind,
    /// Sample entry type: `avc1`, `avc3`, `Opus`, or another four-character code.
    pub codec: String,
    /// Media timescale (ticks per second).
    pub timescale: u32,
    /// Picture size from the sample entry (video).
    pub width: Option<u32>,
    /// Picture size from the sample entry (video).
    pub height: Option<u32>,
    /// Picture sizes as the in-band SPS of key frames set them, with the time each began.
    pub resolutions: Vec<ResolutionReport>,
    /// Sample rate (audio).
    pub sample_rate: Option<u32>,
    /// Channels (audio).
    pub channels: Option<u16>,
    /// Number of samples.
    pub samples: u64,
    /// Time of the first sample (seconds).
    pub start_seconds: f64,
    /// End of the last sample (seconds).
    pub end_seconds: f64,
    /// `end - start` (seconds).
    pub duration_seconds: f64,
    /// Times of sync samples (video key frames; empty for audio, where every sample is one).
    pub keyframe_times: Vec<f64>,
    /// Stretches longer than [`GAP_THRESHOLD_SECONDS`] without new media.
    pub gaps: Vec<GapReport>,
}

/// A picture size in force from a time on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolutionReport {
    /// When it began (seconds).
    pub from_seconds: f64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A stretch without new media.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GapReport {
    /// When it began (seconds).
    pub start_seconds: f64,
    /// How long (seconds).
    pub duration_seconds: f64,
}

/// One `moof` + `mdat`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FragmentReport {
    /// `mfhd` sequence number.
    pub sequence: u32,
    /// Byte offset of the `moof`.
    pub offset: u64,
    /// Bytes of `moof` + `mdat`.
    pub size: u64,
    /// Earliest sample time (seconds).
    pub start_seconds: f64,
    /// Latest sample end (seconds).
    pub end_seconds: f64,
}

struct TrackState {
    report: TrackReport,
    trex: Option<TrexBox>,
    /// End of the last sample, in ticks.
    next_dts: Option<u64>,
    first_dts: Option<u64>,
}

impl TrackState {
    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / f64::from(self.report.timescale)
    }

    fn add_gap(&mut self, start: u64, length: u64) {
        let duration_seconds = self.seconds(length);
        if duration_seconds > GAP_THRESHOLD_SECONDS {
            self.report.gaps.push(GapReport {
                start_seconds: self.seconds(start),
                duration_seconds,
            });
        }
    }
}

fn read_top_box<S: ReadAt>(
    source: &mut S,
    offset: u64,
    file_size: u64,
) -> Result<TopBox, InspectError> {
    let available = file_size - offset;
    let mut header = [0u8; 16];
    let n = usize::try_from(available.min(16)).expect("bug: at most 16");
    source.read_exact_at(offset, &mut header[..n])?;
    Ok(parse_box_header(offset, &header[..n], available)?)
}

fn read_box_bytes<S: ReadAt>(source: &mut S, b: &TopBox) -> Result<Vec<u8>, InspectError> {
    if b.size > MAX_METADATA_BOX {
        return Err(corrupt(
            b.offset,
            format!(
                "box '{}' of {} bytes is too large to be metadata",
                fourcc(b.box_type),
                b.size
            ),
        ));
    }
    let mut bytes = vec![0u8; usize::try_from(b.size).expect("bug: bounded above")];
    source.read_exact_at(b.offset, &mut bytes)?;
    Ok(bytes)
}

/// Inspects a fragmented MP4. See the [module docs](self).
pub fn inspect<S: ReadAt>(mut source: S) -> Result<Report, InspectError> {
    let file_size = source.len()?;
    if file_size >= 8 {
        // Name a foreign file for what it is before reading its first bytes as a box size.
        let mut first = [0u8; 8];
        source.read_exact_at(0, &mut first)?;
        if &first[4..8] != b"ftyp" {
            return Err(corrupt(
                0,
                "not an MP4 file: it does not start with an 'ftyp' box",
            ));
        }
    }
    let mut offset = 0u64;
    let mut major_brand = None;
    let mut tracks: Option<Vec<TrackState>> = None;
    let mut fragments = Vec::new();
    let mut index: Option<usize> = None;
    let mut pending_moof: Option<(TopBox, MoofBox)> = None;
    while offset < file_size {
        let b = read_top_box(&mut source, offset, file_size)?;
        if index.is_some() {
            return Err(corrupt(
                offset,
                format!("box '{}' after the mfra index", fourcc(b.box_type)),
            ));
        }
        match &b.box_type {
            b"ftyp" => {
                let bytes = read_box_bytes(&mut source, &b)?;
                major_brand = Some(fourcc(
                    bytes
                        .get(8..12)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| corrupt(offset, "ftyp has no major brand"))?,
                ));
            }
            _ if major_brand.is_none() => {
                return Err(corrupt(
                    offset,
                    format!(
                        "not an MP4 file: it starts with '{}', not 'ftyp'",
                        fourcc(b.box_type)
                    ),
                ));
            }
            b"moov" => {
                if tracks.is_some() {
                    return Err(corrupt(offset, "a second moov"));
                }
                let bytes = read_box_bytes(&mut source, &b)?;
                let (moov, _) =
                    MoovBox::decode(&bytes).map_err(|e| corrupt(offset, format!("moov: {e}")))?;
                tracks = Some(read_tracks(&moov, offset)?);
            }
            b"moof" => {
                let Some(_) = tracks.as_ref() else {
                    return Err(corrupt(offset, "moof before moov"));
                };
                if pending_moof.is_some() {
                    return Err(corrupt(offset, "moof without mdat after the previous moof"));
                }
                let bytes = read_box_bytes(&mut source, &b)?;
                let (moof, _) =
                    MoofBox::decode(&bytes).map_err(|e| corrupt(offset, format!("moof: {e}")))?;
                pending_moof = Some((b, moof));
            }
            b"mdat" => {
                if let Some((moof_box, moof)) = pending_moof.take() {
                    let tracks = tracks
                        .as_mut()
                        .expect("bug: moof is only accepted after moov");
                    let fragment = read_fragment(&mut source, tracks, &moof_box, &moof, &b)?;
                    fragments.push(fragment);
                }
            }
            b"mfra" => {
                let bytes = read_box_bytes(&mut source, &b)?;
                let (mfra, _) =
                    MfraBox::decode(&bytes).map_err(|e| corrupt(offset, format!("mfra: {e}")))?;
                if u64::from(mfra.mfro_box.size) != b.size {
                    return Err(corrupt(
                        offset,
                        format!(
                            "mfro says the index has {} bytes, but it has {}",
                            mfra.mfro_box.size, b.size
                        ),
                    ));
                }
                index = Some(mfra.tfra_boxes.iter().map(|t| t.entries.len()).sum());
            }
            // free, skip, styp, sidx, udta …: nothing to report.
            _ => {}
        }
        offset = b.end();
    }
    let major_brand = major_brand.ok_or_else(|| corrupt(0, "empty file"))?;
    let tracks = tracks.ok_or_else(|| corrupt(file_size, "the file has no moov box"))?;
    if let Some((moof_box, _)) = pending_moof {
        return Err(InspectError::Format(LayoutError::Truncated {
            offset: moof_box.offset,
            what: "the last moof has no mdat".into(),
        }));
    }
    let tracks: Vec<TrackReport> = tracks
        .into_iter()
        .map(|mut t| {
            let first = t.first_dts.unwrap_or(0);
            let end = t.next_dts.unwrap_or(first);
            t.report.start_seconds = t.seconds(first);
            t.report.end_seconds = t.seconds(end);
            t.report.duration_seconds = t.seconds(end.saturating_sub(first));
            t.report
        })
        .collect();
    let start_of = |kind| {
        tracks
            .iter()
            .find(|t| t.kind == kind && t.samples > 0)
            .map(|t| t.start_seconds)
    };
    let av_start_offset_ms = match (start_of(MediaKind::Video), start_of(MediaKind::Audio)) {
        (Some(v), Some(a)) => Some((v - a) * 1000.0),
        _ => None,
    };
    Ok(Report {
        file_size,
        major_brand,
        tracks,
        fragments,
        index_present: index.is_some(),
        index_entries: index.unwrap_or(0),
        av_start_offset_ms,
    })
}

fn read_tracks(moov: &MoovBox, offset: u64) -> Result<Vec<TrackState>, InspectError> {
    let trexes = moov
        .mvex_box
        .as_ref()
        .map(|m| m.trex_boxes.as_slice())
        .unwrap_or_default();
    if moov.mvex_box.is_none() {
        return Err(InspectError::NotFragmented { offset });
    }
    let mut out = Vec::new();
    for trak in &moov.trak_boxes {
        let track_id = trak.tkhd_box.track_id;
        let mdia = &trak.mdia_box;
        let timescale = mdia.mdhd_box.timescale.get();
        let entry = mdia
            .minf_box
            .stbl_box
            .stsd_box
            .entries
            .first()
            .ok_or_else(|| corrupt(offset, format!("track {track_id} has no sample entry")))?;
        let kind = match &mdia.hdlr_box.handler_type {
            b"vide" => MediaKind::Video,
            b"soun" => MediaKind::Audio,
            other => {
                return Err(corrupt(
                    offset,
                    format!(
                        "track {track_id} has handler '{}', neither audio nor video",
                        fourcc(*other)
                    ),
                ));
            }
        };
        let mut report = TrackReport {
            track_id,
            kind,
            codec: String::new(),
            timescale,
            width: None,
            height: None,
            resolutions: Vec::new(),
            sample_rate: None,
            channels: None,
            samples: 0,
            start_seconds: 0.0,
            end_seconds: 0.0,
            duration_seconds: 0.0,
            keyframe_times: Vec::new(),
            gaps: Vec::new(),
        };
        match entry {
            SampleEntry::Avc1(avc1) => describe_avc(&mut report, "avc1", avc1),
            SampleEntry::Opus(opus) => {
                report.codec = "Opus".into();
                report.sample_rate = Some(u32::from(opus.audio.samplerate.integer));
                report.channels = Some(opus.audio.channelcount);
            }
            SampleEntry::Unknown(unknown) if unknown.box_type == BoxType::Normal(*b"avc3") => {
                // Same payload as avc1: decode it under that name.
                let mut bytes = Vec::with_capacity(unknown.payload.len() + 8);
                bytes.extend_from_slice(
                    &u32::try_from(unknown.payload.len() + 8)
                        .unwrap_or(0)
                        .to_be_bytes(),
                );
                bytes.extend_from_slice(b"avc1");
                bytes.extend_from_slice(&unknown.payload);
                let (avc1, _) = Avc1Box::decode(&bytes)
                    .map_err(|e| corrupt(offset, format!("track {track_id} avc3 entry: {e}")))?;
                describe_avc(&mut report, "avc3", &avc1);
            }
            other => report.codec = fourcc(other_box_type(other)),
        }
        out.push(TrackState {
            report,
            trex: trexes.iter().find(|t| t.track_id == track_id).cloned(),
            next_dts: None,
            first_dts: None,
        });
    }
    if out.is_empty() {
        return Err(corrupt(offset, "moov has no tracks"));
    }
    Ok(out)
}

fn other_box_type(entry: &SampleEntry) -> [u8; 4] {
    match shiguredo_mp4::BaseBox::box_type(entry) {
        BoxType::Normal(t) => t,
        BoxType::Uuid(_) => *b"uuid",
    }
}

fn describe_avc(report: &mut TrackReport, codec: &str, avc1: &Avc1Box) {
    report.codec = codec.into();
    report.width = Some(u32::from(avc1.visual.width));
    report.height = Some(u32::from(avc1.visual.height));
}

struct SampleInfo {
    dts: u64,
    duration: u32,
    size: u32,
    sync: bool,
    offset: u64,
}

fn read_fragment<S: ReadAt>(
    source: &mut S,
    tracks: &mut [TrackState],
    moof_box: &TopBox,
    moof: &MoofBox,
    mdat: &TopBox,
) -> Result<FragmentReport, InspectError> {
    let at = moof_box.offset;
    let mdat_data = (mdat.offset + mdat.header_size, mdat.offset + mdat.size);
    let (mut start, mut end) = (f64::INFINITY, 0f64);
    for traf in &moof.traf_boxes {
        let tfhd = &traf.tfhd_box;
        let track = tracks
            .iter_mut()
            .find(|t| t.report.track_id == tfhd.track_id)
            .ok_or_else(|| {
                corrupt(
                    at,
                    format!("traf names track {} which moov lacks", tfhd.track_id),
                )
            })?;
        let base = tfhd.base_data_offset.unwrap_or(at);
        let mut dts = match (&traf.tfdt_box, track.next_dts) {
            (Some(tfdt), _) => tfdt.base_media_decode_time,
            (None, Some(next)) => next,
            (None, None) => 0,
        };
        if let Some(next) = track.next_dts {
            if dts < next {
                return Err(corrupt(
                    at,
                    format!(
                        "track {} goes back in time: fragment starts at tick {dts}, before {next}",
                        tfhd.track_id
                    ),
                ));
            }
            track.add_gap(next, dts - next);
        }
        let mut samples = Vec::new();
        for trun in &traf.trun_boxes {
            let mut sample_offset = base
                .checked_add_signed(i64::from(trun.data_offset.unwrap_or(0)))
                .ok_or_else(|| corrupt(at, "trun data offset points before the file"))?;
            for (i, s) in trun.samples.iter().enumerate() {
                let duration = s
                    .duration
                    .or(tfhd.default_sample_duration)
                    .or(track.trex.as_ref().map(|t| t.default_sample_duration))
                    .unwrap_or(0);
                let size = s
                    .size
                    .or(tfhd.default_sample_size)
                    .or(track.trex.as_ref().map(|t| t.default_sample_size))
                    .unwrap_or(0);
                let flags = s
                    .flags
                    .or(if i == 0 {
                        trun.first_sample_flags
                    } else {
                        None
                    })
                    .or(tfhd.default_sample_flags)
                    .or(track.trex.as_ref().map(|t| t.default_sample_flags))
                    .unwrap_or(SampleFlags::new(0));
                let sample_end = sample_offset.saturating_add(u64::from(size));
                if sample_offset < mdat_data.0 || sample_end > mdat_data.1 {
                    return Err(corrupt(
                        at,
                        format!(
                            "track {} sample {} lies at bytes {sample_offset}..{sample_end}, outside its mdat ({}..{})",
                            tfhd.track_id,
                            i + 1,
                            mdat_data.0,
                            mdat_data.1
                        ),
                    ));
                }
                samples.push(SampleInfo {
                    dts,
                    duration,
                    size,
                    sync: !flags.sample_is_non_sync_sample(),
                    offset: sample_offset,
                });
                dts = dts.saturating_add(u64::from(duration));
                sample_offset = sample_end;
            }
        }
        let media = read_media(source, &samples)?;
        for s in &samples {
            let bytes = media.as_ref().and_then(|(base, m)| {
                let from = usize::try_from(s.offset - base).ok()?;
                m.get(from..from + usize::try_from(s.size).ok()?)
            });
            note_sample(track, s, bytes);
        }
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            start = start.min(track.seconds(first.dts));
            end = end.max(track.seconds(last.dts.saturating_add(u64::from(last.duration))));
        }
    }
    Ok(FragmentReport {
        sequence: moof.mfhd_box.sequence_number,
        offset: at,
        size: moof_box.size + mdat.size,
        start_seconds: if start.is_finite() { start } else { 0.0 },
        end_seconds: end,
    })
}

/// Reads the bytes the samples occupy (they are contiguous within the mdat in practice).
fn read_media<S: ReadAt>(
    source: &mut S,
    samples: &[SampleInfo],
) -> Result<Option<(u64, Vec<u8>)>, InspectError> {
    let (Some(from), Some(to)) = (
        samples.iter().map(|s| s.offset).min(),
        samples.iter().map(|s| s.offset + u64::from(s.size)).max(),
    ) else {
        return Ok(None);
    };
    if to - from > MAX_FRAGMENT_MEDIA {
        return Ok(None);
    }
    let mut bytes = vec![0u8; usize::try_from(to - from).expect("bug: bounded above")];
    source.read_exact_at(from, &mut bytes)?;
    Ok(Some((from, bytes)))
}

fn note_sample(track: &mut TrackState, s: &SampleInfo, bytes: Option<&[u8]>) {
    track.first_dts.get_or_insert(s.dts);
    track.next_dts = Some(s.dts.saturating_add(u64::from(s.duration)));
    track.report.samples += 1;
    let time = track.seconds(s.dts);
    match track.report.kind {
        MediaKind::Audio => {
            // A packet that lasts longer than its TOC says is silence the sender did not send.
            let nominal = bytes
                .and_then(|b| opus::packet_samples(b).ok())
                .map_or(0, u64::from);
            let scaled =
                nominal * u64::from(track.report.timescale) / u64::from(opus::OPUS_CLOCK_RATE);
            let extra = u64::from(s.duration).saturating_sub(scaled);
            track.add_gap(s.dts.saturating_add(scaled), extra);
        }
        MediaKind::Video => {
            // A frame shown for longer than the threshold: the picture stood still (a paused
            // share, lost frames).
            track.add_gap(s.dts, u64::from(s.duration));
            if s.sync {
                track.report.keyframe_times.push(time);
                let prefix = bytes.map(|b| &b[..b.len().min(KEYFRAME_PREFIX as usize)]);
                let sps = prefix.and_then(|p| {
                    h264::length_prefixed_nals(p)
                        .map_while(Result::ok)
                        .find(|n| h264::nal_type(n) == Some(h264::NAL_SPS))
                        .and_then(|n| h264::parse_sps(n).ok())
                });
                if let Some(sps) = sps {
                    let changed = track
                        .report
                        .resolutions
                        .last()
                        .is_none_or(|r| (r.width, r.height) != (sps.width, sps.height));
                    if changed {
                        track.report.resolutions.push(ResolutionReport {
                            from_seconds: time,
                            width: sps.width,
                            height: sps.height,
                        });
                    }
                }
            }
        }
    }
}
