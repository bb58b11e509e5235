//! Row-wise softmax, log-softmax and the fused softmax-cross-entropy.
//!
//! Every function works on a row-major matrix of rows of `cols` elements and
//! subtracts each row's maximum `m` before `exp`, so nothing overflows for any
//! finite input. Rows are vectorized through [`simd`](super::simd) and, for
//! large matrices, blocks of rows go to different threads; row losses
//! are summed afterwards in row order, so the result does not depend on the
//! number of threads.
//!
//! Accuracy (measured against f64 in `tests/forward_reference.rs` and
//! `tests/simd_accuracy.rs`):
//! - `x − m` is rounded in f32, which alone would cost `|x − m|·ε/2` relative
//!   error in `exp(x − m)` (~18 ε for a gap of 37). Its exact residual `r`
//!   (Knuth's TwoSum) corrects it: `exp(x − m) ≈ exp(d)·(1 + r)`.
//! - `s = Σ exp(x_j − m)` is kept as `1 + rest`, where `rest` sums only the
//!   terms below the maximum (each element equal to the maximum adds exactly
//!   1 through a count), with a compensated (Kahan) sum per lane. Then
//!   `ln s = ln_1p(rest)` and `1 − p_top = rest / s` keep full relative
//!   precision for confident rows, where `s − 1` is as small as 1e-30 and
//!   would vanish if 1 were added first; and wide rows (C = 32 000) keep a
//!   sum accurate to a few ulp.
//!
//! Non-finite logits: a NaN or +∞ anywhere in a row makes the whole row's
//! softmax (and its loss) NaN, as does a row of all −∞; a −∞ in an otherwise
//! finite row gets probability 0. The max skips NaN, then the NaN reaches the
//! sum through `exp(NaN − m)` (or `exp(∞ − ∞)`), which poisons the row.
//!
//! ```
//! use densegrad::kernels::softmax::{softmax_rows, RowStats};
//! let (mut y, mut st) = ([0.0; 3], [RowStats::default()]);
//! softmax_rows(&[1.0, 8.0, 3.0], 3, &mut y, &mut st);
//! assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! ```

use super::parallel::{for_row_blocks, for_row_blocks2};
use super::simd::{dispatch, math, Isa, Lanes, SimdKernel, MAX_LANES};

/// What a row's softmax needs besides the exponentials themselves.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let (mut y, mut st) = ([0.0; 2], [RowStats::default()]);
/// softmax_rows(&[0.0, 0.0], 2, &mut y, &mut st);
/// assert_eq!((st[0].max, st[0].rest), (0.0, 1.0));
/// ```
///
/// `RowStats::default()` is "not computed yet": both fields NaN, so every
/// value derived from stats that were never filled in by [`softmax_rows`]
/// is NaN, never a plausible number.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// assert!(RowStats::default().ln_sum().is_nan());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowStats {
    /// The row maximum (NaN skipped; −∞ if there is no other value).
    pub max: f32,
    /// `Σ_j exp(x_j − max) − 1`, accumulated without the 1 so that it keeps
    /// its relative precision when tiny; ≥ 0 for a row without NaN.
    pub rest: f64,
}

impl Default for RowStats {
    fn default() -> Self {
        RowStats {
            max: f32::NAN,
            rest: f64::NAN,
        }
    }
}

impl RowStats {
    /// `s = Σ_j exp(x_j − max) = 1 + rest`.
    ///
    /// ```
    /// # use densegrad::kernels::softmax::*;
    /// assert_eq!(RowStats { max: 0.0, rest: 1.0 }.sum(), 2.0);
    /// ```
    #[inline]
    pub fn sum(&self) -> f64 {
        1.0 + self.rest
    }

    /// `ln s`, accurate to f64 even when `s` is within 1e-30 of 1.
    ///
    /// ```
    /// # use densegrad::kernels::softmax::*;
    /// assert_eq!(RowStats { max: 0.0, rest: 1e-30 }.ln_sum(), 1e-30); // ln(1 + 1e-30), not 0
    /// ```
    #[inline]
    pub fn ln_sum(&self) -> f64 {
        self.rest.ln_1p()
    }

    /// `1/s` in f32: the factor that turns exponentials into probabilities,
    /// and so, bit for bit, the probability of the row's maximum.
    ///
    /// ```
    /// # use densegrad::kernels::softmax::*;
    /// assert_eq!(RowStats { max: 0.0, rest: 1.0 }.p_top(), 0.5);
    /// ```
    #[inline]
    pub fn p_top(&self) -> f32 {
        (1.0 / self.sum()) as f32
    }

    /// `1 − p_top = rest / s`, without the cancellation of `1 − p_top`.
    ///
    /// ```
    /// # use densegrad::kernels::softmax::*;
    /// assert_eq!(RowStats { max: 0.0, rest: 1e-20 }.one_minus_p_top(), 1e-20);
    /// ```
    #[inline]
    pub fn one_minus_p_top(&self) -> f32 {
        (self.rest / self.sum()) as f32
    }
}

/// A running maximum over the lanes of a row, NaN skipped.
struct RowMax<V>(V);

impl<V: Lanes> RowMax<V> {
    #[inline(always)]
    fn new() -> Self {
        RowMax(V::splat(f32::NEG_INFINITY))
    }

    /// `acc < v` is false for a NaN v, which is so skipped; −∞ pads never
    /// win.
    #[inline(always)]
    fn push(&mut self, v: V) {
        self.0 = V::select(self.0.lt(v), v, self.0);
    }

    /// The largest lane (−∞ if none).
    #[inline(always)]
    fn max(self) -> f32 {
        let mut m = f32::NEG_INFINITY;
        for v in self.0.to_buf()[..V::N].iter().copied() {
            if m < v {
                m = v;
            }
        }
        m
    }
}

/// The largest non-NaN element of `x` (−∞ if none).
#[inline(always)]
fn row_max<V: Lanes>(x: &[f32]) -> f32 {
    let mut acc = RowMax::<V>::new();
    let mut chunks = x.chunks_exact(V::N);
    for c in &mut chunks {
        acc.push(V::load(c));
    }
    if !chunks.remainder().is_empty() {
        acc.push(V::load_partial(chunks.remainder(), f32::NEG_INFINITY));
    }
    acc.max()
}

/// Per-lane compensated (Kahan) sum of `e − [x = max]`, and a count of
/// the lanes equal to the max.
struct RestSum<V> {
    sum: V,
    comp: V,
    count: V,
}

impl<V: Lanes> RestSum<V> {
    #[inline(always)]
    fn new() -> Self {
        let zero = V::splat(0.0);
        RestSum {
            sum: zero,
            comp: zero,
            count: zero,
        }
    }

    /// `exp(x − m)` for the lanes of `x`, added to the sums.
    #[inline(always)]
    fn push(&mut self, x: V, m: V) -> V {
        let ev = math::exp_shifted(x, m);
        let is_max = V::select(x.eq(m), V::splat(1.0), V::splat(0.0));
        let term = ev.sub(is_max).sub(self.comp);
        let t = self.sum.add(term);
        self.comp = t.sub(self.sum).sub(term);
        self.sum = t;
        self.count = self.count.add(is_max);
        ev
    }

    /// `Σ e − 1`: the lanes' sums minus their compensations, plus the
    /// maxima's count minus one, in f64.
    #[inline(always)]
    fn rest(self) -> f64 {
        let (sum, comp, count) = (self.sum.to_buf(), self.comp.to_buf(), self.count.to_buf());
        let mut rest = 0.0f64;
        let mut n = 0.0f64;
        for i in 0..V::N {
            rest += sum[i] as f64 - comp[i] as f64;
            n += count[i] as f64;
        }
        rest + (n - 1.0)
    }
}

/// Writes `exp(x_j − max)` of one row into `e` and returns its `rest` (see
/// [`RowStats`]), in the same loop as the maximum of the next row `next`
/// (returned second; −∞ without one) and the scaling of the previous row's
/// exponentials `prev` by its `1/s`. Passes of their own would read a wide
/// row three times, and its maximum pass would wait only on memory while
/// its exponentials wait only on arithmetic; in one loop they overlap (W3
/// 32×32000 forward at one thread: 790 → 570 µs, BENCHMARKS.md). Each row
/// sees the operations of [`row_max`] and [`scale_row`] in their order, so
/// the bits are those of the separate passes.
#[inline(always)]
fn exp_row_with_neighbours<V: Lanes>(
    x: &[f32],
    max: f32,
    e: &mut [f32],
    next: Option<&[f32]>,
    prev: Option<(&mut [f32], f32)>,
) -> (f64, f32) {
    let m = V::splat(max);
    let mut acc = RestSum::<V>::new();
    let mut next_max = RowMax::<V>::new();
    let full = x.len() / V::N * V::N;
    let (next, next_rest) = next.map_or((&[][..], &[][..]), |n| n.split_at(full));
    let (prev, prev_rest, s) = match prev {
        Some((p, s)) => {
            let (p, r) = p.split_at_mut(full);
            (p, r, s)
        }
        None => (&mut [][..], &mut [][..], 1.0),
    };
    let sv = V::splat(s);
    let (x_full, xr) = x.split_at(full);
    let (e_full, er) = e.split_at_mut(full);
    let mut nexts = next.chunks_exact(V::N);
    let mut prevs = prev.chunks_exact_mut(V::N);
    for (x, e) in x_full.chunks_exact(V::N).zip(e_full.chunks_exact_mut(V::N)) {
        if let Some(n) = nexts.next() {
            next_max.push(V::load(n));
        }
        acc.push(V::load(x), m).store(e);
        if let Some(p) = prevs.next() {
            V::load(p).mul(sv).store(p);
        }
    }
    let mut pads = 0;
    if !xr.is_empty() {
        // Pads equal to the maximum add exp(0) − 1 = 0 to the sum and one
        // each to the count of maxima, taken back below. (A −∞ pad would
        // underflow: a microcode assist of ~150 cycles per lane on x86.)
        acc.push(V::load_partial(xr, max), m).store_partial(er);
        pads = V::N - xr.len();
    }
    if !next_rest.is_empty() {
        next_max.push(V::load_partial(next_rest, f32::NEG_INFINITY));
    }
    if !prev_rest.is_empty() {
        V::load_partial(prev_rest, 0.0)
            .mul(sv)
            .store_partial(prev_rest);
    }
    (acc.rest() - pads as f64, next_max.max())
}

/// `y *= s` for a row.
#[inline(always)]
fn scale_row<V: Lanes>(y: &mut [f32], s: f32) {
    let sv = V::splat(s);
    let mut ys = y.chunks_exact_mut(V::N);
    for y in &mut ys {
        V::load(y).mul(sv).store(y);
    }
    let y = ys.into_remainder();
    if !y.is_empty() {
        V::load_partial(y, 0.0).mul(sv).store_partial(y);
    }
}

/// Rows at least this wide run in one pass with their neighbours
/// ([`exp_row_with_neighbours`]); narrower ones, already in L1, took 1–3%
/// longer that way (1000 rows of 17, 32 and 64 columns), and run in three.
const ONE_PASS_MIN_COLS: usize = 128;

/// Softmax of a block of rows: probabilities into `y`, stats per row.
struct SoftmaxBlock<'a> {
    x: &'a [f32],
    cols: usize,
    y: &'a mut [f32],
    stats: &'a mut [RowStats],
}

impl SimdKernel for SoftmaxBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let rows = self
            .x
            .chunks_exact(self.cols)
            .zip(self.y.chunks_exact_mut(self.cols));
        if self.cols < V::N {
            return narrow_rows::<V>(self.x, self.cols, self.y, self.stats);
        }
        let cols = self.cols;
        if cols < ONE_PASS_MIN_COLS {
            for ((x, y), st) in rows.zip(self.stats.iter_mut()) {
                let max = row_max::<V>(x);
                let (rest, _) = exp_row_with_neighbours::<V>(x, max, y, None, None);
                *st = RowStats { max, rest };
                scale_row::<V>(y, st.p_top());
            }
            return;
        }
        // Row i's exponentials, row i + 1's maximum and row i − 1's scaling
        // in one pass over the three rows.
        let mut next_max = self.x.get(..cols).map_or(f32::NEG_INFINITY, row_max::<V>);
        let mut prev: Option<(&mut [f32], f32)> = None;
        let nexts = self
            .x
            .chunks_exact(cols)
            .skip(1)
            .map(Some)
            .chain(std::iter::repeat(None));
        for (((x, y), st), next) in rows.zip(self.stats.iter_mut()).zip(nexts) {
            let max = next_max;
            let rest;
            (rest, next_max) = exp_row_with_neighbours::<V>(x, max, y, next, prev.take());
            *st = RowStats { max, rest };
            prev = Some((y, st.p_top()));
        }
        if let Some((y, s)) = prev {
            scale_row::<V>(y, s);
        }
    }
}

/// Rows per group of the narrow path: enough independent rows for the
/// exponentials' dependency chains to overlap.
const NARROW_GROUP: usize = 8;

/// The softmax of rows narrower than one vector (C = 10 on 16 lanes), a
/// group of rows at a time, each phase over every row of the group so that
/// the rows' long dependency chains (the maximum, the exponential, the sum)
/// run side by side: one partial vector of exponentials per row, the
/// maximum and `rest` by scalar passes over the C values instead of
/// reductions over all N lanes. `rest` is the f64 sum of the sub-maximal
/// exponentials plus the extra maxima (the wide path's compensated sum,
/// a little more exact).
#[inline(always)]
fn narrow_rows<V: Lanes>(x: &[f32], cols: usize, y: &mut [f32], stats: &mut [RowStats]) {
    let rows = x
        .chunks(NARROW_GROUP * cols)
        .zip(y.chunks_mut(NARROW_GROUP * cols))
        .zip(stats.chunks_mut(NARROW_GROUP));
    for ((x, y), stats) in rows {
        let mut e = [[0.0f32; MAX_LANES]; NARROW_GROUP];
        for ((x, e), st) in x.chunks_exact(cols).zip(&mut e).zip(stats.iter_mut()) {
            // `f32::max` skips NaN (IEEE maxNum) and has no branch.
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            // Padding lanes hold the maximum: exp(0) = 1, ignored below. A
            // −∞ pad would underflow, and every underflowing lane costs a
            // microcode assist (~150 cycles) on x86.
            let v = V::load_partial(x, max);
            *e = math::exp_shifted(v, V::splat(max)).to_buf();
            st.max = max;
        }
        for ((x, e), st) in x.chunks_exact(cols).zip(&e).zip(stats.iter_mut()) {
            // A maximum's exponential is exactly 1 (NaN for a +∞ maximum):
            // it adds e − 1 = 0 and is counted apart, so that tiny terms are
            // not added to (and lost in) a 1, as in the wide path.
            let (mut rest, mut extra_maxima) = (0.0f64, -1.0f64);
            for (&e, &v) in e.iter().zip(x) {
                let is_max = f64::from(u8::from(v == st.max));
                extra_maxima += is_max;
                rest += e as f64 - is_max;
            }
            st.rest = rest + extra_maxima;
        }
        for ((y, e), st) in y.chunks_exact_mut(cols).zip(&e).zip(stats.iter()) {
            V::load(e).mul(V::splat(st.p_top())).store_partial(y);
        }
    }
}

/// Softmax of each row of `x` into `y`, and each row's [`RowStats`] into
/// `stats` (one per row), on instruction set `isa`.
///
/// # Panics
/// If the slices do not describe `stats.len()` rows of `cols > 0` elements.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// # use densegrad::kernels::simd::Isa;
/// let (mut y, mut st) = ([0.0; 4], [RowStats::default(); 2]);
/// softmax_rows_with(Isa::portable(), &[1.0, 1.0, 1e30, 0.0], 2, &mut y, &mut st);
/// assert_eq!(y, [0.5, 0.5, 1.0, 0.0]);
/// ```
pub fn softmax_rows_with(isa: Isa, x: &[f32], cols: usize, y: &mut [f32], stats: &mut [RowStats]) {
    let rows = stats.len();
    assert!(
        cols > 0 && Some(x.len()) == rows.checked_mul(cols) && x.len() == y.len(),
        "softmax_rows: {} and {} elements for {rows} rows of {cols}",
        x.len(),
        y.len()
    );
    for_row_blocks2(rows, cols, y, stats, |r, y, stats| {
        let x = &x[r.start * cols..r.end * cols];
        dispatch(isa, SoftmaxBlock { x, cols, y, stats })
    });
}

/// Softmax of each row of `x` into `y`, with a stats buffer of `stats.len()`
/// rows, on [`Isa::best`]. See [`softmax_rows_with`].
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let (mut y, mut st) = ([0.0; 2], [RowStats::default()]);
/// softmax_rows(&[3.0, 3.0], 2, &mut y, &mut st);
/// assert_eq!(y, [0.5, 0.5]);
/// ```
///
/// # Panics
/// Unless `cols > 0`, `y.len() == x.len()` and `x.len() == stats.len() · cols`.
pub fn softmax_rows(x: &[f32], cols: usize, y: &mut [f32], stats: &mut [RowStats]) {
    softmax_rows_with(Isa::best(), x, cols, y, stats)
}

/// Log-softmax of each row from its stats: `y_j = (x_j − m) − ln s`, formed
/// in f64 and rounded once. `stats` must come from [`softmax_rows`] on `x`;
/// stats never computed (`RowStats::default()`) give NaN rows.
/// [`log_softmax_rows`] does both steps.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let (x, mut y, mut st) = ([0.0, -200.0], [0.0; 2], [RowStats::default()]);
/// log_softmax_from_stats(&x, 2, &st, &mut y);
/// assert!(y.iter().all(|v| v.is_nan())); // not computed yet
/// softmax_rows(&x, 2, &mut y, &mut st);
/// log_softmax_from_stats(&x, 2, &st, &mut y);
/// assert_eq!(y, [0.0, -200.0]);
/// ```
///
/// # Panics
/// Unless `cols > 0`, `y.len() == x.len()` and `x.len() == stats.len() · cols`.
pub fn log_softmax_from_stats(x: &[f32], cols: usize, stats: &[RowStats], y: &mut [f32]) {
    assert!(cols > 0 && x.len() == y.len() && Some(x.len()) == stats.len().checked_mul(cols));
    for ((x, y), st) in x
        .chunks_exact(cols)
        .zip(y.chunks_exact_mut(cols))
        .zip(stats)
    {
        let (m, ln_s) = (st.max as f64, st.ln_sum());
        for (y, &x) in y.iter_mut().zip(x) {
            *y = ((x as f64 - m) - ln_s) as f32;
        }
    }
}

/// Row-wise log-softmax of `x` (rows of `cols`) into `y`, in one call:
/// [`softmax_rows`] for the stats (the probabilities are written to `y`
/// first, then replaced), then [`log_softmax_from_stats`]. Within
/// `ε·|y| + 2 ε` of the exact value.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let mut y = [0.0; 4];
/// log_softmax_rows(&[0.0, 0.0, 1.0, 1.0], 2, &mut y);
/// assert!(y.iter().all(|v| (v + std::f32::consts::LN_2).abs() < 1e-7));
/// ```
///
/// # Panics
/// Unless `cols > 0` and `y.len() == x.len()`, a multiple of `cols`, with at
/// most 4096 rows per call (the stats live on the stack; call per block of
/// rows for more).
pub fn log_softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    const BLOCK: usize = 4096;
    assert!(cols > 0 && x.len() == y.len() && x.len().is_multiple_of(cols));
    let rows = x.len() / cols;
    assert!(
        rows <= BLOCK,
        "log_softmax_rows: {rows} rows, at most {BLOCK} per call"
    );
    let mut stats = [RowStats::default(); BLOCK];
    let st = &mut stats[..rows];
    softmax_rows(x, cols, y, st);
    log_softmax_from_stats(x, cols, st, y);
}

/// The summed cross-entropy `Σ_i logsumexp(x_i) − x_i[labels[i]]` of rows of
/// `cols` logits against class indices, in f64, in one call (no stats or
/// probability buffers to manage): each row's loss is formed as
/// `(m − x_label) + ln_1p(rest)`, exact to a few ulp.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let loss = cross_entropy_rows(&[0.0, 0.0, 5.0, 0.0], 2, &[1, 0]);
/// let want = std::f64::consts::LN_2 + (1.0 + (-5.0f64).exp()).ln();
/// assert!((loss - want).abs() < 1e-7);
/// ```
///
/// # Panics
/// Unless `cols > 0`, `x.len() == labels.len() · cols`, and every label is
/// below `cols`.
pub fn cross_entropy_rows(x: &[f32], cols: usize, labels: &[usize]) -> f64 {
    assert!(cols > 0 && Some(x.len()) == labels.len().checked_mul(cols));
    let mut total = 0.0f64;
    for (row, &label) in x.chunks_exact(cols).zip(labels) {
        assert!(
            label < cols,
            "cross_entropy_rows: label {label} ≥ {cols} classes"
        );
        let m = row
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        // The row's stats without a probability buffer: the sum of the
        // sub-maximal exponentials (the first maximum counted as the 1).
        let top = row.iter().position(|&v| v == m);
        let rest: f64 = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| Some(j) != top)
            .map(|(_, &v)| (v as f64 - m as f64).exp())
            .sum();
        let nan = row.iter().any(|v| v.is_nan());
        let st = RowStats {
            max: m,
            rest: if nan || top.is_none() { f64::NAN } else { rest },
        };
        total += index_row_loss(row[label], &st);
    }
    total
}

/// The loss of one row with class-index label: `(m − x_label) + ln s`, so
/// the large, equal parts of `logsumexp` and `x_label` cancel exactly.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let (mut y, mut st) = ([0.0; 2], [RowStats::default()]);
/// softmax_rows(&[0.0, 0.0], 2, &mut y, &mut st);
/// assert_eq!(index_row_loss(0.0, &st[0]), std::f64::consts::LN_2);
/// ```
#[inline]
pub fn index_row_loss(x_label: f32, st: &RowStats) -> f64 {
    (st.max as f64 - x_label as f64) + st.ln_sum()
}

/// The loss of one row with dense targets, `Σ_j t_j·((m − x_j) + ln s)`, in
/// f64, and the row's target sum `T`. Terms with `t_j = 0` are skipped, so a
/// −∞ logit where the target is 0 contributes 0, not `0·∞ = NaN`.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// let (x, mut y, mut st) = ([0.0, 0.0], [0.0; 2], [RowStats::default()]);
/// softmax_rows(&x, 2, &mut y, &mut st);
/// let (loss, sum_t) = dense_row_loss(&x, &[0.5, 0.5], &st[0]);
/// assert_eq!((loss, sum_t), (std::f64::consts::LN_2, 1.0));
/// ```
///
/// # Panics
/// Unless `t.len() == x.len()`.
#[inline]
pub fn dense_row_loss(x: &[f32], t: &[f32], st: &RowStats) -> (f64, f64) {
    assert_eq!(
        t.len(),
        x.len(),
        "dense_row_loss: targets and logits differ in length"
    );
    let (m, ln_s) = (st.max as f64, st.ln_sum());
    let (mut loss, mut sum_t) = (0.0f64, 0.0f64);
    for (&t, &x) in t.iter().zip(x) {
        if t != 0.0 {
            sum_t += t as f64;
            loss += t as f64 * ((m - x as f64) + ln_s);
        }
    }
    (loss, sum_t)
}

/// `dx = scale · (y − onehot(label))` for a block of rows, with `y − 1` for
/// the top class taken as `−(1 − p_top)`.
struct IndexBackwardBlock<'a> {
    y: &'a [f32],
    cols: usize,
    labels: &'a [usize],
    stats: &'a [RowStats],
    scale: f32,
    dx: &'a mut [f32],
}

impl SimdKernel for IndexBackwardBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let rows = self
            .y
            .chunks_exact(self.cols)
            .zip(self.dx.chunks_exact_mut(self.cols));
        for (((y, dx), &label), st) in rows.zip(self.labels).zip(self.stats) {
            let s = V::splat(self.scale);
            let mut ys = y.chunks_exact(V::N);
            let mut ds = dx.chunks_exact_mut(V::N);
            for (y, d) in (&mut ys).zip(&mut ds) {
                V::load(y).mul(s).store(d);
            }
            let (yr, dr) = (ys.remainder(), ds.into_remainder());
            if !yr.is_empty() {
                V::load_partial(yr, 0.0).mul(s).store_partial(dr);
            }
            dx[label] = y_minus_one(y[label], st) * self.scale;
        }
    }
}

/// `y − 1` for a probability `y` of a row with stats `st`: exact
/// `−(1 − p_top)` when `y` is the top probability, where the subtraction
/// would cancel; plain `y − 1` (no cancellation: y ≤ ½) otherwise.
#[inline(always)]
fn y_minus_one(y: f32, st: &RowStats) -> f32 {
    if y == st.p_top() {
        -st.one_minus_p_top()
    } else {
        y - 1.0
    }
}

/// `dx = scale · (y·T − t)` for a block of rows; for the top-probability
/// entry of a row whose top probability is at least 1/2,
/// `(T − t) − T·(1 − p_top)`, which does not cancel when y ≈ t ≈ 1.
struct DenseBackwardBlock<'a> {
    y: &'a [f32],
    cols: usize,
    t: &'a [f32],
    t_sums: &'a [f32],
    stats: &'a [RowStats],
    scale: f32,
    dx: &'a mut [f32],
}

impl SimdKernel for DenseBackwardBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let cols = self.cols;
        let rows = self
            .y
            .chunks_exact(cols)
            .zip(self.t.chunks_exact(cols))
            .zip(self.dx.chunks_exact_mut(cols));
        for (((y, t), dx), (&t_sum, st)) in rows.zip(self.t_sums.iter().zip(self.stats)) {
            // The top entry's `(T − t) − T·(1 − p_top)` avoids the
            // cancellation of `y·T − t` only when p_top is near 1; below 1/2,
            // `1 − (1 − p_top)` would lose the digits of a small p_top, and
            // `y·T − t` is the accurate form. NaN never equals a y, so a
            // NaN p_top turns the special case off.
            let p_top = st.p_top();
            let top = (
                if p_top >= 0.5 { p_top } else { f32::NAN },
                st.one_minus_p_top(),
            );
            let (tv, p_top, q, s) = (
                V::splat(t_sum),
                V::splat(top.0),
                V::splat(top.1),
                V::splat(self.scale),
            );
            // A function, not a closure: a closure may stay out of line,
            // outside the instruction set's #[target_feature] function.
            #[inline(always)]
            fn grad<V: Lanes>(yv: V, tt: V, [tv, p_top, q, s]: [V; 4]) -> V {
                let top_g = tv.sub(tt).sub(tv.mul(q));
                V::select(yv.eq(p_top), top_g, yv.mul(tv).sub(tt)).mul(s)
            }
            let c = [tv, p_top, q, s];
            let mut ys = y.chunks_exact(V::N);
            let mut ts = t.chunks_exact(V::N);
            let mut ds = dx.chunks_exact_mut(V::N);
            for ((y, t), d) in (&mut ys).zip(&mut ts).zip(&mut ds) {
                grad(V::load(y), V::load(t), c).store(d);
            }
            let (yr, tr, dr) = (ys.remainder(), ts.remainder(), ds.into_remainder());
            if !yr.is_empty() {
                grad(V::load_partial(yr, 0.0), V::load_partial(tr, 0.0), c).store_partial(dr);
            }
        }
    }
}

/// Fused softmax + cross-entropy with class-index labels, on `isa`.
///
/// Writes the softmax of each row of `x` into `y` and each row's stats into
/// `stats`, and returns `Σ_i logsumexp(x_i) − x_i[labels[i]]`, summed in row
/// order in f64 (so the same for any number of threads).
///
/// # Panics
/// If the slices do not describe `labels.len()` rows of `cols > 0` elements,
/// or a label is ≥ `cols`.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// # use densegrad::kernels::simd::Isa;
/// let (mut y, mut st) = ([0.0; 2], [RowStats::default()]);
/// let total = softmax_xent_index_forward_with(Isa::best(), &[0.0, 0.0], 2, &[1], &mut y, &mut st);
/// assert_eq!(total, std::f64::consts::LN_2);
/// ```
pub fn softmax_xent_index_forward_with(
    isa: Isa,
    x: &[f32],
    cols: usize,
    labels: &[usize],
    y: &mut [f32],
    stats: &mut [RowStats],
) -> f64 {
    assert_eq!(labels.len(), stats.len(), "softmax_xent: one label per row");
    softmax_rows_with(isa, x, cols, y, stats);
    x.chunks_exact(cols)
        .zip(labels)
        .zip(stats.iter())
        .map(|((row, &label), st)| index_row_loss(row[label], st))
        .sum()
}

/// Fused softmax + cross-entropy with dense (one-hot or soft) target rows,
/// on `isa`.
///
/// Writes the softmax of each row of `x` into `y`, each row's stats into
/// `stats` and each target row's sum `T` into `t_sums`, and returns
/// `Σ_i Σ_j t_ij·(logsumexp(x_i) − x_ij)`, summed in row order in f64.
///
/// # Panics
/// If the slices do not describe `t_sums.len()` rows of `cols > 0` elements.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// # use densegrad::kernels::simd::Isa;
/// let (mut y, mut st, mut sums) = ([0.0; 2], [RowStats::default()], [0.0]);
/// let total = softmax_xent_dense_forward_with(Isa::best(), &[0.0, 0.0], 2, &[0.5, 0.5], &mut y, &mut st, &mut sums);
/// assert_eq!((total, sums), (std::f64::consts::LN_2, [1.0]));
/// ```
pub fn softmax_xent_dense_forward_with(
    isa: Isa,
    x: &[f32],
    cols: usize,
    t: &[f32],
    y: &mut [f32],
    stats: &mut [RowStats],
    t_sums: &mut [f32],
) -> f64 {
    assert!(
        t.len() == x.len() && t_sums.len() == stats.len(),
        "softmax_xent: targets must match the logits"
    );
    softmax_rows_with(isa, x, cols, y, stats);
    let rows = x.chunks_exact(cols).zip(t.chunks_exact(cols));
    let mut total = 0.0f64;
    for ((x, t), (st, t_sum)) in rows.zip(stats.iter().zip(t_sums.iter_mut())) {
        let (loss, sum_t) = dense_row_loss(x, t, st);
        *t_sum = sum_t as f32;
        total += loss;
    }
    total
}

/// The gradient `dx = scale · (y − onehot(labels))` of the index-label
/// cross-entropy times `scale` (= dout / N for the mean loss), on `isa`.
/// `stats` are the forward's, from which `1 − p_top` is taken exactly.
///
/// # Panics
/// If the slices do not describe `labels.len()` rows of `cols > 0` elements,
/// or a label is ≥ `cols`.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// # use densegrad::kernels::simd::Isa;
/// let (mut y, mut st) = ([0.0; 2], [RowStats::default()]);
/// softmax_xent_index_forward_with(Isa::best(), &[0.0, 0.0], 2, &[1], &mut y, &mut st);
/// let mut dx = [0.0; 2];
/// softmax_xent_index_backward_with(Isa::best(), &y, 2, &[1], &st, 1.0, &mut dx);
/// assert_eq!(dx, [0.5, -0.5]);
/// ```
pub fn softmax_xent_index_backward_with(
    isa: Isa,
    y: &[f32],
    cols: usize,
    labels: &[usize],
    stats: &[RowStats],
    scale: f32,
    dx: &mut [f32],
) {
    let rows = labels.len();
    assert!(
        cols > 0
            && Some(y.len()) == rows.checked_mul(cols)
            && y.len() == dx.len()
            && stats.len() == rows
    );
    for_row_blocks(rows, cols, dx, |r, dx| {
        let block = IndexBackwardBlock {
            y: &y[r.start * cols..r.end * cols],
            cols,
            labels: &labels[r.clone()],
            stats: &stats[r],
            scale,
            dx,
        };
        dispatch(isa, block)
    });
}

/// The gradient `dx = scale · (y·T − t)` of the dense-target cross-entropy
/// (`T` the row's target sum; `scale · (y − t)` when rows sum to 1), on `isa`.
///
/// # Panics
/// If the slices do not describe `t_sums.len()` rows of `cols > 0` elements.
///
/// ```
/// # use densegrad::kernels::softmax::*;
/// # use densegrad::kernels::simd::Isa;
/// let (mut y, mut st, mut sums) = ([0.0; 2], [RowStats::default()], [0.0]);
/// let t = [0.0, 1.0];
/// softmax_xent_dense_forward_with(Isa::best(), &[0.0, 0.0], 2, &t, &mut y, &mut st, &mut sums);
/// let mut dx = [0.0; 2];
/// softmax_xent_dense_backward_with(Isa::best(), &y, 2, &t, &sums, &st, 2.0, &mut dx);
/// assert_eq!(dx, [1.0, -1.0]);
/// ```
// Plain buffers in, plain buffer out, as every kernel here: the argument list
// is the data flow.
///
/// # Panics
/// Unless the slices describe `stats.len()` rows of `cols > 0` elements.
#[allow(clippy::too_many_arguments)]
pub fn softmax_xent_dense_backward_with(
    isa: Isa,
    y: &[f32],
    cols: usize,
    t: &[f32],
    t_sums: &[f32],
    stats: &[RowStats],
    scale: f32,
    dx: &mut [f32],
) {
    let rows = t_sums.len();
    assert!(cols > 0 && Some(y.len()) == rows.checked_mul(cols) && y.len() == dx.len());
    assert!(t.len() == y.len() && stats.len() == rows);
    for_row_blocks(rows, cols, dx, |r, dx| {
        let block = DenseBackwardBlock {
            y: &y[r.start * cols..r.end * cols],
            cols,
            t: &t[r.start * cols..r.end * cols],
            t_sums: &t_sums[r.clone()],
            stats: &stats[r],
            scale,
            dx,
        };
        dispatch(isa, block)
    });
}
