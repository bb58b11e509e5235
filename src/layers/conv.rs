use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::conv::{conv2d_backward, conv2d_forward, partials_len, ColBuffers};
use crate::kernels::window::Window2d;
use crate::{Error, Param, StateMut, Tensor};
#[cfg(feature = "rand")]
use crate::{Init, InitRng};

/// 2-D convolution over NCHW input: `y[n, f] = Σ_c x[n, c] ⋆ W[f, c] + b[f]`,
/// with W of shape (FN, C, FH, FW), b of shape (FN), zero padding `pad` on
/// every side and step `stride` (the book's `Convolution(W, b, stride, pad)`,
/// PyTorch's `F.conv2d` values).
///
/// Input (N, C, H, W), output (N, FN, OH, OW) with
/// `OH = (H + 2·pad − FH) / stride + 1` (floor), likewise OW. Computed as
/// im2col + sgemm per sample (see [`kernels::conv`](crate::kernels::conv)),
/// split over rayon threads by fixed chunks of samples: bitwise identical
/// for any thread count. Backward computes dX, dW and db; dW and db are
/// overwritten by each backward, not accumulated. An [`Affine`](crate::Affine)
/// after it flattens (N, FN, OH, OW) to (N, FN·OH·OW).
///
/// ```
/// use densegrad::{Convolution, Layer, Tensor};
///
/// // One 2×2 filter of ones over a 3×3 image: sums of 2×2 blocks, plus 1.
/// let mut conv = Convolution::new(Tensor::new(&[1, 1, 2, 2], vec![1.0; 4])?,
///                                 Tensor::from_slice(&[1.0]), 1, 0)?;
/// let x = Tensor::new(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect())?;
/// let y = conv.forward(&x)?;
/// assert_eq!(y.shape(), &[1, 1, 2, 2]);
/// assert_eq!(y.data(), &[13.0, 17.0, 25.0, 29.0]);
///
/// let dx = conv.backward(Tensor::new(&[1, 1, 2, 2], vec![1.0; 4])?)?;
/// assert_eq!(dx.data(), &[1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// assert_eq!(conv.dw().unwrap().data(), &[12.0, 16.0, 24.0, 28.0]);
/// assert_eq!(conv.db().unwrap().data(), &[4.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Convolution {
    w: Tensor,
    b: Tensor,
    dw: Tensor,
    db: Tensor,
    stride: usize,
    pad: usize,
    has_grads: bool,
    /// The last forward's input (N·C·H·W values).
    x: Vec<f32>,
    out: Tensor,
    dx: Tensor,
    /// The last forward's input shape and geometry; `None` before a
    /// successful forward.
    cache: Option<([usize; 4], Window2d)>,
    bufs: ColBuffers,
    /// Per-chunk partial dW and db.
    partials: Vec<f32>,
}

/// (FN, C, FH, FW) of a valid weight/bias pair, or an `Err` naming both.
fn check_params(op: &'static str, w: &Tensor, b: &Tensor) -> Result<[usize; 4], Error> {
    let &[fnum, c, fh, fw] = w.shape() else {
        return Err(Error::shape(
            op,
            format!(
                "weight is {:?} but must be 4-D (filters, channels, height, width)",
                w.shape()
            ),
        ));
    };
    if w.numel() == 0 {
        return Err(Error::shape(
            op,
            format!(
                "weight is {:?}; every dimension must be at least 1",
                w.shape()
            ),
        ));
    }
    if b.shape() != [fnum] {
        return Err(Error::shape(
            op,
            format!(
                "bias is {:?} but weight is {:?}: bias must be [{fnum}]",
                b.shape(),
                w.shape()
            ),
        ));
    }
    Ok([fnum, c, fh, fw])
}

impl Convolution {
    /// A convolution with filters `w` (FN, C, FH, FW), bias `b` (FN), and
    /// the given `stride` (≥ 1) and zero padding `pad`.
    ///
    /// ```
    /// use densegrad::{Convolution, Tensor};
    ///
    /// let conv = Convolution::new(Tensor::zeros(&[30, 1, 5, 5]), Tensor::zeros(&[30]), 1, 0)?;
    /// assert_eq!(conv.weight().shape(), &[30, 1, 5, 5]);
    ///
    /// let err = Convolution::new(Tensor::zeros(&[30, 25]), Tensor::zeros(&[30]), 1, 0).unwrap_err();
    /// assert_eq!(err.to_string(),
    ///     "convolution new: weight is [30, 25] but must be 4-D (filters, channels, height, width)");
    /// let err = Convolution::new(Tensor::zeros(&[30, 1, 5, 5]), Tensor::zeros(&[30]), 0, 0).unwrap_err();
    /// assert_eq!(err.to_string(), "convolution new: stride must be at least 1");
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(w: Tensor, b: Tensor, stride: usize, pad: usize) -> Result<Convolution, Error> {
        const OP: &str = "convolution new";
        let [fnum, c, fh, fw] = check_params(OP, &w, &b)?;
        if stride == 0 {
            return Err(Error::argument(OP, "stride must be at least 1"));
        }
        Ok(Convolution {
            dw: Tensor::try_zeros(&[fnum, c, fh, fw])?,
            db: Tensor::zeros(&[fnum]),
            w,
            b,
            stride,
            pad,
            has_grads: false,
            x: Vec::new(),
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            cache: None,
            bufs: ColBuffers::new(),
            partials: Vec::new(),
        })
    }

    /// A convolution with filters of `shape` (FN, C, FH, FW) drawn by `init`
    /// (fan-in C·FH·FW) from a ChaCha8 stream seeded by `seed`, biases 0.
    ///
    /// ```
    /// use densegrad::{Convolution, Init};
    /// let conv = Convolution::with_init([30, 1, 5, 5], 1, 0, Init::He, 42)?;
    /// assert_eq!(conv.weight().shape(), &[30, 1, 5, 5]);
    /// assert_eq!(conv.bias().data(), &[0.0; 30]);
    /// // The same seed, the same filters.
    /// assert_eq!(conv.weight(), Convolution::with_init([30, 1, 5, 5], 1, 0, Init::He, 42)?.weight());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
    #[cfg(feature = "rand")]
    pub fn with_init(
        shape: [usize; 4],
        stride: usize,
        pad: usize,
        init: Init,
        seed: u64,
    ) -> Result<Convolution, Error> {
        let [fnum, c, fh, fw] = shape;
        let fan_in = c
            .checked_mul(fh)
            .and_then(|v| v.checked_mul(fw))
            .ok_or_else(|| {
                Error::shape(
                    "convolution new",
                    format!("weight {shape:?} has more elements than memory can hold"),
                )
            })?;
        let mut rng = InitRng::new(seed);
        let mut w = init.weights(fan_in, fnum, &mut rng)?;
        w.reshape(&shape)?;
        Convolution::new(w, Tensor::try_zeros(&[fnum])?, stride, pad)
    }

    /// The filters W, (FN, C, FH, FW).
    ///
    /// ```
    /// # use densegrad::{Convolution, Tensor};
    /// let conv = Convolution::new(Tensor::zeros(&[2, 3, 1, 1]), Tensor::zeros(&[2]), 1, 0)?;
    /// assert_eq!(conv.weight().shape(), &[2, 3, 1, 1]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Tensor {
        &self.w
    }

    /// The bias b, (FN).
    ///
    /// ```
    /// # use densegrad::{Convolution, Tensor};
    /// let conv = Convolution::new(Tensor::zeros(&[2, 3, 1, 1]), Tensor::from_slice(&[1.0, 2.0]), 1, 0)?;
    /// assert_eq!(conv.bias().data(), &[1.0, 2.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn bias(&self) -> &Tensor {
        &self.b
    }

    /// Mutable filter values (FN·C·FH·FW, row-major); the shape cannot be
    /// changed through them.
    ///
    /// ```
    /// # use densegrad::{Convolution, Tensor};
    /// let mut conv = Convolution::new(Tensor::zeros(&[1, 1, 1, 2]), Tensor::zeros(&[1]), 1, 0)?;
    /// conv.weight_mut().copy_from_slice(&[1.0, -1.0]);
    /// assert_eq!(conv.weight().data(), &[1.0, -1.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn weight_mut(&mut self) -> &mut [f32] {
        self.w.data_mut()
    }

    /// Mutable bias values (FN).
    ///
    /// ```
    /// # use densegrad::{Convolution, Tensor};
    /// let mut conv = Convolution::new(Tensor::zeros(&[1, 1, 1, 1]), Tensor::zeros(&[1]), 1, 0)?;
    /// conv.bias_mut()[0] = 0.5;
    /// assert_eq!(conv.bias().data(), &[0.5]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn bias_mut(&mut self) -> &mut [f32] {
        self.b.data_mut()
    }

    /// ∂loss/∂W from the last backward, or `None` before the first backward.
    ///
    /// ```
    /// # use densegrad::{Convolution, Layer, Tensor};
    /// let mut conv = Convolution::new(Tensor::zeros(&[1, 1, 1, 1]), Tensor::zeros(&[1]), 1, 0)?;
    /// assert!(conv.dw().is_none());
    /// conv.forward(&Tensor::new(&[1, 1, 1, 2], vec![2.0, 3.0])?)?;
    /// conv.backward(Tensor::new(&[1, 1, 1, 2], vec![1.0, 1.0])?)?;
    /// assert_eq!(conv.dw().unwrap().data(), &[5.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn dw(&self) -> Option<&Tensor> {
        self.has_grads.then_some(&self.dw)
    }

    /// ∂loss/∂b from the last backward, or `None` before the first backward.
    ///
    /// ```
    /// # use densegrad::{Convolution, Layer, Tensor};
    /// let mut conv = Convolution::new(Tensor::zeros(&[1, 1, 1, 1]), Tensor::zeros(&[1]), 1, 0)?;
    /// conv.forward(&Tensor::new(&[1, 1, 1, 2], vec![2.0, 3.0])?)?;
    /// conv.backward(Tensor::new(&[1, 1, 1, 2], vec![1.0, 4.0])?)?;
    /// assert_eq!(conv.db().unwrap().data(), &[5.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn db(&self) -> Option<&Tensor> {
        self.has_grads.then_some(&self.db)
    }

    /// The stride.
    ///
    /// ```
    /// # use densegrad::{Convolution, Tensor};
    /// let conv = Convolution::new(Tensor::zeros(&[1, 1, 3, 3]), Tensor::zeros(&[1]), 2, 1)?;
    /// assert_eq!((conv.stride(), conv.pad()), (2, 1));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The zero padding on each side.
    ///
    /// ```
    /// # use densegrad::{Convolution, Tensor};
    /// let conv = Convolution::new(Tensor::zeros(&[1, 1, 3, 3]), Tensor::zeros(&[1]), 1, 1)?;
    /// assert_eq!(conv.pad(), 1);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn pad(&self) -> usize {
        self.pad
    }

    fn backward_inner(&mut self, dout: &Tensor, want_dx: bool) -> Result<(), Error> {
        const OP: &str = "convolution backward";
        let (x_shape, g) = self.cache.ok_or_else(|| not_ready(OP))?;
        require_same_shape(OP, dout, self.out.shape())?;
        let shape: [usize; 4] = self
            .w
            .shape()
            .try_into()
            .expect("new checked that W is 4-D, and the views cannot reshape it");
        let n = x_shape[0];
        let plen = partials_len(n, &g, shape[0]).ok_or_else(|| {
            Error::shape(OP, "the per-chunk gradients need more memory than exists")
        })?;
        if plen > self.partials.len() {
            self.partials
                .try_reserve_exact(plen - self.partials.len())
                .map_err(|_| {
                    Error::shape(OP, "the per-chunk gradients need more memory than exists")
                })?;
        }
        self.partials.resize(plen, 0.0);
        self.bufs.reserve(&g, shape[0], true)?;
        let dx = if want_dx {
            self.dx.try_resize_buffer(OP, &x_shape)?;
            Some(self.dx.data_mut())
        } else {
            None
        };
        conv2d_backward(
            &self.x,
            n,
            &g,
            self.w.data(),
            dout.data(),
            self.dw.data_mut(),
            self.db.data_mut(),
            dx,
            &mut self.partials,
            &self.bufs,
        );
        self.has_grads = true;
        Ok(())
    }
}

impl Convolution {
    /// The forward pass; `keep_input` keeps a copy of x (and so allows a
    /// backward).
    fn forward_inner(&mut self, x: &Tensor, keep_input: bool) -> Result<&Tensor, Error> {
        const OP: &str = "convolution forward";
        // A refused forward leaves nothing for a backward to use.
        self.cache = None;
        // `new` checked W and b, and the views `visit_params` hands out
        // cannot change their shapes.
        let [fnum, c, fh, fw]: [usize; 4] = self
            .w
            .shape()
            .try_into()
            .expect("new checked that W is 4-D");
        let &[n, xc, h, w] = x.shape() else {
            return Err(Error::shape(
                OP,
                format!(
                    "x is {:?} but must be 4-D (batch, channels, height, width)",
                    x.shape()
                ),
            ));
        };
        if xc != c {
            return Err(Error::shape(
                OP,
                format!(
                    "x is {:?} but weight is {:?}: x needs {c} channels",
                    x.shape(),
                    self.w.shape()
                ),
            ));
        }
        require_nonempty(OP, x)?;
        let g = Window2d::new(OP, c, h, w, fh, fw, self.stride, self.pad)?;
        self.out
            .try_resize_buffer(OP, &[n, fnum, g.out_h(), g.out_w()])?;
        self.bufs.reserve(&g, fnum, false)?;
        if keep_input {
            self.x.clear();
            self.x.try_reserve(x.numel()).map_err(|_| {
                Error::shape(
                    OP,
                    format!("keeping x {:?} needs more memory than exists", x.shape()),
                )
            })?;
            self.x.extend_from_slice(x.data());
        }
        conv2d_forward(
            x.data(),
            n,
            &g,
            self.w.data(),
            self.b.data(),
            self.out.data_mut(),
            &mut self.bufs,
        );
        if keep_input {
            self.cache = Some(([n, c, h, w], g));
        }
        Ok(&self.out)
    }
}

impl Layer for Convolution {
    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.forward_inner(x, true)
    }

    /// Without the copy of x that backward's im2col needs.
    fn forward_inference(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.forward_inner(x, false)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        self.backward_inner(dout, true)?;
        Ok(&self.dx)
    }

    /// dW and db only: skips Wᵀ·dY and col2im (the first layer of a network).
    fn backward_params_only(&mut self, dout: &Tensor) -> Result<(), Error> {
        self.backward_inner(dout, false)
    }

    /// Visits (W, dW) then (b, db). Before the first backward the gradients
    /// are zeros.
    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        f(Param::new("weight", &mut self.w, &self.dw));
        f(Param::new("bias", &mut self.b, &self.db));
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
