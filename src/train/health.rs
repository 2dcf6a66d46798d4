//! The numerical health of a training run: the checks that stop it, and say where,
//! when a value stops being a number or the loss explodes.
//!
//! On every step, at a cost measured under 2% of an R1 step (BENCHMARKS.md):
//! - the input batch is finite;
//! - the loss is finite;
//! - every gradient is finite, before the optimizer reads it;
//! - every parameter is finite after the update;
//! - the loss has not stayed far above where the run started ([`ExplosionCheck`]).
//!
//! When one of the first three fails, the step is run again on a copy of the model
//! with anomaly detection: every module's output and every backward op's gradients
//! are checked, and the first non-finite one is the [`Origin`] the error names.
//! [`FitOptions::detect_anomaly`](super::FitOptions::detect_anomaly) runs every step
//! that way instead (as PyTorch's `detect_anomaly`), for a value that goes bad and
//! is masked before the loss.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::nn::{walk, Module};
use crate::ops::finite::{array_all_finite, first_non_finite};
use crate::param::{Param, ParamId};
use crate::tape::{Gradients, Tape};

/// What a failed check found, and where.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// An input value is NaN or infinite.
    Input {
        /// The sample: its position in the batch given to
        /// [`train_step`](super::train_step), its index in the dataset for
        /// [`fit`](super::fit).
        sample: usize,
        /// Flat index of the value within the sample (`c·H·W + y·W + x`).
        index: usize,
        /// The value.
        value: f32,
    },
    /// The loss is NaN or infinite.
    Loss {
        /// The loss.
        value: f32,
        /// Where the first non-finite value appeared, if found.
        origin: Option<Origin>,
    },
    /// A gradient is NaN or infinite, while the loss is finite.
    Gradient {
        /// The parameter's dotted name.
        param: String,
        /// Its first non-finite gradient value.
        value: f32,
        /// Where the first non-finite gradient appeared, if found.
        origin: Option<Origin>,
    },
    /// The optimizer's update made a parameter NaN or infinite (finite gradients,
    /// but a step too large for `f32`).
    Parameter {
        /// The parameter's dotted name.
        param: String,
        /// Its first non-finite value.
        value: f32,
    },
    /// Anomaly detection found a non-finite value that the loss and gradients did
    /// not show.
    Anomaly {
        /// Where it appeared.
        origin: Origin,
    },
    /// The loss was above the [`ExplosionCheck`]'s limit on most recent steps.
    Exploded {
        /// The loss of the last step.
        loss: f32,
        /// The limit.
        limit: f32,
        /// Steps above it among the last `window`.
        steps: usize,
        /// The steps looked at: the check's `patience`.
        window: usize,
    },
}

/// Where the first non-finite value of a step appeared.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// The first module, in the order they ran, whose output held one.
    Output {
        /// Dotted name (`blocks.1.main.bn1`).
        module: String,
        /// Its kind (`BatchNorm2d`).
        kind: String,
    },
    /// The first op of the backward sweep that made one from finite gradients.
    Backward {
        /// The op (`conv2d`).
        op: String,
    },
}

const ADVICE: &str = "lower the learning rate, or clip the gradients (clip_grad_norm)";

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Output { module, kind } => {
                write!(
                    f,
                    "the first non-finite value was the output of `{module}` ({kind})"
                )
            }
            Origin::Backward { op } => {
                write!(
                    f,
                    "the first non-finite gradient came from the backward pass of `{op}`"
                )
            }
        }
    }
}

impl Fault {
    /// The same fault with `origin` as where it started, for the kinds that say
    /// (a non-finite loss or gradient); others are returned as they are.
    pub(crate) fn with_origin(self, origin: Option<Origin>) -> Fault {
        match self {
            Fault::Loss { value, .. } => Fault::Loss { value, origin },
            Fault::Gradient { param, value, .. } => Fault::Gradient { param, value, origin },
            other => other,
        }
    }
}

/// `"; <origin>"`, or nothing.
fn origin_clause(origin: &Option<Origin>) -> String {
    origin.as_ref().map(|o| format!("; {o}")).unwrap_or_default()
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Input { sample, index, value } => write!(
                f,
                "input sample {sample} holds {value} at position {index}; check the data and its normalization"
            ),
            Fault::Loss { value, origin } => {
                write!(f, "the loss is {value}{}; {ADVICE}", origin_clause(origin))
            }
            Fault::Gradient { param, value, origin } => write!(
                f,
                "the gradient of `{param}` holds {value}{}; {ADVICE}",
                origin_clause(origin)
            ),
            Fault::Parameter { param, value } => write!(
                f,
                "the optimizer's update made `{param}` hold {value}; lower the learning rate"
            ),
            Fault::Anomaly { origin } => write!(f, "anomaly detection: {origin}"),
            Fault::Exploded {
                loss,
                limit,
                steps,
                window,
            } => write!(
                f,
                "the loss exploded: it was above {limit} on {steps} of the last {window} steps and is now {loss:e}; {ADVICE}"
            ),
        }
    }
}

impl std::error::Error for Fault {}

/// Stops a run whose loss explodes while staying finite (a learning rate of 1e6
/// reaches losses of 1e21 and would save that model).
///
/// The limit is `factor` times the larger of the run's first loss and `ln(classes)`
/// (the cross-entropy of a uniform guess, so a resumed or fine-tuned run, whose
/// first loss is small, is not held to it). The run stops when the loss is above the
/// limit on more than half of the last `patience` steps: a few bad batches do not
/// stop it, a loss that jumps up and down between 20 and 10⁸ does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplosionCheck {
    /// Multiple of the reference loss that counts as exploded; above 1.
    pub factor: f64,
    /// Steps looked back at; the run stops when the loss was above the limit on
    /// more than half of them. At least 1.
    pub patience: usize,
}

impl Default for ExplosionCheck {
    /// Ten times the reference, on 6 of the last 10 steps.
    fn default() -> Self {
        ExplosionCheck {
            factor: 10.0,
            patience: 10,
        }
    }
}

impl ExplosionCheck {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.factor.is_finite() && self.factor > 1.0) {
            return Err(format!(
                "the explosion check's factor must be finite and above 1, not {}",
                self.factor
            ));
        }
        if self.patience == 0 {
            return Err("the explosion check's patience must be at least 1 step".into());
        }
        Ok(())
    }
}

/// Watches the losses of one run for an explosion.
pub(crate) struct LossWatch {
    check: Option<ExplosionCheck>,
    classes: usize,
    limit: Option<f32>,
    /// Whether each of the last `patience` steps was above the limit.
    recent: VecDeque<bool>,
}

impl LossWatch {
    pub(crate) fn new(check: Option<ExplosionCheck>, classes: usize) -> Self {
        LossWatch {
            check,
            classes,
            limit: None,
            recent: VecDeque::new(),
        }
    }

    /// Takes the loss of the next step.
    pub(crate) fn observe(&mut self, loss: f32) -> Result<(), Fault> {
        let Some(check) = self.check else { return Ok(()) };
        let uniform = (self.classes.max(2) as f32).ln();
        let limit = *self
            .limit
            .get_or_insert((check.factor * f64::from(loss.max(uniform))) as f32);
        if self.recent.len() == check.patience {
            self.recent.pop_front();
        }
        self.recent.push_back(loss > limit);
        let above = self.recent.iter().filter(|&&a| a).count();
        if 2 * above <= check.patience {
            return Ok(());
        }
        Err(Fault::Exploded {
            loss,
            limit,
            steps: above,
            window: check.patience,
        })
    }
}

/// The first non-finite input value of a batch `[N, …]`.
pub fn check_input(x: &ArrayD<f32>) -> Result<(), Fault> {
    if array_all_finite(x) {
        return Ok(());
    }
    let per_sample = x.shape().iter().skip(1).product::<usize>().max(1);
    let (at, value) = first_non_finite(x).expect("a failed scan has a non-finite value");
    Err(Fault::Input {
        sample: at / per_sample,
        index: at % per_sample,
        value,
    })
}

/// The first parameter (in `named_parameters` order) whose gradient is not finite;
/// [`train_step`](super::train_step) runs it before every update.
pub fn check_gradients(model: &dyn Module, grads: &Gradients) -> Result<(), Fault> {
    match first_bad(model, |p| grads.get(p).is_some_and(|g| !array_all_finite(g))) {
        Some((name, param)) => Err(Fault::Gradient {
            param: name,
            value: grads.get(param).map_or(f32::NAN, first_value),
            origin: None,
        }),
        None => Ok(()),
    }
}

/// The first parameter whose value is not finite; [`train_step`](super::train_step)
/// runs it after every update.
pub fn check_parameters(model: &dyn Module) -> Result<(), Fault> {
    check_parameters_except(model, &[])
}

/// [`check_parameters`], reading only the parameters not in `known_finite` (those
/// the optimizer found finite as it wrote them, [`Optimizer::step_checked`]).
///
/// [`Optimizer::step_checked`]: crate::optim::Optimizer::step_checked
pub(crate) fn check_parameters_except(model: &dyn Module, known_finite: &[ParamId]) -> Result<(), Fault> {
    let unknown = |p: &Param| !known_finite.contains(&p.id());
    match first_bad(model, |p| unknown(p) && !array_all_finite(p.value())) {
        Some((name, param)) => Err(Fault::Parameter {
            param: name,
            value: first_value(param.value()),
        }),
        None => Ok(()),
    }
}

/// The first parameter (in `named_parameters` order) that is `bad`, with its dotted
/// name. The scan runs on every step, so it builds no name until it finds one.
fn first_bad(model: &dyn Module, bad: impl Fn(&Param) -> bool) -> Option<(String, &Param)> {
    let at = model.parameters().into_iter().position(bad)?;
    Some(model.named_parameters().swap_remove(at))
}

/// The first non-finite value of an array that holds one.
fn first_value(values: &ArrayD<f32>) -> f32 {
    first_non_finite(values).map_or(f32::NAN, |(_, v)| v)
}

/// Where the first non-finite value of a pass on an anomaly-watching tape
/// ([`Tape::watching_anomalies`]) appeared: the first module output that holds one,
/// else the first backward op that made one.
pub(crate) fn origin(model: &dyn Module, tape: &Tape) -> Option<Origin> {
    let trace = tape.take_trace();
    let position: HashMap<_, _> = trace.order.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut first: Option<(usize, Origin)> = None;
    walk(model, "", 0, &mut |name, _, parent, module| {
        let Some((key, output)) = trace.output_of(parent, name, module) else {
            return;
        };
        let at = position[&key];
        if first.as_ref().is_some_and(|(seen, _)| *seen <= at) || array_all_finite(output.value()) {
            return;
        }
        let origin = Origin::Output {
            module: name.to_string(),
            kind: module.kind().to_string(),
        };
        first = Some((at, origin));
    });
    first.map(|(_, origin)| origin).or_else(|| {
        tape.first_bad_backward()
            .map(|op| Origin::Backward { op: op.to_string() })
    })
}

/// Runs a failed step again on a copy of `model` with anomaly detection, to find
/// where its first non-finite value appeared. `loss` computes the step's loss from
/// the copy and its logits, as the step did.
pub(crate) fn locate(
    model: &dyn Module,
    x: &Arc<ArrayD<f32>>,
    loss: &dyn Fn(&dyn Module, &crate::Tensor) -> crate::Tensor,
) -> Option<Origin> {
    let mut copy = model.clone_module();
    let tape = Tape::watching_anomalies(None);
    let logits = copy.forward(&tape.input(x.as_ref().clone()), crate::nn::Mode::Train);
    let loss = loss(copy.as_ref(), &logits);
    if loss.item().is_finite() {
        loss.backward();
    }
    origin(copy.as_ref(), &tape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_watch_stops_when_most_recent_steps_are_above_the_limit() {
        let check = ExplosionCheck {
            factor: 10.0,
            patience: 4,
        };
        // First loss 2.0 over 10 classes: the limit is 10 · max(2, ln 10) = 23.03.
        // Two of four steps above it are forgiven; a third stops the run.
        let mut watch = LossWatch::new(Some(check), 10);
        for loss in [2.0, 1.5, 100.0, 1.0, 50.0, 1.0, 1.0, 30.0, 1.0, 40.0, 1.0, 1.0] {
            assert_eq!(watch.observe(loss), Ok(()), "{loss}");
        }
        for loss in [1e8, 1.0, 30.0] {
            assert_eq!(watch.observe(loss), Ok(()), "{loss}");
        }
        let Err(Fault::Exploded {
            loss,
            limit,
            steps,
            window,
        }) = watch.observe(1e21)
        else {
            panic!("three of the last four steps above the limit stop the run");
        };
        assert_eq!((loss, steps, window), (1e21, 2 + 1, 4));
        assert!((limit - 10.0 * 10f32.ln()).abs() < 1e-4, "{limit}");
        // A resumed run starting at a small loss is held to ln(classes), not to it.
        let mut resumed = LossWatch::new(Some(check), 10);
        for loss in [0.01, 5.0, 5.0, 5.0, 5.0] {
            assert_eq!(resumed.observe(loss), Ok(()));
        }
        let mut off = LossWatch::new(None, 10);
        for loss in [1.0, 1e30, 1e30, 1e30, 1e30] {
            assert_eq!(off.observe(loss), Ok(()));
        }
    }

    #[test]
    fn explosion_settings_are_validated() {
        for (factor, patience) in [(1.0, 3), (f64::NAN, 3), (f64::INFINITY, 3), (10.0, 0)] {
            assert!(ExplosionCheck { factor, patience }.validate().is_err());
        }
        assert!(ExplosionCheck::default().validate().is_ok());
    }
}
