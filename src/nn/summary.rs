//! `summary()`: a table of layers, output shapes and parameter counts, as Keras's
//! `model.summary()`.

use std::fmt;

use super::Sequential;

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Layer name (`conv1`).
    pub name: String,
    /// Layer type (`Conv2d`).
    pub kind: String,
    /// Output shape without the batch axis.
    pub output_shape: Vec<usize>,
    /// Number of parameter scalars.
    pub params: usize,
    /// Number of those that are trainable (not frozen).
    pub trainable: usize,
}

/// A model summary; `Display` prints it as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Input shape without the batch axis.
    pub input_shape: Vec<usize>,
    /// One row per layer.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// Total parameter scalars.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// Trainable parameter scalars.
    pub fn trainable_params(&self) -> usize {
        self.rows.iter().map(|r| r.trainable).sum()
    }
}

impl Sequential {
    /// Summarizes the network for inputs of `input_shape` (without the batch axis).
    pub fn summary(&self, input_shape: &[usize]) -> Summary {
        let shapes = self.output_shapes(input_shape);
        let rows = self
            .layers()
            .iter()
            .zip(shapes)
            .map(|((name, layer), output_shape)| {
                let params = layer.as_module().parameters();
                SummaryRow {
                    name: name.clone(),
                    kind: layer.kind().to_string(),
                    output_shape,
                    params: params.iter().map(|p| p.len()).sum(),
                    trainable: params.iter().filter(|p| !p.is_frozen()).map(|p| p.len()).sum(),
                }
            })
            .collect();
        Summary {
            input_shape: input_shape.to_vec(),
            rows,
        }
    }
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
            let trainable = match (r.params, r.trainable) {
                (0, _) => "-".to_string(),
                (p, t) if p == t => "yes".to_string(),
                (_, 0) => "frozen".to_string(),
                (_, t) => format!("{t} of them"),
            };
            lines.push([
                format!("{} ({})", r.name, r.kind),
                shape_string(&r.output_shape),
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
