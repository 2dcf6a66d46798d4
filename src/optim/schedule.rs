//! Learning-rate schedules: the learning rate as a pure function of the step.
//!
//! A schedule holds its own base learning rate, so `lr_at(step)` depends on nothing
//! else — no hidden counter, no "last lr" — and a resumed run recomputes exactly the
//! learning rate it would have used. Drive an optimizer with
//! `optimizer.set_lr(schedule.lr_at(step))` before each step, where `step` counts
//! the steps (or epochs) already taken, like PyTorch's `last_epoch`.
//!
//! The formulas are PyTorch's closed forms (`StepLR`, `ExponentialLR`,
//! `CosineAnnealingLR`, `OneCycleLR` with cosine annealing); `WarmupCosine` is the
//! Hugging Face `get_cosine_schedule_with_warmup`, with a floor. They are computed
//! in f64 and rounded once.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// A learning-rate schedule: a pure function of the step, holding its own base
/// learning rate, so a resumed run recomputes exactly the same values. Call
/// `optimizer.set_lr(schedule.lr_at(step))` before each step, `step` counting the
/// steps (or epochs) already taken, like PyTorch's `last_epoch`.
///
/// ```
/// use ferrocnn::LrSchedule;
///
/// let cosine = LrSchedule::Cosine { base_lr: 0.1, min_lr: 0.0, total_steps: 100 };
/// assert_eq!(cosine.lr_at(0), 0.1);
/// assert!((cosine.lr_at(50) - 0.05).abs() < 1e-7);
/// assert_eq!(cosine.lr_at(100), 0.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// The same learning rate at every step.
    Constant {
        /// The learning rate.
        lr: f64,
    },
    /// PyTorch's `StepLR`: `base_lr · gamma^⌊step / step_size⌋`.
    Step {
        /// Learning rate of the first `step_size` steps.
        base_lr: f64,
        /// Steps between two decays.
        step_size: usize,
        /// Factor applied at each decay (PyTorch's default is 0.1).
        gamma: f64,
    },
    /// PyTorch's `ExponentialLR`: `base_lr · gamma^step`.
    Exponential {
        /// Learning rate at step 0.
        base_lr: f64,
        /// Factor applied every step.
        gamma: f64,
    },
    /// PyTorch's `CosineAnnealingLR` (closed form):
    /// `min_lr + (base_lr − min_lr)·(1 + cos(π·step/total_steps))/2`.
    ///
    /// Unlike PyTorch's closed form, which rises again after `total_steps`
    /// (a warm restart), the learning rate stays at `min_lr` from then on.
    Cosine {
        /// Learning rate at step 0.
        base_lr: f64,
        /// Learning rate at `total_steps` and after (PyTorch's `eta_min`).
        min_lr: f64,
        /// Length of the decay (PyTorch's `T_max`).
        total_steps: usize,
    },
    /// Linear warmup from 0 to `base_lr` over `warmup_steps`
    /// (`base_lr·step/warmup_steps`), then cosine decay to `min_lr` at
    /// `total_steps`, and `min_lr` after.
    WarmupCosine {
        /// Peak learning rate, reached at `warmup_steps`.
        base_lr: f64,
        /// Learning rate at `total_steps` and after.
        min_lr: f64,
        /// Length of the linear warmup.
        warmup_steps: usize,
        /// Step at which the cosine decay ends (counted from step 0, warmup
        /// included).
        total_steps: usize,
    },
    /// PyTorch's `OneCycleLR` (two phases, cosine annealing): from
    /// `max_lr/div_factor` up to `max_lr` over the first `pct_start` of the steps,
    /// then down to `max_lr/div_factor/final_div_factor` at step `total_steps − 1`,
    /// where it stays (PyTorch raises past `total_steps`). Momentum is not cycled.
    OneCycle {
        /// Peak learning rate.
        max_lr: f64,
        /// Number of steps in the cycle.
        total_steps: usize,
        /// Fraction of the steps spent increasing the learning rate (default 0.3).
        pct_start: f64,
        /// Initial learning rate is `max_lr / div_factor` (default 25).
        div_factor: f64,
        /// Final learning rate is the initial one `/ final_div_factor`
        /// (default 1e4).
        final_div_factor: f64,
    },
}

impl LrSchedule {
    /// Checks that every rate is finite and not negative and every count and factor
    /// usable: what a schedule read from a file must pass before
    /// [`lr_at`](LrSchedule::lr_at) is called (a `Step` of 0 steps would panic there).
    pub fn validate(&self) -> Result<(), String> {
        let rate = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} {v} is not a finite number of at least 0"))
            }
        };
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} {v} is not a finite number above 0"))
            }
        };
        match *self {
            LrSchedule::Constant { lr } => rate("lr", lr),
            LrSchedule::Step {
                base_lr,
                step_size,
                gamma,
            } => {
                rate("base_lr", base_lr)?;
                rate("gamma", gamma)?;
                if step_size == 0 {
                    return Err("step_size 0: it must be at least 1".into());
                }
                Ok(())
            }
            LrSchedule::Exponential { base_lr, gamma } => {
                rate("base_lr", base_lr)?;
                rate("gamma", gamma)
            }
            LrSchedule::Cosine { base_lr, min_lr, .. } | LrSchedule::WarmupCosine { base_lr, min_lr, .. } => {
                rate("base_lr", base_lr)?;
                rate("min_lr", min_lr)
            }
            LrSchedule::OneCycle {
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
                ..
            } => {
                rate("max_lr", max_lr)?;
                if !(0.0..=1.0).contains(&pct_start) {
                    return Err(format!("pct_start {pct_start} is not between 0 and 1"));
                }
                positive("div_factor", div_factor)?;
                positive("final_div_factor", final_div_factor)
            }
        }
    }

    /// PyTorch's `OneCycleLR` with its defaults: `pct_start` 0.3, `div_factor` 25,
    /// `final_div_factor` 1e4.
    pub fn one_cycle(max_lr: f64, total_steps: usize) -> Self {
        LrSchedule::OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// The learning rate to use after `step` steps (0 for the first step).
    pub fn lr_at(&self, step: usize) -> f64 {
        let s = step as f64;
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::Step {
                base_lr,
                step_size,
                gamma,
            } => {
                assert!(step_size > 0, "LrSchedule::Step: step_size must be > 0");
                let decays = (step / step_size) as f64;
                base_lr * gamma.powf(decays)
            }
            LrSchedule::Exponential { base_lr, gamma } => base_lr * gamma.powf(s),
            LrSchedule::Cosine {
                base_lr,
                min_lr,
                total_steps,
            } => {
                let progress = if total_steps == 0 {
                    1.0
                } else {
                    (s / total_steps as f64).min(1.0)
                };
                cosine(base_lr, min_lr, progress)
            }
            LrSchedule::WarmupCosine {
                base_lr,
                min_lr,
                warmup_steps,
                total_steps,
            } => {
                if step < warmup_steps {
                    return base_lr * s / warmup_steps as f64;
                }
                let decay_steps = total_steps.saturating_sub(warmup_steps);
                let progress = if decay_steps == 0 {
                    1.0
                } else {
                    ((s - warmup_steps as f64) / decay_steps as f64).min(1.0)
                };
                cosine(base_lr, min_lr, progress)
            }
            LrSchedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial_lr = max_lr / div_factor;
                let min_lr = initial_lr / final_div_factor;
                // PyTorch's phase ends, as floats: the peak is at step
                // pct_start·total − 1, the end of the cycle at total − 1.
                let warmup_end = pct_start * total_steps as f64 - 1.0;
                let end = total_steps as f64 - 1.0;
                if s <= warmup_end {
                    let pct = if warmup_end > 0.0 { s / warmup_end } else { 1.0 };
                    anneal_cos(initial_lr, max_lr, pct)
                } else {
                    let pct = ((s - warmup_end) / (end - warmup_end)).min(1.0);
                    anneal_cos(max_lr, min_lr, pct)
                }
            }
        }
    }
}

/// Cosine decay from `from` (progress 0) to `to` (progress 1).
fn cosine(from: f64, to: f64, progress: f64) -> f64 {
    to + (from - to) * (1.0 + (PI * progress).cos()) / 2.0
}

/// PyTorch's `OneCycleLR._annealing_cos`, term for term.
fn anneal_cos(start: f64, end: f64, pct: f64) -> f64 {
    let cos_out = (PI * pct).cos() + 1.0;
    end + (start - end) / 2.0 * cos_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_starts_at_max_over_div_factor_and_peaks_at_pct_start() {
        let s = LrSchedule::one_cycle(1.0, 100);
        assert!((s.lr_at(0) - 1.0 / 25.0).abs() < 1e-7);
        assert_eq!(s.lr_at(29), 1.0);
        assert!((s.lr_at(99) - 1.0 / 25.0 / 1e4).abs() < 1e-10);
        assert_eq!(s.lr_at(500), s.lr_at(99));
    }
}
