//! Classification metrics: accuracy, per-class accuracy and the confusion matrix.

use std::fmt;

/// Counts of (true class, predicted class) pairs.
///
/// ```
/// use ferrocnn::metrics::ConfusionMatrix;
///
/// let mut m = ConfusionMatrix::new(3);
/// m.add(&[0, 1, 2, 2], &[0, 2, 2, 2]);
/// assert_eq!(m.accuracy(), 0.75);
/// assert_eq!(m.per_class_accuracy(), vec![Some(1.0), Some(0.0), Some(1.0)]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    /// Row-major `[true][predicted]`.
    counts: Vec<usize>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds a batch of true labels and predictions. Panics if their lengths differ
    /// or a class is out of range (programmer errors: labels were validated on load).
    pub fn add(&mut self, truth: &[usize], predicted: &[usize]) {
        assert_eq!(
            truth.len(),
            predicted.len(),
            "ConfusionMatrix::add: {} labels, {} predictions",
            truth.len(),
            predicted.len()
        );
        for (&t, &p) in truth.iter().zip(predicted) {
            assert!(
                t < self.classes && p < self.classes,
                "ConfusionMatrix::add: class {t} or {p} out of range for {} classes",
                self.classes
            );
            self.counts[t * self.classes + p] += 1;
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many samples of class `truth` were predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> usize {
        self.counts[truth * self.classes + predicted]
    }

    /// Number of samples counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Fraction of samples predicted correctly (0 if empty).
    pub fn accuracy(&self) -> f64 {
        let correct: usize = (0..self.classes).map(|c| self.count(c, c)).sum();
        correct as f64 / self.total().max(1) as f64
    }

    /// Recall of each class; `None` for a class with no samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|c| {
                let row: usize = (0..self.classes).map(|p| self.count(c, p)).sum();
                (row > 0).then(|| self.count(c, c) as f64 / row as f64)
            })
            .collect()
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are true classes, columns predictions, with per-class accuracy at the end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.counts.iter().max().map_or(1, |m| m.to_string().len()).max(3);
        write!(f, "true\\pred")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f, "   recall")?;
        for (t, acc) in self.per_class_accuracy().into_iter().enumerate() {
            write!(f, "{t:>9}")?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.count(t, p))?;
            }
            match acc {
                Some(a) => writeln!(f, "  {:6.2}%", 100.0 * a)?,
                None => writeln!(f, "       -")?,
            }
        }
        Ok(())
    }
}

/// Peak resident memory of this process in MiB, where the OS tells it (Linux:
/// `VmHWM` in `/proc/self/status`); `None` elsewhere.
pub fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
