//! The embedder-facing API of `Sequential`: freezing honoured by every
//! optimizer, a refused optimizer step changes nothing, `layers_mut`,
//! `predict_classes`, `Debug`, and `save_bytes` round trips.

use densegrad::optim::{AdaGrad, Adam, Momentum, Nesterov, Optimizer, RmsProp, Sgd};
use densegrad::{Activation, Init, Labels, Layer, Relu, Sequential, Tensor};

fn params(net: &mut Sequential) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    net.visit_params(&mut |p| out.push(p.value().data().to_vec()));
    out
}

fn optimizers() -> Vec<Box<dyn Optimizer>> {
    vec![
        Box::new(Sgd::new(0.1)),
        Box::new(Momentum::new(0.1, 0.9)),
        Box::new(Nesterov::new(0.1, 0.9)),
        Box::new(AdaGrad::new(0.1)),
        Box::new(RmsProp::new(0.01, 0.99)),
        Box::new(Adam::new(0.01)),
    ]
}

#[test]
fn every_optimizer_leaves_a_frozen_layer_alone() {
    let x = Tensor::new(&[3, 4], (0..12).map(|i| i as f32 * 0.1 - 0.5).collect()).unwrap();
    let labels = [0, 2, 1];
    for mut opt in optimizers() {
        let mut net = Sequential::mlp(&[4, 5, 3], Activation::Relu, Init::He, 11).unwrap();
        net.set_frozen(2, true).unwrap();
        let before = params(&mut net);
        for _ in 0..3 {
            net.loss(&x, Labels::Index(&labels)).unwrap();
            net.backward().unwrap();
            opt.step(&mut net).unwrap();
        }
        let after = params(&mut net);
        assert_ne!(before[0], after[0], "layer 0 trains");
        assert_eq!(before[2], after[2], "frozen layer 2's weight");
        assert_eq!(before[3], after[3], "frozen layer 2's bias");
        // Unfrozen, it trains again, with its own optimizer state.
        net.set_frozen(2, false).unwrap();
        net.loss(&x, Labels::Index(&labels)).unwrap();
        net.backward().unwrap();
        opt.step(&mut net).unwrap();
        assert_ne!(params(&mut net)[2], after[2]);
    }
}

#[test]
fn a_refused_step_moves_no_parameter() {
    let x = Tensor::new(&[2, 3], vec![0.5; 6]).unwrap();
    for mut opt in optimizers() {
        let mut net = Sequential::mlp(&[3, 4, 2], Activation::Relu, Init::He, 3).unwrap();
        net.loss(&x, Labels::Index(&[0, 1])).unwrap();
        net.backward().unwrap();
        // A NaN learning rate: refused before anything moves.
        let lr = opt.learning_rate();
        opt.set_learning_rate(f32::NAN);
        let before = params(&mut net);
        let err = opt.step(&mut net).unwrap_err();
        assert!(matches!(err, densegrad::Error::Argument { .. }), "{err}");
        assert_eq!(params(&mut net), before, "nothing moved");
        opt.set_learning_rate(lr);
        opt.step(&mut net).unwrap();
        assert_ne!(params(&mut net), before);
    }
}

#[test]
fn layers_mut_predict_classes_and_debug() {
    let mut net = Sequential::mlp(&[2, 3, 2], Activation::Sigmoid, Init::Xavier, 5).unwrap();
    assert_eq!(
        format!("{net:?}"),
        "Sequential[Affine(weight [2, 3], bias [3]), Sigmoid, Affine(weight [3, 2], bias [2])]"
    );
    net.layers_mut()[1] = Box::new(Relu::new());
    net.set_frozen(0, true).unwrap();
    assert_eq!(
        format!("{net:?}"),
        "Sequential[Affine(weight [2, 3], bias [3]) frozen, Relu, Affine(weight [3, 2], bias [2])]"
    );
    assert_eq!(net.layers()[1].name(), "Relu");
    let x = Tensor::new(&[3, 2], vec![1.0, -1.0, 0.5, 2.0, f32::NAN, 1.0]).unwrap();
    let classes = net.predict_classes(&x).unwrap();
    let logits = net.predict(&x).unwrap().clone();
    for (row, class) in logits.data().chunks(2).zip(&classes) {
        if row.iter().any(|v| v.is_nan()) {
            assert_eq!(*class, None);
        } else {
            assert_eq!(*class, Some(if row[1] > row[0] { 1 } else { 0 }));
        }
    }
    assert_eq!(classes[2], None);
    assert!(net.predict_classes(&Tensor::zeros(&[1, 3])).is_err());
    assert!(net.set_frozen(3, true).is_err());
    assert!(!net.is_frozen(7));
}

#[cfg(feature = "safetensors")]
#[test]
fn save_bytes_round_trips_and_names_a_duplicate() {
    let mut a = Sequential::mlp(&[3, 4, 2], Activation::Tanh, Init::Xavier, 1).unwrap();
    let mut b = Sequential::mlp(&[3, 4, 2], Activation::Tanh, Init::Xavier, 2).unwrap();
    assert_ne!(params(&mut a), params(&mut b));
    b.load_bytes(&a.save_bytes().unwrap()).unwrap();
    assert_eq!(params(&mut a), params(&mut b));

    /// A layer reporting one state name twice.
    #[derive(Clone)]
    struct Twice(Tensor);
    impl Layer for Twice {
        fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, densegrad::Error> {
            self.0 = x.clone();
            Ok(&self.0)
        }
        fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, densegrad::Error> {
            self.0 = dout.clone();
            Ok(&self.0)
        }
        fn visit_state(&mut self, f: &mut dyn FnMut(densegrad::StateMut<'_>)) {
            f(densegrad::StateMut::new("w", &mut self.0));
            f(densegrad::StateMut::new("w", &mut self.0));
        }
    }
    let net = Sequential::new().with(Twice(Tensor::zeros(&[2])));
    let err = net.save_bytes().unwrap_err();
    assert_eq!(
        err.to_string(),
        "save checkpoint: two state tensors are named 0.w; names must be unique"
    );
}

#[test]
fn a_network_is_send_sync_and_clones_into_an_independent_copy() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<Sequential>();
    let x = Tensor::new(&[2, 3], vec![0.1, 0.2, 0.3, -0.4, 0.5, -0.6]).unwrap();
    let mut a = Sequential::mlp(&[3, 4, 2], Activation::Relu, Init::He, 9)
        .unwrap()
        .with(densegrad::Dropout::new(0.5, 1).unwrap());
    let mut b = a.clone();
    assert_eq!(params(&mut a), params(&mut b));
    // The clone's Dropout draws the same masks: the same loss, bit for bit.
    let la = a.loss(&x, Labels::Index(&[0, 1])).unwrap();
    let lb = b.loss(&x, Labels::Index(&[0, 1])).unwrap();
    assert_eq!(la.to_bits(), lb.to_bits());
    a.backward().unwrap();
    Sgd::new(0.5).step(&mut a).unwrap();
    assert_ne!(
        params(&mut a),
        params(&mut b),
        "training a leaves b as it was"
    );
    // Shared across threads for evaluation, read-only.
    let net = std::sync::Arc::new(b);
    let n = std::thread::spawn({
        let net = net.clone();
        move || net.len()
    })
    .join()
    .unwrap();
    assert_eq!(n, 4);
}

#[test]
fn bad_hyperparameters_are_refused_before_any_parameter_moves() {
    let x = Tensor::new(&[2, 3], vec![0.5; 6]).unwrap();
    let bad: Vec<(Box<dyn Optimizer>, &str)> = vec![
        (
            Box::new(Sgd::new(f32::NAN)),
            "learning rate NaN must be finite and >= 0",
        ),
        (
            Box::new(Sgd::new(-0.1)),
            "learning rate -0.1 must be finite and >= 0",
        ),
        (
            Box::new(Sgd::new(0.1).with_weight_decay(f32::INFINITY)),
            "weight decay inf must be finite and >= 0",
        ),
        (
            Box::new(Momentum::new(0.1, 1.0)),
            "momentum 1 must be in [0, 1)",
        ),
        (
            Box::new(Nesterov::new(0.1, -0.5)),
            "momentum -0.5 must be in [0, 1)",
        ),
        (
            Box::new(RmsProp::new(0.1, 1.5)),
            "decay 1.5 must be in [0, 1)",
        ),
        (
            Box::new(Adam::new(0.001).with_betas(1.0, 1.0)),
            "beta1 1 must be in [0, 1)",
        ),
        (
            Box::new(Adam::new(0.001).with_betas(0.9, 1.0)),
            "beta2 1 must be in [0, 1)",
        ),
        (
            Box::new(Adam::new(0.001).with_eps(0.0)),
            "eps 0 must be finite and > 0",
        ),
        (
            Box::new(AdaGrad::new(f32::NEG_INFINITY)),
            "learning rate -inf must be finite and >= 0",
        ),
    ];
    for (mut opt, says) in bad {
        let mut net = Sequential::mlp(&[3, 4, 2], Activation::Relu, Init::He, 3).unwrap();
        net.loss(&x, Labels::Index(&[0, 1])).unwrap();
        net.backward().unwrap();
        let before = params(&mut net);
        let err = opt.step(&mut net).unwrap_err();
        assert!(matches!(err, densegrad::Error::Argument { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("optimizer step: {says}"));
        assert_eq!(params(&mut net), before, "nothing moved");
    }
    // A schedule that drives the rate to NaN is caught at the next step.
    let mut opt = Sgd::new(0.1);
    opt.set_learning_rate(f32::NAN);
    let mut net = Sequential::mlp(&[3, 2], Activation::Relu, Init::He, 3).unwrap();
    net.loss(&x, Labels::Index(&[0, 1])).unwrap();
    net.backward().unwrap();
    assert!(opt.step(&mut net).is_err());
}

#[test]
fn gradient_check_leaves_the_network_alone_and_refuses_randomness_and_nan() {
    use densegrad::{BatchNorm, Dropout};
    let x = Tensor::new(&[4, 3], (0..12).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap();
    let labels = [0, 1, 1, 0];
    // BatchNorm in training mode: deterministic, but its running
    // statistics would move on every forward; the check runs on a copy.
    let net = Sequential::mlp(&[3, 4, 2], Activation::Tanh, Init::Xavier, 2)
        .unwrap()
        .with(BatchNorm::new(2).unwrap());
    let mut before = Vec::new();
    net.visit_state_ref(&mut |_, t| before.push(t.data().to_vec()));
    assert!(
        net.gradient_check(&x, Labels::Index(&labels), 1e-2)
            .unwrap()
            < 2e-2
    );
    let mut after = Vec::new();
    net.visit_state_ref(&mut |_, t| after.push(t.data().to_vec()));
    assert_eq!(before, after, "running statistics moved");

    // Dropout while training: random, refused.
    let mut noisy = Sequential::mlp(&[3, 4, 2], Activation::Tanh, Init::Xavier, 2)
        .unwrap()
        .with(Dropout::new(0.5, 3).unwrap());
    let err = noisy
        .gradient_check(&x, Labels::Index(&labels), 1e-2)
        .unwrap_err();
    assert!(err.to_string().contains("random"), "{err}");
    noisy.set_training(false);
    assert!(
        noisy
            .gradient_check(&x, Labels::Index(&labels), 1e-2)
            .unwrap()
            < 1e-2
    );

    // NaN gradients fail, whichever way the result is compared.
    let mut nan = Sequential::mlp(&[3, 2], Activation::Relu, Init::He, 1).unwrap();
    nan.visit_params(&mut |mut p| {
        if p.shape().len() == 1 {
            p.values_mut()[0] = f32::NAN;
        }
    });
    let r = nan
        .gradient_check(&x, Labels::Index(&labels), 1e-2)
        .unwrap();
    assert!(r == f32::INFINITY, "{r}");
}

#[test]
fn evaluation_is_in_evaluation_mode_and_changes_nothing() {
    use densegrad::{BatchNorm, Dropout};
    let x = Tensor::new(&[6, 3], (0..18).map(|i| (i as f32 * 0.71).cos()).collect()).unwrap();
    let labels = [0, 1, 2, 0, 1, 2];
    let mut net = Sequential::mlp(&[3, 8, 3], Activation::Relu, Init::He, 4)
        .unwrap()
        .with(Dropout::new(0.5, 9).unwrap())
        .with(BatchNorm::new(3).unwrap());
    assert!(net.is_training());
    let mut state = Vec::new();
    net.visit_state_ref(&mut |_, t| state.push(t.data().to_vec()));
    let first = net.evaluate(&x, &labels, 4).unwrap();
    for _ in 0..3 {
        let again = net.evaluate(&x, &labels, 4).unwrap();
        assert_eq!((again.0.to_bits(), again.1), (first.0.to_bits(), first.1));
        assert_eq!(net.accuracy(&x, &labels, 5).unwrap(), first.1);
    }
    let mut after = Vec::new();
    net.visit_state_ref(&mut |_, t| after.push(t.data().to_vec()));
    assert_eq!(state, after, "BatchNorm's running statistics moved");
    assert!(net.is_training(), "the mode is put back");
    // The same as evaluating in evaluation mode by hand.
    net.set_training(false);
    assert_eq!(net.evaluate(&x, &labels, 6).unwrap().1, first.1);
}

/// Values that are not shapes are `Error::Argument`; a failed file operation
/// is `Error::Io` whose `source()` is the operating system's error. The
/// messages stay as they were.
#[test]
fn errors_have_a_kind_and_io_errors_a_source() {
    use densegrad::{BatchNorm, Dropout, ErrorKind, LeakyRelu, Pooling};
    let argument = [
        BatchNorm::with_options(4, 1.5, 1e-5)
            .map(|_| ())
            .unwrap_err(),
        Dropout::new(1.5, 0).map(|_| ()).unwrap_err(),
        LeakyRelu::new(f32::NAN).map(|_| ()).unwrap_err(),
        Pooling::new(2, 2, 0, 0).map(|_| ()).unwrap_err(),
        Pooling::new(2, 2, 2, 2).map(|_| ()).unwrap_err(),
        Init::Normal { std: -1.0 }
            .weights(2, 2, &mut densegrad::InitRng::new(0))
            .map(|_| ())
            .unwrap_err(),
        Sgd::new(f32::NAN).check().unwrap_err(),
    ];
    for e in &argument {
        assert_eq!(e.kind(), ErrorKind::Argument, "{e}");
        assert!(e.to_string().starts_with(e.op()), "{e}");
        assert!(e.to_string().ends_with(e.message()), "{e}");
    }
    assert_eq!(
        argument[0].to_string(),
        "batchnorm new: momentum 1.5 must be in [0, 1] and eps 0.00001 finite and > 0"
    );
    assert_eq!(
        Relu::new()
            .backward(Tensor::zeros(&[1]))
            .unwrap_err()
            .kind(),
        ErrorKind::State
    );

    #[cfg(feature = "safetensors")]
    {
        use std::error::Error as _;
        let mut net = Sequential::mlp(&[2, 2], Activation::Relu, Init::He, 0).unwrap();
        let err = net.load("/nonexistent/dir/net.safetensors").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("an io::Error source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(err
            .to_string()
            .starts_with("load checkpoint: /nonexistent/dir/net.safetensors: "));
        assert!(Relu::new()
            .backward(Tensor::zeros(&[1]))
            .unwrap_err()
            .source()
            .is_none());
    }
}
