//! The training loop: [`fit`] runs epochs of [`train_step`]s with progress bars
//! and per-epoch lines, and stops on the first failed check of `health`.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::health::{self, Fault, LossWatch};
use super::predict::{check_fits, evaluate_checked};
use super::{EpochStats, FitOptions, Progress, StepStats, TrainError};
use crate::data::{Dataset, Order};
use crate::nn::{Mode, Module};
use crate::ops::argmax_rows;
use crate::optim::Optimizer;
use crate::param::ParamId;
use crate::profile::Phase;
use crate::tape::{Gradients, Tape};
use crate::tensor::Tensor;

/// One optimizer step on a batch `x` with labels `y`: returns the loss and the
/// number of correct predictions, or the [`Fault`] of a failed numerical check
/// (see [`health`]). On a fault before the update (input, loss or gradients) the
/// parameters are left as they were.
pub fn train_step(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    x: ndarray::Array4<f32>,
    y: &[usize],
    opts: &FitOptions,
) -> Result<(f32, usize), Fault> {
    let x = x.into_dyn();
    health::check_input(&x)?;
    let (value, correct, mut grads) = forward_backward(model, x, y, opts)?;
    if let Some(max) = opts.clip_grad_norm {
        grads.clip_global_norm(max as f32);
    }
    let started = Instant::now();
    let mut params = model.parameters_mut();
    let finite = optimizer.step_checked(&mut params, &grads);
    // By id, not position: a model's own `parameters` might list them otherwise.
    let known_finite: Vec<ParamId> = params
        .iter()
        .zip(finite)
        .filter_map(|(p, finite)| finite.then_some(p.id()))
        .collect();
    if let Some(profiler) = &opts.profiler {
        profiler.record(started, "optimizer", Phase::Update);
    }
    health::check_parameters_except(&*model, &known_finite)?;
    Ok((value, correct))
}

/// The forward pass, loss and backward sweep of [`train_step`], with their checks:
/// the loss, the correct predictions and the gradients.
///
/// The tape lives only in here, so it is gone before the optimizer writes the
/// weights: it shares their values (ops keep a weight for their backward), and
/// `Param::value_mut` on a shared value copies it first — on R2 that was a 4.7 MB
/// copy of `fc1`'s weight and a fresh buffer for it on every step.
fn forward_backward(
    model: &mut dyn Module,
    x: ndarray::ArrayD<f32>,
    y: &[usize],
    opts: &FitOptions,
) -> Result<(f32, usize, Gradients), Fault> {
    let tape = match (&opts.profiler, opts.detect_anomaly) {
        (profiler, true) => Tape::watching_anomalies(profiler.as_ref()),
        (Some(profiler), false) => Tape::with_profiler(profiler),
        (None, false) => Tape::new(),
    };
    let input = tape.input(x);
    let logits = model.forward(&input, Mode::Train);
    let correct = argmax_rows(logits.value())
        .iter()
        .zip(y)
        .filter(|(p, t)| p == t)
        .count();
    let step_loss = |model: &dyn Module, logits: &Tensor| {
        let loss = logits.cross_entropy_smoothed(y, opts.label_smoothing as f32);
        match model.regularization(logits) {
            Some(penalty) => &loss + &penalty,
            None => loss,
        }
    };
    let loss = step_loss(&*model, &logits);
    let value = loss.item();
    let checked = if value.is_finite() {
        let grads = loss.backward();
        health::check_gradients(&*model, &grads).map(|()| grads)
    } else {
        Err(Fault::Loss { value, origin: None })
    };
    let grads = match checked {
        Ok(grads) => grads,
        Err(fault) => {
            // Where did it start? The anomaly-watching tape knows; otherwise the
            // step runs again, on a copy of the model, with one.
            let origin = match opts.detect_anomaly {
                true => health::origin(&*model, &tape),
                false => health::locate(&*model, &input.shared_value(), &step_loss),
            };
            return Err(fault.with_origin(origin));
        }
    };
    if opts.detect_anomaly
        && let Some(origin) = health::origin(&*model, &tape)
    {
        return Err(Fault::Anomaly { origin });
    }
    Ok((value, correct, grads))
}

/// Trains `model` on `train`, evaluating on `eval` after each epoch, and calls
/// `on_epoch` with each epoch's figures (to print, log or save a checkpoint; an
/// `Err` from it stops training).
pub fn fit(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    eval: Option<&Dataset>,
    opts: &FitOptions,
    mut on_epoch: impl FnMut(&EpochStats, &mut dyn Module, &dyn Optimizer) -> Result<(), String>,
) -> Result<Vec<EpochStats>, TrainError> {
    fit_dyn(model, optimizer, train, eval, opts, &mut on_epoch)
}

/// What `fit` calls after each epoch.
type OnEpoch<'a> = dyn FnMut(&EpochStats, &mut dyn Module, &dyn Optimizer) -> Result<(), String> + 'a;

/// `fit` for one callback type: each caller's closure would otherwise compile the
/// whole training loop again (14 copies in the test suite).
fn fit_dyn(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    eval: Option<&Dataset>,
    opts: &FitOptions,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Vec<EpochStats>, TrainError> {
    opts.validate()?;
    if train.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    let mut classes = 0;
    for data in std::iter::once(train).chain(eval) {
        classes = check_fits(model, data)?;
    }
    let mut watch = LossWatch::new(opts.explosion, classes);
    let batches_per_epoch = train.len().div_ceil(opts.batch_size);
    let mut history = Vec::new();
    for epoch in opts.start_epoch..=opts.epochs {
        let start = Instant::now();
        let (loss_sum, correct, seen) = in_pool(|| {
            run_epoch(
                model,
                optimizer,
                train,
                opts,
                &mut watch,
                epoch,
                batches_per_epoch,
            )
        })?;
        let seconds = start.elapsed().as_secs_f64();
        let eval_result = in_pool(|| eval.map(|d| evaluate_checked(model, d, opts.eval_batch_size, classes)));
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            eval: eval_result.as_ref().map(|e| (e.loss, e.accuracy)),
            seconds,
            images_per_sec: seen as f64 / seconds,
            lr: optimizer.lr(),
            confusion: eval_result.map(|e| e.confusion),
        };
        if opts.progress != Progress::Silent {
            println!("{}", epoch_line(&stats, opts.epochs));
        }
        on_epoch(&stats, model, optimizer).map_err(TrainError::Callback)?;
        history.push(stats);
    }
    Ok(history)
}

/// Runs `f` on a thread of rayon's pool and waits for it: on the caller's own
/// thread if it is one (a user's `ThreadPool::install`), else on the global pool's.
///
/// Why: an op splits its work with rayon. Called from outside the pool, each op's
/// work is handed to the pool and the caller sleeps until it is done, a wake-up per
/// op; from inside, the calling thread takes part (BENCHMARKS.md, session 16: R1's
/// and R2's epochs 2–6% faster, a quarter of the context switches). The steps'
/// allocations then come from a pool thread: under glibc, [`tune_malloc`] keeps them
/// on the main arena, whose freed blocks stay in the process (a thread's own arena
/// gave its heaps back, and R3's epoch took 26 times the page faults).
///
/// [`tune_malloc`]: crate::runtime::tune_malloc
fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// The training steps of one epoch (the rest of it, when resuming): the sums of the
/// loss, of the correct predictions and of the samples seen.
fn run_epoch(
    model: &mut dyn Module,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    opts: &FitOptions,
    watch: &mut LossWatch,
    epoch: usize,
    batches_per_epoch: usize,
) -> Result<(f64, usize, usize), TrainError> {
    let bar = progress_bar(opts.progress, batches_per_epoch, epoch, opts.epochs);
    let start = Instant::now();
    let resuming = epoch == opts.start_epoch && opts.start_batch > 0;
    let (mut loss_sum, mut correct, mut seen) = if resuming { opts.start_totals } else { (0.0, 0, 0) };
    let skip = if resuming { opts.start_batch } else { 0 };
    bar.inc(skip as u64);
    let order = Order::Shuffle(opts.seed.wrapping_add(epoch as u64));
    let batches = train.batches(opts.batch_size, order, opts.augment.as_ref());
    // The order and each sample's augmentation depend only on the seed, so after
    // skipping the batches already trained, the rest are exactly those an
    // uninterrupted run would see.
    for (b, batch) in batches.enumerate().skip(skip) {
        if let Some(schedule) = &opts.schedule {
            optimizer.set_lr(schedule.lr_at((epoch - 1) * batches_per_epoch + b));
        }
        let n = batch.len();
        let stepped = train_step(model, optimizer, batch.x, &batch.y, opts);
        let (loss, ok) = match stepped.and_then(|(loss, ok)| watch.observe(loss).map(|()| (loss, ok))) {
            Ok(step) => step,
            Err(fault) => {
                bar.abandon();
                let fault = match fault {
                    Fault::Input { sample, index, value } => Fault::Input {
                        sample: batch.indices[sample],
                        index,
                        value,
                    },
                    other => other,
                };
                return Err(TrainError::Numerical {
                    epoch,
                    batch: b + 1,
                    fault,
                });
            }
        };
        loss_sum += f64::from(loss) * n as f64;
        correct += ok;
        seen += n;
        let rate = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "loss {:.4}  acc {:.2}%  {:.0} img/s",
            loss_sum / seen as f64,
            100.0 * correct as f64 / seen as f64,
            rate
        ));
        bar.inc(1);
        if let Some(hook) = &opts.on_step {
            let step = StepStats {
                epoch,
                batch: b + 1,
                batches_per_epoch,
                loss,
                accuracy: ok as f64 / n.max(1) as f64,
                lr: optimizer.lr(),
            };
            hook.call(&step, &*model);
        }
        if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) && b + 1 < batches_per_epoch {
            bar.abandon();
            return Err(TrainError::Interrupted {
                epoch,
                batches_done: b + 1,
                totals: (loss_sum, correct, seen),
            });
        }
    }
    bar.finish_and_clear();
    Ok((loss_sum, correct, seen))
}

/// One line per epoch: what Keras prints at the end of an epoch.
pub fn epoch_line(s: &EpochStats, epochs: usize) -> String {
    let mut line = format!(
        "epoch {}/{}: loss {:.4}  train acc {:.2}%",
        s.epoch,
        epochs,
        s.train_loss,
        100.0 * s.train_accuracy
    );
    if let Some((loss, acc)) = s.eval {
        line += &format!("  test loss {loss:.4}  test acc {:.2}%", 100.0 * acc);
    }
    line + &format!("  {:.1} s  {:.0} img/s", s.seconds, s.images_per_sec)
}

fn progress_bar(progress: Progress, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if progress != Progress::Auto || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let style =
        ProgressStyle::with_template("epoch {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} (ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{fit, train_step};
    use crate::data::Dataset;
    use crate::nn::{Flatten, Linear, Module, Sequential};
    use crate::optim::{Optimizer, SGDConfig, SGD};
    use crate::train::{FitOptions, Progress, StepHook};

    #[test]
    fn the_step_hook_sees_every_step_and_the_updated_weights() {
        // 10 images of 2×2 in two classes, batches of 4: 3 steps an epoch.
        let pixels: Vec<u8> = (0..40).map(|i| if (i / 4) % 2 == 0 { 200 } else { 10 }).collect();
        let labels: Vec<usize> = (0..10).map(|i| i % 2).collect();
        let data = Dataset::from_raw(pixels, labels, 1, 2, 2).unwrap();
        let rng = &mut rand::SeedableRng::seed_from_u64(0);
        let mut model = Sequential::new().add(Flatten).add(Linear::new(4, 2, rng));
        let initial = model.parameters()[0].value().clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let options = FitOptions {
            epochs: 2,
            batch_size: 4,
            progress: Progress::Silent,
            on_step: Some(StepHook::new(move |step, model: &dyn Module| {
                let weight = model.parameters()[0].value().clone();
                sink.lock().unwrap().push((
                    step.epoch,
                    step.batch,
                    step.batches_per_epoch,
                    step.loss,
                    weight,
                ));
            })),
            ..Default::default()
        };
        let mut sgd = SGD::new(SGDConfig {
            lr: 0.1,
            ..Default::default()
        });
        let history = fit(
            &mut model,
            &mut sgd as &mut dyn Optimizer,
            &data,
            None,
            &options,
            |_, _, _| Ok(()),
        )
        .unwrap();
        let seen = seen.lock().unwrap();
        let steps: Vec<(usize, usize, usize)> = seen.iter().map(|s| (s.0, s.1, s.2)).collect();
        assert_eq!(
            steps,
            [(1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3)]
        );
        assert!(seen.iter().all(|s| s.3.is_finite()));
        assert_ne!(seen[0].4, initial, "the hook runs after the update");
        assert_eq!(&seen[5].4, model.parameters()[0].value());
        assert_eq!(history.len(), 2);
    }

    #[test]
    fn fit_trains_on_a_pool_thread_the_callers_own_if_it_is_one() {
        let pixels: Vec<u8> = (0..32).map(|i| (i * 8) as u8).collect();
        let data = Dataset::from_raw(pixels, vec![0, 1, 0, 1, 1, 0, 1, 0], 1, 2, 2).unwrap();
        let threads = Arc::new(Mutex::new(Vec::new()));
        let sink = threads.clone();
        let options = FitOptions {
            epochs: 2,
            batch_size: 4,
            progress: Progress::Silent,
            on_step: Some(StepHook::new(move |_, _| {
                sink.lock().unwrap().push(rayon::current_thread_index());
            })),
            ..Default::default()
        };
        let train = |options: &FitOptions| {
            let rng = &mut rand::SeedableRng::seed_from_u64(0);
            let mut model = Sequential::new().add(Flatten).add(Linear::new(4, 2, rng));
            let mut sgd = SGD::new(SGDConfig::default());
            let caller = rayon::current_thread_index();
            fit(&mut model, &mut sgd, &data, None, options, |_, _, _| {
                assert_eq!(rayon::current_thread_index(), caller, "the epoch's callback");
                Ok(())
            })
            .unwrap();
            caller
        };
        assert_eq!(rayon::current_thread_index(), None, "the test's own thread");
        train(&options);
        let seen = std::mem::take(&mut *threads.lock().unwrap());
        assert_eq!(seen.len(), 4);
        assert!(
            seen.iter().all(Option::is_some),
            "handed to the global pool: {seen:?}"
        );
        // Inside the caller's own pool, the steps stay on the caller's thread.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let caller = pool.install(|| train(&options));
        assert!(caller.is_some());
        assert_eq!(*threads.lock().unwrap(), vec![caller; 4]);
    }

    #[test]
    fn train_step_updates_the_weights_in_place() {
        // No tape may still share a weight when the optimizer writes it, or
        // `Param::value_mut` copies the weight into a new buffer first.
        let pixels: Vec<u8> = (0..16).map(|i| (i * 16) as u8).collect();
        let data = Dataset::from_raw(pixels, vec![0, 1, 0, 1], 1, 2, 2).unwrap();
        let rng = &mut rand::SeedableRng::seed_from_u64(0);
        let mut model = Sequential::new().add(Flatten).add(Linear::new(4, 2, rng));
        let mut sgd = SGD::new(SGDConfig {
            lr: 0.1,
            ..Default::default()
        });
        let batch = data.batch(&[0, 1, 2, 3]);
        let before: Vec<*const f32> = model.parameters().iter().map(|p| p.value().as_ptr()).collect();
        let initial = model.parameters()[0].value().clone();
        train_step(&mut model, &mut sgd, batch.x, &batch.y, &FitOptions::default()).unwrap();
        let after: Vec<*const f32> = model.parameters().iter().map(|p| p.value().as_ptr()).collect();
        assert_ne!(
            model.parameters()[0].value(),
            &initial,
            "the step changed the weight"
        );
        assert_eq!(before, after);
    }
}
