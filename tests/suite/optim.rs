//! Optimizers against PyTorch's update rules, schedules against PyTorch's formulas,
//! state round trips, frozen parameters.
//!
//! PyTorch is not installed on the machine these tests were written on, so the
//! expected trajectories come from small f64 reference implementations below,
//! written from the formulas in the `torch.optim.SGD` / `Adam` / `AdamW` docs (not
//! from the crate's code), compared within 1e-6 relative.

use crate::common::{with_simd, BOTH_SIMD};
use ferrocnn::optim::{OptimizerKind, PARALLEL_MIN_LEN};
use ferrocnn::{
    Adam, AdamConfig, AdamW, AdamWConfig, Gradients, LrSchedule, OptimError, Optimizer, OptimizerState,
    Param, SGDConfig, Tape, Tensor, SGD,
};
use ndarray::{Array1, ArrayD};

/// Gradients in which each parameter's gradient is exactly the given array: the
/// gradient of Σ p·g with respect to p is g.
fn grads_of(params: &[&Param], values: &[Vec<f32>]) -> Gradients {
    let tape = Tape::new();
    let mut loss: Option<Tensor> = None;
    for (p, g) in params.iter().zip(values) {
        let g = tape.input(Array1::from(g.clone()).into_shape_with_order(p.shape()).unwrap());
        let term = (&tape.param(p) * &g).sum();
        loss = Some(match loss {
            None => term,
            Some(l) => &l + &term,
        });
    }
    loss.expect("at least one parameter").backward()
}

fn param(values: &[f32]) -> Param {
    Param::new(Array1::from(values.to_vec()).into_dyn())
}

fn values(p: &Param) -> Vec<f32> {
    p.value().iter().copied().collect()
}

fn assert_close(actual: &[f32], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (f64::from(a) - e).abs();
        assert!(
            err <= 1e-6 * e.abs().max(1e-3),
            "{what}: element {i} is {a}, expected {e} (error {err:e})"
        );
    }
}

/// Runs `optimizer` on one parameter through the given gradients and checks every
/// intermediate value against `reference(step_index, value, grad)`.
fn check_trajectory(
    optimizer: &mut dyn Optimizer,
    start: &[f32],
    gradients: &[Vec<f32>],
    mut reference: impl FnMut(usize, &mut [f64], &[f64]),
    what: &str,
) {
    let mut p = param(start);
    let mut expected: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
    for (t, g) in gradients.iter().enumerate() {
        let grads = grads_of(&[&p], std::slice::from_ref(g));
        optimizer.step(&mut [&mut p], &grads);
        let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        reference(t, &mut expected, &g64);
        assert_close(&values(&p), &expected, &format!("{what}, step {}", t + 1));
    }
}

const START: [f32; 3] = [1.0, -2.0, 0.5];

fn gradient_sequence() -> Vec<Vec<f32>> {
    vec![
        vec![0.5, -1.0, 0.25],
        vec![0.3, 0.2, -0.4],
        vec![-0.1, 0.7, 0.6],
        vec![0.8, -0.3, 0.05],
        vec![0.2, 0.1, -0.9],
    ]
}

/// torch.optim.SGD, from its documented algorithm, in f64.
struct SgdReference {
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    buffer: Option<Vec<f64>>,
}

impl SgdReference {
    fn new(c: &SGDConfig) -> Self {
        SgdReference {
            lr: c.lr,
            momentum: c.momentum,
            dampening: c.dampening,
            nesterov: c.nesterov,
            weight_decay: c.weight_decay,
            buffer: None,
        }
    }

    fn step(&mut self, p: &mut [f64], grad: &[f64]) {
        let g: Vec<f64> = p
            .iter()
            .zip(grad)
            .map(|(p, g)| g + self.weight_decay * p)
            .collect();
        let d: Vec<f64> = if self.momentum != 0.0 {
            let b: Vec<f64> = match &self.buffer {
                None => g.clone(),
                Some(b) => b
                    .iter()
                    .zip(&g)
                    .map(|(b, g)| self.momentum * b + (1.0 - self.dampening) * g)
                    .collect(),
            };
            let d = if self.nesterov {
                g.iter().zip(&b).map(|(g, b)| g + self.momentum * b).collect()
            } else {
                b.clone()
            };
            self.buffer = Some(b);
            d
        } else {
            g
        };
        for (p, d) in p.iter_mut().zip(d) {
            *p -= self.lr * d;
        }
    }
}

fn check_sgd(config: SGDConfig, what: &str) {
    let mut reference = SgdReference::new(&config);
    let mut sgd = SGD::new(config);
    check_trajectory(
        &mut sgd,
        &START,
        &gradient_sequence(),
        |_, p, g| reference.step(p, g),
        what,
    );
}

#[test]
fn sgd_plain_follows_pytorch_rule() {
    check_sgd(
        SGDConfig {
            lr: 0.1,
            ..SGDConfig::default()
        },
        "plain SGD",
    );
}

#[test]
fn sgd_momentum_follows_pytorch_rule() {
    check_sgd(
        SGDConfig {
            lr: 0.1,
            momentum: 0.9,
            ..SGDConfig::default()
        },
        "SGD momentum",
    );
}

#[test]
fn sgd_dampening_follows_pytorch_rule() {
    check_sgd(
        SGDConfig {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.3,
            ..SGDConfig::default()
        },
        "SGD dampening",
    );
}

#[test]
fn sgd_nesterov_follows_pytorch_rule() {
    check_sgd(
        SGDConfig {
            lr: 0.05,
            momentum: 0.8,
            nesterov: true,
            ..SGDConfig::default()
        },
        "SGD Nesterov",
    );
}

#[test]
fn sgd_weight_decay_follows_pytorch_rule() {
    check_sgd(
        SGDConfig {
            lr: 0.1,
            weight_decay: 0.01,
            ..SGDConfig::default()
        },
        "SGD weight decay",
    );
    check_sgd(
        SGDConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.05,
            ..SGDConfig::default()
        },
        "SGD Nesterov + weight decay",
    );
}

#[test]
fn sgd_plain_step_by_hand() {
    // p = 1 − 0.5·2 = 0, then 0 − 0.5·(−4) = 2: exact in f32.
    let mut sgd = SGD::new(SGDConfig {
        lr: 0.5,
        ..SGDConfig::default()
    });
    let mut p = param(&[1.0]);
    for g in [2.0, -4.0] {
        let grads = grads_of(&[&p], &[vec![g]]);
        sgd.step(&mut [&mut p], &grads);
    }
    assert_eq!(values(&p), vec![2.0]);
}

/// torch.optim.Adam / AdamW, from the documented algorithm, in f64.
struct AdamReference {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl AdamReference {
    fn new(lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64, decoupled: bool) -> Self {
        AdamReference {
            lr,
            beta1: betas.0,
            beta2: betas.1,
            eps,
            weight_decay,
            decoupled,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    fn step(&mut self, p: &mut [f64], grad: &[f64]) {
        if self.m.is_empty() {
            self.m = vec![0.0; p.len()];
            self.v = vec![0.0; p.len()];
        }
        self.t += 1;
        for i in 0..p.len() {
            let mut g = grad[i];
            if self.decoupled {
                p[i] *= 1.0 - self.lr * self.weight_decay;
            } else {
                g += self.weight_decay * p[i];
            }
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g;
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g * g;
            let m_hat = self.m[i] / (1.0 - self.beta1.powi(self.t));
            let v_hat = self.v[i] / (1.0 - self.beta2.powi(self.t));
            p[i] -= self.lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }
}

#[test]
fn adam_follows_pytorch_rule() {
    let config = AdamConfig {
        lr: 0.1,
        ..AdamConfig::default()
    };
    let mut reference = AdamReference::new(config.lr, config.betas, config.eps, 0.0, false);
    check_trajectory(
        &mut Adam::new(config),
        &START,
        &gradient_sequence(),
        |_, p, g| reference.step(p, g),
        "Adam",
    );
}

#[test]
fn adam_first_step_moves_by_lr_times_sign() {
    // With bias correction the first step is lr·g/(|g| + eps) ≈ lr·sign(g).
    let mut adam = Adam::new(AdamConfig {
        lr: 0.01,
        ..AdamConfig::default()
    });
    let mut p = param(&[1.0, 1.0]);
    let grads = grads_of(&[&p], &[vec![3.0, -0.002]]);
    adam.step(&mut [&mut p], &grads);
    assert_close(&values(&p), &[0.99, 1.01], "first Adam step");
}

#[test]
fn adam_coupled_weight_decay_follows_pytorch_rule() {
    let config = AdamConfig {
        lr: 0.05,
        betas: (0.8, 0.99),
        eps: 1e-6,
        weight_decay: 0.1,
    };
    let mut reference = AdamReference::new(config.lr, config.betas, config.eps, config.weight_decay, false);
    check_trajectory(
        &mut Adam::new(config),
        &START,
        &gradient_sequence(),
        |_, p, g| reference.step(p, g),
        "Adam + weight decay",
    );
}

#[test]
fn adamw_decoupled_weight_decay_follows_pytorch_rule() {
    let config = AdamWConfig {
        lr: 0.05,
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut reference = AdamReference::new(config.lr, config.betas, config.eps, config.weight_decay, true);
    check_trajectory(
        &mut AdamW::new(config),
        &START,
        &gradient_sequence(),
        |_, p, g| reference.step(p, g),
        "AdamW",
    );
}

#[test]
fn adamw_default_follows_pytorch_rule_and_differs_from_adam() {
    let mut reference = AdamReference::new(1e-3, (0.9, 0.999), 1e-8, 0.01, true);
    let mut adamw = AdamW::new(AdamWConfig::default());
    check_trajectory(
        &mut adamw,
        &START,
        &gradient_sequence(),
        |_, p, g| reference.step(p, g),
        "AdamW defaults",
    );
    let mut a = param(&START);
    let mut b = param(&START);
    let mut adam = Adam::new(AdamConfig {
        weight_decay: 0.01,
        ..AdamConfig::default()
    });
    let mut adamw = AdamW::new(AdamWConfig::default());
    let g = vec![0.5, -1.0, 0.25];
    let grads_a = grads_of(&[&a], std::slice::from_ref(&g));
    adam.step(&mut [&mut a], &grads_a);
    let grads_b = grads_of(&[&b], &[g]);
    adamw.step(&mut [&mut b], &grads_b);
    assert_ne!(values(&a), values(&b));
}

fn all_optimizers() -> Vec<Box<dyn Optimizer>> {
    vec![
        Box::new(SGD::new(SGDConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.1,
            ..SGDConfig::default()
        })),
        Box::new(Adam::new(AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::default()
        })),
        Box::new(AdamW::new(AdamWConfig::default())),
    ]
}

#[test]
fn frozen_params_are_never_updated() {
    for mut optimizer in all_optimizers() {
        let mut trainable = param(&[1.0, 2.0]);
        let mut frozen = param(&[0.1, -0.3]);
        // Gradients taken while both were trainable, then one is frozen: the step
        // must skip it even though a gradient for it is present.
        let grads = grads_of(&[&trainable, &frozen], &[vec![1.0, 1.0], vec![1.0, 1.0]]);
        frozen.set_frozen(true);
        let before = frozen.value().clone();
        for _ in 0..3 {
            optimizer.step(&mut [&mut trainable, &mut frozen], &grads);
        }
        assert_eq!(frozen.value(), &before, "{}", optimizer.kind());
        assert_ne!(values(&trainable), vec![1.0, 2.0], "{}", optimizer.kind());
        // No state was created for the frozen position.
        let frozen_state = match optimizer.state() {
            OptimizerState::SGD { momentum_buffers, .. } => {
                momentum_buffers.get(1).cloned().flatten().is_some()
            }
            OptimizerState::Adam { moments, .. } | OptimizerState::AdamW { moments, .. } => {
                moments.get(1).cloned().flatten().is_some()
            }
        };
        assert!(!frozen_state, "{}", optimizer.kind());
    }
}

#[test]
fn param_without_gradient_is_skipped_and_its_step_count_not_advanced() {
    let mut adam = Adam::new(AdamConfig::default());
    let mut a = param(&[1.0]);
    let mut b = param(&[1.0]);
    let only_a = grads_of(&[&a], &[vec![1.0]]);
    adam.step(&mut [&mut a, &mut b], &only_a);
    adam.step(&mut [&mut a, &mut b], &only_a);
    assert_eq!(values(&b), vec![1.0]);
    let both = grads_of(&[&a, &b], &[vec![1.0], vec![1.0]]);
    adam.step(&mut [&mut a, &mut b], &both);
    let OptimizerState::Adam { moments, .. } = adam.state() else {
        panic!("wrong kind")
    };
    assert_eq!(moments[0].as_ref().unwrap().step, 3);
    assert_eq!(moments[1].as_ref().unwrap().step, 1);
    // b's first step is a bias-corrected first step: lr·g/(|g| + eps).
    assert_close(
        &values(&b),
        &[1.0 - 1e-3 / (1.0 + 1e-8)],
        "b after its first step",
    );
}

#[test]
fn state_round_trips_through_bincode_and_resumes_exactly() {
    for mut optimizer in all_optimizers() {
        let mut p = param(&START);
        let mut q = param(&[0.5]);
        let seq = gradient_sequence();
        for g in &seq[..3] {
            let grads = grads_of(&[&p, &q], &[g.clone(), vec![g[0]]]);
            optimizer.step(&mut [&mut p, &mut q], &grads);
        }
        let state = optimizer.state();
        let bytes = bincode::serde::encode_to_vec(&state, bincode::config::standard()).unwrap();
        let (decoded, read): (OptimizerState, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(read, bytes.len());
        assert_eq!(decoded, state, "{}", optimizer.kind());

        // A fresh optimizer of the same kind (other hyperparameters) loading the
        // state continues exactly as the original.
        let mut resumed = fresh_of_kind(optimizer.kind());
        resumed.load_state(decoded).unwrap();
        assert_eq!(resumed.lr(), optimizer.lr());
        let (mut p2, mut q2) = (p.clone(), q.clone());
        for g in &seq[3..] {
            let grads = grads_of(&[&p, &q], &[g.clone(), vec![g[0]]]);
            optimizer.step(&mut [&mut p, &mut q], &grads);
            let grads2 = grads_of(&[&p2, &q2], &[g.clone(), vec![g[0]]]);
            resumed.step(&mut [&mut p2, &mut q2], &grads2);
        }
        assert_eq!(p.value(), p2.value(), "{}", optimizer.kind());
        assert_eq!(q.value(), q2.value(), "{}", optimizer.kind());
        assert_eq!(resumed.state(), optimizer.state());
    }
}

fn fresh_of_kind(kind: OptimizerKind) -> Box<dyn Optimizer> {
    match kind {
        OptimizerKind::SGD => Box::new(SGD::new(SGDConfig::default())),
        OptimizerKind::Adam => Box::new(Adam::new(AdamConfig::default())),
        OptimizerKind::AdamW => Box::new(AdamW::new(AdamWConfig::default())),
    }
}

#[test]
fn load_state_rejects_another_kind() {
    let adam_state = Adam::new(AdamConfig::default()).state();
    let mut sgd = SGD::new(SGDConfig::default());
    assert_eq!(
        sgd.load_state(adam_state.clone()),
        Err(OptimError::KindMismatch {
            expected: OptimizerKind::SGD,
            found: OptimizerKind::Adam
        })
    );
    let mut adamw = AdamW::new(AdamWConfig::default());
    let err = adamw.load_state(adam_state).unwrap_err();
    assert_eq!(
        err.to_string(),
        "optimizer state was saved by Adam, cannot load it into AdamW"
    );
    let mut adam = Adam::new(AdamConfig::default());
    assert!(adam.load_state(SGD::new(SGDConfig::default()).state()).is_err());
}

#[test]
fn load_state_rejects_invalid_hyperparameters() {
    let mut sgd = SGD::new(SGDConfig::default());
    let bad = OptimizerState::SGD {
        config: SGDConfig {
            nesterov: true,
            ..SGDConfig::default()
        },
        momentum_buffers: Vec::new(),
    };
    assert!(matches!(sgd.load_state(bad), Err(OptimError::InvalidState(_))));
}

#[test]
fn state_check_params_names_mismatched_position() {
    let mut sgd = SGD::new(SGDConfig {
        momentum: 0.9,
        ..SGDConfig::default()
    });
    let mut a = param(&[1.0, 2.0]);
    let mut b = param(&[1.0]);
    let grads = grads_of(&[&a, &b], &[vec![1.0, 1.0], vec![1.0]]);
    sgd.step(&mut [&mut a, &mut b], &grads);
    let state = sgd.state();
    assert_eq!(state.check_params(&[&a, &b]), Ok(()));
    let c = param(&[1.0, 2.0, 3.0]);
    assert_eq!(
        state.check_params(&[&a, &c]),
        Err(OptimError::ShapeMismatch {
            position: 1,
            state: vec![1],
            param: vec![3]
        })
    );
    assert_eq!(
        state.check_params(&[&a]),
        Err(OptimError::MissingParam {
            position: 1,
            count: 1
        })
    );
}

#[test]
fn set_lr_changes_the_next_step() {
    for mut optimizer in all_optimizers() {
        optimizer.set_lr(0.25);
        assert_eq!(optimizer.lr(), 0.25);
        match optimizer.state() {
            OptimizerState::SGD { config, .. } => assert_eq!(config.lr, 0.25),
            OptimizerState::Adam { config, .. } => assert_eq!(config.lr, 0.25),
            OptimizerState::AdamW { config, .. } => assert_eq!(config.lr, 0.25),
        }
    }
}

#[test]
fn large_params_update_in_parallel_identically() {
    // One parameter above the parallel threshold against the same numbers split
    // into parameters below it: elementwise updates must agree bit for bit.
    let n = PARALLEL_MIN_LEN * 2;
    let start: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect();
    let grad: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.0) / 7.0).collect();
    let half = n / 2;
    for (mut whole_opt, mut split_opt) in all_optimizers().into_iter().zip(all_optimizers()) {
        let mut whole = param(&start);
        let mut left = param(&start[..half]);
        let mut right = param(&start[half..]);
        for _ in 0..3 {
            let g = grads_of(&[&whole], std::slice::from_ref(&grad));
            whole_opt.step(&mut [&mut whole], &g);
            let g = grads_of(&[&left, &right], &[grad[..half].to_vec(), grad[half..].to_vec()]);
            split_opt.step(&mut [&mut left, &mut right], &g);
        }
        let joined: Vec<f32> = values(&left).into_iter().chain(values(&right)).collect();
        assert_eq!(values(&whole), joined, "{}", whole_opt.kind());
    }
}

#[test]
fn step_checked_reports_the_parameters_it_left_finite() {
    // Small and large (split over tasks) parameters, finite or made NaN by a NaN
    // gradient in the last chunk, one frozen and one without a gradient: those two
    // are not known to be finite. The values are those of `step`, bit for bit.
    let n = PARALLEL_MIN_LEN * 2 + 5;
    let big: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect();
    let big_grad: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.0) / 7.0).collect();
    let mut bad_grad = big_grad.clone();
    bad_grad[n - 3] = f32::NAN;
    let make = || {
        let mut frozen = param(&[0.5, 0.25]);
        frozen.set_frozen(true);
        [
            param(&[1.0, -2.0, 3.0]),
            param(&big),
            param(&big),
            frozen,
            param(&[4.0]),
        ]
    };
    for (mut checked, mut plain) in all_optimizers().into_iter().zip(all_optimizers()) {
        let kind = checked.kind();
        let [mut a, mut b, mut c, mut d, mut e] = make();
        let [mut a2, mut b2, mut c2, mut d2, mut e2] = make();
        for _ in 0..2 {
            let gradients = [
                vec![0.5, -0.5, 0.25],
                big_grad.clone(),
                bad_grad.clone(),
                vec![1.0, 1.0],
            ];
            let grads = grads_of(&[&a, &b, &c, &d], &gradients);
            let finite = checked.step_checked(&mut [&mut a, &mut b, &mut c, &mut d, &mut e], &grads);
            assert_eq!(finite, [true, true, false, false, false], "{kind}");
            let grads = grads_of(&[&a2, &b2, &c2, &d2], &gradients);
            plain.step(&mut [&mut a2, &mut b2, &mut c2, &mut d2, &mut e2], &grads);
        }
        for (got, want) in [(&a, &a2), (&b, &b2), (&c, &c2), (&d, &d2), (&e, &e2)] {
            let bits = |p: &Param| values(p).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got), bits(want), "{kind}");
        }
        assert!(values(&c)[n - 3].is_nan() && values(&c)[..n - 3].iter().all(|v| v.is_finite()));
    }
}

#[test]
fn adam_is_the_same_bit_for_bit_in_every_vector_width() {
    // The AVX-512 loop (on a CPU that has it) against the baseline's, over lengths
    // around its 16 lanes and one split over tasks, for each of its four variants:
    // coupled weight decay or not, PyTorch's lerp from either end.
    let configs = [
        AdamConfig::default(),
        AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::default()
        },
        AdamConfig {
            betas: (0.2, 0.99),
            ..AdamConfig::default()
        },
        AdamConfig {
            betas: (0.2, 0.99),
            weight_decay: 0.1,
            ..AdamConfig::default()
        },
    ];
    let run = |config: &AdamConfig, len: usize, decoupled: bool| {
        let mut p = param(
            &(0..len)
                .map(|i| ((i % 89) as f32 - 44.0) / 30.0)
                .collect::<Vec<_>>(),
        );
        let mut optimizer: Box<dyn Optimizer> = if decoupled {
            Box::new(AdamW::new(AdamWConfig {
                lr: config.lr,
                betas: config.betas,
                eps: config.eps,
                weight_decay: config.weight_decay,
            }))
        } else {
            Box::new(Adam::new(config.clone()))
        };
        for step in 0..3 {
            let g: Vec<f32> = (0..len)
                .map(|i| ((i * 7 + step) % 23) as f32 / 5.0 - 2.0)
                .collect();
            let grads = grads_of(&[&p], &[g]);
            optimizer.step(&mut [&mut p], &grads);
        }
        values(&p).iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    for config in &configs {
        for len in [1, 15, 16, 17, 1000, PARALLEL_MIN_LEN + 33] {
            for decoupled in [false, true] {
                let [auto, baseline] = BOTH_SIMD.map(|simd| with_simd(simd, || run(config, len, decoupled)));
                assert!(auto == baseline, "{config:?}, {len} values, AdamW {decoupled}");
            }
        }
    }
}

#[test]
fn clip_global_norm_scales_like_pytorch() {
    let a = param(&[3.0]);
    let b = param(&[0.0, 4.0]);
    let mut grads = grads_of(&[&a, &b], &[vec![3.0], vec![0.0, 4.0]]);
    assert_eq!(grads.global_norm(), 5.0);
    let norm = grads.clip_global_norm(1.0);
    assert_eq!(norm, 5.0);
    let scale = 1.0f32 / (5.0 + 1e-6);
    assert_eq!(grads[&a], ArrayD::from_elem(vec![1], 3.0 * scale));
    assert_eq!(grads[&b].as_slice().unwrap(), &[0.0, 4.0 * scale]);
    assert!((grads.global_norm() - 1.0).abs() < 1e-6);

    // Below the bound: untouched.
    let mut grads = grads_of(&[&a, &b], &[vec![3.0], vec![0.0, 4.0]]);
    assert_eq!(grads.clip_global_norm(10.0), 5.0);
    assert_eq!(grads[&a].as_slice().unwrap(), &[3.0]);

    // At exactly the bound PyTorch still scales, by max_norm / (norm + 1e-6) < 1.
    let mut grads = grads_of(&[&a, &b], &[vec![3.0], vec![0.0, 4.0]]);
    grads.clip_global_norm(5.0);
    assert_eq!(grads[&a].as_slice().unwrap(), &[3.0 * (5.0f32 / (5.0 + 1e-6))]);
    assert!(grads[&a][0] < 3.0);
}

#[test]
fn step_schedule_decays_after_step_size() {
    let s = LrSchedule::Step {
        base_lr: 0.1,
        step_size: 3,
        gamma: 0.5,
    };
    let lrs: Vec<f64> = (0..7).map(|t| s.lr_at(t)).collect();
    assert_eq!(lrs, vec![0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]);
}

#[test]
fn exponential_schedule_multiplies_every_step() {
    let s = LrSchedule::Exponential {
        base_lr: 1.0,
        gamma: 0.5,
    };
    assert_eq!(s.lr_at(3), 0.125);
}

#[test]
fn cosine_schedule_is_halfway_at_half_the_steps() {
    let s = LrSchedule::Cosine {
        base_lr: 0.1,
        min_lr: 0.02,
        total_steps: 10,
    };
    assert_eq!(s.lr_at(0), 0.1);
    assert!((s.lr_at(5) - 0.06).abs() < 1e-8);
    // PyTorch's closed form at step 2: η_min + (η_max − η_min)(1 + cos(π/5))/2.
    let expected = 0.02 + 0.08 * (1.0 + (std::f64::consts::PI / 5.0).cos()) / 2.0;
    assert!((s.lr_at(2) - expected).abs() < 1e-8);
    assert!((s.lr_at(10) - 0.02).abs() < 1e-9);
    assert!((s.lr_at(25) - 0.02).abs() < 1e-9);
}

#[test]
fn warmup_cosine_rises_linearly_then_decays() {
    let s = LrSchedule::WarmupCosine {
        base_lr: 1.0,
        min_lr: 0.0,
        warmup_steps: 4,
        total_steps: 14,
    };
    assert_eq!(s.lr_at(0), 0.0);
    assert_eq!(s.lr_at(2), 0.5);
    assert_eq!(s.lr_at(4), 1.0);
    assert!((s.lr_at(9) - 0.5).abs() < 1e-7);
    assert!(s.lr_at(14).abs() < 1e-7);
    assert!(s.lr_at(100).abs() < 1e-7);
}

#[test]
fn one_cycle_matches_pytorch_formula() {
    // Reference: PyTorch OneCycleLR (anneal_strategy='cos', three_phase=False),
    // phases ending at steps pct_start·total − 1 and total − 1.
    let total = 20usize;
    let max_lr = 0.1f64;
    let initial = max_lr / 25.0;
    let min = initial / 1e4;
    let anneal = |start: f64, end: f64, pct: f64| {
        end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
    };
    let s = LrSchedule::one_cycle(0.1, total);
    for step in 0..total {
        let t = step as f64;
        let peak = 0.3 * total as f64 - 1.0;
        let expected = if t <= peak {
            anneal(initial, max_lr, t / peak)
        } else {
            anneal(max_lr, min, (t - peak) / (total as f64 - 1.0 - peak))
        };
        let got = s.lr_at(step);
        assert!(
            (got - expected).abs() <= 1e-6 * expected,
            "step {step}: {got} vs {expected}"
        );
    }
    assert_eq!(s.lr_at(5), 0.1);
}

#[test]
fn schedule_round_trips_through_bincode() {
    let s = LrSchedule::WarmupCosine {
        base_lr: 3e-4,
        min_lr: 1e-6,
        warmup_steps: 100,
        total_steps: 1000,
    };
    let bytes = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap();
    let (back, _): (LrSchedule, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.lr_at(537), s.lr_at(537));
}

#[test]
fn learning_rates_must_be_finite_and_not_negative() {
    for lr in [f64::INFINITY, f64::NAN, -1e-3] {
        let sgd = SGDConfig {
            lr,
            ..SGDConfig::default()
        };
        let adam = OptimizerState::Adam {
            config: AdamConfig {
                lr,
                ..AdamConfig::default()
            },
            moments: Vec::new(),
        };
        let adam = match Adam::new(AdamConfig::default()).load_state(adam) {
            Err(OptimError::InvalidState(message)) => message,
            other => panic!("lr {lr}: {other:?}"),
        };
        for message in [sgd.validate().unwrap_err(), adam] {
            assert!(
                message.contains("invalid learning rate") && message.contains("finite"),
                "{message}"
            );
        }
    }
    let zero = SGDConfig {
        lr: 0.0,
        ..SGDConfig::default()
    };
    assert!(zero.validate().is_ok());
}
