//! A small property-test runner on `rand`, for the fuzz-style tests of the file
//! readers (`io_fuzz`, `data_idx`, `viz_png_fuzz`): it runs a property on many
//! generated inputs and, when one fails, says which one and how to run it again.
//!
//! It does not shrink. These properties take bytes (random, truncated, bit-flipped,
//! with a field changed) and ask "no panic, no allocation past the cap": a failing
//! input is printed whole and its seed re-runs it alone, which is what the reader
//! of a failure needs; a smaller input is a nicety that would cost a dependency.
//!
//! Runs are deterministic: case `i` draws from an RNG seeded with `base + i`, the
//! base being [`DEFAULT_SEED`] unless `FERROCNN_PROPERTY_SEED` says otherwise (a
//! number, decimal or `0x` hex, or `random` for a fresh one per run, to search
//! beyond the cases every run sees). `FERROCNN_PROPERTY_CASES` replaces each
//! property's count of cases.

use std::fmt::{self, Debug};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The base seed of every run that does not set `FERROCNN_PROPERTY_SEED`.
pub const DEFAULT_SEED: u64 = 0xfe44_0c22_0000_0001;

/// Debug text of an input past this many bytes is cut (the seed still re-runs it).
const MAX_SHOWN: usize = 4096;

/// What a property returns: `()` when it checks with `assert!` (a panic fails it),
/// `bool`, or a `Result` whose `Err` fails it.
pub trait Verdict {
    /// Why the case failed, or `None` if it passed.
    fn failure(self) -> Option<String>;
}

impl Verdict for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl Verdict for bool {
    fn failure(self) -> Option<String> {
        (!self).then(|| "the property returned false".to_string())
    }
}

impl<E: Debug> Verdict for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| format!("the property returned Err({e:?})"))
    }
}

/// Runs `property` on `cases` inputs made by `generate`, each from its own seeded
/// RNG; panics at the first failing case (a panic, `false` or `Err`) with `name`,
/// the case's index and seed, the input, the failure, and the command that re-runs
/// that case alone.
///
/// `generate` must depend on nothing but the RNG: the input shown is generated
/// again from the case's seed, because `property` took the first one.
pub fn check<T, V>(name: &str, cases: u32, generate: impl Fn(&mut StdRng) -> T, property: impl Fn(T) -> V)
where
    T: Debug,
    V: Verdict,
{
    let base = base_seed();
    let cases = case_count().unwrap_or(cases);
    for case in 0..cases {
        let seed = base.wrapping_add(u64::from(case));
        let input = generate(&mut StdRng::seed_from_u64(seed));
        let failure = match catch_unwind(AssertUnwindSafe(|| property(input))) {
            Ok(verdict) => verdict.failure(),
            Err(panic) => Some(format!("the property panicked: {}", panic_message(&*panic))),
        };
        if let Some(failure) = failure {
            let input = generate(&mut StdRng::seed_from_u64(seed));
            panic!(
                "property `{name}` failed at case {case} of {cases} (case seed {seed:#x}, base seed {base:#x})\n\
                 input: {}\n\
                 {failure}\n\
                 run this case alone: FERROCNN_PROPERTY_SEED={seed:#x} FERROCNN_PROPERTY_CASES=1 \
                 cargo test --test {} {name}",
                shown(&input),
                env!("CARGO_CRATE_NAME"),
            );
        }
    }
}

fn base_seed() -> u64 {
    match std::env::var("FERROCNN_PROPERTY_SEED") {
        Err(_) => DEFAULT_SEED,
        Ok(s) if s == "random" => rand::rng().random(),
        Ok(s) => parse_u64(&s).unwrap_or_else(|| {
            panic!("FERROCNN_PROPERTY_SEED={s:?}: expected a number (decimal or 0x hex) or `random`")
        }),
    }
}

fn case_count() -> Option<u32> {
    let s = std::env::var("FERROCNN_PROPERTY_CASES").ok()?;
    let n = parse_u64(&s).and_then(|n| u32::try_from(n).ok());
    Some(n.unwrap_or_else(|| panic!("FERROCNN_PROPERTY_CASES={s:?}: expected a count")))
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => s.replace('_', "").parse().ok(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

fn shown(input: &impl Debug) -> String {
    let mut text = format!("{input:?}");
    if text.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = text.len() - end;
        text.truncate(end);
        text.push_str(&format!("… ({cut} more bytes of text)"));
    }
    text
}

/// Random bytes, their count uniform in `len`.
pub fn bytes(rng: &mut StdRng, len: Range<usize>) -> Vec<u8> {
    let n = rng.random_range(len);
    (0..n).map(|_| rng.random::<u8>()).collect()
}

/// `count` (uniform in the range) values of `item`.
pub fn vec_of<T>(rng: &mut StdRng, count: Range<usize>, mut item: impl FnMut(&mut StdRng) -> T) -> Vec<T> {
    let n = rng.random_range(count);
    (0..n).map(|_| item(rng)).collect()
}

/// A bit of a byte: 0 to 7.
pub fn bit(rng: &mut StdRng) -> u8 {
    rng.random_range(0..8)
}

/// One of `choices`, each as likely.
pub fn pick<T: Copy>(rng: &mut StdRng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}

/// A position in a collection whose length is not known when the input is made
/// (a file built from other parts of the input), or is applied to several: a
/// fraction of the length, as proptest's `sample::Index`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Index(pub u64);

impl Index {
    /// An index anywhere, uniform.
    pub fn random(rng: &mut StdRng) -> Index {
        Index(rng.random())
    }

    /// The position in a collection of `len` elements, `0..len`; panics if `len` is 0.
    pub fn index(self, len: usize) -> usize {
        assert!(len > 0, "an Index into an empty collection");
        ((len as u128 * u128::from(self.0)) >> 64) as usize
    }
}

impl Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The fraction is what a reader wants; the raw value re-creates it exactly.
        write!(f, "Index({:.6} = {:#x})", self.0 as f64 / 2f64.powi(64), self.0)
    }
}

/// A number a hostile setting might hold, each kind as likely: zeros and ones,
/// small counts, sizes around 2³², the largest, and any `u64`; then a power of two
/// or one either side of it, where size arithmetic overflows or rounds.
pub fn hostile_u64(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..8) {
        0 => rng.random_range(0..4),
        1 => rng.random_range(4..100),
        2 => u64::from(u32::MAX),
        3 => 1 << 32,
        4 => u64::MAX,
        5 => u64::MAX / 2,
        6 => rng.random(),
        _ => {
            let power = 1u64 << rng.random_range(0..64);
            power.wrapping_add(pick(rng, &[u64::MAX, 0, 1]))
        }
    }
}
