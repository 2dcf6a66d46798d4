//! Every kernel the CPU has against a naive product, over shapes around the tile
//! and block sizes, every layout and stride sign, and α/β (β = 0 over NaN); and
//! the thread count leaving the result unchanged, bit for bit.

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::{gemm, gemm_serial, product, Isa};

/// The kernel families this CPU runs.
fn isas() -> Vec<Isa> {
    let mut isas = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if super::super::super::cpu::has_avx2_fma() {
            isas.push(Isa::Avx2);
        }
        if super::super::super::cpu::has_avx512() {
            isas.push(Isa::Avx512);
        }
    }
    isas
}

/// Values in [-1, 1) from a seed, without a random-number crate.
fn values(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array2::from_shape_simple_fn((rows, cols), || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// `α·A·B + β·C` in f64; `c` unread when β = 0.
fn naive(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, c: &Array2<f32>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
        let sum: f64 = (0..a.ncols()).map(|p| a[[i, p]] as f64 * b[[p, j]] as f64).sum();
        let old = if beta == 0.0 {
            0.0
        } else {
            beta as f64 * c[[i, j]] as f64
        };
        alpha as f64 * sum + old
    })
}

/// A copy of `x` in column-major order when `column_major`.
fn laid_out(x: &Array2<f32>, column_major: bool) -> Array2<f32> {
    let mut y = if column_major {
        Array2::zeros(x.raw_dim().f())
    } else {
        Array2::zeros(x.raw_dim())
    };
    y.assign(x);
    y
}

/// Runs `isa` on the views and checks against [`naive`], within a bound that
/// grows with `k` (f32 sums of `k` products of values below 1).
fn check(
    isa: Isa,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    what: &str,
) {
    let old = c.to_owned();
    let want = naive(alpha, &a, &b, beta, &old);
    if c.nrows() > 0 && c.ncols() > 0 {
        product(isa, alpha, &a, &b, beta, &mut c);
    }
    let bound = 1e-5 * (a.ncols() as f64 + 4.0) * (1.0 + alpha.abs() as f64 + beta.abs() as f64);
    for ((i, j), &got) in c.indexed_iter() {
        let err = (got as f64 - want[[i, j]]).abs();
        assert!(
            err <= bound,
            "{isa:?} {what}: C[{i}, {j}] = {got}, want {}",
            want[[i, j]]
        );
    }
}

/// Sizes below, at and past the tiles (8 and 6 rows, 4 columns of dot products,
/// vectors of 8 and 16, strips of 32, 64 and 128) and `k` past a vector.
#[test]
fn every_kernel_layout_and_size_gives_the_product() {
    let sizes = [1, 2, 3, 7, 8, 9, 16, 17, 33, 70, 130];
    let depths = [0, 1, 5, 16, 17, 40];
    let scalings = [(1.0, 0.0), (1.0, 1.0), (-0.5, 2.0)];
    for isa in isas() {
        for (si, &m) in sizes.iter().enumerate() {
            for &n in &sizes[si % 3..] {
                for &k in &depths {
                    let seed = (m * 10_000 + n * 100 + k) as u64;
                    let (a, b, c) = (values(m, k, seed), values(k, n, seed + 1), values(m, n, seed + 2));
                    for layout in 0..8 {
                        let a = laid_out(&a, layout & 1 != 0);
                        let b = laid_out(&b, layout & 2 != 0);
                        for &(alpha, beta) in &scalings {
                            let mut c = laid_out(&c, layout & 4 != 0);
                            if beta == 0.0 {
                                c.fill(f32::NAN);
                            }
                            let what = format!("{m}×{k}×{n} layout {layout:03b} α {alpha} β {beta}");
                            check(isa, alpha, a.view(), b.view(), beta, c.view_mut(), &what);
                        }
                    }
                }
            }
        }
    }
}

/// Dot products longer than one block of `k` (see `dot_blocks`), with β = 1 added
/// once, long broadcast products, short and tall (`B` copied by strips, see
/// `STRIPS_MIN_DEPTH`), and a wide one.
#[test]
fn long_products_give_the_product() {
    let k = super::DOT_BLOCK_MAX + 77;
    let (a, b) = (values(9, k, 1), values(k, 6, 2));
    let b_columns = laid_out(&b, true);
    for isa in isas() {
        for beta in [0.0, 1.0] {
            let mut c = values(9, 6, 3);
            check(
                isa,
                1.0,
                a.view(),
                b_columns.view(),
                beta,
                c.view_mut(),
                "dot, long k",
            );
            check(
                isa,
                1.0,
                a.view(),
                b.view(),
                beta,
                c.view_mut(),
                "broadcast, long k",
            );
        }
    }
}

/// Backward strides, strided (non-unit) views, and a `B` with no unit stride,
/// which is copied first (`pack.rs`).
#[test]
fn strided_and_backward_views_give_the_product() {
    let (a, b, c) = (values(13, 21, 4), values(21, 37, 5), values(13, 37, 6));
    let (a_wide, b_wide, c_wide) = (values(26, 42, 7), values(42, 74, 8), values(26, 74, 9));
    for isa in isas() {
        for beta in [0.0, 1.0] {
            let mut c1 = c.clone();
            let mut c1 = c1.slice_mut(s![..;-1, ..]);
            check(
                isa,
                1.0,
                a.slice(s![..;-1, ..;-1]),
                b.slice(s![..;-1, ..]),
                beta,
                c1.view_mut(),
                "backward",
            );
            let mut c2 = c.clone();
            let mut c2 = c2.slice_mut(s![.., ..;-1]);
            check(
                isa,
                2.0,
                a.t().t(),
                b.slice(s![.., ..;-1]),
                beta,
                c2.view_mut(),
                "backward columns",
            );
            let mut c3 = c_wide.clone();
            let (a_s, b_s) = (a_wide.slice(s![..;2, ..;2]), b_wide.slice(s![..;2, ..;2]));
            check(
                isa,
                1.0,
                a_s,
                b_s,
                beta,
                c3.slice_mut(s![..;2, ..;2]),
                "every other element",
            );
            let mut c4 = c.clone();
            check(
                isa,
                1.0,
                a.view(),
                b_s,
                beta,
                c4.view_mut(),
                "B with no unit stride",
            );
            let b_t = laid_out(&b, true);
            let mut c5 = c.clone();
            let (a_rev, b_rev) = (a.slice(s![.., ..;-1]), b_t.slice(s![..;-1, ..]));
            check(isa, 1.0, a_rev, b_rev, beta, c5.view_mut(), "dot, k backward");
        }
    }
}

/// Row- and column-major outputs, transposed operands and backward strides all
/// give the product through the public entry point.
#[test]
fn every_layout_and_stride_sign_gives_the_product() {
    let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.25 - 3.0);
    let b = Array2::from_shape_fn((5, 9), |(i, j)| (i as f32 - j as f32) * 0.5);
    let want = naive(1.0, &a.view(), &b.view(), 0.0, &Array2::zeros((7, 9))).mapv(|v| v as f32);
    let a_f = Array2::from_shape_vec((7, 5).f(), a.t().iter().copied().collect()).unwrap();
    let b_rev = b.slice(s![..;-1, ..;-1]).to_owned();
    for c_column_major in [false, true] {
        for case in 0..3 {
            let mut c = match c_column_major {
                true => Array2::<f32>::zeros((7, 9).f()),
                false => Array2::<f32>::zeros((7, 9)),
            };
            match case {
                0 => gemm_serial(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut()),
                1 => gemm_serial(1.0, &a_f.view(), &b.view(), 0.0, &mut c.view_mut()),
                // Both operands stepping backwards: b reversed twice is b.
                _ => gemm_serial(
                    1.0,
                    &a.view(),
                    &b_rev.slice(s![..;-1, ..;-1]),
                    0.0,
                    &mut c.view_mut(),
                ),
            }
            let err = (&c - &want).iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                err < 1e-4,
                "case {case}, column-major C {c_column_major}: off by {err}"
            );
        }
    }
    // A backward output view.
    let mut c = Array2::<f32>::zeros((7, 9));
    gemm_serial(2.0, &a.view(), &b.view(), 0.0, &mut c.slice_mut(s![..;-1, ..;-1]));
    let err = (&c.slice(s![..;-1, ..;-1]) - &(2.0 * &want))
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(err < 1e-4, "backward C: off by {err}");
}

/// `gemm` on 1 to 4 threads gives the same bits: the splits cut `m` or `n`, and
/// each element's order of additions depends on `k` and the strides alone. Shapes
/// big enough to split, for both ways of reading (a weight gradient's dot products
/// with `k` past one block, a data gradient's broadcast).
#[test]
fn the_thread_count_leaves_the_product_unchanged() {
    let cases = [
        (100, 300, 130, false),
        (70, 2100, 40, true),
        (16, 500, 700, false),
        (3, 3000, 200, false),
    ];
    for (m, k, n, dot) in cases {
        let a = values(m, k, 10);
        let b = laid_out(&values(k, n, 11), dot);
        let c0 = values(m, n, 12);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = c0.clone();
            pool.install(|| gemm(1.0, a.view(), b.view(), 1.0, c.view_mut()));
            c
        };
        let one = run(1);
        check(
            Isa::detect(),
            1.0,
            a.view(),
            b.view(),
            1.0,
            c0.clone().view_mut(),
            "threads",
        );
        for threads in 2..=4 {
            let many = run(threads);
            let same = one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{m}×{k}×{n}: {threads} threads differ from 1");
        }
    }
}
