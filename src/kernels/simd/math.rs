//! Vector math written once over [`F32x8`]: `exp`, the shifted `exp` of
//! softmax, and `sigmoid`.
//!
//! `exp` is Cody–Waite range reduction `x = n·ln2 + r` (ln2 split in a high
//! part with 16 significant bits, so `n·ln2_hi` is exact even without FMA),
//! a degree-5 minimax polynomial for `(e^r − 1 − r)/r²` on |r| ≤ ln2/2
//! (Cephes' `expf`), and `2^n` applied in two exact steps so that results in
//! the subnormal range round once instead of flushing. Measured error
//! (`tests/simd_accuracy.rs`, an exhaustive sweep) is reported in the README.

use super::F32x8;

/// Above this, `e^x` overflows f32.
pub const EXP_HI: f32 = 88.722_83;
/// Below this, `e^x` rounds to 0 even as a subnormal.
pub const EXP_LO: f32 = -103.972_08;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75; // 0x3f317200: 16 significant bits
const LN2_LO: f32 = 1.428_606_8e-6; // ln2 − LN2_HI
const P5: f32 = 1.987_569_1e-4;
const P4: f32 = 1.398_199_9e-3;
const P3: f32 = 8.333_452e-3;
const P2: f32 = 4.166_579_6e-2;
const P1: f32 = 1.666_666_5e-1;
const P0: f32 = 0.5; // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32

/// `e^x` lane-wise; +∞ above [`EXP_HI`], 0 below [`EXP_LO`], NaN for NaN.
#[inline(always)]
pub fn exp<V: F32x8>(x: V) -> V {
    let lo = V::splat(EXP_LO);
    let hi = V::splat(EXP_HI);
    // Clamp so the integer part stays in range; out-of-range lanes are
    // replaced at the end. NaN lanes pass through the clamp unchanged.
    let xc = V::select(x.lt(lo), lo, x);
    let xc = V::select(hi.lt(xc), hi, xc);
    let n = xc.mul(V::splat(LOG2E)).round();
    let r = n.mul_add(V::splat(-LN2_HI), xc);
    let r = n.mul_add(V::splat(-LN2_LO), r);
    let mut p = V::splat(P5);
    p = p.mul_add(r, V::splat(P4));
    p = p.mul_add(r, V::splat(P3));
    p = p.mul_add(r, V::splat(P2));
    p = p.mul_add(r, V::splat(P1));
    p = p.mul_add(r, V::splat(P0));
    let y = p.mul_add(r.mul(r), r).add(V::splat(1.0));
    // 2^n = 2^n1 · 2^n2 with both halves in [−75, 64]: each product is exact
    // until the last, which rounds once (into the subnormals if need be).
    let n1 = n.mul(V::splat(0.5)).round();
    let n2 = n.sub(n1);
    let y = y.mul(n1.pow2i()).mul(n2.pow2i());
    let y = V::select(hi.lt(x), V::splat(f32::INFINITY), y);
    let y = V::select(x.lt(lo), V::splat(0.0), y);
    V::select(x.eq(x), y, x)
}

/// `e^(x − m)` with the f32 rounding of `x − m` corrected by its exact
/// TwoSum residual `r`: `e^(d + r) ≈ e^d·(1 + r)`. Lanes where `x − m`
/// overflows or is not finite have a non-finite `r` and keep `e^d`.
#[inline(always)]
pub fn exp_shifted<V: F32x8>(x: V, m: V) -> V {
    let d = x.sub(m);
    let bb = d.sub(x);
    let r = x.sub(d.sub(bb)).add(V::splat(0.0).sub(m).sub(bb));
    let e = exp(d);
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
#[inline(always)]
pub fn sigmoid<V: F32x8>(x: V) -> V {
    let one = V::splat(1.0);
    let z = exp(V::splat(0.0).sub(x.abs()));
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
