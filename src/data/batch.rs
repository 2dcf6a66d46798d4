//! Mini-batches: the bridge from `u8` images to the `f32` NCHW arrays a model eats.
//!
//! A batch is built by writing straight into a `Vec<f32>` from the images' byte slices
//! through a 256-entry normalisation table, then wrapping it with
//! `Array4::from_shape_vec`: no per-element ndarray indexing. Augmented samples go
//! through [`Augment::apply`] into the same buffer and are normalised in place.
//!
//! Determinism: the epoch order is a seeded shuffle, and each augmented sample gets its
//! own RNG seeded from the epoch seed and the sample's index, so a seed fixes every
//! batch bit for bit, independent of the batch size.

use ndarray::Array4;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{Augment, Dataset};

/// The order in which an epoch visits the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `0, 1, 2, …` (evaluation). Augmentation, if any, uses seed 0.
    Sequential,
    /// A random permutation fixed by the seed; pass a different seed each epoch (e.g.
    /// `base_seed + epoch`) for a fresh order and fresh augmentation.
    Shuffle(u64),
}

/// One mini-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalised images, `[n, channels, height, width]`.
    pub x: Array4<f32>,
    /// The class of each image.
    pub y: Vec<usize>,
    /// The dataset index of each image.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True for a batch with no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Iterator over one epoch's batches; made by [`Dataset::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    augment: Option<&'a Augment>,
    seed: u64,
}

impl<'a> Batches<'a> {
    pub(crate) fn new(
        dataset: &'a Dataset,
        batch_size: usize,
        order: Order,
        augment: Option<&'a Augment>,
    ) -> Batches<'a> {
        assert!(batch_size > 0, "Dataset::batches: batch_size must be > 0");
        let mut indices: Vec<usize> = (0..dataset.len()).collect();
        let seed = match order {
            Order::Sequential => 0,
            Order::Shuffle(seed) => {
                indices.shuffle(&mut StdRng::seed_from_u64(seed));
                seed
            }
        };
        Batches {
            dataset,
            order: indices,
            batch_size,
            next: 0,
            augment: augment.filter(|a| !a.is_identity()),
            seed,
        }
    }

    /// The whole epoch's order of dataset indices.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub(crate) fn build(dataset: &Dataset, indices: &[usize], augment: Option<&Augment>, seed: u64) -> Batch {
        let (c, h, w) = dataset.image_shape();
        let n = dataset.image_len();
        let norm = dataset.normalization();
        let tables: Vec<[f32; 256]> = (0..c).map(|ch| norm.table(ch)).collect();
        let plane = h * w;
        let mut x = vec![0.0f32; indices.len() * n];
        let mut y = Vec::with_capacity(indices.len());
        for (&i, out) in indices.iter().zip(x.chunks_exact_mut(n)) {
            let image = dataset.image(i);
            match augment {
                Some(aug) => {
                    let mut rng = StdRng::seed_from_u64(sample_seed(seed, i));
                    aug.apply(image, (c, h, w), &mut rng, out);
                    for (ch, out) in out.chunks_exact_mut(plane).enumerate() {
                        for v in out.iter_mut() {
                            *v = norm.apply(ch, *v);
                        }
                    }
                }
                None => {
                    for ((out, image), table) in out
                        .chunks_exact_mut(plane)
                        .zip(image.chunks_exact(plane))
                        .zip(&tables)
                    {
                        for (o, &p) in out.iter_mut().zip(image) {
                            *o = table[usize::from(p)];
                        }
                    }
                }
            }
            y.push(dataset.label(i));
        }
        let x = Array4::from_shape_vec((indices.len(), c, h, w), x)
            .expect("batch buffer holds n*c*h*w values by construction");
        Batch {
            x,
            y,
            indices: indices.to_vec(),
        }
    }
}

/// SplitMix64's finaliser: spreads (seed, index) into unrelated RNG seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sample_seed(seed: u64, index: usize) -> u64 {
    mix(seed ^ mix(index as u64))
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = Batches::build(self.dataset, &self.order[self.next..end], self.augment, self.seed);
        self.next = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}
