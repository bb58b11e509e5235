//! Elementwise activations: ReLU and Sigmoid, forward and backward.
//!
//! Vectorized through [`simd`](super::simd) and split across threads above
//! [`PAR_MIN_ELEMS`](super::parallel::PAR_MIN_ELEMS) elements. Backward
//! kernels work in place on the upstream gradient, as the notebook's
//! `dout[self.mask] = 0` does, so a backward pass allocates nothing.
//!
//! Each kernel has a `*_with(isa, …)` form running a chosen instruction set;
//! the plain form uses [`Isa::best`].
//!
//! ```
//! use densegrad::kernels::activation::{sigmoid_backward, sigmoid_forward};
//! let mut y = [0.0; 2];
//! sigmoid_forward(&[0.0, 0.0], &mut y);
//! let mut d = [1.0, 2.0];
//! sigmoid_backward(&y, &mut d);
//! assert_eq!(d, [0.25, 0.5]);
//! ```

use super::parallel::{zip3_chunks, zip_chunks};
use super::simd::{dispatch, math, Isa, Lanes, SimdKernel};

/// Applies a lane function to `x` into `y`; the padded last chunk is
/// computed on `pad` lanes and only its real lanes are stored.
macro_rules! map_kernel {
    ($name:ident, $pad:expr, |$v:ident| $body:expr) => {
        struct $name<'a> {
            x: &'a [f32],
            y: &'a mut [f32],
        }
        impl SimdKernel for $name<'_> {
            type Output = ();
            #[inline(always)]
            fn run<V: Lanes>(self) {
                let mut xs = self.x.chunks_exact(V::N);
                let mut ys = self.y.chunks_exact_mut(V::N);
                for (x, y) in (&mut xs).zip(&mut ys) {
                    let $v = V::load(x);
                    ($body).store(y);
                }
                let (xr, yr) = (xs.remainder(), ys.into_remainder());
                if !xr.is_empty() {
                    let $v = V::load_partial(xr, $pad);
                    ($body).store_partial(yr);
                }
            }
        }
    };
}

/// For `d = f(y, d)`: `$inplace` updates `d` in place, `$into` reads `d`
/// and writes `out`. One body, two memory layouts.
macro_rules! update_kernel {
    ($inplace:ident, $into:ident, |$y:ident, $d:ident| $body:expr) => {
        struct $inplace<'a> {
            y: &'a [f32],
            d: &'a mut [f32],
        }
        impl SimdKernel for $inplace<'_> {
            type Output = ();
            #[inline(always)]
            fn run<V: Lanes>(self) {
                let mut ys = self.y.chunks_exact(V::N);
                let mut ds = self.d.chunks_exact_mut(V::N);
                for (y, d) in (&mut ys).zip(&mut ds) {
                    let ($y, $d) = (V::load(y), V::load(d));
                    ($body).store(d);
                }
                let (yr, dr) = (ys.remainder(), ds.into_remainder());
                if !yr.is_empty() {
                    let ($y, $d) = (V::load_partial(yr, 0.0), V::load_partial(dr, 0.0));
                    ($body).store_partial(dr);
                }
            }
        }
        struct $into<'a> {
            y: &'a [f32],
            d: &'a [f32],
            out: &'a mut [f32],
        }
        impl SimdKernel for $into<'_> {
            type Output = ();
            #[inline(always)]
            fn run<V: Lanes>(self) {
                let mut ys = self.y.chunks_exact(V::N);
                let mut ds = self.d.chunks_exact(V::N);
                let mut os = self.out.chunks_exact_mut(V::N);
                for ((y, d), o) in (&mut ys).zip(&mut ds).zip(&mut os) {
                    let ($y, $d) = (V::load(y), V::load(d));
                    ($body).store(o);
                }
                let (yr, dr, or) = (ys.remainder(), ds.remainder(), os.into_remainder());
                if !yr.is_empty() {
                    let ($y, $d) = (V::load_partial(yr, 0.0), V::load_partial(dr, 0.0));
                    ($body).store_partial(or);
                }
            }
        }
    };
}

// `x <= 0 ? 0 : x`: the notebook's mask, under which NaN (NaN <= 0 is
// false) propagates instead of becoming 0.
map_kernel!(ReluForward, 0.0f32, |x| {
    let zero = V::splat(0.0);
    V::select(x.le(zero), zero, x)
});

// A ReLU output is positive, +0 or NaN; `y > 0 ? d : y` passes the gradient
// where the input was positive, writes +0 where it was ≤ 0 and NaN where it
// was NaN (the gradient at an undefined point is undefined, not 0).
update_kernel!(ReluBackward, ReluBackwardInto, |y, d| {
    V::select(V::splat(0.0).lt(y), d, y)
});

map_kernel!(SigmoidForward, 0.0f32, |x| math::sigmoid(x));

update_kernel!(SigmoidBackward, SigmoidBackwardInto, |y, d| d
    .mul(y.mul(V::splat(1.0).sub(y))));

map_kernel!(ExpForward, 0.0f32, |x| math::exp(x));

/// `y = x > 0 ? x : 0` elementwise (NaN propagates).
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 3];
/// relu_forward(&[-1.0, 0.5, f32::NAN], &mut y);
/// assert_eq!(y[..2], [0.0, 0.5]);
/// assert!(y[2].is_nan());
/// ```
///
/// # Panics
/// Unless `y.len() == x.len()`.
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    relu_forward_with(Isa::best(), x, y)
}

/// [`relu_forward`] on instruction set `isa`.
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 2];
/// relu_forward_with(Isa::portable(), &[-2.0, 3.0], &mut y);
/// assert_eq!(y, [0.0, 3.0]);
/// ```
pub fn relu_forward_with(isa: Isa, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "relu_forward: x and y differ in length");
    zip_chunks(x, y, |x, y| dispatch(isa, ReluForward { x, y }));
}

/// `dy = y > 0 ? dy : y`, in place, from the forward *output* `y`: the
/// gradient passes where the input was positive, is +0 where it was ≤ 0 and
/// NaN where it was NaN.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut d = [5.0, 5.0];
/// relu_backward(&[0.0, 2.0], &mut d);
/// assert_eq!(d, [0.0, 5.0]);
/// ```
///
/// # Panics
/// Unless `dy.len() == y.len()`.
pub fn relu_backward(y: &[f32], dy: &mut [f32]) {
    relu_backward_with(Isa::best(), y, dy)
}

/// [`relu_backward`] on instruction set `isa`.
///
/// # Panics
/// If `y` and `dy` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut d = [5.0, 5.0];
/// relu_backward_with(Isa::best(), &[0.0, 2.0], &mut d);
/// assert_eq!(d, [0.0, 5.0]);
/// ```
pub fn relu_backward_with(isa: Isa, y: &[f32], dy: &mut [f32]) {
    assert_eq!(
        y.len(),
        dy.len(),
        "relu_backward: y and dy differ in length"
    );
    zip_chunks(y, dy, |y, d| dispatch(isa, ReluBackward { y, d }));
}

/// [`relu_backward`] out of place: `dx = y > 0 ? dy : y`, on `isa`.
///
/// # Panics
/// If the three slices differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut dx = [9.0; 2];
/// relu_backward_into_with(Isa::best(), &[0.0, 1.0], &[3.0, 3.0], &mut dx);
/// assert_eq!(dx, [0.0, 3.0]);
/// ```
pub fn relu_backward_into_with(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && y.len() == dx.len(),
        "relu_backward: lengths differ"
    );
    zip3_chunks(y, dy, dx, |y, d, out| {
        dispatch(isa, ReluBackwardInto { y, d, out })
    });
}

/// `σ(x) = 1 / (1 + e^(-x))` for one value, evaluated so that `e^t` only
/// ever sees `t ≤ 0`: it never overflows, σ(±1e30) is exactly 1 or 0, and
/// NaN gives NaN. The scalar reference for the vector kernels.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// assert_eq!(sigmoid(0.0), 0.5);
/// assert_eq!((sigmoid(-1e30), sigmoid(1e30)), (0.0, 1.0));
/// ```
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

/// `y = σ(x)` elementwise, vectorized: `z = e^(−|x|)`, then `1/(1 + z)` for
/// x ≥ 0 and `z/(1 + z)` for x < 0, with a true division.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 2];
/// sigmoid_forward(&[0.0, 1e30], &mut y);
/// assert_eq!(y, [0.5, 1.0]);
/// ```
///
/// # Panics
/// Unless `y.len() == x.len()`.
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    sigmoid_forward_with(Isa::best(), x, y)
}

/// [`sigmoid_forward`] on instruction set `isa`.
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// for isa in Isa::available() {
///     let mut y = [0.0; 1];
///     sigmoid_forward_with(isa, &[0.0], &mut y);
///     assert_eq!(y, [0.5]);
/// }
/// ```
pub fn sigmoid_forward_with(isa: Isa, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "sigmoid_forward: x and y differ in length"
    );
    zip_chunks(x, y, |x, y| dispatch(isa, SigmoidForward { x, y }));
}

/// `dy = dy · (y · (1 − y))`, in place, from the forward output `y`.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut d = [1.0];
/// sigmoid_backward(&[0.5], &mut d);
/// assert_eq!(d, [0.25]);
/// ```
///
/// # Panics
/// Unless `dy.len() == y.len()`.
pub fn sigmoid_backward(y: &[f32], dy: &mut [f32]) {
    sigmoid_backward_with(Isa::best(), y, dy)
}

/// [`sigmoid_backward`] on instruction set `isa`.
///
/// # Panics
/// If `y` and `dy` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut d = [2.0];
/// sigmoid_backward_with(Isa::portable(), &[0.5], &mut d);
/// assert_eq!(d, [0.5]);
/// ```
pub fn sigmoid_backward_with(isa: Isa, y: &[f32], dy: &mut [f32]) {
    assert_eq!(
        y.len(),
        dy.len(),
        "sigmoid_backward: y and dy differ in length"
    );
    zip_chunks(y, dy, |y, d| dispatch(isa, SigmoidBackward { y, d }));
}

/// [`sigmoid_backward`] out of place: `dx = dy · (y · (1 − y))`, on `isa`.
///
/// # Panics
/// If the three slices differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut dx = [0.0];
/// sigmoid_backward_into_with(Isa::best(), &[0.5], &[2.0], &mut dx);
/// assert_eq!(dx, [0.5]);
/// ```
pub fn sigmoid_backward_into_with(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && y.len() == dx.len(),
        "sigmoid_backward: lengths differ"
    );
    zip3_chunks(y, dy, dx, |y, d, out| {
        dispatch(isa, SigmoidBackwardInto { y, d, out })
    });
}

/// `y = e^x` elementwise with the vector `exp` the other kernels use (exposed
/// so its accuracy can be measured on its own).
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 2];
/// exp_with(Isa::best(), &[0.0, 1.0], &mut y);
/// assert_eq!(y[0], 1.0);
/// assert!((y[1] - std::f32::consts::E).abs() < 1e-6);
/// ```
pub fn exp_with(isa: Isa, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "exp: x and y differ in length");
    zip_chunks(x, y, |x, y| dispatch(isa, ExpForward { x, y }));
}

/// `y = tanh(x)` elementwise (std's `tanh`: ≤ 1 ulp, NaN propagates).
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 2];
/// tanh_forward(&[0.0, 1e30], &mut y);
/// assert_eq!(y, [0.0, 1.0]);
/// ```
pub fn tanh_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "tanh_forward: x and y differ in length");
    zip_chunks(x, y, |x, y| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x.tanh();
        }
    });
}

/// `dx = dy · (1 − y²)` from the forward output `y`.
///
/// # Panics
/// If the three slices differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut dx = [0.0];
/// tanh_backward(&[0.5], &[1.0], &mut dx);
/// assert_eq!(dx, [0.75]);
/// ```
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && y.len() == dx.len(),
        "tanh_backward: lengths differ"
    );
    zip3_chunks(y, dy, dx, |y, dy, dx| {
        for ((dx, &y), &d) in dx.iter_mut().zip(y).zip(dy) {
            *dx = d * (1.0 - y * y);
        }
    });
}

/// `y = x > 0 ? x : alpha·x` elementwise; NaN propagates (written with the
/// mask `x <= 0`, false for NaN).
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 2];
/// leaky_relu_forward(0.5, &[-2.0, 3.0], &mut y);
/// assert_eq!(y, [-1.0, 3.0]);
/// ```
pub fn leaky_relu_forward(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "leaky_relu_forward: x and y differ in length"
    );
    zip_chunks(x, y, |x, y| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x <= 0.0 { alpha * x } else { x };
        }
    });
}

/// `dx = dy · (x > 0 ? 1 : alpha)`, from the forward output `y` (whose sign
/// is the input's for `alpha ≥ 0`); NaN where the input was NaN.
///
/// # Panics
/// If the three slices differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut dx = [0.0; 2];
/// leaky_relu_backward(0.5, &[-1.0, 3.0], &[2.0, 2.0], &mut dx);
/// assert_eq!(dx, [1.0, 2.0]);
/// ```
pub fn leaky_relu_backward(alpha: f32, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && y.len() == dx.len(),
        "leaky_relu_backward: lengths differ"
    );
    zip3_chunks(y, dy, dx, |y, dy, dx| {
        for ((dx, &y), &d) in dx.iter_mut().zip(y).zip(dy) {
            *dx = if y > 0.0 {
                d
            } else if y <= 0.0 {
                alpha * d
            } else {
                y
            };
        }
    });
}

/// `out = a ⊙ b` elementwise (dropout's mask, in both directions).
///
/// # Panics
/// If the three slices differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut out = [0.0; 2];
/// mul_elementwise(&[1.0, 2.0], &[3.0, 0.0], &mut out);
/// assert_eq!(out, [3.0, 0.0]);
/// ```
pub fn mul_elementwise(a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(
        a.len() == b.len() && a.len() == out.len(),
        "mul_elementwise: lengths differ"
    );
    zip3_chunks(a, b, out, |a, b, out| {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a * b;
        }
    });
}
