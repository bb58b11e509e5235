//! Layers: each owns its cache and parameters and speaks [`Tensor`].
//!
//! A layer's `forward` remembers what its `backward` needs (the output for
//! ReLU and Sigmoid, the input for Affine, the probabilities and labels for
//! the loss), in buffers it keeps and reuses from one call to the next.
//! Gradients are *overwritten* by each backward pass, not accumulated.

mod affine;
mod relu;
mod sigmoid;
mod softmax_loss;

pub use affine::Affine;
pub use relu::Relu;
pub use sigmoid::Sigmoid;
pub use softmax_loss::{cross_entropy, Labels, SoftmaxWithLoss};

use crate::{Error, Tensor};

/// A differentiable layer with a forward and a backward pass.
///
/// `backward` takes the upstream gradient by value so that layers which can
/// (ReLU, Sigmoid) compute the input gradient in place in its buffer, as the
/// notebook's `dout[self.mask] = 0` does, without allocating.
///
/// ```
/// use densegrad::{Layer, Relu, Tensor};
///
/// let mut relu = Relu::new();
/// let y = relu.forward(&Tensor::from_slice(&[-1.0, 2.0]))?;
/// assert_eq!(y.data(), &[0.0, 2.0]);
/// let dx = relu.backward(Tensor::from_slice(&[5.0, 5.0]))?;
/// assert_eq!(dx.data(), &[0.0, 5.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub trait Layer {
    /// The layer's output for input `x`, remembering what `backward` needs.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor, Error>;

    /// The gradient of the loss with respect to the last `forward`'s input,
    /// given `dout`, its gradient with respect to that forward's output
    /// (same shape as the output). Also stores the gradients of the layer's
    /// parameters, replacing earlier ones. `Err` before any `forward`.
    fn backward(&mut self, dout: Tensor) -> Result<Tensor, Error>;

    /// Calls `f(parameter, gradient)` for every parameter of the layer, in a
    /// fixed order; does nothing for layers without parameters. This is how an
    /// optimizer reaches every parameter without allocating.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    ///
    /// let mut fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2]))?;
    /// fc.forward(&Tensor::from_slice(&[1.0, 2.0, 3.0]))?;
    /// fc.backward(Tensor::from_slice(&[1.0, 1.0]))?;
    /// // one SGD step, lr 0.1
    /// fc.visit_params(&mut |p, g| {
    ///     for (p, g) in p.data_mut().iter_mut().zip(g.data()) {
    ///         *p -= 0.1 * g;
    ///     }
    /// });
    /// assert_eq!(fc.bias().data(), &[-0.1, -0.1]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Tensor, &Tensor)) {
        let _ = f;
    }
}

/// `Err` for a tensor with no elements: every layer needs at least one value.
pub(crate) fn require_nonempty(op: &'static str, x: &Tensor) -> Result<(), Error> {
    if x.numel() == 0 {
        return Err(Error::shape(
            op,
            format!(
                "input {:?} is empty; a batch needs at least one element",
                x.shape()
            ),
        ));
    }
    Ok(())
}

/// `Err` unless `dout` has the shape of the last forward's output.
pub(crate) fn require_same_shape(
    op: &'static str,
    dout: &Tensor,
    out_shape: &[usize],
) -> Result<(), Error> {
    if dout.shape() != out_shape {
        return Err(Error::shape(
            op,
            format!(
                "dout is {:?} but the forward output was {out_shape:?}",
                dout.shape()
            ),
        ));
    }
    Ok(())
}

/// `Err` for `backward` before `forward`.
pub(crate) fn not_ready(op: &'static str) -> Error {
    Error::state(op, "backward called before forward")
}

/// Copies `src` into `dst`, reusing `dst`'s allocation when it is big enough.
pub(crate) fn store(dst: &mut Vec<f32>, src: &[f32]) {
    dst.clear();
    dst.extend_from_slice(src);
}
