//! Views of a layer's tensors whose shape cannot change.
//!
//! A layer's parameters and state are visited through [`Param`] (what an
//! optimizer sees: name, shape, mutable values, the gradient) and
//! [`StateMut`] (what a checkpoint loads: name, shape, mutable values).
//! Neither gives out the `&mut Tensor` itself, so no code outside a layer can
//! give its weight another shape between a forward and a backward: the shape
//! a layer was built with is the shape it keeps.

use crate::{Error, Tensor};

/// One parameter of a layer, as [`Layer::visit_params`](crate::Layer::visit_params)
/// hands it out: its name within the layer, its shape, its values (mutable)
/// and the gradient of the last backward (read-only).
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
///
/// The tensor itself is out of reach, so its shape cannot change:
///
/// ```compile_fail
/// use densegrad::{Affine, Layer, Tensor};
/// let mut fc = Affine::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2])).unwrap();
/// fc.visit_params(&mut |p| *p.value() = Tensor::zeros(&[5])); // no `&mut Tensor` here
/// ```
#[derive(Debug)]
pub struct Param<'a> {
    name: &'a str,
    value: &'a mut Tensor,
    grad: &'a Tensor,
}

impl<'a> Param<'a> {
    /// The view a layer hands out for parameter `value` with gradient
    /// `grad` (a custom layer's `visit_params` builds these).
    ///
    /// # Panics
    /// If `grad` and `value` differ in shape: a layer keeps a gradient of its
    /// parameter's shape, so this is a bug in the layer, not bad input.
    ///
    /// ```
    /// use densegrad::{Param, Tensor};
    /// let (mut w, dw) = (Tensor::zeros(&[2, 2]), Tensor::zeros(&[2, 2]));
    /// let p = Param::new("weight", &mut w, &dw);
    /// assert_eq!((p.name(), p.shape()), ("weight", &[2usize, 2][..]));
    /// ```
    pub fn new(name: &'a str, value: &'a mut Tensor, grad: &'a Tensor) -> Param<'a> {
        assert_eq!(
            value.shape(),
            grad.shape(),
            "Param::new({name}): the gradient's shape differs from the parameter's"
        );
        Param { name, value, grad }
    }

    /// The parameter's name within its layer (`"weight"`, `"bias"`, …).
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::zeros(&[1]), Tensor::zeros(&[1]));
    /// assert_eq!(Param::new("gamma", &mut w, &dw).name(), "gamma");
    /// ```
    pub fn name(&self) -> &str {
        self.name
    }

    /// The parameter's shape, fixed for the layer's lifetime.
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::zeros(&[4, 3]), Tensor::zeros(&[4, 3]));
    /// assert_eq!(Param::new("weight", &mut w, &dw).shape(), &[4, 3]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The number of values.
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::zeros(&[4, 3]), Tensor::zeros(&[4, 3]));
    /// assert_eq!(Param::new("weight", &mut w, &dw).numel(), 12);
    /// ```
    pub fn numel(&self) -> usize {
        self.value.numel()
    }

    /// The parameter as a read-only tensor.
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::from_slice(&[2.0]), Tensor::zeros(&[1]));
    /// assert_eq!(Param::new("w", &mut w, &dw).value().data(), &[2.0]);
    /// ```
    pub fn value(&self) -> &Tensor {
        self.value
    }

    /// The values, mutable; the shape stays what it is.
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::zeros(&[2]), Tensor::zeros(&[2]));
    /// Param::new("w", &mut w, &dw).values_mut().fill(1.0);
    /// assert_eq!(w.data(), &[1.0, 1.0]);
    /// ```
    pub fn values_mut(&mut self) -> &mut [f32] {
        self.value.data_mut()
    }

    /// The gradient of the last backward, in the parameter's shape (zeros
    /// before the first backward).
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::zeros(&[1]), Tensor::from_slice(&[0.5]));
    /// assert_eq!(Param::new("w", &mut w, &dw).grad().data(), &[0.5]);
    /// ```
    pub fn grad(&self) -> &Tensor {
        self.grad
    }

    /// The mutable values and the gradient at once, as an update needs them.
    ///
    /// ```
    /// # use densegrad::{Param, Tensor};
    /// # let (mut w, dw) = (Tensor::from_slice(&[1.0]), Tensor::from_slice(&[0.5]));
    /// let mut p = Param::new("w", &mut w, &dw);
    /// let (v, g) = p.values_and_grad();
    /// v[0] -= g[0];
    /// assert_eq!(w.data(), &[0.5]);
    /// ```
    pub fn values_and_grad(&mut self) -> (&mut [f32], &[f32]) {
        (self.value.data_mut(), self.grad.data())
    }
}

/// One state tensor of a layer (a parameter, or a buffer such as
/// BatchNorm's running mean), as
/// [`Layer::visit_state`](crate::Layer::visit_state) hands it out: its name,
/// its shape and its values, which may change while the shape may not.
///
/// ```
/// use densegrad::{Affine, Layer, Tensor};
///
/// let mut fc = Affine::new(Tensor::zeros(&[2, 1]), Tensor::zeros(&[1]))?;
/// fc.visit_state(&mut |mut s| {
///     if s.name() == "bias" {
///         s.values_mut()[0] = 3.0;
///     }
/// });
/// assert_eq!(fc.bias().data(), &[3.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug)]
pub struct StateMut<'a> {
    name: &'a str,
    value: &'a mut Tensor,
}

impl<'a> StateMut<'a> {
    /// The view a layer hands out for its state tensor `value`, named `name`.
    ///
    /// ```
    /// use densegrad::{StateMut, Tensor};
    /// let mut mean = Tensor::zeros(&[3]);
    /// assert_eq!(StateMut::new("running_mean", &mut mean).shape(), &[3]);
    /// ```
    pub fn new(name: &'a str, value: &'a mut Tensor) -> StateMut<'a> {
        StateMut { name, value }
    }

    /// The name (`"weight"` within a layer, `"0.weight"` from a `Sequential`).
    ///
    /// ```
    /// # use densegrad::{StateMut, Tensor};
    /// # let mut t = Tensor::zeros(&[1]);
    /// assert_eq!(StateMut::new("bias", &mut t).name(), "bias");
    /// ```
    pub fn name(&self) -> &str {
        self.name
    }

    /// The shape, fixed for the layer's lifetime.
    ///
    /// ```
    /// # use densegrad::{StateMut, Tensor};
    /// # let mut t = Tensor::zeros(&[2, 5]);
    /// assert_eq!(StateMut::new("w", &mut t).shape(), &[2, 5]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The tensor, read-only.
    ///
    /// ```
    /// # use densegrad::{StateMut, Tensor};
    /// # let mut t = Tensor::from_slice(&[4.0]);
    /// assert_eq!(StateMut::new("w", &mut t).value().data(), &[4.0]);
    /// ```
    pub fn value(&self) -> &Tensor {
        self.value
    }

    /// The values, mutable; the shape stays what it is.
    ///
    /// ```
    /// # use densegrad::{StateMut, Tensor};
    /// # let mut t = Tensor::zeros(&[2]);
    /// StateMut::new("w", &mut t).values_mut()[1] = 7.0;
    /// assert_eq!(t.data(), &[0.0, 7.0]);
    /// ```
    pub fn values_mut(&mut self) -> &mut [f32] {
        self.value.data_mut()
    }

    /// Copies `src`'s values in. `Err` naming both shapes, with nothing
    /// changed, unless `src` has exactly this tensor's shape.
    ///
    /// ```
    /// # use densegrad::{StateMut, Tensor};
    /// let mut t = Tensor::zeros(&[2]);
    /// let mut s = StateMut::new("bias", &mut t);
    /// s.copy_from(&Tensor::from_slice(&[1.0, 2.0]))?;
    /// let err = s.copy_from(&Tensor::zeros(&[3])).unwrap_err();
    /// assert_eq!(err.to_string(), "state copy: bias is [2] but the new value is [3]");
    /// assert_eq!(t.data(), &[1.0, 2.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn copy_from(&mut self, src: &Tensor) -> Result<(), Error> {
        if src.shape() != self.value.shape() {
            return Err(Error::shape(
                "state copy",
                format!(
                    "{} is {:?} but the new value is {:?}",
                    self.name,
                    self.value.shape(),
                    src.shape()
                ),
            ));
        }
        self.value.data_mut().copy_from_slice(src.data());
        Ok(())
    }

    /// The same view under another name (how `Sequential` prefixes a
    /// layer's names with its index).
    pub(crate) fn renamed<'b>(self, name: &'b str) -> StateMut<'b>
    where
        'a: 'b,
    {
        StateMut {
            name,
            value: self.value,
        }
    }
}
