//! Elementwise activations, written once: each is a [`PointwiseOp`] (its
//! forward and backward on lanes), and four drivers run any op over slices
//! on any instruction set — [`pointwise_forward`],
//! [`pointwise_forward_signs`], [`pointwise_backward`],
//! [`pointwise_backward_signs`] — with the vector tail and the thread split
//! (above [`PAR_MIN_ELEMS`](super::parallel::PAR_MIN_ELEMS) elements, on
//! boundaries fixed by the length) handled in one place. Backward can work
//! in place on the upstream gradient, as the notebook's
//! `dout[self.mask] = 0` does.
//!
//! The named kernels (`relu_forward`, `sigmoid_backward_with`, …) are those
//! drivers with a given op; each has a `*_with(isa, …)` form running a chosen
//! instruction set, and the plain form uses [`Isa::best`].
//!
//! ```
//! use densegrad::kernels::activation::{sigmoid_backward, sigmoid_forward};
//! let mut y = [0.0; 2];
//! sigmoid_forward(&[0.0, 0.0], &mut y);
//! let mut d = [1.0, 2.0];
//! sigmoid_backward(&y, &mut d);
//! assert_eq!(d, [0.25, 0.5]);
//! ```

use super::parallel::{for_row_blocks, worth_splitting, zip3_chunks, PAR_CHUNK_ELEMS};
use super::simd::{dispatch, math, Isa, Lanes, SimdKernel};
use rayon::prelude::*;
use std::fmt::Debug;

/// What a [`PointwiseOp`]'s backward pass reads besides the upstream
/// gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The forward input `x` (a layer keeps a copy of it).
    Input,
    /// The forward output `y` (a layer keeps the output it returned).
    Output,
    /// Only the sign class of `x`: positive, not positive, or NaN. A layer
    /// keeps it in two bits per element ([`sign_bytes`]), 1/16 of the f32s,
    /// and backward receives it as lanes holding 1, 0 or NaN.
    Sign,
}

/// One elementwise activation: its forward and backward on [`Lanes`], from
/// which every slice kernel here, the thread split, the vector tails and the
/// generic layer [`Pointwise`](crate::Pointwise) follow. Adding an activation
/// means writing one of these.
///
/// Both methods must be `#[inline(always)]` (so that each instruction set's
/// kernel is compiled with its features).
///
/// ```
/// use densegrad::kernels::activation::{Keep, PointwiseOp};
/// use densegrad::kernels::simd::Lanes;
/// use densegrad::{Layer, Pointwise, Tensor};
///
/// /// The softsign `x / (1 + |x|)`, whose derivative is `1 / (1 + |x|)²`.
/// #[derive(Clone, Copy, Debug, Default)]
/// struct Softsign;
/// impl PointwiseOp for Softsign {
///     const NAME: &'static str = "Softsign";
///     const KEEP: Keep = Keep::Input;
///     #[inline(always)]
///     fn forward<V: Lanes>(self, x: V) -> V {
///         x.div(V::splat(1.0).add(x.abs()))
///     }
///     #[inline(always)]
///     fn backward<V: Lanes>(self, x: V, d: V) -> V {
///         let s = V::splat(1.0).add(x.abs());
///         d.div(s.mul(s))
///     }
/// }
///
/// let mut layer = Pointwise::with_op(Softsign);
/// assert_eq!(layer.forward(&Tensor::from_slice(&[1.0, -3.0]))?.data(), &[0.5, -0.75]);
/// assert_eq!(layer.backward(Tensor::from_slice(&[1.0, 1.0]))?.data(), &[0.25, 0.0625]);
/// assert_eq!(layer.name(), "Softsign");
/// # Ok::<(), densegrad::Error>(())
/// ```
pub trait PointwiseOp: Copy + Debug + Send + Sync + 'static {
    /// The layer's name, as [`Layer::name`](crate::Layer::name) reports it.
    const NAME: &'static str;
    /// What `backward` is given as `kept`.
    const KEEP: Keep;
    /// The operation its forward's errors name.
    const FORWARD_OP: &'static str = "pointwise forward";
    /// The operation its backward's errors name.
    const BACKWARD_OP: &'static str = "pointwise backward";
    /// `y = f(x)` lane-wise.
    fn forward<V: Lanes>(self, x: V) -> V;
    /// `dx` from the upstream gradient `d` and `kept` (the input, the output
    /// or the sign class, as [`KEEP`](PointwiseOp::KEEP) says).
    fn backward<V: Lanes>(self, kept: V, d: V) -> V;
}

/// ReLU: `x <= 0 ? 0 : x`, the notebook's mask, under which NaN (NaN <= 0 is
/// false) propagates instead of becoming 0. Backward keeps the sign class:
/// the gradient passes where the input was positive, is +0 where it was
/// ≤ 0 and NaN where it was NaN (undefined there, not 0). The backward also
/// works from the output, which has the input's sign class.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// assert_eq!(ReluOp::KEEP, Keep::Sign);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReluOp;

impl PointwiseOp for ReluOp {
    const NAME: &'static str = "Relu";
    const FORWARD_OP: &'static str = "relu forward";
    const BACKWARD_OP: &'static str = "relu backward";
    const KEEP: Keep = Keep::Sign;
    #[inline(always)]
    fn forward<V: Lanes>(self, x: V) -> V {
        let zero = V::splat(0.0);
        V::select(x.le(zero), zero, x)
    }
    #[inline(always)]
    fn backward<V: Lanes>(self, kept: V, d: V) -> V {
        // kept is 1, +0 or NaN (or the output: positive, +0 or NaN), and
        // so is the result where the gradient does not pass.
        V::select(V::splat(0.0).lt(kept), d, kept)
    }
}

/// Sigmoid `1 / (1 + e^(−x))` (see [`math::sigmoid`]); backward
/// `d · y · (1 − y)` from the output.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// assert_eq!(SigmoidOp::KEEP, Keep::Output);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SigmoidOp;

impl PointwiseOp for SigmoidOp {
    const NAME: &'static str = "Sigmoid";
    const FORWARD_OP: &'static str = "sigmoid forward";
    const BACKWARD_OP: &'static str = "sigmoid backward";
    const KEEP: Keep = Keep::Output;
    #[inline(always)]
    fn forward<V: Lanes>(self, x: V) -> V {
        math::sigmoid(x)
    }
    #[inline(always)]
    fn backward<V: Lanes>(self, y: V, d: V) -> V {
        d.mul(y.mul(V::splat(1.0).sub(y)))
    }
}

/// Tanh (see [`math::tanh`]); backward `d · (1 − y²)` from the output.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// assert_eq!(TanhOp::KEEP, Keep::Output);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TanhOp;

impl PointwiseOp for TanhOp {
    const NAME: &'static str = "Tanh";
    const FORWARD_OP: &'static str = "tanh forward";
    const BACKWARD_OP: &'static str = "tanh backward";
    const KEEP: Keep = Keep::Output;
    #[inline(always)]
    fn forward<V: Lanes>(self, x: V) -> V {
        math::tanh(x)
    }
    #[inline(always)]
    fn backward<V: Lanes>(self, y: V, d: V) -> V {
        d.mul(V::splat(1.0).sub(y.mul(y)))
    }
}

/// Leaky ReLU `x <= 0 ? alpha·x : x` (NaN propagates); backward
/// `d · (x > 0 ? 1 : alpha)` from the sign class (NaN where x was NaN).
/// `alpha` should be ≥ 0 for the backward to also work from the output;
/// the layer [`LeakyRelu::new`](crate::LeakyRelu::new) checks it.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// assert_eq!(LeakyReluOp { alpha: 0.1 }.alpha, 0.1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReluOp {
    /// The slope for x ≤ 0.
    pub alpha: f32,
}

impl PointwiseOp for LeakyReluOp {
    const NAME: &'static str = "LeakyRelu";
    const FORWARD_OP: &'static str = "leaky relu forward";
    const BACKWARD_OP: &'static str = "leaky relu backward";
    const KEEP: Keep = Keep::Sign;
    #[inline(always)]
    fn forward<V: Lanes>(self, x: V) -> V {
        V::select(x.le(V::splat(0.0)), x.mul(V::splat(self.alpha)), x)
    }
    #[inline(always)]
    fn backward<V: Lanes>(self, kept: V, d: V) -> V {
        let zero = V::splat(0.0);
        let pass_or_nan = V::select(zero.lt(kept), d, kept);
        V::select(kept.le(zero), d.mul(V::splat(self.alpha)), pass_or_nan)
    }
}

/// `e^x`, for [`exp_with`]; never a layer (its backward is `d · y`).
#[derive(Clone, Copy, Debug)]
struct ExpOp;

impl PointwiseOp for ExpOp {
    const NAME: &'static str = "Exp";
    const KEEP: Keep = Keep::Output;
    #[inline(always)]
    fn forward<V: Lanes>(self, x: V) -> V {
        math::exp(x)
    }
    #[inline(always)]
    fn backward<V: Lanes>(self, y: V, d: V) -> V {
        d.mul(y)
    }
}

/// The bytes [`Keep::Sign`] needs for `n` elements: two bits each (positive,
/// NaN), as one byte of each per 8 elements.
///
/// ```
/// # use densegrad::kernels::activation::sign_bytes;
/// assert_eq!(sign_bytes(16), 4);
/// assert_eq!(sign_bytes(17), 6);
/// ```
pub fn sign_bytes(n: usize) -> usize {
    n.div_ceil(8) * 2
}

/// The sign class of one vector's lanes from its bytes of two-bit storage
/// (fewer bytes for the last, partial vector): 1 where positive, NaN where
/// NaN, 0 elsewhere and past the end.
#[inline(always)]
fn decode_signs<V: Lanes>(bytes: &[u8]) -> V {
    let (mut pos, mut nan) = (0u32, 0u32);
    for (g, b) in bytes.chunks_exact(2).enumerate() {
        pos |= u32::from(b[0]) << (8 * g);
        nan |= u32::from(b[1]) << (8 * g);
    }
    let nan_or_zero = V::select_bits(nan, V::splat(f32::NAN), V::splat(0.0));
    V::select_bits(pos, V::splat(1.0), nan_or_zero)
}

/// Writes the sign class of `x`'s lanes to `bytes` (one vector's bytes of
/// two-bit storage; fewer for the last, partial vector, whose padding lanes
/// are 0 and so neither positive nor NaN).
#[inline(always)]
fn encode_signs<V: Lanes>(x: V, bytes: &mut [u8]) {
    let pos = V::bits(V::splat(0.0).lt(x));
    let nan = V::bits(x.eq(x)) ^ (u32::MAX >> (32 - V::N));
    for (g, b) in bytes.chunks_exact_mut(2).enumerate() {
        b[0] = (pos >> (8 * g)) as u8;
        b[1] = (nan >> (8 * g)) as u8;
    }
}

struct Forward<'a, Op> {
    op: Op,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl<Op: PointwiseOp> SimdKernel for Forward<'_, Op> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Forward { op, x, y } = self;
        let mut xs = x.chunks_exact(V::N);
        let mut ys = y.chunks_exact_mut(V::N);
        for (x, y) in (&mut xs).zip(&mut ys) {
            op.forward(V::load(x)).store(y);
        }
        let (x, y) = (xs.remainder(), ys.into_remainder());
        if !x.is_empty() {
            op.forward(V::load_partial(x, 0.0)).store_partial(y);
        }
    }
}

struct ForwardSigns<'a, Op> {
    op: Op,
    x: &'a [f32],
    y: &'a mut [f32],
    signs: &'a mut [u8],
}

impl<Op: PointwiseOp> SimdKernel for ForwardSigns<'_, Op> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let ForwardSigns { op, x, y, signs } = self;
        // V::N / 8 groups of 8 lanes, two bytes each, per full vector.
        let per = V::N / 4;
        let (main, tail) = signs.split_at_mut(x.len() / V::N * per);
        let mut xs = x.chunks_exact(V::N);
        let mut ys = y.chunks_exact_mut(V::N);
        for ((x, y), s) in (&mut xs).zip(&mut ys).zip(main.chunks_exact_mut(per)) {
            let v = V::load(x);
            op.forward(v).store(y);
            encode_signs(v, s);
        }
        let (x, y) = (xs.remainder(), ys.into_remainder());
        if !x.is_empty() {
            let v = V::load_partial(x, 0.0);
            op.forward(v).store_partial(y);
            encode_signs(v, tail);
        }
    }
}

struct Backward<'a, Op, K> {
    op: Op,
    /// The forward's values or sign bits ([`Values`] or [`Signs`]).
    kept: K,
    /// The upstream gradient, or `None` to read it from `out` (in place).
    d: Option<&'a [f32]>,
    out: &'a mut [f32],
}

/// Where a backward's kept lanes come from. Methods, not closures: a closure
/// is not guaranteed to be inlined into the instruction set's
/// `#[target_feature]` function, and without that its intrinsics become
/// calls.
trait KeptLanes {
    /// Full vector `i`.
    fn at<V: Lanes>(&self, i: usize) -> V;
    /// The last, partial vector, which follows `full` full ones.
    fn tail<V: Lanes>(&self, full: usize) -> V;
}

struct Values<'a>(&'a [f32]);

impl KeptLanes for Values<'_> {
    #[inline(always)]
    fn at<V: Lanes>(&self, i: usize) -> V {
        V::load(&self.0[i * V::N..])
    }
    #[inline(always)]
    fn tail<V: Lanes>(&self, full: usize) -> V {
        V::load_partial(&self.0[full * V::N..], 0.0)
    }
}

struct Signs<'a>(&'a [u8]);

impl KeptLanes for Signs<'_> {
    #[inline(always)]
    fn at<V: Lanes>(&self, i: usize) -> V {
        let per = V::N / 4;
        decode_signs(&self.0[i * per..i * per + per])
    }
    #[inline(always)]
    fn tail<V: Lanes>(&self, full: usize) -> V {
        decode_signs(&self.0[full * (V::N / 4)..])
    }
}

/// `out = op'(k, d)` vector by vector, with `d` read from `d` or, in place,
/// from `out`: one loop for the four layouts.
#[inline(always)]
fn backward_lanes<V: Lanes, Op: PointwiseOp>(
    op: Op,
    k: &impl KeptLanes,
    d: Option<&[f32]>,
    out: &mut [f32],
) {
    let full = out.len() / V::N;
    match d {
        Some(d) => {
            let mut ds = d.chunks_exact(V::N);
            let mut os = out.chunks_exact_mut(V::N);
            for (i, (d, o)) in (&mut ds).zip(&mut os).enumerate() {
                op.backward(k.at::<V>(i), V::load(d)).store(o);
            }
            let (d, o) = (ds.remainder(), os.into_remainder());
            if !o.is_empty() {
                op.backward(k.tail::<V>(full), V::load_partial(d, 0.0))
                    .store_partial(o);
            }
        }
        None => {
            let mut os = out.chunks_exact_mut(V::N);
            for (i, o) in (&mut os).enumerate() {
                op.backward(k.at::<V>(i), V::load(o)).store(o);
            }
            let o = os.into_remainder();
            if !o.is_empty() {
                op.backward(k.tail::<V>(full), V::load_partial(o, 0.0))
                    .store_partial(o);
            }
        }
    }
}

impl<Op: PointwiseOp, K: KeptLanes> SimdKernel for Backward<'_, Op, K> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Backward { op, kept, d, out } = self;
        backward_lanes::<V, Op>(op, &kept, d, out)
    }
}

/// `y = op(x)` elementwise on `isa`, split across threads above
/// [`PAR_MIN_ELEMS`](super::parallel::PAR_MIN_ELEMS) elements.
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [0.0; 3];
/// pointwise_forward(Isa::best(), LeakyReluOp { alpha: 0.5 }, &[-2.0, 0.0, 3.0], &mut y);
/// assert_eq!(y, [-1.0, 0.0, 3.0]);
/// ```
pub fn pointwise_forward<Op: PointwiseOp>(isa: Isa, op: Op, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "{} forward: x and y differ in length",
        Op::NAME
    );
    for_row_blocks(x.len(), 1, y, |r, y| {
        let x = &x[r];
        dispatch(isa, Forward { op, x, y })
    });
}

/// [`pointwise_forward`], also writing the sign class of `x` to `signs`
/// ([`sign_bytes`]`(x.len())` bytes) for a [`Keep::Sign`] backward.
///
/// # Panics
/// If `x` and `y` differ in length or `signs` has not `sign_bytes(x.len())`
/// bytes.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let (x, mut y, mut signs) = ([-1.0, 2.0, f32::NAN], [0.0; 3], [0u8; 2]);
/// pointwise_forward_signs(Isa::best(), ReluOp, &x, &mut y, &mut signs);
/// assert_eq!(signs, [0b010, 0b100]); // positive: element 1; NaN: element 2
/// let mut dx = [0.0; 3];
/// pointwise_backward_signs(Isa::best(), ReluOp, &signs, Some(&[5.0; 3]), &mut dx);
/// assert_eq!(dx[..2], [0.0, 5.0]);
/// assert!(dx[2].is_nan());
/// ```
pub fn pointwise_forward_signs<Op: PointwiseOp>(
    isa: Isa,
    op: Op,
    x: &[f32],
    y: &mut [f32],
    signs: &mut [u8],
) {
    assert_eq!(
        x.len(),
        y.len(),
        "{} forward: x and y differ in length",
        Op::NAME
    );
    assert_eq!(
        signs.len(),
        sign_bytes(x.len()),
        "{} forward: signs must hold two bits per element",
        Op::NAME
    );
    let run = |x: &[f32], y: &mut [f32], signs: &mut [u8]| {
        dispatch(isa, ForwardSigns { op, x, y, signs })
    };
    if worth_splitting(x.len()) {
        x.par_chunks(PAR_CHUNK_ELEMS)
            .zip(y.par_chunks_mut(PAR_CHUNK_ELEMS))
            .zip(signs.par_chunks_mut(sign_bytes(PAR_CHUNK_ELEMS)))
            .for_each(|((x, y), s)| run(x, y, s));
    } else {
        run(x, y, signs);
    }
}

/// `dx = op'(kept, d)` elementwise on `isa`, where `kept` is the forward
/// input or output as [`PointwiseOp::KEEP`] says (or, for a
/// [`Keep::Sign`] op, any values with the input's sign class, such as the
/// output). `d = None` computes in place in `dx`.
///
/// # Panics
/// If the slices differ in length.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut d = [2.0, 2.0];
/// pointwise_backward(Isa::best(), SigmoidOp, &[0.5, 1.0], None, &mut d);
/// assert_eq!(d, [0.5, 0.0]);
/// ```
pub fn pointwise_backward<Op: PointwiseOp>(
    isa: Isa,
    op: Op,
    kept: &[f32],
    d: Option<&[f32]>,
    dx: &mut [f32],
) {
    assert!(
        kept.len() == dx.len() && d.is_none_or(|d| d.len() == dx.len()),
        "{} backward: lengths differ",
        Op::NAME
    );
    for_row_blocks(dx.len(), 1, dx, |r, out| {
        let (kept, d) = (Values(&kept[r.clone()]), d.map(|d| &d[r]));
        dispatch(isa, Backward { op, kept, d, out })
    });
}

/// [`pointwise_backward`] from the sign class [`pointwise_forward_signs`]
/// wrote. `d = None` computes in place in `dx`.
///
/// # Panics
/// If `d` and `dx` differ in length or `signs` has not
/// `sign_bytes(dx.len())` bytes.
///
/// ```
/// # use densegrad::kernels::activation::*;
/// # use densegrad::kernels::simd::Isa;
/// let (mut y, mut signs) = ([0.0; 2], [0u8; 2]);
/// pointwise_forward_signs(Isa::best(), LeakyReluOp { alpha: 0.1 }, &[-1.0, 1.0], &mut y, &mut signs);
/// let mut d = [1.0, 1.0];
/// pointwise_backward_signs(Isa::best(), LeakyReluOp { alpha: 0.1 }, &signs, None, &mut d);
/// assert_eq!(d, [0.1, 1.0]);
/// ```
pub fn pointwise_backward_signs<Op: PointwiseOp>(
    isa: Isa,
    op: Op,
    signs: &[u8],
    d: Option<&[f32]>,
    dx: &mut [f32],
) {
    assert!(
        signs.len() == sign_bytes(dx.len()) && d.is_none_or(|d| d.len() == dx.len()),
        "{} backward: lengths differ",
        Op::NAME
    );
    // Blocks of whole rows of one element start at multiples of
    // PAR_CHUNK_ELEMS, a multiple of 8: each starts on a byte of `signs`.
    for_row_blocks(dx.len(), 1, dx, |r, out| {
        let s = sign_bytes(r.start)..sign_bytes(r.end);
        let (kept, d) = (Signs(&signs[s]), d.map(|d| &d[r]));
        dispatch(isa, Backward { op, kept, d, out })
    });
}

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
    pointwise_forward(isa, ReluOp, x, y)
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
    pointwise_backward(isa, ReluOp, y, None, dy)
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
    pointwise_backward(isa, ReluOp, y, Some(dy), dx)
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
    pointwise_forward(isa, SigmoidOp, x, y)
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
    pointwise_backward(isa, SigmoidOp, y, None, dy)
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
    pointwise_backward(isa, SigmoidOp, y, Some(dy), dx)
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
    pointwise_forward(isa, ExpOp, x, y)
}

/// `y = tanh(x)` elementwise (the vector [`math::tanh`]; NaN propagates).
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
    pointwise_forward(Isa::best(), TanhOp, x, y)
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
    pointwise_backward(Isa::best(), TanhOp, y, Some(dy), dx)
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
    pointwise_forward(Isa::best(), LeakyReluOp { alpha }, x, y)
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
    pointwise_backward(Isa::best(), LeakyReluOp { alpha }, y, Some(dy), dx)
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
