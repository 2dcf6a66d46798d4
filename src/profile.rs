//! Opt-in timing of where training time goes: the forward pass per layer type, the
//! backward pass per op, and the optimizer step.
//!
//! A [`Profiler`] is explicit: it is attached to the tape of the steps it times
//! ([`Tape::with_profiler`](crate::Tape::with_profiler), or
//! [`FitOptions::profiler`](crate::train::FitOptions::profiler) for `fit`), so
//! nothing is timed — and nothing global is touched — unless asked for.
//!
//! ```
//! use ferrocnn::nn::{Linear, Mode, Module};
//! use ferrocnn::profile::Profiler;
//! use ferrocnn::Tape;
//! use rand::SeedableRng;
//!
//! let mut fc = Linear::new(3, 2, &mut rand::rngs::StdRng::seed_from_u64(0));
//! let profiler = Profiler::new();
//! let tape = Tape::with_profiler(&profiler);
//! let x = tape.input(ndarray::Array2::<f32>::ones((4, 3)).into_dyn());
//! let _grads = fc.forward(&x, Mode::Train).sum().backward();
//! let names: Vec<_> = profiler.entries().into_iter().map(|e| e.0).collect();
//! assert!(names.contains(&"Linear".to_string()) && names.contains(&"linear".to_string()));
//! println!("{}", profiler.report());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which part of a step a time belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// A layer's forward pass (by layer type).
    Forward,
    /// An op's backward pass (by op name).
    Backward,
    /// The optimizer's update.
    Update,
}

/// Calls and total time per (name, phase).
type Table = HashMap<(String, Phase), (u64, Duration)>;

/// Collects times by name and phase. Clones share the same table, so a profiler
/// handed to `fit` can be read afterwards.
#[derive(Clone, Debug, Default)]
pub struct Profiler {
    table: Arc<Mutex<Table>>,
}

impl Profiler {
    /// An empty profiler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the time since `started` under `name` and `phase`.
    pub fn record(&self, started: Instant, name: &str, phase: Phase) {
        let elapsed = started.elapsed();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.entry((name.to_string(), phase)).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }

    /// Forgets the figures so far.
    pub fn clear(&self) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The figures so far: `(name, phase, calls, total time)`, largest total first.
    pub fn entries(&self) -> Vec<(String, Phase, u64, Duration)> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = table
            .iter()
            .map(|((n, p), &(c, d))| (n.clone(), *p, c, d))
            .collect();
        v.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
        v
    }

    /// A table of [`entries`](Profiler::entries) with each line's share of the total.
    pub fn report(&self) -> String {
        let entries = self.entries();
        let total: Duration = entries.iter().map(|e| e.3).sum();
        let mut out = format!(
            "{:<22} {:<9} {:>7} {:>10} {:>6}\n",
            "layer / op", "phase", "calls", "total ms", "share"
        );
        for (name, phase, calls, time) in entries {
            let share = 100.0 * time.as_secs_f64() / total.as_secs_f64().max(1e-12);
            out += &format!(
                "{name:<22} {:<9} {calls:>7} {:>10.1} {share:>5.1}%\n",
                format!("{phase:?}"),
                time.as_secs_f64() * 1e3
            );
        }
        out
    }
}
