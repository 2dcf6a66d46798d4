//! Elementwise arithmetic with broadcasting: add, sub, mul, div, neg and the scalar
//! forms. Broadcasting follows NumPy/PyTorch rules (trailing axes aligned, size-1
//! axes stretched), so a bias of shape `[C, 1, 1]` adds to an `[N, C, H, W]` tensor.
//! The backward pass sums each gradient back down to its input's shape.

use std::ops::{Add, Div, Mul, Neg, Sub};

use ndarray::{ArrayD, Axis, IxDyn};

use super::elementwise::map2;
use crate::tensor::Tensor;

/// The broadcast shape of `a` and `b`; panics naming `op` if they do not broadcast.
fn broadcast_shape(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => panic!("{op}: shapes {a:?} and {b:?} do not broadcast"),
            }
        })
        .collect()
}

/// Sums `grad` (of the broadcast shape) down to `shape`: the adjoint of broadcasting.
pub(crate) fn sum_to_shape(grad: ArrayD<f32>, shape: &[usize]) -> ArrayD<f32> {
    if grad.shape() == shape {
        return grad;
    }
    let mut g = grad;
    while g.ndim() > shape.len() {
        g = g.sum_axis(Axis(0));
    }
    for (axis, &size) in shape.iter().enumerate() {
        if size == 1 && g.shape()[axis] != 1 {
            g = g.sum_axis(Axis(axis)).insert_axis(Axis(axis));
        }
    }
    g
}

/// Applies `f` elementwise over `a` and `b` broadcast together.
fn zip_broadcast(
    op: &str,
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> ArrayD<f32> {
    if a.shape() == b.shape() {
        return map2(a, b, f);
    }
    let shape = IxDyn(&broadcast_shape(op, a.shape(), b.shape()));
    let (av, bv) = (
        a.broadcast(shape.clone()).expect("checked by broadcast_shape"),
        b.broadcast(shape).expect("checked by broadcast_shape"),
    );
    ndarray::Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y))
}

impl Tensor {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Tensor {
        let value = zip_broadcast("add", self.value(), other.value(), |x, y| x + y);
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Tensor::record("add", &[self, other], value, move |g, needs| {
            vec![
                needs[0].then(|| sum_to_shape(g.clone(), &sa)),
                needs[1].then(|| sum_to_shape(g.clone(), &sb)),
            ]
        })
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Tensor {
        let value = zip_broadcast("sub", self.value(), other.value(), |x, y| x - y);
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Tensor::record("sub", &[self, other], value, move |g, needs| {
            vec![
                needs[0].then(|| sum_to_shape(g.clone(), &sa)),
                needs[1].then(|| sum_to_shape(-g, &sb)),
            ]
        })
    }

    /// `self * other` elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Tensor {
        let value = zip_broadcast("mul", self.value(), other.value(), |x, y| x * y);
        let (a, b) = (self.shared_value(), other.shared_value());
        Tensor::record("mul", &[self, other], value, move |g, needs| {
            vec![
                needs[0].then(|| sum_to_shape(zip_broadcast("mul", g, &b, |g, y| g * y), a.shape())),
                needs[1].then(|| sum_to_shape(zip_broadcast("mul", g, &a, |g, x| g * x), b.shape())),
            ]
        })
    }

    /// `self / other` elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Tensor {
        let value = zip_broadcast("div", self.value(), other.value(), |x, y| x / y);
        let (a, b) = (self.shared_value(), other.shared_value());
        Tensor::record("div", &[self, other], value, move |g, needs| {
            vec![
                needs[0].then(|| sum_to_shape(zip_broadcast("div", g, &b, |g, y| g / y), a.shape())),
                needs[1].then(|| {
                    // d(x/y)/dy = -x/y², formed as -(g·x)/y² over the broadcast shape.
                    let gx = zip_broadcast("div", g, &a, |g, x| g * x);
                    sum_to_shape(zip_broadcast("div", &gx, &b, |gx, y| -gx / (y * y)), b.shape())
                }),
            ]
        })
    }

    /// `-self`.
    pub fn neg(&self) -> Tensor {
        Tensor::record("neg", &[self], -self.value(), |g, _| vec![Some(-g)])
    }

    /// `self + c` for a scalar `c`.
    pub fn add_scalar(&self, c: f32) -> Tensor {
        Tensor::record("add_scalar", &[self], self.value() + c, |g, _| {
            vec![Some(g.clone())]
        })
    }

    /// `self * c` for a scalar `c`.
    pub fn mul_scalar(&self, c: f32) -> Tensor {
        Tensor::record("mul_scalar", &[self], self.value() * c, move |g, _| {
            vec![Some(g * c)]
        })
    }

    /// `self / c` for a scalar `c`.
    pub fn div_scalar(&self, c: f32) -> Tensor {
        self.mul_scalar(1.0 / c)
    }

    /// `self - c` for a scalar `c`.
    pub fn sub_scalar(&self, c: f32) -> Tensor {
        self.add_scalar(-c)
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
    };
}
binary_operator!(Add, add);
binary_operator!(Sub, sub);
binary_operator!(Mul, mul);
binary_operator!(Div, div);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn broadcast_shape_follows_numpy_rules() {
        assert_eq!(broadcast_shape("t", &[2, 3, 4, 5], &[3, 1, 1]), vec![2, 3, 4, 5]);
        assert_eq!(broadcast_shape("t", &[1, 4], &[3, 1]), vec![3, 4]);
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [4] do not broadcast")]
    fn add_names_op_and_shapes_on_mismatch() {
        let _ = Tensor::new(ArrayD::zeros(IxDyn(&[2, 3]))).add(&Tensor::new(ArrayD::zeros(IxDyn(&[4]))));
    }

    #[test]
    fn sum_to_shape_reduces_broadcast_axes() {
        let g = ArrayD::ones(IxDyn(&[2, 3, 4]));
        assert_eq!(
            sum_to_shape(g.clone(), &[3, 1]),
            array![[8.0f32], [8.0], [8.0]].into_dyn()
        );
        assert_eq!(sum_to_shape(g, &[]).sum(), 24.0);
    }
}
