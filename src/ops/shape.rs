//! Shape changes that move no data: reshape and flatten.

use ndarray::IxDyn;

use crate::tensor::Tensor;

impl Tensor {
    /// The same elements (row-major order) under a new shape with as many elements.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.len(),
            "reshape: cannot view shape {:?} ({} elements) as {shape:?} ({n} elements)",
            self.shape(),
            self.len()
        );
        let value = self
            .value()
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(shape))
            .expect("element count checked");
        let original = self.shape().to_vec();
        Tensor::record("reshape", &[self], value, move |g, _| {
            let g = g.as_standard_layout().into_owned();
            vec![Some(
                g.into_shape_with_order(IxDyn(&original)).expect("same count"),
            )]
        })
    }

    /// Flattens all axes but the first: `[N, C, H, W]` → `[N, C·H·W]`.
    pub fn flatten(&self) -> Tensor {
        assert!(
            self.ndim() >= 1,
            "flatten: expects at least one axis, got a scalar"
        );
        let n = self.shape()[0];
        let rest = self.shape()[1..].iter().product();
        self.reshape(&[n, rest])
    }
}
