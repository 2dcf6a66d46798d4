//! Which algorithm computes a convolution: every threshold in one [`choose`].
//!
//! A conv2d is three products — the forward pass, the input gradient and the weight
//! gradient — and each may take its own algorithm: Winograd where it pays, im2col +
//! GEMM elsewhere, and the direct loops of [`reference`](super::reference) when
//! asked for. The choice depends only on the geometry, the channel counts, the
//! batch size and the pass (never on the thread count), so it is made once per op,
//! before any work, and a forced algorithm that cannot apply fails at the call that
//! asked for it.

use serde::{Deserialize, Serialize};

use super::im2col::ConvGeometry;
use super::winograd::Winograd;

/// How a [`Tensor::conv2d`](crate::Tensor::conv2d) (or
/// [`conv2d_block`](crate::Tensor::conv2d_block)) is computed. All give the same
/// values up to rounding (Winograd rounds differently, within 1e-4 of the largest
/// output on unit-scale data).
///
/// The default, `Auto`, picks the fastest measured for each pass. Forcing another is
/// for tests and measurements; forcing one that cannot compute the geometry (Winograd
/// on a 5×5 or strided kernel) panics, naming conv2d, the algorithm and the geometry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvAlgorithm {
    /// Winograd for 3×3, stride-1 kernels with at least 8 channels in and out (for
    /// the forward pass, also at least 160 output pixels over the batch, or at most
    /// 16 tiles with channel counts that are multiples of 8; for the backward passes,
    /// at least 100 per plane or 64 channels each way), im2col + GEMM elsewhere.
    /// The thresholds, and why, are in `src/ops/conv/algorithm.rs`.
    #[default]
    Auto,
    /// The seven nested loops of the definition, written to be read, not to be fast:
    /// the reference every other algorithm is tested against.
    Direct,
    /// im2col + GEMM: any kernel, stride, padding and dilation.
    Im2col,
    /// Winograd's F(4×4, 3×3): 3×3 kernels with stride 1 and dilation 1 only, and for
    /// the input gradient a padding of at most 2 on the top and left.
    Winograd,
}

/// One of the three products of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvPass {
    /// `out = W ⋆ x`.
    Forward,
    /// `dx` from the output gradient: itself a convolution, of the output gradient
    /// with the kernel rotated by 180°.
    InputGradient,
    /// `dW` from the output gradient and the input.
    WeightGradient,
}

/// Channels (in or out) below which Winograd does not pay: its products are
/// `[O, C]·[C, T]`, and with a single input channel (a first layer) or output
/// channel (that layer's input gradient) its transforms cost more than the
/// multiplications they save. 8 keeps every layer of the reference nets but the
/// first on Winograd.
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// Output pixels per plane below which the backward passes stay with im2col. They
/// carry extra transforms (of the output gradient, and of the input again for the
/// weight gradient) that weigh more on small planes. Measured 2026-12-02 (one
/// thread, batch 128, both backward passes of a conv + ReLU + 2×2 pool block, the
/// transforms as they are now): on 11×11 outputs Winograd took 9.6–9.8 ms against
/// 14.6–14.8 with im2col for R1's 32 → 64 (each pass alone about 2.5 ms of that),
/// 2.0 against 3.1 for 16 → 16, 0.8–1.1 against 1.3–1.8 for 8 → 8; on 7×7
/// outputs (49 pixels) it was even (5.8–5.9 against 6.3 for 32 → 64, 2.2 against
/// 2.1 for 16 → 32), on 5×5 slower (4.5 against 3.4). 100 sits between 49 and 121.
/// (An earlier version of the transforms lost on R1's 11×11: 7.7 against 6.95 ms a
/// step.) The forward pass has its own rule, [`WINOGRAD_MIN_FORWARD_PIXELS`].
const WINOGRAD_MIN_BACKWARD_PIXELS: usize = 100;

/// Output pixels of the whole batch below which the forward pass stays with
/// im2col. Winograd's products have a column per 4×4 tile, so a small batch of
/// small planes gives it few: R3's 7×7 planes at batch 1 are 4 tiles (2×2, and
/// the products pad the columns to 16), where im2col's product is `[64×576]·[576×49]`.
/// Batch-1 forward, one thread, 64 → 64 on 7×7: im2col 138 µs against 195 with
/// Winograd (batch 2: 257 / 344, batch 3: 365 / 412, batch 4: 515 / 427), R1's
/// 32 → 64 on 11×11 (121 pixels): 111–119 against 135–148; from 14×14 on
/// (196 pixels) Winograd wins at batch 1 (32 → 32: 107 against 147). Whole
/// batches, not a task's share, so that the choice, and so the rounding, does not
/// depend on the thread count. (Those measurements were of the slot form: where
/// the channel form applies, the forward pass takes Winograd at any size, see
/// [`WINOGRAD_CHANNEL_FORM_MAX_TILES`].)
const WINOGRAD_MIN_FORWARD_PIXELS: usize = 160;

/// Channels (both ways) from which the backward passes take Winograd on planes of
/// any size. With 64 channels each way its products are `[64×64]·[64×T]`, while
/// im2col's on a small plane are `[576×64]·[64×49·B]` plus the column moves. On
/// R3's 7×7 planes (64 → 64, padding 1), fwd+bwd at batch 128, one thread: 16.9 ms
/// at best of 41 alternated runs against 22.4 with im2col for the backward
/// (callgrind, the whole probe: 210 against 329 million instructions).
const WINOGRAD_WIDE_CHANNELS: usize = 64;

/// The algorithm of one pass of a convolution with geometry `g`, `out_channels`
/// output channels and `batch` images, given what the user `requested`: never
/// `Auto`.
///
/// `Auto` takes Winograd when it applies (see [`winograd_applies`]), both channel
/// counts reach [`WINOGRAD_MIN_CHANNELS`], and, for the forward pass, the batch has
/// at least [`WINOGRAD_MIN_FORWARD_PIXELS`] output pixels or the channel form
/// applies ([`winograd_forward_form`]), for the backward passes,
/// the output plane has at least [`WINOGRAD_MIN_BACKWARD_PIXELS`] pixels or both
/// channel counts reach [`WINOGRAD_WIDE_CHANNELS`]; im2col otherwise.
/// The direct loops are never chosen: they are the reference, not a fast path.
///
/// Panics if `Winograd` is requested where it does not apply.
pub(crate) fn choose(
    requested: ConvAlgorithm,
    g: &ConvGeometry,
    out_channels: usize,
    batch: usize,
    pass: ConvPass,
) -> ConvAlgorithm {
    match requested {
        ConvAlgorithm::Auto => {
            let enough_channels = g.channels.min(out_channels) >= WINOGRAD_MIN_CHANNELS;
            let pixels = g.oh * g.ow;
            let large_enough = match pass {
                ConvPass::Forward => {
                    batch * pixels >= WINOGRAD_MIN_FORWARD_PIXELS
                        || winograd_forward_form(g, out_channels, batch) == WinogradForm::Channels
                }
                ConvPass::InputGradient | ConvPass::WeightGradient => {
                    pixels >= WINOGRAD_MIN_BACKWARD_PIXELS
                        || g.channels.min(out_channels) >= WINOGRAD_WIDE_CHANNELS
                }
            };
            if winograd_applies(g, pass) && enough_channels && large_enough {
                ConvAlgorithm::Winograd
            } else {
                ConvAlgorithm::Im2col
            }
        }
        ConvAlgorithm::Winograd => {
            assert!(
                winograd_applies(g, pass),
                "conv2d: ConvAlgorithm::Winograd cannot compute the {pass:?} pass of a {}×{} kernel \
                 with stride {:?}, dilation {:?} and padding {} top, {} left (it needs 3×3, stride 1, \
                 dilation 1, and for the input gradient a padding of at most 2)",
                g.kh,
                g.kw,
                g.stride,
                g.dilation,
                g.top,
                g.left
            );
            ConvAlgorithm::Winograd
        }
        direct_or_im2col => direct_or_im2col,
    }
}

/// Taps (`K = C·kh·kw`) up to which a conv block that max-pools, and whose input
/// needs no gradient (a first layer), sums its weight gradient from the pooling's
/// winners alone ([`pooled_gradient`](super::pooled_gradient)) instead of by
/// im2col + GEMM. Its multiply-adds are a quarter of the product's for 2×2 windows,
/// but gathered a row at a time where the product streams; what it saves is the
/// zeroed and scattered gradient planes and a product too thin to run fast, which
/// weigh most where `K` is small. Measured on R1's first conv (`K = 9`, one thread,
/// batch 128): see `BENCHMARKS.md`. An RGB first layer (`K = 27`) measured no
/// clear difference (on a loaded machine), so it stays with im2col.
const POOLED_MAX_TAPS: usize = 16;

/// Whether a conv block with geometry `g`, whose weight gradient goes by
/// `weight_gradient`, sums that gradient from its pooling's winners
/// ([`pooled_gradient`](super::pooled_gradient)): under `Auto`, when the block
/// `pools`, the weight's gradient is asked for and the input's is not, and the
/// kernel has at most [`POOLED_MAX_TAPS`] taps. A forced algorithm computes the
/// weight gradient as it says.
pub(crate) fn sums_weight_gradient_from_winners(
    requested: ConvAlgorithm,
    g: &ConvGeometry,
    weight_gradient: ConvAlgorithm,
    pools: bool,
    [need_x, need_w]: [bool; 2],
) -> bool {
    requested == ConvAlgorithm::Auto
        && weight_gradient == ConvAlgorithm::Im2col
        && pools
        && need_w
        && !need_x
        && g.k() <= POOLED_MAX_TAPS
}

/// How Winograd's forward pass lays out its work: with the tile slots innermost
/// (`winograd/mod.rs`, for many tiles), or with the channels innermost
/// (`winograd/channels.rs`, for few).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WinogradForm {
    Slots,
    Channels,
}

/// Tiles (4×4 blocks of outputs, over the whole batch) up to which Winograd's
/// forward pass takes the channel form, where the channel counts allow it. R3 at
/// batch 1, callgrind, instructions per forward call: 7.76M with 7×7 on im2col and
/// the rest in the slot form; 6.35M with the 7×7 layers (4 tiles) in the channel
/// form; 6.18M with the 14×14 ones (16 tiles) too; 6.63M with the 28×28 ones (49
/// tiles, 16 channels: moving their pixels to and from the channels-innermost
/// layout, a float at a time, costs more than the slot form's transforms). R1 at
/// batch 1 (its 11×11 conv, 9 tiles, was on im2col): 1.19M → 0.81M.
const WINOGRAD_CHANNEL_FORM_MAX_TILES: usize = 16;

/// The form of Winograd's forward pass of `g` with `out_channels` output channels
/// on `batch` images: the channel form when both channel counts are multiples of 8
/// and the batch has at most [`WINOGRAD_CHANNEL_FORM_MAX_TILES`] tiles.
pub(crate) fn winograd_forward_form(g: &ConvGeometry, out_channels: usize, batch: usize) -> WinogradForm {
    let lanes = Winograd::channel_form_fits(g.channels, out_channels);
    let tiles = batch * g.oh.div_ceil(4) * g.ow.div_ceil(4);
    if lanes && tiles <= WINOGRAD_CHANNEL_FORM_MAX_TILES {
        WinogradForm::Channels
    } else {
        WinogradForm::Slots
    }
}

/// Whether our Winograd F(4×4, 3×3) can compute `pass` at all: a 3×3 kernel, stride
/// 1, dilation 1; and for the input gradient, a convolution padded by `2 − padding`,
/// a padding of at most 2 on the top and left.
fn winograd_applies(g: &ConvGeometry, pass: ConvPass) -> bool {
    let three_by_three = (g.kh, g.kw) == (3, 3) && g.stride == (1, 1) && g.dilation == (1, 1);
    match pass {
        ConvPass::InputGradient => three_by_three && g.top <= 2 && g.left <= 2,
        ConvPass::Forward | ConvPass::WeightGradient => three_by_three,
    }
}

/// The algorithm of each pass of one conv2d, chosen once, when the op is called.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvAlgorithms {
    pub forward: ConvAlgorithm,
    pub input_gradient: ConvAlgorithm,
    pub weight_gradient: ConvAlgorithm,
}

impl ConvAlgorithms {
    /// [`choose`] for each pass of a batch of `batch` images.
    pub fn new(
        requested: ConvAlgorithm,
        g: &ConvGeometry,
        out_channels: usize,
        batch: usize,
    ) -> ConvAlgorithms {
        let pass = |pass| choose(requested, g, out_channels, batch, pass);
        ConvAlgorithms {
            forward: pass(ConvPass::Forward),
            input_gradient: pass(ConvPass::InputGradient),
            weight_gradient: pass(ConvPass::WeightGradient),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConvAlgorithm::{Auto, Im2col, Winograd};
    use ConvPass::{Forward, InputGradient, WeightGradient};

    fn geometry(channels: usize, hw: usize, kernel: usize, stride: usize, pad: usize) -> ConvGeometry {
        let out = (hw + 2 * pad - kernel) / stride + 1;
        ConvGeometry {
            channels,
            h: hw,
            w: hw,
            kh: kernel,
            kw: kernel,
            stride: (stride, stride),
            dilation: (1, 1),
            top: pad,
            left: pad,
            oh: out,
            ow: out,
        }
    }

    /// What `Auto` picks for a batch of 128.
    fn auto(g: &ConvGeometry, o: usize, pass: ConvPass) -> ConvAlgorithm {
        choose(Auto, g, o, 128, pass)
    }

    #[test]
    fn auto_takes_winograd_for_3x3_stride_1_with_enough_channels() {
        // The shapes tests/suite/conv_pool.rs's Winograd cases rely on.
        assert_eq!(auto(&geometry(8, 9, 3, 1, 1), 8, Forward), Winograd);
        assert_eq!(auto(&geometry(16, 16, 3, 1, 0), 8, InputGradient), Winograd);
        assert_eq!(auto(&geometry(8, 14, 3, 1, 1), 8, WeightGradient), Winograd);
        // R1's second conv (11×11 outputs): Winograd throughout.
        assert_eq!(auto(&geometry(32, 13, 3, 1, 0), 64, Forward), Winograd);
        assert_eq!(auto(&geometry(32, 13, 3, 1, 0), 64, InputGradient), Winograd);
        assert_eq!(auto(&geometry(32, 13, 3, 1, 0), 64, WeightGradient), Winograd);
        // Smaller planes (9×9 outputs): the forward pass only.
        assert_eq!(auto(&geometry(16, 11, 3, 1, 0), 8, Forward), Winograd);
        assert_eq!(auto(&geometry(16, 11, 3, 1, 0), 8, InputGradient), Im2col);
        assert_eq!(auto(&geometry(16, 11, 3, 1, 0), 8, WeightGradient), Im2col);
        assert_eq!(auto(&geometry(32, 9, 3, 1, 0), 64, InputGradient), Im2col);
        // Small planes with 64 channels each way (R3's 7×7): Winograd throughout.
        assert_eq!(auto(&geometry(64, 7, 3, 1, 1), 64, InputGradient), Winograd);
        assert_eq!(auto(&geometry(64, 7, 3, 1, 1), 64, WeightGradient), Winograd);
        // Padding 3: the input gradient would need padding −1.
        assert_eq!(auto(&geometry(8, 12, 3, 1, 3), 8, Forward), Winograd);
        assert_eq!(auto(&geometry(8, 12, 3, 1, 3), 8, WeightGradient), Winograd);
        assert_eq!(auto(&geometry(8, 12, 3, 1, 3), 8, InputGradient), Im2col);
        // A first layer, its input gradient, a 5×5 kernel, stride 2.
        assert_eq!(auto(&geometry(1, 28, 3, 1, 0), 32, Forward), Im2col);
        assert_eq!(auto(&geometry(32, 28, 3, 1, 0), 1, InputGradient), Im2col);
        assert_eq!(auto(&geometry(8, 9, 5, 1, 0), 8, Forward), Im2col);
        assert_eq!(auto(&geometry(8, 9, 3, 2, 0), 8, Forward), Im2col);
    }

    #[test]
    fn auto_keeps_small_batches_of_small_planes_on_im2col_forward() {
        // R3 at batch 1: 28×28 and 14×14 on Winograd, 7×7 on im2col; R1's 11×11.
        let r3 = |hw, c| choose(Auto, &geometry(c, hw, 3, 1, 1), c, 1, Forward);
        assert_eq!(r3(28, 16), Winograd);
        assert_eq!(r3(14, 32), Winograd);
        assert_eq!(r3(7, 64), Winograd);
        assert_eq!(choose(Auto, &geometry(64, 7, 3, 1, 1), 64, 3, Forward), Winograd);
        assert_eq!(choose(Auto, &geometry(64, 7, 3, 1, 1), 64, 4, Forward), Winograd);
        assert_eq!(choose(Auto, &geometry(32, 13, 3, 1, 0), 64, 1, Forward), Winograd);
        assert_eq!(choose(Auto, &geometry(32, 13, 3, 1, 0), 64, 2, Forward), Winograd);
        // Few tiles with channel counts that are not multiples of 8: im2col.
        assert_eq!(choose(Auto, &geometry(12, 7, 3, 1, 1), 16, 1, Forward), Im2col);
        assert_eq!(choose(Auto, &geometry(16, 7, 3, 1, 1), 12, 3, Forward), Im2col);
        assert_eq!(choose(Auto, &geometry(16, 7, 3, 1, 1), 12, 4, Forward), Winograd);
        // The backward passes do not look at the batch.
        assert_eq!(
            choose(Auto, &geometry(64, 7, 3, 1, 1), 64, 1, InputGradient),
            Winograd
        );
    }

    #[test]
    fn first_layers_that_pool_sum_the_weight_gradient_from_the_winners() {
        let rule = |requested, c, pools, needs| {
            let g = geometry(c, 28, 3, 1, 0);
            let algorithm = choose(requested, &g, 32, 128, WeightGradient);
            sums_weight_gradient_from_winners(requested, &g, algorithm, pools, needs)
        };
        // R1's first conv: the input needs no gradient, the weight does.
        assert!(rule(Auto, 1, true, [false, true]));
        // An input gradient, a frozen weight, no pool, a forced algorithm, RGB (K = 27).
        assert!(!rule(Auto, 1, true, [true, true]));
        assert!(!rule(Auto, 1, true, [false, false]));
        assert!(!rule(Auto, 1, false, [false, true]));
        assert!(!rule(Im2col, 1, true, [false, true]));
        assert!(!rule(Auto, 3, true, [false, true]));
    }

    #[test]
    fn few_tiles_take_the_channel_form() {
        let form = |c, hw, o, batch| winograd_forward_form(&geometry(c, hw, 3, 1, 1), o, batch);
        // R3 at batch 1: 7×7 (4 tiles) and 14×14 (16) in the channel form, 28×28 (49)
        // in the slot form; 7×7 up to batch 4 (16 tiles).
        assert_eq!(form(64, 7, 64, 1), WinogradForm::Channels);
        assert_eq!(form(32, 14, 32, 1), WinogradForm::Channels);
        assert_eq!(form(16, 28, 16, 1), WinogradForm::Slots);
        assert_eq!(form(64, 7, 64, 4), WinogradForm::Channels);
        assert_eq!(form(64, 7, 64, 5), WinogradForm::Slots);
        // Channel counts that are not multiples of 8.
        assert_eq!(form(12, 7, 64, 1), WinogradForm::Slots);
        assert_eq!(form(64, 7, 12, 1), WinogradForm::Slots);
    }

    #[test]
    fn forced_algorithms_are_kept_where_they_apply() {
        let first_layer = geometry(1, 28, 3, 1, 0);
        assert_eq!(choose(Winograd, &first_layer, 32, 1, InputGradient), Winograd);
        let strided = geometry(8, 9, 3, 2, 0);
        for algorithm in [ConvAlgorithm::Direct, Im2col] {
            for pass in [Forward, InputGradient, WeightGradient] {
                assert_eq!(choose(algorithm, &strided, 8, 1, pass), algorithm);
            }
        }
    }

    #[test]
    #[should_panic(
        expected = "conv2d: ConvAlgorithm::Winograd cannot compute the Forward pass of a 5×5 kernel"
    )]
    fn forcing_winograd_on_a_5x5_kernel_panics() {
        choose(Winograd, &geometry(8, 9, 5, 1, 0), 8, 1, Forward);
    }
}
