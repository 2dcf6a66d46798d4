//! Batch normalization over the channels of an NCHW tensor, training form: each
//! channel is normalized by the mean and (biased) variance of the batch, then scaled
//! by `gamma` and shifted by `beta`.
//!
//! The backward pass uses the closed form
//! `dx = gamma/σ · (g − mean(g) − x̂ · mean(g·x̂))` per channel instead of building the
//! normalization from elementwise ops, which would keep five intermediates alive.
//! Statistics are summed plane by plane in f32 lanes (a plane is at most a few
//! thousand pixels), and the planes' sums accumulated in f64: a channel can have 10⁵
//! elements. (A single f64 running sum per channel was a chain of dependent
//! additions, and batch norm took 40% of the default net's training time.)
//!
//! The planes are visited in memory order, each once, and their sums combined per
//! channel afterwards, in image order (so the result does not depend on the thread
//! count). Visiting a channel's planes one after another instead jumps a whole
//! image ahead at every plane, and on R3's 7×7 to 28×28 planes those passes were
//! load-bound: a tenth of a training step (perf). The variance comes from each
//! plane's squared deviations from its own mean, taken while the plane is in
//! cache, merged in f64 by Chan et al.'s rule for partial variances (see
//! [`channel_statistics`]), so the input is read once from memory where the
//! textbook two passes (the mean, then the deviations from it) read it twice; no
//! large sums are subtracted from each other.

use std::sync::Arc;

use ndarray::{Array1, ArrayD, Ix1};

use super::activation::relu as relu_of;
use super::conv::Unrecorded;
use super::elementwise::{keep_if, min_pieces, sum, sum_map, sum_map2, sum_map3};
use super::fresh::{fresh, fresh_with, Slots};
use super::parallel::map_indices;
use crate::tensor::Tensor;

/// Per-channel batch statistics from a training-mode pass, for the running averages.
#[derive(Clone, Debug)]
pub struct BatchStats {
    /// Mean of each channel.
    pub mean: Array1<f32>,
    /// Biased variance (divided by the element count) of each channel.
    pub var: Array1<f32>,
    /// Elements per channel (N·H·W), to turn `var` into the unbiased estimate.
    pub count: usize,
}

fn channel_vector<'a>(what: &str, t: &'a Tensor, channels: usize) -> ndarray::ArrayView1<'a, f32> {
    t.value()
        .view()
        .into_dimensionality::<Ix1>()
        .ok()
        .filter(|v| v.len() == channels)
        .unwrap_or_else(|| {
            panic!(
                "batch_norm2d: {what} has shape {:?}, expected [{channels}]",
                t.shape()
            )
        })
}

/// What [`plane_moments`] returns for a plane: `(shift, Σ(x − shift), Σ(x − shift)²)`.
pub(crate) type PlaneMoments = (f32, f32, f32);

/// A plane's mean in f32 (`shift`), and the sums of its deviations from it and of
/// their squares, `Σ(x − shift)` and `Σ(x − shift)²`: the second pass reads the
/// plane from cache. The first sum is the rounding error of `shift` times the
/// plane's size, kept so that the merge below is exact in that respect.
///
/// Also what a convolution takes of each output plane while it is in cache, for
/// the batch norm after it ([`conv2d_unrecorded`](Tensor::conv2d_unrecorded)).
pub(crate) fn plane_moments(x: &[f32]) -> PlaneMoments {
    // Three vectorized passes, the last two from cache: one loop keeping both sums
    // in lanes ran at about 6 instructions a value (callgrind), where `sum_map`
    // takes under 1.
    let shift = sum(x) / x.len() as f32;
    let deviations = sum_map(x, |v| v - shift);
    (shift, deviations, sum_map(x, |v| (v - shift) * (v - shift)))
}

/// Each channel's mean and biased variance from its planes' [`plane_moments`]
/// (`moments[i·C + ch]`, planes of `hw` pixels), merged in image order in f64 (the
/// update of Chan, Golub and LeVeque for partial variances): with `e = shift − mean`,
/// `mean = Σ (hw·shift + Σd) / count` and
/// `M2 = Σ (Σd² + 2e·Σd + hw·e²)`, `var = M2 / count`.
fn channel_statistics(moments: &[PlaneMoments], c: usize, hw: usize) -> Vec<(f32, f32)> {
    let n = moments.len() / c;
    let (count, hw) = ((n * hw) as f64, hw as f64);
    (0..c)
        .map(|ch| {
            let planes = || (0..n).map(|i| moments[i * c + ch]);
            let total: f64 = planes()
                .map(|(shift, d, _)| hw * f64::from(shift) + f64::from(d))
                .sum();
            let mean = total / count;
            let m2: f64 = planes()
                .map(|(shift, d, d2)| {
                    let e = f64::from(shift) - mean;
                    f64::from(d2) + 2.0 * e * f64::from(d) + hw * e * e
                })
                .sum();
            (mean as f32, (m2 / count) as f32)
        })
        .collect()
}

/// The gradients of gamma and beta from the per-channel sums `(Σg, Σg·x̂)`, each
/// only if wanted.
fn affine_grads(
    sums: &[(f64, f64)],
    need_gamma: bool,
    need_beta: bool,
) -> (Option<ArrayD<f32>>, Option<ArrayD<f32>>) {
    let column = |pick: fn(&(f64, f64)) -> f64| {
        sums.iter()
            .map(|s| pick(s) as f32)
            .collect::<Array1<f32>>()
            .into_dyn()
    };
    (
        need_gamma.then(|| column(|s| s.1)),
        need_beta.then(|| column(|s| s.0)),
    )
}

/// Where a plane of batch norm's input gradient goes: a chunk of a fresh tensor, or
/// a conv's gradient plane.
trait PlaneOut {
    fn put(&mut self, values: impl Iterator<Item = f32>);
}

impl PlaneOut for Slots<'_> {
    fn put(&mut self, values: impl Iterator<Item = f32>) {
        self.extend(values);
    }
}

impl PlaneOut for [f32] {
    fn put(&mut self, values: impl Iterator<Item = f32>) {
        for (out, v) in self.iter_mut().zip(values) {
            *out = v;
        }
    }
}

/// What the training form's input gradient needs, plane by plane:
/// `dx = gamma/σ · (g − mean(g) − x̂ · mean(g·x̂))`, `g` masked by ReLU.
struct DxPlanes<'a> {
    /// The output gradient, masked already unless `ys` is given.
    gs: &'a [f32],
    /// The input.
    xs: &'a [f32],
    /// How `gs` still needs ReLU's mask, if it does.
    mask: Mask<'a>,
    /// Per channel, `(Σg, Σg·x̂)`.
    sums: &'a [(f64, f64)],
    means: &'a [f32],
    inv_std: &'a [f32],
    gamma: &'a [f32],
    c: usize,
    hw: usize,
    count: usize,
}

/// Where ReLU's mask of batch norm's output gradient comes from.
#[derive(Clone, Copy)]
enum Mask<'a> {
    /// No ReLU, or the gradient is masked already.
    None,
    /// The output `y`: kept where `y > 0`.
    Output(&'a [f32]),
    /// The input, with no skip added: kept where `gamma·x̂ + beta > 0`, computed as
    /// the forward pass computed it (the same bits, so the same mask), with
    /// `beta` per channel. One stream fewer to read than `y` and `x` both.
    Affine(&'a [f32]),
}

/// `1` where `gamma·x̂ + beta > 0` (so where ReLU of it, the output, is positive),
/// else `0`, with `x̂ = (x − mean)·inv`, as the forward pass computes it.
#[inline(always)]
fn affine_positive(gamma: f32, beta: f32, mean: f32, inv: f32) -> impl Fn(f32) -> f32 + Copy {
    move |x: f32| keep_if(gamma * ((x - mean) * inv) + beta > 0.0, 1.0)
}

impl DxPlanes<'_> {
    /// The plane that starts at element `at` into `out`.
    #[inline]
    fn write<O: PlaneOut + ?Sized>(&self, at: usize, out: &mut O) {
        let (c, hw) = (self.c, self.hw);
        let ch = at / hw % c;
        let mean_g = (self.sums[ch].0 / self.count as f64) as f32;
        let mean_gx = (self.sums[ch].1 / self.count as f64) as f32;
        let (k, mean, inv) = (
            self.gamma[ch] * self.inv_std[ch],
            self.means[ch],
            self.inv_std[ch],
        );
        let (g, x) = (&self.gs[at..at + hw], &self.xs[at..at + hw]);
        let dx_of = move |g: f32, x: f32| k * (g - mean_g - (x - mean) * inv * mean_gx);
        match self.mask {
            Mask::Output(y) => {
                let y = &y[at..at + hw];
                let masked = g.iter().zip(y).map(|(&g, &y)| g * keep_if(y > 0.0, 1.0));
                out.put(masked.zip(x).map(|(g, &x)| dx_of(g, x)));
            }
            Mask::Affine(beta) => {
                let keep = affine_positive(self.gamma[ch], beta[ch], mean, inv);
                out.put(g.iter().zip(x).map(|(&g, &x)| dx_of(g * keep(x), x)));
            }
            Mask::None => out.put(g.iter().zip(x).map(|(&g, &x)| dx_of(g, x))),
        }
    }
}

impl Tensor {
    /// Normalizes `[N, C, H, W]` with the batch's own statistics, then applies
    /// `gamma` and `beta` (`[C]` each). Returns the output and the statistics.
    pub fn batch_norm2d(&self, gamma: &Tensor, beta: &Tensor, eps: f32) -> (Tensor, BatchStats) {
        self.batch_norm2d_then(gamma, beta, eps, None, false)
    }

    /// [`batch_norm2d`](Self::batch_norm2d), then `+ skip` if given, then ReLU if
    /// `relu`, in one op: the values and gradients of the separate ops, bit for bit,
    /// in one pass over memory each way instead of three. This is a ResNet block's
    /// ending (`relu(bn(conv(…)) + shortcut)`) and the middle of its main branch
    /// (`relu(bn(conv(x)))`).
    ///
    /// # Shapes
    /// `self` and `skip` `[N, C, H, W]`, `gamma` and `beta` `[C]` → `[N, C, H, W]`.
    pub fn batch_norm2d_then(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
        skip: Option<&Tensor>,
        relu: bool,
    ) -> (Tensor, BatchStats) {
        self.batch_norm2d_then_from(gamma, beta, eps, skip, relu, None, None)
    }

    /// [`batch_norm2d_then`](Self::batch_norm2d_then), given each plane's
    /// [`plane_moments`] if the op that made `self` took them (`N·C`, in memory
    /// order): then the statistics need no pass over `self`. The same values, bit
    /// for bit, since they are the same moments.
    ///
    /// With `upstream`, `self` is the output of a conv that was not recorded
    /// ([`Tensor::conv2d_unrecorded`]), and this op records both: its inputs are the
    /// conv's, then `gamma`, `beta` and `skip`, and its backward pass computes batch
    /// norm's input gradient plane by plane into the conv's gradient planes, never
    /// as a tensor of its own (a pass over memory each way saved, and the
    /// values of the separate ops, bit for bit).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm2d_then_from(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
        skip: Option<&Tensor>,
        relu: bool,
        moments: Option<Vec<PlaneMoments>>,
        upstream: Option<Unrecorded>,
    ) -> (Tensor, BatchStats) {
        let x = self.view4("batch_norm2d");
        let (n, c, h, w) = x.dim();
        let (hw, count) = (h * w, n * h * w);
        assert!(
            count > 1,
            "batch_norm2d: needs more than one value per channel, got shape {:?}",
            self.shape()
        );
        if let Some(skip) = skip {
            assert_eq!(
                skip.shape(),
                self.shape(),
                "batch_norm2d: the added tensor has shape {:?}, the input {:?}",
                skip.shape(),
                self.shape()
            );
        }
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        let (g, b) = (channel_vector("gamma", gamma, c), channel_vector("beta", beta, c));

        let moments = match moments {
            Some(moments) => {
                assert_eq!(moments.len(), n * c, "batch_norm2d: moments of {} planes", n * c);
                moments
            }
            None => map_indices(n * c, min_pieces(hw), |plane| {
                plane_moments(&xs[plane * hw..][..hw])
            }),
        };
        let stats = channel_statistics(&moments, c, hw);
        let inv_std: Vec<f32> = stats.iter().map(|&(_, var)| 1.0 / (var + eps).sqrt()).collect();

        // y = gamma·x̂ + beta (+ skip, then ReLU). The backward pass recomputes
        // x̂ = (x − mean)·inv_std from x, the same bits, rather than keep a copy of it.
        let means: Vec<f32> = stats.iter().map(|s| s.0).collect();
        let normalizer = (means.clone(), inv_std.clone());
        let skip_value = skip.map(|s| s.value().as_standard_layout());
        let skip_slice = skip_value
            .as_ref()
            .map(|s| s.as_slice().expect("standard layout"));
        let y = fresh(xs.len(), hw, true, |at, y| {
            let ch = at / hw % c;
            let (mean, inv, g, b) = (means[ch], inv_std[ch], g[ch], b[ch]);
            let x = &xs[at..at + hw];
            let affine = move |x: f32| g * ((x - mean) * inv) + b;
            match skip_slice.map(|skip| &skip[at..at + hw]) {
                Some(skip) if relu => y.extend(x.iter().zip(skip).map(|(&x, &s)| relu_of(affine(x) + s))),
                Some(skip) => y.extend(x.iter().zip(skip).map(|(&x, &s)| affine(x) + s)),
                None if relu => y.extend(x.iter().map(|&x| relu_of(affine(x)))),
                None => y.extend(x.iter().map(|&x| affine(x))),
            }
        });
        drop(skip_value);
        let shape = self.value().raw_dim();
        let value = Arc::new(ArrayD::from_shape_vec(shape, y).expect("same element count"));
        let batch = BatchStats {
            mean: stats.iter().map(|s| s.0).collect(),
            var: stats.iter().map(|s| s.1).collect(),
            count,
        };
        let gamma_v = g.to_owned();
        // Without a skip, ReLU's mask is that of batch norm's affine map, which the
        // backward pass recomputes from x instead of reading y (see `Mask::Affine`).
        let beta_v = (relu && skip.is_none()).then(|| b.to_owned());
        let x_shared = self.shared_value();
        let y_shared = relu.then(|| value.clone());
        let (name, upstream_inputs, upstream_backward) = match upstream {
            Some(conv) => ("conv2d_batch_norm2d", conv.inputs, Some(conv.backward)),
            None => ("batch_norm2d", vec![self], None),
        };
        // Gradients that come before gamma's: the input's, or the conv's inputs'.
        let first = upstream_inputs.len();
        let inputs: Vec<&Tensor> = upstream_inputs
            .into_iter()
            .chain([gamma, beta])
            .chain(skip)
            .collect();
        let out = Tensor::record(name, &inputs, value, move |grad, needs| {
            let (means, inv_std) = &normalizer;
            let grad = grad.as_standard_layout();
            let (need_input, need_gamma, need_beta) =
                (needs[..first].contains(&true), needs[first], needs[first + 1]);
            // ReLU's backward as in `relu`: the gradient times 1 or 0 where the output
            // is positive. Made once when the skip wants it too, else on the fly.
            let needs_skip = needs.get(first + 2).copied().unwrap_or(false);
            let x = x_shared.as_standard_layout();
            let xs = x.as_slice().expect("standard layout");
            let raw = grad.as_slice().expect("standard layout");
            let ys = y_shared.as_ref().map(|y| y.as_slice().expect("standard layout"));
            // Plane by plane, in memory order: Σg and Σg·x̂ (g masked by ReLU), which
            // give dbeta, dgamma and the input gradient. When the skip wants the
            // masked gradient too, it is written in the same pass and summed from
            // there.
            let beta = beta_v.as_ref().map(|b| b.as_slice().expect("contiguous"));
            let gamma = gamma_v.as_slice().expect("contiguous");
            let plane_sums = |at: usize| {
                let ch = at / hw % c;
                let (mean, inv) = (means[ch], inv_std[ch]);
                let (g, x) = (&raw[at..at + hw], &xs[at..at + hw]);
                match (ys, beta) {
                    (Some(_), Some(beta)) => {
                        let keep = affine_positive(gamma[ch], beta[ch], mean, inv);
                        (
                            sum_map2(g, x, |g, x| g * keep(x)),
                            sum_map2(g, x, |g, x| (g * keep(x)) * ((x - mean) * inv)),
                        )
                    }
                    (Some(y), None) => {
                        let y = &y[at..at + hw];
                        let m = |g: f32, y: f32| g * keep_if(y > 0.0, 1.0);
                        (
                            sum_map2(g, y, m),
                            sum_map3(g, y, x, |g, y, x| m(g, y) * ((x - mean) * inv)),
                        )
                    }
                    (None, _) => (sum(g), sum_map2(g, x, |g, x| g * ((x - mean) * inv))),
                }
            };
            let (masked, partials): (Option<Vec<f32>>, Vec<(f32, f32)>) = match ys {
                Some(y) if needs_skip => {
                    let (masked, partials) = fresh_with(raw.len(), hw, true, |at, m| {
                        let (g, y) = (&raw[at..at + hw], &y[at..at + hw]);
                        m.extend(g.iter().zip(y).map(|(&g, &y)| g * keep_if(y > 0.0, 1.0)));
                        // Summed from the plane just written, in cache, as the
                        // separate ops sum ReLU's gradient.
                        let (m, ch) = (m.written(), at / hw % c);
                        let (mean, inv) = (means[ch], inv_std[ch]);
                        let x = &xs[at..at + hw];
                        (sum(m), sum_map2(m, x, |g, x| g * ((x - mean) * inv)))
                    });
                    (Some(masked), partials)
                }
                _ => (
                    None,
                    map_indices(n * c, min_pieces(hw), |plane| plane_sums(plane * hw)),
                ),
            };
            let premasked = masked.is_some() || y_shared.is_none();
            let gs: &[f32] = masked.as_deref().unwrap_or(raw);
            // Per channel, the planes' sums in image order.
            let sums: Vec<(f64, f64)> = (0..c)
                .map(|ch| {
                    (0..n)
                        .map(|i| partials[i * c + ch])
                        .fold((0.0, 0.0), |(s, sx), (s2, sx2)| {
                            (s + f64::from(s2), sx + f64::from(sx2))
                        })
                })
                .collect();
            let mask = match (ys, beta) {
                _ if premasked => Mask::None,
                (_, Some(beta)) => Mask::Affine(beta),
                (Some(y), None) => Mask::Output(y),
                (None, None) => Mask::None,
            };
            let planes = DxPlanes {
                gs,
                xs,
                mask,
                sums: &sums,
                means,
                inv_std,
                gamma,
                c,
                hw,
                count,
            };
            let mut out = match &upstream_backward {
                None => vec![need_input.then(|| {
                    let dx = fresh(gs.len(), hw, true, |at, dx| planes.write(at, dx));
                    ArrayD::from_shape_vec(grad.raw_dim(), dx).expect("same element count")
                })],
                Some(_) if !need_input => vec![None; first],
                Some(conv) => conv(&needs[..first], &|image, ch, plane| {
                    planes.write((image * c + ch) * hw, plane)
                }),
            };
            let (dgamma, dbeta) = affine_grads(&sums, need_gamma, need_beta);
            out.extend([dgamma, dbeta]);
            if needs.len() == first + 3 {
                // The addition passes the (masked) gradient through unchanged.
                out.push(needs_skip.then(|| match masked {
                    Some(m) => ArrayD::from_shape_vec(grad.raw_dim(), m).expect("same element count"),
                    None => grad.into_owned(),
                }));
            }
            out
        });
        (out, batch)
    }
}

impl Tensor {
    /// Evaluation form: normalizes `[N, C, H, W]` with fixed (running) statistics,
    /// `y = gamma·(x − mean)/√(var + eps) + beta`, a per-channel affine map.
    pub fn batch_norm2d_eval(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Array1<f32>,
        var: &Array1<f32>,
        eps: f32,
    ) -> Tensor {
        let x = self.view4("batch_norm2d_eval");
        let (_, c, h, w) = x.dim();
        let hw = h * w;
        let (g, b) = (channel_vector("gamma", gamma, c), channel_vector("beta", beta, c));
        assert!(
            mean.len() == c && var.len() == c,
            "batch_norm2d_eval: statistics of length {} and {} for {c} channels",
            mean.len(),
            var.len()
        );
        let inv_std: Vec<f32> = var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect();
        let scale: Vec<f32> = (0..c).map(|ch| g[ch] * inv_std[ch]).collect();
        let shift: Vec<f32> = (0..c).map(|ch| b[ch] - mean[ch] * scale[ch]).collect();
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        let y = fresh(xs.len(), hw, true, |at, y| {
            let (k, s) = (scale[at / hw % c], shift[at / hw % c]);
            y.extend(xs[at..at + hw].iter().map(|&x| k * x + s));
        });
        let value = ArrayD::from_shape_vec(self.value().raw_dim(), y).expect("same element count");
        let (x_shared, mean) = (self.shared_value(), mean.clone());
        Tensor::record(
            "batch_norm2d_eval",
            &[self, gamma, beta],
            value,
            move |grad, needs| {
                let grad = grad.as_standard_layout();
                let gs = grad.as_slice().expect("standard layout");
                let x = x_shared.as_standard_layout();
                let xs = x.as_slice().expect("standard layout");
                let dx = needs[0].then(|| {
                    let dx = fresh(gs.len(), hw, true, |at, d| {
                        let k = scale[at / hw % c];
                        d.extend(gs[at..at + hw].iter().map(|&g| k * g));
                    });
                    ArrayD::from_shape_vec(grad.raw_dim(), dx).expect("same element count")
                });
                // Per channel: Σ g (for beta) and Σ g·x̂ (for gamma), planes visited in order.
                let mut sums = vec![(0.0f64, 0.0f64); c];
                for (plane, (g, x)) in gs.chunks(hw).zip(xs.chunks(hw)).enumerate() {
                    let ch = plane % c;
                    let (m, inv) = (mean[ch], inv_std[ch]);
                    sums[ch].0 += f64::from(sum(g));
                    sums[ch].1 += f64::from(sum_map2(g, x, |g, x| g * ((x - m) * inv)));
                }
                let (dgamma, dbeta) = affine_grads(&sums, needs[1], needs[2]);
                vec![dx, dgamma, dbeta]
            },
        )
    }
}
