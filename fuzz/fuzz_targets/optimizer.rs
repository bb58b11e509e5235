//! Optimizer hyperparameters from arbitrary f32 bit patterns (NaN, ±∞,
//! negatives, subnormals, 1.0 for momenta and betas), and a learning-rate
//! schedule that changes between steps. Checks: `step` is an `Err` exactly
//! when `check` says so, and then no parameter moved; otherwise, with a
//! learning rate and weight decay up to 1e6, parameters up to 1e15 and
//! finite gradients, no parameter becomes NaN.
#![no_main]

use densegrad::optim::{AdaGrad, Adam, Momentum, Nesterov, Optimizer, RmsProp, Sgd};
use densegrad::{Activation, Init, Labels, Sequential, Tensor};
use libfuzzer_sys::fuzz_target;

mod common;
use common::Bytes;

fn params(net: &Sequential) -> Vec<u32> {
    let mut out = Vec::new();
    net.visit_state_ref(&mut |_, t| out.extend(t.data().iter().map(|v| v.to_bits())));
    out
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    // Hyperparameters: usually plausible, sometimes any bit pattern.
    let mut hp = |plausible: f32| {
        if b.u8() % 4 == 0 {
            b.f32_bits()
        } else {
            plausible * (b.u8() as f32 / 128.0)
        }
    };
    let (lr, wd, mu, b1, b2, eps) = (hp(0.1), hp(0.0), hp(0.9), hp(0.9), hp(0.999), hp(1e-8));
    let mut opt: Box<dyn Optimizer> = match b.size(5) {
        0 => Box::new(Sgd::new(lr).with_weight_decay(wd)),
        1 => Box::new(Momentum::new(lr, mu).with_weight_decay(wd)),
        2 => Box::new(Nesterov::new(lr, mu).with_weight_decay(wd)),
        3 => Box::new(AdaGrad::new(lr).with_weight_decay(wd)),
        4 => Box::new(RmsProp::new(lr, mu).with_weight_decay(wd)),
        _ => Box::new(
            Adam::new(lr)
                .with_betas(b1, b2)
                .with_eps(eps)
                .with_weight_decay(wd),
        ),
    };
    let mut net = Sequential::mlp(&[3, 4, 2], Activation::Tanh, Init::Xavier, 7).unwrap();
    let x = Tensor::new(&[2, 3], b.values(6, false, 5.0)).unwrap();
    for _ in 0..1 + b.size(3) {
        if b.u8() % 3 == 0 {
            let next = b.f32_bits();
            opt.set_learning_rate(next);
        }
        net.loss(&x, Labels::Index(&[0, 1])).unwrap();
        net.backward().unwrap();
        let before = params(&net);
        let mut finite_grads = true;
        net.visit_params(&mut |p| finite_grads &= p.grad().data().iter().all(|v| v.is_finite()));
        let valid = opt.check().is_ok();
        match opt.step(&mut net) {
            Ok(()) => {
                assert!(valid, "step accepted what check refuses");
                let lr = opt.learning_rate();
                // Parameters of sane size (wd·p and lr·g cannot overflow).
                let finite_before = before.iter().all(|&v| f32::from_bits(v).abs() <= 1e15);
                // A huge weight decay or rate can overflow to ±∞ (then NaN
                // at the next step): the property holds for sane scales.
                if lr <= 1e6 && wd <= 1e6 && finite_before && finite_grads {
                    let mut nan = false;
                    net.visit_state_ref(&mut |_, t| nan |= t.data().iter().any(|v| v.is_nan()));
                    assert!(!nan, "a valid step (lr {lr}) made a NaN parameter");
                }
            }
            Err(e) => {
                assert!(!valid, "check accepts what step refused: {e}");
                assert_eq!(params(&net), before, "a refused step moved a parameter");
                return;
            }
        }
    }
});
