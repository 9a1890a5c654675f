//! Where things go on the canvas. With a shared screen, the screen is large on the left and the
//! cameras are in a strip on the right; without one, the cameras share a grid. The active
//! speaker's tile is marked. Rectangles are whole, even pixels (4:2:0 chroma needs even edges),
//! inside the canvas, and never overlap.

/// A rectangle on the canvas, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Rect {
    /// The right edge (exclusive).
    pub fn right(&self) -> u32 {
        self.x + self.width
    }

    /// The bottom edge (exclusive).
    pub fn bottom(&self) -> u32 {
        self.y + self.height
    }

    /// Whether the two share any pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }

    /// The largest rectangle of `width`:`height` proportions inside this one, centred (a
    /// picture letterboxed into its tile), with even edges; empty when nothing fits.
    pub fn fit(&self, width: u32, height: u32) -> Rect {
        if width == 0 || height == 0 || self.width < 2 || self.height < 2 {
            return Rect {
                x: self.x,
                y: self.y,
                width: 0,
                height: 0,
            };
        }
        // Compare width/height ratios without division: w1 * h2 vs w2 * h1.
        let wider =
            u64::from(width) * u64::from(self.height) > u64::from(self.width) * u64::from(height);
        let (w, h) = if wider {
            let h = u64::from(self.width) * u64::from(height) / u64::from(width);
            (self.width, h as u32)
        } else {
            let w = u64::from(self.height) * u64::from(width) / u64::from(height);
            (w as u32, self.height)
        };
        let (w, h) = (even_down(w).max(2), even_down(h).max(2));
        Rect {
            x: self.x + even_down((self.width - w) / 2),
            y: self.y + even_down((self.height - h) / 2),
            width: w,
            height: h,
        }
    }
}

/// What a tile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    /// A participant's camera, by its index in [`Scene::cameras`].
    Camera(usize),
    /// The shared screen.
    Screen,
}

/// One tile of the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// What it shows.
    pub content: Content,
    /// Where.
    pub rect: Rect,
    /// The active speaker's camera.
    pub highlighted: bool,
}

/// What there is to show at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scene {
    /// How many cameras (participants with video).
    pub cameras: usize,
    /// A screen is shared.
    pub screen: bool,
    /// The camera of the active speaker, if any.
    pub speaker: Option<usize>,
}

/// The canvas: the output picture's size (even, at least 64 × 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Canvas {
    /// The space between tiles and around them: 1/90 of the shorter side, even, at least 2.
    pub fn gap(&self) -> u32 {
        even_down(self.width.min(self.height) / 90).max(2)
    }

    /// The whole canvas.
    pub fn rect(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }
}

/// The tiles of `scene` on `canvas`: the screen first (when shared), then the cameras in order.
pub fn arrange(canvas: Canvas, scene: &Scene) -> Vec<Tile> {
    let gap = canvas.gap();
    let inner = Rect {
        x: gap,
        y: gap,
        width: canvas.width.saturating_sub(2 * gap),
        height: canvas.height.saturating_sub(2 * gap),
    };
    let mut tiles = Vec::with_capacity(scene.cameras + 1);
    let camera_area = if scene.screen {
        if scene.cameras == 0 {
            tiles.push(tile(Content::Screen, inner, false));
            return tiles;
        }
        // A strip of a quarter of the width for the cameras, the rest for the screen.
        let strip = even_down(inner.width / 4);
        let screen = Rect {
            width: inner.width - strip - gap,
            ..inner
        };
        tiles.push(tile(Content::Screen, screen, false));
        Rect {
            x: screen.right() + gap,
            width: strip,
            ..inner
        }
    } else {
        inner
    };
    let cells = if scene.screen {
        strip_cells(camera_area, scene.cameras, gap)
    } else {
        grid_cells(camera_area, scene.cameras, gap)
    };
    for (n, rect) in cells.into_iter().enumerate() {
        tiles.push(tile(Content::Camera(n), rect, scene.speaker == Some(n)));
    }
    tiles
}

fn tile(content: Content, rect: Rect, highlighted: bool) -> Tile {
    Tile {
        content,
        rect,
        highlighted,
    }
}

/// `n` cells stacked in a strip, each 16:9 if the strip is tall enough, smaller otherwise.
fn strip_cells(area: Rect, n: usize, gap: u32) -> Vec<Rect> {
    let n32 = n as u32;
    let room = area.height.saturating_sub(gap * n32.saturating_sub(1)) / n32.max(1);
    let height = even_down((area.width * 9 / 16).min(room));
    (0..n32)
        .map(|i| Rect {
            x: area.x,
            y: area.y + i * (height + gap),
            width: area.width,
            height,
        })
        .collect()
}

/// `n` cells in a grid of about square shape; an incomplete last row is centred.
fn grid_cells(area: Rect, n: usize, gap: u32) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let columns = (1..).find(|c| c * c >= n).unwrap_or(1) as u32;
    let rows = (n as u32).div_ceil(columns);
    let width = even_down(area.width.saturating_sub(gap * (columns - 1)) / columns);
    let height = even_down(area.height.saturating_sub(gap * (rows - 1)) / rows);
    let mut cells = Vec::with_capacity(n);
    for row in 0..rows {
        let in_row = (n as u32 - row * columns).min(columns);
        let used = in_row * width + (in_row - 1) * gap;
        let left = area.x + even_down((area.width - used) / 2);
        for column in 0..in_row {
            cells.push(Rect {
                x: left + column * (width + gap),
                y: area.y + row * (height + gap),
                width,
                height,
            });
        }
    }
    cells
}

fn even_down(n: u32) -> u32 {
    n & !1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HD: Canvas = Canvas {
        width: 1280,
        height: 720,
    };

    #[test]
    fn a_shared_screen_is_large_on_the_left_with_the_cameras_in_a_strip() {
        let tiles = arrange(
            HD,
            &Scene {
                cameras: 3,
                screen: true,
                speaker: Some(1),
            },
        );
        assert_eq!(tiles.len(), 4);
        let screen = tiles[0].rect;
        assert_eq!(tiles[0].content, Content::Screen);
        assert!(screen.width > 900, "{screen:?}");
        for t in &tiles[1..] {
            assert!(t.rect.x >= screen.right(), "{t:?} right of {screen:?}");
            assert!(t.rect.width * t.rect.height < screen.width * screen.height / 4);
        }
        assert_eq!(
            tiles
                .iter()
                .filter(|t| t.highlighted)
                .map(|t| t.content)
                .collect::<Vec<_>>(),
            [Content::Camera(1)]
        );
    }

    #[test]
    fn cameras_alone_share_a_grid_with_the_last_row_centred() {
        let tiles = arrange(
            HD,
            &Scene {
                cameras: 3,
                screen: false,
                speaker: None,
            },
        );
        // 2 × 2 grid, the third tile alone and centred in the second row.
        assert_eq!(tiles[0].rect.y, tiles[1].rect.y);
        assert!(tiles[2].rect.y > tiles[0].rect.y);
        let middle = tiles[2].rect.x + tiles[2].rect.width / 2;
        assert!((i64::from(middle) - 640).abs() <= 2, "{:?}", tiles[2]);
    }

    #[test]
    fn pictures_are_letterboxed_into_their_tiles() {
        let tile = Rect {
            x: 100,
            y: 50,
            width: 400,
            height: 400,
        };
        // 16:9 into a square: full width, bars above and below.
        let fitted = tile.fit(1280, 720);
        assert_eq!((fitted.x, fitted.width), (100, 400));
        assert_eq!(fitted.height, 224);
        assert_eq!(fitted.y, 50 + 88);
        // Portrait into a square: full height.
        let fitted = tile.fit(480, 640);
        assert_eq!((fitted.y, fitted.height), (50, 400));
        assert_eq!(fitted.width, 300);
        assert_eq!(tile.fit(0, 10).width, 0);
    }

    proptest! {
        #[test]
        fn tiles_are_even_inside_the_canvas_and_never_overlap(
            cameras in 0usize..16,
            screen: bool,
            width in 32u32..2000,
            height in 32u32..2000,
        ) {
            let canvas = Canvas { width: width * 2, height: height * 2 };
            let tiles = arrange(canvas, &Scene { cameras, screen, speaker: None });
            prop_assert_eq!(tiles.len(), cameras + usize::from(screen));
            for (i, t) in tiles.iter().enumerate() {
                let r = t.rect;
                prop_assert!(r.right() <= canvas.width && r.bottom() <= canvas.height, "{:?}", r);
                prop_assert!([r.x, r.y, r.width, r.height].iter().all(|v| v.is_multiple_of(2)), "{:?}", r);
                for other in &tiles[i + 1..] {
                    prop_assert!(!r.overlaps(&other.rect) || r.width == 0 || r.height == 0 || other.rect.width == 0 || other.rect.height == 0, "{:?} {:?}", r, other);
                }
            }
        }

        #[test]
        fn a_fitted_picture_stays_inside_its_tile(
            x in 0u32..500, y in 0u32..500, w in 2u32..2000, h in 2u32..2000,
            pw in 1u32..4000, ph in 1u32..4000,
        ) {
            let tile = Rect { x: x * 2, y: y * 2, width: w * 2, height: h * 2 };
            let f = tile.fit(pw, ph);
            prop_assert!(f.x >= tile.x && f.y >= tile.y && f.right() <= tile.right() && f.bottom() <= tile.bottom(), "{:?} in {:?}", f, tile);
            prop_assert!(f.width.is_multiple_of(2) && f.height.is_multiple_of(2));
        }
    }
}
