//! Every public entry point fed bad input: wrong shapes, wrong label counts,
//! labels ≥ C, empty batches, 0-D tensors, backward before forward, and NaN /
//! ±∞ values. Bad shapes and labels give an `Err` whose message names the
//! operation and the shapes; nothing panics. Non-finite *values* are not
//! errors: they propagate as documented (NaN in, NaN out where it belongs).

mod common;

use common::tensor;
use densegrad::{
    cross_entropy, log_softmax, softmax, Affine, Error, Labels, Layer, Relu, Sigmoid,
    SoftmaxWithLoss, Tensor,
};

fn msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.unwrap_err().to_string()
}

fn affine(k: usize, m: usize) -> Affine {
    Affine::new(Tensor::zeros(&[k, m]), Tensor::zeros(&[m])).unwrap()
}

#[test]
fn tensor_constructors() {
    assert_eq!(
        msg(Tensor::new(&[2, 3], vec![0.0; 7])),
        "tensor new: shape [2, 3] holds 6 elements but data has 7"
    );
    assert!(msg(Tensor::new(&[usize::MAX, usize::MAX], vec![]))
        .contains("more elements than memory can hold"));
    assert!(Tensor::new(&[0, 5], vec![]).is_ok());
    assert!(Tensor::new(&[], vec![1.0]).is_ok());
    assert!(Tensor::new(&[], vec![]).is_err());
    assert!(Tensor::try_zeros(&[usize::MAX, 3]).is_err());
    let mut t = Tensor::zeros(&[2, 3]);
    assert_eq!(
        msg(t.reshape(&[5])),
        "tensor reshape: cannot reshape [2, 3] (6 elements) to [5] (5 elements)"
    );
    assert!(msg(t.reshape(&[usize::MAX, 2])).contains("overflows"));
    assert_eq!(
        t.shape(),
        &[2, 3],
        "a failed reshape leaves the tensor as it was"
    );
}

#[test]
fn backward_before_forward_is_an_error_everywhere() {
    let d = Tensor::zeros(&[2, 2]);
    assert_eq!(
        msg(Relu::new().backward(d.clone())),
        "relu backward: backward called before forward"
    );
    assert_eq!(
        msg(Sigmoid::new().backward(d.clone())),
        "sigmoid backward: backward called before forward"
    );
    assert_eq!(
        msg(affine(2, 2).backward(d)),
        "affine backward: backward called before forward"
    );
    assert_eq!(
        msg(SoftmaxWithLoss::new().backward(1.0)),
        "softmax with loss backward: backward called before forward"
    );
}

#[test]
fn empty_batches_are_errors_everywhere() {
    let empty = Tensor::zeros(&[0, 4]);
    assert_eq!(
        msg(Relu::new().forward(&empty)),
        "relu forward: input [0, 4] is empty; a batch needs at least one element"
    );
    assert!(
        msg(Sigmoid::new().forward(&empty)).starts_with("sigmoid forward: input [0, 4] is empty")
    );
    assert!(msg(affine(4, 2).forward(&empty)).starts_with("affine forward: input [0, 4] is empty"));
    assert!(msg(softmax(&empty)).starts_with("softmax: x [0, 4] is empty"));
    assert!(msg(log_softmax(&Tensor::zeros(&[3, 0]))).starts_with("log softmax: x [3, 0] is empty"));
    let e = msg(SoftmaxWithLoss::new().forward(&empty, Labels::Index(&[])));
    assert!(
        e.starts_with("softmax with loss forward: logits [0, 4] are empty"),
        "{e}"
    );
    assert!(cross_entropy(&Tensor::zeros(&[0]), Labels::Index(&[])).is_err());
    // (2, 0, 4) flattens to 2 rows of 0 features: the feature count is what is wrong.
    assert!(msg(affine(4, 2).forward(&Tensor::zeros(&[2, 0, 4])))
        .contains("(flattened to [2, 0]) but weight is [4, 2]"));
}

#[test]
fn zero_dimensional_inputs() {
    let s = Tensor::new(&[], vec![-2.0]).unwrap();
    assert_eq!(Relu::new().forward(&s).unwrap().data(), &[0.0]); // elementwise: fine
    assert!(msg(affine(1, 1).forward(&s)).contains("0-D scalar"));
    assert!(msg(softmax(&s)).contains("0-D scalar"));
    assert!(msg(SoftmaxWithLoss::new().forward(&s, Labels::Index(&[0])))
        .contains("must be 1-D [C] or 2-D [N, C]"));
}

#[test]
fn affine_shapes() {
    assert_eq!(
        msg(affine(784, 50).forward(&Tensor::zeros(&[100, 783]))),
        "affine forward: x is [100, 783] but weight is [784, 50]: x needs 784 features per row"
    );
    assert_eq!(
        msg(affine(784, 50).forward(&Tensor::zeros(&[100, 28, 27]))),
        "affine forward: x is [100, 28, 27] (flattened to [100, 756]) but weight is [784, 50]: x needs 784 features per row"
    );
    assert!(
        msg(affine(4, 3).forward(&Tensor::zeros(&[5]))).contains("x is [5] but weight is [4, 3]")
    );
    assert_eq!(
        msg(Affine::new(Tensor::zeros(&[4]), Tensor::zeros(&[4]))),
        "affine new: weight is [4] but must be 2-D (in_features, out_features)"
    );
    assert_eq!(
        msg(Affine::new(Tensor::zeros(&[0, 4]), Tensor::zeros(&[4]))),
        "affine new: weight is [0, 4]; both dimensions must be at least 1"
    );
    assert_eq!(
        msg(Affine::new(Tensor::zeros(&[4, 3]), Tensor::zeros(&[1, 3]))),
        "affine new: bias is [1, 3] but weight is [4, 3]: bias must be [3]"
    );

    let mut fc = affine(4, 3);
    fc.forward(&Tensor::zeros(&[2, 4])).unwrap();
    assert_eq!(
        msg(fc.backward(Tensor::zeros(&[2, 4]))),
        "affine backward: dout is [2, 4] but the forward output was [2, 3]"
    );
    assert!(fc.backward(Tensor::zeros(&[3])).is_err());
    assert!(fc.dw().is_none(), "a failed backward stores no gradient");
}

#[test]
fn elementwise_backward_shapes() {
    let mut relu = Relu::new();
    relu.forward(&Tensor::zeros(&[2, 3])).unwrap();
    assert_eq!(
        msg(relu.backward(Tensor::zeros(&[3, 2]))),
        "relu backward: dout is [3, 2] but the forward output was [2, 3]"
    );
    let mut sig = Sigmoid::new();
    sig.forward(&Tensor::zeros(&[6])).unwrap();
    assert_eq!(
        msg(sig.backward(Tensor::zeros(&[2, 3]))),
        "sigmoid backward: dout is [2, 3] but the forward output was [6]"
    );
}

#[test]
fn loss_labels() {
    let x = Tensor::zeros(&[4, 10]);
    let mut swl = SoftmaxWithLoss::new();
    assert_eq!(
        msg(swl.forward(&x, Labels::Index(&[1, 2, 3]))),
        "softmax with loss forward: 3 labels for logits [4, 10], which have 4 row(s)"
    );
    assert_eq!(
        msg(swl.forward(&x, Labels::Index(&[1, 2, 10, 3]))),
        "softmax with loss forward: label 10 at row 2 is out of range for 10 classes"
    );
    assert_eq!(
        msg(swl.forward(&x, Labels::OneHot(&Tensor::zeros(&[4, 9])))),
        "softmax with loss forward: targets are [4, 9] but logits are [4, 10]; one-hot targets need the logits' shape"
    );
    let mut t = Tensor::zeros(&[4, 10]);
    t.data_mut()[13] = -0.5;
    assert_eq!(
        msg(swl.forward(&x, Labels::OneHot(&t))),
        "softmax with loss forward: target at row 1, class 3 is -0.5; targets must be finite and >= 0"
    );
    for bad in [f32::NAN, f32::INFINITY] {
        t.data_mut()[13] = bad;
        assert!(swl.forward(&x, Labels::OneHot(&t)).is_err());
    }
    assert!(
        msg(swl.forward(&Tensor::zeros(&[2, 3, 4]), Labels::Index(&[0, 0])))
            .contains("[2, 3, 4] but must be 1-D [C] or 2-D [N, C]")
    );
    assert!(msg(cross_entropy(&x, Labels::Index(&[0]))).starts_with("cross entropy: 1 labels"));
    // Nothing was cached by the failed calls.
    assert!(swl.backward(1.0).is_err());
    assert!(swl.probabilities().is_none());
}

/// Until issue 11 a refused forward kept the previous forward's cache, so
/// the next backward returned a stale gradient; now it is an `Err`, and the
/// next good forward works as before.
#[test]
fn a_failed_forward_drops_the_previous_cache() {
    let mut swl = SoftmaxWithLoss::new();
    let x = Tensor::from_slice(&[1.0, 8.0, 3.0]);
    swl.forward(&x, Labels::Index(&[1])).unwrap();
    let before = swl.backward(1.0).unwrap();
    assert!(swl
        .forward(&Tensor::zeros(&[2, 5]), Labels::Index(&[7, 0]))
        .is_err());
    assert!(matches!(swl.backward(1.0), Err(Error::State { .. })));
    swl.forward(&x, Labels::Index(&[1])).unwrap();
    assert_eq!(swl.backward(1.0).unwrap(), before);
}

#[test]
fn nan_propagates_where_it_belongs() {
    let nan = f32::NAN;
    // ReLU: NaN in → NaN out, and NaN gradient at that position only.
    let mut relu = Relu::new();
    let y = relu
        .forward(&Tensor::from_slice(&[nan, 1.0, -1.0]))
        .unwrap();
    assert!(y.data()[0].is_nan() && y.data()[1] == 1.0 && y.data()[2] == 0.0);
    let dx = relu.backward(Tensor::from_slice(&[2.0, 2.0, 2.0])).unwrap();
    assert!(dx.data()[0].is_nan());
    assert_eq!(&dx.data()[1..], &[2.0, 0.0]);

    // Sigmoid: NaN → NaN; ±∞ → 1 / 0 with zero gradient.
    let mut sig = Sigmoid::new();
    let y = sig
        .forward(&Tensor::from_slice(&[
            nan,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]))
        .unwrap();
    assert!(y.data()[0].is_nan());
    assert_eq!(&y.data()[1..], &[1.0, 0.0]);
    let dx = sig.backward(Tensor::from_slice(&[1.0, 1.0, 1.0])).unwrap();
    assert!(dx.data()[0].is_nan());
    assert_eq!(&dx.data()[1..], &[0.0, 0.0]);

    // Affine: a NaN in row 0 poisons row 0 of y and every dW entry that row
    // feeds, but not row 1 of y.
    let mut fc = Affine::new(
        tensor(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]),
        Tensor::zeros(&[2]),
    )
    .unwrap();
    let y = fc
        .forward(&tensor(&[2, 2], vec![nan, 1.0, 1.0, 1.0]))
        .unwrap();
    assert!(y.data()[0].is_nan() && y.data()[1].is_nan());
    assert_eq!(&y.data()[2..], &[4.0, 6.0]);
    fc.backward(tensor(&[2, 2], vec![1.0; 4])).unwrap();
    assert!(fc.dw().unwrap().data()[..2].iter().all(|v| v.is_nan()));
    assert_eq!(&fc.dw().unwrap().data()[2..], &[2.0, 2.0]);

    // softmax: a NaN or +∞ poisons its own row only; −∞ gets probability 0.
    let x = tensor(
        &[4, 3],
        vec![
            nan,
            0.0,
            1.0,
            f32::INFINITY,
            0.0,
            1.0,
            f32::NEG_INFINITY,
            0.0,
            0.0,
            1.0,
            2.0,
            3.0,
        ],
    );
    let y = softmax(&x).unwrap();
    assert!(y.data()[..6].iter().all(|v| v.is_nan()));
    assert_eq!(&y.data()[6..9], &[0.0, 0.5, 0.5]);
    assert!(y.data()[9..].iter().all(|v| v.is_finite()));
    let all_neg_inf = softmax(&Tensor::from_slice(&[f32::NEG_INFINITY; 3])).unwrap();
    assert!(all_neg_inf.data().iter().all(|v| v.is_nan()));

    // Loss: NaN logits give a NaN loss and NaN gradients for that row; a −∞
    // logit on a class the target does not hold costs nothing.
    let mut swl = SoftmaxWithLoss::new();
    assert!(swl
        .forward(&x, Labels::Index(&[0, 0, 1, 2]))
        .unwrap()
        .is_nan());
    let dx = swl.backward(1.0).unwrap();
    assert!(
        dx.data()[..6].iter().all(|v| v.is_nan()) && dx.data()[6..].iter().all(|v| v.is_finite())
    );
    let loss = swl
        .forward(
            &Tensor::from_slice(&[f32::NEG_INFINITY, 0.0]),
            Labels::OneHot(&Tensor::from_slice(&[0.0, 1.0])),
        )
        .unwrap();
    assert_eq!(loss, 0.0);
    let loss = swl
        .forward(
            &Tensor::from_slice(&[f32::NEG_INFINITY, 0.0]),
            Labels::Index(&[0]),
        )
        .unwrap();
    assert_eq!(
        loss,
        f32::INFINITY,
        "the true loss of a −∞ target logit is +∞"
    );
}

mod arbitrary_shapes {
    use super::*;
    use proptest::prelude::*;

    fn shape() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0usize..5, 0..4)
    }

    fn filled(shape: &[usize], v: f32) -> Tensor {
        let n = shape.iter().product();
        tensor(shape, vec![v; n])
    }

    proptest! {
        #![proptest_config(crate::common::cases(512))]

        /// Any combination of shapes reaches every entry point without a
        /// panic; whatever is accepted has the documented output shape.
        #[test]
        fn no_entry_point_panics(
            xs in shape(), ws in shape(), bs in shape(), ds in shape(), ts in shape(),
            labels in proptest::collection::vec(0usize..6, 0..6),
            v in prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(-1e30f32), Just(0.0f32), -3.0f32..3.0],
        ) {
            let (x, d, t) = (filled(&xs, v), filled(&ds, 0.5), filled(&ts, 0.25));
            for layer in [&mut Relu::new() as &mut dyn Layer, &mut Sigmoid::new()] {
                let _ = layer.backward(d.clone());
                if let Ok(y) = layer.forward(&x) {
                    prop_assert_eq!(y.shape(), x.shape());
                }
                let _ = layer.backward(d.clone());
            }
            if let Ok(mut fc) = Affine::new(filled(&ws, 0.1), filled(&bs, 0.1)) {
                let _ = fc.backward(d.clone());
                if let Ok(y) = fc.forward(&x) {
                    prop_assert_eq!(y.shape()[y.ndim() - 1], ws[1]);
                    if let Ok(dx) = fc.backward(d.clone()) {
                        prop_assert_eq!(dx.shape(), x.shape());
                    }
                }
            }
            for labels in [Labels::Index(&labels), Labels::OneHot(&t)] {
                let mut swl = SoftmaxWithLoss::new();
                if swl.forward(&x, labels).is_ok() {
                    let dx = swl.backward(1.0).unwrap();
                    prop_assert_eq!(dx.shape(), x.shape());
                }
                let _ = cross_entropy(&x, labels);
            }
            if let Ok(y) = softmax(&x) {
                prop_assert_eq!(y.shape(), x.shape());
            }
            let _ = log_softmax(&x);
            let mut r = x.clone();
            let _ = r.reshape(&ds);
        }
    }
}

/// A refused forward leaves nothing for the next backward: after an `Err`
/// from `forward`, `backward` is an `Err` too, not the previous forward's
/// gradient.
#[test]
fn a_refused_forward_clears_what_backward_needs() {
    use densegrad::{Convolution, Pooling};
    let mut fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2])).unwrap();
    fc.forward(&Tensor::zeros(&[4, 3])).unwrap();
    fc.backward(Tensor::zeros(&[4, 2])).unwrap();
    assert!(fc.forward(&Tensor::zeros(&[4, 5])).is_err());
    assert!(matches!(
        fc.backward(Tensor::zeros(&[4, 2])),
        Err(Error::State { .. })
    ));
    // and a good forward makes it usable again
    fc.forward(&Tensor::zeros(&[4, 3])).unwrap();
    fc.backward(Tensor::zeros(&[4, 2])).unwrap();

    let mut loss = SoftmaxWithLoss::new();
    let x = Tensor::new(&[2, 3], vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]).unwrap();
    loss.forward(&x, Labels::Index(&[0, 1])).unwrap();
    loss.backward(1.0).unwrap();
    assert!(loss.forward(&x, Labels::Index(&[0, 7])).is_err());
    assert!(matches!(loss.backward(1.0), Err(Error::State { .. })));

    let mut conv =
        Convolution::new(Tensor::zeros(&[1, 1, 2, 2]), Tensor::zeros(&[1]), 1, 0).unwrap();
    conv.forward(&Tensor::zeros(&[1, 1, 3, 3])).unwrap();
    assert!(conv.forward(&Tensor::zeros(&[1, 2, 3, 3])).is_err());
    assert!(matches!(
        conv.backward(Tensor::zeros(&[1, 1, 2, 2])),
        Err(Error::State { .. })
    ));
    let mut pool = Pooling::new(2, 2, 2, 0).unwrap();
    pool.forward(&Tensor::zeros(&[1, 1, 4, 4])).unwrap();
    assert!(pool.forward(&Tensor::zeros(&[1, 1, 1, 4])).is_err());
    assert!(matches!(
        pool.backward(Tensor::zeros(&[1, 1, 2, 2])),
        Err(Error::State { .. })
    ));
}

/// A zero-element tensor whose other dimensions multiply past `usize::MAX`
/// is accepted by `Tensor::new` (it holds nothing); every layer then refuses
/// it as empty, with no overflow on the way, in the debug profile too (CI
/// runs this file without `--release`).
#[test]
fn an_empty_tensor_with_huge_dimensions_is_refused_without_overflow() {
    let x = Tensor::new(&[1, usize::MAX, 2, 0], vec![]).unwrap();
    let mut fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2])).unwrap();
    assert!(matches!(fc.forward(&x), Err(Error::Shape { .. })));
    let mut relu = Relu::new();
    assert!(relu.forward(&x).is_err());
    assert!(softmax(&x).is_err());
    let mut net = densegrad::Sequential::new()
        .with(Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2])).unwrap());
    assert!(net.evaluate(&x, &[0], 1).is_err());
    assert!(net.predict(&x).is_err());
    let mut conv =
        densegrad::Convolution::new(Tensor::zeros(&[1, 1, 1, 1]), Tensor::zeros(&[1]), 1, 0)
            .unwrap();
    assert!(conv
        .forward(&Tensor::new(&[usize::MAX, 1, 0, 2], vec![]).unwrap())
        .is_err());
    let mut pool = densegrad::Pooling::new(1, 1, 1, 0).unwrap();
    assert!(pool
        .forward(&Tensor::new(&[2, usize::MAX, 0, 2], vec![]).unwrap())
        .is_err());
    assert_eq!(format!("{x}"), "[]");
}

/// Parameters and state are reachable only through views whose shape is
/// fixed: a value of another shape is an `Err` naming both shapes, nothing
/// changes, and the layer keeps working (the faults the old `&mut Tensor`
/// visitors allowed — a BatchNorm γ, an Affine W or a Convolution b of
/// another shape between forward and backward — cannot be expressed).
#[test]
fn state_views_refuse_another_shape() {
    use densegrad::{BatchNorm, Convolution};
    let layers: Vec<(Box<dyn Layer>, Tensor, Vec<usize>)> = vec![
        (Box::new(affine(4, 3)), Tensor::zeros(&[2, 4]), vec![2, 3]),
        (
            Box::new(
                Convolution::new(Tensor::zeros(&[2, 1, 3, 3]), Tensor::zeros(&[2]), 1, 0).unwrap(),
            ),
            Tensor::zeros(&[1, 1, 4, 4]),
            vec![1, 2, 2, 2],
        ),
        (
            Box::new(BatchNorm::new(2).unwrap()),
            Tensor::new(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 7.0]).unwrap(),
            vec![3, 2],
        ),
    ];
    for (mut layer, x, out_shape) in layers {
        layer.forward(&x).unwrap();
        let mut before = Vec::new();
        layer.visit_state_ref(&mut |_, t| before.push(t.clone()));
        let mut refused = 0;
        layer.visit_state(&mut |mut s| {
            let mut wrong = s.shape().to_vec();
            wrong[0] += 1;
            let err = s.copy_from(&Tensor::zeros(&wrong)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "state copy: {} is {:?} but the new value is {wrong:?}",
                    s.name(),
                    s.shape()
                )
            );
            assert!(matches!(err, Error::Shape { .. }));
            refused += 1;
        });
        assert_eq!(refused, before.len());
        let mut after = Vec::new();
        layer.visit_state_ref(&mut |_, t| after.push(t.clone()));
        assert_eq!(
            before,
            after,
            "{}: a refused copy changes nothing",
            layer.name()
        );
        // Values of the right shape go in, and forward/backward still work.
        layer.visit_state(&mut |mut s| {
            let v = Tensor::new(s.shape(), vec![0.5; s.value().numel()]).unwrap();
            s.copy_from(&v).unwrap();
        });
        layer.visit_params(&mut |p| assert_eq!(p.shape(), p.grad().shape()));
        layer.forward(&x).unwrap();
        let dx = layer.backward(Tensor::zeros(&out_shape)).unwrap();
        assert_eq!(dx.shape(), x.shape());
    }
}

/// `forward_inference` gives `forward_ref`'s output bit for bit and keeps
/// nothing for a backward: a backward after it is `Error::State`, and a
/// `forward_ref` after it makes backward work again.
#[test]
fn forward_inference_matches_forward_and_refuses_backward() {
    use densegrad::{Convolution, LeakyRelu, Sigmoid, Tanh};
    let cases: Vec<(Box<dyn Layer>, Tensor, Vec<usize>)> = vec![
        (
            Box::new(affine(4, 3)),
            tensor(&[2, 4], (0..8).map(|v| v as f32 - 3.5).collect()),
            vec![2, 3],
        ),
        (
            Box::new(
                Convolution::new(
                    tensor(
                        &[2, 1, 2, 2],
                        vec![0.5, -1.0, 2.0, 0.25, 1.0, 1.0, -1.0, 0.0],
                    ),
                    Tensor::zeros(&[2]),
                    1,
                    0,
                )
                .unwrap(),
            ),
            tensor(
                &[1, 1, 3, 3],
                (0..9).map(|v| v as f32 * 0.5 - 2.0).collect(),
            ),
            vec![1, 2, 2, 2],
        ),
        (
            Box::new(Relu::new()),
            tensor(&[5], vec![-1.0, 0.0, 2.0, f32::NAN, -0.0]),
            vec![5],
        ),
        (
            Box::new(LeakyRelu::new(0.1).unwrap()),
            tensor(&[3], vec![-1.0, 0.5, -0.0]),
            vec![3],
        ),
        (
            Box::new(Sigmoid::new()),
            tensor(&[3], vec![-30.0, 0.0, 1e30]),
            vec![3],
        ),
        (
            Box::new(Tanh::new()),
            tensor(&[3], vec![-0.3, 0.0, 9.5]),
            vec![3],
        ),
    ];
    for (mut layer, x, out) in cases {
        let want: Vec<u32> = layer
            .forward_ref(&x)
            .unwrap()
            .data()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let got: Vec<u32> = layer
            .forward_inference(&x)
            .unwrap()
            .data()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, want, "{}", layer.name());
        assert!(
            matches!(
                layer.backward_ref(&Tensor::zeros(&out)),
                Err(Error::State { .. })
            ),
            "{}: backward after forward_inference",
            layer.name()
        );
        layer.forward_ref(&x).unwrap();
        layer.backward_ref(&Tensor::zeros(&out)).unwrap();
    }
}
