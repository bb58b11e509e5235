//! Elementwise activation layers: one generic layer over a
//! [`PointwiseOp`], and the named ones as its instances.

use super::sealed::RowWise;
use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::{
    pointwise_backward, pointwise_backward_signs, pointwise_forward, pointwise_forward_signs,
    sign_bytes, Keep, LeakyReluOp, PointwiseOp, ReluOp, SigmoidOp, TanhOp,
};
use crate::kernels::parallel::worth_splitting;
use crate::kernels::simd::Isa;
use crate::{Error, Tensor};
use rayon::prelude::*;

/// Elements per block of an owned output written by the threads (2 KiB,
/// and a whole number of sign bytes). Each block is computed on the stack
/// and moved into the output; glibc moves 2 KiB or less with vector loads
/// and stores, and from 2112 bytes (on CPUs with fast short `rep movsb`)
/// with `rep movsb`, which on an AMD EPYC (Zen 4) ran the owned ReLU of 4M
/// elements at 2 threads 4× slower (16 KiB blocks: 3.9 ms, 2 KiB: 0.97 ms;
/// BENCHMARKS.md, "A second machine").
const FRESH_BLOCK: usize = 512;

/// An elementwise activation layer, for input of any shape: `y = op(x)`
/// forward, `dx = op'(…) · dout` backward, keeping between the two only what
/// the op's backward reads ([`Keep`]): the output for Sigmoid and Tanh, two
/// bits per element for ReLU and LeakyReLU (their sign class), or a copy of
/// the input.
///
/// The owned API copies nothing it does not keep: `forward` of a sign-keeping
/// op writes straight into the tensor it returns, and `backward` computes in
/// place in the `dout` it is given.
///
/// [`Relu`], [`Sigmoid`], [`Tanh`] and [`LeakyRelu`] are this layer with the
/// crate's ops; [`Pointwise::with_op`] makes one from any other op.
///
/// ```
/// use densegrad::kernels::activation::TanhOp;
/// use densegrad::{Layer, Pointwise, Tanh, Tensor};
///
/// let mut t: Tanh = Pointwise::with_op(TanhOp);
/// assert_eq!(t.forward(&Tensor::from_slice(&[0.0]))?.data(), &[0.0]);
/// assert_eq!(t.name(), "Tanh");
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pointwise<Op: PointwiseOp> {
    op: Op,
    isa: Isa,
    /// The output of the last `forward_ref` (and, for [`Keep::Output`], of
    /// the last `forward`).
    out: Tensor,
    /// [`Keep::Input`]: the last forward's input.
    input: Vec<f32>,
    /// [`Keep::Sign`]: the last forward input's sign class, two bits each.
    signs: Vec<u8>,
    /// The last forward's shape.
    shape: Vec<usize>,
    dx: Tensor,
    ready: bool,
}

impl<Op: PointwiseOp + Default> Default for Pointwise<Op> {
    fn default() -> Self {
        Pointwise::with_op(Op::default())
    }
}

impl<Op: PointwiseOp> Pointwise<Op> {
    /// The layer for `op`, with no cached state.
    ///
    /// ```
    /// use densegrad::kernels::activation::LeakyReluOp;
    /// use densegrad::{Layer, Pointwise, Tensor};
    /// let mut l = Pointwise::with_op(LeakyReluOp { alpha: 0.5 });
    /// assert_eq!(l.forward(&Tensor::from_slice(&[-2.0]))?.data(), &[-1.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn with_op(op: Op) -> Pointwise<Op> {
        Pointwise {
            op,
            isa: Isa::best(),
            out: Tensor::zeros(&[0]),
            input: Vec::new(),
            signs: Vec::new(),
            shape: Vec::new(),
            dx: Tensor::zeros(&[0]),
            ready: false,
        }
    }

    /// The op.
    ///
    /// ```
    /// use densegrad::kernels::activation::LeakyReluOp;
    /// use densegrad::Pointwise;
    /// assert_eq!(Pointwise::with_op(LeakyReluOp { alpha: 0.5 }).op().alpha, 0.5);
    /// ```
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// Remembers `x`'s shape and what backward needs except the output, and
    /// writes `y = op(x)` into `y` (the layer's own output buffer or a
    /// fresh tensor).
    fn forward_into(&mut self, x: &Tensor, y: Option<&mut [f32]>) {
        self.shape.clear();
        self.shape.extend_from_slice(x.shape());
        let y = match y {
            Some(y) => y,
            None => {
                self.out.resize_buffer(x.shape());
                self.out.data_mut()
            }
        };
        match Op::KEEP {
            Keep::Sign => {
                self.signs.resize(sign_bytes(x.numel()), 0);
                pointwise_forward_signs(self.isa, self.op, x.data(), y, &mut self.signs);
            }
            Keep::Input => {
                super::store(&mut self.input, x.data());
                pointwise_forward(self.isa, self.op, x.data(), y);
            }
            Keep::Output => pointwise_forward(self.isa, self.op, x.data(), y),
        }
        self.ready = true;
    }

    /// The owned forward of a large input for an op that keeps its input's
    /// sign or the input itself: the threads write fixed blocks of the
    /// output straight into a fresh buffer, which is never zeroed first (a
    /// zeroed one costs a whole write pass more: 4M elements at 2 threads,
    /// BENCHMARKS.md). Elementwise, so the bits of one call.
    fn forward_fresh_in_blocks(&mut self, x: &Tensor) -> Result<Tensor, Error> {
        let n = x.numel();
        let mut blocks: Vec<[f32; FRESH_BLOCK]> = Vec::new();
        blocks
            .try_reserve_exact(n.div_ceil(FRESH_BLOCK))
            .map_err(|_| {
                Error::shape(
                    Op::FORWARD_OP,
                    format!(
                        "an output of shape {:?} needs more memory than can be allocated",
                        x.shape()
                    ),
                )
            })?;
        let (isa, op) = (self.isa, self.op);
        let xs = x.data().par_chunks(FRESH_BLOCK);
        match Op::KEEP {
            Keep::Sign => {
                self.signs.resize(sign_bytes(n), 0);
                let signs = self.signs.par_chunks_mut(sign_bytes(FRESH_BLOCK));
                blocks.par_extend(xs.zip(signs).map(|(x, signs)| {
                    let mut y = [0.0; FRESH_BLOCK];
                    pointwise_forward_signs(isa, op, x, &mut y[..x.len()], signs);
                    y
                }));
            }
            // An op that keeps its output returns a copy of it before this.
            Keep::Input | Keep::Output => {
                debug_assert!(Op::KEEP == Keep::Input);
                super::store(&mut self.input, x.data());
                blocks.par_extend(xs.map(|x| {
                    let mut y = [0.0; FRESH_BLOCK];
                    pointwise_forward(isa, op, x, &mut y[..x.len()]);
                    y
                }));
            }
        }
        let mut y = blocks.into_flattened();
        y.truncate(n);
        self.shape.clear();
        self.shape.extend_from_slice(x.shape());
        self.ready = true;
        Tensor::new(x.shape(), y)
    }

    /// `dx = op'(kept, d)` from `d` into `dx`, or in place in `d_in_place`.
    fn backward_into(&mut self, d: Option<&[f32]>, d_in_place: Option<&mut [f32]>) {
        let dx = match d_in_place {
            Some(dx) => dx,
            None => self.dx.data_mut(),
        };
        match Op::KEEP {
            Keep::Sign => pointwise_backward_signs(self.isa, self.op, &self.signs, d, dx),
            Keep::Input => pointwise_backward(self.isa, self.op, &self.input, d, dx),
            Keep::Output => pointwise_backward(self.isa, self.op, self.out.data(), d, dx),
        }
    }

    fn check_backward(&self, dout: &Tensor) -> Result<(), Error> {
        if !self.ready {
            return Err(not_ready(Op::BACKWARD_OP));
        }
        require_same_shape(Op::BACKWARD_OP, dout, &self.shape)
    }
}

impl<Op: PointwiseOp> Layer for Pointwise<Op> {
    /// Elementwise, without parameters.
    fn row_wise(&self) -> Option<&dyn RowWise> {
        Some(self)
    }

    fn row_wise_mut(&mut self) -> Option<&mut dyn RowWise> {
        Some(self)
    }

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.ready = false;
        require_nonempty(Op::FORWARD_OP, x)?;
        self.forward_into(x, None);
        Ok(&self.out)
    }

    /// The output only: no sign bits or input copy kept.
    fn forward_inference(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.ready = false;
        require_nonempty(Op::FORWARD_OP, x)?;
        self.out.resize_buffer(x.shape());
        pointwise_forward(self.isa, self.op, x.data(), self.out.data_mut());
        Ok(&self.out)
    }

    /// A fresh output; for ops that keep only the sign or the input, written
    /// straight into the returned tensor (no copy).
    fn forward(&mut self, x: &Tensor) -> Result<Tensor, Error> {
        if Op::KEEP == Keep::Output {
            return self.forward_ref(x).cloned();
        }
        self.ready = false;
        require_nonempty(Op::FORWARD_OP, x)?;
        if worth_splitting(x.numel()) {
            return self.forward_fresh_in_blocks(x);
        }
        let mut y = Tensor::try_zeros(x.shape())?;
        self.forward_into(x, Some(y.data_mut()));
        Ok(y)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        self.check_backward(dout)?;
        self.dx.resize_buffer(dout.shape());
        self.backward_into(Some(dout.data()), None);
        Ok(&self.dx)
    }

    /// In place in `dout`'s buffer.
    fn backward(&mut self, mut dout: Tensor) -> Result<Tensor, Error> {
        self.check_backward(&dout)?;
        self.backward_into(None, Some(dout.data_mut()));
        Ok(dout)
    }

    fn name(&self) -> &'static str {
        Op::NAME
    }

    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}
}

/// Elementwise, with the kernels of `forward_ref` and `backward_ref`; the
/// sign class of a [`Keep::Sign`] op goes to the caller's `signs`.
impl<Op: PointwiseOp> RowWise for Pointwise<Op> {
    fn out_width(&self, width: usize) -> Option<usize> {
        Some(width)
    }

    fn flops_per_row(&self, width: usize) -> usize {
        width
    }

    fn has_params(&self) -> bool {
        false
    }

    fn forward_rows(&self, x: &[f32], y: &mut [f32], signs: &mut Vec<u8>) {
        if Op::KEEP == Keep::Sign {
            signs.resize(sign_bytes(x.len()), 0);
            pointwise_forward_signs(self.isa, self.op, x, y, signs);
        } else {
            pointwise_forward(self.isa, self.op, x, y);
        }
    }

    fn backward_rows(&self, x: &[f32], y: &[f32], signs: &[u8], dy: &[f32], dx: &mut [f32]) {
        match Op::KEEP {
            Keep::Sign => pointwise_backward_signs(self.isa, self.op, signs, Some(dy), dx),
            Keep::Input => pointwise_backward(self.isa, self.op, x, Some(dy), dx),
            Keep::Output => pointwise_backward(self.isa, self.op, y, Some(dy), dx),
        }
    }

    fn param_grads(&mut self, _x: &[f32], _dy: &[f32]) {}

    fn forget(&mut self) {
        self.ready = false;
    }

    fn output(&self) -> &Tensor {
        &self.out
    }
}

/// Rectified linear unit, `y = max(x, 0)` elementwise, for input of any shape.
///
/// The gradient is 1 where `x > 0` and 0 where `x ≤ 0` (0 at the kink, as in
/// PyTorch). NaN propagates: a NaN input gives a NaN output and a NaN input
/// gradient. Between forward and backward it keeps two bits per element
/// (the input's sign class), not the f32 output.
///
/// ```
/// use densegrad::{Layer, Relu, Tensor};
///
/// let mut relu = Relu::new();
/// let x = Tensor::new(&[2, 2], vec![1.0, -0.5, -2.0, 3.0])?;
/// assert_eq!(relu.forward(&x)?.data(), &[1.0, 0.0, 0.0, 3.0]);
/// let dx = relu.backward(Tensor::new(&[2, 2], vec![1.0; 4])?)?;
/// assert_eq!(dx.data(), &[1.0, 0.0, 0.0, 1.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub type Relu = Pointwise<ReluOp>;

impl Pointwise<ReluOp> {
    /// A ReLU layer with no cached state.
    ///
    /// ```
    /// let relu = densegrad::Relu::new();
    /// # let _ = relu;
    /// ```
    pub fn new() -> Relu {
        Pointwise::with_op(ReluOp)
    }
}

/// Logistic sigmoid, `y = 1 / (1 + e^(-x))` elementwise, for input of any shape.
///
/// Stable for every f32: `e^t` is only evaluated for `t ≤ 0`, so
/// `σ(1e30) = 1`, `σ(-1e30) = 0`, and nothing overflows. NaN gives NaN.
/// Backward is `dout · y · (1 − y)` from the kept output.
///
/// ```
/// use densegrad::{Layer, Sigmoid, Tensor};
///
/// let mut sig = Sigmoid::new();
/// let y = sig.forward(&Tensor::from_slice(&[0.0, 1e30, -1e30]))?;
/// assert_eq!(y.data(), &[0.5, 1.0, 0.0]);
/// let dx = sig.backward(Tensor::from_slice(&[1.0, 1.0, 1.0]))?;
/// assert_eq!(dx.data(), &[0.25, 0.0, 0.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub type Sigmoid = Pointwise<SigmoidOp>;

impl Pointwise<SigmoidOp> {
    /// A Sigmoid layer with no cached state.
    ///
    /// ```
    /// let sig = densegrad::Sigmoid::new();
    /// # let _ = sig;
    /// ```
    pub fn new() -> Sigmoid {
        Pointwise::with_op(SigmoidOp)
    }
}

/// Hyperbolic tangent, `y = tanh(x)` elementwise (≤ 2 ulp, vectorised);
/// backward `dout · (1 − y²)` from the kept output. NaN propagates.
///
/// ```
/// use densegrad::{Layer, Tanh, Tensor};
///
/// let mut t = Tanh::new();
/// let y = t.forward(&Tensor::from_slice(&[0.0, 1e30, -1e30]))?;
/// assert_eq!(y.data(), &[0.0, 1.0, -1.0]);
/// assert_eq!(t.backward(Tensor::from_slice(&[2.0, 2.0, 2.0]))?.data(), &[2.0, 0.0, 0.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub type Tanh = Pointwise<TanhOp>;

impl Pointwise<TanhOp> {
    /// A Tanh layer with no cached state.
    ///
    /// ```
    /// let t = densegrad::Tanh::new();
    /// # let _ = t;
    /// ```
    pub fn new() -> Tanh {
        Pointwise::with_op(TanhOp)
    }
}

/// Leaky ReLU, `y = x > 0 ? x : alpha·x` elementwise, with `alpha ≥ 0`;
/// gradient 1 where `x > 0`, `alpha` where `x ≤ 0`. NaN propagates. Keeps
/// two bits per element between forward and backward.
///
/// ```
/// use densegrad::{Layer, LeakyRelu, Tensor};
///
/// let mut l = LeakyRelu::new(0.1)?;
/// assert_eq!(l.forward(&Tensor::from_slice(&[2.0, -2.0]))?.data(), &[2.0, -0.2]);
/// assert_eq!(l.backward(Tensor::from_slice(&[1.0, 1.0]))?.data(), &[1.0, 0.1]);
/// assert!(LeakyRelu::new(-1.0).is_err());
/// # Ok::<(), densegrad::Error>(())
/// ```
pub type LeakyRelu = Pointwise<LeakyReluOp>;

impl Pointwise<LeakyReluOp> {
    /// A LeakyReLU with negative slope `alpha`, which must be finite and
    /// ≥ 0 (an `Error::Argument` otherwise).
    ///
    /// ```
    /// assert_eq!(densegrad::LeakyRelu::new(0.01)?.alpha(), 0.01);
    /// let err = densegrad::LeakyRelu::new(f32::NAN).unwrap_err();
    /// assert_eq!(err.to_string(), "leaky relu new: alpha is NaN but must be finite and >= 0");
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(alpha: f32) -> Result<LeakyRelu, Error> {
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(Error::argument(
                "leaky relu new",
                format!("alpha is {alpha} but must be finite and >= 0"),
            ));
        }
        Ok(Pointwise::with_op(LeakyReluOp { alpha }))
    }

    /// The negative slope.
    ///
    /// ```
    /// assert_eq!(densegrad::LeakyRelu::new(0.2)?.alpha(), 0.2);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn alpha(&self) -> f32 {
        self.op.alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::{LeakyReluOp, ReluOp, SigmoidOp, TanhOp};
    use crate::kernels::parallel::PAR_MIN_ELEMS;

    /// Pseudo-random values in ±4 with the extremes mixed in: ±0, NaN, ±∞,
    /// subnormals, ±1e30.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let special = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -1e-40,
            1e30,
            -1e30,
        ];
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % 97 == 0 {
                    special[(s >> 60) as usize % special.len()]
                } else {
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
                }
            })
            .collect()
    }

    /// The owned `forward` and in-place `backward` of a large input (its
    /// output written in blocks by the threads) against `forward_ref` and
    /// `backward_ref`, bit for bit, at 1 and 2 threads; the length is not a
    /// multiple of a block or of a sign byte.
    fn owned_matches_ref<Op: PointwiseOp>(op: Op) {
        let n = 2 * PAR_MIN_ELEMS + FRESH_BLOCK / 2 + 37;
        let x = Tensor::new(&[n, 1], values(n, 1)).unwrap();
        let dy = Tensor::new(&[n, 1], values(n, 2)).unwrap();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (mut owned, mut by_ref) = (Pointwise::with_op(op), Pointwise::with_op(op));
                let y = owned.forward(&x).unwrap();
                let y_ref = by_ref.forward_ref(&x).unwrap();
                assert_eq!(y.shape(), y_ref.shape());
                let same =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same(y.data(), y_ref.data()),
                    "{} forward at {threads} threads",
                    Op::NAME
                );
                let dx = owned.backward(dy.clone()).unwrap();
                let dx_ref = by_ref.backward_ref(&dy).unwrap();
                assert!(
                    same(dx.data(), dx_ref.data()),
                    "{} backward at {threads} threads",
                    Op::NAME
                );
            });
        }
    }

    #[test]
    fn owned_passes_of_large_inputs_have_the_bits_of_the_ref_passes() {
        owned_matches_ref(ReluOp);
        owned_matches_ref(LeakyReluOp { alpha: 0.1 });
        owned_matches_ref(SigmoidOp);
        owned_matches_ref(TanhOp);
    }
}
