use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::{relu_backward, relu_forward};
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
#[derive(Debug, Clone, Default)]
pub struct Relu {
    /// The last forward output; its sign is the mask.
    out: Vec<f32>,
    shape: Option<Vec<usize>>,
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
    fn forward(&mut self, x: &Tensor) -> Result<Tensor, Error> {
        require_nonempty("relu forward", x)?;
        let mut y = vec![0.0; x.numel()];
        relu_forward(x.data(), &mut y);
        super::store(&mut self.out, &y);
        self.shape = Some(x.shape().to_vec());
        Ok(Tensor::from_parts(x.shape().to_vec(), y))
    }

    fn backward(&mut self, mut dout: Tensor) -> Result<Tensor, Error> {
        let shape = self
            .shape
            .as_deref()
            .ok_or_else(|| not_ready("relu backward"))?;
        require_same_shape("relu backward", &dout, shape)?;
        relu_backward(&self.out, dout.data_mut());
        Ok(dout)
    }
}
