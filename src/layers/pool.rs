use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::pool::{max_pool_backward, max_pool_forward, NO_INPUT};
use crate::kernels::window::Window2d;
use crate::{Error, Tensor};

/// 2-D max pooling over NCHW input, each channel on its own: the maximum
/// of every `pool_h`×`pool_w` window, moved by `stride`, over the input
/// padded by `pad` on every side (the book's `Pooling(pool_h, pool_w,
/// stride, pad)`).
///
/// Input (N, C, H, W), output (N, C, OH, OW) with
/// `OH = (H + 2·pad − pool_h) / stride + 1` (floor), likewise OW.
/// Padding never wins: the maximum is over the window's input pixels
/// only, as PyTorch's `max_pool2d` (the book pads with 0, which changes the
/// result for all-negative windows). Backward sends each output's gradient
/// to the position of its window's maximum (the first one on ties), summing
/// where windows overlap. The layer keeps only those positions (`u32`s),
/// not its input.
///
/// ```
/// use densegrad::{Layer, Pooling, Tensor};
///
/// let mut pool = Pooling::new(2, 2, 2, 0)?;
/// let x = Tensor::new(&[1, 1, 2, 4], vec![1.0, 5.0, -1.0, -2.0,
///                                         3.0, 2.0, -4.0, -3.0])?;
/// let y = pool.forward(&x)?;
/// assert_eq!((y.shape(), y.data()), (&[1, 1, 1, 2][..], &[5.0, -1.0][..]));
///
/// let dx = pool.backward(Tensor::new(&[1, 1, 1, 2], vec![10.0, 20.0])?)?;
/// assert_eq!(dx.data(), &[0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pooling {
    pool_h: usize,
    pool_w: usize,
    stride: usize,
    pad: usize,
    out: Tensor,
    dx: Tensor,
    /// Where each output's maximum was, within its plane.
    argmax: Vec<u32>,
    /// The last forward's input shape and geometry; `None` before a
    /// successful forward.
    cache: Option<([usize; 4], Window2d)>,
}

impl Pooling {
    /// Max pooling with a `pool_h`×`pool_w` window, `stride` ≥ 1 and
    /// padding `pad`, which may be at most half the window
    /// (`2·pad ≤ pool_h` and `2·pad ≤ pool_w`, PyTorch's rule: every window
    /// then covers at least one input pixel).
    ///
    /// ```
    /// use densegrad::Pooling;
    ///
    /// let pool = Pooling::new(2, 2, 2, 0)?;
    /// assert_eq!(pool.window(), (2, 2));
    /// assert_eq!(Pooling::new(0, 2, 2, 0).unwrap_err().to_string(),
    ///     "pooling new: window 0×2 is empty; both sizes must be at least 1");
    /// assert_eq!(Pooling::new(2, 2, 2, 2).unwrap_err().to_string(),
    ///     "pooling new: pad 2 is more than half the window 2×2");
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(pool_h: usize, pool_w: usize, stride: usize, pad: usize) -> Result<Pooling, Error> {
        const OP: &str = "pooling new";
        if pool_h == 0 || pool_w == 0 {
            return Err(Error::shape(
                OP,
                format!("window {pool_h}×{pool_w} is empty; both sizes must be at least 1"),
            ));
        }
        if stride == 0 {
            return Err(Error::argument(OP, "stride must be at least 1"));
        }
        if pad > pool_h / 2 || pad > pool_w / 2 {
            return Err(Error::argument(
                OP,
                format!("pad {pad} is more than half the window {pool_h}×{pool_w}"),
            ));
        }
        Ok(Pooling {
            pool_h,
            pool_w,
            stride,
            pad,
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            argmax: Vec::new(),
            cache: None,
        })
    }

    /// The window size (pool_h, pool_w).
    ///
    /// ```
    /// assert_eq!(densegrad::Pooling::new(3, 2, 1, 1)?.window(), (3, 2));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn window(&self) -> (usize, usize) {
        (self.pool_h, self.pool_w)
    }

    /// The stride.
    ///
    /// ```
    /// assert_eq!(densegrad::Pooling::new(3, 3, 2, 1)?.stride(), 2);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The padding on each side.
    ///
    /// ```
    /// assert_eq!(densegrad::Pooling::new(3, 3, 2, 1)?.pad(), 1);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn pad(&self) -> usize {
        self.pad
    }
}

impl Layer for Pooling {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        const OP: &str = "pooling forward";
        self.cache = None;
        let &[n, c, h, w] = x.shape() else {
            return Err(Error::shape(
                OP,
                format!(
                    "x is {:?} but must be 4-D (batch, channels, height, width)",
                    x.shape()
                ),
            ));
        };
        require_nonempty(OP, x)?;
        let g = Window2d::new(OP, c, h, w, self.pool_h, self.pool_w, self.stride, self.pad)?;
        if h.checked_mul(w).is_none_or(|hw| hw > NO_INPUT as usize) {
            return Err(Error::shape(
                OP,
                format!(
                    "x is {:?}: a {h}×{w} plane has more positions than pooling indexes (2^32 − 1)",
                    x.shape()
                ),
            ));
        }
        let out_shape = [n, c, g.out_h(), g.out_w()];
        self.out.try_resize_buffer(OP, &out_shape)?;
        let len = self.out.numel();
        if len > self.argmax.len() {
            self.argmax
                .try_reserve_exact(len - self.argmax.len())
                .map_err(|_| {
                    Error::shape(
                        OP,
                        format!("output {out_shape:?} needs more memory than can be allocated"),
                    )
                })?;
        }
        self.argmax.resize(len, 0);
        max_pool_forward(x.data(), &g, self.out.data_mut(), &mut self.argmax);
        self.cache = Some(([n, c, h, w], g));
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        const OP: &str = "pooling backward";
        let (x_shape, g) = self.cache.ok_or_else(|| not_ready(OP))?;
        require_same_shape(OP, dout, self.out.shape())?;
        self.dx.try_resize_buffer(OP, &x_shape)?;
        max_pool_backward(dout.data(), &self.argmax, &g, self.dx.data_mut());
        Ok(&self.dx)
    }
}
