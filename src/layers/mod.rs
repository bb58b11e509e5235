//! Layers: each owns its cache and parameters and speaks [`Tensor`].
//!
//! A layer's `forward` remembers what its `backward` needs (the output for
//! Sigmoid and Tanh, two bits per element for ReLU, the input for Affine,
//! the probabilities and labels for the loss), in buffers it keeps and reuses from one call to the next.
//! Gradients are *overwritten* by each backward pass, not accumulated.

mod affine;
mod batchnorm;
mod conv;
#[cfg(feature = "rand")]
mod dropout;
mod pointwise;
mod pool;
mod reshape;
mod softmax_loss;

pub use affine::Affine;
pub use batchnorm::BatchNorm;
pub use conv::Convolution;
#[cfg(feature = "rand")]
#[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
pub use dropout::Dropout;
pub use pointwise::{LeakyRelu, Pointwise, Relu, Sigmoid, Tanh};
pub use pool::Pooling;
pub use reshape::Reshape;
pub use softmax_loss::{cross_entropy, Labels, SoftmaxWithLoss};

use crate::{Error, Param, StateMut, Tensor};

/// Types in [`Layer`]'s signature that no code outside the crate can name
/// or implement, so that no other layer can take part in what they control.
pub mod sealed {
    use crate::{Error, Tensor};

    mod private {
        pub trait Sealed {}
        impl Sealed for crate::Affine {}
        impl<Op: crate::kernels::activation::PointwiseOp> Sealed for crate::Pointwise<Op> {}
    }

    /// A layer whose every output row depends on its input row alone
    /// (Affine and the pointwise activations), which `Sequential` runs on
    /// row ranges of a batch side by side (`batch_chunks`), on buffers it
    /// owns: `x` and `y` are the rows of the layer's input and output,
    /// `signs` a buffer of the caller's for what the backward reads besides
    /// them. Each call computes exactly what the layer's own `forward_ref`
    /// and `backward_ref` compute for those rows, with the same kernels, so
    /// any cut of the batch gives the same bits.
    pub trait RowWise: Sync + private::Sealed {
        /// The width of the output rows for input rows of `width`, or `None`
        /// when the layer cannot take such rows.
        fn out_width(&self, width: usize) -> Option<usize>;
        /// About how many flops one input row of `width` costs forward (as
        /// many again backward): what decides whether a step is small.
        fn flops_per_row(&self, width: usize) -> usize;
        /// Whether the layer has parameters, whose gradients a chunked step
        /// sums over the whole batch (and so reads the other half's rows).
        fn has_params(&self) -> bool;
        /// `y` = the layer's output for the rows `x`.
        fn forward_rows(&self, x: &[f32], y: &mut [f32], signs: &mut Vec<u8>);
        /// `dx` = the gradient with respect to the rows `x`, from `dy`, the
        /// gradient with respect to their output `y`.
        fn backward_rows(&self, x: &[f32], y: &[f32], signs: &[u8], dy: &[f32], dx: &mut [f32]);
        /// The parameter gradients of the whole batch from its input `x`
        /// and output gradient `dy` (every row, in one piece: these are
        /// the sums over the batch), split only by output, so with the
        /// bits of the layer's own backward.
        fn param_grads(&mut self, x: &[f32], dy: &[f32]);
        /// Forgets the layer's own forward cache, which `Sequential`'s run
        /// on its buffers did not fill: a `backward` through the layer
        /// itself is then refused.
        fn forget(&mut self);

        /// Whether `forward_ref` copies its input for the backward (Affine,
        /// for dW), which a caller that keeps the input alive can lend
        /// instead: [`forward_lent`](RowWise::forward_lent).
        fn keeps_input(&self) -> bool {
            false
        }
        /// `forward_ref` without the copy of `x`, for a layer that
        /// [`keeps_input`](RowWise::keeps_input): the backward must be
        /// [`backward_lent`](RowWise::backward_lent), given the same `x`
        /// unchanged (`Sequential` lends a layer the previous layer's
        /// output, which stays in that layer's buffer until the backward).
        /// The output, and the backward's gradients, have the bits of
        /// `forward_ref`'s and `backward_ref`'s.
        fn forward_lent(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
            let _ = x;
            Err(Error::state("forward_lent", "the layer keeps no input"))
        }
        /// The backward after [`forward_lent`](RowWise::forward_lent), from
        /// the `x` lent to it: `backward_ref` (dX returned) with `want_dx`,
        /// else `backward_params_only`. An `Err` when the last forward was
        /// not lent its input, or `x` does not have that input's shape.
        fn backward_lent(
            &mut self,
            x: &Tensor,
            dout: &Tensor,
            want_dx: bool,
        ) -> Result<Option<&Tensor>, Error> {
            let _ = (x, dout, want_dx);
            Err(Error::state("backward_lent", "the layer keeps no input"))
        }
        /// Whether the last forward was lent its input, which a backward
        /// needs and the layer does not hold.
        fn input_lent(&self) -> bool {
            false
        }
        /// Copies `x`, the input lent to the last forward, into the layer,
        /// as `forward_ref` would have kept it, so that its own
        /// `backward_ref` works: for a caller that hands the layer out
        /// before the backward.
        fn keep_lent(&mut self, x: &Tensor) {
            let _ = x;
        }
        /// The output of the last `forward_ref` or `forward_lent`: the
        /// buffer those return.
        fn output(&self) -> &Tensor;
    }
}

/// A differentiable layer with a forward and a backward pass.
///
/// Two ways to call it:
/// - [`forward`](Layer::forward) / [`backward`](Layer::backward) return fresh
///   tensors. `backward` takes the upstream gradient by value so that ReLU
///   and Sigmoid compute the input gradient in place in its buffer, as the
///   notebook's `dout[self.mask] = 0` does.
/// - [`forward_ref`](Layer::forward_ref) / [`backward_ref`](Layer::backward_ref)
///   write into buffers the layer owns and reuses, and return references to
///   them: once the shapes have been seen, a training step through them
///   allocates nothing (llm.c's "activations laid out once").
///
/// ```
/// use densegrad::{Layer, Relu, Tensor};
///
/// let mut relu = Relu::new();
/// let y = relu.forward(&Tensor::from_slice(&[-1.0, 2.0]))?;
/// assert_eq!(y.data(), &[0.0, 2.0]);
/// let dx = relu.backward(Tensor::from_slice(&[5.0, 5.0]))?;
/// assert_eq!(dx.data(), &[0.0, 5.0]);
///
/// // The same through the layer's own buffers:
/// assert_eq!(relu.forward_ref(&Tensor::from_slice(&[3.0, -4.0]))?.data(), &[3.0, 0.0]);
/// assert_eq!(relu.backward_ref(&Tensor::from_slice(&[1.0, 1.0]))?.data(), &[1.0, 0.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
///
/// Every layer is `Send + Sync` (a network moves between threads and is
/// shared read-only across them) and `Clone` through [`LayerClone`], which
/// any `Clone` layer gets for free: `#[derive(Clone)]` on a custom layer is
/// all it takes for a `Sequential` holding it to be `Clone`.
pub trait Layer: Send + Sync + LayerClone {
    /// The layer's output for input `x`, in a buffer the layer owns and
    /// reuses on the next call (no allocation once it has the right size).
    /// Remembers what `backward` needs.
    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error>;

    /// The gradient of the loss with respect to the last forward's input,
    /// given `dout`, its gradient with respect to that forward's output (same
    /// shape as the output), in a buffer the layer owns and reuses. Also
    /// stores the gradients of the layer's parameters, replacing earlier
    /// ones. `Err` before any forward.
    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error>;

    /// [`forward_ref`](Layer::forward_ref) when no backward will follow
    /// (prediction, evaluation): the same output, but the layer keeps
    /// nothing for a backward pass, so layers that would copy their input
    /// (Affine, Convolution) or record a mask (ReLU) skip it. A `backward`
    /// after it is an `Error::State`. The default is `forward_ref` itself.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    /// let mut fc = Affine::new(Tensor::new(&[1, 1], vec![2.0])?, Tensor::zeros(&[1]))?;
    /// assert_eq!(fc.forward_inference(&Tensor::from_slice(&[3.0]))?.data(), &[6.0]);
    /// assert!(fc.backward(Tensor::from_slice(&[1.0])).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn forward_inference(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        self.forward_ref(x)
    }

    /// Like [`backward_ref`](Layer::backward_ref), but only the parameter
    /// gradients are needed (the first layer of a network, whose input is
    /// data): layers that can skip computing dX do (Affine saves a third of
    /// its backward flops).
    fn backward_params_only(&mut self, dout: &Tensor) -> Result<(), Error> {
        self.backward_ref(dout).map(|_| ())
    }

    /// [`forward_ref`](Layer::forward_ref), returning an owned tensor.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor, Error> {
        self.forward_ref(x).cloned()
    }

    /// [`backward_ref`](Layer::backward_ref), taking and returning owned
    /// tensors; layers that can reuse `dout`'s buffer for the result do.
    fn backward(&mut self, dout: Tensor) -> Result<Tensor, Error> {
        self.backward_ref(&dout).cloned()
    }

    /// Calls `f` with a [`Param`] view (name, shape, mutable values, the
    /// gradient of the last backward) for every parameter of the layer, in a
    /// fixed order; does nothing for layers without parameters. This is how
    /// an optimizer reaches every parameter without allocating. The view
    /// fixes the shape: values may change, the shape the layer was built
    /// with may not.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    ///
    /// let mut fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2]))?;
    /// fc.forward(&Tensor::from_slice(&[1.0, 2.0, 3.0]))?;
    /// fc.backward(Tensor::from_slice(&[1.0, 1.0]))?;
    /// // one SGD step, lr 0.1
    /// fc.visit_params(&mut |mut p| {
    ///     let (values, grad) = p.values_and_grad();
    ///     for (v, g) in values.iter_mut().zip(grad) {
    ///         *v -= 0.1 * g;
    ///     }
    /// });
    /// assert_eq!(fc.bias().data(), &[-0.1, -0.1]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        let _ = f;
    }

    /// Calls `f` with the name and the gradient (mutable, flat) of every
    /// parameter, in [`visit_params`](Layer::visit_params) order: to clip
    /// or rescale gradients before an optimizer step. Does nothing for
    /// layers without parameters; a custom layer with parameters should
    /// implement it.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    ///
    /// let mut fc = Affine::new(Tensor::zeros(&[1, 2]), Tensor::zeros(&[2]))?;
    /// fc.forward(&Tensor::from_slice(&[3.0]))?;
    /// fc.backward(Tensor::from_slice(&[1.0, -2.0]))?;
    /// fc.visit_grads_mut(&mut |_, g| g.iter_mut().for_each(|g| *g = g.clamp(-1.0, 1.0)));
    /// let mut grads = Vec::new();
    /// fc.visit_params(&mut |p| grads.push(p.grad().data().to_vec()));
    /// assert_eq!(grads, [vec![1.0, -1.0], vec![1.0, -1.0]]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn visit_grads_mut(&mut self, f: &mut dyn FnMut(&str, &mut [f32])) {
        let _ = f;
    }

    /// The layer as [`sealed::RowWise`], which `Sequential` runs on row
    /// ranges of a small training step's batch side by side (see
    /// [`Sequential::loss`](crate::Sequential::loss)): the crate's Affine
    /// layers and pointwise activations. `None`, and unimplementable, for
    /// any other layer.
    #[doc(hidden)]
    fn row_wise(&self) -> Option<&dyn sealed::RowWise> {
        None
    }

    /// [`row_wise`](Layer::row_wise), mutable.
    #[doc(hidden)]
    fn row_wise_mut(&mut self) -> Option<&mut dyn sealed::RowWise> {
        None
    }

    /// Calls `f` with a [`StateMut`] view (name, shape, mutable values) for
    /// every tensor that defines the layer's state — its parameters and
    /// buffers such as BatchNorm's running statistics — in a fixed order.
    /// Checkpoints load these; as with [`visit_params`](Layer::visit_params),
    /// the shapes cannot change through the views.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    ///
    /// let mut fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2]))?;
    /// let mut names = Vec::new();
    /// fc.visit_state(&mut |s| names.push((s.name().to_string(), s.shape().to_vec())));
    /// assert_eq!(names, [("weight".to_string(), vec![3, 2]), ("bias".to_string(), vec![2])]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn visit_state(&mut self, f: &mut dyn FnMut(StateMut<'_>)) {
        let _ = f;
    }

    /// The layer's type name without its module path (`"Affine"`), as
    /// `Sequential`'s `Debug` lists it.
    ///
    /// ```
    /// use densegrad::{Layer, Relu};
    /// assert_eq!(Relu::new().name(), "Relu");
    /// ```
    fn name(&self) -> &'static str {
        let full = std::any::type_name::<Self>();
        // "densegrad::layers::affine::Affine" → "Affine" (generic
        // parameters, if any, kept).
        let base = full.split('<').next().unwrap_or(full);
        let start = base.rfind("::").map_or(0, |i| i + 2);
        &full[start..]
    }

    /// [`visit_state`](Layer::visit_state), read-only: what checkpoints
    /// save. The default visits a clone of the layer, so it is right for any
    /// layer; every built-in layer overrides it to visit its own tensors
    /// without the copy, and a custom layer with state should too.
    ///
    /// ```
    /// use densegrad::{Affine, Layer, Tensor};
    ///
    /// let fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2]))?;
    /// let mut shapes = Vec::new();
    /// fc.visit_state_ref(&mut |name, t| shapes.push((name.to_string(), t.shape().to_vec())));
    /// assert_eq!(shapes, [("weight".to_string(), vec![3, 2]), ("bias".to_string(), vec![2])]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn visit_state_ref(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        let mut copy = self.clone_layer();
        copy.visit_state(&mut |s| f(s.name(), s.value()));
    }

    /// Switches between training (the default) and evaluation behaviour.
    /// Only Dropout and BatchNorm behave differently; for other layers this
    /// does nothing.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }
}

/// Cloning a boxed [`Layer`]; implemented for every `Layer + Clone`, so a
/// layer never implements it by hand.
///
/// ```
/// use densegrad::{Layer, Relu};
/// let a: Box<dyn Layer> = Box::new(Relu::new());
/// let b = a.clone();
/// assert_eq!(b.name(), "Relu");
/// ```
pub trait LayerClone {
    /// A boxed copy of this layer: parameters, state and buffers.
    fn clone_layer(&self) -> Box<dyn Layer>;
}

impl<T: Layer + Clone + 'static> LayerClone for T {
    fn clone_layer(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Layer> {
    fn clone(&self) -> Self {
        self.clone_layer()
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

/// Copies `src` into `dst`, reusing `dst`'s allocation when it is big enough;
/// split among threads from [`PAR_MIN_ELEMS`](crate::kernels::parallel::PAR_MIN_ELEMS)
/// elements, as the elementwise kernels are.
pub(crate) fn store(dst: &mut Vec<f32>, src: &[f32]) {
    use crate::kernels::parallel::{worth_splitting, zip_chunks};
    if !worth_splitting(src.len()) {
        dst.clear();
        dst.extend_from_slice(src);
        return;
    }
    // Same length (every step after the first): nothing written twice.
    dst.resize(src.len(), 0.0);
    zip_chunks(src, dst, |s, d| d.copy_from_slice(s));
}
