use super::{not_ready, require_same_shape, Layer};
use crate::{Error, Param, StateMut, Tensor};

/// Batch normalization over the batch axis of (N, D) input (Ioffe & Szegedy,
/// as in the book): in training each feature is normalized by the batch's
/// mean and (biased) variance, `y = γ·x̂ + β`, and running statistics are
/// updated as `running = momentum·running + (1 − momentum)·batch`; in
/// evaluation the running statistics are used. Statistics are accumulated
/// in f64.
///
/// ```
/// use densegrad::{BatchNorm, Layer, Tensor};
///
/// let mut bn = BatchNorm::new(2)?;
/// let x = Tensor::new(&[2, 2], vec![1.0, 10.0, 3.0, 30.0])?;
/// let y = bn.forward(&x)?;
/// // Each column has mean 0 and variance ~1.
/// assert!((y.data()[0] + 1.0).abs() < 1e-3 && (y.data()[2] - 1.0).abs() < 1e-3);
/// assert!((y.data()[1] + 1.0).abs() < 1e-3);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchNorm {
    gamma: Tensor,
    beta: Tensor,
    dgamma: Tensor,
    dbeta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    momentum: f32,
    eps: f32,
    training: bool,
    /// x̂ of the last forward (training) and 1/√(var + eps) per feature.
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    /// Whether the last forward used batch statistics.
    used_batch_stats: bool,
    out: Tensor,
    dx: Tensor,
    ready: bool,
    /// The feature count fixed at construction: every state tensor is
    /// [features], and the views `visit_params` and `visit_state` hand out
    /// cannot change that.
    features: usize,
    /// Per-feature f64 sums (mean and variance, or Σdy and Σdy·x̂), reused.
    sums: Vec<f64>,
}

impl BatchNorm {
    /// BatchNorm for `features` features: γ = 1, β = 0, running mean 0 and
    /// variance 1, momentum 0.9 and ε = 1e-5.
    ///
    /// ```
    /// assert!(densegrad::BatchNorm::new(0).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(features: usize) -> Result<BatchNorm, Error> {
        BatchNorm::with_options(features, 0.9, 1e-5)
    }

    /// BatchNorm with a given running-average `momentum` in [0, 1] and `eps` > 0.
    ///
    /// ```
    /// let bn = densegrad::BatchNorm::with_options(4, 0.99, 1e-3)?;
    /// # let _ = bn;
    /// assert!(densegrad::BatchNorm::with_options(4, 1.5, 1e-3).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn with_options(features: usize, momentum: f32, eps: f32) -> Result<BatchNorm, Error> {
        const OP: &str = "batchnorm new";
        if features == 0 {
            return Err(Error::shape(OP, "features must be at least 1"));
        }
        if !((0.0..=1.0).contains(&momentum) && eps > 0.0 && eps.is_finite()) {
            return Err(Error::argument(
                OP,
                format!("momentum {momentum} must be in [0, 1] and eps {eps} finite and > 0"),
            ));
        }
        let ones = Tensor::new(&[features], vec![1.0; features])?;
        Ok(BatchNorm {
            gamma: ones.clone(),
            beta: Tensor::zeros(&[features]),
            dgamma: Tensor::zeros(&[features]),
            dbeta: Tensor::zeros(&[features]),
            running_mean: Tensor::zeros(&[features]),
            running_var: ones,
            momentum,
            eps,
            training: true,
            xhat: Vec::new(),
            inv_std: vec![0.0; features],
            used_batch_stats: false,
            out: Tensor::zeros(&[0]),
            dx: Tensor::zeros(&[0]),
            ready: false,
            features,
            sums: vec![0.0; 2 * features],
        })
    }

    /// The running mean (used in evaluation).
    ///
    /// ```
    /// assert_eq!(densegrad::BatchNorm::new(2)?.running_mean().data(), &[0.0, 0.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    /// The running variance (used in evaluation).
    ///
    /// ```
    /// assert_eq!(densegrad::BatchNorm::new(2)?.running_var().data(), &[1.0, 1.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }
}

impl Layer for BatchNorm {
    fn forward_ref(&mut self, x: &Tensor) -> Result<&Tensor, Error> {
        const OP: &str = "batchnorm forward";
        // A refused forward leaves nothing for a backward to use.
        self.ready = false;
        let d = self.features;
        let n = match x.shape() {
            &[n, f] if f == d => n,
            s => {
                return Err(Error::shape(
                    OP,
                    format!("x is {s:?} but this BatchNorm has {d} features: x must be [N, {d}]"),
                ))
            }
        };
        if n == 0 {
            return Err(Error::shape(
                OP,
                format!(
                    "input {:?} is empty; a batch needs at least one row",
                    x.shape()
                ),
            ));
        }
        self.out.resize_buffer(x.shape());
        let (g, b) = (self.gamma.data(), self.beta.data());
        if self.training {
            // Batch mean and biased variance per feature, in f64.
            self.sums.clear();
            self.sums.resize(2 * d, 0.0);
            let (mean, var) = self.sums.split_at_mut(d);
            for row in x.data().chunks_exact(d) {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v as f64;
                }
            }
            mean.iter_mut().for_each(|m| *m /= n as f64);
            for row in x.data().chunks_exact(d) {
                for ((s, &v), &m) in var.iter_mut().zip(row).zip(mean.iter()) {
                    *s += (v as f64 - m) * (v as f64 - m);
                }
            }
            var.iter_mut().for_each(|s| *s /= n as f64);
            self.inv_std.resize(d, 0.0);
            for (inv, &v) in self.inv_std.iter_mut().zip(var.iter()) {
                *inv = (1.0 / (v + self.eps as f64).sqrt()) as f32;
            }
            let mom = self.momentum;
            for j in 0..d {
                let rm = &mut self.running_mean.data_mut()[j];
                *rm = mom * *rm + (1.0 - mom) * mean[j] as f32;
                let rv = &mut self.running_var.data_mut()[j];
                *rv = mom * *rv + (1.0 - mom) * var[j] as f32;
            }
            self.used_batch_stats = true;
        } else {
            self.inv_std.resize(d, 0.0);
            for (inv, &v) in self.inv_std.iter_mut().zip(self.running_var.data()) {
                *inv = 1.0 / (v + self.eps).sqrt();
            }
            self.sums.clear();
            self.sums
                .extend(self.running_mean.data().iter().map(|&m| m as f64));
            self.used_batch_stats = false;
        }
        // x̂ = (x − mean)·(1/σ) in f64, and y = γ·x̂ + β: one loop for the
        // batch statistics and the running ones (`sums[..d]` holds the mean).
        let mean = &self.sums[..d];
        self.xhat.resize(n * d, 0.0);
        let rows = x.data().chunks_exact(d).zip(self.xhat.chunks_exact_mut(d));
        for ((row, xh), y) in rows.zip(self.out.data_mut().chunks_exact_mut(d)) {
            for j in 0..d {
                xh[j] = ((row[j] as f64 - mean[j]) * self.inv_std[j] as f64) as f32;
                y[j] = g[j] * xh[j] + b[j];
            }
        }
        self.ready = true;
        Ok(&self.out)
    }

    fn backward_ref(&mut self, dout: &Tensor) -> Result<&Tensor, Error> {
        const OP: &str = "batchnorm backward";
        if !self.ready {
            return Err(not_ready(OP));
        }
        require_same_shape(OP, dout, self.out.shape())?;
        let d = self.features;
        let n = dout.shape()[0];
        self.dx.resize_buffer(dout.shape());
        let g = self.gamma.data();
        if self.used_batch_stats {
            // dβ = Σ dy, dγ = Σ dy·x̂, and
            // dx = γ·inv_std/N · (N·dy − Σdy − x̂·Σ(dy·x̂)).
            self.sums.clear();
            self.sums.resize(2 * d, 0.0);
            let (sum_dy, sum_dy_xhat) = self.sums.split_at_mut(d);
            for (dy, xh) in dout.data().chunks_exact(d).zip(self.xhat.chunks_exact(d)) {
                for j in 0..d {
                    sum_dy[j] += dy[j] as f64;
                    sum_dy_xhat[j] += dy[j] as f64 * xh[j] as f64;
                }
            }
            let nf = n as f64;
            let rows = dout.data().chunks_exact(d).zip(self.xhat.chunks_exact(d));
            for ((dy, xh), dx) in rows.zip(self.dx.data_mut().chunks_exact_mut(d)) {
                for j in 0..d {
                    let scale = g[j] as f64 * self.inv_std[j] as f64 / nf;
                    dx[j] = (scale
                        * (nf * dy[j] as f64 - sum_dy[j] - xh[j] as f64 * sum_dy_xhat[j]))
                        as f32;
                }
            }
            for j in 0..d {
                self.dbeta.data_mut()[j] = sum_dy[j] as f32;
                self.dgamma.data_mut()[j] = sum_dy_xhat[j] as f32;
            }
        } else {
            // Evaluation mode is an affine map per feature: dx = dy·γ·inv_std,
            // dβ = Σ dy, dγ = Σ dy·x̂.
            self.sums.clear();
            self.sums.resize(2 * d, 0.0);
            let (sum_dy, sum_dy_xhat) = self.sums.split_at_mut(d);
            let rows = dout.data().chunks_exact(d).zip(self.xhat.chunks_exact(d));
            for ((dy, xh), dx) in rows.zip(self.dx.data_mut().chunks_exact_mut(d)) {
                for j in 0..d {
                    dx[j] = dy[j] * g[j] * self.inv_std[j];
                    sum_dy[j] += dy[j] as f64;
                    sum_dy_xhat[j] += dy[j] as f64 * xh[j] as f64;
                }
            }
            for j in 0..d {
                self.dbeta.data_mut()[j] = sum_dy[j] as f32;
                self.dgamma.data_mut()[j] = sum_dy_xhat[j] as f32;
            }
        }
        Ok(&self.dx)
    }

    /// Visits (γ, dγ) then (β, dβ).
    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        f(Param::new("gamma", &mut self.gamma, &self.dgamma));
        f(Param::new("beta", &mut self.beta, &self.dbeta));
    }

    /// `gamma`, `beta`, `running_mean`, `running_var`.
    fn visit_state(&mut self, f: &mut dyn FnMut(StateMut<'_>)) {
        f(StateMut::new("gamma", &mut self.gamma));
        f(StateMut::new("beta", &mut self.beta));
        f(StateMut::new("running_mean", &mut self.running_mean));
        f(StateMut::new("running_var", &mut self.running_var));
    }

    fn visit_state_ref(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("gamma", &self.gamma);
        f("beta", &self.beta);
        f("running_mean", &self.running_mean);
        f("running_var", &self.running_var);
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
