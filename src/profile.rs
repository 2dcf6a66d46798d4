//! Opt-in timing of where training time goes: the forward pass per layer type, the
//! backward pass per op, and the optimizer step. Off by default (a relaxed atomic
//! load per layer and per node is all it costs then); `enable(true)`, run some
//! steps, then print [`report`].
//!
//! ```
//! ferrocnn::profile::enable(true);
//! // ... train a few steps ...
//! println!("{}", ferrocnn::profile::report());
//! ferrocnn::profile::enable(false);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Calls and total time per (name, phase).
type Table = HashMap<(&'static str, Phase), (u64, Duration)>;

static TIMES: Mutex<Option<Table>> = Mutex::new(None);

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

/// Turns timing on or off; turning it on clears earlier figures.
pub fn enable(on: bool) {
    if on {
        *TIMES.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashMap::new());
    }
    ENABLED.store(on, Ordering::Relaxed);
}

/// Starts a timer if profiling is on.
pub(crate) fn start() -> Option<Instant> {
    ENABLED.load(Ordering::Relaxed).then(Instant::now)
}

/// Adds the time since `started` (if profiling was on) under `name` and `phase`.
pub(crate) fn record(started: Option<Instant>, name: &'static str, phase: Phase) {
    let Some(t) = started else { return };
    let elapsed = t.elapsed();
    if let Some(map) = TIMES.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let entry = map.entry((name, phase)).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }
}

/// The figures so far: `(name, phase, calls, total time)`, largest total first.
pub fn entries() -> Vec<(&'static str, Phase, u64, Duration)> {
    let guard = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<_> = guard
        .iter()
        .flat_map(|m| m.iter().map(|(&(n, p), &(c, d))| (n, p, c, d)))
        .collect();
    v.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(b.0)));
    v
}

/// A table of [`entries`] with each line's share of the total.
pub fn report() -> String {
    let entries = entries();
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
