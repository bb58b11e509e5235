//! Optimizer updates over a parameter slice and its gradient, in place.
//!
//! Every rule first adds L2 weight decay to the gradient, `g' = g + wd·p`
//! (PyTorch's `weight_decay`), then applies the book's update. Plain loops
//! over slices, which LLVM vectorizes; no allocation. Above
//! [`PAR_MIN_ELEMS`](super::parallel::PAR_MIN_ELEMS) elements the slices are
//! cut into fixed chunks run on rayon threads (every element's update is its
//! own, so any thread count gives the same bits).
//!
//! State that decays geometrically (momentum's v, RMSprop's h, Adam's m and
//! v) is flushed to 0 once it falls below the smallest normal f32 (1.2e-38):
//! the gradient of a dead unit is exactly 0, so its state decays by β every
//! step and would otherwise become subnormal after a few hundred steps
//! (0.9^800 < 1e-36), where every arithmetic operation on it costs ~100
//! cycles on x86. Those values move no parameter by anything above 1e-30.
//!
//! ```
//! let mut p = [1.0f32, 2.0];
//! densegrad::kernels::optim::sgd(&mut p, &[1.0, 1.0], 0.5, 0.0);
//! assert_eq!(p, [0.5, 1.5]);
//! ```

use rayon::prelude::*;

use super::parallel::{worth_splitting, PAR_CHUNK_ELEMS};

/// `f(p, g)` over matching chunks, on rayon threads when large enough.
#[inline]
fn chunked0(p: &mut [f32], g: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync + Send) {
    if worth_splitting(p.len()) {
        p.par_chunks_mut(PAR_CHUNK_ELEMS)
            .zip(g.par_chunks(PAR_CHUNK_ELEMS))
            .for_each(|(p, g)| f(p, g));
    } else {
        f(p, g);
    }
}

/// `f(p, g, s)` over matching chunks, on rayon threads when large enough.
#[inline]
fn chunked1(
    p: &mut [f32],
    g: &[f32],
    s: &mut [f32],
    f: impl Fn(&mut [f32], &[f32], &mut [f32]) + Sync + Send,
) {
    if worth_splitting(p.len()) {
        p.par_chunks_mut(PAR_CHUNK_ELEMS)
            .zip(g.par_chunks(PAR_CHUNK_ELEMS))
            .zip(s.par_chunks_mut(PAR_CHUNK_ELEMS))
            .for_each(|((p, g), s)| f(p, g, s));
    } else {
        f(p, g, s);
    }
}

/// `f(p, g, s, t)` over matching chunks, on rayon threads when large enough.
#[inline]
fn chunked2(
    p: &mut [f32],
    g: &[f32],
    s: &mut [f32],
    t: &mut [f32],
    f: impl Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + Send,
) {
    if worth_splitting(p.len()) {
        p.par_chunks_mut(PAR_CHUNK_ELEMS)
            .zip(g.par_chunks(PAR_CHUNK_ELEMS))
            .zip(s.par_chunks_mut(PAR_CHUNK_ELEMS))
            .zip(t.par_chunks_mut(PAR_CHUNK_ELEMS))
            .for_each(|(((p, g), s), t)| f(p, g, s, t));
    } else {
        f(p, g, s, t);
    }
}

/// `x`, or 0 if `x` is subnormal (NaN and ±∞ unchanged).
#[inline(always)]
fn flush(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// `p −= lr·g'`.
///
/// ```
/// # use densegrad::kernels::optim::*;
/// let mut p = [1.0];
/// sgd(&mut p, &[2.0], 0.1, 0.0);
/// assert_eq!(p, [0.8]);
/// ```
///
/// # Panics
/// Unless the parameter, gradient and state slices have one length.
pub fn sgd(p: &mut [f32], g: &[f32], lr: f32, wd: f32) {
    assert_eq!(
        p.len(),
        g.len(),
        "sgd: parameter and gradient differ in length"
    );
    chunked0(p, g, |p, g| {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * (g + wd * *p);
        }
    });
}

/// `v = μ·v − lr·g'; p += v`.
///
/// ```
/// # use densegrad::kernels::optim::*;
/// let (mut p, mut v) = ([1.0], [0.0]);
/// momentum(&mut p, &[1.0], &mut v, 0.1, 0.9, 0.0);
/// assert_eq!((p, v), ([0.9], [-0.1]));
/// ```
///
/// # Panics
/// Unless the parameter, gradient and state slices have one length.
pub fn momentum(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, mu: f32, wd: f32) {
    assert!(
        p.len() == g.len() && p.len() == v.len(),
        "momentum: lengths differ"
    );
    chunked1(p, g, v, |p, g, v| {
        for ((p, &g), v) in p.iter_mut().zip(g).zip(v) {
            *v = flush(mu * *v - lr * (g + wd * *p));
            *p += *v;
        }
    });
}

/// The book's Nesterov: `v = μ·v − lr·g'; p += μ²·v − (1 + μ)·lr·g'`.
///
/// ```
/// # use densegrad::kernels::optim::*;
/// let (mut p, mut v) = ([1.0f32], [0.0]);
/// nesterov(&mut p, &[1.0], &mut v, 0.1, 0.9, 0.0);
/// assert!((p[0] - 0.729).abs() < 1e-6);
/// ```
///
/// # Panics
/// Unless the parameter, gradient and state slices have one length.
pub fn nesterov(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, mu: f32, wd: f32) {
    assert!(
        p.len() == g.len() && p.len() == v.len(),
        "nesterov: lengths differ"
    );
    chunked1(p, g, v, |p, g, v| {
        for ((p, &g), v) in p.iter_mut().zip(g).zip(v) {
            let g = g + wd * *p;
            *v = flush(mu * *v - lr * g);
            *p += mu * mu * *v - (1.0 + mu) * lr * g;
        }
    });
}

/// `h += g'²; p −= lr·g' / (√h + 1e-7)`.
///
/// ```
/// # use densegrad::kernels::optim::*;
/// let (mut p, mut h) = ([1.0f32], [0.0]);
/// adagrad(&mut p, &[2.0], &mut h, 0.1, 0.0);
/// assert_eq!(h, [4.0]);
/// assert!((p[0] - 0.9).abs() < 1e-6);
/// ```
///
/// # Panics
/// Unless the parameter, gradient and state slices have one length.
pub fn adagrad(p: &mut [f32], g: &[f32], h: &mut [f32], lr: f32, wd: f32) {
    assert!(
        p.len() == g.len() && p.len() == h.len(),
        "adagrad: lengths differ"
    );
    chunked1(p, g, h, |p, g, h| {
        for ((p, &g), h) in p.iter_mut().zip(g).zip(h) {
            let g = g + wd * *p;
            *h += g * g;
            *p -= lr * g / (h.sqrt() + 1e-7);
        }
    });
}

/// `h = ρ·h + (1 − ρ)·g'²; p −= lr·g' / (√h + 1e-7)`.
///
/// ```
/// # use densegrad::kernels::optim::*;
/// let (mut p, mut h) = ([1.0f32], [0.0]);
/// rmsprop(&mut p, &[1.0], &mut h, 0.01, 0.99, 0.0);
/// assert!((h[0] - 0.01).abs() < 1e-7 && (p[0] - 0.9).abs() < 1e-5);
/// ```
///
/// # Panics
/// Unless the parameter, gradient and state slices have one length.
pub fn rmsprop(p: &mut [f32], g: &[f32], h: &mut [f32], lr: f32, rho: f32, wd: f32) {
    assert!(
        p.len() == g.len() && p.len() == h.len(),
        "rmsprop: lengths differ"
    );
    chunked1(p, g, h, |p, g, h| {
        for ((p, &g), h) in p.iter_mut().zip(g).zip(h) {
            let g = g + wd * *p;
            *h = flush(rho * *h + (1.0 - rho) * g * g);
            *p -= lr * g / (h.sqrt() + 1e-7);
        }
    });
}

/// Adam at step `t ≥ 1`: `m = β1·m + (1 − β1)·g'`, `v = β2·v + (1 − β2)·g'²`,
/// `p −= lr·m̂ / (√v̂ + ε)` with `m̂ = m/(1 − β1^t)`, `v̂ = v/(1 − β2^t)`.
///
/// ```
/// # use densegrad::kernels::optim::*;
/// let (mut p, mut m, mut v) = ([1.0f32], [0.0], [0.0]);
/// adam(&mut p, &[5.0], &mut m, &mut v, 0.001, (0.9, 0.999), 1e-8, 1, 0.0);
/// assert!((p[0] - 0.999).abs() < 1e-6);
/// ```
///
/// # Panics
/// Unless the parameter, gradient and state slices have one length.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    betas: (f32, f32),
    eps: f32,
    t: u32,
    wd: f32,
) {
    assert!(
        p.len() == g.len() && p.len() == m.len() && p.len() == v.len(),
        "adam: lengths differ"
    );
    let (b1, b2) = betas;
    let c1 = 1.0 / (1.0 - (b1 as f64).powi(t as i32)) as f32;
    let c2 = 1.0 / (1.0 - (b2 as f64).powi(t as i32)) as f32;
    chunked2(p, g, m, v, |p, g, m, v| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
            let g = g + wd * *p;
            *m = flush(b1 * *m + (1.0 - b1) * g);
            *v = flush(b2 * *v + (1.0 - b2) * g * g);
            *p -= lr * (*m * c1) / ((*v * c2).sqrt() + eps);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decaying_state_flushes_to_zero_instead_of_going_subnormal() {
        let (mut p, mut m, mut v) = ([1.0f32], [0.0], [0.0]);
        adam(
            &mut p,
            &[1.0],
            &mut m,
            &mut v,
            1e-3,
            (0.9, 0.999),
            1e-8,
            1,
            0.0,
        );
        let (mut mv, mut hv) = ([1.0f32], [1.0f32]);
        let mut q = [1.0f32];
        for t in 2..20_000 {
            adam(
                &mut p,
                &[0.0],
                &mut m,
                &mut v,
                1e-3,
                (0.9, 0.999),
                1e-8,
                t,
                0.0,
            );
            momentum(&mut q, &[0.0], &mut mv, 0.1, 0.9, 0.0);
            rmsprop(&mut q, &[0.0], &mut hv, 0.1, 0.99, 0.0);
            for s in [m[0], v[0], mv[0], hv[0]] {
                assert!(s == 0.0 || s.is_normal(), "state {s:e} at step {t}");
            }
        }
        assert_eq!((m[0], mv[0], hv[0]), (0.0, 0.0, 0.0));
        // NaN state stays NaN (a diverged run is not hidden).
        let (mut p, mut v) = ([1.0f32], [f32::NAN]);
        momentum(&mut p, &[0.0], &mut v, 0.1, 0.9, 0.0);
        assert!(v[0].is_nan() && p[0].is_nan());
    }
}
