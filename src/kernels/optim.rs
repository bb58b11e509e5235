//! Optimizer updates over a parameter slice and its gradient, in place.
//!
//! Every rule first adds L2 weight decay to the gradient, `g' = g + wd·p`
//! (PyTorch's `weight_decay`), then applies the book's update. Each rule is
//! written once on SIMD lanes and run through the dispatched instruction
//! set, tails included; no allocation. Above [`PAR_MIN_ELEMS`] elements the
//! slices are cut into fixed blocks run on rayon threads, and from 16K
//! elements into two halves run side by side through [`join_awake`] (every
//! element's update is its own, so any thread count gives the same bits).
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

use super::parallel::{
    for_row_blocks, for_row_blocks2, for_row_blocks3, join_awake, PAR_MIN_ELEMS,
};
use super::simd::{dispatch, Isa, Lanes, SimdKernel};

/// Parameters of at least this many elements (and below
/// [`PAR_MIN_ELEMS`]) are updated in two halves side by side. W4 small's
/// first weight (39 200 elements) has its gradient computed in two halves
/// of rows on both cores (Affine's dW halves), and its forward reads W in
/// the same halves; updated by one thread, half of the gradient crosses
/// between the cores first, and half of W back: its SGD step at 2 threads
/// took 17 µs that way, 10 µs in halves (1 thread: 6 µs; with the forward
/// cut in K, 5 µs).
const HALVES_MIN_ELEMS: usize = 1 << 14;

/// One optimizer's update of a parameter lane-wise, with up to two state
/// slices (momentum's v, Adam's m and v): every rule below is one of these,
/// run by [`update`] on the dispatched instruction set. The rules use no
/// fused multiply-add, so every instruction set gives the bits a scalar loop
/// would.
trait Rule: Copy + Send + Sync {
    /// How many state slices the rule reads and writes (0, 1 or 2).
    const STATES: usize;
    /// The new parameter from `p` and gradient `g`; updates `s[..STATES]`.
    fn apply<V: Lanes>(self, p: V, g: V, s: &mut [V; 2]) -> V;
}

struct Update<'a, R> {
    rule: R,
    p: &'a mut [f32],
    g: &'a [f32],
    s0: &'a mut [f32],
    s1: &'a mut [f32],
}

impl<R: Rule> SimdKernel for Update<'_, R> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Update { rule, p, g, s0, s1 } = self;
        let zero = V::splat(0.0);
        for i in (0..p.len()).step_by(V::N) {
            let mut s = [zero; 2];
            if R::STATES > 0 {
                s[0] = V::load_at(s0, i);
            }
            if R::STATES > 1 {
                s[1] = V::load_at(s1, i);
            }
            rule.apply(V::load_at(p, i), V::load_at(g, i), &mut s)
                .store_at(p, i);
            if R::STATES > 0 {
                s[0].store_at(s0, i);
            }
            if R::STATES > 1 {
                s[1].store_at(s1, i);
            }
        }
    }
}

/// Runs `rule` over `p`, `g` and the first `R::STATES` of `s0`, `s1`, split
/// into fixed blocks across threads when large enough (every element's
/// update is its own, so any thread count gives the same bits).
fn update<R: Rule>(rule: R, p: &mut [f32], g: &[f32], s0: &mut [f32], s1: &mut [f32]) {
    let isa = Isa::best();
    let n = p.len();
    let run = |r: std::ops::Range<usize>, p: &mut [f32], s0: &mut [f32], s1: &mut [f32]| {
        let g = &g[r];
        dispatch(isa, Update { rule, p, g, s0, s1 })
    };
    if (HALVES_MIN_ELEMS..PAR_MIN_ELEMS).contains(&n) && rayon::current_num_threads() > 1 {
        // Each thread takes about the half of the gradient it computed.
        let mid = n / 2;
        let (p0, p1) = p.split_at_mut(mid);
        let (s00, s01) = s0.split_at_mut(if R::STATES > 0 { mid } else { 0 });
        let (s10, s11) = s1.split_at_mut(if R::STATES > 1 { mid } else { 0 });
        join_awake(|| run(0..mid, p0, s00, s10), || run(mid..n, p1, s01, s11));
        return;
    }
    match R::STATES {
        0 => for_row_blocks(n, 1, p, |r, p| run(r, p, &mut [], &mut [])),
        1 => for_row_blocks2(n, 1, p, s0, |r, p, s0| run(r, p, s0, &mut [])),
        _ => for_row_blocks3(n, 1, p, s0, s1, run),
    }
}

/// `x`, or 0 if `x` is subnormal (NaN and ±∞ unchanged).
#[inline(always)]
fn flush<V: Lanes>(x: V) -> V {
    V::select(x.abs().lt(V::splat(f32::MIN_POSITIVE)), V::splat(0.0), x)
}

/// `g' = g + wd·p`.
#[inline(always)]
fn decayed<V: Lanes>(g: V, p: V, wd: f32) -> V {
    g.add(V::splat(wd).mul(p))
}

#[derive(Clone, Copy)]
struct Sgd {
    lr: f32,
    wd: f32,
}

impl Rule for Sgd {
    const STATES: usize = 0;
    #[inline(always)]
    fn apply<V: Lanes>(self, p: V, g: V, _: &mut [V; 2]) -> V {
        p.sub(V::splat(self.lr).mul(decayed(g, p, self.wd)))
    }
}

#[derive(Clone, Copy)]
struct Momentum {
    lr: f32,
    mu: f32,
    wd: f32,
}

impl Rule for Momentum {
    const STATES: usize = 1;
    #[inline(always)]
    fn apply<V: Lanes>(self, p: V, g: V, s: &mut [V; 2]) -> V {
        let step = V::splat(self.lr).mul(decayed(g, p, self.wd));
        s[0] = flush(V::splat(self.mu).mul(s[0]).sub(step));
        p.add(s[0])
    }
}

#[derive(Clone, Copy)]
struct Nesterov {
    lr: f32,
    mu: f32,
    wd: f32,
}

impl Rule for Nesterov {
    const STATES: usize = 1;
    #[inline(always)]
    fn apply<V: Lanes>(self, p: V, g: V, s: &mut [V; 2]) -> V {
        let (mu, lr) = (self.mu, self.lr);
        let g = decayed(g, p, self.wd);
        s[0] = flush(V::splat(mu).mul(s[0]).sub(V::splat(lr).mul(g)));
        let to_v = V::splat(mu * mu).mul(s[0]);
        p.add(to_v.sub(V::splat((1.0 + mu) * lr).mul(g)))
    }
}

#[derive(Clone, Copy)]
struct AdaGrad {
    lr: f32,
    wd: f32,
}

impl Rule for AdaGrad {
    const STATES: usize = 1;
    #[inline(always)]
    fn apply<V: Lanes>(self, p: V, g: V, s: &mut [V; 2]) -> V {
        let g = decayed(g, p, self.wd);
        s[0] = s[0].add(g.mul(g));
        let step = V::splat(self.lr)
            .mul(g)
            .div(s[0].sqrt().add(V::splat(1e-7)));
        p.sub(step)
    }
}

#[derive(Clone, Copy)]
struct RmsProp {
    lr: f32,
    rho: f32,
    wd: f32,
}

impl Rule for RmsProp {
    const STATES: usize = 1;
    #[inline(always)]
    fn apply<V: Lanes>(self, p: V, g: V, s: &mut [V; 2]) -> V {
        let g = decayed(g, p, self.wd);
        let fresh = V::splat(1.0 - self.rho).mul(g).mul(g);
        s[0] = flush(V::splat(self.rho).mul(s[0]).add(fresh));
        let step = V::splat(self.lr)
            .mul(g)
            .div(s[0].sqrt().add(V::splat(1e-7)));
        p.sub(step)
    }
}

#[derive(Clone, Copy)]
struct Adam {
    lr: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    /// 1/(1 − β1^t) and 1/(1 − β2^t).
    c1: f32,
    c2: f32,
    wd: f32,
}

impl Rule for Adam {
    const STATES: usize = 2;
    #[inline(always)]
    fn apply<V: Lanes>(self, p: V, g: V, s: &mut [V; 2]) -> V {
        let g = decayed(g, p, self.wd);
        let m = V::splat(self.b1)
            .mul(s[0])
            .add(V::splat(1.0 - self.b1).mul(g));
        let v = V::splat(self.b2)
            .mul(s[1])
            .add(V::splat(1.0 - self.b2).mul(g).mul(g));
        s[0] = flush(m);
        s[1] = flush(v);
        let num = V::splat(self.lr).mul(s[0].mul(V::splat(self.c1)));
        let den = s[1].mul(V::splat(self.c2)).sqrt().add(V::splat(self.eps));
        p.sub(num.div(den))
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
    update(Sgd { lr, wd }, p, g, &mut [], &mut []);
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
    update(Momentum { lr, mu, wd }, p, g, v, &mut []);
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
    update(Nesterov { lr, mu, wd }, p, g, v, &mut []);
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
    update(AdaGrad { lr, wd }, p, g, h, &mut []);
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
    update(RmsProp { lr, rho, wd }, p, g, h, &mut []);
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
    let rule = Adam {
        lr,
        b1,
        b2,
        eps,
        c1,
        c2,
        wd,
    };
    update(rule, p, g, m, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush1(x: f32) -> f32 {
        if x.abs() < f32::MIN_POSITIVE {
            0.0
        } else {
            x
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every rule on lanes gives the bits of its scalar definition, tails
    /// included (1 031 elements: no multiple of 8 or 16), and so do the two
    /// halves side by side (40 003 elements, cut inside a vector) at 2
    /// threads.
    #[test]
    fn lane_rules_match_scalar_loops_bitwise() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for n in [1031, 40_003] {
                pool.install(|| lane_rules_match_scalar_loops_bitwise_at(n));
            }
        }
    }

    fn lane_rules_match_scalar_loops_bitwise_at(n: usize) {
        let val = |i: usize, k: f32| ((i as f32) * k).sin() * 2.0;
        let g: Vec<f32> = (0..n).map(|i| val(i, 0.7)).collect();
        let p0: Vec<f32> = (0..n).map(|i| val(i, 1.3)).collect();
        let s0: Vec<f32> = (0..n).map(|i| val(i, 0.3).abs()).collect();
        let (lr, mu, wd, rho) = (0.01f32, 0.9f32, 1e-3f32, 0.99f32);

        let (mut p, mut want) = (p0.clone(), p0.clone());
        sgd(&mut p, &g, lr, wd);
        for (p, &g) in want.iter_mut().zip(&g) {
            *p -= lr * (g + wd * *p);
        }
        assert_eq!(bits(&p), bits(&want), "sgd");

        let (mut p, mut v, mut wp, mut wv) = (p0.clone(), s0.clone(), p0.clone(), s0.clone());
        momentum(&mut p, &g, &mut v, lr, mu, wd);
        for ((p, &g), v) in wp.iter_mut().zip(&g).zip(&mut wv) {
            *v = flush1(mu * *v - lr * (g + wd * *p));
            *p += *v;
        }
        assert_eq!((bits(&p), bits(&v)), (bits(&wp), bits(&wv)), "momentum");

        let (mut p, mut v, mut wp, mut wv) = (p0.clone(), s0.clone(), p0.clone(), s0.clone());
        nesterov(&mut p, &g, &mut v, lr, mu, wd);
        for ((p, &g), v) in wp.iter_mut().zip(&g).zip(&mut wv) {
            let g = g + wd * *p;
            *v = flush1(mu * *v - lr * g);
            *p += mu * mu * *v - (1.0 + mu) * lr * g;
        }
        assert_eq!((bits(&p), bits(&v)), (bits(&wp), bits(&wv)), "nesterov");

        let (mut p, mut h, mut wp, mut wh) = (p0.clone(), s0.clone(), p0.clone(), s0.clone());
        adagrad(&mut p, &g, &mut h, lr, wd);
        for ((p, &g), h) in wp.iter_mut().zip(&g).zip(&mut wh) {
            let g = g + wd * *p;
            *h += g * g;
            *p -= lr * g / (h.sqrt() + 1e-7);
        }
        assert_eq!((bits(&p), bits(&h)), (bits(&wp), bits(&wh)), "adagrad");

        let (mut p, mut h, mut wp, mut wh) = (p0.clone(), s0.clone(), p0.clone(), s0.clone());
        rmsprop(&mut p, &g, &mut h, lr, rho, wd);
        for ((p, &g), h) in wp.iter_mut().zip(&g).zip(&mut wh) {
            let g = g + wd * *p;
            *h = flush1(rho * *h + (1.0 - rho) * g * g);
            *p -= lr * g / (h.sqrt() + 1e-7);
        }
        assert_eq!((bits(&p), bits(&h)), (bits(&wp), bits(&wh)), "rmsprop");

        let (b1, b2, eps, t) = (0.9f32, 0.999f32, 1e-8f32, 3u32);
        let (mut p, mut m, mut v) = (p0.clone(), s0.clone(), s0.clone());
        let (mut wp, mut wm, mut wv) = (p0.clone(), s0.clone(), s0.clone());
        adam(&mut p, &g, &mut m, &mut v, lr, (b1, b2), eps, t, wd);
        let c1 = 1.0 / (1.0 - (b1 as f64).powi(t as i32)) as f32;
        let c2 = 1.0 / (1.0 - (b2 as f64).powi(t as i32)) as f32;
        for (((p, &g), m), v) in wp.iter_mut().zip(&g).zip(&mut wm).zip(&mut wv) {
            let g = g + wd * *p;
            *m = flush1(b1 * *m + (1.0 - b1) * g);
            *v = flush1(b2 * *v + (1.0 - b2) * g * g);
            *p -= lr * (*m * c1) / ((*v * c2).sqrt() + eps);
        }
        assert_eq!(
            (bits(&p), bits(&m), bits(&v)),
            (bits(&wp), bits(&wm), bits(&wv)),
            "adam"
        );
    }

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
