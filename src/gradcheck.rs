//! Gradient checking by central finite differences.
//!
//! The ops compute in f32, so the check does what f32 allows: it reduces the op's
//! output to a scalar with a fixed random projection `Σ r ⊙ f(x)` (testing every
//! output's gradient at once, not just their sum), accumulates that projection and
//! the difference quotient in f64, and compares with a tolerance sized for f32
//! round-off. Each input element is perturbed by ±`eps` in turn.

use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::nn::{Mode, Module};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// Settings of a gradient check. The defaults suit ops on values of order 1.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    /// Perturbation of each input element.
    pub eps: f32,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (relative to the larger of the two gradients).
    pub rtol: f64,
    /// Seed of the random projection of the output.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-2,
            atol: 2e-3,
            rtol: 2e-2,
            seed: 7,
        }
    }
}

/// Where an analytic gradient disagreed with the numerical one.
#[derive(Clone, Debug, PartialEq)]
pub struct GradMismatch {
    /// Which input.
    pub input: usize,
    /// Flat index of the element within that input.
    pub index: usize,
    /// Gradient from `backward()`.
    pub analytic: f64,
    /// Gradient from finite differences.
    pub numeric: f64,
}

impl std::fmt::Display for GradMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input {} element {}: backward gives {:.6}, finite differences give {:.6}",
            self.input, self.index, self.analytic, self.numeric
        )
    }
}

impl GradCheck {
    /// Checks the gradients of `f` with respect to every one of `inputs`.
    /// Returns the first mismatch, if any.
    ///
    /// ```
    /// use ferrocnn::GradCheck;
    /// use ndarray::array;
    ///
    /// let x = array![[0.5f32, -1.0], [2.0, 0.3]].into_dyn();
    /// GradCheck::default().run(&[x], |t| t[0].tanh()).unwrap();
    /// ```
    pub fn run(&self, inputs: &[ArrayD<f32>], f: impl Fn(&[Tensor]) -> Tensor) -> Result<(), GradMismatch> {
        self.run_dyn(inputs, &f)
    }

    // Not generic, so each test's closure does not instantiate the whole check
    // again (55 copies of it were 6% of the test suite's code to optimize).
    fn run_dyn(&self, inputs: &[ArrayD<f32>], f: &dyn Fn(&[Tensor]) -> Tensor) -> Result<(), GradMismatch> {
        // The analytic side: inputs with gradients, and the vector-Jacobian
        // product with a random projection of the output.
        let tape = Tape::new();
        let bound: Vec<Tensor> = inputs.iter().map(|x| tape.input_with_grad(x.clone())).collect();
        let out = f(&bound);
        let projection = random_like(out.shape(), self.seed);
        let grads = out.backward_with(projection.clone());

        let eval = |values: &[ArrayD<f32>]| -> f64 {
            let consts: Vec<Tensor> = values.iter().map(|v| Tensor::new(v.clone())).collect();
            let y = f(&consts);
            y.value()
                .iter()
                .zip(projection.iter())
                .map(|(&y, &r)| f64::from(y) * f64::from(r))
                .sum()
        };

        let analytic: Vec<Option<ArrayD<f32>>> = bound.iter().map(|x| grads.wrt(x).cloned()).collect();
        self.compare(inputs.to_vec(), &analytic, &eval)
    }
}

impl GradCheck {
    /// Checks the gradients of any module — built-in, container or your own —
    /// with respect to its input `x` and to every trainable parameter, against
    /// finite differences of its (randomly projected) output in `mode`. In the
    /// mismatch, `input` 0 is `x` and `k ≥ 1` the `k`-th trainable parameter in
    /// `named_parameters` order. The module is not changed: each evaluation runs on
    /// a copy (so batch norm's statistics and dropout's counter do not move, and a
    /// training-mode dropout draws the same mask every time).
    ///
    /// ```
    /// use ferrocnn::nn::{Linear, Mode, Module};
    /// use ferrocnn::GradCheck;
    /// use rand::SeedableRng;
    ///
    /// let fc = Linear::new(3, 2, &mut rand::rngs::StdRng::seed_from_u64(0));
    /// let x = ferrocnn::gradcheck::random_like(&[4, 3], 1);
    /// GradCheck::default().check_module(&fc, &x, Mode::Train).unwrap();
    /// ```
    pub fn check_module(&self, module: &dyn Module, x: &ArrayD<f32>, mode: Mode) -> Result<(), GradMismatch> {
        let trainable = |m: &dyn Module| -> Vec<ArrayD<f32>> {
            m.parameters()
                .into_iter()
                .filter(|p| !p.is_frozen())
                .map(|p| p.value().clone())
                .collect()
        };
        let mut inputs = vec![x.clone()];
        inputs.extend(trainable(module));
        // Gradients of the input and of the parameters, from one backward pass.
        let mut copy = module.clone_module();
        let tape = Tape::new();
        let input = tape.input_with_grad(x.clone());
        let out = copy.forward(&input, mode);
        let projection = random_like(out.shape(), self.seed);
        let grads = out.backward_with(projection.clone());
        let mut analytic = vec![grads.wrt(&input).cloned()];
        analytic.extend(
            copy.parameters()
                .into_iter()
                .filter(|p| !p.is_frozen())
                .map(|p| grads.get(p).cloned()),
        );
        let eval = |values: &[ArrayD<f32>]| -> f64 {
            let mut copy = module.clone_module();
            let params = copy.parameters_mut().into_iter().filter(|p| !p.is_frozen());
            for (param, value) in params.zip(&values[1..]) {
                param.set_value(value.clone());
            }
            let y = copy.forward(&Tensor::new(values[0].clone()), mode);
            y.value()
                .iter()
                .zip(projection.iter())
                .map(|(&y, &r)| f64::from(y) * f64::from(r))
                .sum()
        };
        self.compare(inputs, &analytic, &eval)
    }

    /// Compares `analytic[i]` (`None`: zero) with central differences of `eval`
    /// around `values`, element by element.
    fn compare(
        &self,
        mut values: Vec<ArrayD<f32>>,
        analytic: &[Option<ArrayD<f32>>],
        eval: &dyn Fn(&[ArrayD<f32>]) -> f64,
    ) -> Result<(), GradMismatch> {
        for input in 0..values.len() {
            let zeros = ArrayD::zeros(values[input].raw_dim());
            let analytic = analytic[input]
                .as_ref()
                .unwrap_or(&zeros)
                .as_standard_layout()
                .into_owned();
            values[input] = values[input].as_standard_layout().into_owned();
            for index in 0..values[input].len() {
                let set = |v: &mut [ArrayD<f32>], value: f32| {
                    v[input].as_slice_mut().expect("standard layout")[index] = value;
                };
                let original = values[input].as_slice().expect("standard layout")[index];
                set(&mut values, original + self.eps);
                let plus = eval(&values);
                set(&mut values, original - self.eps);
                let minus = eval(&values);
                set(&mut values, original);
                let numeric = (plus - minus) / (2.0 * f64::from(self.eps));
                let a = f64::from(analytic.as_slice().expect("standard layout")[index]);
                if (a - numeric).abs() > self.atol + self.rtol * a.abs().max(numeric.abs()) {
                    return Err(GradMismatch {
                        input,
                        index,
                        analytic: a,
                        numeric,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Uniform values in [-1, 1) of the given shape, from a seed.
pub fn random_like(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn detects_a_wrong_derivative() {
        let x = array![0.5f32, -1.0, 2.0].into_dyn();
        // d/dx x² is 2x; claim 3x instead.
        let err = GradCheck::default()
            .run(&[x], |t| t[0].unary("bad_square", |v| v * v, |v, _| 3.0 * v))
            .unwrap_err();
        assert_eq!(err.input, 0);
        assert!((err.numeric - 2.0 * err.analytic / 3.0).abs() < 1e-2);
    }
}
