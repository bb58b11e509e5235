//! Convolution and Pooling: forward values against f64 references, gradients
//! against central finite differences of f64 evaluations, PyTorch's values,
//! bad input, and bitwise determinism at 1–4 threads.
//!
//! Forward tolerance (convolution): the dot-product bound used for Affine,
//! `|y − y64| ≤ 2(K + 2)·ε·(Σ|x||w| + |b|)` with K = C·FH·FW taps.
//! Pooling is exact (a maximum rounds nothing).

mod common;

use common::*;
use densegrad::{
    Affine, Convolution, Error, Labels, Layer, Pooling, Relu, Sequential, SoftmaxWithLoss, Tensor,
};
use proptest::prelude::*;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A convolution geometry: ([n, c, h, w], [fnum, c, fh, fw], stride, pad)
/// whose kernel fits the padded input.
fn conv_case(
    max_n: usize,
    max_c: usize,
    max_hw: usize,
    max_f: usize,
    max_k: usize,
) -> impl Strategy<Value = ([usize; 4], [usize; 4], usize, usize)> {
    (
        1..=max_n,
        1..=max_c,
        1..=max_hw,
        1..=max_hw,
        1..=max_f,
        1..=max_k,
        1..=max_k,
        1usize..=3,
        0usize..=2,
    )
        .prop_filter("kernel fits the padded input", |t| {
            t.5 <= t.2 + 2 * t.8 && t.6 <= t.3 + 2 * t.8
        })
        .prop_map(|(n, c, h, w, f, fh, fw, s, p)| ([n, c, h, w], [f, c, fh, fw], s, p))
}

fn numel(s: [usize; 4]) -> usize {
    s.iter().product()
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn convolution_forward_matches_f64(
        (xs, ws, stride, pad) in conv_case(3, 3, 9, 4, 5),
        xv in values(3 * 3 * 81, 3.0), wv in values(4 * 3 * 25, 1.0), bv in values(4, 1.0),
    ) {
        let (x, w, b) = (&xv[..numel(xs)], &wv[..numel(ws)], &bv[..ws[0]]);
        let mut conv = Convolution::new(tensor(&ws, w.to_vec()), Tensor::from_slice(b), stride, pad).unwrap();
        let y = conv.forward(&tensor(&xs, x.to_vec())).unwrap();
        let (want, oh, ow) = conv2d64(&to64(x), xs, &to64(w), ws, &to64(b), stride, pad);
        prop_assert_eq!(y.shape(), &[xs[0], ws[0], oh, ow][..]);
        let abs_x: Vec<f64> = x.iter().map(|v| v.abs() as f64).collect();
        let abs_w: Vec<f64> = w.iter().map(|v| v.abs() as f64).collect();
        let abs_b: Vec<f64> = b.iter().map(|v| v.abs() as f64).collect();
        let (scale, _, _) = conv2d64(&abs_x, xs, &abs_w, ws, &abs_b, stride, pad);
        let k = (ws[1] * ws[2] * ws[3]) as f64;
        for ((got, want), scale) in y.data().iter().zip(&want).zip(&scale) {
            let bound = 2.0 * (k + 2.0) * f32::EPSILON as f64 * scale;
            prop_assert!((*got as f64 - want).abs() <= bound, "{} vs {} (bound {:e})", got, want, bound);
        }
    }

    #[test]
    fn pooling_forward_matches_f64_exactly(
        n in 1usize..=2, c in 1usize..=3, h in 1usize..=9, w in 1usize..=9,
        ph in 1usize..=4, pw in 1usize..=4, stride in 1usize..=3, pad in 0usize..=2,
        xv in values(2 * 3 * 81, 5.0),
    ) {
        prop_assume!(2 * pad <= ph && 2 * pad <= pw && ph <= h + 2 * pad && pw <= w + 2 * pad);
        let xs = [n, c, h, w];
        let x = &xv[..numel(xs)];
        let mut pool = Pooling::new(ph, pw, stride, pad).unwrap();
        let y = pool.forward(&tensor(&xs, x.to_vec())).unwrap();
        let (want, oh, ow) = maxpool64(&to64(x), xs, ph, pw, stride, pad);
        prop_assert_eq!(y.shape(), &[n, c, oh, ow][..]);
        prop_assert_eq!(to64(y.data()), want);
    }
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn convolution_dx_dw_db(
        (xs, ws, stride, pad) in conv_case(2, 2, 6, 3, 3),
        xv in values(2 * 2 * 36, 2.0), wv in values(3 * 2 * 9, 1.0), bv in values(3, 1.0),
        rv in values(2 * 3 * 100, 2.0),
    ) {
        let (x, w, b) = (&xv[..numel(xs)], &wv[..numel(ws)], &bv[..ws[0]]);
        let mut conv = Convolution::new(tensor(&ws, w.to_vec()), Tensor::from_slice(b), stride, pad).unwrap();
        let y = conv.forward(&tensor(&xs, x.to_vec())).unwrap();
        let r = &rv[..y.numel()];
        let dx = conv.backward(tensor(y.shape(), r.to_vec())).unwrap();
        prop_assert_eq!(dx.shape(), &xs[..]);
        let (x64, w64, b64, r64) = (to64(x), to64(w), to64(b), to64(r));
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&conv2d64(x, xs, w, ws, b, stride, pad).0, &r64);
        check_grad("conv dx", dx.data(), &x64, |x| loss(x, &w64, &b64), GRAD_TOL).map_err(TestCaseError::fail)?;
        check_grad("conv dw", conv.dw().unwrap().data(), &w64, |w| loss(&x64, w, &b64), GRAD_TOL).map_err(TestCaseError::fail)?;
        check_grad("conv db", conv.db().unwrap().data(), &b64, |b| loss(&x64, &w64, b), GRAD_TOL).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn pooling_dx_without_ties(
        n in 1usize..=2, c in 1usize..=2, h in 1usize..=7, w in 1usize..=7,
        ph in 1usize..=3, pw in 1usize..=3, stride in 1usize..=3, pad in 0usize..=1,
        perm in Just((0..2 * 2 * 49).collect::<Vec<usize>>()).prop_shuffle(),
        rv in values(2 * 2 * 81, 2.0),
    ) {
        prop_assume!(2 * pad <= ph && 2 * pad <= pw && ph <= h + 2 * pad && pw <= w + 2 * pad);
        let xs = [n, c, h, w];
        // Distinct values 0.1 apart: no finite-difference step reorders them.
        let x: Vec<f32> = perm.iter().filter(|&&i| i < numel(xs)).map(|&i| i as f32 * 0.1 - 5.0).collect();
        let mut pool = Pooling::new(ph, pw, stride, pad).unwrap();
        let y = pool.forward(&tensor(&xs, x.clone())).unwrap();
        let r = &rv[..y.numel()];
        let dx = pool.backward(tensor(y.shape(), r.to_vec())).unwrap();
        let r64 = to64(r);
        check_grad("pool dx", dx.data(), &to64(&x), |x| dot(&maxpool64(x, xs, ph, pw, stride, pad).0, &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    /// Convolution → ReLU → Pooling → Affine → SoftmaxWithLoss, every
    /// gradient (dX, dW and db of both parameterised layers).
    #[test]
    fn composed_conv_relu_pool_affine_loss(
        n in 1usize..=3, c in 1usize..=2, hw in 4usize..=7, fnum in 1usize..=3, k in 1usize..=3,
        pad in 0usize..=1, classes in 1usize..=4,
        xv in values(3 * 2 * 49, 2.0), wv in values(3 * 2 * 9, 1.0), bv in values(3, 0.5),
        av in values(3 * 49 * 4, 1.0), abv in values(4, 0.5), raw in proptest::collection::vec(0usize..100, 3),
    ) {
        let xs = [n, c, hw, hw];
        let ws = [fnum, c, k, k];
        let (x, w, b) = (&xv[..numel(xs)], &wv[..numel(ws)], &bv[..fnum]);
        let (cy, oh, ow) = conv2d64(&to64(x), xs, &to64(w), ws, &to64(b), 1, pad);
        // Keep every ReLU input and every pooled pair of positive values
        // away from a kink, so that no finite-difference step crosses one.
        prop_assume!(cy.iter().all(|v| v.abs() > 1e-3));
        let (ph, pw) = (2, 2);
        prop_assume!(oh >= 2 && ow >= 2);
        let relu: Vec<f64> = relu64(&cy);
        let pooled_shape = [n, fnum, oh, ow];
        for plane in relu.chunks(oh * ow) {
            for oy in 0..oh / 2 {
                for ox in 0..ow / 2 {
                    let mut win: Vec<f64> = (0..4).map(|t| plane[(2 * oy + t / 2) * ow + 2 * ox + t % 2]).filter(|&v| v > 0.0).collect();
                    win.sort_by(|a, b| b.total_cmp(a));
                    prop_assume!(win.len() < 2 || win[0] - win[1] > 1e-3);
                }
            }
        }
        let (_, poh, pow) = maxpool64(&relu, pooled_shape, ph, pw, 2, 0);
        let feat = fnum * poh * pow;
        let (aw, ab) = (&av[..feat * classes], &abv[..classes]);
        let labels: Vec<usize> = raw[..n].iter().map(|v| v % classes).collect();

        let mut conv = Convolution::new(tensor(&ws, w.to_vec()), Tensor::from_slice(b), 1, pad).unwrap();
        let mut relu_l = Relu::new();
        let mut pool = Pooling::new(ph, pw, 2, 0).unwrap();
        let mut fc = Affine::new(tensor(&[feat, classes], aw.to_vec()), Tensor::from_slice(ab)).unwrap();
        let mut loss = SoftmaxWithLoss::new();
        let h1 = conv.forward(&tensor(&xs, x.to_vec())).unwrap();
        let h2 = relu_l.forward(&h1).unwrap();
        let h3 = pool.forward(&h2).unwrap();
        let logits = fc.forward(&h3).unwrap();
        let l = loss.forward(&logits, Labels::Index(&labels)).unwrap();
        let d = loss.backward(1.0).unwrap();
        let d = fc.backward(d).unwrap();
        prop_assert_eq!(d.shape(), h3.shape());
        let dx = conv.backward(relu_l.backward(pool.backward(d).unwrap()).unwrap()).unwrap();

        let (x64, w64, b64, aw64, ab64) = (to64(x), to64(w), to64(b), to64(aw), to64(ab));
        let f = |x: &[f64], w: &[f64], b: &[f64], aw: &[f64], ab: &[f64]| {
            let (y, _, _) = conv2d64(x, xs, w, ws, b, 1, pad);
            let (p, _, _) = maxpool64(&relu64(&y), pooled_shape, ph, pw, 2, 0);
            xent_index64(&affine64(&p, n, feat, aw, classes, ab), classes, &labels)
        };
        let l64 = f(&x64, &w64, &b64, &aw64, &ab64);
        prop_assert!((l as f64 - l64).abs() <= 1e-5 * (1.0 + l64.abs()));
        check_grad("net dx", dx.data(), &x64, |x| f(x, &w64, &b64, &aw64, &ab64), GRAD_TOL).map_err(TestCaseError::fail)?;
        check_grad("net conv dw", conv.dw().unwrap().data(), &w64, |w| f(&x64, w, &b64, &aw64, &ab64), GRAD_TOL).map_err(TestCaseError::fail)?;
        check_grad("net conv db", conv.db().unwrap().data(), &b64, |b| f(&x64, &w64, b, &aw64, &ab64), GRAD_TOL).map_err(TestCaseError::fail)?;
        check_grad("net affine dw", fc.dw().unwrap().data(), &aw64, |aw| f(&x64, &w64, &b64, aw, &ab64), GRAD_TOL).map_err(TestCaseError::fail)?;
        check_grad("net affine db", fc.db().unwrap().data(), &ab64, |ab| f(&x64, &w64, &b64, &aw64, ab), GRAD_TOL).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn a_kernel_equal_to_the_padded_input_gives_one_output() {
    // 3×2 input, pad 1: padded 5×4, and the kernel is 5×4.
    let xs = [2, 2, 3, 2];
    let ws = [3, 2, 5, 4];
    let x: Vec<f32> = (0..numel(xs)).map(|i| (i as f32 * 0.37).sin()).collect();
    let w: Vec<f32> = (0..numel(ws)).map(|i| (i as f32 * 0.11).cos()).collect();
    let b = [0.5, -0.25, 1.0];
    let mut conv = Convolution::new(tensor(&ws, w.clone()), Tensor::from_slice(&b), 2, 1).unwrap();
    let y = conv.forward(&tensor(&xs, x.clone())).unwrap();
    assert_eq!(y.shape(), &[2, 3, 1, 1]);
    let (want, _, _) = conv2d64(&to64(&x), xs, &to64(&w), ws, &to64(&b), 2, 1);
    for (g, w) in y.data().iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
    }
    // One pixel too large is an error.
    let mut too_big =
        Convolution::new(Tensor::zeros(&[1, 2, 6, 4]), Tensor::zeros(&[1]), 1, 1).unwrap();
    let err = too_big.forward(&tensor(&xs, x)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "convolution forward: window 6×4 is larger than the padded input 5×4 (input 3×2, pad 1)"
    );
}

#[test]
fn batches_that_split_into_chunks_match_the_f64_reference() {
    // 37 MNIST-sized samples: 13 chunks of 3, the last one short.
    let xs = [37, 1, 28, 28];
    let ws = [30, 1, 5, 5];
    let x: Vec<f32> = (0..numel(xs))
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let w: Vec<f32> = (0..numel(ws))
        .map(|i| (i as f32 * 0.7).sin() * 0.2)
        .collect();
    let b: Vec<f32> = (0..30).map(|i| i as f32 * 0.01).collect();
    let mut conv = Convolution::new(tensor(&ws, w.clone()), Tensor::from_slice(&b), 1, 0).unwrap();
    let y = conv.forward(&tensor(&xs, x.clone())).unwrap();
    let (want, _, _) = conv2d64(&to64(&x), xs, &to64(&w), ws, &to64(&b), 1, 0);
    for (g, w) in y.data().iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-5 * (1.0 + w.abs()));
    }
    // dW = Σ over samples and pixels: compare with the f64 sum for dY = 1.
    conv.backward_params_only(&Tensor::new(y.shape(), vec![1.0; y.numel()]).unwrap())
        .unwrap();
    let dw = conv.dw().unwrap().data();
    for (tap, &got) in dw.iter().enumerate().take(25) {
        let (i, j) = (tap / 5, tap % 5);
        let mut want = 0.0f64;
        for s in 0..37 {
            for oy in 0..24 {
                for ox in 0..24 {
                    want += x[s * 784 + (oy + i) * 28 + ox + j] as f64;
                }
            }
        }
        assert!(
            (got as f64 - want).abs() < 1e-5 * want.abs(),
            "{got} vs {want}"
        );
    }
    assert_eq!(conv.db().unwrap().data(), &[(37 * 576) as f32; 30]);
}

/// Values PyTorch 2.15 computed (`scripts/torch_conv_reference.py` writes
/// `tests/data/torch_conv.txt`): conv2d with stride 2, pad 1, FH ≠ FW; ReLU;
/// max_pool2d 3×2 stride 2 pad 1; the sum of the output weighted by R, and
/// its gradients.
#[test]
fn pytorch_values() {
    let text = include_str!("data/torch_conv.txt");
    let mut arrays = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, vals) = line.split_once(':').unwrap();
        let vals: Vec<f32> = vals
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        arrays.insert(name.trim().to_string(), vals);
    }
    let get = |n: &str| arrays[n].clone();
    let xs = [2, 3, 7, 6];
    let ws = [4, 3, 3, 2];
    let mut conv =
        Convolution::new(tensor(&ws, get("w")), Tensor::from_slice(&get("b")), 2, 1).unwrap();
    let mut relu = Relu::new();
    let mut pool = Pooling::new(3, 2, 2, 1).unwrap();
    let y = conv.forward(&tensor(&xs, get("x"))).unwrap();
    let close = |what: &str, got: &[f32], want: &[f32]| {
        assert_eq!(got.len(), want.len(), "{what} length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs PyTorch {w}"
            );
        }
    };
    close("conv", y.data(), &get("conv"));
    let p = pool.forward(&relu.forward(&y).unwrap()).unwrap();
    close("pool", p.data(), &get("pool"));
    let r = get("r");
    let dy = relu
        .backward(pool.backward(tensor(p.shape(), r)).unwrap())
        .unwrap();
    let dx = conv.backward(dy).unwrap();
    close("dx", dx.data(), &get("dx"));
    close("dw", conv.dw().unwrap().data(), &get("dw"));
    close("db", conv.db().unwrap().data(), &get("db"));
}

#[test]
fn sequential_trains_a_small_convnet_and_checkpoints_it() {
    let conv = Convolution::with_init([4, 1, 3, 3], 1, 1, densegrad::Init::He, 3).unwrap();
    let fc = Affine::new(Tensor::zeros(&[4 * 4 * 4, 2]), Tensor::zeros(&[2])).unwrap();
    let mut net = Sequential::new()
        .with(conv)
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0).unwrap())
        .with(fc);
    // Two classes: a bright left half or a bright right half.
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for i in 0..8 {
        let right = i % 2;
        for y in 0..8 {
            for x in 0..8 {
                let on = (x >= 4) == (right == 1);
                data.push(if on { 1.0 } else { 0.0 } + (y * x) as f32 * 0.001);
            }
        }
        labels.push(right);
    }
    let x = tensor(&[8, 1, 8, 8], data);
    let first = net.loss(&x, Labels::Index(&labels)).unwrap();
    let mut last = first;
    for _ in 0..30 {
        last = net.loss(&x, Labels::Index(&labels)).unwrap();
        net.backward().unwrap();
        net.visit_params(&mut |mut p| {
            let (values, grad) = p.values_and_grad();
            for (v, g) in values.iter_mut().zip(grad) {
                *v -= 0.1 * g;
            }
        });
    }
    assert!(last < first * 0.5, "{first} → {last}");
    assert_eq!(net.accuracy(&x, &labels, 3).unwrap(), 1.0);

    let path = std::env::temp_dir().join(format!("conv-ckpt-{}.safetensors", std::process::id()));
    net.save(&path).unwrap();
    let mut names = Vec::new();
    net.visit_state(&mut |s| names.push((s.name().to_string(), s.shape().to_vec())));
    assert_eq!(names[0], ("0.weight".to_string(), vec![4, 1, 3, 3]));
    assert_eq!(names[1], ("0.bias".to_string(), vec![4]));
    let mut other = Sequential::new()
        .with(Convolution::with_init([4, 1, 3, 3], 1, 1, densegrad::Init::He, 9).unwrap())
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0).unwrap())
        .with(Affine::new(Tensor::zeros(&[64, 2]), Tensor::zeros(&[2])).unwrap());
    other.load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (a, b) = (
        net.predict(&x).unwrap().clone(),
        other.predict(&x).unwrap().clone(),
    );
    assert_eq!(a, b);
}

fn argument_err(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(e @ Error::Argument { .. }) => e.to_string(),
        other => panic!("expected an argument error, got {other:?}"),
    }
}

fn shape_err(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(e @ Error::Shape { .. }) => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn bad_input_is_an_error_naming_the_operation_and_shapes() {
    let z = Tensor::zeros;
    // Construction.
    assert_eq!(
        shape_err(Convolution::new(z(&[3, 5, 5]), z(&[3]), 1, 0)),
        "convolution new: weight is [3, 5, 5] but must be 4-D (filters, channels, height, width)"
    );
    assert_eq!(
        shape_err(Convolution::new(z(&[3, 1, 5, 5]), z(&[4]), 1, 0)),
        "convolution new: bias is [4] but weight is [3, 1, 5, 5]: bias must be [3]"
    );
    assert_eq!(
        shape_err(Convolution::new(z(&[3, 0, 5, 5]), z(&[3]), 1, 0)),
        "convolution new: weight is [3, 0, 5, 5]; every dimension must be at least 1"
    );
    assert_eq!(
        argument_err(Convolution::new(z(&[3, 1, 5, 5]), z(&[3]), 0, 0)),
        "convolution new: stride must be at least 1"
    );
    assert_eq!(
        shape_err(Pooling::new(2, 0, 2, 0)),
        "pooling new: window 2×0 is empty; both sizes must be at least 1"
    );
    assert_eq!(
        argument_err(Pooling::new(2, 2, 0, 0)),
        "pooling new: stride must be at least 1"
    );

    let mut conv = Convolution::new(z(&[3, 2, 3, 3]), z(&[3]), 1, 0).unwrap();
    let mut pool = Pooling::new(2, 2, 2, 0).unwrap();
    // Backward before forward.
    for r in [
        conv.backward(z(&[1, 3, 2, 2])).map(|_| ()),
        pool.backward(z(&[1, 3, 2, 2])).map(|_| ()),
    ] {
        assert!(matches!(r, Err(Error::State { .. })), "{r:?}");
    }
    // Input not 4-D, wrong channels, empty batch, window too large.
    assert_eq!(
        shape_err(conv.forward(&z(&[2, 8, 8]))),
        "convolution forward: x is [2, 8, 8] but must be 4-D (batch, channels, height, width)"
    );
    assert_eq!(
        shape_err(conv.forward(&z(&[1, 3, 8, 8]))),
        "convolution forward: x is [1, 3, 8, 8] but weight is [3, 2, 3, 3]: x needs 2 channels"
    );
    assert_eq!(
        shape_err(conv.forward(&z(&[0, 2, 8, 8]))),
        "convolution forward: input [0, 2, 8, 8] is empty; a batch needs at least one element"
    );
    assert_eq!(
        shape_err(conv.forward(&z(&[1, 2, 2, 8]))),
        "convolution forward: window 3×3 is larger than the padded input 2×8 (input 2×8, pad 0)"
    );
    assert_eq!(
        shape_err(pool.forward(&z(&[4, 4]))),
        "pooling forward: x is [4, 4] but must be 4-D (batch, channels, height, width)"
    );
    assert_eq!(
        shape_err(pool.forward(&z(&[1, 1, 1, 4]))),
        "pooling forward: window 2×2 is larger than the padded input 1×4 (input 1×4, pad 0)"
    );
    assert_eq!(
        shape_err(pool.forward(&z(&[1, 0, 4, 4]))),
        "pooling forward: input [1, 0, 4, 4] is empty; a batch needs at least one element"
    );
    // dout of the wrong shape.
    conv.forward(&z(&[1, 2, 4, 4])).unwrap();
    assert_eq!(
        shape_err(conv.backward(z(&[1, 3, 2, 3]))),
        "convolution backward: dout is [1, 3, 2, 3] but the forward output was [1, 3, 2, 2]"
    );
    pool.forward(&z(&[1, 2, 4, 4])).unwrap();
    assert_eq!(
        shape_err(pool.backward(z(&[1, 2, 2]))),
        "pooling backward: dout is [1, 2, 2] but the forward output was [1, 2, 2, 2]"
    );
    // A refused forward leaves nothing for backward.
    assert!(conv.forward(&z(&[1, 3, 4, 4])).is_err());
    assert!(matches!(
        conv.backward(z(&[1, 3, 2, 2])),
        Err(Error::State { .. })
    ));
    assert!(pool.forward(&z(&[1, 1, 1, 1])).is_err());
    assert!(matches!(
        pool.backward(z(&[1, 2, 2, 2])),
        Err(Error::State { .. })
    ));
}

#[test]
fn sizes_that_overflow_or_cannot_be_allocated_are_errors() {
    // A 1×1 image padded by 2^40: the output size overflows.
    let mut conv = Convolution::new(
        Tensor::zeros(&[1, 1, 1, 1]),
        Tensor::zeros(&[1]),
        1,
        1 << 40,
    )
    .unwrap();
    let err = shape_err(conv.forward(&Tensor::zeros(&[1, 1, 1, 1])));
    assert!(err.contains("more elements than memory can hold"), "{err}");
    // Padded by 2^20: 2^42 outputs, 16 TiB, refused by the allocator.
    let mut conv = Convolution::new(
        Tensor::zeros(&[2, 1, 1, 1]),
        Tensor::zeros(&[2]),
        1,
        1 << 20,
    )
    .unwrap();
    let err = shape_err(conv.forward(&Tensor::zeros(&[1, 1, 1, 1])));
    assert!(err.contains("memory"), "{err}");
}
