//! Every layer's forward and backward, and the free functions, on arbitrary
//! shapes and arbitrary f32 bit patterns, in both label kinds. Properties:
//! `Err` exactly for bad shapes; for finite inputs, finite outputs; softmax
//! rows in [0, 1] summing to 1 and unchanged by adding a constant to a row;
//! loss ≥ 0; ReLU/Sigmoid outputs in range; the same bits at 1 and 2 threads.
#![no_main]

use densegrad::{
    cross_entropy, log_softmax, softmax, Affine, Labels, Layer, LeakyRelu, Relu, Sigmoid,
    SoftmaxWithLoss, Tanh, Tensor,
};
use libfuzzer_sys::fuzz_target;

mod common;
use common::{bits, pools, Bytes};

fn run(data: &[u8]) -> Vec<Vec<u32>> {
    let mut b = Bytes(data);
    let raw = b.u8() & 1 == 1; // arbitrary bit patterns, or finite |v| <= 1e3
    let (n, k, m) = (b.size(6), b.size(19), b.size(9));
    let xs = b.values(n * k, raw, 1e3);
    let x = Tensor::new(&[n, k], xs.clone()).unwrap();
    let finite = xs.iter().all(|v| v.is_finite());
    let mut out = Vec::new();

    // Elementwise layers.
    let d = Tensor::new(&[n, k], b.values(n * k, raw, 1e3)).unwrap();
    let mut layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("relu", Box::new(Relu::new())),
        ("sigmoid", Box::new(Sigmoid::new())),
        ("tanh", Box::new(Tanh::new())),
        ("leaky", Box::new(LeakyRelu::new(0.1).unwrap())),
    ];
    for (name, layer) in &mut layers {
        match layer.forward(&x) {
            Ok(y) => {
                assert!(n * k > 0, "{name} accepted an empty input");
                for (&xv, &yv) in xs.iter().zip(y.data()) {
                    assert_eq!(
                        xv.is_nan(),
                        yv.is_nan(),
                        "{name}: NaN in iff NaN out ({xv} -> {yv})"
                    );
                    match *name {
                        "relu" => assert!(yv.is_nan() || yv >= 0.0),
                        "sigmoid" => assert!(yv.is_nan() || (0.0..=1.0).contains(&yv)),
                        "tanh" => assert!(yv.is_nan() || (-1.0..=1.0).contains(&yv)),
                        _ => {}
                    }
                    if xv.is_finite() && *name != "leaky" {
                        assert!(yv.is_finite(), "{name}({xv}) = {yv}");
                    }
                }
                let dx = layer.backward(d.clone()).unwrap();
                assert_eq!(dx.shape(), x.shape());
                out.push(bits(y.data()));
                out.push(bits(dx.data()));
            }
            Err(_) => assert_eq!(n * k, 0, "{name} refused a non-empty input"),
        }
    }

    // Affine (K, M), possibly mismatched with x.
    let wk = if b.u8() % 4 == 0 { b.size(19) } else { k };
    let w = Tensor::new(&[wk, m], b.values(wk * m, raw, 1e3)).unwrap();
    let bias = Tensor::new(&[m], b.values(m, raw, 1e3)).unwrap();
    match Affine::new(w, bias) {
        Ok(mut fc) => {
            assert!(wk > 0 && m > 0);
            match fc.forward(&x) {
                Ok(y) => {
                    assert!(wk == k && n > 0);
                    assert_eq!(y.shape(), &[n, m]);
                    let dy = Tensor::new(&[n, m], b.values(n * m, raw, 1e3)).unwrap();
                    let dx = fc.backward(dy).unwrap();
                    assert_eq!(dx.shape(), x.shape());
                    if !raw {
                        // |x|, |w|, |b| <= 1e3 and K <= 19: no overflow.
                        assert!(y.data().iter().all(|v| v.is_finite()));
                        assert!(fc.dw().unwrap().data().iter().all(|v| v.is_finite()));
                    }
                    out.push(bits(y.data()));
                    out.push(bits(dx.data()));
                    out.push(bits(fc.dw().unwrap().data()));
                }
                Err(_) => assert!(wk != k || n * k == 0),
            }
        }
        Err(_) => assert!(wk == 0 || m == 0),
    }

    // Softmax, log-softmax and the loss over rows of k classes.
    match softmax(&x) {
        Ok(y) => {
            assert!(n * k > 0);
            for (row, yrow) in xs.chunks(k).zip(y.data().chunks(k)) {
                if row.iter().all(|v| v.is_finite()) {
                    assert!(yrow.iter().all(|p| (0.0..=1.0).contains(p)), "{yrow:?}");
                    let s: f64 = yrow.iter().map(|&p| p as f64).sum();
                    assert!((s - 1.0).abs() <= 1e-6 * k as f64, "row sums to {s}");
                }
            }
            out.push(bits(y.data()));
            // Shift invariance: + c with |c| small enough to add exactly to
            // these bounded values is (up to rounding of x + c) invisible.
            if !raw && finite {
                let c = (b.u8() as f32 - 128.0) / 4.0;
                let shifted: Vec<f32> = xs.iter().map(|v| v + c).collect();
                let exact = shifted.iter().zip(&xs).all(|(s, v)| s - c == *v);
                if exact {
                    let y2 = softmax(&Tensor::new(&[n, k], shifted).unwrap()).unwrap();
                    for (a, b2) in y.data().iter().zip(y2.data()) {
                        assert!(
                            (a - b2).abs() <= 4.0 * f32::EPSILON * a.max(*b2) + 1e-30,
                            "shift changed {a} to {b2}"
                        );
                    }
                }
            }
            let ly = log_softmax(&x).unwrap();
            if finite {
                assert!(ly.data().iter().all(|v| *v <= 0.0 || v.is_nan()));
            }
        }
        Err(_) => assert_eq!(n * k, 0),
    }
    // Usually one label per row; sometimes a wrong count. Labels reach k
    // (one past the last class) to exercise the range check.
    let count = if b.u8() % 8 == 0 { b.size(7) } else { n };
    let labels: Vec<usize> = (0..count).map(|_| b.size(k)).collect();
    let t = Tensor::new(
        &[n, k],
        b.values(n * k, false, 1.0)
            .iter()
            .map(|v| v.abs())
            .collect(),
    )
    .unwrap();
    for labels_kind in [Labels::Index(&labels), Labels::OneHot(&t)] {
        let mut swl = SoftmaxWithLoss::new();
        match swl.forward(&x, labels_kind) {
            Ok(loss) => {
                if finite {
                    assert!(loss >= 0.0 && !loss.is_nan(), "loss {loss}");
                    if !raw {
                        assert!(loss.is_finite(), "finite bounded logits, loss {loss}");
                    }
                }
                let dx = swl.backward(1.0).unwrap();
                assert_eq!(dx.shape(), x.shape());
                out.push(vec![loss.to_bits()]);
                out.push(bits(dx.data()));
                assert_eq!(
                    cross_entropy(&x, labels_kind).unwrap().to_bits(),
                    loss.to_bits()
                );
            }
            Err(_) => {
                if let Labels::Index(l) = labels_kind {
                    assert!(
                        n * k == 0 || l.len() != n || l.iter().any(|&c| c >= k),
                        "refused valid labels"
                    );
                }
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
