//! Eight floats as one number ([`Lanes`]), so that Winograd's transforms, written
//! once for a float ([`bt_times`](super::transforms::bt_times),
//! [`at_times`](super::transforms::at_times)), run on eight channels at once in the
//! channel form ([`channels`](super::channels)). Each operation is a loop over the
//! eight floats (a plain loop: `array::from_fn` was left as a call per operation),
//! one vector instruction when compiled for AVX2, and the same
//! operation in the same order as on one float: each lane gets the bits a float
//! would.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// Floats in a [`Lanes`]: one AVX2 vector (also the block that `transforms.rs`'s
/// `map_to_6` ends a row with).
pub(super) const LANES: usize = 8;

/// Eight channels' values at one place of a tile; or `L` neighbouring columns of
/// a row, which `transforms.rs`'s `map_to_6` also takes four at a time (an SSE
/// vector) for rows shorter than eight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Lanes<const L: usize = LANES>(pub [f32; L]);

impl<const L: usize> Lanes<L> {
    /// The first `L` floats of `s`.
    #[inline(always)]
    pub fn load(s: &[f32]) -> Lanes<L> {
        Lanes(s[..L].try_into().expect("L floats"))
    }

    /// Writes the `L` floats to the start of `s`.
    #[inline(always)]
    pub fn store(self, s: &mut [f32]) {
        s[..L].copy_from_slice(&self.0);
    }
}

/// What the transforms compute with: floats or [`Lanes`]. (Multiplication by a
/// constant is `f32: Mul<T>`, required where used, so that the transforms keep the
/// constant first, as written for floats.)
pub(super) trait Number: Copy + Add<Output = Self> + Sub<Output = Self> {}

impl Number for f32 {}

impl<const L: usize> Number for Lanes<L> {}

impl<const L: usize> Add for Lanes<L> {
    type Output = Lanes<L>;
    #[inline(always)]
    fn add(mut self, other: Lanes<L>) -> Lanes<L> {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
        self
    }
}

impl<const L: usize> Sub for Lanes<L> {
    type Output = Lanes<L>;
    #[inline(always)]
    fn sub(mut self, other: Lanes<L>) -> Lanes<L> {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a -= b;
        }
        self
    }
}

impl<const L: usize> Mul<Lanes<L>> for f32 {
    type Output = Lanes<L>;
    #[inline(always)]
    fn mul(self, mut v: Lanes<L>) -> Lanes<L> {
        for a in &mut v.0 {
            *a *= self;
        }
        v
    }
}

impl<const L: usize> Div<f32> for Lanes<L> {
    type Output = Lanes<L>;
    #[inline(always)]
    fn div(mut self, d: f32) -> Lanes<L> {
        for a in &mut self.0 {
            *a /= d;
        }
        self
    }
}

impl<const L: usize> Neg for Lanes<L> {
    type Output = Lanes<L>;
    #[inline(always)]
    fn neg(mut self) -> Lanes<L> {
        for a in &mut self.0 {
            *a = -*a;
        }
        self
    }
}
