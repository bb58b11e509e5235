//! Weight initialization, every draw from a seeded ChaCha8 stream.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

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

    /// A (fan_in, fan_out) weight matrix drawn from `rng`.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let w = densegrad::Init::He.weights(784, 50, &mut rng)?;
    /// assert_eq!(w.shape(), &[784, 50]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn weights(
        &self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor, Error> {
        let std = self.std(fan_in);
        let normal = Normal::new(0.0f32, std).map_err(|_| {
            Error::shape(
                "init weights",
                format!("standard deviation {std} must be finite and >= 0"),
            )
        })?;
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
