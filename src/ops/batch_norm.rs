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

use ndarray::{Array1, ArrayD, Ix1};
use rayon::prelude::*;

use super::elementwise::{sum, sum_map, sum_map2};
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

/// The gradients of gamma and beta from the per-channel sums `(Σg, Σg·x̂)`, each
/// only if wanted.
fn affine_grads(sums: &[(f64, f64)], needs: &[bool]) -> (Option<ArrayD<f32>>, Option<ArrayD<f32>>) {
    let column = |pick: fn(&(f64, f64)) -> f64| {
        sums.iter()
            .map(|s| pick(s) as f32)
            .collect::<Array1<f32>>()
            .into_dyn()
    };
    (
        needs[1].then(|| column(|s| s.1)),
        needs[2].then(|| column(|s| s.0)),
    )
}

impl Tensor {
    /// Normalizes `[N, C, H, W]` with the batch's own statistics, then applies
    /// `gamma` and `beta` (`[C]` each). Returns the output and the statistics.
    pub fn batch_norm2d(&self, gamma: &Tensor, beta: &Tensor, eps: f32) -> (Tensor, BatchStats) {
        let x = self.view4("batch_norm2d");
        let (n, c, h, w) = x.dim();
        let (hw, count) = (h * w, n * h * w);
        assert!(
            count > 1,
            "batch_norm2d: needs more than one value per channel, got shape {:?}",
            self.shape()
        );
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        let (g, b) = (channel_vector("gamma", gamma, c), channel_vector("beta", beta, c));

        let planes = move |ch: usize| (0..n).map(move |i| (i * c + ch) * hw..(i * c + ch + 1) * hw);
        let stats: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let total: f64 = planes(ch).map(|r| f64::from(sum(&xs[r]))).sum();
                let mean = (total / count as f64) as f32;
                let sq: f64 = planes(ch)
                    .map(|r| f64::from(sum_map(&xs[r], |v| (v - mean) * (v - mean))))
                    .sum();
                (mean, (sq / count as f64) as f32)
            })
            .collect();
        let inv_std: Vec<f32> = stats.iter().map(|&(_, var)| 1.0 / (var + eps).sqrt()).collect();

        // y = gamma·x̂ + beta. The backward pass recomputes x̂ = (x − mean)·inv_std
        // from x, the same bits, rather than keep a copy of it.
        let means: Vec<f32> = stats.iter().map(|s| s.0).collect();
        let normalizer = (means.clone(), inv_std.clone());
        let mut y = vec![0.0f32; xs.len()];
        y.par_chunks_mut(hw)
            .zip(xs.par_chunks(hw))
            .enumerate()
            .for_each(|(plane, (y, x))| {
                let ch = plane % c;
                let (mean, inv, g, b) = (means[ch], inv_std[ch], g[ch], b[ch]);
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = g * ((x - mean) * inv) + b;
                }
            });
        let shape = self.value().raw_dim();
        let value = ArrayD::from_shape_vec(shape, y).expect("same element count");
        let batch = BatchStats {
            mean: stats.iter().map(|s| s.0).collect(),
            var: stats.iter().map(|s| s.1).collect(),
            count,
        };
        let gamma_v = g.to_owned();
        let x_shared = self.shared_value();
        let out = Tensor::record("batch_norm2d", &[self, gamma, beta], value, move |grad, needs| {
            let (means, inv_std) = &normalizer;
            let grad = grad.as_standard_layout();
            let gs = grad.as_slice().expect("standard layout");
            let x = x_shared.as_standard_layout();
            let xs = x.as_slice().expect("standard layout");
            // Per channel: Σg and Σg·x̂, which give dbeta, dgamma and the input gradient.
            let sums: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    planes(ch).fold((0.0, 0.0), |(s, sx), r| {
                        let (g, x) = (&gs[r.clone()], &xs[r]);
                        let s2 = f64::from(sum(g));
                        let (mean, inv) = (means[ch], inv_std[ch]);
                        let sx2 = f64::from(sum_map2(g, x, |g, x| g * ((x - mean) * inv)));
                        (s + s2, sx + sx2)
                    })
                })
                .collect();
            let dx = needs[0].then(|| {
                let mut dx = vec![0.0f32; gs.len()];
                dx.par_chunks_mut(hw)
                    .zip(gs.par_chunks(hw))
                    .zip(xs.par_chunks(hw))
                    .enumerate()
                    .for_each(|(plane, ((dx, g), x))| {
                        let ch = plane % c;
                        let mean_g = (sums[ch].0 / count as f64) as f32;
                        let mean_gx = (sums[ch].1 / count as f64) as f32;
                        let (k, mean, inv) = (gamma_v[ch] * inv_std[ch], means[ch], inv_std[ch]);
                        for ((d, &g), &x) in dx.iter_mut().zip(g).zip(x) {
                            *d = k * (g - mean_g - (x - mean) * inv * mean_gx);
                        }
                    });
                ArrayD::from_shape_vec(grad.raw_dim(), dx).expect("same element count")
            });
            let (dgamma, dbeta) = affine_grads(&sums, needs);
            vec![dx, dgamma, dbeta]
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
        let mut y = vec![0.0f32; xs.len()];
        y.par_chunks_mut(hw)
            .zip(xs.par_chunks(hw))
            .enumerate()
            .for_each(|(plane, (y, x))| {
                let (k, s) = (scale[plane % c], shift[plane % c]);
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = k * x + s;
                }
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
                    let mut dx = vec![0.0f32; gs.len()];
                    dx.par_chunks_mut(hw)
                        .zip(gs.par_chunks(hw))
                        .enumerate()
                        .for_each(|(plane, (d, g))| {
                            let k = scale[plane % c];
                            d.iter_mut().zip(g).for_each(|(d, &g)| *d = k * g);
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
                let (dgamma, dbeta) = affine_grads(&sums, needs);
                vec![dx, dgamma, dbeta]
            },
        )
    }
}
