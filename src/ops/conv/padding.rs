//! Padding of the two spatial axes for convolutions and pools, and the output size
//! it implies.
//!
//! Every windowed op (conv2d, the pools) resolves its [`Padding`] once into concrete
//! amounts per side ([`ResolvedPadding`]) and then only works with those, so the
//! `Same` rule lives in one place. `Same` follows TensorFlow: the output is
//! `ceil(in / stride)` and an odd total padding puts the extra row/column at the
//! bottom/right (PyTorch's `padding="same"` only exists for stride 1 and agrees there).

use serde::{Deserialize, Serialize};

/// How the input of a windowed op is padded (with zeros for convolutions and average
/// pooling, with −∞ for max pooling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    /// No padding: the window only visits positions where it fits entirely.
    #[default]
    Valid,
    /// TensorFlow's `SAME`: output size `ceil(in / stride)`, the needed padding split
    /// evenly, the odd one out going to the bottom/right.
    Same,
    /// `(rows, columns)` added on both sides of each axis, as PyTorch's `padding=(ph, pw)`.
    Explicit(usize, usize),
}

impl From<(usize, usize)> for Padding {
    fn from((rows, cols): (usize, usize)) -> Self {
        Padding::Explicit(rows, cols)
    }
}

/// Padding resolved for a given input, kernel, stride and dilation: the amount on
/// each side and the output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedPadding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Padding {
    /// Resolves the padding for an input of `input` = `(H, W)`, a kernel `(kh, kw)`,
    /// `stride` and `dilation`. `None` if the (dilated) kernel does not fit in the
    /// padded input, a stride or kernel size is zero, or a size overflows.
    ///
    /// ```
    /// use ferrocnn::Padding;
    /// // 5 wide, kernel 2, stride 2: out = ceil(5/2) = 3, total pad 1, all of it right.
    /// let r = Padding::Same.resolve((5, 5), (2, 2), (2, 2), (1, 1)).unwrap();
    /// assert_eq!((r.left, r.right, r.out_w), (0, 1, 3));
    /// ```
    pub fn resolve(
        &self,
        input: (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
    ) -> Option<ResolvedPadding> {
        let (top, bottom, out_h) =
            self.resolve_axis(input.0, kernel.0, stride.0, dilation.0, |p| match p {
                Padding::Explicit(rows, _) => rows,
                _ => 0,
            })?;
        let (left, right, out_w) =
            self.resolve_axis(input.1, kernel.1, stride.1, dilation.1, |p| match p {
                Padding::Explicit(_, cols) => cols,
                _ => 0,
            })?;
        Some(ResolvedPadding {
            top,
            bottom,
            left,
            right,
            out_h,
            out_w,
        })
    }

    /// `(before, after, out)` along one axis.
    fn resolve_axis(
        &self,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        explicit: impl Fn(Padding) -> usize,
    ) -> Option<(usize, usize, usize)> {
        if kernel == 0 || stride == 0 || dilation == 0 {
            return None;
        }
        // Checked: the settings may come from a file, and a size that wraps around
        // would pass for a small one.
        let span = (kernel - 1).checked_mul(dilation)?.checked_add(1)?;
        let (before, after) = match self {
            Padding::Valid | Padding::Explicit(..) => {
                let p = explicit(*self);
                (p, p)
            }
            Padding::Same => {
                let out = input.div_ceil(stride);
                let total = ((out.max(1) - 1).checked_mul(stride)?.checked_add(span)?).saturating_sub(input);
                (total / 2, total - total / 2)
            }
        };
        let padded = input.checked_add(before)?.checked_add(after)?;
        (padded >= span && input > 0).then(|| (before, after, (padded - span) / stride + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        p: Padding,
        i: (usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        d: (usize, usize),
    ) -> [usize; 6] {
        let r = p.resolve(i, k, s, d).expect("fits");
        [r.top, r.bottom, r.left, r.right, r.out_h, r.out_w]
    }

    #[test]
    fn valid_has_no_padding() {
        assert_eq!(
            r(Padding::Valid, (28, 28), (3, 3), (1, 1), (1, 1)),
            [0, 0, 0, 0, 26, 26]
        );
        assert_eq!(
            r(Padding::Valid, (7, 8), (3, 2), (2, 3), (1, 1)),
            [0, 0, 0, 0, 3, 3]
        );
        assert_eq!(
            r(Padding::Valid, (7, 7), (3, 3), (1, 1), (2, 2)),
            [0, 0, 0, 0, 3, 3]
        );
    }

    #[test]
    fn same_follows_tensorflow() {
        // Stride 1, odd kernel: symmetric.
        assert_eq!(
            r(Padding::Same, (5, 5), (3, 3), (1, 1), (1, 1)),
            [1, 1, 1, 1, 5, 5]
        );
        // Even kernel: total 1, the extra goes bottom/right.
        assert_eq!(
            r(Padding::Same, (2, 2), (2, 2), (1, 1), (1, 1)),
            [0, 1, 0, 1, 2, 2]
        );
        // Stride 2 on 5: out 3, total (3-1)*2+3-5 = 2.
        assert_eq!(
            r(Padding::Same, (5, 5), (3, 3), (2, 2), (1, 1)),
            [1, 1, 1, 1, 3, 3]
        );
        // Stride 2 on 6: out 3, total (3-1)*2+3-6 = 1 → (0, 1).
        assert_eq!(
            r(Padding::Same, (6, 6), (3, 3), (2, 2), (1, 1)),
            [0, 1, 0, 1, 3, 3]
        );
        // Stride larger than needed: no padding.
        assert_eq!(
            r(Padding::Same, (6, 6), (1, 1), (3, 3), (1, 1)),
            [0, 0, 0, 0, 2, 2]
        );
        // Dilation 2, kernel 3 → span 5: total 4.
        assert_eq!(
            r(Padding::Same, (7, 7), (3, 3), (1, 1), (2, 2)),
            [2, 2, 2, 2, 7, 7]
        );
        // Non-square kernel, different per axis.
        assert_eq!(
            r(Padding::Same, (4, 4), (2, 3), (1, 1), (1, 1)),
            [0, 1, 1, 1, 4, 4]
        );
    }

    #[test]
    fn explicit_pads_both_sides() {
        assert_eq!(
            r((1, 2).into(), (5, 5), (3, 3), (1, 1), (1, 1)),
            [1, 1, 2, 2, 5, 7]
        );
        assert_eq!(
            r(Padding::Explicit(1, 1), (5, 5), (3, 3), (2, 2), (1, 1)),
            [1, 1, 1, 1, 3, 3]
        );
    }

    #[test]
    fn kernel_larger_than_input_does_not_resolve() {
        assert!(Padding::Valid.resolve((2, 2), (3, 3), (1, 1), (1, 1)).is_none());
        assert!(Padding::Valid.resolve((5, 5), (3, 3), (1, 1), (3, 3)).is_none());
        assert!(Padding::Valid.resolve((5, 5), (3, 3), (0, 1), (1, 1)).is_none());
        assert!(Padding::Same.resolve((2, 2), (3, 3), (1, 1), (1, 1)).is_some());
    }

    #[test]
    fn sizes_that_overflow_do_not_resolve() {
        // Settings read from a file: a size that wrapped around would pass for a small one.
        let huge = usize::MAX / 2 + 1;
        assert!(Padding::Explicit(huge, 0)
            .resolve((5, 5), (3, 3), (1, 1), (1, 1))
            .is_none());
        assert!(Padding::Valid
            .resolve((5, 5), (3, 3), (1, 1), (huge, 1))
            .is_none());
        // A huge stride is no overflow: one output row.
        assert_eq!(
            Padding::Same
                .resolve((5, 5), (3, 3), (huge, 1), (1, 1))
                .map(|r| r.out_h),
            Some(1)
        );
        assert!(Padding::Same.resolve((5, 5), (3, 3), (1, 1), (huge, 1)).is_none());
    }

    #[test]
    fn serde_round_trip() {
        let config = bincode::config::standard();
        for p in [Padding::Valid, Padding::Same, Padding::Explicit(2, 3)] {
            let bytes = bincode::serde::encode_to_vec(p, config).unwrap();
            let (back, _): (Padding, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(back, p);
        }
    }
}
