use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::{
    sigmoid_backward_into_with, sigmoid_backward_with, sigmoid_forward_with,
};
use crate::kernels::simd::Isa;
use crate::{Error, Tensor};

/// Logistic sigmoid, `y = 1 / (1 + e^(-x))` elementwise, for input of any shape.
///
/// Stable for every f32: `e^t` is only evaluated for `t ≤ 0`, so
/// `σ(1e30) = 1`, `σ(-1e30) = 0`, and nothing overflows. NaN gives NaN.
/// Backward is `dout · y · (1 − y)` from the cached output.
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
#[derive(Debug, Clone)]
pub struct Sigmoid {
    /// The last forward output, from which the gradient is formed.
    out: Tensor,
    dx: Tensor,
    ready: bool,
    isa: Isa,
}

impl Default for Sigmoid {
    fn default() -> Self {
        Sigmoid {
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
            isa: Isa::best(),
        }
    }
}

impl Sigmoid {
    /// A Sigmoid layer with no cached state.
    ///
    /// ```
    /// let sig = densegrad::Sigmoid::new();
    /// # let _ = sig;
    /// ```
    pub fn new() -> Sigmoid {
        Sigmoid::default()
    }
}

impl Layer for Sigmoid {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        require_nonempty("sigmoid forward", x)?;
        self.out.resize_buffer(x.shape());
        sigmoid_forward_with(self.isa, x.data(), self.out.data_mut());
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        if !self.ready {
            return Err(not_ready("sigmoid backward"));
        }
        require_same_shape("sigmoid backward", dout, self.out.shape())?;
        self.dx.resize_buffer(dout.shape());
        sigmoid_backward_into_with(self.isa, self.out.data(), dout.data(), self.dx.data_mut());
        Ok(&self.dx)
    }

    fn backward(&mut self, mut dout: Tensor) -> Result<Tensor, Error> {
        if !self.ready {
            return Err(not_ready("sigmoid backward"));
        }
        require_same_shape("sigmoid backward", &dout, self.out.shape())?;
        sigmoid_backward_with(self.isa, self.out.data(), dout.data_mut());
        Ok(dout)
    }
}
