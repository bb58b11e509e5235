//! Splitting work across rayon threads on fixed boundaries.
//!
//! Every split here is *by output*: each output element is computed by
//! exactly one task, with the same arithmetic whatever the split, so results
//! are bitwise identical for any number of threads (nothing is ever summed
//! across tasks). Small work stays on the calling thread: a fork/join costs
//! ~30 µs on the 2-core machines this was measured on, the time to stream
//! ~100K floats.
//!
//! ```
//! use densegrad::kernels::parallel::rows_per_task;
//! // 32 rows of 32 000: about 32K elements per task when threads are available.
//! let per = rows_per_task(32, 32_000);
//! assert!(per >= 1 && per <= 32);
//! ```

use rayon::prelude::*;

/// Elementwise work below this many elements runs on the calling thread.
///
/// ```
/// # use densegrad::kernels::parallel::*;
/// assert!(PAR_CHUNK_ELEMS <= PAR_MIN_ELEMS);
/// ```
pub const PAR_MIN_ELEMS: usize = 1 << 17;
/// Elements per task for elementwise work above the threshold.
///
/// ```
/// # use densegrad::kernels::parallel::*;
/// assert_eq!(PAR_MIN_ELEMS % PAR_CHUNK_ELEMS, 0);
/// ```
pub const PAR_CHUNK_ELEMS: usize = 1 << 15;

/// Whether splitting can help: more than one thread and enough work.
///
/// ```
/// # use densegrad::kernels::parallel::*;
/// assert!(!worth_splitting(1000));
/// ```
#[inline]
pub fn worth_splitting(elems: usize) -> bool {
    elems >= PAR_MIN_ELEMS && rayon::current_num_threads() > 1
}

/// `f(x_chunk, y_chunk)` over matching chunks of `x` and `y`.
///
/// ```
/// # use densegrad::kernels::parallel::*;
/// let x = vec![2.0f32; 300_000];
/// let mut y = vec![0.0; 300_000];
/// zip_chunks(&x, &mut y, |x, y| y.copy_from_slice(x));
/// assert_eq!(x, y);
/// ```
///
/// # Panics
/// Unless `y.len() == x.len()`.
#[inline]
pub fn zip_chunks<F>(x: &[f32], y: &mut [f32], f: F)
where
    F: Fn(&[f32], &mut [f32]) + Sync + Send,
{
    assert_eq!(x.len(), y.len(), "zip_chunks: slices differ in length");
    if worth_splitting(x.len()) {
        x.par_chunks(PAR_CHUNK_ELEMS)
            .zip(y.par_chunks_mut(PAR_CHUNK_ELEMS))
            .for_each(|(x, y)| f(x, y));
    } else {
        f(x, y);
    }
}

/// `f(a_chunk, b_chunk, out_chunk)` over matching chunks of three slices.
///
/// ```
/// # use densegrad::kernels::parallel::*;
/// let (a, b) = (vec![2.0f32; 1000], vec![3.0f32; 1000]);
/// let mut out = vec![0.0; 1000];
/// zip3_chunks(&a, &b, &mut out, |a, b, o| {
///     for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
///         *o = a * b;
///     }
/// });
/// assert!(out.iter().all(|&v| v == 6.0));
/// ```
///
/// # Panics
/// Unless the three slices have one length.
#[inline]
pub fn zip3_chunks<F>(a: &[f32], b: &[f32], out: &mut [f32], f: F)
where
    F: Fn(&[f32], &[f32], &mut [f32]) + Sync + Send,
{
    assert!(
        a.len() == b.len() && a.len() == out.len(),
        "zip3_chunks: slices differ in length"
    );
    if worth_splitting(a.len()) {
        a.par_chunks(PAR_CHUNK_ELEMS)
            .zip(b.par_chunks(PAR_CHUNK_ELEMS))
            .zip(out.par_chunks_mut(PAR_CHUNK_ELEMS))
            .for_each(|((a, b), out)| f(a, b, out));
    } else {
        f(a, b, out);
    }
}

/// The number of rows per task when `rows` rows of `cols` elements are split:
/// enough rows for `PAR_CHUNK_ELEMS` elements, or all rows if not worth it.
///
/// ```
/// # use densegrad::kernels::parallel::*;
/// assert_eq!(rows_per_task(10, 10), 10); // too little work to split
/// ```
#[inline]
pub fn rows_per_task(rows: usize, cols: usize) -> usize {
    if worth_splitting(rows.saturating_mul(cols)) {
        PAR_CHUNK_ELEMS.div_ceil(cols).clamp(1, rows)
    } else {
        rows.max(1)
    }
}
