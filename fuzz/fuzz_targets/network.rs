//! The composed network Affine→ReLU→Affine→Sigmoid→Affine→SoftmaxWithLoss
//! (plus Tanh, Dropout, BatchNorm variants), and the convolutional one
//! Convolution→ReLU→Pooling→Affine→SoftmaxWithLoss, on arbitrary sizes,
//! strides, paddings and values, in both label kinds: no panic, Err exactly
//! for bad shapes, finite results for bounded inputs, the same bits at 1 and
//! 2 threads.
#![no_main]

use densegrad::{
    Activation, Affine, BatchNorm, Convolution, Dropout, Init, Labels, Pooling, Relu, Sequential,
    Tensor,
};
use libfuzzer_sys::fuzz_target;

mod common;
use common::{bits, pools, Bytes};

/// Output size of a window of `k` over `len` padded by `pad`, or `None`
/// when the window is larger than the padded input.
fn out_len(len: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = len + 2 * pad;
    (k <= padded).then(|| (padded - k) / stride + 1)
}

/// Convolution→ReLU→Pooling→Affine→SoftmaxWithLoss.
fn run_conv(b: &mut Bytes, raw: bool) -> Vec<Vec<u32>> {
    let (fnum, c) = (1 + b.size(3), 1 + b.size(2));
    let (fh, fw) = (1 + b.size(4), 1 + b.size(4));
    let (stride, pad) = (1 + b.size(2), b.size(2));
    let (ph, pw) = (1 + b.size(2), 1 + b.size(2));
    let (pstride, ppad) = (1 + b.size(2), b.size(1).min(ph / 2).min(pw / 2));
    let classes = 1 + b.size(4);
    let (n, xc, h, w) = (
        b.size(4),
        if b.u8() % 7 == 0 { b.size(3) } else { c },
        b.size(12),
        b.size(12),
    );
    let seed = b.u32() as u64;
    // The Affine width the network expects, from the geometry it was built
    // for (the input's own sizes, unless they make no valid network).
    let conv_out = out_len(h, fh, stride, pad).zip(out_len(w, fw, stride, pad));
    let pool_out = conv_out
        .and_then(|(oh, ow)| out_len(oh, ph, pstride, ppad).zip(out_len(ow, pw, pstride, ppad)));
    let valid = n > 0 && xc == c && h > 0 && w > 0 && pool_out.is_some();
    let feat = pool_out.map_or(1, |(a, b)| fnum * a * b);
    let mut net = Sequential::new()
        .with(Convolution::with_init([fnum, c, fh, fw], stride, pad, Init::He, seed).unwrap())
        .with(Relu::new())
        .with(Pooling::new(ph, pw, pstride, ppad).unwrap())
        .with(Affine::with_init(feat, classes, Init::He, seed ^ 1).unwrap());
    let xs = b.values(n * xc * h * w, raw, 10.0);
    let x = Tensor::new(&[n, xc, h, w], xs).unwrap();
    let labels: Vec<usize> = (0..n).map(|_| b.size(classes - 1)).collect();
    let mut out = Vec::new();
    check_step(&mut net, &x, Labels::Index(&labels), valid, raw, &mut out);
    out
}

/// One loss + backward: `Ok` exactly when `valid`; then a finite, ≥ 0 loss
/// and finite gradients of the parameters' shapes for bounded input (their
/// bits pushed to `out`); else backward refused too.
fn check_step(
    net: &mut Sequential,
    x: &Tensor,
    t: Labels<'_>,
    valid: bool,
    raw: bool,
    out: &mut Vec<Vec<u32>>,
) {
    match net.loss(x, t) {
        Ok(loss) => {
            assert!(valid, "accepted an invalid batch {:?}", x.shape());
            if !raw {
                assert!(loss.is_finite() && loss >= 0.0, "loss {loss}");
            }
            net.backward().unwrap();
            net.visit_params(&mut |p| {
                let g = p.grad();
                assert_eq!(p.shape(), g.shape());
                if !raw {
                    assert!(g.data().iter().all(|v| v.is_finite()));
                }
                out.push(bits(g.data()));
            });
            out.push(vec![loss.to_bits()]);
        }
        Err(e) => {
            assert!(!valid, "refused a valid batch {:?}: {e}", x.shape());
            assert!(net.backward().is_err());
        }
    }
}

fn run(data: &[u8]) -> Vec<Vec<u32>> {
    let mut b = Bytes(data);
    let mode = b.u8();
    let raw = mode & 1 == 1;
    if mode & 2 == 2 {
        return run_conv(&mut b, raw);
    }
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
        let bad_labels = matches!(lab, Labels::Index(l) if l.iter().any(|&v| v >= c));
        let valid = n > 0 && width == dims[0] && !bad_labels;
        check_step(&mut net, &x, lab, valid, raw, &mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (one, two) = pools();
    let a = one.install(|| run(data));
    let b = two.install(|| run(data));
    assert!(a == b, "results differ between 1 and 2 threads");
});
