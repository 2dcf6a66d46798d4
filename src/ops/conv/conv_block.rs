//! A convolution block in one op: conv2d + bias, then optionally ReLU and max
//! pooling, as in `Conv2d → ReLU → MaxPool2d`.
//!
//! Why fuse: the separate ops write the full-resolution conv output to memory, read
//! it back to apply ReLU and pool it, and in the backward pass zero and scatter a
//! gradient of the same size before the conv reads it again. R1's first conv output
//! is 11 MB per batch of 128, far bigger than any cache, so those passes were about
//! a quarter of an R1 training step (profiled). Fused, each image's conv result
//! stays in the conv's cache-sized product buffer: the epilogue pools it and applies
//! ReLU from there, and the backward builds the conv's output gradient in the same
//! buffer from the pooled gradient and the pooling's winners.
//!
//! The results are those of the separate ops, bit for bit (tested): the products are
//! the same, max pooling picks the same first maximum, and ReLU after pooling equals
//! pooling after ReLU (ReLU is monotonic), with the same gradient mask. Two
//! exceptions, within rounding: a first layer (an input that needs no gradient, a
//! small kernel) sums its weight and bias gradients from the pooling's winners
//! alone, without the gradient planes ([`pooled_gradient`](super::pooled_gradient));
//! and where the pooling reads less than the whole output (a 2×2 pooling of an odd
//! size), Winograd computes only what it reads: the outputs the windows cover,
//! from the input pixels those read, and their gradients. The separate conv's
//! tiles also mix in the pixels past them, whose terms cancel to within rounding
//! (1e-8), and leave that residue in the input gradient where the block writes
//! exact zeros. On R1's second conv each pass takes 9 tile slots an image,
//! instead of 13 (input gradient) and 9¾ (forward and weight gradient); see
//! `Winograd::forward_over` and `Winograd::input_gradient`.

use std::mem::MaybeUninit;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use super::algorithm::sums_weight_gradient_from_winners;
use super::conv2d::{backward_with, conv2d_geometry, forward_with, Conv2dOptions, ConvGrads, Planes};
use super::kernel_cache::{forward_kernels, KernelCache};
use super::output_epilogue::OutputEpilogue;
use super::padding::Padding;
use super::pooled_gradient;
use crate::ops::activation::relu as relu_of;
use crate::ops::cpu::vectorized;
use crate::ops::elementwise::keep_if;
use crate::ops::max_pool_backward::{
    masked_by_winners, max_pool_plane_backward, relu_marking_winners, DROPPED,
};
use crate::ops::max_pool_plane::max_pool_plane;
use crate::ops::parallel::{for_each_index, SharedMut};
use crate::ops::pool::PoolGeometry;
use crate::tensor::Tensor;

/// What a [`Tensor::conv2d_block`] applies after the convolution and its bias.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvEpilogue {
    /// Apply ReLU.
    pub relu: bool,
    /// Max-pool with this window.
    pub max_pool: Option<PoolWindow>,
}

/// The window of a max pooling: as the arguments of [`Tensor::max_pool2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolWindow {
    /// Window size `(rows, columns)`.
    pub kernel: (usize, usize),
    /// Step of the window.
    pub stride: (usize, usize),
    /// Padding of the input (counts as −∞).
    pub padding: Padding,
}

impl Tensor {
    /// `conv2d` followed by `epilogue`, in one pass: the same values and gradients as
    /// `x.conv2d(w, b, opts)` then `.relu()` and `.max_pool2d(…)`, without writing
    /// the full-resolution conv output to memory. [`Sequential`](crate::nn::Sequential)
    /// uses it by itself for `Conv2d → ReLU → MaxPool2d` and `Conv2d → ReLU`.
    ///
    /// # Shapes
    /// As [`Tensor::conv2d`], then as [`Tensor::max_pool2d`] if the epilogue pools.
    ///
    /// ```
    /// use ferrocnn::{Conv2dOptions, ConvEpilogue, Padding, PoolWindow, Tensor};
    /// use ndarray::Array4;
    ///
    /// let x = Tensor::new(Array4::from_shape_fn((1, 1, 4, 4), |(_, _, i, j)| (i * 4 + j) as f32 - 8.0).into_dyn());
    /// let k = Tensor::new(Array4::from_elem((1, 1, 1, 1), 1.0f32).into_dyn());
    /// let pool = PoolWindow { kernel: (2, 2), stride: (2, 2), padding: Padding::Valid };
    /// let block = ConvEpilogue { relu: true, max_pool: Some(pool) };
    /// let y = x.conv2d_block(&k, None, &Conv2dOptions::default(), &block);
    /// assert_eq!(y.value().as_slice().unwrap(), &[0.0, 0.0, 5.0, 7.0]);
    /// ```
    pub fn conv2d_block(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &Conv2dOptions,
        epilogue: &ConvEpilogue,
    ) -> Tensor {
        self.conv2d_block_keeping(weight, bias, opts, epilogue, None)
    }

    /// [`conv2d_block`](Tensor::conv2d_block), taking Winograd's transformed kernels
    /// from `kernels` (and keeping them there) when the forward pass runs by
    /// Winograd: what [`Conv2dBlock`](crate::nn::Conv2dBlock) uses when nothing is
    /// recorded (see [`KernelCache`]).
    pub(crate) fn conv2d_block_keeping(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &Conv2dOptions,
        epilogue: &ConvEpilogue,
        kernels: Option<&mut KernelCache>,
    ) -> Tensor {
        let (geometry, n, o, algorithms) = conv2d_geometry("conv2d_block", self, weight, bias, opts);
        let (oh, ow) = (geometry.oh, geometry.ow);
        let pool = epilogue
            .max_pool
            .map(|p| PoolGeometry::new("conv2d_block", &[n, o, oh, ow], p.kernel, p.stride, p.padding));
        let out_shape = match &pool {
            Some(pool) => pool.out_shape(&[n, o, oh, ow]),
            None => [n, o, oh, ow],
        };
        let q = out_shape[2] * out_shape[3];
        // What the pooling reads of the conv output: the rest is never computed,
        // and its gradient is zero.
        let extent = pool.as_ref().map_or((oh, ow), PoolGeometry::covered);
        let relu = epilogue.relu;
        let requested = opts.algorithm;

        let x_value = self.shared_value();
        let w_value = weight.shared_value();
        // Without a backward to feed, the pooling keeps no winners, and the bias goes
        // on the pooled values: max(x + b) = max(x) + b exactly, as rounding is
        // monotonic. With one, the bias comes first, so that the winners are those of
        // the separate ops (two values may round to a tie once the bias is added).
        let records = [self, weight].into_iter().chain(bias).any(Tensor::requires_grad);
        assert!(
            pool.is_none() || !records || oh * ow <= DROPPED as usize,
            "conv2d_block: a {oh}x{ow} plane is too large to pool with a backward (winner indices are 31-bit)"
        );
        let mut argmax = zeros_on_pool(if pool.is_some() && records { n * o * q } else { 0 });
        let out = {
            let x = x_value.as_standard_layout();
            let wv = w_value.as_standard_layout();
            let b = bias.map(|b| b.value().as_standard_layout().into_owned());
            let b = b.as_ref().map(|b| b.as_slice().expect("standard layout"));
            let x = x.as_slice().expect("standard layout");
            let wv = wv.as_slice().expect("standard layout");
            let u = forward_kernels(kernels, algorithms.forward, &geometry, o, n, &w_value, wv);
            // Unpooled, the bias and ReLU are an inference conv's epilogue.
            let epilogue = b.filter(|_| pool.is_none()).map(|bias| OutputEpilogue {
                bias,
                skip: None,
                relu,
            });
            forward_with(
                &geometry,
                algorithms.forward,
                n,
                o,
                x,
                wv,
                u.as_deref().map(Vec::as_slice),
                o * q,
                &mut argmax,
                (epilogue.as_ref(), extent),
                |image, planes, out, argmax| {
                    for oc in 0..o {
                        let plane = planes.plane(oc);
                        let Some(pool) = &pool else {
                            match &epilogue {
                                // Compiled for AVX2 (R2's first conv: 5.5 MB of
                                // output a step).
                                Some(epilogue) => epilogue.write_plane(plane, oc, image, out),
                                None if relu => out.extend(plane.iter().map(|&v| relu_of(v))),
                                None => out.extend(plane.iter().copied()),
                            }
                            continue;
                        };
                        let add_bias = |values: &mut [f32]| {
                            if let Some(b) = b {
                                add_in_place(values, b[oc]);
                            }
                        };
                        out.part(q, |out| {
                            let out = out.zeroed();
                            if records {
                                let argmax = &mut argmax[oc * q..(oc + 1) * q];
                                add_bias(plane);
                                max_pool_plane(pool, plane, out, argmax);
                                if relu {
                                    relu_marking_winners(out, argmax);
                                }
                            } else {
                                max_pool_plane(pool, plane, out, &mut []);
                                add_bias(out);
                                if relu {
                                    out.iter_mut().for_each(|v| *v = relu_of(*v));
                                }
                            }
                        });
                    }
                },
            )
        };
        let value = Arc::new(ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("output size"));

        // ReLU's backward needs the output only where no pooling follows: behind a
        // pool the winners carry its mask (`DROPPED`). Not holding the output lets
        // the next op own it (`Flatten` reshapes it in place instead of copying).
        let y = (relu && pool.is_none()).then(|| value.clone());
        let inputs: Vec<&Tensor> = [self, weight].into_iter().chain(bias).collect();
        let input_shape = self.shape().to_vec();
        let weight_shape = weight.shape().to_vec();
        Tensor::record("conv2d_block", &inputs, value, move |grad, needs| {
            let grad = grad.as_standard_layout();
            let grad = grad.as_slice().expect("standard layout");
            let y = y.as_ref().map(|y| y.as_slice().expect("standard layout"));
            let x = x_value.as_standard_layout();
            let wv = w_value.as_standard_layout();
            let need_bias = needs.get(2).copied().unwrap_or(false);
            // The gradient at the raw conv output: ReLU's mask (where the output is
            // positive; behind a pool, the winners not marked `DROPPED`), then routed
            // to each window's winner. ReLU's backward is as in `relu`: the gradient
            // times 1 or 0. One loop per case: with `relu` tested inside, the
            // unpooled loop ran one element at a time (7% of an R2 step, perf).
            let gradient = |image: usize, planes: &mut Planes| {
                for oc in 0..o {
                    let at = (image * o + oc) * q;
                    let g = &grad[at..at + q];
                    let plane = planes.plane(oc);
                    match (&pool, y) {
                        (Some(pool), _) => max_pool_plane_backward(pool, &argmax[at..at + q], g, plane),
                        (None, Some(y)) => relu_backward(g, &y[at..at + q], plane),
                        (None, None) => plane.copy_from_slice(g),
                    }
                }
            };
            let x = x.as_slice().expect("standard layout");
            let from_winners = sums_weight_gradient_from_winners(
                requested,
                &geometry,
                algorithms.weight_gradient,
                pool.is_some(),
                [needs[0], needs[1]],
            );
            let grads = if from_winners {
                // The masked gradient at each pooled output, as `gradient` routes it
                // (without ReLU no winner is marked, and `g · 1` is `g`).
                let masked = |image: usize, oc: usize, out: &mut [f32]| {
                    let at = (image * o + oc) * q;
                    masked_by_winners(&grad[at..at + q], &argmax[at..at + q], out);
                };
                let (dw, db) = pooled_gradient::pooled_weight_gradient(
                    &geometry, n, o, x, q, &argmax, need_bias, masked,
                );
                ConvGrads {
                    dx: None,
                    dw: Some(dw),
                    db,
                }
            } else {
                backward_with(
                    &geometry,
                    &algorithms,
                    n,
                    o,
                    x,
                    wv.as_slice().expect("standard layout"),
                    [needs[0], needs[1], need_bias],
                    extent,
                    gradient,
                )
            };
            let shape =
                |s: &[usize], v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(s), v).expect("gradient size");
            let mut out = vec![
                grads.dx.map(|v| shape(&input_shape, v)),
                grads.dw.map(|v| shape(&weight_shape, v)),
            ];
            if needs.len() == 3 {
                out.push(grads.db.map(|v| shape(&[o], v)));
            }
            out
        })
    }
}

impl Tensor {
    /// Inference only: `conv2d(x, weight) + bias`, then `+ skip` if given, then ReLU
    /// if `relu`, in one pass over each image's products while they are in cache.
    /// Records nothing, so `self` must be on no tape. What a residual block with its
    /// batch norms folded into the convolutions' weights and biases computes.
    /// Winograd's transformed kernels of `weight` are taken from `kernels` (and kept
    /// there) if given, as [`KernelCache`] explains.
    ///
    /// # Shapes
    /// `self` `[N, C, H, W]`, `weight` `[O, C, kh, kw]`, `bias` `[O]`, `skip` the
    /// output's shape → `[N, O, OH, OW]`.
    pub(crate) fn conv2d_inference(
        &self,
        weight: &Tensor,
        bias: &[f32],
        opts: &Conv2dOptions,
        skip: Option<&Tensor>,
        relu: bool,
        kernels: Option<&mut KernelCache>,
    ) -> Tensor {
        assert!(
            self.tape().is_none(),
            "conv2d_inference: records no backward pass, so its input must be on no tape"
        );
        let (geometry, n, o, algorithms) = conv2d_geometry("conv2d", self, weight, None, opts);
        let p = geometry.p();
        let out_shape = [n, o, geometry.oh, geometry.ow];
        assert_eq!(
            bias.len(),
            o,
            "conv2d_inference: {} biases for {o} channels",
            bias.len()
        );
        let skip = skip.map(|s| {
            assert_eq!(
                s.shape(),
                &out_shape,
                "conv2d_inference: the added tensor has shape {:?}, the output {out_shape:?}",
                s.shape()
            );
            s.value().as_standard_layout()
        });
        let skip = skip.as_ref().map(|s| s.as_slice().expect("standard layout"));
        let x = self.value().as_standard_layout();
        let w_value = weight.shared_value();
        let wv = w_value.as_standard_layout();
        let (x, wv) = (
            x.as_slice().expect("standard layout"),
            wv.as_slice().expect("standard layout"),
        );
        let u = forward_kernels(kernels, algorithms.forward, &geometry, o, n, &w_value, wv);
        let epilogue = OutputEpilogue { bias, skip, relu };
        let out = forward_with(
            &geometry,
            algorithms.forward,
            n,
            o,
            x,
            wv,
            u.as_deref().map(Vec::as_slice),
            o * p,
            &mut [],
            (Some(&epilogue), (geometry.oh, geometry.ow)),
            |image, planes, out, _| {
                for oc in 0..o {
                    epilogue.write_plane(planes.plane(oc), oc, image, out);
                }
            },
        );
        Tensor::new(ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("output size"))
    }
}

/// `len` zeros, written over the pool's threads. For the pooling's winners of a
/// batch (R1's first conv: 2.8 MB), which the forward then overwrites: `vec![0;
/// len]` cleared them with a `memset` on the calling thread while the pool waited
/// (1.6% of an R1 epoch's samples, perf).
fn zeros_on_pool(len: usize) -> Vec<u32> {
    /// Elements per task: a few microseconds of writing, about what handing a task
    /// to the pool costs.
    const PIECE: usize = 1 << 15;
    if len <= PIECE {
        return vec![0; len];
    }
    let mut zeros: Vec<u32> = Vec::with_capacity(len);
    let slots = SharedMut::new(zeros.spare_capacity_mut().as_mut_ptr());
    for_each_index(len.div_ceil(PIECE), Some(1), &|i| {
        let start = i * PIECE;
        // SAFETY: piece `i` is elements `start..start + n` of the capacity (at least
        // `len`); `for_each_index` runs each `i` once, so no two pieces overlap.
        let piece = unsafe { slots.slice(start, PIECE.min(len - start)) };
        piece.fill(MaybeUninit::new(0));
    });
    // SAFETY: `for_each_index` returned, so every piece of the first `len`
    // elements was written (a panic skips this line).
    unsafe { zeros.set_len(len) };
    zeros
}

vectorized!(
    /// ReLU's backward into `dx`: `g` where the output `y` is positive, else 0 (`g · 1`
    /// or `g · 0`, as `relu` computes it). With AVX2 when the CPU has it: R2's first
    /// conv block writes 2.8 MB of gradient planes a step through it (the SSE2 loop
    /// was 1.3% of an R2 epoch's samples, perf).
    fn relu_backward(g: &[f32], y: &[f32], dx: &mut [f32]) => relu_backward_loop, [avx2]
);

#[inline(always)]
fn relu_backward_loop(g: &[f32], y: &[f32], dx: &mut [f32]) {
    for ((dx, &g), &y) in dx.iter_mut().zip(g).zip(y) {
        *dx = g * keep_if(y > 0.0, 1.0);
    }
}

vectorized!(
    /// `values += b`, with AVX2 when the CPU has it: before a pooling, over the whole
    /// conv plane (2.8% of an R1 epoch's samples in its SSE2 form, perf).
    fn add_in_place(values: &mut [f32], b: f32) => add_in_place_loop, [avx2]
);

#[inline(always)]
fn add_in_place_loop(values: &mut [f32], b: f32) {
    values.iter_mut().for_each(|v| *v += b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_like;
    use crate::ops::conv::ConvAlgorithm;

    #[test]
    fn zeros_on_pool_are_zeros_of_every_length() {
        for len in [
            0,
            1,
            (1 << 15) - 1,
            1 << 15,
            (1 << 15) + 1,
            5 << 15,
            (5 << 15) + 3,
        ] {
            let zeros = zeros_on_pool(len);
            assert_eq!(zeros.len(), len);
            assert!(zeros.iter().all(|&z| z == 0), "{len}");
        }
    }

    /// Winograd writing the epilogue into the output as it writes each row
    /// (`OutputEpilogue::write_row`) against the plain conv, then the addition
    /// and ReLU, bit for bit.
    #[test]
    fn winograd_writes_the_inference_epilogue_as_the_separate_ops_bit_for_bit() {
        // Enough images for several groups and tasks: each group's shortcut must
        // be its own images'.
        let (input, o) = ([37, 6, 14, 14], 5);
        let x = Tensor::new(random_like(&input, 7));
        let w = Tensor::new(random_like(&[o, input[1], 3, 3], 8));
        let b = random_like(&[o], 9);
        let opts = Conv2dOptions {
            padding: Padding::Same,
            algorithm: ConvAlgorithm::Winograd,
            ..Conv2dOptions::default()
        };
        let conv = x.conv2d(&w, Some(&Tensor::new(b.clone())), &opts).into_value();
        let skip = Tensor::new(random_like(conv.shape(), 10));
        let b = b.as_slice().expect("standard layout");
        for (add, relu) in [(false, false), (false, true), (true, false), (true, true)] {
            let got = x.conv2d_inference(&w, b, &opts, add.then_some(&skip), relu, None);
            let want = ndarray::Zip::from(&conv).and(skip.value()).map_collect(|&v, &s| {
                let y = if add { v + s } else { v };
                if relu {
                    relu_of(y)
                } else {
                    y
                }
            });
            assert_eq!(got.into_value(), want, "add {add} relu {relu}");
        }
    }

    /// `conv2d_inference` against the direct loops with the bias, then the added
    /// tensor and ReLU applied one after another, by every algorithm, with and
    /// without the addition and ReLU: on R3's 7×7 and 28×28 planes (Winograd's rows
    /// then sit among spare slots and outputs past the planes' edges), an odd plane
    /// with uneven padding, and one without padding.
    #[test]
    fn inference_epilogue_matches_direct_conv_then_add_and_relu() {
        let cases = [
            ([3, 8, 7, 7], 16, Padding::Explicit(1, 1)),
            ([4, 8, 28, 28], 8, Padding::Same),
            ([5, 9, 11, 13], 10, Padding::Explicit(1, 2)),
            ([2, 8, 6, 5], 8, Padding::Valid),
        ];
        for (case, (input, o, padding)) in cases.into_iter().enumerate() {
            let seed = 100 * case as u64;
            let x = Tensor::new(random_like(&input, seed));
            let w = Tensor::new(random_like(&[o, input[1], 3, 3], seed + 1));
            let b = random_like(&[o], seed + 2);
            let opts = |algorithm| Conv2dOptions {
                padding,
                algorithm,
                ..Conv2dOptions::default()
            };
            let direct = x
                .conv2d(&w, Some(&Tensor::new(b.clone())), &opts(ConvAlgorithm::Direct))
                .into_value();
            let skip = Tensor::new(random_like(direct.shape(), seed + 3));
            let b = b.as_slice().expect("standard layout");
            for algorithm in [
                ConvAlgorithm::Auto,
                ConvAlgorithm::Im2col,
                ConvAlgorithm::Winograd,
            ] {
                for (add, relu) in [(false, false), (false, true), (true, false), (true, true)] {
                    let got = x
                        .conv2d_inference(&w, b, &opts(algorithm), add.then_some(&skip), relu, None)
                        .into_value();
                    let want = ndarray::Zip::from(&direct)
                        .and(skip.value())
                        .map_collect(|&v, &s| {
                            let y = if add { v + s } else { v };
                            if relu {
                                relu_of(y)
                            } else {
                                y
                            }
                        });
                    assert_eq!(got.shape(), want.shape());
                    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    let worst = got
                        .iter()
                        .zip(&want)
                        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        worst <= 1e-4 * scale,
                        "{algorithm:?} input {input:?} add {add} relu {relu}: off by {worst}"
                    );
                }
            }
        }
    }
}
