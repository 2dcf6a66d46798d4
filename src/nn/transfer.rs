//! Transfer learning on any module: freeze by name or prefix, swap the classifier
//! head for another class count, or re-initialize the same architecture (the
//! from-scratch baseline a fine-tuning result is compared with).
//!
//! These are the bodies of the `Module` methods of the same names.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Linear, Module};

/// True if the dotted name `name` is `prefix` or lies under it (`conv1` covers
/// `conv1.weight` but not `conv10.weight`); the empty prefix covers everything.
pub(crate) fn under(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Freezes (or unfreezes) every parameter whose name is under `prefix`; returns how
/// many matched.
pub(crate) fn set_frozen_under(model: &mut dyn Module, prefix: &str, frozen: bool) -> usize {
    let mut matched = 0;
    for (name, param) in model.named_parameters_mut() {
        if under(&name, prefix) {
            param.set_frozen(frozen);
            matched += 1;
        }
    }
    matched
}

/// Freezes (or unfreezes) the parameters of every module `select` picks, with
/// everything under it.
pub(crate) fn set_frozen_where(
    model: &mut dyn Module,
    frozen: bool,
    select: &dyn Fn(&str, &dyn Module) -> bool,
) {
    model.visit_mut(&mut |name, m| {
        if select(name, m) {
            m.set_frozen(frozen);
        }
    });
}

/// The dotted name of the last `Linear` module, depth first: the classifier head.
pub(crate) fn head_name(model: &dyn Module) -> Option<String> {
    model
        .named_modules()
        .into_iter()
        .filter(|(_, m)| m.is::<Linear>())
        .map(|(n, _)| n)
        .next_back()
}

/// Replaces the head by a freshly initialized `Linear` with `classes` outputs (same
/// inputs); returns the old head's output count.
pub(crate) fn replace_head(model: &mut dyn Module, classes: usize, seed: u64) -> Result<usize, String> {
    if classes == 0 {
        return Err("a head needs at least one class".into());
    }
    let head = head_name(model).ok_or("the model has no Linear layer to replace")?;
    let rng = &mut StdRng::seed_from_u64(seed);
    let mut old = 0;
    model.visit_mut(&mut |name, m| {
        if name == head
            && let Some(linear) = m.downcast_mut::<Linear>()
        {
            old = linear.out_features();
            *linear = linear.fresh_with_outputs(classes, rng);
        }
    });
    Ok(old)
}
