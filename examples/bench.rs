//! The benchmark suite: the reference nets' layers, training steps, epochs and
//! inference, and the machine's GEMM peak, on the shipped MNIST.
//!
//! ```text
//! cargo run --release --example bench                       # everything, 2 threads
//! cargo run --release --example bench -- --quick            # a smoke run (seconds)
//! cargo run --release --example bench -- --only conv2d_fwdbwd,gemm --json /tmp/ours.json
//! cargo run --release --example bench -- --threads 1 --only latency   # one image per call
//! ```
//!
//! Times are medians of repetitions after a warm-up (epochs: one run). Workloads
//! mirror `bench/torch_reference.py` so the figures can be compared as ratios;
//! `benches/side_by_side.sh` runs both and prints them. Run nothing else heavy at the
//! same time: on a 2-core machine a parallel build halves every figure.
//!
//! The peak resident memory printed at the end is the whole process's: it covers
//! every workload that ran. For a per-net figure comparable with PyTorch's (one
//! process per net), run one net per process, e.g. `--only epoch_r1,infer_r1`.

use std::borrow::Cow;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use ferrocnn::data::{read_csv, Dataset, Mnist};
use ferrocnn::gradcheck::random_like;
use ferrocnn::metrics::peak_resident_mib;
use ferrocnn::nn::{Mode, Module, Sequential};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::train::{fit, health, predict, train_step, FitOptions, Progress};
use ferrocnn::{zoo, Conv2dOptions, Padding, Param, Tape, Tensor};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

mod common;
use common::args::{comma_list, number, unexpected, CommandLine, Long};

/// Training images per epoch in `--quick` mode.
const QUICK_EPOCH_IMAGES: usize = 6400;
/// Test images used for inference in `--quick` mode (full: all 10,000).
const QUICK_INFER_IMAGES: usize = 2000;
/// Inference batch size, as in the reference scripts.
const INFER_BATCH: usize = 1000;
/// Side of the square GEMM that measures the machine's peak.
const GEMM_SIZE: usize = 2048;

/// The command line; `HELP` says what each flag does.
struct Args {
    threads: usize,
    reps: Option<usize>,
    warmup: Option<usize>,
    quick: bool,
    skip_epochs: bool,
    only: Vec<String>,
    json: Option<PathBuf>,
    data: PathBuf,
}

const HELP: &str = concat!(
    "\
ferrocnn benchmark suite (layers, training steps, epochs, inference, GEMM peak)

Usage: bench [OPTIONS]

Options:
      --threads <THREADS>
          Rayon threads [default: 2]
      --reps <REPS>
          Timed repetitions of the micro-benchmarks and steps, after a warm-up
          [default: 20, 5 with --quick]
      --warmup <WARMUP>
          Untimed runs before the timed ones [default: 3, 2 with --quick; inference
          1]. `--warmup 0 --reps 1` runs each workload once: for counting its
          instructions under callgrind
      --quick
          A smoke run: few repetitions, epochs of 6400 images, inference on 2000, the
          scaling line on a training step instead of an epoch
      --skip-epochs
          Skip the training epochs (the longest workloads)
      --only <ONLY>
          Run only the workloads whose name contains one of these (comma-separated),
          e.g. `conv2d_fwdbwd,epoch_r1`
      --json <JSON>
          Also write every figure to this JSON file
      --data <DATA>
          MNIST-style folder of IDX files [default: ",
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/mnist]
"
);

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let mut args = Args {
            threads: 2,
            reps: None,
            warmup: None,
            quick: false,
            skip_epochs: false,
            only: Vec::new(),
            json: None,
            data: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/mnist")),
        };
        let mut cli = CommandLine::from_env("bench", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("threads") => args.threads = cli.value("--threads <THREADS>", number),
                Long("reps") => args.reps = Some(cli.value("--reps <REPS>", number)),
                Long("warmup") => args.warmup = Some(cli.value("--warmup <WARMUP>", number)),
                Long("quick") => args.quick = cli.flag("--quick"),
                Long("skip-epochs") => args.skip_epochs = cli.flag("--skip-epochs"),
                Long("only") => {
                    let names =
                        cli.repeatable_value("--only <ONLY>", |t| comma_list(t, |name| Ok(name.to_string())));
                    args.only.extend(names);
                }
                Long("json") => args.json = Some(cli.path("--json <JSON>")),
                Long("data") => args.data = cli.path("--data <DATA>"),
                arg => unexpected(arg),
            }
        }
        args
    }
}

/// One measured workload: a line of the table and an entry of the JSON.
struct Row {
    name: String,
    ms: f64,
    gflops: Option<f64>,
    /// Images processed per measured run (steps, epochs, inference).
    images: Option<usize>,
    /// Batch-1 latency rows: median and p90 of single calls, µs (`ms` is the median).
    latency_us: Option<Latency>,
}

/// Median and 90th percentile of many single calls, µs.
#[derive(Clone, Copy)]
struct Latency {
    median: f64,
    p90: f64,
}

impl Row {
    /// A whole-step row: `images` processed in `ms`, no FLOP count.
    fn images(name: String, ms: f64, images: usize) -> Row {
        Row {
            name,
            ms,
            gflops: None,
            images: Some(images),
            latency_us: None,
        }
    }

    /// A batch-1 latency row: one image per call.
    fn latency(name: String, latency: Latency) -> Row {
        Row {
            name,
            ms: latency.median / 1e3,
            gflops: None,
            images: Some(1),
            latency_us: Some(latency),
        }
    }

    fn images_per_s(&self) -> Option<f64> {
        self.images.map(|n| n as f64 / (self.ms / 1e3))
    }

    fn print(&self) {
        let opt = |v: Option<f64>, prec: usize| v.map_or(String::new(), |v| format!("{v:.prec$}"));
        let latency = self.latency_us.map_or(String::new(), |l| {
            format!("   median {:.1} µs  p90 {:.1} µs", l.median, l.p90)
        });
        println!(
            "{:<34} {:>11.2} {:>9} {:>11}{latency}",
            self.name,
            self.ms,
            opt(self.gflops, 1),
            opt(self.images_per_s(), 0)
        );
    }

    fn to_json(&self) -> Value {
        json!({
            "ms": self.ms,
            "gflops": self.gflops,
            "images": self.images,
            "images_per_s": self.images_per_s(),
            "median_us": self.latency_us.map(|l| l.median),
            "p90_us": self.latency_us.map(|l| l.p90),
        })
    }
}

/// Repetition counts of one timing.
#[derive(Clone, Copy)]
struct Reps {
    warmup: usize,
    timed: usize,
}

/// The suite's settings and the rows measured so far.
struct Bench {
    only: Vec<String>,
    quick: bool,
    skip_epochs: bool,
    threads: usize,
    reps: Reps,
    /// Inference's: as the reference scripts (1 warm-up, 3 timed) unless given.
    infer_reps: Reps,
    rows: Vec<Row>,
}

impl Bench {
    fn new(args: &Args) -> Self {
        let timed = args.reps.unwrap_or(if args.quick { 5 } else { 20 });
        Bench {
            only: args.only.clone(),
            quick: args.quick,
            skip_epochs: args.skip_epochs,
            threads: args.threads,
            reps: Reps {
                warmup: args.warmup.unwrap_or(if args.quick { 2 } else { 3 }),
                timed: timed.max(1),
            },
            infer_reps: Reps {
                warmup: args.warmup.unwrap_or(1),
                timed: args.reps.unwrap_or(3).max(1),
            },
            rows: Vec::new(),
        }
    }

    fn wants(&self, name: &str) -> bool {
        let epoch_skipped = self.skip_epochs && name.starts_with("epoch_");
        !epoch_skipped && (self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str())))
    }

    fn record(&mut self, row: Row) {
        row.print();
        self.rows.push(row);
    }

    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Times `run` (after `setup`, untimed) with the suite's repetitions and records
    /// it, if the filter wants `name`.
    fn time<S>(
        &mut self,
        name: &str,
        flops: Option<f64>,
        images: Option<usize>,
        setup: impl FnMut() -> S,
        run: impl FnMut(S),
    ) {
        if !self.wants(name) {
            return;
        }
        let ms = median_ms(self.reps, setup, run);
        let gflops = flops.map(|f| f / ms / 1e6);
        self.record(Row {
            name: name.to_string(),
            ms,
            gflops,
            images,
            latency_us: None,
        });
    }
}

/// Median wall time of `run` in ms over `reps.timed` runs, after `reps.warmup`
/// untimed ones; `setup` prepares each run's input outside the timing.
fn median_ms<S>(reps: Reps, mut setup: impl FnMut() -> S, mut run: impl FnMut(S)) -> f64 {
    let mut times = Vec::with_capacity(reps.timed);
    for rep in 0..reps.warmup + reps.timed {
        let input = setup();
        let start = Instant::now();
        run(input);
        if rep >= reps.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `a × b × c × d` as it appears in workload names.
fn shape_name(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

/// A trainable tensor of uniform values in `[-scale, scale)`. Inputs are trainable
/// too, so that backward computes their gradient, as in a layer inside a net (and as
/// PyTorch's reference, whose input has `requires_grad=True`).
fn random_param(shape: &[usize], seed: u64, scale: f32) -> Param {
    Param::new(random_like(shape, seed).mapv(|v| v * scale))
}

// ---------------------------------------------------------------- layers

/// conv2d 3×3 (valid, stride 1) forward, and forward + backward, on `[n, c, h, w]`
/// into `out` channels. FLOPs as PyTorch counts them: forward 2·C·O·kh·kw·OH·OW·N,
/// backward (dx and dW) twice that.
///
/// The backward pass starts from `sum()`, whose gradient is all ones: the same
/// upstream gradient as the reference's `y.backward(ones_like(y))`. A random upstream
/// gradient (`(y * r).sum()`) would time an extra elementwise product and its
/// backward, which the reference does not do; the conv's work is the same either way.
fn conv2d(bench: &mut Bench, [n, c, h, w]: [usize; 4], out: usize) {
    let k = 3;
    let (oh, ow) = (h - k + 1, w - k + 1);
    let forward_flops = 2.0 * (c * out * k * k * oh * ow * n) as f64;
    let x = random_param(&[n, c, h, w], 1, 1.0);
    let weight = random_param(&[out, c, k, k], 2, 0.1);
    let bias = random_param(&[out], 3, 1.0);
    let conv = |tape: &Tape| {
        tape.param(&x).conv2d(
            &tape.param(&weight),
            Some(&tape.param(&bias)),
            &Conv2dOptions::default(),
        )
    };
    let shape = format!("{}_o{out}", shape_name(&[n, c, h, w]));
    // Forward on a tape, as in training: what fwd+bwd splits into.
    bench.time(
        &format!("conv2d_fwd_{shape}"),
        Some(forward_flops),
        None,
        Tape::new,
        |tape| {
            drop(conv(&tape));
        },
    );
    bench.time(
        &format!("conv2d_fwdbwd_{shape}"),
        Some(3.0 * forward_flops),
        None,
        Tape::new,
        |tape| {
            let grads = conv(&tape).sum().backward();
            assert_eq!(grads.len(), 3, "dx, dW and db");
        },
    );
}

/// max_pool2d 2×2 (stride 2) forward + backward on `shape`. Memory-bound: no FLOPs.
fn max_pool(bench: &mut Bench, shape: [usize; 4]) {
    let x = random_param(&shape, 4, 1.0);
    bench.time(
        &format!("maxpool_fwdbwd_{}", shape_name(&shape)),
        None,
        None,
        Tape::new,
        |tape| {
            let y = tape.param(&x).max_pool2d((2, 2), (2, 2), Padding::Valid);
            let grads = y.sum().backward();
            assert_eq!(grads.len(), 1);
        },
    );
}

/// Linear `[n, inputs] → [n, outputs]` forward + backward (dx, dW, db): 3 × 2·n·i·o FLOPs.
fn linear(bench: &mut Bench, n: usize, inputs: usize, outputs: usize) {
    let x = random_param(&[n, inputs], 5, 1.0);
    let weight = random_param(&[outputs, inputs], 6, 0.05);
    let bias = random_param(&[outputs], 7, 1.0);
    let flops = 3.0 * 2.0 * (n * inputs * outputs) as f64;
    let name = format!("linear_fwdbwd_{n}x{inputs}_o{outputs}");
    bench.time(&name, Some(flops), None, Tape::new, |tape| {
        let y = tape
            .param(&x)
            .linear(&tape.param(&weight), Some(&tape.param(&bias)));
        let grads = y.sum().backward();
        assert_eq!(grads.len(), 3);
    });
}

// ---------------------------------------------------------------- GEMM peak

/// The machine's f32 GEMM peak on a 2048³ product, measured two ways with
/// ferrocnn's own kernels: `ops::gemm::gemm` (split over rayon, what Linear uses),
/// and single-threaded `gemm_serial` calls, as the conv makes them (the row's name,
/// `gemm_crate_…`, is kept from when the conv called the `gemm` crate, so that
/// figures stay comparable by name).
///
/// The conv calls `gemm_serial` from one rayon task per block of images; so that
/// peak is measured the same way: C cut into one row block per thread, each block
/// a single-threaded call.
fn gemm_peak(bench: &mut Bench) {
    let flops = 2.0 * (GEMM_SIZE as f64).powi(3);
    let a = Array2::from_shape_fn((GEMM_SIZE, GEMM_SIZE), |(i, j)| {
        ((i * 7 + j * 3) % 13) as f32 * 0.1
    });
    let b = Array2::from_shape_fn((GEMM_SIZE, GEMM_SIZE), |(i, j)| {
        ((i * 5 + j * 11) % 17) as f32 * 0.1
    });
    let mut c = Array2::<f32>::zeros((GEMM_SIZE, GEMM_SIZE));
    // A 2048³ product takes ~50 ms at the peak: a few repetitions suffice.
    let saved = bench.reps;
    bench.reps = Reps {
        warmup: 1,
        timed: saved.timed.min(5),
    };
    let name = format!("gemm_ferrocnn_{GEMM_SIZE}");
    bench.time(
        &name,
        Some(flops),
        None,
        || (),
        |()| {
            ferrocnn::ops::gemm::gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
        },
    );
    let (name, threads) = (format!("gemm_crate_{GEMM_SIZE}"), bench.threads);
    bench.time(
        &name,
        Some(flops),
        None,
        || (),
        |()| {
            gemm_crate_by_row_blocks(a.view(), b.view(), c.view_mut(), threads);
        },
    );
    bench.reps = saved;
}

/// `c ← a·b` with `gemm_serial`, one single-threaded call per row block of `c`,
/// the blocks run on rayon's threads.
fn gemm_crate_by_row_blocks(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    blocks: usize,
) {
    let rows = c.nrows().div_ceil(blocks.max(1));
    let a_blocks: Vec<_> = a.axis_chunks_iter(Axis(0), rows).collect();
    let c_blocks: Vec<_> = c.axis_chunks_iter_mut(Axis(0), rows).collect();
    c_blocks
        .into_par_iter()
        .zip(a_blocks)
        .for_each(|(c, a)| gemm_crate_single(a, b, c));
}

/// `c ← a·b` with `gemm_serial` on the calling thread, as conv2d calls it.
fn gemm_crate_single(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    ferrocnn::ops::gemm::gemm_serial(1.0, &a, &b, 0.0, &mut c);
}

// ---------------------------------------------------------------- nets

/// The row of reading Kaggle's digit-recognizer `train.csv` layout.
const CSV_READ: &str = "csv_read_42000";
/// Rows of Kaggle's `train.csv`.
const CSV_ROWS: usize = 42_000;

/// Median ms of `read_csv` on a file of Kaggle's `train.csv` shape (42,000 rows of
/// `label,pixel0,…,pixel783` with a header), written from the MNIST training images.
fn csv_read_ms(train: &Dataset, reps: Reps) -> Result<f64, Box<dyn Error>> {
    use std::fmt::Write as _;
    let mut text = String::from("label");
    (0..784).for_each(|i| {
        let _ = write!(text, ",pixel{i}");
    });
    text.push('\n');
    for i in 0..CSV_ROWS.min(train.len()) {
        let _ = write!(text, "{}", train.label(i));
        for p in train.image(i) {
            let _ = write!(text, ",{p}");
        }
        text.push('\n');
    }
    let path = std::env::temp_dir().join(format!("ferrocnn_bench_{}.csv", std::process::id()));
    std::fs::write(&path, text)?;
    let ms = median_ms(
        reps,
        || (),
        |()| {
            let csv = read_csv(&path).expect("the file just written");
            assert_eq!(csv.rows, CSV_ROWS.min(train.len()));
        },
    );
    std::fs::remove_file(&path)?;
    Ok(ms)
}

/// The row of an R1 training step with anomaly detection on.
const ANOMALY_STEP_R1: &str = "anomaly_r1_step";

/// The reference nets of DESIGN.md, with their batch sizes.
#[derive(Clone, Copy)]
enum Net {
    R1,
    R2,
    R3,
}

impl Net {
    fn name(self) -> &'static str {
        match self {
            Net::R1 => "r1",
            Net::R2 => "r2",
            Net::R3 => "r3",
        }
    }

    fn batch_size(self) -> usize {
        match self {
            Net::R1 => 128,
            Net::R2 => 64,
            Net::R3 => 128,
        }
    }

    fn build(self, data: &Dataset) -> Sequential {
        let (input, classes) = (data.image_shape(), data.num_classes());
        match self {
            Net::R1 => zoo::r1(input, classes, 0),
            Net::R2 => zoo::r2(input, classes, 0),
            Net::R3 => zoo::r3(input, classes, 0),
        }
    }

    fn step_name(self) -> String {
        format!("step_{}_b{}", self.name(), self.batch_size())
    }

    /// The row of the numerical checks of one training step.
    fn checks_name(self) -> String {
        format!("checks_{}", self.name())
    }

    fn epoch_name(self) -> String {
        format!("epoch_{}_b{}", self.name(), self.batch_size())
    }

    fn infer_name(self) -> String {
        format!("infer_{}_b{INFER_BATCH}", self.name())
    }
}

fn adam() -> Adam {
    Adam::new(AdamConfig {
        lr: 1e-3,
        ..AdamConfig::default()
    })
}

/// Median ms of one training step (forward, cross-entropy, backward, Adam, and the
/// numerical checks) on the first batch of `train`, repeated on the same model;
/// with anomaly detection on every step if `detect_anomaly`.
fn step_ms(net: Net, train: &Dataset, reps: Reps, detect_anomaly: bool) -> f64 {
    let mut model = net.build(train);
    let mut optimizer = adam();
    let indices: Vec<usize> = (0..net.batch_size()).collect();
    let batch = train.batch(&indices);
    let opts = FitOptions {
        detect_anomaly,
        ..FitOptions::default()
    };
    median_ms(
        reps,
        || batch.x.clone(),
        |x| {
            if let Err(fault) = train_step(&mut model, &mut optimizer, x, &batch.y, &opts) {
                panic!("{}: {fault}", net.step_name());
            }
        },
    )
}

/// Median ms of the checks `train_step` runs on every step besides the loss's (the
/// input batch, every gradient, every weight), on the gradients of one step.
fn checks_ms(net: Net, train: &Dataset, reps: Reps) -> f64 {
    let mut model = net.build(train);
    let indices: Vec<usize> = (0..net.batch_size()).collect();
    let batch = train.batch(&indices);
    let x = batch.x.into_dyn();
    let tape = Tape::new();
    let logits = model.forward(&tape.input(x.clone()), Mode::Train);
    let grads = logits.cross_entropy(&batch.y).backward();
    assert_eq!(grads.len(), model.parameters().len());
    median_ms(
        reps,
        || (),
        |()| {
            let checked = health::check_input(&x)
                .and_then(|()| health::check_gradients(&model, &grads))
                .and_then(|()| health::check_parameters(&model));
            assert!(checked.is_ok(), "{checked:?}");
        },
    )
}

/// Wall time in ms of one epoch of `fit` (training loop only, no evaluation) over
/// `train`, from a fresh model, Adam 1e-3.
fn epoch_ms(net: Net, train: &Dataset) -> f64 {
    let mut model = net.build(train);
    let mut optimizer = adam();
    let opts = FitOptions {
        epochs: 1,
        batch_size: net.batch_size(),
        progress: Progress::Silent,
        ..FitOptions::default()
    };
    let stats = fit(&mut model, &mut optimizer, train, None, &opts, |_, _, _| Ok(())).expect("training runs");
    stats[0].seconds * 1e3
}

/// Median ms of one pass of eval-mode inference (`predict`: no tape, in slices)
/// over `batches`, after a warm-up pass: the same protocol as the reference scripts
/// (median of 3), unless `reps` says otherwise.
fn infer_ms(net: Net, data: &Dataset, batches: &[Tensor], reps: Reps) -> f64 {
    let mut model = net.build(data);
    median_ms(
        reps,
        || (),
        |()| {
            for x in batches {
                drop(predict(&mut model, x.value().view()));
            }
        },
    )
}

/// The training images an epoch runs on: all of them (borrowed: a copy would add
/// 47 MB to the peak memory compared with the reference), or the first 6400 in `--quick`.
fn epoch_data<'a>(bench: &Bench, mnist: &'a Mnist) -> Cow<'a, Dataset> {
    if bench.quick {
        Cow::Owned(mnist.train.take(QUICK_EPOCH_IMAGES))
    } else {
        Cow::Borrowed(&mnist.train)
    }
}

/// The test images as inference batches of 1000 (2000 images in `--quick`), built
/// once outside the timing (the reference scripts slice tensors already in memory).
fn infer_batches(bench: &Bench, mnist: &Mnist) -> Vec<Tensor> {
    let n = if bench.quick {
        QUICK_INFER_IMAGES.min(mnist.test.len())
    } else {
        mnist.test.len()
    };
    (0..n)
        .step_by(INFER_BATCH)
        .map(|start| {
            Tensor::new(
                mnist
                    .test
                    .to_array(start..(start + INFER_BATCH).min(n))
                    .into_dyn(),
            )
        })
        .collect()
}

/// Training step, epoch and inference of one net.
fn net_workloads(bench: &mut Bench, net: Net, mnist: &Mnist, train: &Dataset, batches: &[Tensor]) {
    if bench.wants(&net.step_name()) {
        let ms = step_ms(net, &mnist.train, bench.reps, false);
        bench.record(Row::images(net.step_name(), ms, net.batch_size()));
    }
    // What the per-step numerical checks cost, apart from the step.
    if bench.wants(&net.checks_name()) {
        let ms = checks_ms(net, &mnist.train, bench.reps);
        bench.record(Row::images(net.checks_name(), ms, net.batch_size()));
    }
    // What anomaly detection costs (opt-in, so R1 only; not matched by `--only step_r1`).
    let anomaly = ANOMALY_STEP_R1;
    if matches!(net, Net::R1) && bench.wants(anomaly) {
        let ms = step_ms(net, &mnist.train, bench.reps, true);
        bench.record(Row::images(anomaly.to_string(), ms, net.batch_size()));
    }
    if bench.wants(&net.epoch_name()) {
        let ms = epoch_ms(net, train);
        bench.record(Row::images(net.epoch_name(), ms, train.len()));
    }
    if bench.wants(&net.infer_name()) {
        let ms = infer_ms(net, &mnist.test, batches, bench.infer_reps);
        let images = batches.iter().map(|b| b.shape()[0]).sum();
        bench.record(Row::images(net.infer_name(), ms, images));
    }
}

/// One thread against `--threads`: the R1 epoch, or with `--quick` or
/// `--skip-epochs` the R1 training step. The many-thread figure is reused from the table when it was measured.
/// Rayon's global pool is built once, so the one-thread run gets a pool of its own.
fn scaling(bench: &mut Bench, mnist: &Mnist, train: &Dataset) -> Result<Option<Value>, Box<dyn Error>> {
    let name = "scaling_r1_1thread";
    if !bench.wants(name) {
        return Ok(None);
    }
    let net = Net::R1;
    let reps = bench.reps;
    let on_step = bench.quick || bench.skip_epochs;
    let (workload, images) = if on_step {
        (net.step_name(), net.batch_size())
    } else {
        (net.epoch_name(), train.len())
    };
    let measure = || {
        if on_step {
            step_ms(net, &mnist.train, reps, false)
        } else {
            epoch_ms(net, train)
        }
    };
    let many = match bench.row(&workload) {
        Some(row) => row.ms,
        None => measure(),
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()?
        .install(measure);
    bench.record(Row::images(name.to_string(), one, images));
    println!(
        "scaling: {workload} {one:.1} ms on 1 thread, {many:.1} ms on {} threads: speedup {:.2}x",
        bench.threads,
        one / many
    );
    Ok(Some(json!({
        "workload": workload,
        "threads": bench.threads,
        "ms_1_thread": one,
        "ms_n_threads": many,
        "speedup": one / many,
    })))
}

/// Whether any workload that needs MNIST is wanted (loading it takes a moment).
fn wants_data(bench: &Bench) -> bool {
    let nets = [Net::R1, Net::R2, Net::R3];
    let names = nets
        .iter()
        .flat_map(|n| [n.step_name(), n.epoch_name(), n.infer_name(), n.checks_name()])
        .chain([
            "scaling_r1_1thread".to_string(),
            ANOMALY_STEP_R1.to_string(),
            CSV_READ.to_string(),
        ]);
    names.into_iter().any(|n| bench.wants(&n))
}

// ---------------------------------------------------------------- batch-1 latency

/// Untimed and timed single-image calls of a latency row, as `latency_reference.py`.
const LATENCY_WARMUP: usize = 200;
const LATENCY_CALLS: usize = 2000;

/// The nets whose one-image latency is measured: the default net of the `mnist`
/// example, and R1, R2, R3, as in `bench/latency_reference.py`.
const LATENCY_NETS: [&str; 4] = ["default", "r1", "r2", "r3"];

/// Batch-1 inference latency of each net on 28×28 gray images and 10 classes: one
/// fixed image (`(i % 7) / 7` for pixel `i`, as the reference script's), run as
/// `train::predict` runs one image (evaluation mode, recording nothing), 200 untimed
/// calls, then the median and p90 of 2000 timed ones.
fn latency_workloads(bench: &mut Bench) {
    let x = ndarray::Array::from_shape_fn((1, 1, 28, 28), |(_, _, i, j)| ((i * 28 + j) % 7) as f32 / 7.0)
        .into_dyn();
    for net in LATENCY_NETS {
        let name = format!("latency_{net}");
        if !bench.wants(&name) {
            continue;
        }
        let mut model = match net {
            "default" => zoo::mnist_default((1, 28, 28), 10, 0),
            "r1" => zoo::r1((1, 28, 28), 10, 0),
            "r2" => zoo::r2((1, 28, 28), 10, 0),
            _ => zoo::r3((1, 28, 28), 10, 0),
        };
        let mut call = || drop(predict(&mut model, x.view()));
        for _ in 0..LATENCY_WARMUP {
            call();
        }
        let mut us: Vec<f64> = (0..LATENCY_CALLS)
            .map(|_| {
                let start = Instant::now();
                call();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        us.sort_by(f64::total_cmp);
        let latency = Latency {
            median: us[LATENCY_CALLS / 2],
            p90: us[LATENCY_CALLS * 9 / 10],
        };
        bench.record(Row::latency(name, latency));
    }
}

// ---------------------------------------------------------------- suite

/// The reference nets' conv layers: R1 (batch 128) and R2 (batch 64), 3×3.
const CONV_CASES: [([usize; 4], usize); 4] = [
    ([128, 1, 28, 28], 32),
    ([128, 32, 13, 13], 64),
    ([64, 1, 28, 28], 32),
    ([64, 32, 26, 26], 64),
];

/// The conv whose fwd+bwd is compared with the GEMM peak (R2's second conv).
const PEAK_CONV: &str = "conv2d_fwdbwd_64x32x26x26_o64";

fn layer_workloads(bench: &mut Bench) {
    for (shape, out) in CONV_CASES {
        conv2d(bench, shape, out);
    }
    max_pool(bench, [128, 32, 26, 26]);
    max_pool(bench, [64, 64, 24, 24]);
    linear(bench, 128, 1600, 10);
    linear(bench, 64, 9216, 128);
    linear(bench, 64, 128, 10);
}

/// The conv fwd+bwd rows in the format of `torch_reference.py --conv`'s `"conv"` list.
fn conv_json(bench: &Bench) -> Vec<Value> {
    CONV_CASES
        .iter()
        .filter_map(|&(shape, out)| {
            let row = bench.row(&format!("conv2d_fwdbwd_{}_o{out}", shape_name(&shape)))?;
            Some(json!({
                "shape": shape,
                "out_channels": out,
                "kernel": 3,
                "fwd_bwd_ms": row.ms,
                "gflops": row.gflops,
            }))
        })
        .collect()
}

/// R2's conv fwd+bwd as a percentage of the single-threaded-calls peak (`gemm_crate_…`;
/// the issue's target: ≥ 50%).
fn conv_share_of_peak(bench: &Bench) -> Option<f64> {
    let conv = bench.row(PEAK_CONV)?.gflops?;
    let peak = bench.row(&format!("gemm_crate_{GEMM_SIZE}"))?.gflops?;
    Some(100.0 * conv / peak)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    // As `fit` does: keep freed buffers for reuse instead of returning them to the OS
    // and page-faulting them back in on every step.
    ferrocnn::runtime::tune_for_training();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let mut bench = Bench::new(&args);
    println!(
        "ferrocnn bench: {} threads, median of {} runs after {} warm-up{}",
        args.threads,
        bench.reps.timed,
        bench.reps.warmup,
        if args.quick { " (quick)" } else { "" }
    );
    println!(
        "{:<34} {:>11} {:>9} {:>11}",
        "workload", "ms", "GFLOP/s", "images/s"
    );

    layer_workloads(&mut bench);
    gemm_peak(&mut bench);
    latency_workloads(&mut bench);
    let mut scaling_json = None;
    if wants_data(&bench) {
        let mnist = Mnist::load(&args.data)?;
        let train = epoch_data(&bench, &mnist);
        let batches = infer_batches(&bench, &mnist);
        for net in [Net::R1, Net::R2, Net::R3] {
            net_workloads(&mut bench, net, &mnist, &train, &batches);
        }
        scaling_json = scaling(&mut bench, &mnist, &train)?;
        if bench.wants(CSV_READ) {
            let ms = csv_read_ms(&mnist.train, bench.reps)?;
            bench.record(Row::images(CSV_READ.to_string(), ms, CSV_ROWS));
        }
    }

    let peak_share = conv_share_of_peak(&bench);
    if let Some(pct) = peak_share {
        println!("{PEAK_CONV}: {pct:.1}% of the serial-call {GEMM_SIZE}³ peak (target ≥ 50%)");
    }
    let peak_rss = peak_resident_mib();
    if let Some(mib) = peak_rss {
        println!("peak resident memory: {mib:.0} MiB (whole process)");
    }
    if let Some(path) = &args.json {
        let results: Map<String, Value> = bench.rows.iter().map(|r| (r.name.clone(), r.to_json())).collect();
        let report = json!({
            "framework": format!("ferrocnn {}", env!("CARGO_PKG_VERSION")),
            "threads": args.threads,
            "quick": args.quick,
            "reps": bench.reps.timed,
            "results": results,
            "conv": conv_json(&bench),
            "gemm_peak_gflops": bench.row(&format!("gemm_crate_{GEMM_SIZE}")).and_then(|r| r.gflops),
            "conv_r2_fwd_bwd_pct_of_peak": peak_share,
            "scaling": scaling_json,
            "peak_rss_mib": peak_rss,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
