//! Elementwise activations: ReLU and Sigmoid, forward and backward.
//!
//! Backward kernels work in place on the upstream gradient, as the notebook's
//! `dout[self.mask] = 0` does, so a backward pass allocates nothing.

/// `y = x > 0 ? x : 0`, written as the notebook's mask `x <= 0` so that NaN
/// (for which `NaN <= 0` is false) propagates instead of becoming 0.
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if x <= 0.0 { 0.0 } else { x };
    }
}

/// `dy = y > 0 ? dy : y`, in place, from the forward *output* `y`.
///
/// A ReLU output is positive, +0 or NaN, so this passes the gradient where
/// the input was positive, writes +0 where it was ≤ 0, and writes NaN where
/// the input was NaN: the gradient at an undefined point is undefined, and
/// saying 0 there would hide it.
pub fn relu_backward(y: &[f32], dy: &mut [f32]) {
    debug_assert_eq!(y.len(), dy.len());
    for (d, &y) in dy.iter_mut().zip(y) {
        *d = if y > 0.0 { *d } else { y };
    }
}

/// `σ(x) = 1 / (1 + e^(-x))`, evaluated so that `e^t` only ever sees
/// `t ≤ 0`: it never overflows, σ(±1e30) is exactly 1 or 0, and NaN gives NaN.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        // For x < 0 (and for NaN, which fails `x >= 0`): e^x / (1 + e^x).
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `y = σ(x)` elementwise.
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y = sigmoid(x);
    }
}

/// `dy = dy · y · (1 − y)`, in place, from the forward output `y`.
pub fn sigmoid_backward(y: &[f32], dy: &mut [f32]) {
    debug_assert_eq!(y.len(), dy.len());
    for (d, &y) in dy.iter_mut().zip(y) {
        *d *= y * (1.0 - y);
    }
}
