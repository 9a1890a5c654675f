//! Splits an H.264 Annex B elementary stream into access units.

use crate::h264::{self, NAL_AUD, NAL_PPS, NAL_SPS};

/// One access unit: its NAL units in Annex B form (4-byte start codes), and whether it is a key
/// frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Annex B bytes of the access unit.
    pub data: Vec<u8>,
    /// Holds an IDR slice.
    pub keyframe: bool,
}

/// Splits `stream` into access units. A new one begins at an access unit delimiter, or at a
/// parameter set or slice that starts a picture after the current unit already holds a slice.
pub fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut units = Vec::new();
    let mut current = AccessUnit {
        data: Vec::new(),
        keyframe: false,
    };
    let mut has_slice = false;
    for nal in h264::annexb_nals(stream) {
        let nal_type = h264::nal_type(nal).unwrap_or(0);
        let begins_unit = nal_type == NAL_AUD
            || matches!(nal_type, NAL_SPS | NAL_PPS)
            || h264::starts_picture(nal);
        if begins_unit && has_slice {
            units.push(std::mem::replace(
                &mut current,
                AccessUnit {
                    data: Vec::new(),
                    keyframe: false,
                },
            ));
            has_slice = false;
        }
        if matches!(nal_type, h264::NAL_SLICE | h264::NAL_IDR) {
            has_slice = true;
            current.keyframe |= nal_type == h264::NAL_IDR;
        }
        current.data.extend_from_slice(&[0, 0, 0, 1]);
        current.data.extend_from_slice(nal);
    }
    if has_slice {
        units.push(current);
    }
    units
}
