//! f64 reference implementations and a finite-difference gradient checker,
//! shared by the integration tests. Everything here is written the plain,
//! obvious way in f64 so that it can serve as the ground truth for the f32
//! kernels.
#![allow(dead_code)]

use densegrad::Tensor;
use proptest::prelude::*;

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn relu64(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

pub fn sigmoid64(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| {
            if v >= 0.0 {
                1.0 / (1.0 + (-v).exp())
            } else {
                v.exp() / (1.0 + v.exp())
            }
        })
        .collect()
}

/// `x·w + b` for row-major x (n×k), w (k×m), b (m).
pub fn affine64(x: &[f64], n: usize, k: usize, w: &[f64], m: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            let mut s = b[j];
            for l in 0..k {
                s += x[i * k + l] * w[l * m + j];
            }
            y[i * m + j] = s;
        }
    }
    y
}

/// `Σ_l |x_il|·|w_lj| + |b_j|`: the scale of the f32 rounding error of y_ij.
pub fn affine_abs64(x: &[f64], n: usize, k: usize, w: &[f64], m: usize, b: &[f64]) -> Vec<f64> {
    let ax: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    let aw: Vec<f64> = w.iter().map(|v| v.abs()).collect();
    let ab: Vec<f64> = b.iter().map(|v| v.abs()).collect();
    affine64(&ax, n, k, &aw, m, &ab)
}

/// `(m, ln Σ_j exp(x_j − m))` of a row, with the log taken as
/// `ln_1p(Σ_{j≠k} exp(x_j − m))` (k the first maximum), so that it stays
/// accurate in f64 when the sum is within 1e-16 of 1. `m + ln(…)` would round
/// at ulp(m) and lose all precision of a tiny loss.
pub fn lse_parts64(row: &[f64]) -> (f64, f64) {
    let (k, m) =
        row.iter()
            .cloned()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bk, bm), (j, v)| {
                if v > bm {
                    (j, v)
                } else {
                    (bk, bm)
                }
            });
    let rest: f64 = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != k)
        .map(|(_, &v)| (v - m).exp())
        .sum();
    (m, rest.ln_1p())
}

pub fn softmax64(x: &[f64], c: usize) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let (m, ln_s) = lse_parts64(row);
            row.iter()
                .map(move |&v| ((v - m) - ln_s).exp())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn log_softmax64(x: &[f64], c: usize) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let (m, ln_s) = lse_parts64(row);
            row.iter().map(move |&v| (v - m) - ln_s).collect::<Vec<_>>()
        })
        .collect()
}

/// Mean over rows of `lse(x_i) − x_i[label_i]`.
pub fn xent_index64(x: &[f64], c: usize, labels: &[usize]) -> f64 {
    let n = labels.len();
    x.chunks(c)
        .zip(labels)
        .map(|(row, &l)| {
            let (m, ln_s) = lse_parts64(row);
            (m - row[l]) + ln_s
        })
        .sum::<f64>()
        / n as f64
}

/// Mean over rows of `Σ_j t_ij (lse(x_i) − x_ij)`.
pub fn xent_dense64(x: &[f64], c: usize, t: &[f64]) -> f64 {
    let n = x.len() / c;
    x.chunks(c)
        .zip(t.chunks(c))
        .map(|(row, t)| {
            let (m, ln_s) = lse_parts64(row);
            row.iter()
                .zip(t)
                .filter(|(_, &t)| t != 0.0)
                .map(|(&x, &t)| t * ((m - x) + ln_s))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n as f64
}

/// Tolerance of a gradient check: `|analytic − numeric| ≤ abs + rel·|numeric|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f64,
    pub rel: f64,
}

/// The tolerance every gradient check in this suite uses. The analytic
/// gradients are computed in f32 over at most a few dozen terms (relative
/// error ~1e-6); the numeric ones by central differences of an f64 function
/// with h = 1e-5 (truncation ~1e-10, rounding ~1e-11). 1e-4 leaves a wide
/// margin for f32 rounding and is still ~1000× smaller than the errors of a
/// wrong gradient (a missing factor, a wrong sign, a transposed product).
pub const GRAD_TOL: Tol = Tol {
    abs: 1e-4,
    rel: 1e-4,
};
pub const FD_STEP: f64 = 1e-5;

/// Compares `analytic` with central differences of `f` at `at`.
/// `Err` names the first element out of tolerance.
pub fn check_grad(
    what: &str,
    analytic: &[f32],
    at: &[f64],
    f: impl Fn(&[f64]) -> f64,
    tol: Tol,
) -> Result<(), String> {
    assert_eq!(analytic.len(), at.len(), "{what}: gradient length");
    let mut p = at.to_vec();
    for i in 0..at.len() {
        p[i] = at[i] + FD_STEP;
        let up = f(&p);
        p[i] = at[i] - FD_STEP;
        let down = f(&p);
        p[i] = at[i];
        let numeric = (up - down) / (2.0 * FD_STEP);
        let a = analytic[i] as f64;
        // Written so that a NaN on either side counts as out of tolerance.
        let within = (a - numeric).abs() <= tol.abs + tol.rel * numeric.abs();
        if !within {
            return Err(format!(
                "{what}[{i}]: analytic {a:e} vs numeric {numeric:e}"
            ));
        }
    }
    Ok(())
}

pub fn tensor(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape, data).expect("test tensor")
}

/// f32 values in [-r, r].
pub fn values(len: usize, r: f32) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-r..=r, len)
}

/// f32 values in [-r, r] at least `gap` away from 0 (for ReLU inputs).
pub fn values_off_zero(len: usize, r: f32, gap: f32) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        (gap..=r, any::<bool>()).prop_map(|(v, neg)| if neg { -v } else { v }),
        len,
    )
}

/// n rows of c target probabilities (positive, each row summing to 1 up to
/// f32 rounding).
pub fn prob_rows(n: usize, c: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(proptest::collection::vec(1e-3f32..1.0, c), n).prop_map(|rows| {
        rows.into_iter()
            .flat_map(|r| {
                let s: f32 = r.iter().sum();
                r.into_iter().map(move |v| v / s)
            })
            .collect()
    })
}

/// Relative error of `got` against `want`, in units of f32 epsilon, with an
/// absolute floor `floor` below which differences count as zero.
pub fn eps_err(got: f32, want: f64, floor: f64) -> f64 {
    let d = (got as f64 - want).abs();
    if d <= floor {
        0.0
    } else {
        d / (want.abs() * f32::EPSILON as f64)
    }
}

/// A proptest config with `default` cases, or `PROPTEST_CASES` cases when
/// that variable is set (`PROPTEST_CASES=20000 cargo test --release` for a
/// deep run; `with_cases` alone would ignore the variable).
pub fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(n)
}

/// 2-D convolution in f64, NCHW, zero padding: y (n, fnum, oh, ow).
/// `xs` = [n, c, h, w], `ws` = [fnum, c, fh, fw]. The direct six-loop sum.
#[allow(clippy::too_many_arguments)]
pub fn conv2d64(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    ws: [usize; 4],
    b: &[f64],
    stride: usize,
    pad: usize,
) -> (Vec<f64>, usize, usize) {
    let [n, c, h, wd] = xs;
    let [fnum, _, fh, fw] = ws;
    let oh = (h + 2 * pad - fh) / stride + 1;
    let ow = (wd + 2 * pad - fw) / stride + 1;
    let mut y = vec![0.0; n * fnum * oh * ow];
    for s in 0..n {
        for f in 0..fnum {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[f];
                    for ch in 0..c {
                        for i in 0..fh {
                            for j in 0..fw {
                                let iy = (oy * stride + i) as isize - pad as isize;
                                let ix = (ox * stride + j) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                acc += x[((s * c + ch) * h + iy as usize) * wd + ix as usize]
                                    * w[((f * c + ch) * fh + i) * fw + j];
                            }
                        }
                    }
                    y[((s * fnum + f) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    (y, oh, ow)
}

/// Max pooling in f64 over the window's input pixels (padding never wins):
/// y (n, c, oh, ow).
pub fn maxpool64(
    x: &[f64],
    xs: [usize; 4],
    ph: usize,
    pw: usize,
    stride: usize,
    pad: usize,
) -> (Vec<f64>, usize, usize) {
    let [n, c, h, w] = xs;
    let oh = (h + 2 * pad - ph) / stride + 1;
    let ow = (w + 2 * pad - pw) / stride + 1;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in x.chunks(h * w) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = f64::NEG_INFINITY;
                for i in 0..ph {
                    for j in 0..pw {
                        let iy = (oy * stride + i) as isize - pad as isize;
                        let ix = (ox * stride + j) as isize - pad as isize;
                        if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                            best = best.max(plane[iy as usize * w + ix as usize]);
                        }
                    }
                }
                y.push(best);
            }
        }
    }
    (y, oh, ow)
}

/// `len` fixed values in [-1, 1) from `seed` (xorshift), for tests at sizes
/// too large for proptest to shrink usefully.
pub fn fixed_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
