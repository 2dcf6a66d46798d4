//! Inference: [`predict`] runs a model on a batch in slices, [`evaluate`] scores
//! it on a dataset.

use std::sync::Mutex;

use ndarray::Axis;
use rayon::prelude::*;

use crate::data::{Dataset, Order};
use crate::metrics::ConfusionMatrix;
use crate::nn::{Mode, Module};
use crate::ops::argmax_rows;
use crate::tensor::Tensor;

use super::TrainError;

/// The result of [`evaluate`].
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// Predicted class of every sample, in dataset order.
    pub predictions: Vec<usize>,
    /// Counts of (true, predicted) pairs.
    pub confusion: ConfusionMatrix,
}

/// Images per slice in [`predict`]: a slice's activations stay in cache and their
/// memory is reused from slice to slice. A 1000-image batch's activations are tens
/// to hundreds of MB, which malloc maps fresh from the OS (and page-faults in) for
/// every layer; slices of 64 measured fastest on R1 and R2.
pub const PREDICT_SLICE: usize = 64;

/// The model's outputs for a batch `x` (`[N, …]`), in evaluation mode and recording
/// nothing, computed in slices of [`PREDICT_SLICE`] images and joined. In evaluation
/// each image's output depends on that image alone, so the result is the batch's.
///
/// With more than one slice and more than one thread in rayon's pool, the slices run
/// side by side, each through the whole network on one thread, on copies of `model`
/// made for the call ([`clone_module`](crate::nn::ModuleBase::clone_module): the
/// weights are shared, not copied). Why: run one layer at a time over the batch,
/// every layer splits its work across the threads and joins before the next, and
/// each thread's activations leave its cache between layers; a slice that stays on
/// one thread keeps its activations in that thread's cache from the first layer to
/// the last. The ops inside still split work when a thread is idle. `model` itself
/// runs some of the slices, so what it keeps between calls (such as a convolution's
/// transformed kernels) stays warm.
///
/// ```
/// use ferrocnn::nn::{Linear, Module};
/// use ferrocnn::train::predict;
/// use rand::SeedableRng;
///
/// let mut fc = Linear::new(4, 3, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let logits = predict(&mut fc, ndarray::Array2::<f32>::ones((200, 4)).view().into_dyn());
/// assert_eq!(logits.shape(), &[200, 3]);
/// ```
pub fn predict(model: &mut dyn Module, x: ndarray::ArrayViewD<f32>) -> ndarray::ArrayD<f32> {
    if x.ndim() == 0 || x.shape()[0] <= PREDICT_SLICE {
        return model.forward(&Tensor::new(x.to_owned()), Mode::Eval).into_value();
    }
    let slices = x.shape()[0].div_ceil(PREDICT_SLICE);
    let workers = rayon::current_num_threads().min(slices);
    let outputs: Vec<ndarray::ArrayD<f32>> = if workers > 1 {
        // A thread waiting inside an op may start another slice, so more may run at
        // once than there are threads: then another copy is made.
        let template = model.clone_module();
        let mut idle = vec![Worker::Given(model)];
        idle.extend((2..workers).map(|_| Worker::Copy(template.clone_module())));
        let template = Mutex::new(template);
        let idle = Mutex::new(idle);
        x.axis_chunks_iter(Axis(0), PREDICT_SLICE)
            .into_par_iter()
            .with_max_len(1)
            .map(|slice| {
                let free = idle.lock().expect("no panic holds the lock").pop();
                let mut worker = free.unwrap_or_else(|| {
                    Worker::Copy(template.lock().expect("no panic holds the lock").clone_module())
                });
                let out = worker
                    .model()
                    .forward(&Tensor::new(slice.to_owned()), Mode::Eval)
                    .into_value();
                idle.lock().expect("no panic holds the lock").push(worker);
                out
            })
            .collect()
    } else {
        x.axis_chunks_iter(Axis(0), PREDICT_SLICE)
            .map(|slice| {
                model
                    .forward(&Tensor::new(slice.to_owned()), Mode::Eval)
                    .into_value()
            })
            .collect()
    };
    let views: Vec<_> = outputs.iter().map(|y| y.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("slices share their shape")
}

/// A model that runs slices in [`predict`]: the caller's, or a copy of it.
enum Worker<'a> {
    Given(&'a mut dyn Module),
    Copy(Box<dyn Module>),
}

impl Worker<'_> {
    fn model(&mut self) -> &mut dyn Module {
        match self {
            Worker::Given(model) => &mut **model,
            Worker::Copy(model) => model.as_mut(),
        }
    }
}

/// Checks that `model` takes `data`'s images and has an output for each of its
/// classes; returns the width of its output.
pub fn check_fits(model: &dyn Module, data: &Dataset) -> Result<usize, TrainError> {
    let (c, h, w) = data.image_shape();
    let output = model.output_shape(&[c, h, w]).map_err(TrainError::Shape)?;
    let outputs = output.first().copied().unwrap_or(0);
    if output.len() != 1 || outputs < data.num_classes() {
        return Err(TrainError::ClassMismatch {
            outputs,
            classes: data.num_classes(),
        });
    }
    Ok(outputs)
}

/// Evaluates `model` on `data` in evaluation mode, recording nothing; an error if
/// the model does not fit the data ([`check_fits`]) or `batch_size` is 0.
pub fn evaluate(model: &mut dyn Module, data: &Dataset, batch_size: usize) -> Result<Evaluation, TrainError> {
    if batch_size == 0 {
        return Err(TrainError::Options(
            "the evaluation batch size must be at least 1".into(),
        ));
    }
    let classes = check_fits(model, data)?;
    Ok(evaluate_checked(model, data, batch_size, classes))
}

/// [`evaluate`] once [`check_fits`] has passed (giving `classes`) and the batch size
/// is known to be at least 1: `fit` checks both before its first epoch.
pub(super) fn evaluate_checked(
    model: &mut dyn Module,
    data: &Dataset,
    batch_size: usize,
    classes: usize,
) -> Evaluation {
    let mut confusion = ConfusionMatrix::new(classes);
    let mut predictions = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0f64;
    for batch in data.batches(batch_size, Order::Sequential, None) {
        let logits = Tensor::new(predict(model, batch.x.view().into_dyn()));
        loss_sum += f64::from(logits.cross_entropy(&batch.y).item()) * batch.y.len() as f64;
        let predicted = argmax_rows(logits.value());
        confusion.add(&batch.y, &predicted);
        predictions.extend(predicted);
    }
    Evaluation {
        loss: loss_sum / data.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        predictions,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_like;

    /// Slices side by side give what the same slices give one after another, bit for
    /// bit, on a net with residual blocks and batch norm (R3), on more threads than
    /// slices at a time.
    #[test]
    fn slices_side_by_side_match_the_slices_in_turn() {
        let mut model = crate::zoo::r3((1, 12, 12), 10, 3);
        // Running statistics that are not the initial ones, so that folding them matters.
        let tape = crate::Tape::new();
        let x = tape.input(random_like(&[16, 1, 12, 12], 5));
        model.forward(&x, Mode::Train);
        let x = random_like(&[2 * PREDICT_SLICE + 7, 1, 12, 12], 9);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a pool");
        let side_by_side = pool.install(|| predict(&mut model, x.view()));
        let one_by_one: Vec<_> = x
            .axis_chunks_iter(Axis(0), PREDICT_SLICE)
            .map(|slice| {
                pool.install(|| {
                    model
                        .forward(&Tensor::new(slice.to_owned()), Mode::Eval)
                        .into_value()
                })
            })
            .collect();
        let views: Vec<_> = one_by_one.iter().map(|y| y.view()).collect();
        assert_eq!(
            side_by_side,
            ndarray::concatenate(Axis(0), &views).expect("same shapes")
        );
        assert_eq!(side_by_side.shape(), &[2 * PREDICT_SLICE + 7, 10]);
    }
}
