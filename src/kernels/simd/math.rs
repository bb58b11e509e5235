//! Vector math written once over [`Lanes`]: `exp`, the shifted `exp` of
//! softmax, and `sigmoid`.
//!
//! `exp` is Cody–Waite range reduction `x = n·ln2 + r` (ln2 split in a high
//! part with 16 significant bits, so `n·ln2_hi` is exact even without FMA),
//! a degree-5 minimax polynomial for `(e^r − 1 − r)/r²` on |r| ≤ ln2/2
//! (Cephes' `expf`), and `2^n` applied in two exact steps so that results in
//! the subnormal range round once instead of flushing. Measured error
//! (`tests/simd_accuracy.rs`, an exhaustive sweep) is reported in the README.
//!
//! ```
//! use densegrad::kernels::simd::{math, Lanes};
//! let y = math::exp(wide::f32x8::splat(0.0)).to_buf();
//! assert_eq!(y[..8], [1.0; 8]);
//! ```

use super::Lanes;

/// The largest f32 whose `e^x` is finite.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// assert!((math::EXP_HI as f64).exp() <= f32::MAX as f64);
/// ```
pub const EXP_HI: f32 = 88.722_83;
/// Below this, `e^x` rounds to 0 even as a subnormal.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// assert!(((math::EXP_LO as f64).exp() as f32) > 0.0);
/// ```
pub const EXP_LO: f32 = -103.972_08;

/// Inputs are clamped to [CLAMP_LO, CLAMP_HI] before the reduction; the
/// bounds are chosen so that the final scaling by 2^n itself overflows to
/// +∞ (n = 128, p ≥ 1) or underflows to 0 (n = −150, p < 1) for every input
/// beyond them, with no fix-up afterwards.
const CLAMP_HI: f32 = 89.0;
const CLAMP_LO: f32 = -104.0;
/// 1.5·2^23: adding it to |v| < 2^22 rounds v to an integer (the FPU's
/// round-to-nearest does the work; cheaper than a round instruction, which
/// SSE2 does not even have).
const ROUND_MAGIC: f32 = 12_582_912.0;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75; // 0x3f317200: 16 significant bits
const LN2_LO: f32 = 1.428_606_8e-6; // ln2 − LN2_HI
const P5: f32 = 1.987_569_1e-4;
const P4: f32 = 1.398_199_9e-3;
const P3: f32 = 8.333_452e-3;
const P2: f32 = 4.166_579_6e-2;
const P1: f32 = 1.666_666_5e-1;
const P0: f32 = 0.5; // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32

/// Cody–Waite reduction and the polynomial: for a clamped `xc`, the integer
/// `n = round(xc·log2 e)` and `p ≈ e^(xc − n·ln 2)` in [0.7, 1.42], so that
/// `e^xc = p·2^n`.
#[inline(always)]
fn reduce_and_poly<V: Lanes>(xc: V) -> (V, V) {
    let magic = V::splat(ROUND_MAGIC);
    let n = xc.mul_add(V::splat(LOG2E), magic).sub(magic);
    let r = n.mul_add(V::splat(-LN2_HI), xc);
    let r = n.mul_add(V::splat(-LN2_LO), r);
    let mut p = V::splat(P5);
    p = p.mul_add(r, V::splat(P4));
    p = p.mul_add(r, V::splat(P3));
    p = p.mul_add(r, V::splat(P2));
    p = p.mul_add(r, V::splat(P1));
    p = p.mul_add(r, V::splat(P0));
    (n, p.mul_add(r.mul(r), r).add(V::splat(1.0)))
}

/// `e^x` lane-wise; +∞ above [`EXP_HI`], 0 below [`EXP_LO`], NaN for NaN.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// let y = math::exp(wide::f32x8::splat(1.0)).to_buf();
/// assert!((y[0] - std::f32::consts::E).abs() < 1e-6);
/// ```
#[inline(always)]
pub fn exp<V: Lanes>(x: V) -> V {
    let magic = V::splat(ROUND_MAGIC);
    // NaN lanes are passed as `b`, so they survive the clamp and every
    // operation after it.
    let xc = V::splat(CLAMP_LO).max_or_b(x);
    let xc = V::splat(CLAMP_HI).min_or_b(xc);
    let (n, y) = reduce_and_poly(xc);
    // 2^n = 2^n1 · 2^n2 with both halves in [−75, 64]: the first product is
    // exact and the second rounds once (into the subnormals if need be).
    let n1 = n.mul_add(V::splat(0.5), magic).sub(magic);
    let n2 = n.sub(n1);
    y.mul(n1.pow2i()).mul(n2.pow2i())
}

/// `e^x` lane-wise for `x ≤ 0` (or NaN): what softmax (`x − max`) and
/// sigmoid (`−|x|`) need. Same polynomial and accuracy as [`exp`], but with
/// n ∈ [−150, 0] one scaling by `2^(n + 64)` (always normal) and one by the
/// constant `2^−64` replace the two data-dependent powers, clamps and splits.
/// A positive `x` gives a wrong result: callers guarantee `x ≤ 0`.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// let y = math::exp_nonpos(wide::f32x8::splat(-1.0)).to_buf();
/// assert!((y[0] - (-1.0f32).exp()).abs() < 1e-7);
/// ```
#[inline(always)]
pub fn exp_nonpos<V: Lanes>(x: V) -> V {
    let (n, y) = reduce_and_poly(V::splat(CLAMP_LO).max_or_b(x));
    // n ∈ [−150, 0] and y ∈ [1/2, 2): within `mul_pow2`'s contract.
    y.mul_pow2(n)
}

/// `e^(x − m)` with the f32 rounding of `x − m` corrected by its exact
/// TwoSum residual `r`: `e^(d + r) ≈ e^d·(1 + r)`. Lanes where `x − m`
/// overflows or is not finite have a non-finite `r` and keep `e^d`.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// let y = math::exp_shifted(wide::f32x8::splat(3.0), wide::f32x8::splat(3.0)).to_buf();
/// assert_eq!(y[0], 1.0);
/// ```
#[inline(always)]
pub fn exp_shifted<V: Lanes>(x: V, m: V) -> V {
    let d = x.sub(m);
    let bb = d.sub(x);
    let r = x.sub(d.sub(bb)).add(V::splat(0.0).sub(m).sub(bb));
    let e = exp_nonpos(d);
    let finite = r.abs().lt(V::splat(f32::INFINITY));
    V::select(finite, e.mul_add(r, e), e)
}

/// `1 / (1 + e^(−x))` lane-wise, as `1/(1 + z)` for x ≥ 0 and `z/(1 + z)`
/// for x < 0 with `z = e^(−|x|) ≤ 1`: no overflow anywhere, true division.
///
/// The rounding of the denominator `d = 1 + z` is undone: its exact error
/// `e = (1 − d) + z` (Fast2Sum, since |z| ≤ 1) gives
/// `num/(d + e) ≈ q − q·e/d` with `q = num/d`, and `1/d` is `q` itself for
/// x ≥ 0 and `1 − q` for x < 0 (only needed to a few bits: `e/d` is ~1e-8).
/// That keeps the result within the exp error plus one division rounding.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// let y = math::sigmoid(wide::f32x8::splat(0.0)).to_buf();
/// assert_eq!(y[0], 0.5);
/// ```
#[inline(always)]
pub fn sigmoid<V: Lanes>(x: V) -> V {
    let one = V::splat(1.0);
    let z = exp_nonpos(V::splat(0.0).sub(x.abs()));
    let nonneg = V::splat(0.0).le(x);
    let num = V::select(nonneg, one, z);
    let d = one.add(z);
    let e = one.sub(d).add(z);
    let q = num.div(d);
    let inv_d = V::select(nonneg, q, one.sub(q));
    let corr = e.mul(inv_d);
    // q − q·corr. NaN lanes stay NaN; where z = 0 or e = 0 this is q.
    V::splat(0.0).sub(q).mul_add(corr, q)
}

/// `tanh(x)` lane-wise: an odd polynomial (Cephes' `tanhf`) for
/// |x| < 0.625, and `±(1 − z)/(1 + z)` with `z = e^(−2|x|) ≤ 0.29` beyond,
/// where neither the subtraction nor the division loses accuracy and nothing
/// overflows (tanh(±1e30) = ±1). NaN gives NaN; ±0 keeps its sign.
///
/// ```
/// # use densegrad::kernels::simd::{math, Lanes};
/// let y = math::tanh(wide::f32x8::splat(0.5)).to_buf();
/// assert!((y[0] - 0.5f32.tanh()).abs() <= f32::EPSILON * 0.5);
/// assert_eq!(math::tanh(wide::f32x8::splat(-1e30)).to_buf()[0], -1.0);
/// ```
#[inline(always)]
pub fn tanh<V: Lanes>(x: V) -> V {
    let one = V::splat(1.0);
    let t = x.abs();
    let z2 = x.mul(x);
    let p = V::splat(-5.704_988_7e-3)
        .mul_add(z2, V::splat(2.063_909e-2))
        .mul_add(z2, V::splat(-5.373_971_6e-2))
        .mul_add(z2, V::splat(1.333_144_2e-1))
        .mul_add(z2, V::splat(-3.333_328e-1));
    let small = p.mul(z2).mul_add(x, x);
    let z = exp_nonpos(V::splat(-2.0).mul(t));
    let big = one.sub(z).div(one.add(z));
    let big = V::select(x.lt(V::splat(0.0)), V::splat(0.0).sub(big), big);
    V::select(t.lt(V::splat(0.625)), small, big)
}
