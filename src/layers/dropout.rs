use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{not_ready, require_nonempty, require_same_shape, Layer};
use crate::kernels::activation::mul_elementwise;
use crate::{Error, Tensor};

/// Dropout: in training, zeroes each element with probability `p` and scales
/// the rest by `1/(1 − p)` ("inverted" dropout, as PyTorch does, so that
/// evaluation is the identity; the book instead scales by `1 − p` at
/// evaluation, which gives the same expectations). The masks come from a
/// ChaCha8 stream seeded at construction, so a run is reproducible bit for
/// bit. Backward multiplies by the same mask.
///
/// ```
/// use densegrad::{Dropout, Layer, Tensor};
///
/// let mut d = Dropout::new(0.5, 42)?;
/// let x = Tensor::from_slice(&[1.0; 1000]);
/// let y = d.forward(&x)?;
/// assert!(y.data().iter().all(|&v| v == 0.0 || v == 2.0));
/// let kept = y.data().iter().filter(|&&v| v == 2.0).count();
/// assert!((400..600).contains(&kept));
/// d.set_training(false);
/// assert_eq!(d.forward(&x)?, x);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f32,
    rng: ChaCha8Rng,
    training: bool,
    /// 0 or 1/(1 − p) per element in training; empty in evaluation.
    mask: Vec<f32>,
    out: Tensor,
    dx: Tensor,
    ready: bool,
}

impl Dropout {
    /// Dropout with drop probability `p` in [0, 1), masks seeded by `seed`.
    ///
    /// ```
    /// assert!(densegrad::Dropout::new(1.0, 0).is_err());
    /// assert_eq!(densegrad::Dropout::new(0.2, 0)?.p(), 0.2);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(p: f32, seed: u64) -> Result<Dropout, Error> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::argument(
                "dropout new",
                format!("p is {p} but must be in [0, 1)"),
            ));
        }
        Ok(Dropout {
            p,
            rng: ChaCha8Rng::seed_from_u64(seed),
            training: true,
            mask: Vec::new(),
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
        })
    }

    /// The drop probability.
    ///
    /// ```
    /// assert_eq!(densegrad::Dropout::new(0.3, 1)?.p(), 0.3);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Layer for Dropout {
    /// No state.
    fn visit_state_ref(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        require_nonempty("dropout forward", x)?;
        self.out.resize_buffer(x.shape());
        if self.training {
            let keep = 1.0 / (1.0 - self.p);
            let p = self.p as f64;
            self.mask.clear();
            let rng = &mut self.rng;
            self.mask
                .extend((0..x.numel()).map(|_| if rng.gen::<f64>() < p { 0.0 } else { keep }));
            mul_elementwise(x.data(), &self.mask, self.out.data_mut());
        } else {
            self.mask.clear();
            self.out.data_mut().copy_from_slice(x.data());
        }
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        if !self.ready {
            return Err(not_ready("dropout backward"));
        }
        require_same_shape("dropout backward", dout, self.out.shape())?;
        self.dx.resize_buffer(dout.shape());
        if self.mask.is_empty() {
            self.dx.data_mut().copy_from_slice(dout.data());
        } else {
            mul_elementwise(dout.data(), &self.mask, self.dx.data_mut());
        }
        Ok(&self.dx)
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
