//! The training stack: the book's other layers (gradient-checked like the
//! first four), `Sequential`, the optimizers against their textbook
//! formulas, checkpoints, and reproducible training.

mod common;

use common::*;
use densegrad::optim::{AdaGrad, Adam, Momentum, Nesterov, Optimizer, RmsProp, Sgd};
use densegrad::{
    Activation, BatchNorm, Dropout, Error, Init, Labels, Layer, LeakyRelu, Sequential, Tanh, Tensor,
};
use proptest::prelude::*;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// f64 batchnorm forward (training mode): y = γ·(x − μ)/√(σ² + ε) + β.
fn batchnorm64(x: &[f64], n: usize, d: usize, g: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
    let mut y = vec![0.0; n * d];
    for j in 0..d {
        let mean = (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| (x[i * d + j] - mean).powi(2)).sum::<f64>() / n as f64;
        for i in 0..n {
            y[i * d + j] = g[j] * (x[i * d + j] - mean) / (var + eps).sqrt() + b[j];
        }
    }
    y
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn tanh_dx((n, k) in (1usize..5, 1usize..11), xs in values(50, 3.0), rs in values(50, 2.0)) {
        let (x, r) = (&xs[..n * k], &rs[..n * k]);
        let mut t = Tanh::new();
        t.forward(&tensor(&[n, k], x.to_vec())).unwrap();
        let dx = t.backward(tensor(&[n, k], r.to_vec())).unwrap();
        let r64 = to64(r);
        check_grad("tanh dx", dx.data(), &to64(x), |x| dot(&x.iter().map(|v| v.tanh()).collect::<Vec<_>>(), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn leaky_relu_dx((n, k) in (1usize..5, 1usize..11), xs in values_off_zero(50, 3.0, 0.05), rs in values(50, 2.0), alpha in 0.0f32..0.5) {
        let (x, r) = (&xs[..n * k], &rs[..n * k]);
        let mut l = LeakyRelu::new(alpha).unwrap();
        l.forward(&tensor(&[n, k], x.to_vec())).unwrap();
        let dx = l.backward(tensor(&[n, k], r.to_vec())).unwrap();
        let (r64, a) = (to64(r), alpha as f64);
        check_grad("leaky relu dx", dx.data(), &to64(x), |x| dot(&x.iter().map(|&v| if v > 0.0 { v } else { a * v }).collect::<Vec<_>>(), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn dropout_dx_is_the_forward_mask(n in 1usize..200, p in 0.0f32..0.9, seed in any::<u64>()) {
        let x: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
        let mut d = Dropout::new(p, seed).unwrap();
        let y = d.forward(&Tensor::from_slice(&x)).unwrap();
        let mask: Vec<f64> = y.data().iter().zip(&x).map(|(y, x)| (*y / *x) as f64).collect();
        for m in &mask {
            prop_assert!(*m == 0.0 || (*m - 1.0 / (1.0 - p as f64)).abs() < 1e-5);
        }
        let r: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
        let dx = d.backward(Tensor::from_slice(&r)).unwrap();
        let r64 = to64(&r);
        check_grad("dropout dx", dx.data(), &to64(&x), |x| x.iter().zip(&mask).zip(&r64).map(|((x, m), r)| x * m * r).sum(), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
        // The same seed draws the same masks.
        let mut again = Dropout::new(p, seed).unwrap();
        prop_assert_eq!(again.forward(&Tensor::from_slice(&x)).unwrap(), y);
    }

    #[test]
    fn batchnorm_dx_dgamma_dbeta((n, d) in (2usize..6, 1usize..6), xs in values(30, 3.0), gs in values(6, 2.0), bs in values(6, 1.0), rs in values(30, 2.0)) {
        let (x, g, b, r) = (&xs[..n * d], &gs[..d], &bs[..d], &rs[..n * d]);
        // Columns with (almost) no spread make the FD step cross ε's regime.
        for j in 0..d {
            let col: Vec<f32> = (0..n).map(|i| x[i * d + j]).collect();
            let spread = col.iter().cloned().fold(f32::MIN, f32::max) - col.iter().cloned().fold(f32::MAX, f32::min);
            prop_assume!(spread > 0.3);
        }
        let mut bn = BatchNorm::new(d).unwrap();
        let mut k = 0;
        bn.visit_params(&mut |mut p| {
            p.values_mut().copy_from_slice(if k == 0 { g } else { b });
            k += 1;
        });
        let y = bn.forward(&tensor(&[n, d], x.to_vec())).unwrap();
        let (x64, g64, b64, r64) = (to64(x), to64(g), to64(b), to64(r));
        let want = batchnorm64(&x64, n, d, &g64, &b64, 1e-5);
        for (a, w) in y.data().iter().zip(&want) {
            prop_assert!((*a as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()));
        }
        let dx = bn.backward(tensor(&[n, d], r.to_vec())).unwrap();
        let mut grads = Vec::new();
        bn.visit_params(&mut |p| grads.push(p.grad().data().to_vec()));
        let tol = Tol { abs: 2e-4, rel: 2e-4 };
        check_grad("bn dx", dx.data(), &x64, |x| dot(&batchnorm64(x, n, d, &g64, &b64, 1e-5), &r64), tol).map_err(TestCaseError::fail)?;
        check_grad("bn dgamma", &grads[0], &g64, |g| dot(&batchnorm64(&x64, n, d, g, &b64, 1e-5), &r64), tol).map_err(TestCaseError::fail)?;
        check_grad("bn dbeta", &grads[1], &b64, |b| dot(&batchnorm64(&x64, n, d, &g64, b, 1e-5), &r64), tol).map_err(TestCaseError::fail)?;
    }

    /// `Sequential::backward` against its own public numerical gradient, for
    /// smooth activations (no kinks for the finite differences to cross).
    #[test]
    fn sequential_backward_passes_gradient_check(
        dims in proptest::collection::vec(1usize..6, 3..5), n in 1usize..4, seed in any::<u64>(),
        act in prop_oneof![Just(Activation::Sigmoid), Just(Activation::Tanh)],
    ) {
        let net = Sequential::mlp(&dims, act, Init::Xavier, seed).unwrap();
        let x = Tensor::new(&[n, dims[0]], (0..n * dims[0]).map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0).collect()).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % dims[dims.len() - 1]).collect();
        let err = net.gradient_check(&x, Labels::Index(&labels), 1e-2).unwrap();
        prop_assert!(err < 2e-3, "relative gradient error {}", err);
    }
}

#[test]
fn batchnorm_eval_mode_uses_running_statistics_and_has_exact_gradients() {
    let mut bn = BatchNorm::with_options(2, 0.0, 1e-5).unwrap(); // momentum 0: running = last batch
    let x = tensor(&[3, 2], vec![1.0, 4.0, 2.0, 6.0, 3.0, 11.0]);
    bn.forward(&x).unwrap();
    assert!(
        (bn.running_mean().data()[0] - 2.0).abs() < 1e-6
            && (bn.running_mean().data()[1] - 7.0).abs() < 1e-6
    );
    bn.set_training(false);
    let y = bn.forward(&x).unwrap();
    bn.set_training(true);
    let y_train = bn.forward(&x).unwrap();
    for (a, b) in y.data().iter().zip(y_train.data()) {
        assert!(
            (a - b).abs() < 1e-5,
            "with momentum 0, eval equals train on the same batch"
        );
    }
    bn.set_training(false);
    bn.forward(&x).unwrap();
    let dx = bn.backward(tensor(&[3, 2], vec![1.0; 6])).unwrap();
    let inv = 1.0 / (bn.running_var().data()[0] + 1e-5).sqrt();
    assert!((dx.data()[0] - inv).abs() < 1e-6);
    let mut g = Vec::new();
    bn.visit_params(&mut |p| g.push(p.grad().data().to_vec()));
    assert!(
        g[0][0].abs() < 1e-5,
        "Σ x̂ over a batch normalized by its own statistics is 0"
    );
    assert_eq!(g[1], vec![3.0, 3.0]);
}

/// Each optimizer's first three steps against its formula in f64.
#[test]
fn optimizers_follow_their_textbook_formulas() {
    let p0 = [0.5f64, -1.0, 2.0];
    let grads = [[0.1f64, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2]];
    let (lr, mu, wd) = (0.1f64, 0.9f64, 0.01f64);
    type Rule = Box<dyn FnMut(&mut [f64], &[f64], usize)>;
    let cases: Vec<(&str, Box<dyn Optimizer>, Rule)> = vec![
        (
            "sgd",
            Box::new(Sgd::new(lr as f32).with_weight_decay(wd as f32)),
            Box::new(move |p, g, _| {
                for i in 0..3 {
                    p[i] -= lr * (g[i] + wd * p[i]);
                }
            }),
        ),
        (
            "momentum",
            Box::new(Momentum::new(lr as f32, mu as f32).with_weight_decay(wd as f32)),
            {
                let mut v = [0.0f64; 3];
                Box::new(move |p, g, _| {
                    for i in 0..3 {
                        v[i] = mu * v[i] - lr * (g[i] + wd * p[i]);
                        p[i] += v[i];
                    }
                })
            },
        ),
        (
            "nesterov",
            Box::new(Nesterov::new(lr as f32, mu as f32).with_weight_decay(wd as f32)),
            {
                let mut v = [0.0f64; 3];
                Box::new(move |p, g, _| {
                    for i in 0..3 {
                        let g = g[i] + wd * p[i];
                        v[i] = mu * v[i] - lr * g;
                        p[i] += mu * mu * v[i] - (1.0 + mu) * lr * g;
                    }
                })
            },
        ),
        (
            "adagrad",
            Box::new(AdaGrad::new(lr as f32).with_weight_decay(wd as f32)),
            {
                let mut h = [0.0f64; 3];
                Box::new(move |p, g, _| {
                    for i in 0..3 {
                        let g = g[i] + wd * p[i];
                        h[i] += g * g;
                        p[i] -= lr * g / (h[i].sqrt() + 1e-7);
                    }
                })
            },
        ),
        (
            "rmsprop",
            Box::new(RmsProp::new(lr as f32, 0.99).with_weight_decay(wd as f32)),
            {
                let mut h = [0.0f64; 3];
                Box::new(move |p, g, _| {
                    for i in 0..3 {
                        let g = g[i] + wd * p[i];
                        h[i] = 0.99 * h[i] + 0.01 * g * g;
                        p[i] -= lr * g / (h[i].sqrt() + 1e-7);
                    }
                })
            },
        ),
        (
            "adam",
            Box::new(Adam::new(lr as f32).with_weight_decay(wd as f32)),
            {
                let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
                Box::new(move |p, g, t| {
                    for i in 0..3 {
                        let g = g[i] + wd * p[i];
                        m[i] = 0.9 * m[i] + 0.1 * g;
                        v[i] = 0.999 * v[i] + 0.001 * g * g;
                        let (mh, vh) = (
                            m[i] / (1.0 - 0.9f64.powi(t as i32)),
                            v[i] / (1.0 - 0.999f64.powi(t as i32)),
                        );
                        p[i] -= lr * mh / (vh.sqrt() + 1e-8);
                    }
                })
            },
        ),
    ];
    for (name, mut opt, mut rule) in cases {
        let mut p32: Vec<f32> = p0.iter().map(|&v| v as f32).collect();
        let mut p64 = p0.to_vec();
        for (t, g) in grads.iter().enumerate() {
            let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
            opt.begin_step();
            opt.update(0, &mut p32, &g32).unwrap();
            rule(&mut p64, g, t + 1);
            for i in 0..3 {
                assert!(
                    (p32[i] as f64 - p64[i]).abs() <= 1e-5 * (1.0 + p64[i].abs()),
                    "{name} step {}: {} vs {}",
                    t + 1,
                    p32[i],
                    p64[i]
                );
            }
        }
    }
}

fn small_mnist(n: usize) -> (Tensor, Vec<usize>) {
    let m =
        densegrad::data::load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap();
    let x = Tensor::new(&[n, 784], m.train.x().data()[..n * 784].to_vec()).unwrap();
    (x, m.train.labels()[..n].to_vec())
}

fn train_weights(x: &Tensor, labels: &[usize], threads: usize) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        // 256×784×128: products above the split threshold, so two threads
        // really do split them.
        let mut net = Sequential::mlp(&[784, 128, 10], Activation::Relu, Init::He, 9).unwrap();
        let mut opt = Adam::new(1e-3);
        let d = densegrad::data::Dataset::new(x.clone(), labels.to_vec(), 10).unwrap();
        for epoch in 0..2 {
            for (bx, bl) in d.batches(256, Some(epoch)).unwrap() {
                net.loss(&bx, Labels::Index(&bl)).unwrap();
                net.backward().unwrap();
                opt.step(&mut net).unwrap();
            }
        }
        let mut bits = Vec::new();
        net.visit_state_ref(&mut |_, t| bits.extend(t.data().iter().map(|v| v.to_bits())));
        bits
    })
}

#[test]
fn same_seed_same_weights_bit_for_bit_at_1_and_2_threads() {
    let (x, labels) = small_mnist(2048);
    let one = train_weights(&x, &labels, 1);
    assert_eq!(one, train_weights(&x, &labels, 1), "repeatable");
    assert_eq!(
        one,
        train_weights(&x, &labels, 2),
        "thread count does not matter"
    );
}

#[test]
fn checkpoints_round_trip_and_refuse_mismatches() {
    let dir = std::env::temp_dir().join(format!("densegrad-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.safetensors");
    let mut net = Sequential::mlp(&[6, 5, 3], Activation::Tanh, Init::Xavier, 4)
        .unwrap()
        .with(BatchNorm::new(3).unwrap());
    let x = Tensor::new(&[4, 6], (0..24).map(|i| i as f32 / 10.0).collect()).unwrap();
    net.loss(&x, Labels::Index(&[0, 1, 2, 0])).unwrap(); // moves BatchNorm's running stats
    net.save(&path).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let mut other = Sequential::mlp(&[6, 5, 3], Activation::Tanh, Init::Xavier, 5)
        .unwrap()
        .with(BatchNorm::new(3).unwrap());
    other.load(&path).unwrap();
    net.set_training(false);
    other.set_training(false);
    assert_eq!(
        net.predict(&x).unwrap().clone(),
        other.predict(&x).unwrap().clone()
    );

    // Another shape: the error names the tensor and both shapes; nothing changes.
    let mut wrong = Sequential::mlp(&[6, 4, 3], Activation::Tanh, Init::Xavier, 5)
        .unwrap()
        .with(BatchNorm::new(3).unwrap());
    let mut before = Vec::new();
    wrong.visit_state_ref(&mut |_, t| before.extend_from_slice(t.data()));
    let e = wrong.load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "load checkpoint: {}: tensor 0.weight is [6, 5] in the checkpoint but [6, 4] in the network",
            path.display()
        )
    );
    let mut after = Vec::new();
    wrong.visit_state_ref(&mut |_, t| after.extend_from_slice(t.data()));
    assert_eq!(before, after, "a refused checkpoint changes nothing");

    // Missing and unexpected tensors.
    let mut shorter = Sequential::mlp(&[6, 5, 3], Activation::Tanh, Init::Xavier, 5).unwrap();
    assert!(shorter
        .load(&path)
        .unwrap_err()
        .to_string()
        .contains("tensors the network does not: 3.beta, 3.gamma, 3.running_mean, 3.running_var"));
    let mut longer = Sequential::mlp(&[6, 5, 3], Activation::Tanh, Init::Xavier, 5)
        .unwrap()
        .with(BatchNorm::new(3).unwrap())
        .with(BatchNorm::new(3).unwrap());
    assert!(longer
        .load(&path)
        .unwrap_err()
        .to_string()
        .contains("has no tensor 4.gamma"));

    // Truncated and corrupt files: errors that name the file.
    let bytes = std::fs::read(&path).unwrap();
    for (i, bad) in [
        bytes[..bytes.len() / 2].to_vec(),
        bytes[..7].to_vec(),
        vec![0xff; 64],
        Vec::new(),
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.join(format!("bad{i}.safetensors"));
        std::fs::write(&p, bad).unwrap();
        let e = other.load(&p).unwrap_err();
        assert!(
            matches!(e, Error::Format { .. }) && e.to_string().contains(&format!("bad{i}")),
            "{e}"
        );
    }
    // A failed save (no such directory) leaves no file behind.
    let nowhere = dir.join("missing").join("net.safetensors");
    assert!(matches!(net.save(&nowhere), Err(Error::Io { .. })));
    assert!(!dir.join("missing").exists());
    // Saving onto a directory says so, with the path.
    let e = net.save(&dir).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "save checkpoint: {}: is a directory; save needs a file path",
            dir.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_training_input_is_an_error() {
    let mut net = Sequential::mlp(&[784, 50, 10], Activation::Relu, Init::He, 0).unwrap();
    let e = net
        .loss(&Tensor::zeros(&[100, 783]), Labels::Index(&[0; 100]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "affine forward: x is [100, 783] but weight is [784, 50]: x needs 784 features per row"
    );
    let e = net
        .loss(&Tensor::zeros(&[2, 784]), Labels::Index(&[0, 10]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("label 10 at row 1 is out of range for 10 classes"),
        "{e}"
    );
    assert!(net.backward().is_err(), "no backward after a failed loss");
    assert!(net
        .accuracy(&Tensor::zeros(&[3, 784]), &[0, 1], 10)
        .is_err());
    assert!(Sequential::mlp(&[784, 0, 10], Activation::Relu, Init::He, 0).is_err());
    assert!(densegrad::data::Dataset::new(Tensor::zeros(&[2, 3]), vec![0, 3], 3).is_err());
    assert!(Dropout::new(f32::NAN, 0).is_err());
    assert!(LeakyRelu::new(f32::INFINITY).is_err());
    assert!(BatchNorm::new(3)
        .unwrap()
        .forward(&Tensor::zeros(&[2, 4]))
        .is_err());
    let bad = net;
    assert!(bad
        .numerical_gradient(&Tensor::zeros(&[1, 784]), Labels::Index(&[0]), 0.0)
        .is_err());
}

/// A network whose Affine layers after the first are lent their input by
/// `Sequential` (the previous layer's output, read in place by the
/// backward): 300→300 (a product cut by `gemm_par`), Sigmoid, 300→1024
/// (dX beside dW from two threads), ReLU, 1024→10 (a forward cut in K at
/// batch 256: its input kept as two blocks of columns when copied).
fn lending_net() -> Sequential {
    let mut net = Sequential::new();
    for (i, w) in [300usize, 300, 1024, 10].windows(2).enumerate() {
        match i {
            0 => {}
            1 => net.push(Box::new(densegrad::Sigmoid::new())),
            _ => net.push(Box::new(densegrad::Relu::new())),
        }
        let weights = fixed_values(w[0] * w[1], 40 + i as u64)
            .iter()
            .map(|v| v * 0.1)
            .collect();
        let b = Tensor::new(&[w[1]], fixed_values(w[1], 50 + i as u64)).unwrap();
        let w = Tensor::new(&[w[0], w[1]], weights).unwrap();
        net.push(Box::new(densegrad::Affine::new(w, b).unwrap()));
    }
    net
}

/// Every parameter gradient of `net`, as bits, in `visit_params` order.
fn grad_bits(net: &mut Sequential) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    net.visit_params(&mut |p| out.push(p.grad().data().iter().map(|v| v.to_bits()).collect()));
    out
}

/// The same step through each layer's own `forward_ref` / `backward_ref`
/// (each Affine keeping a copy of its input): loss bits and gradients.
fn own_passes(net: &mut Sequential, x: &Tensor, t: &[usize]) -> (u32, Vec<Vec<u32>>) {
    let mut loss = densegrad::SoftmaxWithLoss::new();
    let layers = net.layers_mut();
    let mut h = x.clone();
    for layer in layers.iter_mut() {
        h = layer.forward_ref(&h).unwrap().clone();
    }
    let l = loss.forward(&h, Labels::Index(t)).unwrap();
    let mut g = loss.backward_ref(1.0).unwrap().clone();
    let (first, rest) = layers.split_first_mut().unwrap();
    for layer in rest.iter_mut().rev() {
        g = layer.backward_ref(&g).unwrap().clone();
    }
    first.backward_params_only(&g).unwrap();
    (l.to_bits(), grad_bits(net))
}

#[test]
fn a_step_with_lent_inputs_has_the_bits_of_the_layers_own_passes() {
    let (n, k) = (256, 300);
    let x = Tensor::new(&[n, k], fixed_values(n * k, 7)).unwrap();
    let t: Vec<usize> = (0..n).map(|i| (i * 7) % 10).collect();
    for threads in 1..=4 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = lending_net();
            let l = net.loss(&x, Labels::Index(&t)).unwrap().to_bits();
            net.backward().unwrap();
            // A second backward reads the same lent inputs again.
            let grads = grad_bits(&mut net);
            net.backward().unwrap();
            assert_eq!(grad_bits(&mut net), grads, "{threads} threads");

            let mut own = lending_net();
            assert_eq!(
                own_passes(&mut own, &x, &t),
                (l, grads),
                "{threads} threads"
            );
        });
    }
}

#[test]
fn layers_handed_out_after_a_lending_step_keep_their_inputs() {
    let (n, k) = (256, 300);
    let x = Tensor::new(&[n, k], fixed_values(n * k, 8)).unwrap();
    let t: Vec<usize> = (0..n).map(|i| (i * 3) % 10).collect();
    let mut net = lending_net();
    let logits = net.predict(&x).unwrap().clone();
    let mut loss = densegrad::SoftmaxWithLoss::new();
    loss.forward(&logits, Labels::Index(&t)).unwrap();
    let mut g = loss.backward_ref(1.0).unwrap().clone();
    net.loss(&x, Labels::Index(&t)).unwrap();
    net.backward().unwrap();
    let want = grad_bits(&mut net);

    // A clone taken through `layers()` holds no input: its own backward is
    // refused, not computed from something else.
    let mut clone = net.layers()[4].clone_layer();
    let err = clone.backward_ref(&g).unwrap_err();
    assert!(err.to_string().contains("lent"), "{err}");

    // Through `layers_mut`, each layer gets a copy of its input first, so
    // its own backward gives the network's gradients.
    let layers = net.layers_mut();
    let (first, rest) = layers.split_first_mut().unwrap();
    for layer in rest.iter_mut().rev() {
        g = layer.backward_ref(&g).unwrap().clone();
    }
    first.backward_params_only(&g).unwrap();
    assert_eq!(grad_bits(&mut net), want);
}
