use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::tensor::checked_numel;
use crate::{Error, Tensor};

/// Gives every sample of a batch a new shape: (N, …) → (N, *sample*), the
/// values unchanged in row-major order (PyTorch's `nn.Unflatten(1, sample)`).
/// It puts MNIST's (N, 784) rows into the (N, 1, 28, 28) a
/// [`Convolution`](crate::Convolution) reads; backward gives the gradient
/// the input's shape back. A 1-D input is one sample.
///
/// ```
/// use densegrad::{Layer, Reshape, Tensor};
///
/// let mut r = Reshape::new(&[1, 2, 2])?;
/// let y = r.forward(&Tensor::new(&[3, 4], vec![0.0; 12])?)?;
/// assert_eq!(y.shape(), &[3, 1, 2, 2]);
/// let dx = r.backward(y)?;
/// assert_eq!(dx.shape(), &[3, 4]);
///
/// let err = r.forward(&Tensor::zeros(&[3, 5])).unwrap_err();
/// assert_eq!(err.to_string(),
///     "reshape forward: x is [3, 5] (5 values per sample) but a sample of [1, 2, 2] needs 4");
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reshape {
    sample: Vec<usize>,
    sample_len: usize,
    out_shape: Vec<usize>,
    in_shape: Vec<usize>,
    out: Tensor,
    dx: Tensor,
    ready: bool,
}

impl Reshape {
    /// A layer that reshapes each sample to `sample` (at least one
    /// dimension, every one at least 1).
    ///
    /// ```
    /// use densegrad::Reshape;
    /// assert_eq!(Reshape::new(&[1, 28, 28])?.sample_shape(), &[1, 28, 28]);
    /// assert!(Reshape::new(&[]).is_err());
    /// assert!(Reshape::new(&[4, 0]).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(sample: &[usize]) -> Result<Reshape, Error> {
        let sample_len = checked_numel(sample).unwrap_or(0);
        if sample.is_empty() || sample_len == 0 {
            return Err(Error::shape(
                "reshape new",
                format!(
                    "sample shape {sample:?} must have at least one dimension and every dimension at least 1, without overflow"
                ),
            ));
        }
        Ok(Reshape {
            sample: sample.to_vec(),
            sample_len,
            out_shape: Vec::new(),
            in_shape: Vec::new(),
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
        })
    }

    /// The shape each sample is given.
    ///
    /// ```
    /// assert_eq!(densegrad::Reshape::new(&[3, 4])?.sample_shape(), &[3, 4]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample
    }
}

impl Layer for Reshape {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        const OP: &str = "reshape forward";
        self.ready = false;
        let (n, per) = x.batch_dims().ok_or_else(|| {
            Error::shape(OP, "x is a 0-D scalar; it needs at least one dimension")
        })?;
        require_nonempty(OP, x)?;
        if per != self.sample_len {
            return Err(Error::shape(
                OP,
                format!(
                    "x is {:?} ({per} values per sample) but a sample of {:?} needs {}",
                    x.shape(),
                    self.sample,
                    self.sample_len
                ),
            ));
        }
        self.out_shape.clear();
        self.out_shape.push(n);
        self.out_shape.extend_from_slice(&self.sample);
        self.out.resize_buffer(&self.out_shape);
        self.out.data_mut().copy_from_slice(x.data());
        self.in_shape.clear();
        self.in_shape.extend_from_slice(x.shape());
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        const OP: &str = "reshape backward";
        if !self.ready {
            return Err(not_ready(OP));
        }
        require_same_shape(OP, dout, &self.out_shape)?;
        self.dx.resize_buffer(&self.in_shape);
        self.dx.data_mut().copy_from_slice(dout.data());
        Ok(&self.dx)
    }

    /// Nothing to compute: the layer has no parameters.
    fn backward_params_only(&mut self, dout: &Tensor) -> Result<(), Error> {
        if !self.ready {
            return Err(not_ready("reshape backward"));
        }
        require_same_shape("reshape backward", dout, &self.out_shape)
    }

    /// Takes `dout`'s buffer for the result: no copy.
    fn backward(&mut self, dout: Tensor) -> Result<Tensor, Error> {
        self.backward_params_only(&dout)?;
        let mut dx = dout;
        dx.reshape(&self.in_shape)?;
        Ok(dx)
    }
}
