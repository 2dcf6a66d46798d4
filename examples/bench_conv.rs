//! Micro-benchmark of conv2d forward + backward on the reference nets' second conv
//! layers (3×3, 32 → 64 channels, valid, stride 1), the same workload as
//! `bench/torch_reference.py --conv`:
//!
//! ```text
//! cargo run --release --example bench_conv
//! cargo run --release --example bench_conv -- --threads 1 --torch-ms 14.5,35.6
//! ```
//!
//! Fresh large buffers (outputs, gradients) cost page faults: with glibc's malloc
//! tuned to keep freed memory (both variables; either alone measured worse),
//! `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1000000000`, the two
//! shapes measured 6.8 ms and 14.2 ms instead of 9.5 ms and 20 ms (2 threads).
//!
//! Each repetition builds a tape, runs the conv on an input that wants a gradient
//! (so dx, dW and db are all computed, as in PyTorch's `y.backward(ones)`), then
//! the backward pass. Prints the median of the repetitions after a warm-up.

use std::time::Instant;

use ferrocnn::gradcheck::random_like;
use ferrocnn::{Conv2dOptions, Param, Tape};

mod common;
use common::args::{comma_list, number, unexpected, CommandLine, Long};

struct Args {
    threads: usize,
    reps: usize,
    torch_ms: Vec<f64>,
}

const HELP: &str = "\
conv2d forward+backward micro-benchmark (compare with PyTorch)

Usage: bench_conv [OPTIONS]

Options:
      --threads <THREADS>
          Rayon threads [default: 2]
      --reps <REPS>
          Timed repetitions (after the warm-up) [default: 20]
      --torch-ms <TORCH_MS>
          PyTorch's forward+backward times for the two shapes in ms, e.g. from a
          side-by-side run of bench/torch_reference.py --conv [default: 8.8,22.8]
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let mut args = Args {
            threads: 2,
            reps: 20,
            torch_ms: vec![8.8, 22.8],
        };
        let mut cli = CommandLine::from_env("bench_conv", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("threads") => args.threads = cli.value("--threads <THREADS>", number),
                Long("reps") => args.reps = cli.value("--reps <REPS>", number),
                Long("torch-ms") => {
                    args.torch_ms = cli.value("--torch-ms <TORCH_MS>", |t| comma_list(t, number))
                }
                arg => unexpected(arg),
            }
        }
        args
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let args = Args::parse();
    // Process-wide tuning, as a training binary would ask for: keep freed buffers
    // for reuse instead of returning them to the OS and page-faulting them back in
    // every step.
    ferrocnn::runtime::tune_for_training();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .expect("the global thread pool is built once");
    println!(
        "conv2d 3×3 fwd+bwd, {} threads, median of {} runs",
        args.threads, args.reps
    );

    let shapes = [[128, 32, 13, 13], [64, 32, 26, 26]];
    for (case, shape) in shapes.iter().enumerate() {
        let (o, k) = (64, 3);
        let mut x = Param::new(random_like(shape, 1));
        let w = Param::new(random_like(&[o, shape[1], k, k], 2).mapv(|v| v * 0.1));
        let b = Param::new(random_like(&[o], 3));
        x.set_frozen(false);
        let (oh, ow) = (shape[2] - k + 1, shape[3] - k + 1);
        // PyTorch's count: forward 2·C·O·9·OH·OW·N, backward twice that.
        let flops = 3.0 * 2.0 * (shape[1] * o * k * k * oh * ow * shape[0]) as f64;

        let (mut fwd, mut bwd, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..args.reps + 3 {
            let tape = Tape::new();
            let t0 = Instant::now();
            let y = tape
                .param(&x)
                .conv2d(&tape.param(&w), Some(&tape.param(&b)), &Conv2dOptions::default());
            let t1 = Instant::now();
            let grads = y.sum().backward();
            let t2 = Instant::now();
            assert_eq!(grads.len(), 3);
            drop(grads);
            if rep >= 3 {
                fwd.push((t1 - t0).as_secs_f64() * 1e3);
                bwd.push((t2 - t1).as_secs_f64() * 1e3);
                total.push((t2 - t0).as_secs_f64() * 1e3);
            }
        }
        // The best run is printed too: on a shared machine it is the least disturbed one.
        let fastest = best(&total);
        let (fwd, bwd, total) = (median(fwd), median(bwd), median(total));
        let torch = args.torch_ms.get(case).copied();
        println!(
            "{:>3}×{}×{}×{} → {o}: {total:7.2} ms ({:6.1} GFLOP/s, best {fastest:.2} ms)  forward {fwd:6.2} ms  backward {bwd:6.2} ms{}",
            shape[0],
            shape[1],
            shape[2],
            shape[3],
            flops / total / 1e6,
            torch.map_or(String::new(), |t| format!("  ours/PyTorch {:.2} (PyTorch {t} ms)", total / t)),
        );
    }
}
