use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::{relu_backward_into_with, relu_backward_with, relu_forward_with};
use crate::kernels::simd::Isa;
use crate::{Error, Tensor};

/// Rectified linear unit, `y = max(x, 0)` elementwise, for input of any shape.
///
/// The gradient is 1 where `x > 0` and 0 where `x ≤ 0` (0 at the kink, as in
/// PyTorch). NaN propagates: a NaN input gives a NaN output and a NaN input
/// gradient (the notebook's mask `x <= 0` is false for NaN, so it is kept).
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
#[derive(Debug, Clone)]
pub struct Relu {
    /// The last forward output; its sign is the mask.
    out: Tensor,
    dx: Tensor,
    ready: bool,
    isa: Isa,
}

impl Default for Relu {
    fn default() -> Self {
        Relu {
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
            isa: Isa::best(),
        }
    }
}

impl Relu {
    /// A ReLU layer with no cached state.
    ///
    /// ```
    /// let relu = densegrad::Relu::new();
    /// # let _ = relu;
    /// ```
    pub fn new() -> Relu {
        Relu::default()
    }
}

impl Layer for Relu {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        require_nonempty("relu forward", x)?;
        self.out.resize_buffer(x.shape());
        relu_forward_with(self.isa, x.data(), self.out.data_mut());
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        if !self.ready {
            return Err(not_ready("relu backward"));
        }
        require_same_shape("relu backward", dout, self.out.shape())?;
        self.dx.resize_buffer(dout.shape());
        relu_backward_into_with(self.isa, self.out.data(), dout.data(), self.dx.data_mut());
        Ok(&self.dx)
    }

    fn backward(&mut self, mut dout: Tensor) -> Result<Tensor, Error> {
        if !self.ready {
            return Err(not_ready("relu backward"));
        }
        require_same_shape("relu backward", &dout, self.out.shape())?;
        relu_backward_with(self.isa, self.out.data(), dout.data_mut());
        Ok(dout)
    }
}
