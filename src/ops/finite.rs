//! Finiteness scans: is every value a number (not NaN, not ±∞)? The numerical checks
//! of a training step run these over its inputs, gradients and weights on every
//! step, so they must run at memory speed.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::ArrayD;

use super::elementwise::sum_map;
use super::parallel::for_each_index;

/// Values per chunk when a scan is split over rayon's threads: a large weight
/// (R1's first dense layer has 1.2M) is scanned by every core.
const CHUNK: usize = 1 << 16;

/// Whether every value is finite, in branch-free passes the compiler vectorizes:
/// `v · 0` is ±0 for a finite `v` and NaN otherwise, so a sum of it is zero exactly
/// when every value is finite. (An early-exit `iter().all(is_finite)` does not
/// vectorize.)
pub fn all_finite(values: &[f32]) -> bool {
    let chunk_finite = |chunk: &[f32]| sum_map(chunk, |v| v * 0.0) == 0.0;
    if values.len() <= CHUNK {
        chunk_finite(values)
    } else {
        // Over `for_each_index` (rayon's plumbing compiled once for the library);
        // a chunk that finds a non-finite value says so, and the rest still run.
        let finite = AtomicBool::new(true);
        for_each_index(values.len().div_ceil(CHUNK), Some(1), &|i| {
            let end = values.len().min((i + 1) * CHUNK);
            if !chunk_finite(&values[i * CHUNK..end]) {
                finite.store(false, Ordering::Relaxed);
            }
        });
        finite.into_inner()
    }
}

/// [`all_finite`] over an array in any layout.
pub fn array_all_finite(values: &ArrayD<f32>) -> bool {
    match values.as_slice_memory_order() {
        Some(slice) => all_finite(slice),
        None => values.iter().all(|v| v.is_finite()),
    }
}

/// The first value (in logical order) that is NaN or infinite, with its flat index.
/// Slow on purpose (it stops at the first): call it once a scan has failed.
pub fn first_non_finite(values: &ArrayD<f32>) -> Option<(usize, f32)> {
    values.iter().copied().enumerate().find(|(_, v)| !v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kind_of_non_finite_value_in_every_position() {
        for len in [0, 1, 7, 8, 9, 16, 33] {
            let clean: Vec<f32> = (0..len).map(|i| i as f32 - 3.5).collect();
            assert!(all_finite(&clean), "len {len}");
            for at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    assert!(!all_finite(&v), "len {len}, {bad} at {at}");
                    let array = ArrayD::from_shape_vec(vec![len], v).unwrap();
                    assert!(!array_all_finite(&array));
                    assert_eq!(first_non_finite(&array).map(|(i, _)| i), Some(at));
                }
            }
        }
        // The largest finite values do not overflow the sums: v · 0 is 0.
        assert!(all_finite(&[f32::MAX; 20]));
        assert!(all_finite(&[f32::MIN; 20]));
        // Long enough to be split over threads; the bad value in the last chunk.
        let mut long = vec![1.0f32; 3 * CHUNK + 5];
        assert!(all_finite(&long));
        long[3 * CHUNK + 1] = f32::INFINITY;
        assert!(!all_finite(&long));
    }

    #[test]
    fn arrays_in_any_layout_are_scanned() {
        let mut a = ArrayD::from_shape_vec(vec![3, 4], (0..12).map(|i| i as f32).collect()).unwrap();
        a[[2, 1]] = f32::NAN;
        // Transposed (contiguous in memory, not in logical order), and every other
        // row kept in place (not contiguous at all).
        let transposed = a.t().to_owned();
        let rows_0_and_2 = a.clone().slice_move(ndarray::s![..;2, ..]).into_dyn();
        assert!(rows_0_and_2.as_slice_memory_order().is_none());
        assert!(!array_all_finite(&transposed));
        assert!(!array_all_finite(&rows_0_and_2));
        assert_eq!(first_non_finite(&transposed).map(|(i, _)| i), Some(3 + 2));
        assert_eq!(first_non_finite(&rows_0_and_2).map(|(i, _)| i), Some(4 + 1));
        let rows_0_and_1 = a.slice_move(ndarray::s![..2, ..]).into_dyn();
        assert!(array_all_finite(&rows_0_and_1));
    }
}
