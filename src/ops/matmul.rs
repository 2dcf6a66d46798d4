//! Matrix products: `matmul` and the fused `linear` (`x·Wᵀ + b`, PyTorch's layout
//! with weights `[out, in]`). Transposes are strided views, never copies.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewMut2, Axis, Ix1, Ix2};

use super::gemm::gemm;
use crate::tensor::Tensor;

fn view2<'a>(op: &str, what: &str, a: &'a ArrayD<f32>) -> ArrayView2<'a, f32> {
    a.view()
        .into_dimensionality::<Ix2>()
        .unwrap_or_else(|_| panic!("{op}: {what} must be 2-d, got shape {:?}", a.shape()))
}

/// `a·b` into a new array, which the product writes without a zeroing pass first:
/// for R2's 9216-wide dense-layer gradients (64 × 9216 and 128 × 9216) that pass
/// was 7 MB of `memset` a step, about 1% of it.
fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut c = Array2::<f32>::uninit((m, n));
    // SAFETY: the view covers exactly `c`'s m × n elements in its (row-major)
    // layout, and `MaybeUninit<f32>` has the layout of `f32`. With β = 0, `gemm`
    // writes every element of C and reads none (its contract), so every element is
    // initialised when it returns; if it panics, `c` is dropped uninitialised.
    unsafe {
        gemm(
            1.0,
            a,
            b,
            0.0,
            ArrayViewMut2::from_shape_ptr((m, n), c.as_mut_ptr().cast::<f32>()),
        );
        c.assume_init()
    }
}

impl Tensor {
    /// Matrix product of `[m, k]` and `[k, n]` → `[m, n]`.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (a, b) = (
            view2("matmul", "left", self.value()),
            view2("matmul", "right", other.value()),
        );
        assert_eq!(
            a.ncols(),
            b.nrows(),
            "matmul: shapes {:?} and {:?} do not chain",
            a.shape(),
            b.shape()
        );
        let value = product(a, b).into_dyn();
        let (a, b) = (self.shared_value(), other.shared_value());
        Tensor::record("matmul", &[self, other], value, move |g, needs| {
            let g = view2("matmul", "gradient", g);
            let (a, b) = (view2("matmul", "left", &a), view2("matmul", "right", &b));
            vec![
                needs[0].then(|| product(g, b.t()).into_dyn()),
                needs[1].then(|| product(a.t(), g).into_dyn()),
            ]
        })
    }

    /// A dense layer's product: `x·Wᵀ + b` for `x` `[N, in]`, `weight` `[out, in]`,
    /// `bias` `[out]` → `[N, out]`.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let x = view2("linear", "input", self.value());
        let w = view2("linear", "weight", weight.value());
        assert_eq!(
            x.ncols(),
            w.ncols(),
            "linear: input {:?} does not match weight {:?} (expects [N, in] and [out, in])",
            x.shape(),
            w.shape()
        );
        let b = bias.map(|b| bias_vector(b.value(), w.nrows(), w.shape()));
        let y = affine_transposed_weight(x, w, b);
        let (x, w) = (self.shared_value(), weight.shared_value());
        let inputs: Vec<&Tensor> = std::iter::once(self)
            .chain(std::iter::once(weight))
            .chain(bias)
            .collect();
        Tensor::record("linear", &inputs, y.into_dyn(), move |g, needs| {
            let g = view2("linear", "gradient", g);
            let (x, w) = (view2("linear", "input", &x), view2("linear", "weight", &w));
            let mut grads = vec![
                needs[0].then(|| product(g, w).into_dyn()),
                needs[1].then(|| product(g.t(), x).into_dyn()),
            ];
            if needs.len() == 3 {
                grads.push(needs[2].then(|| g.sum_axis(Axis(0)).into_dyn()));
            }
            grads
        })
    }
}

impl Tensor {
    /// `x·Wᵀ + b` for inference, given `Wᵀ` (`[in, out]`) already laid out
    /// contiguously: what [`Linear`](crate::nn::Linear) uses when nothing is recorded.
    /// The same values as [`linear`](Tensor::linear) to rounding, faster at small
    /// batches: with `Wᵀ` contiguous the product runs [`gemm`]'s broadcast kernels,
    /// vectors along `out`, where the transposed view of `[out, in]` would run its
    /// dot products along `in`, whose 4 × 4 tiles a batch of one fills a quarter of.
    ///
    /// Records nothing: panics if `self` needs a gradient (use `linear` on a tape).
    pub(crate) fn linear_inference(&self, weight_t: &ArrayD<f32>, bias: Option<&ArrayD<f32>>) -> Tensor {
        assert!(
            !self.requires_grad(),
            "linear_inference: the input needs a gradient; use linear"
        );
        let x = view2("linear", "input", self.value());
        let wt = view2("linear", "transposed weight", weight_t);
        assert_eq!(
            x.ncols(),
            wt.nrows(),
            "linear: input {:?} does not match transposed weight {:?} (expects [N, in] and [in, out])",
            x.shape(),
            wt.shape()
        );
        let b = bias.map(|b| bias_vector(b, wt.ncols(), wt.shape()));
        Tensor::new(affine(x, wt, b).into_dyn())
    }
}

/// `bias` as a vector of `out` values; panics naming the shapes otherwise.
fn bias_vector<'a>(bias: &'a ArrayD<f32>, out: usize, weight: &[usize]) -> ndarray::ArrayView1<'a, f32> {
    bias.view()
        .into_dimensionality::<Ix1>()
        .ok()
        .filter(|b| b.len() == out)
        .unwrap_or_else(|| panic!("linear: bias {:?} does not match weight {weight:?}", bias.shape()))
}

/// `x·Wᵀ + b` for a weight `w` of `[out, in]` that changes between calls (training:
/// no transposed copy is kept, as `linear_inference`'s is).
///
/// Both operands are then read along their contiguous axis, `in`: [`gemm`]'s dot
/// products. (With the `gemm` crate, which copied its left operand first, this wrote
/// the product as `yᵀ = W·xᵀ` when `x` had fewer rows; our dot kernels are the same
/// either way round, bit for bit, so it is written directly.)
fn affine_transposed_weight(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    bias: Option<ndarray::ArrayView1<f32>>,
) -> Array2<f32> {
    affine(x, w.t(), bias)
}

/// `x·wt + b`: the bias written first, the product added onto it.
fn affine(x: ArrayView2<f32>, wt: ArrayView2<f32>, bias: Option<ndarray::ArrayView1<f32>>) -> Array2<f32> {
    let mut y = Array2::zeros((x.nrows(), wt.ncols()));
    if let Some(b) = bias {
        let dim = y.raw_dim();
        y.assign(&b.broadcast(dim).expect("bias length checked"));
    }
    gemm(1.0, x, wt, if bias.is_some() { 1.0 } else { 0.0 }, y.view_mut());
    y
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};

    use super::{affine, affine_transposed_weight, product};

    /// `product` writes into memory it never zeroed: every element must come from
    /// the product, whatever the operands' layouts (transposed views, an empty `k`,
    /// a size split over threads).
    #[test]
    fn product_writes_every_element() {
        for (m, k, n) in [(3, 5, 2), (4, 0, 6), (64, 128, 300), (128, 64, 130), (1, 9, 1)] {
            let a = Array2::from_shape_fn((k, m), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
            let b = Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j * 13) % 7) as f32 - 3.0);
            // Transposed views, and one contiguous operand.
            for (at, bt) in [(a.t(), b.t()), (a.t(), b.t().as_standard_layout().view())] {
                let got = product(at, bt);
                for ((i, j), &g) in got.indexed_iter() {
                    let want: f32 = (0..k).map(|p| at[[i, p]] * bt[[p, j]]).sum();
                    assert_eq!(g, want, "[{m}, {k}] x [{k}, {n}] at ({i}, {j})");
                }
            }
        }
    }

    /// Fewer rows than outputs takes `yᵀ = W·xᵀ`, which must give `x·Wᵀ + b`'s
    /// values bit for bit (R2's 9216 → 128 layer at batch 64, and a small case).
    #[test]
    fn linear_forward_written_transposed_gives_the_same_bits() {
        for (n, k, out) in [(3, 7, 9), (64, 9216, 128)] {
            let x = Array2::from_shape_fn((n, k), |(i, j)| ((i * 31 + j * 7) % 97) as f32 * 0.013 - 0.6);
            let w = Array2::from_shape_fn((out, k), |(i, j)| ((i * 13 + j * 5) % 89) as f32 * 0.0011 - 0.05);
            let b = Array1::from_shape_fn(out, |i| i as f32 * 0.1 - 0.3);
            for bias in [None, Some(b.view())] {
                let want = affine(x.view(), w.t(), bias);
                let got = affine_transposed_weight(x.view(), w.view(), bias);
                assert!(got.is_standard_layout());
                let same = want.iter().zip(&got).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "[{n}, {k}] x [{out}, {k}]ᵀ, bias {}", bias.is_some());
            }
        }
    }
}
