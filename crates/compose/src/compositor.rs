//! The composed picture over time: each source's decoded pictures come in with their times on
//! the recording's timeline; frames go out at a fixed rate, each showing, per source, the
//! newest picture not later than half a frame after it, so a picture lands in the output frame
//! nearest its time (off by at most half a frame, either way, which keeps it in step with the
//! sound; a frozen source keeps its last picture; one that has shown nothing yet gets a
//! placeholder). The output never waits for an input, so a
//! stalled sender cannot stall the recording.

use std::collections::{BTreeMap, VecDeque};

use crate::layout::{Canvas, Content, Scene, Tile, arrange};
use crate::picture::{Color, Picture};

/// Identifies a source (a publication's video).
pub type SourceId = u64;

/// What a source shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A participant's camera.
    Camera,
    /// A shared screen (shown large).
    Screen,
}

/// At most this many pictures wait per source; beyond that the oldest is dropped (and counted).
/// Callers hand pictures in shortly before they are due (see [`Compositor::poll_frame`]), so
/// this only bounds memory against a caller that does not.
const MAX_WAITING: usize = 64;

const BACKGROUND: Color = Color {
    y: 24,
    u: 128,
    v: 128,
};
const PLACEHOLDER: Color = Color {
    y: 60,
    u: 128,
    v: 128,
};
const SPEAKER: Color = Color {
    y: 170,
    u: 166,
    v: 16,
};

#[derive(Debug)]
struct Source {
    kind: SourceKind,
    /// Written under its tile.
    name: String,
    /// The picture shown now.
    current: Option<Picture>,
    /// Pictures not yet due, oldest first, with their times (µs).
    waiting: VecDeque<(u64, Picture)>,
    /// `current` changed since the last frame was drawn.
    fresh: bool,
}

/// The video compositor.
#[derive(Debug)]
pub struct Compositor {
    canvas: Canvas,
    /// Frames per second.
    fps: u64,
    /// The next frame's number (its time is `next * interval`).
    next: u64,
    sources: BTreeMap<SourceId, Source>,
    speaker: Option<SourceId>,
    frame: Picture,
    /// The tiles `frame` shows and whose picture each holds: while they stay the same, only
    /// tiles with a new picture are drawn again (a still screen share costs nothing).
    /// `None` before the first frame.
    drawn: Option<Vec<(Tile, Option<SourceId>)>>,
    /// Pictures dropped unshown because too many waited.
    dropped_pictures: u64,
}

impl Compositor {
    /// A compositor of `canvas`-sized frames at `fps` (1–60), the first at time 0.
    pub fn new(canvas: Canvas, fps: u32) -> Self {
        Self {
            canvas,
            fps: u64::from(fps.clamp(1, 60)),
            next: 0,
            sources: BTreeMap::new(),
            speaker: None,
            frame: Picture::filled(canvas.width, canvas.height, BACKGROUND),
            drawn: None,
            dropped_pictures: 0,
        }
    }

    /// A source joins (shown with a placeholder until its first picture), named under its tile.
    pub fn add_source(&mut self, id: SourceId, kind: SourceKind, name: &str) {
        self.sources.entry(id).or_insert(Source {
            kind,
            name: name.to_owned(),
            current: None,
            waiting: VecDeque::new(),
            fresh: false,
        });
    }

    /// A source leaves; the layout closes the gap from the next frame on.
    pub fn remove_source(&mut self, id: SourceId) {
        self.sources.remove(&id);
    }

    /// Marks the active speaker's camera (or nobody).
    pub fn set_speaker(&mut self, speaker: Option<SourceId>) {
        self.speaker = speaker;
    }

    /// A decoded picture of `id` for time `at` (µs on the recording's timeline). Pictures for a
    /// time already composed are shown from the next frame on; unknown sources are ignored.
    pub fn handle_picture(&mut self, id: SourceId, at: u64, picture: Picture) {
        let Some(source) = self.sources.get_mut(&id) else {
            return;
        };
        if source.waiting.len() >= MAX_WAITING {
            source.waiting.pop_front();
            self.dropped_pictures += 1;
        }
        // Keep them in time order (reordering is rare: decoders give pictures in order).
        let position = source.waiting.partition_point(|(t, _)| *t <= at);
        source.waiting.insert(position, (at, picture));
    }

    /// The time (µs) of the next frame.
    pub fn next_frame_time(&self) -> u64 {
        self.frame_time(self.next)
    }

    /// The time (µs) of frame `n`: exact on average, no drift from rounding the interval.
    fn frame_time(&self, n: u64) -> u64 {
        n * 1_000_000 / self.fps
    }

    fn half_frame(&self) -> u64 {
        1_000_000 / self.fps / 2
    }

    /// The latest picture time the next frame shows (half a frame after the frame's time):
    /// pictures up to this time must be handed in before [`poll_frame`](Self::poll_frame).
    pub fn next_frame_shows_until(&self) -> u64 {
        self.next_frame_time() + self.half_frame()
    }

    /// The latest picture time the frames composed so far have taken in (none: 0).
    pub fn shown_until(&self) -> u64 {
        self.next
            .checked_sub(1)
            .map_or(0, |last| self.frame_time(last) + self.half_frame())
    }

    /// Pictures dropped unshown because more than [`MAX_WAITING`] of a source waited.
    pub fn dropped_pictures(&self) -> u64 {
        self.dropped_pictures
    }

    /// The next frame if its time is not after `now` (µs on the recording's timeline); call
    /// again until none is due. It shows pictures up to half a frame after its time: hand
    /// them in before.
    pub fn poll_frame(&mut self, now: u64) -> Option<(u64, &Picture)> {
        let at = self.next_frame_time();
        if at > now {
            return None;
        }
        let nearest = self.next_frame_shows_until();
        self.next += 1;
        for source in self.sources.values_mut() {
            while source.waiting.front().is_some_and(|(t, _)| *t <= nearest) {
                source.current = source.waiting.pop_front().map(|(_, p)| p);
                source.fresh = true;
            }
        }
        self.compose();
        Some((at, &self.frame))
    }

    fn compose(&mut self) {
        let screen = self
            .sources
            .iter()
            .rev()
            .find(|(_, s)| s.kind == SourceKind::Screen)
            .map(|(id, _)| *id);
        let cameras: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| s.kind == SourceKind::Camera)
            .map(|(id, _)| *id)
            .collect();
        let scene = Scene {
            cameras: cameras.len(),
            screen: screen.is_some(),
            speaker: self
                .speaker
                .and_then(|s| cameras.iter().position(|c| *c == s)),
        };
        let canvas = self.canvas;
        let tiles: Vec<(Tile, Option<SourceId>)> = arrange(canvas, &scene)
            .into_iter()
            .map(|tile| {
                let id = match tile.content {
                    Content::Screen => screen,
                    Content::Camera(n) => cameras.get(n).copied(),
                };
                (tile, id)
            })
            .collect();
        let everything = self.drawn.as_ref() != Some(&tiles);
        if everything {
            self.frame.fill(canvas.rect(), BACKGROUND);
        }
        for (tile, id) in &tiles {
            let source = id.and_then(|id| self.sources.get(&id));
            if !everything && !source.is_some_and(|s| s.fresh) {
                continue;
            }
            match source.and_then(|s| s.current.as_ref()) {
                Some(p) => {
                    if !everything {
                        // The letterbox bars of the picture it replaces.
                        self.frame.fill(tile.rect, BACKGROUND);
                    }
                    let fitted = tile.rect.fit(p.width(), p.height());
                    self.frame.draw_scaled(p, fitted);
                }
                None => self.frame.fill(tile.rect, PLACEHOLDER),
            }
            if let Some(source) = source {
                label(&mut self.frame, tile.rect, &source.name, canvas);
            }
            if tile.highlighted {
                self.frame.frame(tile.rect, canvas.gap().max(4), SPEAKER);
            }
        }
        for source in self.sources.values_mut() {
            source.fresh = false;
        }
        self.drawn = Some(tiles);
    }
}

/// A name on a dark band along the bottom of its tile; twice the size on tall canvases.
fn label(frame: &mut Picture, tile: crate::layout::Rect, name: &str, canvas: Canvas) {
    if name.is_empty() {
        return;
    }
    let scale = if canvas.height >= 900 { 2 } else { 1 };
    let band = (16 * scale + 4).min(tile.height);
    let strip = crate::layout::Rect {
        y: tile.bottom() - band,
        height: band,
        ..tile
    };
    frame.fill(strip, BACKGROUND);
    // Clear of the speaker's frame, which runs along the tile's edges.
    let inset = canvas.gap().max(4) + 2 * scale;
    frame.draw_text(strip.x + inset, strip.y + 2, name, scale, LABEL, strip);
}

const LABEL: u8 = 235;

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Canvas = Canvas {
        width: 640,
        height: 360,
    };

    fn solid(r: u8, g: u8, b: u8) -> Picture {
        Picture::filled(160, 120, Color::rgb(r, g, b))
    }

    /// The colour at the centre of each tile of the last frame.
    fn tile_colors(c: &mut Compositor, now: u64, scene: &Scene) -> Vec<Color> {
        let mut last = None;
        while let Some((_, frame)) = c.poll_frame(now) {
            last = Some(frame.clone());
        }
        let frame = last.expect("a frame was due");
        arrange(HD, scene)
            .iter()
            .map(|t| frame.at(t.rect.x + t.rect.width / 2, t.rect.y + t.rect.height / 2))
            .collect()
    }

    #[test]
    fn frames_come_at_the_rate_whatever_the_inputs_do() {
        let mut c = Compositor::new(HD, 15);
        c.add_source(1, SourceKind::Camera, "");
        let mut times = Vec::new();
        while let Some((at, _)) = c.poll_frame(999_999) {
            times.push(at);
        }
        // Before 1 s at 15 fps: 15 frames, 66 666 or 66 667 µs apart (no drift).
        assert_eq!(times.len(), 15);
        assert!(
            times
                .windows(2)
                .all(|w| (66_666..=66_667).contains(&(w[1] - w[0])))
        );
        assert!(
            c.poll_frame(999_999).is_none(),
            "nothing due until the next tick"
        );
        assert_eq!(c.poll_frame(1_000_000).map(|(at, _)| at), Some(1_000_000));
    }

    #[test]
    fn each_source_shows_its_newest_due_picture_and_a_late_one_keeps_its_last() {
        let mut c = Compositor::new(HD, 10);
        c.add_source(1, SourceKind::Camera, "");
        c.add_source(2, SourceKind::Camera, "");
        let scene = Scene {
            cameras: 2,
            screen: false,
            speaker: None,
        };
        c.handle_picture(1, 0, solid(255, 0, 0));
        c.handle_picture(1, 160_000, solid(0, 255, 0));
        // Source 2 has shown nothing yet: a placeholder.
        let colors = tile_colors(&mut c, 100_000, &scene);
        assert_eq!(colors, [Color::rgb(255, 0, 0), PLACEHOLDER]);
        c.handle_picture(2, 100_000, solid(0, 0, 255));
        // At 200 ms: source 1's green (for 160 ms, nearer 200 than 100), source 2's blue; later, source 2 sends
        // nothing more and keeps its blue.
        let colors = tile_colors(&mut c, 200_000, &scene);
        assert_eq!(colors, [Color::rgb(0, 255, 0), Color::rgb(0, 0, 255)]);
        let colors = tile_colors(&mut c, 900_000, &scene);
        assert_eq!(colors, [Color::rgb(0, 255, 0), Color::rgb(0, 0, 255)]);
    }

    #[test]
    fn a_screen_share_takes_the_large_tile_and_leaving_closes_the_gap() {
        let mut c = Compositor::new(HD, 10);
        c.add_source(1, SourceKind::Camera, "");
        c.add_source(5, SourceKind::Screen, "");
        c.handle_picture(1, 0, solid(255, 0, 0));
        c.handle_picture(5, 0, Picture::filled(640, 360, Color::rgb(255, 255, 255)));
        let with_screen = Scene {
            cameras: 1,
            screen: true,
            speaker: None,
        };
        let colors = tile_colors(&mut c, 0, &with_screen);
        assert_eq!(colors, [Color::rgb(255, 255, 255), Color::rgb(255, 0, 0)]);
        c.remove_source(5);
        let alone = Scene {
            cameras: 1,
            screen: false,
            speaker: None,
        };
        assert_eq!(
            tile_colors(&mut c, 100_000, &alone),
            [Color::rgb(255, 0, 0)]
        );
    }

    #[test]
    fn names_are_written_on_a_band_at_the_bottom_of_their_tiles() {
        let mut c = Compositor::new(HD, 10);
        c.add_source(1, SourceKind::Camera, "Ann Agent");
        c.handle_picture(1, 0, solid(0, 0, 255));
        let (_, frame) = c.poll_frame(0).expect("a frame");
        let tile = arrange(
            HD,
            &Scene {
                cameras: 1,
                screen: false,
                speaker: None,
            },
        )[0]
        .rect;
        let lit = (tile.bottom() - 20..tile.bottom())
            .flat_map(|y| (tile.x..tile.x + 90).map(move |x| (x, y)))
            .filter(|(x, y)| frame.at(*x, *y).y == LABEL)
            .count();
        assert!(lit > 40, "the name is there: {lit} lit pixels");
        assert_eq!(
            frame.at(tile.x + tile.width / 2, tile.y + tile.height / 2),
            Color::rgb(0, 0, 255)
        );
    }

    #[test]
    fn the_speaker_s_tile_is_framed() {
        let mut c = Compositor::new(HD, 10);
        c.add_source(1, SourceKind::Camera, "");
        c.add_source(2, SourceKind::Camera, "");
        c.set_speaker(Some(2));
        let (_, frame) = c.poll_frame(0).expect("a frame");
        let tiles = arrange(
            HD,
            &Scene {
                cameras: 2,
                screen: false,
                speaker: Some(1),
            },
        );
        let edge = |n: usize| frame.at(tiles[n].rect.x, tiles[n].rect.y + tiles[n].rect.height / 2);
        assert_eq!(edge(1), SPEAKER);
        assert_eq!(edge(0), PLACEHOLDER);
    }

    /// Redrawing only the tiles with a new picture gives, frame after frame, exactly the
    /// picture drawn from scratch, whatever joins, leaves, speaks or changes size.
    #[test]
    fn drawing_only_what_changed_equals_drawing_everything() {
        let canvas = Canvas {
            width: 320,
            height: 180,
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |n: u64| convrec_testkit::xorshift64(&mut state) % n;
        let (mut incremental, mut scratch) =
            (Compositor::new(canvas, 10), Compositor::new(canvas, 10));
        for frame in 0..400u64 {
            let now = frame * 100_000;
            let event = random(10);
            let id = random(5);
            for c in [&mut incremental, &mut scratch] {
                match event {
                    0 => c.add_source(
                        id,
                        if id == 4 {
                            SourceKind::Screen
                        } else {
                            SourceKind::Camera
                        },
                        &format!("p{id}"),
                    ),
                    1 => c.remove_source(id),
                    2 => c.set_speaker(Some(id)),
                    _ => {}
                }
            }
            if event >= 3 {
                let (w, h) = (2 + 2 * random(80) as u32, 2 + 2 * random(60) as u32);
                let color = Color::rgb(random(256) as u8, random(256) as u8, random(256) as u8);
                for c in [&mut incremental, &mut scratch] {
                    c.handle_picture(id, now, Picture::filled(w, h, color));
                }
            }
            scratch.drawn = None;
            let a = incremental.poll_frame(now).map(|(t, p)| (t, p.clone()));
            let b = scratch.poll_frame(now).map(|(t, p)| (t, p.clone()));
            assert_eq!(a, b, "frame {frame}");
        }
    }
}
