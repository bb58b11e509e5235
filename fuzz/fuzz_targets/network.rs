//! The composed network Affine→ReLU→Affine→Sigmoid→Affine→SoftmaxWithLoss
//! (plus Tanh, Dropout, BatchNorm variants) on arbitrary sizes and values,
//! in both label kinds: no panic, Err for bad shapes, finite results for
//! bounded inputs, the same bits at 1 and 2 threads.
#![no_main]

use densegrad::{Activation, BatchNorm, Dropout, Init, Labels, Sequential, Tensor};
use libfuzzer_sys::fuzz_target;

mod common;
use common::{bits, pools, Bytes};

fn run(data: &[u8]) -> Vec<Vec<u32>> {
    let mut b = Bytes(data);
    let raw = b.u8() & 1 == 1;
    let dims: Vec<usize> = (0..2 + b.size(3)).map(|_| b.size(9)).collect();
    let act = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu(0.1),
    ][b.size(3)];
    let seed = b.u32() as u64;
    let mut net = match Sequential::mlp(&dims, act, Init::He, seed) {
        Ok(net) => net,
        Err(_) => {
            assert!(dims.contains(&0));
            return Vec::new();
        }
    };
    let c = *dims.last().unwrap();
    match b.size(3) {
        1 => net = net.with(Dropout::new(0.3, seed).unwrap()),
        2 => net = net.with(BatchNorm::new(c).unwrap()),
        _ => {}
    }
    let n = b.size(5);
    let width = if b.u8() % 5 == 0 { b.size(9) } else { dims[0] };
    let xs = b.values(n * width, raw, 10.0);
    let x = Tensor::new(&[n, width], xs.clone()).unwrap();
    let labels: Vec<usize> = (0..n).map(|_| b.size(c)).collect();
    let t = Tensor::new(
        &[n, c],
        (0..n * c)
            .map(|i| if i % c == 0 { 1.0 } else { 0.0 })
            .collect(),
    )
    .unwrap();
    let mut out = Vec::new();
    for lab in [Labels::Index(&labels), Labels::OneHot(&t)] {
        match net.loss(&x, lab) {
            Ok(loss) => {
                assert!(n > 0 && width == dims[0]);
                if !raw {
                    assert!(loss.is_finite() && loss >= 0.0, "loss {loss}");
                }
                net.backward().unwrap();
                net.visit_params(&mut |p, g| {
                    assert_eq!(p.shape(), g.shape());
                    if !raw {
                        assert!(g.data().iter().all(|v| v.is_finite()));
                    }
                    out.push(bits(g.data()));
                });
                out.push(vec![loss.to_bits()]);
            }
            Err(_) => {
                let bad_labels = matches!(lab, Labels::Index(l) if l.iter().any(|&v| v >= c));
                assert!(
                    n == 0 || width != dims[0] || bad_labels,
                    "refused a valid batch"
                );
                assert!(net.backward().is_err());
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (one, two) = pools();
    let a = one.install(|| run(data));
    let b = two.install(|| run(data));
    assert!(a == b, "results differ between 1 and 2 threads");
});
