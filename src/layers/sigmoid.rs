use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::{sigmoid_backward, sigmoid_forward};
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
#[derive(Debug, Clone, Default)]
pub struct Sigmoid {
    out: Vec<f32>,
    shape: Option<Vec<usize>>,
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
    fn forward(&mut self, x: &Tensor) -> Result<Tensor, Error> {
        require_nonempty("sigmoid forward", x)?;
        let mut y = vec![0.0; x.numel()];
        sigmoid_forward(x.data(), &mut y);
        super::store(&mut self.out, &y);
        self.shape = Some(x.shape().to_vec());
        Ok(Tensor::from_parts(x.shape().to_vec(), y))
    }

    fn backward(&mut self, mut dout: Tensor) -> Result<Tensor, Error> {
        let shape = self
            .shape
            .as_deref()
            .ok_or_else(|| not_ready("sigmoid backward"))?;
        require_same_shape("sigmoid backward", &dout, shape)?;
        sigmoid_backward(&self.out, dout.data_mut());
        Ok(dout)
    }
}
