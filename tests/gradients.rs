//! Gradient checks: every analytic gradient against central finite
//! differences of an f64 evaluation of the same function (see
//! `common::check_grad`; tolerance `common::GRAD_TOL`: |a − n| ≤ 1e-4 +
//! 1e-4·|n|, step h = 1e-5). ReLU inputs are kept ≥ 0.05 away from the kink
//! so that no finite-difference step crosses it.
//!
//! Each layer is checked through the scalar `L = Σ out ⊙ R` for a random R,
//! so `dout = R` exercises arbitrary upstream gradients, not just ones.

mod common;

use common::*;
use densegrad::{Affine, Labels, Layer, Relu, Sigmoid, SoftmaxWithLoss, Tensor};
use proptest::prelude::*;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn shapes() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=6, 1usize..=11)
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn relu_dx((n, k) in shapes(), xs in values_off_zero(66, 3.0, 0.05), rs in values(66, 2.0)) {
        let (x, r) = (&xs[..n * k], &rs[..n * k]);
        let mut relu = Relu::new();
        relu.forward(&tensor(&[n, k], x.to_vec())).unwrap();
        let dx = relu.backward(tensor(&[n, k], r.to_vec())).unwrap();
        let r64 = to64(r);
        check_grad("relu dx", dx.data(), &to64(x), |x| dot(&relu64(x), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn sigmoid_dx((n, k) in shapes(), xs in values(66, 6.0), rs in values(66, 2.0)) {
        let (x, r) = (&xs[..n * k], &rs[..n * k]);
        let mut sig = Sigmoid::new();
        sig.forward(&tensor(&[n, k], x.to_vec())).unwrap();
        let dx = sig.backward(tensor(&[n, k], r.to_vec())).unwrap();
        let r64 = to64(r);
        check_grad("sigmoid dx", dx.data(), &to64(x), |x| dot(&sigmoid64(x), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn affine_dx_dw_db(
        (n, k) in shapes(), m in 1usize..=9,
        xs in values(66, 2.0), ws in values(99, 2.0), bs in values(9, 2.0), rs in values(54, 2.0),
        one_d in any::<bool>(),
    ) {
        // A 1-D input is one sample; check that path when n = 1.
        let one_d = one_d && n == 1;
        let (x, w, b, r) = (&xs[..n * k], &ws[..k * m], &bs[..m], &rs[..n * m]);
        let mut fc = Affine::new(tensor(&[k, m], w.to_vec()), Tensor::from_slice(b)).unwrap();
        let (x_shape, y_shape) = if one_d { (vec![k], vec![m]) } else { (vec![n, k], vec![n, m]) };
        fc.forward(&tensor(&x_shape, x.to_vec())).unwrap();
        let dx = fc.backward(tensor(&y_shape, r.to_vec())).unwrap();
        prop_assert_eq!(dx.shape(), &x_shape[..]);
        let (x64, w64, b64, r64) = (to64(x), to64(w), to64(b), to64(r));
        check_grad("affine dx", dx.data(), &x64, |x| dot(&affine64(x, n, k, &w64, m, &b64), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
        check_grad("affine dw", fc.dw().unwrap().data(), &w64, |w| dot(&affine64(&x64, n, k, w, m, &b64), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
        check_grad("affine db", fc.db().unwrap().data(), &b64, |b| dot(&affine64(&x64, n, k, &w64, m, b), &r64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn softmax_with_loss_dx_both_label_kinds(
        (n, c) in shapes(), xs in values(66, 5.0), raw in proptest::collection::vec(0usize..100, 6),
        t in prob_rows(6, 11), dout in 0.1f32..3.0,
    ) {
        let x = &xs[..n * c];
        let labels: Vec<usize> = raw[..n].iter().map(|v| v % c).collect();
        let mut dense = Vec::new();
        for r in 0..n {
            let row = &t[r * 11..r * 11 + c];
            let s: f32 = row.iter().sum();
            dense.extend(row.iter().map(|v| v / s));
        }
        let xt = tensor(&[n, c], x.to_vec());
        let x64 = to64(x);
        let d = dout as f64;

        let mut swl = SoftmaxWithLoss::new();
        swl.forward(&xt, Labels::Index(&labels)).unwrap();
        let dx = swl.backward(dout).unwrap();
        check_grad("loss dx (index)", dx.data(), &x64, |x| d * xent_index64(x, c, &labels), GRAD_TOL)
            .map_err(TestCaseError::fail)?;

        let t64 = to64(&dense);
        swl.forward(&xt, Labels::OneHot(&tensor(&[n, c], dense.clone()))).unwrap();
        let dx = swl.backward(dout).unwrap();
        check_grad("loss dx (one-hot)", dx.data(), &x64, |x| d * xent_dense64(x, c, &t64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn soft_targets_not_summing_to_one_get_the_exact_gradient(
        c in 1usize..=7, xs in values(7, 4.0), ts in proptest::collection::vec(0.0f32..2.0, 7),
    ) {
        let (x, t) = (&xs[..c], &ts[..c]);
        let mut swl = SoftmaxWithLoss::new();
        swl.forward(&Tensor::from_slice(x), Labels::OneHot(&Tensor::from_slice(t))).unwrap();
        let dx = swl.backward(1.0).unwrap();
        let t64 = to64(t);
        check_grad("loss dx (unnormalized)", dx.data(), &to64(x), |x| xent_dense64(x, c, &t64), GRAD_TOL)
            .map_err(TestCaseError::fail)?;
    }
}

/// The composed network Affine→ReLU→Affine→Sigmoid→Affine→SoftmaxWithLoss.
#[derive(Debug)]
struct Net {
    dims: [usize; 4],
    params: [Vec<f32>; 6], // w1, b1, w2, b2, w3, b3
}

enum Target {
    Index(Vec<usize>),
    Dense(Vec<f32>),
}

impl Net {
    fn param_shape(&self, i: usize) -> Vec<usize> {
        let d = self.dims;
        if i.is_multiple_of(2) {
            vec![d[i / 2], d[i / 2 + 1]]
        } else {
            vec![d[i / 2 + 1]]
        }
    }

    /// The f64 loss with parameter group `which` replaced by `p` (or `x` if
    /// `which == 6`), and the ReLU pre-activations.
    fn loss64(&self, x: &[f64], n: usize, t: &Target, which: usize, p: &[f64]) -> (f64, Vec<f64>) {
        let d = self.dims;
        let mut ps: Vec<Vec<f64>> = self.params.iter().map(|v| to64(v)).collect();
        let mut x = x.to_vec();
        if which < 6 {
            ps[which] = p.to_vec();
        } else {
            x = p.to_vec();
        }
        let z1 = affine64(&x, n, d[0], &ps[0], d[1], &ps[1]);
        let h1 = relu64(&z1);
        let h2 = sigmoid64(&affine64(&h1, n, d[1], &ps[2], d[2], &ps[3]));
        let z3 = affine64(&h2, n, d[2], &ps[4], d[3], &ps[5]);
        let loss = match t {
            Target::Index(l) => xent_index64(&z3, d[3], l),
            Target::Dense(t) => xent_dense64(&z3, d[3], &to64(t)),
        };
        (loss, z1)
    }
}

fn net_strategy() -> impl Strategy<Value = (usize, Net, Vec<f32>, Vec<usize>, Vec<f32>)> {
    (1usize..=4, 1usize..=6, 1usize..=7, 1usize..=6, 1usize..=5).prop_flat_map(
        |(n, d0, d1, d2, d3)| {
            let dims = [d0, d1, d2, d3];
            (
                values(n * d0, 2.0),
                values(d0 * d1, 1.0),
                values(d1, 1.0),
                values(d1 * d2, 1.0),
                values(d2, 1.0),
                values(d2 * d3, 1.0),
                values(d3, 1.0),
                proptest::collection::vec(0..d3, n),
                prob_rows(n, d3),
            )
                .prop_map(move |(x, w1, b1, w2, b2, w3, b3, labels, t)| {
                    (
                        n,
                        Net {
                            dims,
                            params: [w1, b1, w2, b2, w3, b3],
                        },
                        x,
                        labels,
                        t,
                    )
                })
        },
    )
}

fn check_network(n: usize, net: &Net, x: &[f32], target: Target) -> Result<(), TestCaseError> {
    let d = net.dims;
    let x64 = to64(x);
    let (_, z1) = net.loss64(&x64, n, &target, 6, &x64);
    // Keep ReLU away from its kink: a finite-difference step must not cross it.
    prop_assume!(z1.iter().all(|z| z.abs() > 1e-2));

    let mut layers: Vec<Affine> = (0..3)
        .map(|i| {
            Affine::new(
                tensor(&net.param_shape(2 * i), net.params[2 * i].clone()),
                Tensor::from_slice(&net.params[2 * i + 1]),
            )
            .unwrap()
        })
        .collect();
    let (mut relu, mut sig, mut swl) = (Relu::new(), Sigmoid::new(), SoftmaxWithLoss::new());
    let xt = tensor(&[n, d[0]], x.to_vec());
    let z1 = layers[0].forward(&xt).unwrap();
    let z2 = layers[1].forward(&relu.forward(&z1).unwrap()).unwrap();
    let h = sig.forward(&z2).unwrap();
    let z3 = layers[2].forward(&h).unwrap();
    let t_tensor;
    let labels = match &target {
        Target::Index(l) => Labels::Index(l),
        Target::Dense(t) => {
            t_tensor = tensor(&[n, d[3]], t.clone());
            Labels::OneHot(&t_tensor)
        }
    };
    let loss = swl.forward(&z3, labels).unwrap();
    let (loss64, _) = net.loss64(&x64, n, &target, 6, &x64);
    prop_assert!((loss as f64 - loss64).abs() <= 1e-5 * (1.0 + loss64));

    let g = swl.backward(1.0).unwrap();
    let g = layers[2].backward(g).unwrap();
    let g = layers[1].backward(sig.backward(g).unwrap()).unwrap();
    let dx = layers[0].backward(relu.backward(g).unwrap()).unwrap();

    check_grad(
        "net dx",
        dx.data(),
        &x64,
        |p| net.loss64(&x64, n, &target, 6, p).0,
        GRAD_TOL,
    )
    .map_err(TestCaseError::fail)?;
    for (i, layer) in layers.iter().enumerate() {
        let (w, b) = (to64(&net.params[2 * i]), to64(&net.params[2 * i + 1]));
        check_grad(
            &format!("net dW{}", i + 1),
            layer.dw().unwrap().data(),
            &w,
            |p| net.loss64(&x64, n, &target, 2 * i, p).0,
            GRAD_TOL,
        )
        .map_err(TestCaseError::fail)?;
        check_grad(
            &format!("net db{}", i + 1),
            layer.db().unwrap().data(),
            &b,
            |p| net.loss64(&x64, n, &target, 2 * i + 1, p).0,
            GRAD_TOL,
        )
        .map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn composed_network_index_labels((n, net, x, labels, _) in net_strategy()) {
        check_network(n, &net, &x, Target::Index(labels))?;
    }

    #[test]
    fn composed_network_one_hot_labels((n, net, x, _, t) in net_strategy()) {
        check_network(n, &net, &x, Target::Dense(t))?;
    }
}

/// The checker must reject a wrong gradient, or passing it proves nothing.
/// Two of the notebook's quirks, taken literally, are wrong gradients of the
/// mean loss: ignoring `dout`, and dividing a 1-D sample by its class count.
#[test]
fn the_checker_catches_the_notebooks_wrong_gradients() {
    let x = [1.0f32, 8.0, 3.0];
    let x64 = to64(&x);
    let dout = 0.5f32;
    let mut swl = SoftmaxWithLoss::new();
    swl.forward(&Tensor::from_slice(&x), Labels::Index(&[1]))
        .unwrap();
    let objective = |x: &[f64]| dout as f64 * xent_index64(x, 3, &[1]);

    let right = swl.backward(dout).unwrap();
    assert!(check_grad("right", right.data(), &x64, objective, GRAD_TOL).is_ok());

    let ignores_dout = swl.backward(1.0).unwrap();
    let err = check_grad(
        "ignores dout",
        ignores_dout.data(),
        &x64,
        objective,
        GRAD_TOL,
    )
    .unwrap_err();
    assert!(err.starts_with("ignores dout[0]"), "{err}");

    let divided_by_c: Vec<f32> = right.data().iter().map(|g| g / 3.0).collect();
    assert!(check_grad("divided by C", &divided_by_c, &x64, objective, GRAD_TOL).is_err());
}

/// A transposed weight gradient (the classic Affine bug) is also caught.
#[test]
fn the_checker_catches_a_transposed_weight_gradient() {
    let (n, k, m) = (3, 2, 2);
    let x = [0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5];
    let w = [1.0f32, -2.0, 0.5, 3.0];
    let r = [1.0f32, 2.0, -1.0, 0.5, 0.25, -2.0];
    let mut fc = Affine::new(tensor(&[k, m], w.to_vec()), Tensor::zeros(&[m])).unwrap();
    fc.forward(&tensor(&[n, k], x.to_vec())).unwrap();
    fc.backward(tensor(&[n, m], r.to_vec())).unwrap();
    let dw = fc.dw().unwrap().data().to_vec();
    let transposed = [dw[0], dw[2], dw[1], dw[3]];
    let (x64, r64) = (to64(&x), to64(&r));
    let f = |w: &[f64]| dot(&affine64(&x64, n, k, w, m, &[0.0, 0.0]), &r64);
    assert!(check_grad("dw", &dw, &to64(&w), f, GRAD_TOL).is_ok());
    assert!(check_grad("transposed dw", &transposed, &to64(&w), f, GRAD_TOL).is_err());
}
