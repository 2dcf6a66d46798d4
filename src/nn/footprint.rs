//! How many values a forward pass holds for one image, found from shapes alone,
//! before anything runs: the check a program makes before it runs a model it did
//! not build.
//!
//! A model file is a few bytes of settings, and valid settings can make one image's
//! activations gigabytes (a padding of 100 000, a dilation of 10 000): running such
//! a model on a batch would fail to allocate, which aborts the process. Loading
//! cannot refuse them — they are settings a layer may have — but a program can ask
//! what a forward pass will need and refuse to start ([`footprint`]).
//!
//! The count covers each layer's output and, for the windowed layers, the padded
//! copy of its input; the containers ([`Sequential`], [`Residual`], [`Conv2dBlock`])
//! are followed inside. A module of your own counts as its output only.

use super::{AvgPool2d, Conv2d, Conv2dBlock, MaxPool2d, Module, Residual, Sequential};
use crate::Padding;

/// Values a forward pass of one image holds (`f32`s: four bytes each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// The most any one layer holds (its padded input and its output): what
    /// inference needs at once, about.
    pub largest: usize,
    /// The dotted name of that layer (`""` for the model itself).
    pub largest_at: String,
    /// All layers together: what training keeps on the tape, about.
    pub total: usize,
}

impl Footprint {
    fn add(&mut self, name: &str, values: usize) {
        if values > self.largest {
            self.largest = values;
            self.largest_at = name.to_string();
        }
        self.total = self.total.saturating_add(values);
    }
}

/// The footprint of `model` for one image of shape `input` (`[C, H, W]`).
///
/// ```
/// use ferrocnn::nn::{footprint, Conv2d, Module, Sequential};
/// use ferrocnn::Padding;
/// use rand::SeedableRng;
///
/// let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
/// let net = Sequential::new().add(Conv2d::new(1, 8, (3, 3), rng).with_padding(Padding::Same));
/// let f = footprint(&net, &[1, 28, 28])?;
/// assert_eq!(f.largest, 30 * 30 + 8 * 28 * 28); // the padded input and the output
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// The first layer that does not take its input, as [`Module::output_shape`] says.
pub fn footprint(model: &dyn Module, input: &[usize]) -> Result<Footprint, String> {
    let mut f = Footprint::default();
    walk(model, "", input, &mut f)?;
    Ok(f)
}

/// Adds what `module` (named `name`) holds for `input` to `f`; returns its output
/// shape.
fn walk(module: &dyn Module, name: &str, input: &[usize], f: &mut Footprint) -> Result<Vec<usize>, String> {
    let child_name = |child: &str| {
        if name.is_empty() {
            child.to_string()
        } else {
            format!("{name}.{child}")
        }
    };
    if let Some(seq) = module.downcast_ref::<Sequential>() {
        let mut shape = input.to_vec();
        for (child, module) in seq.children() {
            shape = walk(module, &child_name(&child), &shape, f)?;
        }
        return Ok(shape);
    }
    if module.is::<Residual>() {
        // Both branches take the block's input.
        for (child, module) in module.children() {
            walk(module, &child_name(&child), input, f)?;
        }
    }
    if let Some(block) = module.downcast_ref::<Conv2dBlock>() {
        let o = block.conv.options;
        let (_, _, kh, kw) = block.conv.kernel_shape();
        let conv_out = block.conv.output_shape(input).map_err(|e| named(name, e))?;
        f.add(
            name,
            padded(input, o.padding, (kh, kw), o.stride, o.dilation).saturating_add(product(&conv_out)),
        );
        if let Some(pool) = &block.max_pool {
            let out = pool.output_shape(&conv_out).map_err(|e| named(name, e))?;
            f.add(
                name,
                padded(&conv_out, pool.padding, pool.kernel, pool.stride, (1, 1))
                    .saturating_add(product(&out)),
            );
            return Ok(out);
        }
        return Ok(conv_out);
    }
    let output = module.output_shape(input).map_err(|e| named(name, e))?;
    let window = if let Some(conv) = module.downcast_ref::<Conv2d>() {
        let (_, _, kh, kw) = conv.kernel_shape();
        let o = conv.options;
        Some((o.padding, (kh, kw), o.stride, o.dilation))
    } else if let Some(pool) = module.downcast_ref::<MaxPool2d>() {
        Some((pool.padding, pool.kernel, pool.stride, (1, 1)))
    } else {
        module
            .downcast_ref::<AvgPool2d>()
            .map(|pool| (pool.padding, pool.kernel, pool.stride, (1, 1)))
    };
    let held = match window {
        Some((padding, kernel, stride, dilation)) => padded(input, padding, kernel, stride, dilation),
        None => 0,
    };
    f.add(name, held.saturating_add(product(&output)));
    Ok(output)
}

/// Values of the padded copy of a `[C, H, W]` input (0 without padding).
fn padded(
    input: &[usize],
    padding: Padding,
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
) -> usize {
    let &[c, h, w] = input else { return 0 };
    match padding.resolve((h, w), kernel, stride, dilation) {
        Some(r) if r.top + r.bottom + r.left + r.right > 0 => product(&[
            c,
            h.saturating_add(r.top).saturating_add(r.bottom),
            w.saturating_add(r.left).saturating_add(r.right),
        ]),
        _ => 0,
    }
}

/// `e` prefixed with the layer's name, as [`Module::try_summary`] names it.
fn named(name: &str, e: String) -> String {
    if name.is_empty() {
        e
    } else {
        format!("{name}: {e}")
    }
}

fn product(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |n, &d| n.saturating_mul(d))
}
