//! What a tape can carry besides its nodes: a profiler timing the pass, a trace
//! keeping each module's output (for `summary`, the feature-map pictures and
//! anomaly detection), and a watch for the first backward op that makes a NaN.
//!
//! Both ride on the tape rather than in globals, so they see exactly the passes they
//! were attached to, and nothing else in the process pays for them.
//!
//! Modules report through a [`Probe`]: built-in layers start one at the top of
//! `forward` and finish it with their output; containers report each child's output
//! under the child's name. Outputs are keyed by the module's address (and type, as a
//! struct and its first field share an address), resolved to dotted names
//! afterwards by walking the module tree.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::nn::Module;
use crate::profile::{Phase, Profiler};
use crate::tensor::Tensor;

/// Where a traced output came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TraceKey {
    /// A module (by address and type) that reported its own output.
    Module(usize, TypeId),
    /// A container (by address) that reported the output of its child `name`.
    Child(usize, String),
}

impl TraceKey {
    /// The key of a module that reports itself. Zero-sized modules (`ReLU`) have no
    /// address of their own; their container reports them.
    pub(crate) fn of(module: &dyn Module) -> Option<TraceKey> {
        if std::mem::size_of_val(module) == 0 {
            return None;
        }
        let addr = module as *const dyn Module as *const () as usize;
        Some(TraceKey::Module(addr, (module as &dyn Any).type_id()))
    }

    /// The key of child `name` reported by `container`.
    pub(crate) fn child(container: &dyn Module, name: &str) -> TraceKey {
        TraceKey::Child(
            container as *const dyn Module as *const () as usize,
            name.to_string(),
        )
    }
}

/// The outputs of one traced pass.
#[derive(Default)]
pub(crate) struct Trace {
    /// Each module's output, as the tensor itself (on the tape, so a gradient can
    /// start from it). A tensor holds the tape that holds this trace: the cycle
    /// ends when the trace is taken ([`Tape::take_trace`](crate::Tape)).
    pub outputs: HashMap<TraceKey, Tensor>,
    /// The keys in the order the outputs were reported (children before the
    /// container that holds them, as they finish first).
    pub order: Vec<TraceKey>,
}

impl Trace {
    fn insert(&mut self, key: TraceKey, output: Tensor) {
        if self.outputs.insert(key.clone(), output).is_none() {
            self.order.push(key);
        }
    }

    /// The key and output kept for `module`, the child `name` of `parent`: its
    /// container's report of it, or else its own.
    pub(crate) fn output_of(
        &self,
        parent: &dyn Module,
        name: &str,
        module: &dyn Module,
    ) -> Option<(TraceKey, &Tensor)> {
        let leaf = name.rsplit('.').next().unwrap_or(name);
        std::iter::once(TraceKey::child(parent, leaf))
            .chain(TraceKey::of(module))
            .find_map(|key| self.outputs.get(&key).map(|output| (key, output)))
    }
}

/// What a tape carries besides its nodes.
#[derive(Default)]
pub(crate) struct Observer {
    pub profiler: Option<Profiler>,
    pub trace: Option<RefCell<Trace>>,
    /// When set, backward records here the first op (in the order of the sweep)
    /// that turned a finite gradient into a NaN or infinite one.
    pub first_bad_backward: Option<RefCell<Option<&'static str>>>,
}

/// A module's report of one forward pass: started at the top of `forward`, finished
/// with its output. Costs a pointer check when the tape carries no observer.
pub(crate) struct Probe {
    observer: Option<Rc<Observer>>,
    started: Option<Instant>,
}

impl Probe {
    /// Starts a report of a pass on `x`.
    pub(crate) fn start(x: &Tensor) -> Probe {
        let observer = x.tape().and_then(|t| t.observer());
        let started = observer
            .as_ref()
            .and_then(|o| o.profiler.as_ref())
            .map(|_| Instant::now());
        Probe { observer, started }
    }

    /// Ends the report: `module` computed `y`.
    pub(crate) fn finish(self, module: &dyn Module, y: &Tensor) {
        let Some(observer) = self.observer else { return };
        if let (Some(profiler), Some(started)) = (&observer.profiler, self.started) {
            profiler.record(started, module.kind(), Phase::Forward);
        }
        if let (Some(trace), Some(key)) = (&observer.trace, TraceKey::of(module)) {
            trace.borrow_mut().insert(key, y.clone());
        }
    }
}

/// A container's report that its child `name` computed `y`.
pub(crate) fn child_output(container: &dyn Module, name: &str, y: &Tensor) {
    let Some(observer) = y.tape().and_then(|t| t.observer()) else {
        return;
    };
    if let Some(trace) = &observer.trace {
        trace
            .borrow_mut()
            .insert(TraceKey::child(container, name), y.clone());
    }
}
