//! The codecs convrec negotiates: Opus, and H.264 with packetization mode 1 in the profiles
//! WebRTC senders use (constrained baseline, baseline, main). Everything else is declined, and an
//! offer that has none of them is refused with an error that says what is missing.

use std::time::Instant;

use str0m::{Rtc, RtcConfig};
use thiserror::Error;

/// H.264 profile-level-ids offered (profile_idc + constraint byte, level 3.1): constrained
/// baseline, baseline, main. Levels differ freely; profiles must match.
const H264_PROFILES: [(u32, u8, u8); 3] = [
    (0x42e01f, 108, 109),
    (0x42001f, 127, 121),
    (0x4d001f, 123, 119),
];

/// The profile part (first two bytes) of the accepted profile-level-ids, as SDP writes them.
const H264_PROFILE_PREFIXES: [&str; 3] = ["42e0", "4200", "4d00"];

/// How often a sender report goes out per stream. str0m's default for audio is 5 s, which left
/// the first seconds of audio aligned by arrival only; recordings align within a second.
const SENDER_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Video packets held back to put reordered ones in place and wait for retransmissions. str0m
/// asks for at least the packets of the largest key frame (its default, 30, is below a 720p
/// key frame's ~90 at 2 Mbit/s), and recording can afford the wait: at 2 Mbit/s this is about
/// a second of packets.
const REORDERING_VIDEO_PACKETS: usize = 256;

/// Audio packets (20 ms each) held back for reordering: 1 s, so a network that delays some
/// packets by hundreds of milliseconds loses none of them (str0m's default is 15, 300 ms).
const REORDERING_AUDIO_PACKETS: usize = 50;

/// A str0m configuration with only convrec's codecs.
pub fn rtc_config() -> RtcConfig {
    let mut config = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .set_rtcp_report_interval_audio(SENDER_REPORT_INTERVAL)
        .set_rtcp_report_interval_video(SENDER_REPORT_INTERVAL)
        .set_reordering_size_video(REORDERING_VIDEO_PACKETS)
        .set_reordering_size_audio(REORDERING_AUDIO_PACKETS);
    let codecs = config.codec_config();
    for (profile_level_id, pt, rtx) in H264_PROFILES {
        codecs.add_h264(pt.into(), Some(rtx.into()), true, profile_level_id);
    }
    config
}

/// A server-side peer: ICE-lite, as a server with a public address is.
pub fn server_rtc(now: Instant) -> Rtc {
    rtc_config().set_ice_lite(true).build(now)
}

/// A client-side peer (full ICE).
pub fn client_rtc(now: Instant) -> Rtc {
    rtc_config().build(now)
}

/// What an offer's media sections carry that convrec can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsableMedia {
    /// An audio section offers Opus.
    pub audio: bool,
    /// A video section offers H.264 with packetization mode 1 in an accepted profile.
    pub video: bool,
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The SDP has no media sections at all.
    #[error("the SDP offer has no media sections (m= lines)")]
    NoMedia,
    /// No section offers a codec convrec records.
    #[error(
        "the SDP offer has no usable codec: {details}. convrec records Opus audio and H.264 video \
         with packetization-mode=1 in constrained baseline (42e0xx), baseline (4200xx) or main \
         (4d00xx) profile"
    )]
    NoUsableCodec {
        /// What each media section offered.
        details: String,
    },
}

/// Checks which media sections of an SDP offer carry a usable codec, before any state is made.
pub fn check_offer(sdp: &str) -> Result<UsableMedia, OfferError> {
    let sections = media_sections(sdp);
    if sections.is_empty() {
        return Err(OfferError::NoMedia);
    }
    let mut usable = UsableMedia::default();
    let mut details = Vec::new();
    for section in &sections {
        match section.kind.as_str() {
            "audio" if section.has_opus() => usable.audio = true,
            "video" if section.has_usable_h264() => usable.video = true,
            kind => details.push(format!("{kind} offers {}", section.describe())),
        }
    }
    if usable.audio || usable.video {
        Ok(usable)
    } else {
        Err(OfferError::NoUsableCodec {
            details: details.join("; "),
        })
    }
}

struct MediaSection {
    kind: String,
    /// (payload type, encoding name, fmtp parameters)
    formats: Vec<(String, String, String)>,
}

impl MediaSection {
    fn has_opus(&self) -> bool {
        self.formats.iter().any(|(_, name, _)| {
            name.eq_ignore_ascii_case("opus/48000/2") || name.eq_ignore_ascii_case("opus/48000")
        })
    }

    fn has_usable_h264(&self) -> bool {
        self.formats.iter().any(|(_, name, fmtp)| {
            let fmtp = fmtp.to_ascii_lowercase();
            name.to_ascii_lowercase().starts_with("h264/")
                && fmtp.split(';').any(|p| p.trim() == "packetization-mode=1")
                && fmtp.split(';').any(|p| {
                    p.trim()
                        .strip_prefix("profile-level-id=")
                        .is_some_and(|id| {
                            H264_PROFILE_PREFIXES
                                .iter()
                                .any(|prefix| id.starts_with(prefix))
                        })
                })
        })
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .formats
            .iter()
            .filter(|(_, name, _)| !name.to_ascii_lowercase().starts_with("rtx/"))
            .map(|(_, name, fmtp)| {
                let lower = name.to_ascii_lowercase();
                if lower.starts_with("h264/") && !fmtp.is_empty() {
                    format!("{name} ({fmtp})")
                } else {
                    name.clone()
                }
            })
            .collect();
        if names.is_empty() {
            "no codecs".into()
        } else {
            names.join(", ")
        }
    }
}

/// The m= sections of an SDP with their rtpmap and fmtp lines. Tolerant: it only reads.
fn media_sections(sdp: &str) -> Vec<MediaSection> {
    let mut sections: Vec<MediaSection> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            sections.push(MediaSection {
                kind: m.split_whitespace().next().unwrap_or_default().to_owned(),
                formats: Vec::new(),
            });
        } else if let Some(section) = sections.last_mut() {
            if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let mut parts = map.splitn(2, ' ');
                let pt = parts.next().unwrap_or_default().to_owned();
                let name = parts.next().unwrap_or_default().trim().to_owned();
                section.formats.push((pt, name, String::new()));
            } else if let Some(fmtp) = line.strip_prefix("a=fmtp:") {
                let mut parts = fmtp.splitn(2, ' ');
                let pt = parts.next().unwrap_or_default();
                let params = parts.next().unwrap_or_default().trim();
                if let Some(format) = section.formats.iter_mut().find(|(p, _, _)| p == pt) {
                    format.2 = params.to_owned();
                }
            }
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LIKE: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:103 rtx/90000\r\n";

    #[test]
    fn a_browser_offer_is_usable() {
        assert_eq!(
            check_offer(CHROME_LIKE),
            Ok(UsableMedia {
                audio: true,
                video: true
            })
        );
    }

    #[test]
    fn an_offer_without_usable_codecs_names_what_it_offered() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 H264/90000\r\n\
a=fmtp:97 packetization-mode=0;profile-level-id=42e01f\r\n";
        let err = check_offer(sdp).unwrap_err().to_string();
        assert!(err.contains("audio offers PCMU/8000"), "{err}");
        assert!(
            err.contains(
                "video offers VP8/90000, H264/90000 (packetization-mode=0;profile-level-id=42e01f)"
            ),
            "{err}"
        );
        assert!(err.contains("packetization-mode=1"), "{err}");
    }

    #[test]
    fn high_profile_only_is_refused_and_no_media_is_named() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 100\r\na=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=1;profile-level-id=64001f\r\n";
        assert!(matches!(
            check_offer(sdp),
            Err(OfferError::NoUsableCodec { .. })
        ));
        assert_eq!(check_offer("v=0\r\n"), Err(OfferError::NoMedia));
    }
}
