//! The init segment: which tracks a file has and how to decode them.

use std::num::{NonZeroU16, NonZeroU32};

use shiguredo_mp4::boxes::{
    Avc1Box, AvccBox, Brand, DinfBox, DopsBox, EdtsBox, ElstBox, ElstEntry, FtypBox, HdlrBox,
    MdhdBox, MdiaBox, MediaHeader, MinfBox, MoovBox, MvexBox, MvhdBox, OpusBox, SampleEntry,
    SmhdBox, StblBox, StcoBox, StscBox, StsdBox, StszBox, SttsBox, TkhdBox, TrakBox, TrexBox,
    UnknownBox, VmhdBox,
};
use shiguredo_mp4::{
    BoxSize, BoxType, Either, Encode, FixedPointNumber, LanguageCode, Mp4FileTime, SampleFlags,
    Uint,
};

use super::writer::WriterError;
use crate::h264;
use crate::timeline::{MediaKind, ParameterSets};

/// Which H.264 sample entry a video track uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum H264Entry {
    /// `avc1`: parameter sets live in the init segment only; they may not change.
    Avc1,
    /// `avc3`: parameter sets travel in-band in key frames and may change mid-stream (a new
    /// resolution, a new encoder after an SSRC change). The right choice for WebRTC input.
    Avc3,
}

/// How a track is coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCodec {
    /// H.264 video.
    H264 {
        /// `avc1` or `avc3`.
        entry: H264Entry,
        /// The parameter sets to put in `avcC`. Required for `avc1`. For `avc3` they may be
        /// unknown when the file starts (video that has not sent a key frame yet).
        parameter_sets: Option<ParameterSets>,
    },
    /// Opus audio at 48 kHz.
    Opus {
        /// 1 or 2.
        channels: u8,
        /// Samples to discard at the start (RFC 7845 pre-skip).
        pre_skip: u16,
    },
}

/// One track of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// Track id in the file (1-based, unique).
    pub track_id: u32,
    /// The codec and its configuration.
    pub codec: TrackCodec,
}

impl TrackSpec {
    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        match self.codec {
            TrackCodec::H264 { .. } => MediaKind::Video,
            TrackCodec::Opus { .. } => MediaKind::Audio,
        }
    }

    /// Ticks per second of the track (the RTP clock rate, so no time is rounded).
    pub fn timescale(&self) -> u32 {
        self.kind().clock_rate()
    }
}

/// Builds `ftyp` + `moov` for `tracks`; `creation_unix_secs` dates the file.
pub fn init_segment(tracks: &[TrackSpec], creation_unix_secs: u64) -> Result<Vec<u8>, WriterError> {
    if tracks.is_empty() {
        return Err(WriterError::NoTracks);
    }
    let created = Mp4FileTime::from_unix_time(std::time::Duration::from_secs(creation_unix_secs));
    let mut compatible_brands = vec![Brand::ISOM, Brand::ISO5, Brand::ISO6, Brand::MP41];
    if tracks.iter().any(|t| {
        matches!(
            t.codec,
            TrackCodec::H264 {
                entry: H264Entry::Avc1,
                ..
            }
        )
    }) {
        compatible_brands.push(Brand::AVC1);
    }
    let ftyp = FtypBox {
        major_brand: Brand::ISO5,
        minor_version: 0,
        compatible_brands,
    };
    let traks = tracks
        .iter()
        .map(|t| build_trak(t, created))
        .collect::<Result<Vec<_>, _>>()?;
    let next_track_id = tracks.iter().map(|t| t.track_id).max().unwrap_or(0) + 1;
    let moov = MoovBox {
        mvhd_box: MvhdBox {
            creation_time: created,
            modification_time: created,
            timescale: NonZeroU32::new(1000).expect("bug: 1000 is not zero"),
            duration: 0,
            rate: MvhdBox::DEFAULT_RATE,
            volume: MvhdBox::DEFAULT_VOLUME,
            matrix: MvhdBox::DEFAULT_MATRIX,
            next_track_id,
        },
        trak_boxes: traks,
        mvex_box: Some(MvexBox {
            mehd_box: None,
            trex_boxes: tracks
                .iter()
                .map(|t| TrexBox {
                    track_id: t.track_id,
                    default_sample_description_index: 1,
                    default_sample_duration: 0,
                    default_sample_size: 0,
                    default_sample_flags: SampleFlags::new(0),
                })
                .collect(),
            unknown_boxes: Vec::new(),
        }),
        unknown_boxes: Vec::new(),
    };
    let mut out = ftyp.encode_to_vec()?;
    out.extend_from_slice(&moov.encode_to_vec()?);
    Ok(out)
}

fn build_trak(track: &TrackSpec, created: Mp4FileTime) -> Result<TrakBox, WriterError> {
    let (sample_entry, width, height) = sample_entry(track)?;
    let video = track.kind() == MediaKind::Video;
    let tkhd = TkhdBox {
        flag_track_enabled: true,
        flag_track_in_movie: true,
        flag_track_in_preview: false,
        flag_track_size_is_aspect_ratio: false,
        creation_time: created,
        modification_time: created,
        track_id: track.track_id,
        duration: 0,
        layer: TkhdBox::DEFAULT_LAYER,
        alternate_group: TkhdBox::DEFAULT_ALTERNATE_GROUP,
        volume: if video {
            TkhdBox::DEFAULT_VIDEO_VOLUME
        } else {
            TkhdBox::DEFAULT_AUDIO_VOLUME
        },
        matrix: TkhdBox::DEFAULT_MATRIX,
        width: FixedPointNumber::new(i16::try_from(width).unwrap_or(i16::MAX), 0),
        height: FixedPointNumber::new(i16::try_from(height).unwrap_or(i16::MAX), 0),
    };
    let (handler_type, name, media_header) = if video {
        (
            HdlrBox::HANDLER_TYPE_VIDE,
            "convrec video\0",
            MediaHeader::Vmhd(VmhdBox::default()),
        )
    } else {
        (
            HdlrBox::HANDLER_TYPE_SOUN,
            "convrec audio\0",
            MediaHeader::Smhd(SmhdBox::default()),
        )
    };
    // Opus's pre-skip (the encoder's look-ahead) is trimmed by an edit list (the Opus in
    // ISOBMFF mapping): players start the sound that many samples in, so it lines up with video.
    let edts_box = match track.codec {
        TrackCodec::Opus { pre_skip, .. } if pre_skip > 0 => Some(EdtsBox {
            elst_box: Some(ElstBox {
                entries: vec![ElstEntry {
                    // 0: the whole (fragmented, still growing) track.
                    edit_duration: 0,
                    media_time: i64::from(pre_skip),
                    media_rate: FixedPointNumber::new(1, 0),
                }],
            }),
            unknown_boxes: Vec::new(),
        }),
        _ => None,
    };
    Ok(TrakBox {
        tkhd_box: tkhd,
        edts_box,
        mdia_box: MdiaBox {
            mdhd_box: MdhdBox {
                creation_time: created,
                modification_time: created,
                timescale: NonZeroU32::new(track.timescale())
                    .expect("bug: clock rates are not zero"),
                duration: 0,
                language: LanguageCode::new(*b"und").expect("bug: 'und' is a valid language"),
            },
            hdlr_box: HdlrBox {
                handler_type,
                name: name.as_bytes().to_vec(),
            },
            minf_box: MinfBox {
                media_header: Some(media_header),
                dinf_box: DinfBox::LOCAL_FILE,
                stbl_box: StblBox {
                    stsd_box: StsdBox {
                        entries: vec![sample_entry],
                    },
                    stts_box: SttsBox {
                        entries: Vec::new(),
                    },
                    ctts_box: None,
                    cslg_box: None,
                    stsc_box: StscBox {
                        entries: Vec::new(),
                    },
                    stsz_box: StszBox::Variable {
                        entry_sizes: Vec::new(),
                    },
                    stco_or_co64_box: Either::A(StcoBox {
                        chunk_offsets: Vec::new(),
                    }),
                    stss_box: None,
                    sdtp_box: None,
                    unknown_boxes: Vec::new(),
                },
                unknown_boxes: Vec::new(),
            },
            unknown_boxes: Vec::new(),
        },
        unknown_boxes: Vec::new(),
    })
}

/// The `stsd` entry of a track, with the picture size for `tkhd`.
fn sample_entry(track: &TrackSpec) -> Result<(SampleEntry, u32, u32), WriterError> {
    match &track.codec {
        TrackCodec::Opus { channels, pre_skip } => {
            let entry = SampleEntry::Opus(OpusBox {
                audio: shiguredo_mp4::boxes::AudioSampleEntryFields {
                    data_reference_index: NonZeroU16::MIN,
                    channelcount: u16::from(*channels),
                    samplesize: 16,
                    samplerate: FixedPointNumber::new(48_000, 0),
                },
                dops_box: DopsBox {
                    output_channel_count: *channels,
                    pre_skip: *pre_skip,
                    input_sample_rate: 48_000,
                    output_gain: 0,
                },
                unknown_boxes: Vec::new(),
            });
            Ok((entry, 0, 0))
        }
        TrackCodec::H264 {
            entry,
            parameter_sets,
        } => {
            let info = match parameter_sets {
                Some(p) => Some(h264::parse_sps(&p.sps)?),
                None if *entry == H264Entry::Avc1 => {
                    return Err(WriterError::Avc1NeedsParameterSets);
                }
                None => None,
            };
            // Without parameter sets yet (avc3 only), the record names constrained baseline
            // level 3.1, what WebRTC senders offer first; decoders follow the in-band SPS.
            let (profile, compat, level) = info.map_or((66, 0xe0, 31), |i| {
                (i.profile_idc, i.constraint_flags, i.level_idc)
            });
            let (width, height) = info.map_or((0, 0), |i| (i.width, i.height));
            // ISO/IEC 14496-15 §5.3.3.1: profiles other than baseline, main and extended carry
            // the chroma format and bit depths (as the SPS says; 4:2:0 8-bit without one).
            let high = !matches!(profile, 66 | 77 | 88);
            let (chroma, luma, chroma_depth) = info.map_or((1, 0, 0), |i| {
                (
                    i.chroma_format_idc,
                    i.bit_depth_luma_minus8,
                    i.bit_depth_chroma_minus8,
                )
            });
            let avc1 = Avc1Box {
                visual: shiguredo_mp4::boxes::VisualSampleEntryFields {
                    data_reference_index: NonZeroU16::MIN,
                    width: u16::try_from(width).unwrap_or(u16::MAX),
                    height: u16::try_from(height).unwrap_or(u16::MAX),
                    horizresolution:
                        shiguredo_mp4::boxes::VisualSampleEntryFields::DEFAULT_HORIZRESOLUTION,
                    vertresolution:
                        shiguredo_mp4::boxes::VisualSampleEntryFields::DEFAULT_VERTRESOLUTION,
                    frame_count: 1,
                    compressorname: [0; 32],
                    depth: shiguredo_mp4::boxes::VisualSampleEntryFields::DEFAULT_DEPTH,
                },
                avcc_box: AvccBox {
                    avc_profile_indication: profile,
                    profile_compatibility: compat,
                    avc_level_indication: level,
                    length_size_minus_one: Uint::new(3),
                    sps_list: parameter_sets.iter().map(|p| p.sps.clone()).collect(),
                    pps_list: parameter_sets.iter().map(|p| p.pps.clone()).collect(),
                    chroma_format: high.then(|| Uint::new(chroma)),
                    bit_depth_luma_minus8: high.then(|| Uint::new(luma)),
                    bit_depth_chroma_minus8: high.then(|| Uint::new(chroma_depth)),
                    sps_ext_list: Vec::new(),
                },
                unknown_boxes: Vec::new(),
            };
            let entry = match entry {
                H264Entry::Avc1 => SampleEntry::Avc1(avc1),
                H264Entry::Avc3 => {
                    // shiguredo_mp4 has no `avc3` type; its payload is exactly avc1's.
                    let bytes = avc1.encode_to_vec()?;
                    let (header, payload) =
                        shiguredo_mp4::BoxHeader::decode_header_and_payload(&bytes)?;
                    let _ = header;
                    SampleEntry::Unknown(UnknownBox {
                        box_type: BoxType::Normal(*b"avc3"),
                        box_size: BoxSize::with_payload_size(
                            BoxType::Normal(*b"avc3"),
                            payload.len() as u64,
                        ),
                        payload: payload.to_vec(),
                    })
                }
            };
            Ok((entry, width, height))
        }
    }
}
