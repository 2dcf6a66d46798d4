//! A training run as the page sees it while it runs (`mnist --explore`): the loss
//! and accuracy of every step, the figures of every epoch, and the first layer's
//! filters as they change, as TensorBoard and ConvNetJS's demo show them.
//!
//! `fit` calls the step hook on the training thread between steps, so the hook
//! only appends three numbers and, every [`SNAPSHOT_EVERY`], takes a copy of the
//! model (its weights are shared until the next step writes them) for the page to
//! draw and to run drawings through. The page polls for what is new.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrocnn::nn::Module;
use ferrocnn::train::{EpochStats, StepHook, StepStats};
use serde_json::{json, Value};

use super::analysis::filters;
use super::App;

/// How often the page's copy of the model (and so its filters) is refreshed.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// The figures of a run so far.
pub struct Live {
    epochs: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `[step, loss, accuracy]` of every step (steps counted from 1 over the run).
    steps: Vec<[f64; 3]>,
    /// One entry per finished epoch.
    epochs: Vec<Value>,
    /// Where the run is: `(epoch, batch, batches per epoch)`.
    position: (usize, usize, usize),
    /// The first convolution's filters at the last snapshot, and its step.
    filters: Option<(usize, Value)>,
    last_snapshot: Option<Instant>,
    done: bool,
}

impl Live {
    /// A run of `epochs` epochs.
    pub fn new(epochs: usize) -> Arc<Live> {
        Arc::new(Live {
            epochs,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hook for `FitOptions::on_step`: records each step and, now and then,
    /// hands `app` a copy of the model.
    pub fn hook(self: &Arc<Self>, app: &Arc<App>) -> StepHook {
        let (live, app) = (self.clone(), app.clone());
        StepHook::new(move |step: &StepStats, model: &dyn Module| {
            let number = (step.epoch - 1) * step.batches_per_epoch + step.batch;
            let mut state = live.state();
            state
                .steps
                .push([number as f64, f64::from(step.loss), step.accuracy]);
            state.position = (step.epoch, step.batch, step.batches_per_epoch);
            let due = state.last_snapshot.is_none_or(|t| t.elapsed() >= SNAPSHOT_EVERY);
            if due || step.batch == step.batches_per_epoch {
                state.last_snapshot = Some(Instant::now());
                state.filters = filters(model).into_iter().next().map(|f| (number, f));
                drop(state);
                *app.model.lock().unwrap_or_else(|e| e.into_inner()) = model.clone_module();
            }
        })
    }

    /// Records a finished epoch.
    pub fn epoch(&self, stats: &EpochStats) {
        let entry = json!({
            "epoch": stats.epoch,
            "train_loss": stats.train_loss,
            "train_accuracy": stats.train_accuracy,
            "test_loss": stats.eval.map(|e| e.0),
            "test_accuracy": stats.eval.map(|e| e.1),
            "seconds": stats.seconds,
        });
        self.state().epochs.push(entry);
    }

    /// Marks the run finished (the page stops polling).
    pub fn finish(&self) {
        self.state().done = true;
    }

    /// What the page has not seen yet: the steps after the first `since`, every
    /// epoch, the position and the latest filters.
    pub fn json(&self, since: usize) -> Value {
        let state = self.state();
        let (epoch, batch, batches) = state.position;
        json!({
            "epochs_planned": self.epochs,
            "epoch": epoch,
            "batch": batch,
            "batches_per_epoch": batches,
            "steps_total": state.steps.len(),
            "steps": state.steps.get(since..).unwrap_or_default(),
            "epochs": state.epochs,
            "filters": state.filters.as_ref().map(|(step, f)| json!({"step": step, "filter": f})),
            "done": state.done,
        })
    }
}
