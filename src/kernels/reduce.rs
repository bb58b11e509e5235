//! Reductions and broadcasts along the batch axis, and the optimizer update.
//!
//! ```
//! let mut db = [0.0; 3];
//! densegrad::kernels::reduce::col_sums(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut db);
//! assert_eq!(db, [5.0, 7.0, 9.0]);
//! ```

use rayon::prelude::*;

use super::parallel::{for_row_blocks, worth_splitting};
use super::simd::{dispatch, Isa, Lanes, SimdKernel};

/// `out[j] = Σ_i x[i, j]` over a block of columns `x[.., c0..c0 + out.len()]`.
struct ColSums<'a> {
    x: &'a [f32],
    cols: usize,
    c0: usize,
    out: &'a mut [f32],
}

impl SimdKernel for ColSums<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let w = self.out.len();
        self.out.fill(0.0);
        // Rows are added in order, so each column's sum is the same sequence
        // of additions however the columns are split.
        for row in self.x.chunks_exact(self.cols) {
            let row = &row[self.c0..self.c0 + w];
            let mut rs = row.chunks_exact(V::N);
            let mut os = self.out.chunks_exact_mut(V::N);
            for (r, o) in (&mut rs).zip(&mut os) {
                V::load(o).add(V::load(r)).store(o);
            }
            let (r, o) = (rs.remainder(), os.into_remainder());
            if !r.is_empty() {
                V::load_partial(o, 0.0)
                    .add(V::load_partial(r, 0.0))
                    .store_partial(o);
            }
        }
    }
}

/// Columns per task when `col_sums` is split (a multiple of 8 lanes).
const COL_BLOCK: usize = 256;

/// `out[j] = Σ_i x[i, j]` for a row-major `x` with `out.len()` columns, on
/// `isa`: the bias gradient `db = Σ_rows dY`.
///
/// Large inputs split across threads by blocks of columns; each column is
/// summed by one task, over the rows in order, so the result is bitwise
/// identical for any number of threads.
///
/// # Panics
/// If `out` is empty or `x.len()` is not a multiple of `out.len()`.
///
/// ```
/// # use densegrad::kernels::reduce::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut out = [0.0; 2];
/// col_sums_with(Isa::portable(), &[1.0, 2.0, 3.0, 4.0], &mut out);
/// assert_eq!(out, [4.0, 6.0]);
/// ```
pub fn col_sums_with(isa: Isa, x: &[f32], out: &mut [f32]) {
    let cols = out.len();
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "col_sums: {} elements in rows of {cols}",
        x.len()
    );
    if worth_splitting(x.len()) && cols > COL_BLOCK {
        out.par_chunks_mut(COL_BLOCK)
            .enumerate()
            .for_each(|(b, out)| {
                dispatch(
                    isa,
                    ColSums {
                        x,
                        cols,
                        c0: b * COL_BLOCK,
                        out,
                    },
                )
            });
    } else {
        dispatch(
            isa,
            ColSums {
                x,
                cols,
                c0: 0,
                out,
            },
        );
    }
}

/// [`col_sums_with`] on [`Isa::best`].
///
/// ```
/// # use densegrad::kernels::reduce::*;
/// let mut out = [0.0; 2];
/// col_sums(&[1.0, 2.0, 3.0, 4.0], &mut out);
/// assert_eq!(out, [4.0, 6.0]);
/// ```
///
/// # Panics
/// Unless `x.len()` is a multiple of `out.len()` (rows of `out.len()` columns).
pub fn col_sums(x: &[f32], out: &mut [f32]) {
    col_sums_with(Isa::best(), x, out)
}

/// Copies `row` into every row of the row-major `out`.
///
/// # Panics
/// If `row` is empty or `out.len()` is not a multiple of `row.len()`.
///
/// ```
/// # use densegrad::kernels::reduce::*;
/// let mut out = [0.0; 4];
/// broadcast_rows(&[1.0, 2.0], &mut out);
/// assert_eq!(out, [1.0, 2.0, 1.0, 2.0]);
/// ```
pub fn broadcast_rows(row: &[f32], out: &mut [f32]) {
    assert!(
        !row.is_empty() && out.len().is_multiple_of(row.len()),
        "broadcast_rows: lengths"
    );
    for dst in out.chunks_exact_mut(row.len()) {
        dst.copy_from_slice(row);
    }
}

/// `y += a · x` over a chunk.
struct Axpy<'a> {
    a: f32,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl SimdKernel for Axpy<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let av = V::splat(self.a);
        let mut xs = self.x.chunks_exact(V::N);
        let mut ys = self.y.chunks_exact_mut(V::N);
        for (x, y) in (&mut xs).zip(&mut ys) {
            V::load(x).mul_add(av, V::load(y)).store(y);
        }
        let (xr, yr) = (xs.remainder(), ys.into_remainder());
        if !xr.is_empty() {
            // The tail goes through the same lanes, so it rounds like the rest.
            let v = V::load_partial(xr, 0.0).mul_add(av, V::load_partial(yr, 0.0));
            v.store_partial(yr);
        }
    }
}

/// `y += a · x` elementwise (fused where the instruction set has FMA), on
/// `isa`: the SGD update `w += (−lr) · dw`.
///
/// # Panics
/// If `x` and `y` differ in length.
///
/// ```
/// # use densegrad::kernels::reduce::*;
/// # use densegrad::kernels::simd::Isa;
/// let mut y = [1.0, 1.0];
/// axpy_with(Isa::portable(), 2.0, &[1.0, 3.0], &mut y);
/// assert_eq!(y, [3.0, 7.0]);
/// ```
pub fn axpy_with(isa: Isa, a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: x and y differ in length");
    for_row_blocks(x.len(), 1, y, |r, y| dispatch(isa, Axpy { a, x: &x[r], y }));
}

/// [`axpy_with`] on [`Isa::best`].
///
/// ```
/// # use densegrad::kernels::reduce::*;
/// let mut y = [1.0, 1.0];
/// axpy(2.0, &[1.0, 3.0], &mut y);
/// assert_eq!(y, [3.0, 7.0]);
/// ```
///
/// # Panics
/// Unless `y.len() == x.len()`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    axpy_with(Isa::best(), a, x, y)
}
