//! `summary()`: a table of every module of a model, its output shape and parameter
//! counts, as Keras's `model.summary()` (and torchinfo's nesting).
//!
//! Output shapes come from one traced evaluation pass on a zero image: every module
//! reports its output to the tape (see `observe`), so the table covers modules of
//! your own as well as the built-in ones.

use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::module::join;
use super::{Mode, Module};
use crate::tape::Tape;

/// One row of a [`Summary`]: a module of the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Dotted name (`blocks.0.main.conv1`).
    pub name: String,
    /// Module kind (`Conv2d`).
    pub kind: String,
    /// Nesting depth: 0 for the model's direct children.
    pub depth: usize,
    /// Output shape without the batch axis; `None` where the pass could not observe
    /// it (a parameterless layer inside a module of your own).
    pub output_shape: Option<Vec<usize>>,
    /// Number of parameter scalars, this module's and its children's.
    pub params: usize,
    /// Number of those that are trainable (not frozen).
    pub trainable: usize,
}

/// A model summary; `Display` prints it as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The model's kind.
    pub kind: String,
    /// Input shape without the batch axis.
    pub input_shape: Vec<usize>,
    /// The model's output shape.
    pub output_shape: Vec<usize>,
    /// One row per module of the tree, parents before children.
    pub rows: Vec<SummaryRow>,
    /// Total parameter scalars.
    pub total: usize,
    /// Trainable parameter scalars.
    pub trainable: usize,
}

impl Summary {
    /// Total parameter scalars.
    pub fn total_params(&self) -> usize {
        self.total
    }

    /// Trainable parameter scalars.
    pub fn trainable_params(&self) -> usize {
        self.trainable
    }
}

/// What [`trace`] calls for each module: `(dotted name, depth, module, output)`.
pub(crate) type Traced<'a> = dyn FnMut(&str, usize, &dyn Module, Option<&Arc<ArrayD<f32>>>) + 'a;

/// Runs a copy of `model` in evaluation on `input` (with its batch axis) on a tape
/// that keeps every module's output, then calls `f` on every module of the copy
/// below the root, parents first, with its output where the pass saw it.
pub(crate) fn trace(model: &dyn Module, input: ArrayD<f32>, f: &mut Traced) {
    let mut copy = model.clone_module();
    let tape = Tape::traced();
    copy.forward(&tape.input(input), Mode::Eval);
    let trace = tape.take_trace();
    walk(copy.as_ref(), "", 0, &mut |name, depth, parent, module| {
        let output = trace
            .output_of(parent, name, module)
            .map(|(_, output)| output.shared_value());
        f(name, depth, module, output.as_ref());
    });
}

/// What `walk` calls: `(name, depth, parent, module)`.
pub(crate) type Visit<'a> = dyn FnMut(&str, usize, &dyn Module, &dyn Module) + 'a;

/// Calls `f(name, depth, parent, module)` on every module below `root`, parents first.
pub(crate) fn walk(root: &dyn Module, prefix: &str, depth: usize, f: &mut Visit) {
    for (name, child) in root.children() {
        let full = join(prefix, &name);
        f(&full, depth, root, child);
        walk(child, &full, depth + 1, f);
    }
}

/// The body of [`Module::try_summary`].
pub(crate) fn summarize(model: &dyn Module, input_shape: &[usize]) -> Result<Summary, String> {
    let output_shape = model.output_shape(input_shape)?;
    let mut shape = vec![1];
    shape.extend_from_slice(input_shape);
    let mut rows = Vec::new();
    trace(
        model,
        ArrayD::zeros(IxDyn(&shape)),
        &mut |name, depth, module, output| {
            let params = module.parameters();
            rows.push(SummaryRow {
                name: name.to_string(),
                kind: module.kind().to_string(),
                depth,
                output_shape: output.map(|o| o.shape().get(1..).unwrap_or_default().to_vec()),
                params: params.iter().map(|p| p.len()).sum(),
                trainable: params.iter().filter(|p| !p.is_frozen()).map(|p| p.len()).sum(),
            });
        },
    );
    let params = model.parameters();
    Ok(Summary {
        kind: model.kind().to_string(),
        input_shape: input_shape.to_vec(),
        output_shape,
        rows,
        total: params.iter().map(|p| p.len()).sum(),
        trainable: params.iter().filter(|p| !p.is_frozen()).map(|p| p.len()).sum(),
    })
}

fn shape_string(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[N, {}]", dims.join(", "))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["Layer (type)", "Output shape", "Params", "Trainable"];
        let mut lines: Vec<[String; 4]> = vec![[
            "input".to_string(),
            shape_string(&self.input_shape),
            String::new(),
            String::new(),
        ]];
        for r in &self.rows {
            let shape = r.output_shape.as_deref().map_or("?".to_string(), shape_string);
            let trainable = match (r.params, r.trainable) {
                (0, _) => "-".to_string(),
                (p, t) if p == t => "yes".to_string(),
                (_, 0) => "frozen".to_string(),
                (_, t) => format!("{t} of them"),
            };
            lines.push([
                format!("{}{} ({})", "  ".repeat(r.depth), r.name, r.kind),
                shape,
                r.params.to_string(),
                trainable,
            ]);
        }
        let width = |i: usize| {
            lines
                .iter()
                .map(|l| l[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        };
        let w = [width(0), width(1), width(2), width(3)];
        let rule = "─".repeat(w.iter().sum::<usize>() + 9);
        let row = |f: &mut fmt::Formatter<'_>, cells: [&str; 4]| {
            writeln!(
                f,
                "{:<a$}   {:<b$}   {:>c$}   {:<d$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                a = w[0],
                b = w[1],
                c = w[2],
                d = w[3]
            )
        };
        writeln!(f, "{rule}")?;
        row(f, header)?;
        writeln!(f, "{rule}")?;
        for l in &lines {
            row(f, [&l[0], &l[1], &l[2], &l[3]])?;
        }
        writeln!(f, "{rule}")?;
        let (total, trainable) = (self.total_params(), self.trainable_params());
        writeln!(f, "Total params: {total}")?;
        writeln!(f, "Trainable params: {trainable}")?;
        write!(f, "Non-trainable params: {}", total - trainable)
    }
}
