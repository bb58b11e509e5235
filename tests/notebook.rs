//! The notebook's test section (seed/, "5. 테스트 예시"), against the exact
//! values of DESIGN.md and the values the notebook printed.

mod common;

use common::tensor;
use densegrad::{cross_entropy, Labels, SoftmaxWithLoss, Tensor};

/// DESIGN.md's exact values (mean log-softmax cross-entropy, f32).
const EXACT_LOSS_1: f64 = 0.0076207;
const EXACT_LOSS_2: f64 = 5.0076207;
const EXACT_BACKWARD_1: [f32; 3] = [0.00090496, -0.00759175, 0.00668679];

/// What the notebook printed (with its `+1e-7` and its 1-D division by 3).
const NOTEBOOK_LOSS_1: f64 = 0.007620616629495912;
const NOTEBOOK_LOSS_2: f64 = 5.0076057626568575;
const NOTEBOOK_BACKWARD_1: [f64; 3] = [0.00030165, -0.00253058, 0.00222893];
const NOTEBOOK_BACKWARD_2: [f64; 3] = [3.01653061e-04, -3.31104402e-01, 3.30802749e-01];

fn one_hot() -> Tensor {
    Tensor::from_slice(&[0.0, 1.0, 0.0])
}

#[test]
fn example_1_loss_and_backward_match_the_exact_values() {
    for labels in [Labels::OneHot(&one_hot()), Labels::Index(&[1])] {
        let mut swl = SoftmaxWithLoss::new();
        let loss = swl
            .forward(&Tensor::from_slice(&[1.0, 8.0, 3.0]), labels)
            .unwrap();
        assert!((loss as f64 - EXACT_LOSS_1).abs() <= 1e-6, "{loss}");
        assert!((loss as f64 - NOTEBOOK_LOSS_1).abs() <= 2e-5, "{loss}");
        let dx = swl.backward(1.0).unwrap();
        assert_eq!(dx.shape(), &[3]);
        for (g, w) in dx.data().iter().zip(EXACT_BACKWARD_1) {
            assert!((g - w).abs() <= 1e-6, "{g} vs {w}");
        }
        // The notebook divided the 1-D batch by its length, 3.
        for (g, w) in dx.data().iter().zip(NOTEBOOK_BACKWARD_1) {
            assert!((*g as f64 / 3.0 - w).abs() <= 1e-8, "{g} vs {w}");
        }
    }
}

#[test]
fn example_2_loss_matches_the_exact_value() {
    let x = Tensor::from_slice(&[1.0, 3.0, 8.0]);
    for labels in [Labels::OneHot(&one_hot()), Labels::Index(&[1])] {
        let mut swl = SoftmaxWithLoss::new();
        let loss = swl.forward(&x, labels).unwrap();
        assert!((loss as f64 - EXACT_LOSS_2).abs() <= 1e-6, "{loss}");
        // The notebook's +1e-7 inside the log shifts it by ~1.5e-5.
        assert!((loss as f64 - NOTEBOOK_LOSS_2).abs() <= 2e-5, "{loss}");
        let dx = swl.backward(1.0).unwrap();
        for (g, w) in dx.data().iter().zip(NOTEBOOK_BACKWARD_2) {
            assert!((*g as f64 / 3.0 - w).abs() <= 1e-7, "{g} vs {w}");
        }
    }
    assert_eq!(
        cross_entropy(&x, Labels::Index(&[1])).unwrap(),
        SoftmaxWithLoss::new()
            .forward(&x, Labels::Index(&[1]))
            .unwrap()
    );
}

#[test]
fn the_examples_as_a_batch_of_two_give_the_mean() {
    let x = tensor(&[2, 3], vec![1.0, 8.0, 3.0, 1.0, 3.0, 8.0]);
    let mut swl = SoftmaxWithLoss::new();
    let loss = swl.forward(&x, Labels::Index(&[1, 1])).unwrap();
    assert!((loss as f64 - (EXACT_LOSS_1 + EXACT_LOSS_2) / 2.0).abs() <= 1e-6);
    let dx = swl.backward(1.0).unwrap();
    for (g, w) in dx.data()[..3].iter().zip(EXACT_BACKWARD_1) {
        assert!((g - w / 2.0).abs() <= 1e-6);
    }
}

#[test]
fn backward_honours_dout() {
    let mut swl = SoftmaxWithLoss::new();
    swl.forward(&Tensor::from_slice(&[1.0, 8.0, 3.0]), Labels::Index(&[1]))
        .unwrap();
    let one = swl.backward(1.0).unwrap();
    let half = swl.backward(0.5).unwrap();
    for (a, b) in one.data().iter().zip(half.data()) {
        assert_eq!(a * 0.5, *b);
    }
}
