//! Tanh and LeakyReLU: elementwise layers from the same book.

use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::{
    leaky_relu_backward, leaky_relu_forward, tanh_backward, tanh_forward,
};
use crate::{Error, Tensor};

/// Hyperbolic tangent, `y = tanh(x)` elementwise; backward `dout · (1 − y²)`.
/// NaN propagates.
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
#[derive(Debug, Clone)]
pub struct Tanh {
    out: Tensor,
    dx: Tensor,
    ready: bool,
}

impl Default for Tanh {
    fn default() -> Self {
        Tanh {
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
        }
    }
}

impl Tanh {
    /// A Tanh layer with no cached state.
    ///
    /// ```
    /// let t = densegrad::Tanh::new();
    /// # let _ = t;
    /// ```
    pub fn new() -> Tanh {
        Tanh::default()
    }
}

impl Layer for Tanh {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        require_nonempty("tanh forward", x)?;
        self.out.resize_buffer(x.shape());
        tanh_forward(x.data(), self.out.data_mut());
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        if !self.ready {
            return Err(not_ready("tanh backward"));
        }
        require_same_shape("tanh backward", dout, self.out.shape())?;
        self.dx.resize_buffer(dout.shape());
        tanh_backward(self.out.data(), dout.data(), self.dx.data_mut());
        Ok(&self.dx)
    }
}

/// Leaky ReLU, `y = x > 0 ? x : alpha·x` elementwise, with `alpha ≥ 0`;
/// gradient 1 where `x > 0`, `alpha` where `x ≤ 0`. NaN propagates.
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
#[derive(Debug, Clone)]
pub struct LeakyRelu {
    alpha: f32,
    out: Tensor,
    dx: Tensor,
    ready: bool,
}

impl LeakyRelu {
    /// A LeakyReLU with negative slope `alpha`, which must be finite and
    /// ≥ 0 (the backward pass reads the input's sign from the output).
    ///
    /// ```
    /// assert_eq!(densegrad::LeakyRelu::new(0.01)?.alpha(), 0.01);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(alpha: f32) -> Result<LeakyRelu, Error> {
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(Error::shape(
                "leaky relu new",
                format!("alpha is {alpha} but must be finite and >= 0"),
            ));
        }
        Ok(LeakyRelu {
            alpha,
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
        })
    }

    /// The negative slope.
    ///
    /// ```
    /// assert_eq!(densegrad::LeakyRelu::new(0.2)?.alpha(), 0.2);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn alpha(&self) -> f32 {
        self.alpha
    }
}

impl Layer for LeakyRelu {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        require_nonempty("leaky relu forward", x)?;
        self.out.resize_buffer(x.shape());
        leaky_relu_forward(self.alpha, x.data(), self.out.data_mut());
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        if !self.ready {
            return Err(not_ready("leaky relu backward"));
        }
        require_same_shape("leaky relu backward", dout, self.out.shape())?;
        self.dx.resize_buffer(dout.shape());
        leaky_relu_backward(self.alpha, self.out.data(), dout.data(), self.dx.data_mut());
        Ok(&self.dx)
    }
}
