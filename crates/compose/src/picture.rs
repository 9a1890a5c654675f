//! Pictures in planar YUV 4:2:0 (what H.264 decoders give and encoders take): filled, framed,
//! and drawn into a tile with a bilinear scaler, so a camera of any size (and one that changes
//! size mid-call) lands in its tile without distortion.

use crate::layout::Rect;

/// A colour in Y'CbCr (BT.601, limited range, as H.264 streams are by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    /// Luma.
    pub y: u8,
    /// Blue-difference chroma.
    pub u: u8,
    /// Red-difference chroma.
    pub v: u8,
}

impl Color {
    /// The colour of `r`, `g`, `b` (0–255, full range).
    pub fn rgb(r: u8, g: u8, b: u8) -> Self {
        let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
        let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
        let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
        let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
        Self {
            y: y.clamp(0, 255) as u8,
            u: u.clamp(0, 255) as u8,
            v: v.clamp(0, 255) as u8,
        }
    }
}

/// A planar YUV 4:2:0 picture with even width and height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    width: u32,
    height: u32,
    /// Luma, `width × height`.
    pub y: Vec<u8>,
    /// Blue-difference chroma, `width/2 × height/2`.
    pub u: Vec<u8>,
    /// Red-difference chroma, `width/2 × height/2`.
    pub v: Vec<u8>,
}

/// Why planes do not make a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a {width}×{height} 4:2:0 picture needs even sides and planes of {luma}/{chroma}/{chroma} bytes"
)]
pub struct PictureError {
    width: u32,
    height: u32,
    luma: usize,
    chroma: usize,
}

impl Picture {
    /// A picture of one colour.
    pub fn filled(width: u32, height: u32, color: Color) -> Self {
        let (w, h) = (width & !1, height & !1);
        let luma = (w * h) as usize;
        Self {
            width: w,
            height: h,
            y: vec![color.y; luma],
            u: vec![color.u; luma / 4],
            v: vec![color.v; luma / 4],
        }
    }

    /// A picture from its planes (what a decoder wrote, with the strides removed).
    pub fn from_planes(
        width: u32,
        height: u32,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
    ) -> Result<Self, PictureError> {
        let luma = width as usize * height as usize;
        let chroma = luma / 4;
        if !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
            || y.len() != luma
            || u.len() != chroma
            || v.len() != chroma
        {
            return Err(PictureError {
                width,
                height,
                luma,
                chroma,
            });
        }
        Ok(Self {
            width,
            height,
            y,
            u,
            v,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The colour at a pixel.
    pub fn at(&self, x: u32, y: u32) -> Color {
        let (cx, cy) = ((x / 2) as usize, (y / 2) as usize);
        let half = (self.width / 2) as usize;
        Color {
            y: self.y[y as usize * self.width as usize + x as usize],
            u: self.u[cy * half + cx],
            v: self.v[cy * half + cx],
        }
    }

    /// Paints `rect` (clipped to the picture; its edges rounded to even) with `color`.
    pub fn fill(&mut self, rect: Rect, color: Color) {
        let r = self.clip(rect);
        let w = self.width as usize;
        for row in r.y..r.bottom() {
            let start = row as usize * w;
            self.y[start + r.x as usize..start + r.right() as usize].fill(color.y);
        }
        let half = w / 2;
        for row in r.y / 2..r.bottom() / 2 {
            let start = row as usize * half;
            let (from, to) = (start + (r.x / 2) as usize, start + (r.right() / 2) as usize);
            self.u[from..to].fill(color.u);
            self.v[from..to].fill(color.v);
        }
    }

    /// Draws a frame `thickness` pixels wide just inside `rect`.
    pub fn frame(&mut self, rect: Rect, thickness: u32, color: Color) {
        let t = (thickness & !1)
            .max(2)
            .min(rect.width / 2)
            .min(rect.height / 2);
        let sides = [
            Rect { height: t, ..rect },
            Rect {
                y: rect.bottom() - t,
                height: t,
                ..rect
            },
            Rect { width: t, ..rect },
            Rect {
                x: rect.right() - t,
                width: t,
                ..rect
            },
        ];
        for side in sides {
            self.fill(side, color);
        }
    }

    /// Draws `source` scaled (bilinear) to exactly `rect` (clipped to the picture).
    pub fn draw_scaled(&mut self, source: &Picture, rect: Rect) {
        let r = self.clip(rect);
        if r.width == 0 || r.height == 0 || source.width == 0 || source.height == 0 {
            return;
        }
        let (w, half) = (self.width as usize, self.width as usize / 2);
        scale_plane(
            &source.y,
            source.width,
            source.height,
            &mut self.y,
            w,
            Rect { ..r },
        );
        let chroma = Rect {
            x: r.x / 2,
            y: r.y / 2,
            width: r.width / 2,
            height: r.height / 2,
        };
        let (sw, sh) = (source.width / 2, source.height / 2);
        scale_plane(&source.u, sw, sh, &mut self.u, half, chroma);
        scale_plane(&source.v, sw, sh, &mut self.v, half, chroma);
    }

    /// Writes `text` with its top-left corner at (`x`, `y`) in the 8 × 16 font, each font pixel
    /// `scale` × `scale` pixels, in luma only (names are light on a dark band), clipped to
    /// `within`. Characters outside printable ASCII are drawn as `?`.
    pub fn draw_text(&mut self, x: u32, y: u32, text: &str, scale: u32, luma: u8, within: Rect) {
        let within = self.clip(within);
        let scale = scale.max(1);
        let w = self.width as usize;
        for (n, ch) in text.chars().enumerate() {
            let glyph = crate::font_data::GLYPHS[glyph_index(ch)];
            let left = x + n as u32 * 8 * scale;
            if left >= within.right() {
                break;
            }
            for (row, bits) in glyph.iter().enumerate() {
                for column in 0..8u32 {
                    if bits & (0x80 >> column) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) =
                                (left + column * scale + dx, y + row as u32 * scale + dy);
                            if px >= within.x
                                && px < within.right()
                                && py >= within.y
                                && py < within.bottom()
                            {
                                self.y[py as usize * w + px as usize] = luma;
                            }
                        }
                    }
                }
            }
        }
    }

    fn clip(&self, rect: Rect) -> Rect {
        let x = (rect.x & !1).min(self.width);
        let y = (rect.y & !1).min(self.height);
        let right = (rect.right() & !1).min(self.width).max(x);
        let bottom = (rect.bottom() & !1).min(self.height).max(y);
        Rect {
            x,
            y,
            width: right - x,
            height: bottom - y,
        }
    }
}

fn glyph_index(ch: char) -> usize {
    match ch {
        ' '..='~' => ch as usize - 32,
        _ => '?' as usize - 32,
    }
}

/// Scales one plane (`sw × sh`) into `rect` of a plane `stride` bytes wide. A shrink by two or
/// more first averages whole blocks of pixels (a box filter: every source pixel counts, so fine
/// detail such as screen text turns grey rather than into moiré), then the bilinear step makes
/// the exact size.
fn scale_plane(src: &[u8], sw: u32, sh: u32, dst: &mut [u8], stride: usize, rect: Rect) {
    let (kx, ky) = (
        (sw / rect.width.max(1)).max(1),
        (sh / rect.height.max(1)).max(1),
    );
    if kx == 1 && ky == 1 {
        return bilinear_plane(src, sw, sh, dst, stride, rect);
    }
    let (bw, bh) = (sw / kx, sh / ky);
    let mut shrunk = vec![0u8; (bw * bh) as usize];
    let area = kx * ky;
    let sw = sw as usize;
    for by in 0..bh as usize {
        for bx in 0..bw as usize {
            let mut sum = 0u32;
            for y in by * ky as usize..(by + 1) * ky as usize {
                let row = &src[y * sw + bx * kx as usize..][..kx as usize];
                sum += row.iter().map(|v| u32::from(*v)).sum::<u32>();
            }
            shrunk[by * bw as usize + bx] = ((sum + area / 2) / area) as u8;
        }
    }
    bilinear_plane(&shrunk, bw, bh, dst, stride, rect);
}

/// Bilinear scaling of one plane (`sw × sh`) into `rect` of a plane `stride` bytes wide,
/// sampling pixel centres. Separable, the way libyuv does it: each source row that is needed is
/// scaled horizontally once into a 16-bit row (8 fractional bits, kept for the next output row
/// too), then each output row is a vertical blend of two such rows, a contiguous loop the
/// compiler vectorises. The arithmetic is exactly that of blending four pixels at once.
fn bilinear_plane(src: &[u8], sw: u32, sh: u32, dst: &mut [u8], stride: usize, rect: Rect) {
    let columns = taps(sw, rect.width);
    let rows = taps(sh, rect.height);
    let sw = sw as usize;
    let width = rect.width as usize;
    // Two horizontally scaled source rows, and which source row each holds.
    let mut scaled = [vec![0u16; width], vec![0u16; width]];
    let mut held = [usize::MAX; 2];
    for (row, tap) in rows.into_iter().enumerate() {
        let (y0, y1) = tap.pair(sh);
        for y in [y0, y1] {
            if !held.contains(&y) {
                // Replace the slot holding the row that is not needed any more.
                let slot = usize::from(held[0] == y0 || held[0] == y1);
                scale_row(&src[y * sw..(y + 1) * sw], &columns, &mut scaled[slot]);
                held[slot] = y;
            }
        }
        let top = &scaled[usize::from(held[0] != y0)];
        let bottom = &scaled[usize::from(held[0] != y1)];
        let start = (rect.y as usize + row) * stride + rect.x as usize;
        let out = &mut dst[start..start + width];
        let (wy1, wy0) = (u32::from(tap.weight), 256 - u32::from(tap.weight));
        for ((pixel, &t), &b) in out.iter_mut().zip(top).zip(bottom) {
            *pixel = ((u32::from(t) * wy0 + u32::from(b) * wy1 + (1 << 15)) >> 16) as u8;
        }
    }
}

/// Horizontal bilinear step of one source row: each output value is the blend of two source
/// pixels with 8 fractional bits (at most 255 × 256, so it fits 16 bits).
fn scale_row(line: &[u8], columns: &[Tap], out: &mut [u16]) {
    if let [only] = line {
        return out.fill(u16::from(*only) << 8);
    }
    for (value, tap) in out.iter_mut().zip(columns) {
        let pair = &line[tap.first as usize..tap.first as usize + 2];
        let (a, b) = (i32::from(pair[0]), i32::from(pair[1]));
        // a·(256 − w) + b·w, with one multiplication.
        *value = ((a << 8) + (b - a) * i32::from(tap.weight)) as u16;
    }
}

/// Where one destination pixel samples its source line: between `first` and the next
/// position, `weight` (0–256) being the share of the next one.
#[derive(Clone, Copy, Debug)]
struct Tap {
    first: u32,
    weight: u16,
}

impl Tap {
    /// The two source positions blended (the same one twice in a source one pixel long).
    fn pair(self, source: u32) -> (usize, usize) {
        let first = self.first as usize;
        (first, (first + 1).min(source.max(1) as usize - 1))
    }
}

/// For each of `out` destination positions the tap around its centre. `first + 1` is always
/// inside a source of two or more: past the last centre the tap is (last − 1, 256).
fn taps(source: u32, out: u32) -> Vec<Tap> {
    let last = i64::from(source) - 1;
    let step = (i64::from(source) << 16) / i64::from(out.max(1));
    (0..i64::from(out))
        .map(|i| {
            // The centre of destination pixel i, in source coordinates, minus half a pixel.
            let f = ((2 * i + 1) * step / 2 - (1 << 15)).max(0);
            let (first, weight) = if last == 0 {
                (0, 0)
            } else if f >> 16 >= last {
                (last - 1, 256)
            } else {
                (f >> 16, (f & 0xffff) >> 8)
            };
            Tap {
                first: first as u32,
                weight: weight as u16,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RED: Color = Color {
        y: 82,
        u: 90,
        v: 240,
    };
    const BLUE: Color = Color {
        y: 41,
        u: 240,
        v: 110,
    };

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn rgb_to_yuv_follows_bt601_limited_range() {
        assert_eq!(Color::rgb(255, 0, 0), RED);
        assert_eq!(Color::rgb(0, 0, 255), BLUE);
        assert_eq!(
            Color::rgb(0, 0, 0),
            Color {
                y: 16,
                u: 128,
                v: 128
            }
        );
        assert_eq!(
            Color::rgb(255, 255, 255),
            Color {
                y: 235,
                u: 128,
                v: 128
            }
        );
    }

    #[test]
    fn a_scaled_picture_fills_exactly_its_rectangle_and_keeps_its_halves() {
        // Left half red, right half blue, 320×240, drawn into 200×100 at (40, 20) of a black canvas.
        let mut source = Picture::filled(320, 240, RED);
        source.fill(rect(160, 0, 160, 240), BLUE);
        let mut canvas = Picture::filled(640, 360, Color::rgb(0, 0, 0));
        canvas.draw_scaled(&source, rect(40, 20, 200, 100));
        assert_eq!(canvas.at(50, 30), RED);
        assert_eq!(canvas.at(230, 110), BLUE);
        assert_eq!(canvas.at(38, 30), Color::rgb(0, 0, 0), "left of it");
        assert_eq!(canvas.at(240, 30), Color::rgb(0, 0, 0), "right of it");
        assert_eq!(canvas.at(50, 120), Color::rgb(0, 0, 0), "below it");
        // The edge between the halves stays in the middle (within the bilinear blend).
        assert_eq!(canvas.at(136, 60), RED);
        assert_eq!(canvas.at(144, 60), BLUE);
    }

    #[test]
    fn fine_detail_shrunk_a_lot_is_averaged_not_sampled() {
        // One-pixel black and white stripes, shrunk seven times: every output pixel covers
        // three or four white columns of seven, so it is a grey between 35 % and 60 %. Bilinear
        // sampling alone lands on single source pixels and draws pure black and white stripes.
        let mut stripes = Picture::filled(700, 140, Color::rgb(0, 0, 0));
        for x in (0..700).step_by(2) {
            for y in 0..140usize {
                stripes.y[y * 700 + x] = 235;
            }
        }
        let mut canvas = Picture::filled(100, 20, Color::rgb(0, 0, 0));
        canvas.draw_scaled(&stripes, rect(0, 0, 100, 20));
        let lumas: Vec<u8> = (0..100).map(|x| canvas.at(x, 10).y).collect();
        assert!(lumas.iter().all(|l| (85..=150).contains(l)), "{lumas:?}");
    }

    #[test]
    fn a_frame_is_drawn_inside_the_rectangle() {
        let mut canvas = Picture::filled(100, 100, BLUE);
        canvas.frame(rect(10, 10, 40, 40), 4, RED);
        assert_eq!(canvas.at(10, 10), RED);
        assert_eq!(canvas.at(49, 30), RED);
        assert_eq!(canvas.at(30, 30), BLUE, "inside stays");
        assert_eq!(canvas.at(8, 10), BLUE, "outside stays");
    }

    #[test]
    fn text_is_drawn_where_asked_and_clipped() {
        let mut canvas = Picture::filled(200, 40, Color::rgb(0, 0, 0));
        let all = rect(0, 0, 200, 40);
        canvas.draw_text(10, 4, "Ann", 1, 235, all);
        let lit = |p: &Picture, r: Rect| {
            (r.y..r.bottom())
                .flat_map(|y| (r.x..r.right()).map(move |x| (x, y)))
                .filter(|(x, y)| p.at(*x, *y).y == 235)
                .count()
        };
        assert!(
            lit(&canvas, rect(10, 4, 24, 16)) > 30,
            "the glyphs are there"
        );
        assert_eq!(lit(&canvas, rect(40, 0, 160, 40)), 0, "nothing after them");
        // Clipped: only inside `within`; unknown characters are '?'.
        let mut clipped = Picture::filled(200, 40, Color::rgb(0, 0, 0));
        clipped.draw_text(0, 0, "ééé long text", 2, 235, rect(0, 0, 20, 20));
        assert_eq!(lit(&clipped, rect(20, 0, 180, 40)), 0);
        assert!(lit(&clipped, rect(0, 0, 20, 20)) > 0);
    }

    #[test]
    fn planes_of_the_wrong_size_are_refused() {
        assert!(Picture::from_planes(4, 4, vec![0; 16], vec![0; 4], vec![0; 4]).is_ok());
        assert!(Picture::from_planes(4, 4, vec![0; 15], vec![0; 4], vec![0; 4]).is_err());
        assert!(Picture::from_planes(3, 4, vec![0; 12], vec![0; 3], vec![0; 3]).is_err());
    }

    proptest! {
        /// The separable scaler (rows scaled once, then blended) gives exactly the pixels of
        /// the textbook definition: four source pixels blended per output pixel.
        #[test]
        fn the_separable_scaler_equals_blending_four_pixels(
            sw in 1u32..40, sh in 1u32..40, dw in 1u32..90, dh in 1u32..90, seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let src: Vec<u8> = (0..sw * sh)
                .map(|_| convrec_testkit::xorshift64(&mut state) as u8)
                .collect();
            let mut dst = vec![0u8; (dw * dh) as usize];
            bilinear_plane(&src, sw, sh, &mut dst, dw as usize, rect(0, 0, dw, dh));
            let (columns, rows) = (taps(sw, dw), taps(sh, dh));
            for (row, tap) in rows.iter().enumerate() {
                let ((y0, y1), wy) = (tap.pair(sh), u32::from(tap.weight));
                for (column, tap) in columns.iter().enumerate() {
                    let ((x0, x1), wx) = (tap.pair(sw), u32::from(tap.weight));
                    let at = |x: usize, y: usize| u32::from(src[y * sw as usize + x]);
                    let top = at(x0, y0) * (256 - wx) + at(x1, y0) * wx;
                    let bottom = at(x0, y1) * (256 - wx) + at(x1, y1) * wx;
                    let expected = ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8;
                    prop_assert_eq!(dst[row * dw as usize + column], expected, "at ({}, {})", column, row);
                }
            }
        }

        #[test]
        fn drawing_anywhere_never_panics_and_a_solid_source_stays_solid(
            sw in 1u32..200, sh in 1u32..200,
            x in 0u32..300, y in 0u32..300, w in 0u32..400, h in 0u32..400,
        ) {
            let source = Picture::filled(sw * 2, sh * 2, RED);
            let mut canvas = Picture::filled(320, 240, BLUE);
            canvas.draw_scaled(&source, rect(x, y, w, h));
            canvas.frame(rect(x, y, w, h), 4, RED);
            let inside = canvas.clip(rect(x, y, w, h));
            if inside.width > 0 && inside.height > 0 {
                prop_assert_eq!(canvas.at(inside.x, inside.y), RED);
            }
        }
    }
}
