//! Weight initialization, every draw from a seeded ChaCha8 stream.

#[cfg(feature = "rand")]
use rand::SeedableRng;
#[cfg(feature = "rand")]
use rand_chacha::ChaCha8Rng;
#[cfg(feature = "rand")]
use rand_distr::{Distribution, Normal};

#[cfg(feature = "rand")]
use crate::{Error, Tensor};

/// How to draw the initial weights of a layer with `fan_in` inputs: normal
/// with mean 0 and a standard deviation set by the scheme (the book's
/// definitions). Biases start at 0.
///
/// ```
/// use densegrad::Init;
///
/// assert_eq!(Init::Normal { std: 0.01 }.std(784), 0.01);
/// assert_eq!(Init::Xavier.std(100), 0.1);   // √(1/n)
/// assert!((Init::He.std(50) - 0.2).abs() < 1e-7); // √(2/n)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// A fixed standard deviation (the book's `weight_init_std = 0.01`).
    Normal {
        /// The standard deviation.
        std: f32,
    },
    /// Xavier (Glorot): `std = √(1 / fan_in)`, for sigmoid and tanh.
    Xavier,
    /// He (Kaiming): `std = √(2 / fan_in)`, for ReLU.
    He,
}

impl Init {
    /// The standard deviation for a layer with `fan_in` inputs.
    ///
    /// ```
    /// assert_eq!(densegrad::Init::He.std(2), 1.0);
    /// ```
    pub fn std(&self, fan_in: usize) -> f32 {
        match *self {
            Init::Normal { std } => std,
            Init::Xavier => (1.0 / fan_in as f64).sqrt() as f32,
            Init::He => (2.0 / fan_in as f64).sqrt() as f32,
        }
    }

    /// A (fan_in, fan_out) weight matrix drawn from `rng`; successive calls
    /// continue the stream (as [`Sequential::mlp`](crate::Sequential::mlp)
    /// draws its layers one after the other).
    ///
    /// ```
    /// use densegrad::{Init, InitRng};
    /// let mut rng = InitRng::new(1);
    /// let w = Init::He.weights(784, 50, &mut rng)?;
    /// assert_eq!(w.shape(), &[784, 50]);
    /// assert_eq!(w, Init::He.weights(784, 50, &mut InitRng::new(1))?);
    /// assert!(Init::Normal { std: -1.0 }.weights(2, 2, &mut rng).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
    #[cfg(feature = "rand")]
    pub fn weights(
        &self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut InitRng,
    ) -> Result<Tensor, Error> {
        let rng = &mut rng.0;
        let std = self.std(fan_in);
        let bad_std = || {
            Error::argument(
                "init weights",
                format!("standard deviation {std} must be finite and >= 0"),
            )
        };
        // rand_distr accepts a negative deviation (it flips the sign of
        // every draw); a caller asking for one has made a mistake.
        if !(std.is_finite() && std >= 0.0) {
            return Err(bad_std());
        }
        let normal = Normal::new(0.0f32, std).map_err(|_| bad_std())?;
        let n = fan_in.checked_mul(fan_out).ok_or_else(|| {
            Error::shape(
                "init weights",
                format!("[{fan_in}, {fan_out}] has too many elements"),
            )
        })?;
        let mut data = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            Error::shape(
                "init weights",
                format!("[{fan_in}, {fan_out}] needs more memory than can be allocated"),
            )
        })?;
        data.extend((0..n).map(|_| normal.sample(rng)));
        Tensor::new(&[fan_in, fan_out], data)
    }
}

/// The seeded stream [`Init::weights`] draws from: ChaCha8, so a seed gives
/// the same weights on every platform and in every version of densegrad.
///
/// ```
/// use densegrad::{Init, InitRng};
/// let a = Init::Xavier.weights(3, 2, &mut InitRng::new(7))?;
/// let b = Init::Xavier.weights(3, 2, &mut InitRng::new(7))?;
/// assert_eq!(a, b);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
#[cfg(feature = "rand")]
#[derive(Debug, Clone)]
pub struct InitRng(ChaCha8Rng);

#[cfg(feature = "rand")]
impl InitRng {
    /// The stream for `seed`.
    ///
    /// ```
    /// let _rng = densegrad::InitRng::new(42);
    /// ```
    pub fn new(seed: u64) -> InitRng {
        InitRng(ChaCha8Rng::seed_from_u64(seed))
    }
}
