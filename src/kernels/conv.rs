//! 2-D convolution (NCHW) as im2col + sgemm, forward and backward.
//!
//! Per sample, the input (C, H, W) is unrolled into the im2col matrix
//! `col` (C·FH·FW rows, OH·OW columns: row `(c, i, j)` holds the input pixel
//! under filter tap `(c, i, j)` for every output pixel, 0 where it reads
//! padding). Then, with W seen as an (FN, C·FH·FW) matrix:
//!
//! - forward: `y_n = W·col_n + b` — (FN, OH·OW), already NCHW, no transpose;
//! - backward: `dW = Σ_n dY_n·col_nᵀ`, `db = Σ_n Σ_pixels dY_n`,
//!   `dX_n = col2im(Wᵀ·dY_n)`.
//!
//! The batch is cut into chunks of [`samples_per_chunk`] samples, a number
//! fixed by the shapes, never by the thread count. Chunks run on rayon
//! threads; each chunk sums its samples' dW and db in order into its own
//! partial, and the partials are added in chunk order, so the result is
//! bitwise identical for any number of threads. Each thread unrolls its
//! sample into its own im2col buffer ([`ColBuffers`], L2-sized for MNIST:
//! 57.6 KB) right before the product that reads it, instead of writing the
//! whole batch's im2col out to memory and reading it back.
//!
//! ```
//! use densegrad::kernels::conv::{conv2d_forward, ColBuffers};
//! use densegrad::kernels::window::Window2d;
//! // One 3×3 input, one 2×2 filter of ones, bias 0.5: sums of 2×2 blocks.
//! let g = Window2d::new("conv", 1, 3, 3, 2, 2, 1, 0)?;
//! let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
//! let mut y = [0.0; 4];
//! let mut bufs = ColBuffers::new();
//! bufs.reserve(&g, 1, false)?;
//! conv2d_forward(&x, 1, &g, &[1.0; 4], &[0.5], &mut y, &mut bufs);
//! assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
//! # Ok::<(), densegrad::Error>(())
//! ```

use std::sync::Mutex;

use rayon::prelude::*;

use super::gemm::{gemm, MatRef};
use super::window::Window2d;
use crate::Error;

/// Unrolls one sample `x` (C, H, W) into `col` (C·FH·FW, OH·OW), row-major;
/// taps that fall in the padding get 0.
///
/// # Panics
/// If `x.len() != g.in_len()` or `col.len() != g.col_len()`.
///
/// ```
/// use densegrad::kernels::{conv::im2col, window::Window2d};
/// // 2×2 input, 2×2 window, pad 1: a 3×3 output, 4 taps.
/// let g = Window2d::new("conv", 1, 2, 2, 2, 2, 1, 1)?;
/// let mut col = [9.0; 36];
/// im2col(&[1.0, 2.0, 3.0, 4.0], &g, &mut col);
/// // Tap (0, 0) reads the pixel up and left of each output position.
/// assert_eq!(&col[..9], &[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn im2col(x: &[f32], g: &Window2d, col: &mut [f32]) {
    assert_eq!(x.len(), g.in_len(), "im2col: x length");
    assert_eq!(col.len(), g.col_len(), "im2col: col length");
    let (kh, kw) = g.kernel();
    let (h, w, ow, s) = (g.in_h(), g.in_w(), g.out_w(), g.stride());
    let mut rows = col.chunks_exact_mut(g.col_cols());
    for plane in x.chunks_exact(h * w) {
        for i in 0..kh {
            let (oy_valid, iy0) = g.rows_of(i);
            for j in 0..kw {
                let (ox_valid, ix0) = g.cols_of(j);
                let row = rows.next().expect("col has c·kh·kw rows");
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    if !oy_valid.contains(&oy) {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[(iy0 + (oy - oy_valid.start) * s) * w..][..w];
                    out[..ox_valid.start].fill(0.0);
                    out[ox_valid.end..].fill(0.0);
                    let dst = &mut out[ox_valid.clone()];
                    if s == 1 {
                        dst.copy_from_slice(&src[ix0..ix0 + dst.len()]);
                    } else {
                        for (d, v) in dst.iter_mut().zip(src[ix0..].iter().step_by(s)) {
                            *d = *v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `dx` (C, H, W) becomes the sum, over every
/// tap and output pixel, of `col`'s entry at the input pixel it read
/// (padding taps are dropped). `dx` is overwritten.
///
/// # Panics
/// If `dx.len() != g.in_len()` or `col.len() != g.col_len()`.
///
/// ```
/// use densegrad::kernels::{conv::col2im, window::Window2d};
/// // 3×3 input, 2×2 window: the centre pixel is read by all 4 outputs.
/// let g = Window2d::new("conv", 1, 3, 3, 2, 2, 1, 0)?;
/// let mut dx = [0.0; 9];
/// col2im(&[1.0; 16], &g, &mut dx);
/// assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn col2im(col: &[f32], g: &Window2d, dx: &mut [f32]) {
    assert_eq!(dx.len(), g.in_len(), "col2im: dx length");
    assert_eq!(col.len(), g.col_len(), "col2im: col length");
    let (kh, kw) = g.kernel();
    let (h, w, ow, s) = (g.in_h(), g.in_w(), g.out_w(), g.stride());
    dx.fill(0.0);
    let mut rows = col.chunks_exact(g.col_cols());
    for plane in dx.chunks_exact_mut(h * w) {
        for i in 0..kh {
            let (oy_valid, iy0) = g.rows_of(i);
            for j in 0..kw {
                let (ox_valid, ix0) = g.cols_of(j);
                let row = rows.next().expect("col has c·kh·kw rows");
                for oy in oy_valid.clone() {
                    let src = &row[oy * ow..][ox_valid.clone()];
                    let dst = &mut plane[(iy0 + (oy - oy_valid.start) * s) * w..][..w];
                    if s == 1 {
                        for (d, v) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, v) in dst[ix0..].iter_mut().step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// Work per chunk of samples, in flops of the forward product: about 20 µs
/// on one core, so that a batch gives many more chunks than threads (a busy
/// core does not stall the step) while the per-chunk cost (one partial dW
/// to add, a rayon task) stays small.
pub const CONV_CHUNK_FLOPS: usize = 2_000_000;

/// Samples per chunk for a convolution with `filters` filters over `g`:
/// a function of the shapes only (never of the thread count), at least 1.
///
/// ```
/// use densegrad::kernels::{conv::samples_per_chunk, window::Window2d};
/// let g = Window2d::new("conv", 1, 28, 28, 5, 5, 1, 0)?;
/// assert_eq!(samples_per_chunk(&g, 30), 3); // 864 kflop per MNIST sample
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn samples_per_chunk(g: &Window2d, filters: usize) -> usize {
    let per_sample = 2usize
        .saturating_mul(filters)
        .saturating_mul(g.col_len())
        .max(1);
    CONV_CHUNK_FLOPS.div_ceil(per_sample).max(1)
}

/// The im2col buffers of a convolution: one per rayon thread, each reused
/// from call to call (no allocation once reserved). Reserving happens on the
/// calling thread, fallibly, before any work starts.
///
/// Which thread's buffer a sample is unrolled into changes nothing in the
/// result: a buffer is overwritten before every read.
///
/// ```
/// use densegrad::kernels::{conv::ColBuffers, window::Window2d};
/// let mut bufs = ColBuffers::new();
/// bufs.reserve(&Window2d::new("conv", 1, 28, 28, 5, 5, 1, 0)?, 30, true)?;
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ColBuffers {
    slots: Vec<Mutex<Vec<f32>>>,
    /// `[W | b]`, (FN, C·FH·FW + 1): the forward's weights with the bias
    /// as one more column, so that one product adds it.
    wb: Vec<f32>,
}

impl Clone for ColBuffers {
    /// A clone starts without buffers (they hold no state worth copying).
    fn clone(&self) -> Self {
        ColBuffers::new()
    }
}

impl ColBuffers {
    /// No buffers yet.
    ///
    /// ```
    /// let _ = densegrad::kernels::conv::ColBuffers::new();
    /// ```
    pub fn new() -> ColBuffers {
        ColBuffers {
            slots: Vec::new(),
            wb: Vec::new(),
        }
    }

    /// Makes one buffer per thread of the current rayon pool hold an im2col
    /// matrix of `g` with a row of ones (and, if `backward`, its gradient),
    /// and room for `filters` rows of weights and bias. `Err` if the memory
    /// cannot be had.
    ///
    /// ```
    /// use densegrad::kernels::{conv::ColBuffers, window::Window2d};
    /// let mut bufs = ColBuffers::new();
    /// assert!(bufs.reserve(&Window2d::new("conv", 1, 4, 4, 3, 3, 1, 0)?, 2, false).is_ok());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn reserve(&mut self, g: &Window2d, filters: usize, backward: bool) -> Result<(), Error> {
        let no_memory = || {
            Error::shape(
                "convolution buffers",
                format!(
                    "the im2col matrix [{}, {}] needs more memory than can be allocated",
                    g.col_rows() + 1,
                    g.col_cols()
                ),
            )
        };
        let need = g
            .col_len()
            .checked_add(g.col_cols())
            .and_then(|v| v.checked_add(if backward { g.col_len() } else { 0 }))
            .ok_or_else(no_memory)?;
        let threads = rayon::current_num_threads().max(1);
        if self.slots.len() < threads {
            self.slots.resize_with(threads, || Mutex::new(Vec::new()));
        }
        let grow = |v: &mut Vec<f32>, need: usize| -> Result<(), Error> {
            if v.len() < need {
                v.try_reserve_exact(need - v.len())
                    .map_err(|_| no_memory())?;
                v.resize(need, 0.0);
            }
            Ok(())
        };
        for slot in &mut self.slots {
            grow(slot.get_mut().unwrap_or_else(|e| e.into_inner()), need)?;
        }
        let wb = (g.col_rows() + 1)
            .checked_mul(filters)
            .ok_or_else(no_memory)?;
        grow(&mut self.wb, wb)
    }

    /// `[W | b]` into `wb`, (FN, CK + 1) row-major.
    fn pack_weights(&mut self, w: &[f32], b: &[f32], ck: usize) {
        let wb = &mut self.wb[..b.len() * (ck + 1)];
        for ((row, w), &b) in wb.chunks_exact_mut(ck + 1).zip(w.chunks_exact(ck)).zip(b) {
            row[..ck].copy_from_slice(w);
            row[ck] = b;
        }
    }

    /// Runs `f` with this thread's buffer (at least `len` elements).
    fn with<R>(&self, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        assert!(!self.slots.is_empty(), "ColBuffers used before reserve");
        let i = rayon::current_thread_index().unwrap_or(0) % self.slots.len();
        let mut buf = self.slots[i].lock().unwrap_or_else(|e| e.into_inner());
        assert!(buf.len() >= len, "ColBuffers reserved for a smaller shape");
        f(&mut buf[..len])
    }
}

/// Whether the convolution is worth splitting across threads.
fn parallel(n: usize, per_chunk: usize) -> bool {
    n > per_chunk && rayon::current_num_threads() > 1
}

/// `y = conv(x, W) + b` for `n` samples: x (n, C, H, W), `w` (FN, C, FH, FW)
/// as an (FN, C·FH·FW) row-major slice, `b` (FN), y (n, FN, OH, OW).
/// `bufs` must have been [reserved](ColBuffers::reserve) for `g`.
///
/// # Panics
/// If a slice length disagrees with `n`, `g` and `b.len()` (the filter count).
///
/// ```
/// use densegrad::kernels::{conv::*, window::Window2d};
/// // Two filters over a 1×2×2 input with pad 1 and a 3×3 window: stride 2.
/// let g = Window2d::new("conv", 1, 2, 2, 3, 3, 2, 1)?;
/// let mut bufs = ColBuffers::new();
/// bufs.reserve(&g, 2, false)?;
/// let mut w = [0.0; 18];
/// w[4] = 1.0; // filter 0: the centre tap (identity)
/// w[9] = 1.0; // filter 1: the top-left tap
/// let mut y = [0.0; 2];
/// conv2d_forward(&[1.0, 2.0, 3.0, 4.0], 1, &g, &w, &[0.0, 0.0], &mut y, &mut bufs);
/// assert_eq!(y, [1.0, 0.0]); // the one output sits on pixel (0, 0)
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn conv2d_forward(
    x: &[f32],
    n: usize,
    g: &Window2d,
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    bufs: &mut ColBuffers,
) {
    let filters = b.len();
    let (ck, pix, col_len) = (g.col_rows(), g.col_cols(), g.col_len());
    assert_eq!(x.len(), n * g.in_len(), "conv2d_forward: x length");
    assert_eq!(w.len(), filters * ck, "conv2d_forward: w length");
    assert_eq!(y.len(), n * filters * pix, "conv2d_forward: y length");
    if n == 0 || filters == 0 {
        return;
    }
    assert!(
        bufs.wb.len() >= filters * (ck + 1),
        "ColBuffers reserved for fewer filters"
    );
    // y = [W | b]·[col; 1]: the bias comes with the product (β = 0, so y
    // is written once and never read).
    bufs.pack_weights(w, b, ck);
    let bufs = &*bufs;
    let wb = MatRef::row_major(&bufs.wb[..filters * (ck + 1)], filters, ck + 1);
    let sample = |x: &[f32], y: &mut [f32]| {
        bufs.with(col_len + pix, |col1| {
            let (col, ones) = col1.split_at_mut(col_len);
            im2col(x, g, col);
            ones.fill(1.0);
            gemm(1.0, wb, MatRef::row_major(col1, ck + 1, pix), 0.0, y);
        });
    };
    let per = samples_per_chunk(g, filters);
    let (xs, ys) = (per * g.in_len(), per * filters * pix);
    let chunk = |(x, y): (&[f32], &mut [f32])| {
        for (x, y) in x
            .chunks_exact(g.in_len())
            .zip(y.chunks_exact_mut(filters * pix))
        {
            sample(x, y);
        }
    };
    if parallel(n, per) {
        x.par_chunks(xs).zip(y.par_chunks_mut(ys)).for_each(chunk);
    } else {
        x.chunks(xs).zip(y.chunks_mut(ys)).for_each(chunk);
    }
}

/// The length of the `partials` buffer [`conv2d_backward`] needs for `n`
/// samples: one (FN, C·FH·FW + 1) partial `[dW | db]` per chunk.
///
/// ```
/// use densegrad::kernels::{conv::*, window::Window2d};
/// let g = Window2d::new("conv", 1, 28, 28, 5, 5, 1, 0)?;
/// assert_eq!(partials_len(100, &g, 30), Some(34 * (30 * 25 + 30)));
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn partials_len(n: usize, g: &Window2d, filters: usize) -> Option<usize> {
    let chunks = n.div_ceil(samples_per_chunk(g, filters));
    filters
        .checked_mul(g.col_rows())?
        .checked_add(filters)?
        .checked_mul(chunks)
}

/// The gradients of [`conv2d_forward`] given `dy` (n, FN, OH, OW): writes
/// `dw` (FN·C·FH·FW), `db` (FN) and, if given, `dx` (n, C, H, W), all
/// overwritten. `partials` must hold [`partials_len`] elements (scratch);
/// `bufs` must have been [reserved](ColBuffers::reserve) for `g` with
/// `backward = true`.
///
/// # Panics
/// If a slice length disagrees with `n`, `g` and `db.len()` (the filter count).
///
/// ```
/// use densegrad::kernels::{conv::*, window::Window2d};
/// let g = Window2d::new("conv", 1, 3, 3, 2, 2, 1, 0)?;
/// let mut bufs = ColBuffers::new();
/// bufs.reserve(&g, 1, true)?;
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let (mut dw, mut db, mut dx) = ([0.0; 4], [0.0], [0.0; 9]);
/// let mut partials = vec![0.0; partials_len(1, &g, 1).unwrap()];
/// conv2d_backward(&x, 1, &g, &[1.0; 4], &[1.0; 4], &mut dw, &mut db, Some(&mut dx), &mut partials, &bufs);
/// assert_eq!(dw, [12.0, 16.0, 24.0, 28.0]); // each tap's 2×2 block of x
/// assert_eq!(db, [4.0]);
/// assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    x: &[f32],
    n: usize,
    g: &Window2d,
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
    partials: &mut [f32],
    bufs: &ColBuffers,
) {
    let filters = db.len();
    let (ck, pix, col_len) = (g.col_rows(), g.col_cols(), g.col_len());
    assert_eq!(x.len(), n * g.in_len(), "conv2d_backward: x length");
    assert_eq!(w.len(), filters * ck, "conv2d_backward: w length");
    assert_eq!(dw.len(), filters * ck, "conv2d_backward: dw length");
    assert_eq!(dy.len(), n * filters * pix, "conv2d_backward: dy length");
    assert_eq!(
        Some(partials.len()),
        partials_len(n, g, filters),
        "conv2d_backward: partials length"
    );
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), x.len(), "conv2d_backward: dx length");
    }
    dw.fill(0.0);
    db.fill(0.0);
    if n == 0 || filters == 0 {
        if let Some(dx) = dx {
            dx.fill(0.0);
        }
        return;
    }
    let want_dx = dx.is_some();
    let wt = MatRef::row_major(w, filters, ck).t();
    // One chunk: its samples' dW and db summed in order into `partial`, and
    // its samples' dX. The im2col matrix gets a last row of ones, so that
    // one product gives [dW | db] = dY·[col; 1]ᵀ, the bias gradient summed
    // by the vectorised sgemm rather than a serial loop.
    let chunk = |x: &[f32], dy: &[f32], partial: &mut [f32], mut dx: Option<&mut [f32]>| {
        for (s, (x, dy)) in x
            .chunks_exact(g.in_len())
            .zip(dy.chunks_exact(filters * pix))
            .enumerate()
        {
            let beta = if s == 0 { 0.0 } else { 1.0 };
            let dym = MatRef::row_major(dy, filters, pix);
            let buf_len = col_len + pix + if want_dx { col_len } else { 0 };
            bufs.with(buf_len, |buf| {
                let (col1, dcol) = buf.split_at_mut(col_len + pix);
                let (col, ones) = col1.split_at_mut(col_len);
                im2col(x, g, col);
                ones.fill(1.0);
                let col1 = MatRef::row_major(col1, ck + 1, pix);
                gemm(1.0, dym, col1.t(), beta, partial);
                if let Some(dx) = dx.as_deref_mut() {
                    gemm(1.0, wt, dym, 0.0, dcol);
                    col2im(dcol, g, &mut dx[s * g.in_len()..][..g.in_len()]);
                }
            });
        }
    };
    let per = samples_per_chunk(g, filters);
    let (xs, ys, ps) = (
        per * g.in_len(),
        per * filters * pix,
        filters * ck + filters,
    );
    let par = parallel(n, per);
    match dx {
        Some(dx) if par => x
            .par_chunks(xs)
            .zip(dy.par_chunks(ys))
            .zip(partials.par_chunks_mut(ps))
            .zip(dx.par_chunks_mut(xs))
            .for_each(|(((x, dy), p), dx)| chunk(x, dy, p, Some(dx))),
        Some(dx) => x
            .chunks(xs)
            .zip(dy.chunks(ys))
            .zip(partials.chunks_mut(ps))
            .zip(dx.chunks_mut(xs))
            .for_each(|(((x, dy), p), dx)| chunk(x, dy, p, Some(dx))),
        None if par => x
            .par_chunks(xs)
            .zip(dy.par_chunks(ys))
            .zip(partials.par_chunks_mut(ps))
            .for_each(|((x, dy), p)| chunk(x, dy, p, None)),
        None => x
            .chunks(xs)
            .zip(dy.chunks(ys))
            .zip(partials.chunks_mut(ps))
            .for_each(|((x, dy), p)| chunk(x, dy, p, None)),
    }
    // The chunks' partial gradients, added in chunk order.
    for p in partials.chunks_exact(ps) {
        for ((dw, db), p) in dw
            .chunks_exact_mut(ck)
            .zip(db.iter_mut())
            .zip(p.chunks_exact(ck + 1))
        {
            for (d, v) in dw.iter_mut().zip(p) {
                *d += v;
            }
            *db += p[ck];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct definition of im2col, in f64 index arithmetic.
    fn im2col_naive(x: &[f32], g: &Window2d) -> Vec<f32> {
        let (kh, kw) = g.kernel();
        let (h, w, oh, ow, s, p) = (
            g.in_h() as isize,
            g.in_w() as isize,
            g.out_h(),
            g.out_w(),
            g.stride() as isize,
            g.pad() as isize,
        );
        let mut col = Vec::new();
        for c in 0..g.channels() {
            for i in 0..kh {
                for j in 0..kw {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let iy = oy as isize * s + i as isize - p;
                            let ix = ox as isize * s + j as isize - p;
                            col.push(if iy < 0 || ix < 0 || iy >= h || ix >= w {
                                0.0
                            } else {
                                x[(c * (h * w) as usize) + (iy * w + ix) as usize]
                            });
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_and_col2im_agree_with_the_definition_and_are_adjoint() {
        for c in 1..3 {
            for h in 1..6 {
                for w in [1, 2, 5] {
                    for (kh, kw) in [(1, 1), (2, 3), (3, 2), (3, 3)] {
                        for s in 1..4 {
                            for p in 0..3 {
                                let Ok(g) = Window2d::new("t", c, h, w, kh, kw, s, p) else {
                                    continue;
                                };
                                let x: Vec<f32> = (0..g.in_len()).map(|i| i as f32 + 1.0).collect();
                                let mut col = vec![f32::NAN; g.col_len()];
                                im2col(&x, &g, &mut col);
                                assert_eq!(col, im2col_naive(&x, &g), "{g:?}");
                                // <im2col(x), r> = <x, col2im(r)> for integer data (exact).
                                let r: Vec<f32> =
                                    (0..g.col_len()).map(|i| (i % 7) as f32 - 3.0).collect();
                                let mut back = vec![f32::NAN; g.in_len()];
                                col2im(&r, &g, &mut back);
                                let lhs: f32 = col.iter().zip(&r).map(|(a, b)| a * b).sum();
                                let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
                                assert_eq!(lhs, rhs, "{g:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
