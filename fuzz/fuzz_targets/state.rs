//! Parameters and state replaced between calls, as a user can through
//! `visit_state`: a tensor of any shape and any values offered to an
//! Affine, a Convolution or a BatchNorm between forward, backward, an
//! optimizer step, evaluation and checkpointing. Checks: a tensor of
//! another shape is refused and changes nothing, so the shapes never
//! change; no panic; a refused forward leaves backward refused; a network
//! reads back its own checkpoint; with sane values back, it trains again.
#![no_main]

use densegrad::optim::{Optimizer, Sgd};
use densegrad::{
    Affine, BatchNorm, Convolution, Init, Labels, Pooling, Relu, Reshape, Sequential, Tensor,
};
use libfuzzer_sys::fuzz_target;

mod common;
use common::Bytes;

fn build() -> Sequential {
    Sequential::new()
        .with(Reshape::new(&[1, 4, 4]).unwrap())
        .with(Convolution::with_init([2, 1, 3, 3], 1, 1, Init::He, 1).unwrap())
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0).unwrap())
        .with(Affine::with_init(8, 5, Init::He, 2).unwrap())
        .with(BatchNorm::new(5).unwrap())
        .with(Affine::with_init(5, 3, Init::He, 3).unwrap())
}

/// The shapes of every state tensor, in visit order.
fn shapes(net: &Sequential) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    net.visit_state_ref(&mut |_, t| out.push(t.shape().to_vec()));
    out
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut net = build();
    let good = shapes(&net);
    let x = Tensor::new(&[4, 16], b.values(64, false, 3.0)).unwrap();
    let labels = [0, 1, 2, 1];
    let mut opt = Sgd::new(0.05);
    for _ in 0..1 + b.size(5) {
        // Swap one state tensor (a parameter or BatchNorm's statistics).
        let victim = b.size(good.len() - 1);
        let ndim = b.size(4);
        let mut shape: Vec<usize> = (0..ndim).map(|_| b.size(9)).collect();
        if b.u8() & 1 == 1 {
            shape = good[victim].clone();
        }
        let n: usize = shape.iter().product();
        let raw = b.u8() & 1 == 1;
        let values = Tensor::new(&shape, b.values(n, raw, 5.0)).unwrap();
        let mut i = 0;
        net.visit_state(&mut |mut s| {
            if i == victim {
                let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                let before = bits(s.value());
                let r = s.copy_from(&values);
                assert_eq!(r.is_ok(), shape == good[victim], "{r:?}");
                if r.is_err() {
                    // Bits, not values: an earlier copy may have put NaN there.
                    assert_eq!(bits(s.value()), before, "a refused copy changed the values");
                }
            }
            i += 1;
        });
        assert_eq!(shapes(&net), good, "a state tensor changed shape");
        // Then any of the calls: no panic, and a refused forward leaves
        // backward refused.
        match b.size(4) {
            0 => {
                if net.loss(&x, Labels::Index(&labels)).is_err() {
                    assert!(net.backward().is_err(), "backward after a refused forward");
                }
            }
            1 => {
                let _ = net.backward();
            }
            2 => {
                let _ = opt.step(&mut net);
            }
            3 => {
                let _ = net.evaluate(&x, &labels, 3);
            }
            _ => {
                if let Ok(bytes) = net.save_bytes() {
                    // The same network reads its own checkpoint back.
                    net.clone().load_bytes(&bytes).unwrap();
                }
            }
        }
    }
    // Put sane values back (a fresh network's) and train.
    let fresh = build();
    let mut good_values = Vec::new();
    fresh.visit_state_ref(&mut |_, t| good_values.push(t.clone()));
    let mut i = 0;
    net.visit_state(&mut |mut s| {
        s.copy_from(&good_values[i]).unwrap();
        i += 1;
    });
    let loss = net.loss(&x, Labels::Index(&labels)).unwrap();
    assert!(loss.is_finite(), "loss {loss}");
    net.backward().unwrap();
    opt.step(&mut net).unwrap();
    assert!(net.loss(&x, Labels::Index(&labels)).unwrap().is_finite());
});
