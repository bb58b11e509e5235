use super::sealed::RowWise;
use super::{not_ready, require_nonempty, require_same_shape, store, Layer};
use crate::kernels::gemm::{
    gemm, gemm_par_balanced, Balance, MatRef, GEMM_HALVES_MIN_FLOPS, GEMM_PAR_MIN_FLOPS,
};
use crate::kernels::parallel::{for_row_blocks, BackOff};
use crate::kernels::reduce::{axpy, broadcast_rows, col_sums};
use crate::{Error, Param, StateMut, Tensor};
#[cfg(feature = "rand")]
use crate::{Init, InitRng};

/// Fully connected layer, `Y = X·W + b`, with W of shape (K, M) and b of shape (M).
///
/// X is (N, K). A 1-D X of length K is one sample and gives a 1-D Y of
/// length M; an X with more than two dimensions, (N, d1, d2, …), is flattened
/// to (N, d1·d2·…) and its gradient `dX` gets the original shape back.
///
/// Backward computes `dX = dY·Wᵀ`, `dW = Xᵀ·dY` and `db = Σ_rows dY` with
/// `matrixmultiply::sgemm`, reading the transposes through strides (no copy).
/// `dW` and `db` are overwritten by each backward, not accumulated.
///
/// A forward product of 4–16 MFLOP
/// ([`GEMM_HALVES_MIN_FLOPS`](crate::kernels::gemm::GEMM_HALVES_MIN_FLOPS)
/// up to [`GEMM_PAR_MIN_FLOPS`](crate::kernels::gemm::GEMM_PAR_MIN_FLOPS),
/// such as 100×784·784×50) is summed as `(b + X₁·W₁) + X₂·W₂` over two
/// halves of K, run side by side when rayon has a second thread, and the
/// input is kept as those two blocks of columns, from which dW's two halves
/// of rows are computed side by side: each thread reads only its half of W
/// and of X. From two threads, a backward whose products are each at least
/// [`GEMM_PAR_MIN_FLOPS`](crate::kernels::gemm::GEMM_PAR_MIN_FLOPS) (such as
/// 256×1024·1024×1024) computes dX and dW side by side. The sums are the
/// same at any thread count.
///
/// The forward keeps a copy of its input for dW, except in a
/// [`Sequential`](crate::Sequential) step after another of the crate's
/// Affine or pointwise layers: the network then lends it that layer's
/// output, still in the layer's buffer at the backward (W4 large's step
/// copied 2 MiB so). The same bits either way.
///
/// ```
/// use densegrad::{Affine, Layer, Tensor};
///
/// let w = Tensor::new(&[2, 3], vec![1.0, 0.0, 2.0, 0.0, 1.0, -1.0])?;
/// let b = Tensor::from_slice(&[0.5, 0.5, 0.5]);
/// let mut fc = Affine::new(w, b)?;
///
/// let x = Tensor::new(&[1, 2], vec![3.0, 4.0])?;
/// assert_eq!(fc.forward(&x)?.data(), &[3.5, 4.5, 2.5]);
///
/// let dx = fc.backward(Tensor::new(&[1, 3], vec![1.0, 1.0, 1.0])?)?;
/// assert_eq!(dx.data(), &[3.0, 0.0]);
/// assert_eq!(fc.dw().unwrap().data(), &[3.0, 3.0, 3.0, 4.0, 4.0, 4.0]);
/// assert_eq!(fc.db().unwrap().data(), &[1.0, 1.0, 1.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Affine {
    w: Tensor,
    b: Tensor,
    dw: Tensor,
    db: Tensor,
    has_grads: bool,
    /// The last forward's input, flattened to (n, k).
    x: Vec<f32>,
    /// Reused output and input-gradient buffers.
    out: Tensor,
    dx: Tensor,
    /// The last forward's input shape, and (n, k, m).
    cache: Option<ForwardShapes>,
    /// Whether the last forward succeeded (so `cache` and `x` are its).
    ready: bool,
    /// For a forward cut in K ([`k_cut`]): the input's columns `..cut`
    /// and `cut..` (every row), each copied by the thread that reads it
    /// again for dW, and X·W over the second part of K.
    x_cols: [Vec<f32>; 2],
    partial: Vec<f32>,
    /// Those halves run on the calling thread alone while the other one
    /// keeps stalling (its core busy with another process).
    back_off: BackOff,
    /// Whether its large products run their halves balanced between the
    /// threads (after fixed halves ended unevenly).
    balance: Balance,
}

#[derive(Debug, Clone)]
struct ForwardShapes {
    x_shape: Vec<usize>,
    n: usize,
    k: usize,
    m: usize,
    /// Where the forward cut K ([`k_cut`]); the input is then kept as its
    /// two blocks of columns, in `x_cols`.
    cut: Option<usize>,
    /// Whether the input was lent (`RowWise::forward_lent`): not kept, and
    /// handed to the backward by the caller instead.
    lent: bool,
}

/// What a forward keeps of its input for the backward.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing: no backward can follow (inference).
    Nothing,
    /// A copy, in `x` or `x_cols`.
    Copy,
    /// Nothing: the caller keeps the input alive and hands it to the
    /// backward (`Sequential`, whose previous layer's output it is).
    Lent,
}

impl Affine {
    /// An Affine layer with weight `w` of shape (K, M) and bias `b` of shape (M).
    ///
    /// Errors if `w` is not 2-D, either dimension is 0, or `b` is not (M).
    ///
    /// ```
    /// use densegrad::{Affine, Tensor};
    ///
    /// let fc = Affine::new(Tensor::zeros(&[784, 50]), Tensor::zeros(&[50]))?;
    /// assert_eq!(fc.weight().shape(), &[784, 50]);
    ///
    /// let err = Affine::new(Tensor::zeros(&[784, 50]), Tensor::zeros(&[10])).unwrap_err();
    /// assert_eq!(err.to_string(), "affine new: bias is [10] but weight is [784, 50]: bias must be [50]");
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(w: Tensor, b: Tensor) -> Result<Affine, Error> {
        let (k, m) = check_params("affine new", &w, &b)?;
        Ok(Affine {
            dw: Tensor::zeros(&[k, m]),
            db: Tensor::zeros(&[m]),
            w,
            b,
            has_grads: false,
            x: Vec::new(),
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            cache: None,
            ready: false,
            x_cols: [Vec::new(), Vec::new()],
            partial: Vec::new(),
            back_off: BackOff::default(),
            balance: Balance::default(),
        })
    }

    /// An Affine layer (K, M) with weights drawn by `init` (fan-in K) from a
    /// ChaCha8 stream seeded by `seed`, biases 0. The same draws as
    /// [`Sequential::mlp`](crate::Sequential::mlp) makes for a layer.
    ///
    /// ```
    /// use densegrad::{Affine, Init};
    /// let fc = Affine::with_init(784, 50, Init::He, 7)?;
    /// assert_eq!(fc.weight().shape(), &[784, 50]);
    /// assert_eq!(fc.weight(), Affine::with_init(784, 50, Init::He, 7)?.weight());
    /// assert!(Affine::with_init(0, 50, Init::He, 7).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
    #[cfg(feature = "rand")]
    pub fn with_init(k: usize, m: usize, init: Init, seed: u64) -> Result<Affine, Error> {
        let mut rng = InitRng::new(seed);
        let w = init.weights(k, m, &mut rng)?;
        Affine::new(w, Tensor::try_zeros(&[m])?)
    }

    /// The weight W, (K, M).
    ///
    /// ```
    /// use densegrad::{Affine, Tensor};
    /// let fc = Affine::new(Tensor::zeros(&[4, 3]), Tensor::zeros(&[3]))?;
    /// assert_eq!(fc.weight().shape(), &[4, 3]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Tensor {
        &self.w
    }

    /// The bias b, (M).
    ///
    /// ```
    /// use densegrad::{Affine, Tensor};
    /// let fc = Affine::new(Tensor::zeros(&[4, 3]), Tensor::from_slice(&[1.0, 2.0, 3.0]))?;
    /// assert_eq!(fc.bias().data(), &[1.0, 2.0, 3.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn bias(&self) -> &Tensor {
        &self.b
    }

    /// Mutable weight values. The slice has W's K·M elements; its shape
    /// cannot be changed through it.
    ///
    /// ```
    /// use densegrad::{Affine, Tensor};
    /// let mut fc = Affine::new(Tensor::zeros(&[2, 1]), Tensor::zeros(&[1]))?;
    /// fc.weight_mut().copy_from_slice(&[1.0, 2.0]);
    /// assert_eq!(fc.weight().data(), &[1.0, 2.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn weight_mut(&mut self) -> &mut [f32] {
        self.w.data_mut()
    }

    /// Mutable bias values (M elements).
    ///
    /// ```
    /// use densegrad::{Affine, Tensor};
    /// let mut fc = Affine::new(Tensor::zeros(&[2, 1]), Tensor::zeros(&[1]))?;
    /// fc.bias_mut()[0] = 3.0;
    /// assert_eq!(fc.bias().data(), &[3.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn bias_mut(&mut self) -> &mut [f32] {
        self.b.data_mut()
    }

    /// ∂loss/∂W from the last backward, or `None` before the first backward.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    /// let mut fc = Affine::new(Tensor::zeros(&[2, 1]), Tensor::zeros(&[1]))?;
    /// assert!(fc.dw().is_none());
    /// fc.forward(&Tensor::from_slice(&[1.0, 2.0]))?;
    /// fc.backward(Tensor::from_slice(&[3.0]))?;
    /// assert_eq!(fc.dw().unwrap().data(), &[3.0, 6.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn dw(&self) -> Option<&Tensor> {
        self.has_grads.then_some(&self.dw)
    }

    /// ∂loss/∂b from the last backward, or `None` before the first backward.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    /// let mut fc = Affine::new(Tensor::zeros(&[2, 1]), Tensor::zeros(&[1]))?;
    /// assert!(fc.db().is_none());
    /// fc.forward(&Tensor::new(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?)?;
    /// fc.backward(Tensor::new(&[2, 1], vec![3.0, 4.0])?)?;
    /// assert_eq!(fc.db().unwrap().data(), &[7.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn db(&self) -> Option<&Tensor> {
        self.has_grads.then_some(&self.db)
    }
}

impl Affine {
    /// dX (with `want_dx`), dW and db from `dout`, and from the last
    /// forward's input: the copy the layer kept, or `lent`, the input the
    /// caller lent to that forward.
    fn backward_inner(
        &mut self,
        dout: &Tensor,
        want_dx: bool,
        lent: Option<&Tensor>,
    ) -> Result<(), Error> {
        const OP: &str = "affine backward";
        let c = self
            .cache
            .as_ref()
            .filter(|_| self.ready)
            .ok_or_else(|| not_ready(OP))?;
        require_same_shape(OP, dout, self.out.shape())?;
        let (n, k, m, cut) = (c.n, c.k, c.m, c.cut);
        let lent = match (c.lent, lent) {
            (false, None) => None,
            (true, Some(x)) if x.shape() == c.x_shape => Some(x.data()),
            (true, Some(x)) => {
                return Err(Error::shape(
                    OP,
                    format!(
                        "the lent input is {:?} but the forward's was {:?}",
                        x.shape(),
                        c.x_shape
                    ),
                ))
            }
            (true, None) => {
                return Err(Error::state(
                    OP,
                    "the last forward's input was lent by Sequential::loss, not kept; \
                     Sequential::backward hands it back",
                ))
            }
            (false, Some(_)) => {
                return Err(Error::state(
                    OP,
                    "the last forward kept its own input; nothing was lent",
                ))
            }
        };
        if want_dx {
            self.dx.resize_buffer(&c.x_shape);
        }
        let (w, dy, dx) = (&self.w, dout.data(), self.dx.data_mut());
        let balance = &self.balance;
        let mut dx_pass = || {
            if want_dx {
                input_grad(dy, w, dx, balance);
            }
        };
        // dW = Xᵀ·dY, split by rows of dW (columns of X): whole output rows
        // per thread, never partial sums across threads.
        let (x_cols, back_off) = (&self.x_cols, &mut self.back_off);
        let x = lent.unwrap_or(&self.x);
        let (dw, db) = (&mut self.dw, &mut self.db);
        let mut dw_pass = || match cut {
            Some(cut) => {
                let xt = match lent {
                    // The lent input, read in place.
                    Some(x) => xt_halves(x, n, k, cut),
                    // The input kept as its two blocks of columns (each
                    // on the thread that copied it).
                    None => {
                        let [top, bottom] = x_cols;
                        [
                            MatRef::row_major(top, n, cut).t(),
                            MatRef::row_major(bottom, n, k - cut).t(),
                        ]
                    }
                };
                param_grads_in_halves(xt, cut, dy, (dw, db), back_off);
            }
            None => param_grads(x, dy, k, m, (dw, db), balance),
        };
        if want_dx && cut.is_none() && dx_beside_dw(n, k, m) {
            rayon::join(dx_pass, dw_pass);
        } else {
            dx_pass();
            dw_pass();
        }
        self.has_grads = true;
        Ok(())
    }
}

/// Whether backward computes dX and dW side by side, each product cut by
/// `gemm_par` among the threads that are free: from two threads, when each
/// product is at least [`GEMM_PAR_MIN_FLOPS`]. One after the other, each cut
/// in two, every product ends waiting for the slower half and every block
/// packs all of its uncut operand; side by side, a thread that is done with
/// its product's blocks takes the other's, so the two products end
/// together (W1 256×1024×1024's backward: 0.94–0.98× the time at 2 threads,
/// BENCHMARKS.md). Each element is the same sum either way.
fn dx_beside_dw(n: usize, k: usize, m: usize) -> bool {
    let flops = n.saturating_mul(k).saturating_mul(m).saturating_mul(2);
    rayon::current_num_threads() > 1 && flops >= GEMM_PAR_MIN_FLOPS
}

/// Where the forward product of n rows, K = k and M = m is cut in K, on a
/// 16-column edge as `gemm_par` cuts dW's rows: for 4–16 MFLOP, where
/// `gemm_par` would cut the output in two halves that each read all of W.
/// In a training step the optimizer has just rewritten W, on both threads
/// (it updates parameters of 16K–128K elements in halves): reading the
/// other thread's half cost W4 small's 50-row products 16–19 µs each
/// (`examples/cross_core.rs`). Cut in K, each thread reads the half of W
/// it updates, and the one crossing left is the partial output (n × m).
fn k_cut(n: usize, k: usize, m: usize) -> Option<usize> {
    let flops = n.saturating_mul(k).saturating_mul(m).saturating_mul(2);
    if (GEMM_HALVES_MIN_FLOPS..GEMM_PAR_MIN_FLOPS).contains(&flops) {
        half_of(k)
    } else {
        None
    }
}

/// Where `k` rows or columns are cut in two: the first 16-element edge at or
/// after the middle, or `None` below 32 (a half would be empty or tiny).
fn half_of(k: usize) -> Option<usize> {
    (k >= 32).then(|| k.div_ceil(2).next_multiple_of(16))
}

/// Y = X·W + b for the rows `x`: b broadcast, then X·W added. The layer's
/// forward and `Sequential`'s batch chunks both compute it here, so a row's
/// output has the same bits in any batch.
fn output(x: &[f32], w: &Tensor, b: &Tensor, y: &mut [f32], balance: &Balance) {
    let (k, m) = (w.shape()[0], w.shape()[1]);
    for_row_blocks(y.len() / m, m, y, |_, y| broadcast_rows(b.data(), y));
    gemm_par_balanced(
        1.0,
        MatRef::row_major(x, x.len() / k, k),
        MatRef::row_major(w.data(), k, m),
        1.0,
        y,
        Some(balance),
    );
}

/// dX = dY·Wᵀ for the rows `dy`, for the layer's backward and the batch
/// chunks alike.
fn input_grad(dy: &[f32], w: &Tensor, dx: &mut [f32], balance: &Balance) {
    let (k, m) = (w.shape()[0], w.shape()[1]);
    gemm_par_balanced(
        1.0,
        MatRef::row_major(dy, dy.len() / m, m),
        MatRef::row_major(w.data(), k, m).t(),
        0.0,
        dx,
        Some(balance),
    );
}

/// dW = Xᵀ·dY and db = Σ_rows dY for the rows `x` (k wide) and `dy` (m
/// wide): the one place both sums over the batch are taken, for the layer's
/// own backward and for `Sequential`'s batch chunks.
fn param_grads(
    x: &[f32],
    dy: &[f32],
    k: usize,
    m: usize,
    (dw, db): (&mut Tensor, &mut Tensor),
    balance: &Balance,
) {
    let n = dy.len() / m;
    gemm_par_balanced(
        1.0,
        MatRef::row_major(&x[..n * k], n, k).t(),
        MatRef::row_major(dy, n, m),
        0.0,
        dw.data_mut(),
        Some(balance),
    );
    col_sums(dy, db.data_mut());
}

/// (K, M) of a valid weight/bias pair, or an `Err` naming both shapes.
fn check_params(op: &'static str, w: &Tensor, b: &Tensor) -> Result<(usize, usize), Error> {
    let &[k, m] = w.shape() else {
        return Err(Error::shape(
            op,
            format!(
                "weight is {:?} but must be 2-D (in_features, out_features)",
                w.shape()
            ),
        ));
    };
    if k == 0 || m == 0 {
        return Err(Error::shape(
            op,
            format!(
                "weight is {:?}; both dimensions must be at least 1",
                w.shape()
            ),
        ));
    }
    if b.shape() != [m] {
        return Err(Error::shape(
            op,
            format!(
                "bias is {:?} but weight is {:?}: bias must be [{m}]",
                b.shape(),
                w.shape()
            ),
        ));
    }
    Ok((k, m))
}

impl Affine {
    /// The forward pass, keeping of x what `keep` says (a backward needs a
    /// copy or a lent x).
    fn forward_inner(&mut self, x: &Tensor, keep: Keep) -> Result<&Tensor, Error> {
        const OP: &str = "affine forward";
        // A refused forward leaves nothing for a backward to use (the
        // cache keeps its allocation).
        self.ready = false;
        // `new` checked W and b, and the views `visit_params` hands out
        // cannot change their shapes.
        let (k, m) = (self.w.shape()[0], self.w.shape()[1]);
        let (n, xk) = x.batch_dims().ok_or_else(|| {
            Error::shape(
                OP,
                "x is a 0-D scalar; it needs at least one dimension of features",
            )
        })?;
        if xk != k {
            let flat = if x.ndim() > 2 {
                format!(" (flattened to [{n}, {xk}])")
            } else {
                String::new()
            };
            return Err(Error::shape(
                OP,
                format!(
                    "x is {:?}{flat} but weight is {:?}: x needs {k} features per row",
                    x.shape(),
                    self.w.shape()
                ),
            ));
        }
        require_nonempty(OP, x)?;

        if x.ndim() == 1 {
            self.out.resize_buffer(&[m]);
        } else {
            self.out.resize_buffer(&[n, m]);
        }
        let cut = k_cut(n, k, m);
        let keep_input = keep == Keep::Copy;
        match cut {
            Some(cut) => self.output_in_k_halves(x.data(), cut, keep_input),
            None => {
                if keep_input {
                    store(&mut self.x, x.data());
                }
                output(
                    x.data(),
                    &self.w,
                    &self.b,
                    self.out.data_mut(),
                    &self.balance,
                );
            }
        }
        let cache = self.cache.get_or_insert_with(|| ForwardShapes {
            x_shape: Vec::new(),
            n,
            k,
            m,
            cut,
            lent: false,
        });
        cache.x_shape.clear();
        cache.x_shape.extend_from_slice(x.shape());
        (cache.n, cache.k, cache.m, cache.cut) = (n, k, m, cut);
        cache.lent = keep == Keep::Lent;
        self.ready = keep != Keep::Nothing;
        Ok(&self.out)
    }
}

impl Affine {
    /// Y = X·W + b as `(b + X[:, ..cut]·W[..cut]) + X[:, cut..]·W[cut..]`,
    /// the two products side by side; with `keep_input`, each thread also
    /// copies its block of X's columns for dW. The same sums at any thread
    /// count (one thread runs both halves in turn).
    fn output_in_k_halves(&mut self, x: &[f32], cut: usize, keep_input: bool) {
        let (k, m) = (self.w.shape()[0], self.w.shape()[1]);
        let n = x.len() / k;
        self.partial.resize(n * m, 0.0);
        let [x_top, x_bottom] = &mut self.x_cols;
        let xm = MatRef::row_major(x, n, k);
        let (w_top, w_bottom) = self.w.data().split_at(cut * m);
        let (b, out, partial) = (self.b.data(), self.out.data_mut(), &mut self.partial);
        self.back_off.join(
            || {
                broadcast_rows(b, out);
                let w_top = MatRef::row_major(w_top, cut, m);
                gemm(1.0, xm.col_block(0, cut), w_top, 1.0, out);
                if keep_input {
                    copy_columns(x, k, 0..cut, x_top);
                }
            },
            || {
                let w_bottom = MatRef::row_major(w_bottom, k - cut, m);
                gemm(1.0, xm.col_block(cut, k - cut), w_bottom, 0.0, partial);
                if keep_input {
                    copy_columns(x, k, cut..k, x_bottom);
                }
            },
        );
        axpy(1.0, &self.partial, self.out.data_mut());
    }
}

/// `block` = the columns `cols` of every row of `x` (rows of `width`),
/// resized to fit.
fn copy_columns(x: &[f32], width: usize, cols: std::ops::Range<usize>, block: &mut Vec<f32>) {
    let len = cols.len();
    block.resize(x.len() / width * len, 0.0);
    for (row, out) in x.chunks_exact(width).zip(block.chunks_exact_mut(len)) {
        out.copy_from_slice(&row[cols.clone()]);
    }
}

/// Xᵀ's rows `..cut` and `cut..` for the `n` rows `x` (k wide), read in
/// place through strides: the A of dW's two halves.
fn xt_halves(x: &[f32], n: usize, k: usize, cut: usize) -> [MatRef<'_>; 2] {
    let xt = MatRef::row_major(&x[..n * k], n, k).t();
    [xt.row_block(0, cut), xt.row_block(cut, k - cut)]
}

/// [`param_grads`] in two halves of dW's rows side by side, from the two
/// row blocks of Xᵀ (`xt[0]` has `cut` rows): each half is the product
/// that rows of one call would be, so the bits of one call.
fn param_grads_in_halves(
    xt: [MatRef<'_>; 2],
    cut: usize,
    dy: &[f32],
    (dw, db): (&mut Tensor, &mut Tensor),
    back_off: &mut BackOff,
) {
    let m = db.numel();
    let dy_m = MatRef::row_major(dy, dy.len() / m, m);
    let (dw_top, dw_bottom) = dw.data_mut().split_at_mut(cut * m);
    let db = db.data_mut();
    back_off.join(
        || {
            gemm(1.0, xt[0], dy_m, 0.0, dw_top);
            col_sums(dy, db);
        },
        || gemm(1.0, xt[1], dy_m, 0.0, dw_bottom),
    );
}

impl Layer for Affine {
    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.forward_inner(x, Keep::Copy)
    }

    /// Without the copy of x that backward's dW = Xᵀ·dY needs.
    fn forward_inference(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.forward_inner(x, Keep::Nothing)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        self.backward_inner(dout, true, None)?;
        Ok(&self.dx)
    }

    /// dW and db only: skips the dX product.
    fn backward_params_only(&mut self, dout: &Tensor) -> Result<(), Error> {
        self.backward_inner(dout, false, None)
    }

    /// Visits (W, dW) then (b, db). Before the first backward the gradients
    /// are zeros, so an optimizer that steps then changes nothing.
    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        f(Param::new("weight", &mut self.w, &self.dw));
        f(Param::new("bias", &mut self.b, &self.db));
    }

    /// dW then db.
    fn visit_grads_mut(&mut self, f: &mut dyn FnMut(&str, &mut [f32])) {
        f("weight", self.dw.data_mut());
        f("bias", self.db.data_mut());
    }

    fn row_wise(&self) -> Option<&dyn RowWise> {
        Some(self)
    }

    fn row_wise_mut(&mut self) -> Option<&mut dyn RowWise> {
        Some(self)
    }

    /// `weight` then `bias`.
    fn visit_state(&mut self, f: &mut dyn FnMut(StateMut<'_>)) {
        f(StateMut::new("weight", &mut self.w));
        f(StateMut::new("bias", &mut self.b));
    }

    fn visit_state_ref(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.w);
        f("bias", &self.b);
    }
}

/// Rows of a 2-D batch, through the functions `forward_ref` and
/// `backward_ref` use: [`output`], [`input_grad`], [`param_grads`].
impl RowWise for Affine {
    fn out_width(&self, width: usize) -> Option<usize> {
        (width == self.w.shape()[0]).then_some(self.w.shape()[1])
    }

    fn flops_per_row(&self, _width: usize) -> usize {
        2 * self.w.numel()
    }

    fn has_params(&self) -> bool {
        true
    }

    fn forward_rows(&self, x: &[f32], y: &mut [f32], _signs: &mut Vec<u8>) {
        output(x, &self.w, &self.b, y, &self.balance);
    }

    fn backward_rows(&self, _x: &[f32], _y: &[f32], _signs: &[u8], dy: &[f32], dx: &mut [f32]) {
        input_grad(dy, &self.w, dx, &self.balance);
    }

    /// dW's two halves of rows side by side whatever the product's size
    /// (below 4 MFLOP `gemm_par` would not cut it): in a chunked step the
    /// other thread has just run the second half of the batch and is
    /// awake. Cut by output, so the bits of one product. 100-19-10 at
    /// batch 1000, 2 threads: 220 µs against 278–283 µs with dW on one
    /// thread (which also let the helper fall asleep before the next
    /// step's join).
    fn param_grads(&mut self, x: &[f32], dy: &[f32]) {
        let (k, m) = (self.w.shape()[0], self.w.shape()[1]);
        match half_of(k) {
            Some(cut) => {
                let xt = xt_halves(x, dy.len() / m, k, cut);
                let grads = (&mut self.dw, &mut self.db);
                param_grads_in_halves(xt, cut, dy, grads, &mut self.back_off);
            }
            None => {
                let grads = (&mut self.dw, &mut self.db);
                param_grads(x, dy, k, m, grads, &self.balance);
            }
        }
        self.has_grads = true;
    }

    fn forget(&mut self) {
        self.ready = false;
    }

    /// Its input, for dW.
    fn keeps_input(&self) -> bool {
        true
    }

    fn forward_lent(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.forward_inner(x, Keep::Lent)
    }

    fn backward_lent(
        &mut self,
        x: &Tensor,
        dout: &Tensor,
        want_dx: bool,
    ) -> Result<Option<&Tensor>, Error> {
        self.backward_inner(dout, want_dx, Some(x))?;
        Ok(want_dx.then_some(&self.dx))
    }

    fn input_lent(&self) -> bool {
        self.ready && self.cache.as_ref().is_some_and(|c| c.lent)
    }

    /// Into `x`, or its two blocks of columns into `x_cols` after a
    /// forward cut in K, as the forward would have copied it.
    fn keep_lent(&mut self, x: &Tensor) {
        let Some(c) = self
            .cache
            .as_mut()
            .filter(|c| c.lent && x.shape() == c.x_shape)
        else {
            return;
        };
        match c.cut {
            Some(cut) => {
                let [top, bottom] = &mut self.x_cols;
                copy_columns(x.data(), c.k, 0..cut, top);
                copy_columns(x.data(), c.k, cut..c.k, bottom);
            }
            None => store(&mut self.x, x.data()),
        }
        c.lent = false;
    }

    fn output(&self) -> &Tensor {
        &self.out
    }
}
