//! Row-wise softmax, log-softmax and the fused softmax-cross-entropy.
//!
//! Every function works on a row-major matrix of rows of `cols` elements,
//! one row at a time, and subtracts the row's own maximum `m` before `exp`,
//! so nothing overflows for any finite input.
//!
//! Accuracy (measured against f64 in `tests/forward_reference.rs`):
//! - `x − m` is rounded in f32, which alone would cost `|x − m|·ε/2` relative
//!   error in `exp(x − m)` (~18 ε for a gap of 37). Its exact residual `r`
//!   (Knuth's TwoSum) corrects it: `exp(x − m) ≈ exp(d)·(1 + r)`.
//! - `s = Σ exp(x_j − m)` is kept as `1 + rest`, where `rest` sums in f64
//!   only the terms below the maximum (each element equal to the maximum adds
//!   exactly 1). Then `ln s = ln_1p(rest)` and `1 − p_top = rest / s` keep
//!   full relative precision for confident rows, where `s − 1` is as small as
//!   1e-30 and would vanish if 1 were added first.
//!
//! Non-finite logits: a NaN or +∞ anywhere in a row makes the whole row's
//! softmax (and its loss) NaN, as does a row of all −∞; a −∞ in an otherwise
//! finite row gets probability 0. The max skips NaN, then the NaN reaches the
//! sum through `exp(NaN − m)` (or `exp(∞ − ∞)`), which poisons the row.

/// The largest non-NaN element of `row` (−∞ if there is none).
#[inline]
pub fn row_max(row: &[f32]) -> f32 {
    row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// What a row's softmax needs besides the exponentials themselves.
#[derive(Clone, Copy, Debug)]
pub struct RowStats {
    /// The row maximum.
    pub max: f32,
    /// `Σ_j exp(x_j − max) − 1`, accumulated without the 1 so that it keeps
    /// its relative precision when tiny; ≥ 0 for a row without NaN.
    pub rest: f64,
}

impl RowStats {
    /// `s = Σ_j exp(x_j − max) = 1 + rest`.
    #[inline]
    pub fn sum(&self) -> f64 {
        1.0 + self.rest
    }

    /// `ln s`, accurate to f64 even when `s` is within 1e-30 of 1.
    #[inline]
    pub fn ln_sum(&self) -> f64 {
        self.rest.ln_1p()
    }

    /// The softmax of the row's largest element, `1/s`, rounded to f32 by
    /// the same division that produces it in [`softmax_rows`] (bit-equal).
    #[inline]
    pub fn p_top(&self) -> f32 {
        1.0 / self.sum() as f32
    }

    /// `1 − p_top = rest / s`, without the cancellation of `1 − p_top`.
    #[inline]
    pub fn one_minus_p_top(&self) -> f32 {
        (self.rest / self.sum()) as f32
    }
}

/// `exp(x − m)` for `m ≥ x`, with the f32 rounding of `x − m` corrected.
///
/// `d = x − m` rounds; TwoSum gives the exact residual `r = (x − m) − d`,
/// and `exp(d + r) = exp(d)·(1 + r + O(r²))` with `|r| ≤ ulp(d)/2`. When
/// `x − m` overflows or is not finite, `r` is NaN and `exp(d)` (0 or NaN)
/// is already the answer.
#[inline]
pub fn exp_shifted(x: f32, m: f32) -> f32 {
    let d = x - m;
    let bb = d - x;
    let r = (x - (d - bb)) + (-m - bb);
    let e = d.exp();
    if r.is_finite() {
        e + e * r
    } else {
        e
    }
}

/// Writes `e_j = exp(x_j − m)` into `e` and returns the row's [`RowStats`].
#[inline]
pub fn exp_shifted_row(x: &[f32], e: &mut [f32]) -> RowStats {
    debug_assert_eq!(x.len(), e.len());
    let max = row_max(x);
    // rest = Σ_j (e_j − [x_j = max]) + (count − 1): the maxima contribute
    // their exact 1s through `count`, never through the f64 sum. A NaN e_j
    // (NaN logit, or ∞ − ∞) reaches `rest` either way.
    let mut rest = 0.0f64;
    let mut count = 0.0f64;
    for (e, &x) in e.iter_mut().zip(x) {
        *e = exp_shifted(x, max);
        let is_max = x == max;
        count += f64::from(u8::from(is_max));
        rest += *e as f64 - f64::from(u8::from(is_max));
    }
    RowStats {
        max,
        rest: rest + (count - 1.0),
    }
}

/// Divides a row of exponentials by their sum, giving probabilities.
#[inline]
fn normalize_row(e: &mut [f32], stats: &RowStats) {
    let s = stats.sum() as f32;
    for y in e.iter_mut() {
        *y /= s;
    }
}

/// Softmax of each row of `x` into `y`.
pub fn softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    debug_assert!(cols > 0 && x.len() == y.len() && x.len() % cols == 0);
    for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let stats = exp_shifted_row(x, y);
        normalize_row(y, &stats);
    }
}

/// Log-softmax of each row of `x` into `y`: `x_j − m − ln Σ exp(x_k − m)`,
/// formed in f64 and rounded once.
pub fn log_softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    debug_assert!(cols > 0 && x.len() == y.len() && x.len() % cols == 0);
    for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let stats = exp_shifted_row(x, y);
        let (m, ln_s) = (stats.max as f64, stats.ln_sum());
        for (y, &x) in y.iter_mut().zip(x) {
            *y = ((x as f64 - m) - ln_s) as f32;
        }
    }
}

/// Per-row values the fused backward needs: `p_top` and `1 − p_top`.
pub type TopProb = (f32, f32);

/// Fused softmax + cross-entropy with class-index labels.
///
/// Writes the softmax of each row of `x` into `y`, each row's
/// (`p_top`, `1 − p_top`) into `top`, and returns the *sum* over rows of
/// `logsumexp(x_i) − x_i[labels[i]]` in f64, formed as
/// `(m − x_label) + ln_1p(s − 1)` so the large equal parts cancel exactly.
pub fn softmax_xent_index_forward(
    x: &[f32],
    cols: usize,
    labels: &[usize],
    y: &mut [f32],
    top: &mut [TopProb],
) -> f64 {
    debug_assert!(cols > 0 && x.len() == y.len() && x.len() == labels.len() * cols);
    debug_assert_eq!(top.len(), labels.len());
    let mut total = 0.0f64;
    let rows = x.chunks_exact(cols).zip(y.chunks_exact_mut(cols));
    for (((x, y), &label), top) in rows.zip(labels).zip(top.iter_mut()) {
        let stats = exp_shifted_row(x, y);
        normalize_row(y, &stats);
        *top = (stats.p_top(), stats.one_minus_p_top());
        total += (stats.max as f64 - x[label] as f64) + stats.ln_sum();
    }
    total
}

/// `y − 1` for a probability `y` of a row with top values `top`: exact
/// `−(1 − p_top)` when `y` is the top probability, where the subtraction
/// would cancel; plain `y − 1` (no cancellation: y ≤ ½) otherwise.
#[inline]
fn y_minus_one(y: f32, top: TopProb) -> f32 {
    if y == top.0 {
        -top.1
    } else {
        y - 1.0
    }
}

/// `dx = scale · (y − onehot(labels))` for each row, the gradient of the
/// index-label cross-entropy times `scale` (= dout / N for the mean loss).
pub fn softmax_xent_index_backward(
    y: &[f32],
    cols: usize,
    labels: &[usize],
    top: &[TopProb],
    scale: f32,
    dx: &mut [f32],
) {
    debug_assert!(cols > 0 && y.len() == dx.len() && y.len() == labels.len() * cols);
    let rows = y.chunks_exact(cols).zip(dx.chunks_exact_mut(cols));
    for (((y, dx), &label), &top) in rows.zip(labels).zip(top) {
        for (dx, &y) in dx.iter_mut().zip(y) {
            *dx = y * scale;
        }
        dx[label] = y_minus_one(y[label], top) * scale;
    }
}

/// Fused softmax + cross-entropy with dense (one-hot or soft) target rows.
///
/// Writes the softmax of `x` into `y`, each row's (`p_top`, `1 − p_top`)
/// into `top`, the sum of each target row into `t_sums`, and returns
/// `Σ_i Σ_j t_ij · (logsumexp(x_i) − x_ij)` in f64. Terms with `t_ij = 0` are
/// skipped, so a −∞ logit where the target is 0 contributes 0, not
/// `0 · ∞ = NaN`.
pub fn softmax_xent_dense_forward(
    x: &[f32],
    cols: usize,
    t: &[f32],
    y: &mut [f32],
    top: &mut [TopProb],
    t_sums: &mut [f32],
) -> f64 {
    debug_assert!(cols > 0 && x.len() == y.len() && x.len() == t.len());
    debug_assert!(x.len() == t_sums.len() * cols && top.len() == t_sums.len());
    let mut total = 0.0f64;
    let rows = x
        .chunks_exact(cols)
        .zip(y.chunks_exact_mut(cols))
        .zip(t.chunks_exact(cols));
    for ((((x, y), t), t_sum), top) in rows.zip(t_sums.iter_mut()).zip(top.iter_mut()) {
        let stats = exp_shifted_row(x, y);
        normalize_row(y, &stats);
        *top = (stats.p_top(), stats.one_minus_p_top());
        let mut sum_t = 0.0f64;
        let mut row_loss = 0.0f64;
        for (&t, &x) in t.iter().zip(x) {
            if t != 0.0 {
                sum_t += t as f64;
                row_loss += t as f64 * (stats.max as f64 - x as f64);
            }
        }
        *t_sum = sum_t as f32;
        total += row_loss + sum_t * stats.ln_sum();
    }
    total
}

/// `dx = scale · (y · T − t)` for each row, with `T = Σ_j t_j`: the exact
/// gradient of `Σ_j t_j · (logsumexp(x) − x_j)`, which is `scale · (y − t)`
/// when the row sums to 1. For the top class it is formed as
/// `(T − t_j) − T·(1 − p_top)`, which does not cancel when `y ≈ t ≈ 1`.
pub fn softmax_xent_dense_backward(
    y: &[f32],
    cols: usize,
    t: &[f32],
    t_sums: &[f32],
    top: &[TopProb],
    scale: f32,
    dx: &mut [f32],
) {
    debug_assert!(cols > 0 && y.len() == dx.len() && y.len() == t.len());
    debug_assert!(y.len() == t_sums.len() * cols && top.len() == t_sums.len());
    let rows = y
        .chunks_exact(cols)
        .zip(t.chunks_exact(cols))
        .zip(dx.chunks_exact_mut(cols));
    for ((((y, t), dx), &t_sum), &top) in rows.zip(t_sums).zip(top) {
        for ((dx, &y), &t) in dx.iter_mut().zip(y).zip(t) {
            let g = if y == top.0 {
                (t_sum - t) - t_sum * top.1
            } else {
                y * t_sum - t
            };
            *dx = g * scale;
        }
    }
}
