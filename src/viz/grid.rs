//! `Grid`: many 2-d maps (kernels, feature maps, images) tiled into one picture.
//!
//! Each tile is stretched to its own min..max by default: learned kernels and
//! feature maps differ in scale by orders of magnitude from channel to channel, and
//! one shared range would leave most tiles flat gray. Tiles are enlarged by
//! nearest neighbour so that one weight is one visible square.

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};

use super::font::{self, GLYPH_HEIGHT};
use super::image::RgbImage;
use super::VizError;

/// How a tile's values become gray levels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TileRange {
    /// Each tile's own minimum → 0 (black), maximum → 255 (white). A constant tile
    /// is black.
    PerTile,
    /// `min` → 0 and `max` → 255 for every tile, values outside clamped (e.g.
    /// `0..255` to show raw pixels as they are).
    Fixed {
        /// Value drawn black.
        min: f32,
        /// Value drawn white.
        max: f32,
    },
}

/// A layout for tiling equally-shaped 2-d maps: `columns` tiles per row, each
/// enlarged `scale` times, separated and surrounded by `border` pixels of
/// `border_color`. Tiles are gray; the border is coloured because any gray level
/// would merge with some tiles' edges (3×3 kernels are all edge).
///
/// For `n` tiles of `th × tw` with `c = min(columns, n)` columns and
/// `r = ⌈n / c⌉` rows the image is
/// `c·tw·scale + (c+1)·border` wide and `r·(th·scale + caption) + (r+1)·border`
/// high, where `caption` is 0 without captions (see [`Grid::size`]).
///
/// # Defaults
/// scale 1, border 1, border colour dark blue ([`Grid::BORDER`]), captions white,
/// [`TileRange::PerTile`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// Tiles per row (at least 1).
    pub columns: usize,
    /// Nearest-neighbour enlargement factor (at least 1).
    pub scale: usize,
    /// Pixels between tiles and around the outside.
    pub border: usize,
    /// Colour of the border, empty cells and caption strips.
    pub border_color: [u8; 3],
    /// How values become gray levels.
    pub range: TileRange,
}

impl Grid {
    /// The default border colour.
    pub const BORDER: [u8; 3] = [30, 60, 140];

    /// A grid with `columns` tiles per row and the defaults above.
    pub fn new(columns: usize) -> Self {
        Grid {
            columns: columns.max(1),
            scale: 1,
            border: 1,
            border_color: Grid::BORDER,
            range: TileRange::PerTile,
        }
    }

    /// Sets the enlargement factor.
    pub fn with_scale(mut self, scale: usize) -> Self {
        self.scale = scale.max(1);
        self
    }

    /// Sets the border width in pixels.
    pub fn with_border(mut self, border: usize) -> Self {
        self.border = border;
        self
    }

    /// Sets the border's colour.
    pub fn with_border_color(mut self, color: [u8; 3]) -> Self {
        self.border_color = color;
        self
    }

    /// Sets how values become gray levels.
    pub fn with_range(mut self, range: TileRange) -> Self {
        self.range = range;
        self
    }

    /// `(width, height)` of the image for `tiles` tiles of `(th, tw)` without
    /// captions.
    pub fn size(&self, tiles: usize, (th, tw): (usize, usize)) -> (usize, usize) {
        let (cols, rows) = self.shape(tiles);
        (self.span(cols, tw, 0), self.span(rows, th, 0))
    }

    /// Tiles the maps, row by row.
    ///
    /// # Errors
    /// [`VizError::Empty`] for no tiles or an empty tile, [`VizError::Shape`] if the
    /// tiles differ in shape.
    pub fn render(&self, tiles: &[ArrayView2<f32>]) -> Result<RgbImage, VizError> {
        self.render_inner(&planes(tiles), None)
    }

    /// Like [`Grid::render`] for colour tiles `[3, h, w]` (red, green, blue planes),
    /// each tile's three planes stretched by one range so its colours keep their
    /// balance. Tiles of one plane are drawn gray.
    ///
    /// # Errors
    /// As [`Grid::render`], and [`VizError::Shape`] for a tile of other than 1 or 3
    /// planes.
    pub fn render_colour(&self, tiles: &[ArrayView3<f32>]) -> Result<RgbImage, VizError> {
        self.render_inner(tiles, None)
    }

    /// [`Grid::render_colour`] with a caption under each tile.
    ///
    /// # Errors
    /// As [`Grid::render_colour`] and [`Grid::render_with_captions`].
    pub fn render_colour_with_captions(
        &self,
        tiles: &[ArrayView3<f32>],
        captions: &[&str],
    ) -> Result<RgbImage, VizError> {
        self.check_captions(tiles.len(), captions)?;
        self.render_inner(tiles, Some(captions))
    }

    /// Like [`Grid::render`] with a line of text under each tile (digits, letters,
    /// `→`; see [`font`](super::font)), drawn as large as fits the tile's width.
    ///
    /// # Errors
    /// As [`Grid::render`], and [`VizError::Shape`] if there is not one caption per
    /// tile.
    pub fn render_with_captions(
        &self,
        tiles: &[ArrayView2<f32>],
        captions: &[&str],
    ) -> Result<RgbImage, VizError> {
        self.check_captions(tiles.len(), captions)?;
        self.render_inner(&planes(tiles), Some(captions))
    }

    fn check_captions(&self, tiles: usize, captions: &[&str]) -> Result<(), VizError> {
        if captions.len() != tiles {
            return Err(VizError::Shape(format!(
                "grid: {} captions for {tiles} tiles",
                captions.len()
            )));
        }
        Ok(())
    }

    /// `(columns, rows)` actually used for `n` tiles.
    fn shape(&self, n: usize) -> (usize, usize) {
        let cols = self.columns.max(1).min(n.max(1));
        (cols, n.div_ceil(cols))
    }

    /// Length along one axis of `cells` cells of `len` pixels plus `extra` each.
    fn span(&self, cells: usize, len: usize, extra: usize) -> usize {
        cells * (len * self.scale + extra) + (cells + 1) * self.border
    }

    /// Tiles of 1 (gray) or 3 (RGB) planes.
    fn render_inner(
        &self,
        tiles: &[ArrayView3<f32>],
        captions: Option<&[&str]>,
    ) -> Result<RgbImage, VizError> {
        let first = tiles
            .first()
            .ok_or_else(|| VizError::Empty("grid: no tiles".into()))?;
        let (_, th, tw) = first.dim();
        if th == 0 || tw == 0 {
            return Err(VizError::Empty(format!("grid: {th}×{tw} tiles")));
        }
        if let Some((i, t)) = tiles
            .iter()
            .enumerate()
            .find(|(_, t)| !matches!(t.dim().0, 1 | 3))
        {
            return Err(VizError::Shape(format!(
                "grid: tile {i} has {} planes; tiles are gray (1) or RGB (3)",
                t.dim().0
            )));
        }
        if let Some((i, t)) = tiles
            .iter()
            .enumerate()
            .find(|(_, t)| (t.dim().1, t.dim().2) != (th, tw))
        {
            return Err(VizError::Shape(format!(
                "grid: tile {i} is {:?}, tile 0 is {:?}; all tiles must have one shape",
                (t.dim().1, t.dim().2),
                (th, tw)
            )));
        }
        let s = self.scale.max(1);
        let (cell_w, cell_h) = (tw * s, th * s);
        // Largest text size (1 or 2) whose widest caption fits the tile with a
        // margin, so neighbouring captions do not read as one string.
        let text_scale = captions.map(|cs| {
            let widest = cs.iter().map(|c| font::text_width(c, 1)).max().unwrap_or(0);
            if 2 * widest + 8 <= cell_w {
                2
            } else {
                1
            }
        });
        let caption_h = text_scale.map_or(0, |k| GLYPH_HEIGHT * k + 2 + k);
        let (cols, rows) = self.shape(tiles.len());
        let width = self.span(cols, tw, 0);
        let height = self.span(rows, th, caption_h);
        let mut image = RgbImage::new(width, height, self.border_color);
        let luma = self.border_color.iter().map(|&c| c as usize).sum::<usize>() / 3;
        let text_color = if luma >= 128 { [0; 3] } else { [255; 3] };
        for (k, tile) in tiles.iter().enumerate() {
            let (row, col) = (k / cols, k % cols);
            let x0 = self.border + col * (cell_w + self.border);
            let y0 = self.border + row * (cell_h + caption_h + self.border);
            let (min, max) = match self.range {
                TileRange::PerTile => finite_range(tile.iter()),
                TileRange::Fixed { min, max } => (min, max),
            };
            let levels = tile.mapv(|v| to_gray(v, min, max));
            // A gray tile's one plane goes to all three colours.
            let plane = |c: usize| levels.index_axis(Axis(0), c.min(levels.dim().0 - 1));
            let (r, g, b) = (plane(0), plane(1), plane(2));
            for y in 0..th {
                for x in 0..tw {
                    let colour = [r[[y, x]], g[[y, x]], b[[y, x]]];
                    for dy in 0..s {
                        let start = 3 * ((y0 + y * s + dy) * width + x0 + x * s);
                        for px in image.pixels[start..start + 3 * s].chunks_exact_mut(3) {
                            px.copy_from_slice(&colour);
                        }
                    }
                }
            }
            if let (Some(text), Some(ts)) = (captions.map(|c| c[k]), text_scale) {
                let tx = x0 + cell_w.saturating_sub(font::text_width(text, ts)) / 2;
                let ty = y0 + cell_h + 2;
                font::draw_text(text, tx as i64, ty as i64, ts, |x, y| {
                    // Clip to this cell so a long caption cannot spill into the next.
                    if (x as usize) < x0 + cell_w {
                        image.put(x, y, text_color)
                    }
                });
            }
        }
        Ok(image)
    }
}

/// One tile's values as gray levels: minimum → 0, maximum → 255, linear between,
/// rounded. Non-finite values are ignored for the range and drawn black; a constant
/// tile is all black.
///
/// ```
/// use ferrocnn::viz::normalize_tile;
/// use ndarray::array;
/// let g = normalize_tile(array![[-1.0f32, 0.0], [1.0, 3.0]].view());
/// assert_eq!(g, array![[0u8, 64], [128, 255]]);
/// ```
pub fn normalize_tile(tile: ArrayView2<f32>) -> Array2<u8> {
    let (min, max) = finite_range(tile.iter());
    tile.mapv(|v| to_gray(v, min, max))
}

/// The smallest and largest finite values (`(∞, −∞)` if there are none, which
/// [`to_gray`] draws black).
fn finite_range<'a>(values: impl Iterator<Item = &'a f32>) -> (f32, f32) {
    values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Gray tiles as tiles of one plane.
fn planes<'a>(tiles: &[ArrayView2<'a, f32>]) -> Vec<ArrayView3<'a, f32>> {
    tiles.iter().map(|t| t.insert_axis(Axis(0))).collect()
}

fn to_gray(v: f32, min: f32, max: f32) -> u8 {
    if !v.is_finite() || max <= min {
        return 0;
    }
    // In f64: (v − min) of two large f32 can lose the bits that decide rounding.
    let t = (v as f64 - min as f64) / (max as f64 - min as f64);
    (t.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// A pleasant number of columns for `n` tiles: about √n, preferring a count that
/// divides `n` (32 tiles → 8 × 4 rather than 6 × 6 with four holes).
pub fn auto_columns(n: usize) -> usize {
    let root = (n as f64).sqrt().ceil() as usize;
    (root..=2 * root)
        .find(|&c| n.is_multiple_of(c))
        .unwrap_or(root)
        .max(1)
}
