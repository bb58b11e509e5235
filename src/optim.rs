//! Optimizers: SGD, Momentum, Nesterov, AdaGrad, RMSprop and Adam, each with
//! optional L2 weight decay, stepping every (parameter, gradient) pair of a
//! network through the kernels in [`kernels::optim`](crate::kernels::optim).
//!
//! State (velocities, squared-gradient sums, moments) is allocated on the
//! first step and reused: later steps allocate nothing.
//!
//! ```
//! use densegrad::optim::{Momentum, Optimizer};
//! let mut opt = Momentum::new(0.1, 0.9);
//! let mut p = [1.0f32];
//! opt.update(0, &mut p, &[1.0]).unwrap();
//! assert!((p[0] - 0.9).abs() < 1e-7);
//! ```

use crate::kernels::optim;
use crate::{Error, Sequential};

/// An update rule applied to every parameter of a network.
///
/// ```
/// use densegrad::optim::{Adam, Optimizer};
/// let mut adam = Adam::new(0.001);
/// let mut p = [1.0f32, -1.0];
/// adam.begin_step();
/// adam.update(0, &mut p, &[0.5, -0.5]).unwrap();
/// assert!(p[0] < 1.0 && p[1] > -1.0);
/// ```
pub trait Optimizer {
    /// Updates `param` from `grad`; `index` numbers the parameters in
    /// [`Sequential::visit_params`] order so the optimizer can keep state
    /// per parameter. Called once per parameter per step, after
    /// [`begin_step`](Optimizer::begin_step). `Err` (and nothing changed)
    /// if `param` and `grad` differ in length.
    ///
    /// ```
    /// use densegrad::optim::{Optimizer, Sgd};
    /// let mut p = [1.0f32, 2.0];
    /// assert!(Sgd::new(0.1).update(0, &mut p, &[1.0]).is_err());
    /// assert_eq!(p, [1.0, 2.0]);
    /// ```
    fn update(&mut self, index: usize, param: &mut [f32], grad: &[f32]) -> Result<(), Error>;

    /// Called once at the start of every step (Adam counts steps).
    fn begin_step(&mut self) {}

    /// `Err` if a hyperparameter cannot give a meaningful update (a NaN or
    /// negative learning rate, a momentum or β outside [0, 1), …), naming
    /// it. [`step`](Optimizer::step) calls it before touching anything.
    /// Every built-in optimizer checks its own; the default accepts.
    ///
    /// ```
    /// use densegrad::optim::{Adam, Optimizer, Sgd};
    /// assert!(Sgd::new(0.1).check().is_ok());
    /// assert_eq!(Sgd::new(f32::NAN).check().unwrap_err().to_string(),
    ///     "optimizer step: learning rate NaN must be finite and >= 0");
    /// assert!(Adam::new(0.001).with_betas(1.0, 1.0).check().is_err());
    /// ```
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }

    /// The learning rate.
    ///
    /// ```
    /// use densegrad::optim::{Adam, Optimizer};
    /// assert_eq!(Adam::new(0.001).learning_rate(), 0.001);
    /// ```
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate, keeping every other setting and all state
    /// (a schedule: decay per epoch, warm-up).
    ///
    /// ```
    /// use densegrad::optim::{Optimizer, Sgd};
    /// let mut opt: Box<dyn Optimizer> = Box::new(Sgd::new(0.1));
    /// opt.set_learning_rate(opt.learning_rate() * 0.5);
    /// assert_eq!(opt.learning_rate(), 0.05);
    /// ```
    fn set_learning_rate(&mut self, lr: f32);

    /// One step over every parameter of `net`, from the gradients of its last
    /// backward.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// use densegrad::optim::{Optimizer, Sgd};
    /// use densegrad::{Activation, Init, Labels, Sequential, Tensor};
    ///
    /// let mut net = Sequential::mlp(&[2, 4, 2], Activation::Relu, Init::He, 1)?;
    /// let x = Tensor::new(&[2, 2], vec![1.0, 0.0, 0.0, 1.0])?;
    /// let mut opt = Sgd::new(0.5);
    /// let before = net.loss(&x, Labels::Index(&[0, 1]))?;
    /// for _ in 0..20 {
    ///     net.loss(&x, Labels::Index(&[0, 1]))?;
    ///     net.backward()?;
    ///     opt.step(&mut net)?;
    /// }
    /// assert!(net.loss(&x, Labels::Index(&[0, 1]))? < before);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    fn step(&mut self, net: &mut Sequential) -> Result<(), Error> {
        // The hyperparameters are checked before any parameter moves, so a
        // refused step changes nothing; the views fix each parameter's shape
        // to its gradient's.
        self.check()?;
        self.begin_step();
        let mut result = Ok(());
        net.visit_trainable_params(&mut |i, mut p| {
            if result.is_ok() {
                let (values, grad) = p.values_and_grad();
                result = self.update(i, values, grad);
            }
        });
        result
    }
}

/// `Err` unless `v` is finite and in `lo..hi` (`hi` excluded unless
/// `hi_inclusive`).
fn require(name: &str, v: f32, lo: f32, hi: f32, rule: &str) -> Result<(), Error> {
    if v.is_finite() && v >= lo && v < hi {
        Ok(())
    } else {
        Err(Error::argument(
            "optimizer step",
            format!("{name} {v} must be {rule}"),
        ))
    }
}

/// The checks every optimizer shares: learning rate and weight decay.
fn check_common(lr: f32, wd: f32) -> Result<(), Error> {
    require("learning rate", lr, 0.0, f32::INFINITY, "finite and >= 0")?;
    require("weight decay", wd, 0.0, f32::INFINITY, "finite and >= 0")
}

/// `Err` unless a parameter and its gradient have one length.
fn same_len(index: usize, p: &[f32], g: &[f32]) -> Result<(), Error> {
    if p.len() == g.len() {
        Ok(())
    } else {
        Err(Error::shape(
            "optimizer update",
            format!(
                "parameter {index} has {} values but its gradient {}",
                p.len(),
                g.len()
            ),
        ))
    }
}

/// Per-parameter state buffers, sized on first use.
#[derive(Debug, Clone, Default)]
struct Slots(Vec<Vec<f32>>);

impl Slots {
    fn get(&mut self, index: usize, len: usize) -> &mut [f32] {
        if self.0.len() <= index {
            self.0.resize_with(index + 1, Vec::new);
        }
        let s = &mut self.0[index];
        if s.len() != len {
            s.clear();
            s.resize(len, 0.0);
        }
        s
    }
}

/// Plain SGD: `p −= lr·(g + wd·p)`.
///
/// ```
/// use densegrad::optim::{Optimizer, Sgd};
/// let mut p = [1.0f32];
/// Sgd::new(0.1).update(0, &mut p, &[2.0]).unwrap();
/// assert_eq!(p, [0.8]);
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    lr: f32,
    weight_decay: f32,
}

impl Sgd {
    /// SGD with learning rate `lr` and no weight decay.
    ///
    /// ```
    /// use densegrad::optim::{Optimizer, Sgd};
    /// assert_eq!(Sgd::new(0.1).learning_rate(), 0.1);
    /// ```
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            lr,
            weight_decay: 0.0,
        }
    }
}

impl Sgd {
    /// The same optimizer with L2 weight decay `wd` (added to the gradient).
    ///
    /// ```
    /// let o = densegrad::optim::Sgd::new(0.1).with_weight_decay(1e-4);
    /// assert_eq!(o.weight_decay(), 1e-4);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The L2 weight decay.
    ///
    /// ```
    /// # use densegrad::optim::*;
    /// assert_eq!(Sgd::new(0.1).with_weight_decay(1e-4).weight_decay(), 1e-4);
    /// ```
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }
}

impl Optimizer for Sgd {
    fn check(&self) -> Result<(), Error> {
        check_common(self.lr, self.weight_decay)
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update(&mut self, index: usize, p: &mut [f32], g: &[f32]) -> Result<(), Error> {
        same_len(index, p, g)?;
        optim::sgd(p, g, self.lr, self.weight_decay);
        Ok(())
    }
}

/// Momentum SGD (the book's): `v = μ·v − lr·g'; p += v`.
///
/// ```
/// use densegrad::optim::{Momentum, Optimizer};
/// let mut o = Momentum::new(0.1, 0.9);
/// let mut p = [1.0f32];
/// o.update(0, &mut p, &[1.0]).unwrap();
/// o.update(0, &mut p, &[1.0]).unwrap();
/// assert!((p[0] - (1.0 - 0.1 - 0.19)).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct Momentum {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    v: Slots,
}

impl Momentum {
    /// Momentum SGD with learning rate `lr` and momentum `mu`.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Momentum::new(0.1, 0.9).momentum(), 0.9);
    /// ```
    pub fn new(lr: f32, mu: f32) -> Momentum {
        Momentum {
            lr,
            momentum: mu,
            weight_decay: 0.0,
            v: Slots::default(),
        }
    }
}

impl Momentum {
    /// The same optimizer with L2 weight decay `wd` (added to the gradient).
    ///
    /// ```
    /// let o = densegrad::optim::Momentum::new(0.1, 0.9).with_weight_decay(1e-4);
    /// assert_eq!(o.weight_decay(), 1e-4);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The L2 weight decay.
    ///
    /// ```
    /// # use densegrad::optim::*;
    /// assert_eq!(Momentum::new(0.1, 0.9).with_weight_decay(1e-4).weight_decay(), 1e-4);
    /// ```
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// The momentum μ.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Momentum::new(0.1, 0.9).momentum(), 0.9);
    /// ```
    pub fn momentum(&self) -> f32 {
        self.momentum
    }
}

impl Optimizer for Momentum {
    fn check(&self) -> Result<(), Error> {
        check_common(self.lr, self.weight_decay)?;
        require("momentum", self.momentum, 0.0, 1.0, "in [0, 1)")
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update(&mut self, index: usize, p: &mut [f32], g: &[f32]) -> Result<(), Error> {
        same_len(index, p, g)?;
        let v = self.v.get(index, p.len());
        optim::momentum(p, g, v, self.lr, self.momentum, self.weight_decay);
        Ok(())
    }
}

/// Nesterov's accelerated gradient, in the book's form:
/// `v = μ·v − lr·g'; p += μ²·v − (1 + μ)·lr·g'`.
///
/// ```
/// use densegrad::optim::{Nesterov, Optimizer};
/// let mut o = Nesterov::new(0.1, 0.9);
/// let mut p = [1.0f32];
/// o.update(0, &mut p, &[1.0]).unwrap();
/// // v = −0.1; p = 1 + 0.81·(−0.1) − 1.9·0.1
/// assert!((p[0] - (1.0 - 0.081 - 0.19)).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct Nesterov {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    v: Slots,
}

impl Nesterov {
    /// Nesterov momentum with learning rate `lr` and momentum `mu`.
    ///
    /// ```
    /// use densegrad::optim::{Nesterov, Optimizer};
    /// assert_eq!(Nesterov::new(0.1, 0.9).learning_rate(), 0.1);
    /// ```
    pub fn new(lr: f32, mu: f32) -> Nesterov {
        Nesterov {
            lr,
            momentum: mu,
            weight_decay: 0.0,
            v: Slots::default(),
        }
    }
}

impl Nesterov {
    /// The same optimizer with L2 weight decay `wd` (added to the gradient).
    ///
    /// ```
    /// let o = densegrad::optim::Nesterov::new(0.1, 0.9).with_weight_decay(1e-4);
    /// assert_eq!(o.weight_decay(), 1e-4);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The L2 weight decay.
    ///
    /// ```
    /// # use densegrad::optim::*;
    /// assert_eq!(Nesterov::new(0.1, 0.9).with_weight_decay(1e-4).weight_decay(), 1e-4);
    /// ```
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// The momentum μ.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Nesterov::new(0.1, 0.9).momentum(), 0.9);
    /// ```
    pub fn momentum(&self) -> f32 {
        self.momentum
    }
}

impl Optimizer for Nesterov {
    fn check(&self) -> Result<(), Error> {
        check_common(self.lr, self.weight_decay)?;
        require("momentum", self.momentum, 0.0, 1.0, "in [0, 1)")
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update(&mut self, index: usize, p: &mut [f32], g: &[f32]) -> Result<(), Error> {
        same_len(index, p, g)?;
        let v = self.v.get(index, p.len());
        optim::nesterov(p, g, v, self.lr, self.momentum, self.weight_decay);
        Ok(())
    }
}

/// AdaGrad: `h += g'²; p −= lr·g' / (√h + 1e-7)`.
///
/// ```
/// use densegrad::optim::{AdaGrad, Optimizer};
/// let mut p = [1.0f32];
/// AdaGrad::new(0.1).update(0, &mut p, &[2.0]).unwrap();
/// assert!((p[0] - 0.9).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct AdaGrad {
    lr: f32,
    weight_decay: f32,
    h: Slots,
}

impl AdaGrad {
    /// AdaGrad with learning rate `lr`.
    ///
    /// ```
    /// use densegrad::optim::{AdaGrad, Optimizer};
    /// assert_eq!(AdaGrad::new(0.01).learning_rate(), 0.01);
    /// ```
    pub fn new(lr: f32) -> AdaGrad {
        AdaGrad {
            lr,
            weight_decay: 0.0,
            h: Slots::default(),
        }
    }
}

impl AdaGrad {
    /// The same optimizer with L2 weight decay `wd` (added to the gradient).
    ///
    /// ```
    /// let o = densegrad::optim::AdaGrad::new(0.1).with_weight_decay(1e-4);
    /// assert_eq!(o.weight_decay(), 1e-4);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The L2 weight decay.
    ///
    /// ```
    /// # use densegrad::optim::*;
    /// assert_eq!(AdaGrad::new(0.01).with_weight_decay(1e-4).weight_decay(), 1e-4);
    /// ```
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }
}

impl Optimizer for AdaGrad {
    fn check(&self) -> Result<(), Error> {
        check_common(self.lr, self.weight_decay)
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update(&mut self, index: usize, p: &mut [f32], g: &[f32]) -> Result<(), Error> {
        same_len(index, p, g)?;
        let h = self.h.get(index, p.len());
        optim::adagrad(p, g, h, self.lr, self.weight_decay);
        Ok(())
    }
}

/// RMSprop: `h = ρ·h + (1 − ρ)·g'²; p −= lr·g' / (√h + 1e-7)`.
///
/// ```
/// use densegrad::optim::{Optimizer, RmsProp};
/// let mut p = [1.0f32];
/// RmsProp::new(0.01, 0.99).update(0, &mut p, &[1.0]).unwrap();
/// assert!((p[0] - (1.0 - 0.01 / 0.1)).abs() < 1e-5);
/// ```
#[derive(Debug, Clone)]
pub struct RmsProp {
    lr: f32,
    /// Decay ρ of the squared-gradient average.
    decay: f32,
    weight_decay: f32,
    h: Slots,
}

impl RmsProp {
    /// RMSprop with learning rate `lr` and decay `rho`.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::RmsProp::new(0.01, 0.99).decay(), 0.99);
    /// ```
    pub fn new(lr: f32, rho: f32) -> RmsProp {
        RmsProp {
            lr,
            decay: rho,
            weight_decay: 0.0,
            h: Slots::default(),
        }
    }
}

impl RmsProp {
    /// The same optimizer with L2 weight decay `wd` (added to the gradient).
    ///
    /// ```
    /// let o = densegrad::optim::RmsProp::new(0.1, 0.99).with_weight_decay(1e-4);
    /// assert_eq!(o.weight_decay(), 1e-4);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The L2 weight decay.
    ///
    /// ```
    /// # use densegrad::optim::*;
    /// assert_eq!(RmsProp::new(0.01, 0.99).with_weight_decay(1e-4).weight_decay(), 1e-4);
    /// ```
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// The decay ρ of the squared-gradient average.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::RmsProp::new(0.01, 0.99).decay(), 0.99);
    /// ```
    pub fn decay(&self) -> f32 {
        self.decay
    }
}

impl Optimizer for RmsProp {
    fn check(&self) -> Result<(), Error> {
        check_common(self.lr, self.weight_decay)?;
        require("decay", self.decay, 0.0, 1.0, "in [0, 1)")
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update(&mut self, index: usize, p: &mut [f32], g: &[f32]) -> Result<(), Error> {
        same_len(index, p, g)?;
        let h = self.h.get(index, p.len());
        optim::rmsprop(p, g, h, self.lr, self.decay, self.weight_decay);
        Ok(())
    }
}

/// Adam (Kingma & Ba) with bias correction; defaults β = (0.9, 0.999),
/// ε = 1e-8 (PyTorch's).
///
/// ```
/// use densegrad::optim::{Adam, Optimizer};
/// let mut o = Adam::new(0.001);
/// let mut p = [1.0f32];
/// o.begin_step();
/// o.update(0, &mut p, &[5.0]).unwrap();
/// // The first Adam step moves every parameter by ~lr, whatever the gradient.
/// assert!((p[0] - 0.999).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    lr: f32,
    /// (β1, β2).
    betas: (f32, f32),
    /// ε.
    eps: f32,
    weight_decay: f32,
    t: u32,
    /// m and v of each parameter, side by side in one buffer.
    mv: Slots,
}

impl Adam {
    /// Adam with learning rate `lr` and the default β and ε.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Adam::new(0.001).betas(), (0.9, 0.999));
    /// ```
    pub fn new(lr: f32) -> Adam {
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            t: 0,
            mv: Slots::default(),
        }
    }
}

impl Adam {
    /// The same optimizer with L2 weight decay `wd` (added to the gradient).
    ///
    /// ```
    /// let o = densegrad::optim::Adam::new(0.1).with_weight_decay(1e-4);
    /// assert_eq!(o.weight_decay(), 1e-4);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The L2 weight decay.
    ///
    /// ```
    /// # use densegrad::optim::*;
    /// assert_eq!(Adam::new(0.001).with_weight_decay(1e-4).weight_decay(), 1e-4);
    /// ```
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// (β1, β2).
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Adam::new(0.001).betas(), (0.9, 0.999));
    /// ```
    pub fn betas(&self) -> (f32, f32) {
        self.betas
    }

    /// The same optimizer with moment decays β1 and β2 (each in [0, 1);
    /// [`check`](Optimizer::check) refuses others).
    ///
    /// ```
    /// let adam = densegrad::optim::Adam::new(0.001).with_betas(0.8, 0.99);
    /// assert_eq!(adam.betas(), (0.8, 0.99));
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// ε, added to the denominator.
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Adam::new(0.001).eps(), 1e-8);
    /// ```
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// The same optimizer with denominator term `eps` (finite and > 0).
    ///
    /// ```
    /// assert_eq!(densegrad::optim::Adam::new(0.001).with_eps(1e-6).eps(), 1e-6);
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
}

impl Optimizer for Adam {
    fn check(&self) -> Result<(), Error> {
        check_common(self.lr, self.weight_decay)?;
        require("beta1", self.betas.0, 0.0, 1.0, "in [0, 1)")?;
        require("beta2", self.betas.1, 0.0, 1.0, "in [0, 1)")?;
        require(
            "eps",
            self.eps,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            "finite and > 0",
        )
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn begin_step(&mut self) {
        self.t = self.t.saturating_add(1);
    }

    fn update(&mut self, index: usize, p: &mut [f32], g: &[f32]) -> Result<(), Error> {
        same_len(index, p, g)?;
        let t = self.t.max(1);
        let (m, v) = self.mv.get(index, 2 * p.len()).split_at_mut(p.len());
        optim::adam(
            p,
            g,
            m,
            v,
            self.lr,
            self.betas,
            self.eps,
            t,
            self.weight_decay,
        );
        Ok(())
    }
}
