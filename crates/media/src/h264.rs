//! H.264 bitstream helpers: NAL unit iteration (Annex B and length-prefixed), access-unit facts
//! (key frame, parameter sets) and the few SPS fields a recorder needs (profile, level, size).
//!
//! Everything here reads untrusted bytes: it never panics and never allocates from a length it
//! read, only from the input it was given.

use thiserror::Error;

/// NAL unit type of a coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a coded slice of an IDR picture (a key frame).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The type of a NAL unit, from its first byte.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Iterates over the NAL units of an Annex B byte stream (start codes `00 00 01` or
/// `00 00 00 01`). Bytes before the first start code are skipped; empty NAL units are skipped.
pub fn annexb_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    AnnexBNals {
        rest: match find_start_code(data) {
            Some((pos, len)) => &data[pos + len..],
            None => &[],
        },
    }
}

struct AnnexBNals<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let (nal, next) = match find_start_code(self.rest) {
                Some((pos, len)) => (&self.rest[..pos], &self.rest[pos + len..]),
                None => (self.rest, &[][..]),
            };
            self.rest = next;
            // A 4-byte start code leaves a trailing zero on the previous NAL in a naive split;
            // `find_start_code` reports the zero as part of the start code, so `nal` is exact.
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Finds the next start code; returns its position and length (3 or 4 bytes).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    let pos = memchr::memmem::find(data, &[0, 0, 1])?;
    Some(if pos > 0 && data[pos - 1] == 0 {
        (pos - 1, 4)
    } else {
        (pos, 3)
    })
}

/// Iterates over the NAL units of a sample with 4-byte big-endian length prefixes (the `avcC`
/// layout convrec writes). Stops at the first length that runs past the end.
pub fn length_prefixed_nals(data: &[u8]) -> impl Iterator<Item = Result<&[u8], H264Error>> {
    let mut rest = data;
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len_bytes, after)) = rest.split_first_chunk::<4>() else {
            rest = &[];
            return Some(Err(H264Error::TruncatedLength { offset }));
        };
        let len = u32::from_be_bytes(*len_bytes) as usize;
        if len > after.len() {
            rest = &[];
            return Some(Err(H264Error::NalPastEnd {
                offset,
                len,
                available: after.len(),
            }));
        }
        let (nal, next) = after.split_at(len);
        rest = next;
        offset += 4 + len;
        Some(Ok(nal))
    })
}

/// Appends `nal` to `out` with a 4-byte big-endian length prefix.
pub fn push_length_prefixed(out: &mut Vec<u8>, nal: &[u8]) -> Result<(), H264Error> {
    let len = u32::try_from(nal.len()).map_err(|_| H264Error::NalTooLarge { len: nal.len() })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// Errors in H.264 input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum H264Error {
    /// A length prefix was cut short.
    #[error("NAL length prefix at byte {offset} is cut short")]
    TruncatedLength {
        /// Byte offset of the prefix within the sample.
        offset: usize,
    },
    /// A NAL unit's length runs past the end of the sample.
    #[error("NAL at byte {offset} declares {len} bytes but only {available} remain")]
    NalPastEnd {
        /// Byte offset of the prefix within the sample.
        offset: usize,
        /// Declared length.
        len: usize,
        /// Bytes that remain.
        available: usize,
    },
    /// A NAL unit larger than 4 GiB.
    #[error("NAL unit of {len} bytes is larger than a 32-bit length allows")]
    NalTooLarge {
        /// Its length.
        len: usize,
    },
    /// A sequence parameter set could not be read.
    #[error("sequence parameter set is malformed: {0}")]
    BadSps(&'static str),
}

/// The fields of a sequence parameter set a recorder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc` (66 baseline, 77 main, 100 high …).
    pub profile_idc: u8,
    /// The constraint flags byte (`constraint_set0_flag` … as in `avcC`'s profile_compatibility).
    pub constraint_flags: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// Picture width in luma samples, after cropping.
    pub width: u32,
    /// Picture height in luma samples, after cropping.
    pub height: u32,
    /// `chroma_format_idc` (1 = 4:2:0; High profiles may use 0, 2 or 3).
    pub chroma_format_idc: u8,
    /// Luma bit depth minus 8.
    pub bit_depth_luma_minus8: u8,
    /// Chroma bit depth minus 8.
    pub bit_depth_chroma_minus8: u8,
}

/// Reads profile, level and cropped picture size from an SPS NAL unit (header byte included).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    if nal_type(nal) != Some(NAL_SPS) {
        return Err(H264Error::BadSps("not an SPS NAL unit"));
    }
    let rbsp = unescape_rbsp(nal.get(1..).unwrap_or_default());
    if rbsp.len() < 4 {
        return Err(H264Error::BadSps("shorter than its fixed header"));
    }
    let (profile_idc, constraint_flags, level_idc) = (rbsp[0], rbsp[1], rbsp[2]);
    let mut r = BitReader::new(&rbsp[3..]);
    let err = H264Error::BadSps;
    let _sps_id = r.ue().ok_or(err("seq_parameter_set_id"))?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let (mut depth_luma, mut depth_chroma) = (0, 0);
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue().ok_or(err("chroma_format_idc"))?;
        if chroma_format_idc > 3 {
            return Err(err("chroma_format_idc above 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit().ok_or(err("separate_colour_plane_flag"))?;
        }
        depth_luma = r.ue().ok_or(err("bit_depth_luma_minus8"))?;
        depth_chroma = r.ue().ok_or(err("bit_depth_chroma_minus8"))?;
        if depth_luma > 6 || depth_chroma > 6 {
            return Err(err("bit depth above 14"));
        }
        r.bit().ok_or(err("qpprime_y_zero_transform_bypass_flag"))?;
        if r.bit().ok_or(err("seq_scaling_matrix_present_flag"))? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit().ok_or(err("seq_scaling_list_present_flag"))? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })
                        .ok_or(err("scaling list"))?;
                }
            }
        }
    }
    r.ue().ok_or(err("log2_max_frame_num_minus4"))?;
    let poc_type = r.ue().ok_or(err("pic_order_cnt_type"))?;
    match poc_type {
        0 => {
            r.ue().ok_or(err("log2_max_pic_order_cnt_lsb_minus4"))?;
        }
        1 => {
            r.bit().ok_or(err("delta_pic_order_always_zero_flag"))?;
            r.se().ok_or(err("offset_for_non_ref_pic"))?;
            r.se().ok_or(err("offset_for_top_to_bottom_field"))?;
            let cycle = r.ue().ok_or(err("num_ref_frames_in_pic_order_cnt_cycle"))?;
            if cycle > 255 {
                return Err(err("num_ref_frames_in_pic_order_cnt_cycle above 255"));
            }
            for _ in 0..cycle {
                r.se().ok_or(err("offset_for_ref_frame"))?;
            }
        }
        2 => {}
        _ => return Err(err("pic_order_cnt_type above 2")),
    }
    r.ue().ok_or(err("max_num_ref_frames"))?;
    r.bit().ok_or(err("gaps_in_frame_num_value_allowed_flag"))?;
    let width_mbs = r.ue().ok_or(err("pic_width_in_mbs_minus1"))? as u64 + 1;
    let height_map_units = r.ue().ok_or(err("pic_height_in_map_units_minus1"))? as u64 + 1;
    let frame_mbs_only = r.bit().ok_or(err("frame_mbs_only_flag"))?;
    if !frame_mbs_only {
        r.bit().ok_or(err("mb_adaptive_frame_field_flag"))?;
    }
    r.bit().ok_or(err("direct_8x8_inference_flag"))?;
    let height_mbs = height_map_units * if frame_mbs_only { 1 } else { 2 };
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.bit().ok_or(err("frame_cropping_flag"))? {
        let left = r.ue().ok_or(err("frame_crop_left_offset"))? as u64;
        let right = r.ue().ok_or(err("frame_crop_right_offset"))? as u64;
        let top = r.ue().ok_or(err("frame_crop_top_offset"))? as u64;
        let bottom = r.ue().ok_or(err("frame_crop_bottom_offset"))? as u64;
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (0, _) | (3, true) => (1, 1),
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        crop_x = sub_w * (left + right);
        crop_y = sub_h * field_factor * (top + bottom);
    }
    let width = (width_mbs * 16)
        .checked_sub(crop_x)
        .ok_or(err("cropping wider than the picture"))?;
    let height = (height_mbs * 16)
        .checked_sub(crop_y)
        .ok_or(err("cropping taller than the picture"))?;
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: u32::try_from(width).map_err(|_| err("width out of range"))?,
        height: u32::try_from(height).map_err(|_| err("height out of range"))?,
        chroma_format_idc: u8::try_from(chroma_format_idc).expect("bug: checked to be at most 3"),
        bit_depth_luma_minus8: u8::try_from(depth_luma).expect("bug: checked to be at most 6"),
        bit_depth_chroma_minus8: u8::try_from(depth_chroma).expect("bug: checked to be at most 6"),
    })
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Whether a VCL NAL unit starts a new picture (`first_mb_in_slice == 0`). Non-VCL units and
/// unreadable headers answer `false`.
pub fn starts_picture(nal: &[u8]) -> bool {
    match nal_type(nal) {
        Some(NAL_SLICE..=NAL_IDR) => {
            // first_mb_in_slice is ue(v); its value is 0 exactly when the first bit is 1.
            nal.get(1).is_some_and(|b| b & 0x80 != 0)
        }
        _ => false,
    }
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`).
fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits and Exp-Golomb codes; every read returns `None` past the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut value: u64 = 1;
        for _ in 0..zeros {
            value = (value << 1) | u64::from(self.bit()?);
        }
        u32::try_from(value - 1).ok()
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// What one access unit holds, found in one pass over its NAL units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessUnitInfo {
    /// Holds an IDR slice.
    pub keyframe: bool,
    /// Holds any coded slice at all.
    pub has_slice: bool,
    /// The last SPS it carries.
    pub sps: Option<Vec<u8>>,
    /// The last PPS it carries.
    pub pps: Option<Vec<u8>>,
}

/// Converts an Annex B access unit to 4-byte length-prefixed NAL units (dropping access unit
/// delimiters) and reports what it holds. `out` is cleared first.
pub fn annexb_to_length_prefixed(
    annexb: &[u8],
    out: &mut Vec<u8>,
) -> Result<AccessUnitInfo, H264Error> {
    out.clear();
    out.reserve(annexb.len() + 16);
    let mut info = AccessUnitInfo::default();
    for nal in annexb_nals(annexb) {
        match nal_type(nal) {
            Some(NAL_AUD) => continue,
            Some(NAL_IDR) => {
                info.keyframe = true;
                info.has_slice = true;
            }
            Some(NAL_SLICE) => info.has_slice = true,
            Some(NAL_SPS) => info.sps = Some(nal.to_vec()),
            Some(NAL_PPS) => info.pps = Some(nal.to_vec()),
            _ => {}
        }
        push_length_prefixed(out, nal)?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let nals: Vec<_> = annexb_nals(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
    }

    #[test]
    fn annexb_without_start_code_yields_nothing() {
        assert_eq!(annexb_nals(&[1, 2, 3]).count(), 0);
        assert_eq!(annexb_nals(&[]).count(), 0);
    }

    #[test]
    fn length_prefixed_reports_overrun() {
        let data = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 9, 0x41];
        let nals: Vec<_> = length_prefixed_nals(&data).collect();
        assert_eq!(nals[0], Ok(&[0x65, 1][..]));
        assert!(matches!(
            nals[1],
            Err(H264Error::NalPastEnd { offset: 6, .. })
        ));
    }

    #[test]
    fn parses_baseline_sps_size() {
        // The SPS of fixtures/cbp-320x240-30fps.h264 (x264, constrained baseline, 320x240).
        let sps = [
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
        ];
        let info = parse_sps(&sps).expect("valid SPS");
        assert_eq!((info.profile_idc, info.level_idc), (66, 13));
        assert_eq!((info.width, info.height), (320, 240));
    }

    #[test]
    fn sps_garbage_is_an_error_not_a_panic() {
        for len in 0..12 {
            let _ = parse_sps(&[0x67, 0x64, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..len]);
        }
        assert!(parse_sps(&[0x67, 0x42]).is_err());
    }
}
