//! Shape inference without running anything: what each layer of a `Sequential`
//! outputs for a given input shape, or an error naming the first layer that cannot
//! take its input. `fit` uses it to turn "this model does not fit this data" into an
//! error instead of a panic deep inside an op.

use super::{Layer, Sequential};
use crate::ops::Padding;

fn spatial(
    name: &str,
    input: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
) -> Result<(usize, usize), String> {
    let &[_, h, w] = input else {
        return Err(format!("{name} expects [channels, height, width], got {input:?}"));
    };
    padding
        .resolve((h, w), kernel, stride, dilation)
        .map(|r| (r.out_h, r.out_w))
        .ok_or_else(|| {
            format!("{name}: kernel {kernel:?} with {padding:?} padding does not fit a {h}×{w} input")
        })
}

impl Layer {
    /// The output shape (without the batch axis) for an input of `input`.
    pub fn output_shape(&self, name: &str, input: &[usize]) -> Result<Vec<usize>, String> {
        match self {
            Layer::Conv2d(conv) => {
                let (out, inp, kh, kw) = conv.kernel_shape();
                if input.first() != Some(&inp) {
                    return Err(format!(
                        "{name} expects {inp} input channels, got shape {input:?}"
                    ));
                }
                let o = conv.options;
                let (h, w) = spatial(name, input, (kh, kw), o.stride, o.padding, o.dilation)?;
                Ok(vec![out, h, w])
            }
            Layer::MaxPool2d(p) => {
                let (h, w) = spatial(name, input, p.kernel, p.stride, p.padding, (1, 1))?;
                Ok(vec![input[0], h, w])
            }
            Layer::AvgPool2d(p) => {
                let (h, w) = spatial(name, input, p.kernel, p.stride, p.padding, (1, 1))?;
                Ok(vec![input[0], h, w])
            }
            Layer::GlobalAvgPool(_) => match input {
                [c, _, _] => Ok(vec![*c]),
                _ => Err(format!("{name} expects [channels, height, width], got {input:?}")),
            },
            Layer::BatchNorm2d(bn) => match input {
                [c, _, _] if *c == bn.channels() => Ok(input.to_vec()),
                _ => Err(format!(
                    "{name} expects {} channels, got shape {input:?}",
                    bn.channels()
                )),
            },
            Layer::Flatten(_) => Ok(vec![input.iter().product()]),
            Layer::Linear(fc) => match input {
                [n] if *n == fc.in_features() => Ok(vec![fc.out_features()]),
                _ => Err(format!(
                    "{name} expects [{}] inputs, got shape {input:?}",
                    fc.in_features()
                )),
            },
            _ => Ok(input.to_vec()),
        }
    }
}

impl Sequential {
    /// Output shapes of every layer for one input of `input_shape` (without the
    /// batch axis), or an error naming the first layer that cannot take its input.
    pub fn try_output_shapes(&self, input_shape: &[usize]) -> Result<Vec<Vec<usize>>, String> {
        let mut shape = input_shape.to_vec();
        self.layers()
            .iter()
            .map(|(name, layer)| {
                shape = layer.output_shape(name, &shape)?;
                Ok(shape.clone())
            })
            .collect()
    }

    /// Checks that the network takes inputs of `input_shape` and returns its output
    /// shape.
    pub fn check_input(&self, input_shape: &[usize]) -> Result<Vec<usize>, String> {
        let shapes = self.try_output_shapes(input_shape)?;
        Ok(shapes.last().cloned().unwrap_or_else(|| input_shape.to_vec()))
    }
}
