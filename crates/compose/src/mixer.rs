//! Everyone's sound in one track: decoded 48 kHz mono PCM from each source, placed by its
//! position on the recording's timeline (sample 0 = the recording's start), summed, and kept
//! from clipping by a soft limiter. Each source's level is measured on the way, which says who
//! is speaking.
//!
//! Sans-IO: the caller pushes what it decoded and asks for the mix of a stretch of samples when
//! it decides that stretch is complete (late packets for a stretch already mixed are dropped and
//! counted, never mixed out of place).

use std::collections::{BTreeMap, VecDeque};

/// Samples per second.
pub const RATE: u32 = 48_000;

/// Below this level (RMS, full scale 1.0) a source is silent, never the speaker.
const SPEAKING_RMS: f32 = 0.01;

/// The speaker changes only to a source louder than the current one for this many samples
/// (500 ms): voices overlap, the picture must not flicker.
const SPEAKER_HOLD: u64 = RATE as u64 / 2;

/// Where the limiter starts to bend the curve; it never reaches full scale.
const KNEE: f32 = 0.8;

/// Identifies a source (a publication's audio).
pub type SourceId = u64;

#[derive(Debug, Default)]
struct Source {
    /// Samples from `start` on.
    start: u64,
    samples: VecDeque<f32>,
    /// RMS of the last mixed stretch.
    level: f32,
}

/// The mixer.
#[derive(Debug, Default)]
pub struct Mixer {
    sources: BTreeMap<SourceId, Source>,
    /// Everything before this sample has been mixed.
    mixed_until: u64,
    speaker: Option<SourceId>,
    /// Since when another source has been louder than the speaker.
    challenger: Option<(SourceId, u64)>,
    dropped_late: u64,
}

impl Mixer {
    /// A mixer whose first stretch starts at sample 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `samples` of `source` starting at sample `at` of the timeline. What falls before
    /// the part already mixed is dropped (counted in [`Mixer::dropped_late`]); what overlaps
    /// samples already pushed replaces nothing (the first one wins); gaps are silence.
    pub fn push(&mut self, source: SourceId, at: u64, samples: &[f32]) {
        let skip = self
            .mixed_until
            .saturating_sub(at)
            .min(samples.len() as u64);
        self.dropped_late += skip;
        let (at, samples) = (at + skip, &samples[skip as usize..]);
        if samples.is_empty() {
            return;
        }
        let s = self.sources.entry(source).or_default();
        if s.samples.is_empty() {
            // Nothing waits: this is where the source's sound resumes.
            s.start = at;
        }
        let end = s.start + s.samples.len() as u64;
        if at > end {
            // A gap (DTX, loss): silence until the new samples.
            s.samples
                .extend(std::iter::repeat_n(0.0, (at - end) as usize));
        }
        let end = s.start + s.samples.len() as u64;
        let overlap = end.saturating_sub(at).min(samples.len() as u64) as usize;
        s.samples.extend(
            samples[overlap..]
                .iter()
                .map(|x| if x.is_finite() { *x } else { 0.0 }),
        );
    }

    /// Removes a source (its publication ended); what it had not yet mixed is dropped.
    pub fn remove(&mut self, source: SourceId) {
        self.sources.remove(&source);
        if self.speaker == Some(source) {
            self.speaker = None;
        }
    }

    /// Mixes the next `out.len()` samples (from [`Mixer::position`]) into `out` and moves on.
    pub fn mix(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        let from = self.mixed_until;
        let to = from + out.len() as u64;
        for s in self.sources.values_mut() {
            let mut energy = 0.0f64;
            // Samples before `from` cannot exist (push drops them); start at `from`.
            let offset = s.start.saturating_sub(from).min(out.len() as u64) as usize;
            let available = (s.start + s.samples.len() as u64).min(to);
            let count = available.saturating_sub(from + offset as u64) as usize;
            for (slot, x) in out[offset..offset + count]
                .iter_mut()
                .zip(s.samples.drain(..count))
            {
                *slot += x;
                energy += f64::from(x) * f64::from(x);
            }
            s.start = s.start.max(to);
            if s.samples.is_empty() {
                s.start = to;
            }
            s.level = (energy / out.len().max(1) as f64).sqrt() as f32;
        }
        for x in out.iter_mut() {
            *x = limit(*x);
        }
        self.mixed_until = to;
        self.follow_speaker(to);
    }

    /// The first sample not yet mixed.
    pub fn position(&self) -> u64 {
        self.mixed_until
    }

    /// The loudest source (RMS of the last mixed stretch), held for [`SPEAKER_HOLD`] against
    /// challengers; none while everyone is silent.
    pub fn speaker(&self) -> Option<SourceId> {
        self.speaker
    }

    /// A source's level in the last mixed stretch (RMS, full scale 1.0).
    pub fn level(&self, source: SourceId) -> f32 {
        self.sources.get(&source).map_or(0.0, |s| s.level)
    }

    /// Samples that arrived for a stretch already mixed, and were dropped.
    pub fn dropped_late(&self) -> u64 {
        self.dropped_late
    }

    fn follow_speaker(&mut self, now: u64) {
        let loudest = self
            .sources
            .iter()
            .filter(|(_, s)| s.level >= SPEAKING_RMS)
            .max_by(|a, b| a.1.level.total_cmp(&b.1.level))
            .map(|(id, _)| *id);
        match (self.speaker, loudest) {
            (_, None) => self.challenger = None,
            (None, Some(id)) => {
                self.speaker = Some(id);
                self.challenger = None;
            }
            (Some(current), Some(id)) if current == id => self.challenger = None,
            (Some(_), Some(id)) => match self.challenger {
                Some((challenger, since)) if challenger == id => {
                    if now - since >= SPEAKER_HOLD {
                        self.speaker = Some(id);
                        self.challenger = None;
                    }
                }
                _ => self.challenger = Some((id, now)),
            },
        }
    }
}

/// A soft limiter: straight up to the knee, then bent so that no input reaches full scale.
fn limit(x: f32) -> f32 {
    let magnitude = x.abs();
    if magnitude <= KNEE {
        return x;
    }
    let room = 1.0 - KNEE;
    let bent = KNEE + room * ((magnitude - KNEE) / room).tanh();
    // Stay strictly inside full scale: an encoder must never see a clipped peak.
    bent.min(0.999).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tone(frequency: f32, amplitude: f32, from: u64, count: usize) -> Vec<f32> {
        (0..count)
            .map(|i| {
                let t = (from + i as u64) as f32 / RATE as f32;
                amplitude * (2.0 * std::f32::consts::PI * frequency * t).sin()
            })
            .collect()
    }

    /// The amplitude of `frequency` in `samples` (Goertzel).
    fn strength(samples: &[f32], frequency: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * frequency / RATE as f32;
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for x in samples {
            let s = x + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        2.0 * power.sqrt() / samples.len() as f32
    }

    #[test]
    fn two_voices_are_both_in_the_mix_at_their_places() {
        let mut mixer = Mixer::new();
        // 440 Hz for the first second; 1 kHz from 0.5 s to 1.5 s.
        mixer.push(1, 0, &tone(440.0, 0.3, 0, 48_000));
        mixer.push(2, 24_000, &tone(1000.0, 0.3, 24_000, 48_000));
        let mut out = vec![0.0; 9_600];
        let mut stretches = Vec::new();
        for _ in 0..8 {
            mixer.mix(&mut out);
            stretches.push((strength(&out, 440.0), strength(&out, 1000.0)));
        }
        // 0–0.2 s: only 440; 0.6–0.8 s: both; 1.2–1.4 s: only 1 kHz.
        assert!(
            stretches[0].0 > 0.25 && stretches[0].1 < 0.02,
            "{stretches:?}"
        );
        assert!(
            stretches[3].0 > 0.25 && stretches[3].1 > 0.25,
            "{stretches:?}"
        );
        assert!(
            stretches[6].0 < 0.02 && stretches[6].1 > 0.25,
            "{stretches:?}"
        );
        assert_eq!(mixer.position(), 76_800);
    }

    #[test]
    fn late_samples_are_dropped_and_gaps_are_silence() {
        let mut mixer = Mixer::new();
        let mut out = vec![0.0; 960];
        mixer.mix(&mut out);
        // Arrives for 0..960, already mixed: dropped; the rest lands at 960.
        mixer.push(1, 0, &[0.5; 1920]);
        assert_eq!(mixer.dropped_late(), 960);
        mixer.mix(&mut out);
        assert!(out.iter().all(|x| (*x - 0.5).abs() < 1e-6));
        // A gap of one frame, then more.
        mixer.push(1, 2880, &[0.25; 960]);
        mixer.mix(&mut out);
        assert!(out.iter().all(|x| *x == 0.0), "the gap is silence");
        mixer.mix(&mut out);
        assert!(out.iter().all(|x| (*x - 0.25).abs() < 1e-6));
    }

    #[test]
    fn the_speaker_is_the_loudest_and_changes_only_after_half_a_second() {
        let mut mixer = Mixer::new();
        let mut out = vec![0.0; 960];
        mixer.push(1, 0, &tone(300.0, 0.2, 0, 96_000));
        mixer.push(2, 0, &tone(500.0, 0.05, 0, 24_000));
        mixer.push(2, 24_000, &tone(500.0, 0.5, 24_000, 72_000));
        let mut speakers = Vec::new();
        for _ in 0..60 {
            mixer.mix(&mut out);
            speakers.push(mixer.speaker());
        }
        assert_eq!(speakers[10], Some(1));
        // Source 2 gets louder at 0.5 s (frame 25) and takes over half a second later.
        assert_eq!(speakers[30], Some(1));
        assert_eq!(speakers[48], Some(1));
        assert_eq!(speakers[59], Some(2));
        assert!(mixer.level(2) > mixer.level(1));
    }

    proptest! {
        #[test]
        fn the_mix_never_reaches_full_scale_and_is_finite(
            values in proptest::collection::vec(proptest::num::f32::ANY, 1..2000),
            sources in 1u64..6,
        ) {
            let mut mixer = Mixer::new();
            for s in 0..sources {
                mixer.push(s, 0, &values);
            }
            let mut out = vec![0.0; values.len()];
            mixer.mix(&mut out);
            for x in out {
                prop_assert!(x.is_finite() && x.abs() < 1.0, "{}", x);
            }
        }

        #[test]
        fn quiet_input_passes_unchanged(x in -0.8f32..0.8) {
            prop_assert_eq!(limit(x), x);
        }
    }
}
