//! A checked wrapper over `matrixmultiply::sgemm`: one of the crate's three
//! files with `unsafe` (with `simd/avx2.rs` and `simd/avx512.rs`).
//!
//! Contract of the unsafe core (`matrixmultiply::sgemm`): for an m×k matrix A,
//! a k×n matrix B and an m×n matrix C given as pointers plus row/column
//! strides (in elements), every element `a + i*rsa + l*csa` (i < m, l < k) and
//! likewise for B must be readable, every element of C must be writable, and C
//! must not overlap A or B. If `beta == 0` C is never read.
//!
//! [`gemm`] establishes that contract from safe types:
//! - A and B are [`MatRef`]s, whose constructor proves that the largest index
//!   they reach, `(rows-1)*row_stride + (cols-1)*col_stride`, is inside their
//!   slice, computed with checked arithmetic, and that both strides fit in
//!   `isize`;
//! - C is a `&mut [f32]` whose length is checked to be exactly m·n, written
//!   row-major (strides n and 1), so it is in bounds and, being a unique
//!   borrow, cannot overlap the shared borrows of A and B;
//! - the inner dimensions are checked to agree.
//!
//! The second unsafe piece is `ColsMut`, a block of C's columns: it lets
//! `gemm_par`'s tasks each own a disjoint block of columns of the same rows.
//! It is made only from a whole `&mut [f32]` of m·n elements, or by
//! splitting one block in two at a column; its rows are handed out as
//! bounds-checked slices.
//!
//! Large products on AVX-512 skip matrixmultiply for
//! `gemm_packed` (a private module), whose kernel is safe code on
//! [`Lanes`](super::simd::Lanes) and gives the same bits.
//!
//! Transposes are read through strides ([`MatRef::t`]), never copied.
//!
//! ```
//! use densegrad::kernels::gemm::{gemm, MatRef};
//! let x = MatRef::row_major(&[1.0, 2.0], 1, 2);
//! let w = MatRef::row_major(&[3.0, 4.0], 2, 1);
//! let mut y = [0.0];
//! gemm(1.0, x, w, 0.0, &mut y);
//! assert_eq!(y, [11.0]);
//! ```

pub(crate) use super::gemm_balanced::Balance;

/// A read-only view of a matrix inside a slice, with element strides.
///
/// Built only through [`MatRef::row_major`] and [`MatRef::t`], so every view
/// in existence is in bounds of its slice.
///
/// ```
/// # use densegrad::kernels::gemm::*;
/// let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
/// assert_eq!((a.rows(), a.cols()), (2, 3));
/// assert_eq!((a.t().rows(), a.t().cols()), (3, 2));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// The `rows`×`cols` matrix whose element (i, j) is
    /// `data[i·row_stride + j·col_stride]`.
    ///
    /// # Panics
    /// If that reaches past the end of `data` (computed with overflow-checked
    /// arithmetic), or a stride exceeds `isize::MAX`. Callers check shapes
    /// first and report an `Error`, so a panic here is a bug in densegrad.
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// // Every other element: a 3×1 column with row stride 2.
    /// let buf = [1.0, 0.0, 2.0, 0.0, 3.0];
    /// let col = MatRef::new(&buf, 3, 1, 2, 1);
    /// let mut c = [0.0; 3];
    /// gemm(1.0, col, MatRef::row_major(&[10.0], 1, 1), 0.0, &mut c);
    /// assert_eq!(c, [10.0, 20.0, 30.0]);
    /// ```
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        let last = if rows == 0 || cols == 0 {
            Some(0)
        } else {
            (rows - 1)
                .checked_mul(row_stride)
                .and_then(|r| {
                    (cols - 1)
                        .checked_mul(col_stride)
                        .and_then(|c| r.checked_add(c))
                })
                .and_then(|i| i.checked_add(1))
        };
        assert!(
            last.is_some_and(|n| n <= data.len()),
            "gemm: a {rows}x{cols} matrix with strides ({row_stride}, {col_stride}) does not fit in {} elements",
            data.len()
        );
        assert!(row_stride <= isize::MAX as usize && col_stride <= isize::MAX as usize);
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The `rows`×`cols` row-major matrix at the start of `data`.
    ///
    /// # Panics
    /// If `data` holds fewer than `rows * cols` elements.
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2);
    /// assert_eq!(a.rows(), 2);
    /// ```
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef::new(data, rows, cols, cols, 1)
    }

    /// Rows `start..start + len` of this matrix, as a view (no copy).
    ///
    /// # Panics
    /// If the range is not inside the matrix.
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2).row_block(1, 1);
    /// let mut c = [0.0; 2];
    /// gemm(1.0, a, MatRef::row_major(&[1.0, 0.0, 0.0, 1.0], 2, 2), 0.0, &mut c);
    /// assert_eq!(c, [3.0, 4.0]);
    /// ```
    pub fn row_block(self, start: usize, len: usize) -> Self {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= self.rows),
            "gemm: row block out of range"
        );
        if len == 0 {
            return MatRef::new(&[], 0, self.cols, self.row_stride, self.col_stride);
        }
        MatRef::new(
            &self.data[start * self.row_stride..],
            len,
            self.cols,
            self.row_stride,
            self.col_stride,
        )
    }

    /// Columns `start..start + len` of this matrix, as a view (no copy).
    ///
    /// # Panics
    /// If the range is not inside the matrix.
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// let b = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2).col_block(1, 1);
    /// assert_eq!((b.rows(), b.cols()), (2, 1));
    /// let mut c = [0.0];
    /// gemm(1.0, MatRef::row_major(&[1.0, 1.0], 1, 2), b, 0.0, &mut c);
    /// assert_eq!(c, [6.0]);
    /// ```
    pub fn col_block(self, start: usize, len: usize) -> Self {
        self.t().row_block(start, len).t()
    }

    /// The transpose, as a view with swapped strides (no copy).
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3).t();
    /// assert_eq!((a.rows(), a.cols()), (3, 2));
    /// ```
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// The slice and the (row, column) strides, for the packing kernels.
    pub(super) fn parts(&self) -> (&'a [f32], usize, usize) {
        (self.data, self.row_stride, self.col_stride)
    }

    /// The number of rows.
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// assert_eq!(MatRef::row_major(&[0.0; 6], 2, 3).rows(), 2);
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    ///
    /// ```
    /// # use densegrad::kernels::gemm::*;
    /// assert_eq!(MatRef::row_major(&[0.0; 6], 2, 3).cols(), 3);
    /// ```
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// `C = alpha·A·B + beta·C`, with C an m×n row-major slice.
///
/// Small products with a row- or column-major A and a row-major B go through
/// [`gemm_direct`](super::gemm_direct) (no packing) where
/// [`suits`](super::gemm_direct::suits) says it is faster, and large ones on
/// AVX-512 through the crate's own packed kernel; with α = 1, as every layer
/// calls it, the result is bitwise the same as matrixmultiply's, so the
/// choice never shows.
///
/// `beta == 0` overwrites C without reading it (so NaNs already in C do not
/// leak into the result). When k = 0 the product is empty and C becomes
/// `beta·C`.
///
/// # Panics
/// If the shapes disagree (`a.cols != b.rows`, `c.len() != a.rows * b.cols`).
/// Layers check shapes and return `Error`s before calling, so this is a bug
/// guard that keeps the `unsafe` call sound, never a response to user input.
///
/// ```
/// # use densegrad::kernels::gemm::*;
/// let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2);
/// let mut c = [0.0; 4];
/// gemm(1.0, a, a.t(), 0.0, &mut c); // A·Aᵀ, the transpose read by strides
/// assert_eq!(c, [5.0, 11.0, 11.0, 25.0]);
/// ```
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        b.rows, k,
        "gemm: inner dimensions {k} and {} differ",
        b.rows
    );
    assert_eq!(
        Some(c.len()),
        m.checked_mul(n),
        "gemm: C has {} elements, expected {m}x{n}",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    if super::gemm_direct::a_layout_suits(k, a.row_stride, a.col_stride)
        && super::gemm_direct::b_layout_suits(n, b.row_stride, b.col_stride)
        && super::gemm_direct::suits(m, k, n)
    {
        let (rsa, csa, rsb) = (a.row_stride, a.col_stride, b.row_stride);
        return super::gemm_direct::gemm_direct_strided(
            m, k, n, alpha, a.data, rsa, csa, b.data, rsb, beta, c, n,
        );
    }
    gemm_into(alpha, a, b, beta, ColsMut::new(c, m, n));
}

/// `C = alpha·A·B + beta·C` into a block of C's columns, through the packed
/// AVX-512 kernel where [`gemm_packed::suits`](super::gemm_packed::suits)
/// says it is faster, else through matrixmultiply. Both give the same bits.
fn gemm_into(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, mut c: ColsMut<'_>) {
    debug_assert_eq!((a.cols, a.rows, b.cols), (b.rows, c.rows, c.cols));
    if super::gemm_packed::suits(a.rows, a.cols, b.cols) {
        return super::gemm_packed::gemm_packed(alpha, a, b, beta, c);
    }
    let rsc = c.stride;
    // SAFETY: a `ColsMut` is the unique borrow of its rows × cols elements,
    // which sit at `ptr + i·stride + j` (its invariant); it is a mutable
    // borrow, so it overlaps neither A nor B, and nothing else touches those
    // elements while it is borrowed here.
    unsafe { sgemm_into(alpha, a, b, beta, c.as_mut_ptr(), rsc) }
}

/// `matrixmultiply::sgemm` into the `a.rows × b.cols` matrix at `c` with row
/// stride `rsc` and column stride 1, the one place the crate calls it.
///
/// # Safety
/// Every element `c + i·rsc + j` (i < a.rows, j < b.cols) must be valid for
/// reads and writes, must not overlap A's or B's slice, and must not be
/// accessed by anything else during the call. `a.cols == b.rows`.
unsafe fn sgemm_into(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: *mut f32, rsc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert_eq!(b.rows, k);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // Every view's strides fit in isize (checked by `MatRef::new`), and so
    // does rsc (the caller's C has at least m·rsc/… elements, which fit in
    // isize): the casts below are lossless.
    // SAFETY: A and B are `MatRef`s, whose constructor proved that every
    // element (i, l) with i < rows, l < cols lies inside their slice (a
    // transpose or a row or column block reaches a subset of those
    // elements). C's elements are valid and unaliased by this function's
    // contract. m, k, n are all nonzero here.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c,
            rsc as isize,
            1,
        );
    }
}

/// Products from this many flops (2·m·k·n) are cut into one block per
/// thread by rayon's own join (in a pool of two threads: two halves through
/// [`join_awake`](super::parallel::join_awake), as smaller ones); smaller
/// ones in halves (from [`GEMM_HALVES_MIN_FLOPS`]) or not at all. At ~100
/// GFLOP/s per core this is ~160 µs of work.
///
/// ```
/// # use densegrad::kernels::gemm::*;
/// // (100, 784, 50) products stay on one thread:
/// assert!(2 * 100 * 784 * 50 < GEMM_PAR_MIN_FLOPS);
/// ```
pub const GEMM_PAR_MIN_FLOPS: usize = 16_000_000;

/// Whole micro-kernel tiles per task: matrixmultiply's AVX-512 sgemm kernel
/// is 16×16 (AVX2's 8×8 divides it), so a block edge never cuts a tile.
/// The packed kernel's tiles are 12 × 32: an edge may cut one, which then
/// runs as two narrower tiles with the same bits (W1's and W4 large's
/// 1024 columns cut at 512, a whole number of them).
const TILE: usize = 16;

/// [`gemm`], with C cut into blocks of whole rows or whole columns computed
/// by rayon tasks when the product is large enough: from
/// [`GEMM_HALVES_MIN_FLOPS`] in two halves through `join_awake`, from
/// [`GEMM_PAR_MIN_FLOPS`] in one block per thread (in a pool of two
/// threads: the same two halves, through `join_awake`).
///
/// The cut is chosen to repack the smaller operand: every task's `sgemm`
/// packs all of the operand that is not cut, so rows are cut (each task
/// packs all of B, k×n) when m > n, and columns (each task packs all of A,
/// m×k) otherwise. One task per thread: cutting into two or three times as
/// many (so that rayon can move work off a core another process is busy
/// on) repacks the uncut operand that many more times, and measured no
/// faster with the second core 20% busy, 2–8% slower with it free
/// (BENCHMARKS.md).
///
/// No element of C is summed across tasks, and matrixmultiply computes an
/// element with the same sequence of operations whatever block its call
/// covers, so the result is bitwise identical for any number of threads and
/// tasks (`tests/determinism.rs` checks it).
///
/// # Panics
/// As [`gemm`].
///
/// ```
/// # use densegrad::kernels::gemm::*;
/// let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2);
/// let mut c = [1.0; 4];
/// gemm_par(1.0, a, a.t(), 1.0, &mut c); // C = A·Aᵀ + C
/// assert_eq!(c, [6.0, 12.0, 12.0, 26.0]);
/// ```
pub fn gemm_par(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
    gemm_par_balanced(alpha, a, b, beta, c, None);
}

/// [`gemm_par`], with a product cut in two column halves that the packed
/// kernel runs balanced between the threads for a while after its fixed
/// halves ended unevenly, as `balance` (a layer's) keeps track of. The
/// same bits either way.
pub(crate) fn gemm_par_balanced(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
    balance: Option<&Balance>,
) {
    use super::gemm_packed::suits;
    use super::parallel::join_awake;
    use rayon::prelude::*;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let threads = rayon::current_num_threads();
    let flops = m.saturating_mul(k).saturating_mul(n).saturating_mul(2);
    if threads < 2 || flops < GEMM_HALVES_MIN_FLOPS || k == 0 || m.max(n) < 2 * TILE {
        return gemm(alpha, a, b, beta, c);
    }
    assert_eq!(
        b.rows, k,
        "gemm: inner dimensions {k} and {} differ",
        b.rows
    );
    assert_eq!(
        Some(c.len()),
        m.checked_mul(n),
        "gemm: C has {} elements, expected {m}x{n}",
        c.len()
    );
    // Two blocks (halves, or one per thread in a pool of two) run through
    // `join_awake`, whose helper stays awake between products (for the
    // large ones of W1 and W4 large at 2 threads 0.6–1% of the step against
    // rayon's join, BENCHMARKS.md); more blocks through rayon. m, n ≥
    // 2·TILE, so a half cut on a tile edge leaves both halves non-empty.
    let tasks = if flops < GEMM_PAR_MIN_FLOPS {
        2
    } else {
        threads
    };
    let halves = tasks == 2;
    if m > n {
        let rows = m.div_ceil(tasks).next_multiple_of(TILE);
        let row_block = |i: usize, c: &mut [f32]| {
            gemm(alpha, a.row_block(i * rows, c.len() / n), b, beta, c);
        };
        if halves {
            let (c0, c1) = c.split_at_mut(rows * n);
            join_awake(|| row_block(0, c0), || row_block(1, c1));
        } else {
            c.par_chunks_mut(rows * n)
                .enumerate()
                .for_each(|(i, c)| row_block(i, c));
        }
        return;
    }
    let cols = n.div_ceil(tasks).next_multiple_of(TILE);
    let col_block = |i: usize, c: ColsMut<'_>| {
        gemm_into(alpha, a, b.col_block(i * cols, c.cols), beta, c);
    };
    let c = ColsMut::new(c, m, n);
    if halves {
        if let Some(balance) = balance.filter(|_| suits(m, k, cols) && suits(m, k, n - cols)) {
            return balance.run(c, cols, col_block, |c| {
                super::gemm_balanced::gemm_halves(alpha, a, b, beta, c, cols)
            });
        }
        let (c0, c1) = c.split_at_col(cols);
        join_awake(|| col_block(0, c0), || col_block(1, c1));
        return;
    }
    in_col_blocks(c, 0, cols, &col_block);
}

/// `f(i, block)` for the blocks of `cols` columns (the last one narrower)
/// that `c`, block `first` onwards, is cut into, split in halves of whole
/// blocks through `rayon::join`: the cuts are those of one block after
/// another, with no list of blocks to allocate.
fn in_col_blocks<F>(c: ColsMut<'_>, first: usize, cols: usize, f: &F)
where
    F: Fn(usize, ColsMut<'_>) + Sync,
{
    let blocks = c.cols.div_ceil(cols);
    if blocks <= 1 {
        return f(first, c);
    }
    let (left, right) = c.split_at_col(blocks / 2 * cols);
    rayon::join(
        || in_col_blocks(left, first, cols, f),
        || in_col_blocks(right, first + blocks / 2, cols, f),
    );
}

/// Products from this many flops up to [`GEMM_PAR_MIN_FLOPS`] are cut in two
/// halves run side by side by [`join_awake`](super::parallel::join_awake),
/// whose helper thread stays awake between products: W1 100×784×50 (three
/// 7.8 MFLOP products) at 2 threads went from 257–272 to 193–202 µs. Below
/// it stay the products of a batch chunk of W4 small (3.9 MFLOP), which
/// already runs beside the other chunk.
///
/// ```
/// # use densegrad::kernels::gemm::*;
/// assert!(GEMM_HALVES_MIN_FLOPS < 2 * 100 * 784 * 50);
/// assert!(2 * 50 * 784 * 50 < GEMM_HALVES_MIN_FLOPS);
/// ```
pub const GEMM_HALVES_MIN_FLOPS: usize = 4_000_000;

/// A block of columns of a row-major matrix, borrowed mutably: `rows` rows
/// of `cols` elements, row `i` at `ptr + i·stride`. The one way the product
/// kernels write C, so that tasks can own disjoint column blocks of the same
/// rows.
///
/// Invariant: the elements it addresses lie inside one `&'a mut [f32]`, and
/// no other `ColsMut` (or anything else) addresses any of them while it
/// lives. [`ColsMut::new`] takes the whole slice; [`ColsMut::split_at_col`]
/// and [`ColsMut::split_at_row`] consume a block and return two with
/// disjoint columns or rows.
pub(super) struct ColsMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    stride: usize,
    _c: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `ColsMut` is a unique borrow of f32s (as a `&mut [f32]` is, which
// is `Send`); moving it to another thread moves that borrow.
unsafe impl Send for ColsMut<'_> {}

impl<'a> ColsMut<'a> {
    /// The whole `rows × cols` row-major matrix in `c`.
    ///
    /// # Panics
    /// If `c.len() != rows·cols`.
    pub(super) fn new(c: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            Some(c.len()),
            rows.checked_mul(cols),
            "gemm: C has {} elements, expected {rows}x{cols}",
            c.len()
        );
        ColsMut {
            ptr: c.as_mut_ptr(),
            rows,
            cols,
            stride: cols,
            _c: std::marker::PhantomData,
        }
    }

    /// Columns `..at` and `at..`, as two blocks.
    ///
    /// # Panics
    /// If `at > cols`.
    pub(super) fn split_at_col(self, at: usize) -> (Self, Self) {
        assert!(at <= self.cols, "gemm: column split past the block");
        let right = ColsMut {
            ptr: self.ptr.wrapping_add(at),
            cols: self.cols - at,
            ..self
        };
        (ColsMut { cols: at, ..self }, right)
    }

    /// Rows `..at` and `at..`, as two blocks.
    ///
    /// # Panics
    /// If `at > rows`.
    pub(super) fn split_at_row(self, at: usize) -> (Self, Self) {
        assert!(at <= self.rows, "gemm: row split past the block");
        let bottom = ColsMut {
            ptr: self.ptr.wrapping_add(at * self.stride),
            rows: self.rows - at,
            ..self
        };
        (ColsMut { rows: at, ..self }, bottom)
    }

    /// The number of rows.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub(super) fn cols(&self) -> usize {
        self.cols
    }

    /// Whether its rows are longer than its columns: a block of a wider C.
    pub(super) fn is_column_block(&self) -> bool {
        self.stride > self.cols
    }

    /// Row `i`'s `cols` elements.
    ///
    /// # Panics
    /// If `i >= rows`.
    // Always inlined: a call out of an AVX-512 tile loop spills its
    // accumulators.
    #[inline(always)]
    pub(super) fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.rows, "gemm: row {i} of {}", self.rows);
        if self.cols == 0 {
            return &[];
        }
        // SAFETY: by the invariant, row i (i < rows, checked) is `cols`
        // elements at `ptr + i·stride` inside the borrowed slice; `&self`
        // keeps them from being written while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.ptr.add(i * self.stride), self.cols) }
    }

    /// Row `i`'s `cols` elements, writable.
    ///
    /// # Panics
    /// If `i >= rows`.
    #[inline(always)]
    pub(super) fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "gemm: row {i} of {}", self.rows);
        if self.cols == 0 {
            return &mut [];
        }
        // SAFETY: as in `row`; `&mut self` makes this the only live borrow
        // of these elements.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.stride), self.cols) }
    }

    /// The first element, for matrixmultiply (row stride `stride`).
    fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
        let mut c = vec![0.0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for l in 0..a.cols {
                    let av = a.data[i * a.row_stride + l * a.col_stride] as f64;
                    let bv = b.data[l * b.row_stride + j * b.col_stride] as f64;
                    c[i * b.cols + j] += av * bv;
                }
            }
        }
        c
    }

    /// `n` values in [-1, 1), a different run per `seed`.
    pub(in crate::kernels) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn transposed_views_match_a_naive_product() {
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (2, 64, 1)] {
            let a = values(m * k, 1);
            let bt = values(n * k, 2); // B stored transposed: n×k row-major
            let av = MatRef::row_major(&a, m, k);
            let bv = MatRef::row_major(&bt, n, k).t();
            let mut c = vec![f32::NAN; m * n]; // beta = 0 must not read C
            gemm(1.0, av, bv, 0.0, &mut c);
            for (got, want) in c.iter().zip(naive(av, bv)) {
                assert!((*got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
            }
        }
    }

    #[test]
    fn beta_one_accumulates_and_k_zero_scales() {
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut c = [10.0];
        gemm(
            1.0,
            MatRef::row_major(&a, 1, 2),
            MatRef::row_major(&b, 2, 1),
            1.0,
            &mut c,
        );
        assert_eq!(c, [21.0]);

        let mut c = [f32::NAN, 2.0];
        gemm(
            1.0,
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 1),
            0.0,
            &mut c,
        );
        assert_eq!(c, [0.0, 0.0]);
        let mut c = [1.0, 2.0];
        gemm(
            1.0,
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 1),
            3.0,
            &mut c,
        );
        assert_eq!(c, [3.0, 6.0]);
    }

    #[test]
    fn zero_sized_outputs_do_nothing() {
        let mut c: [f32; 0] = [];
        gemm(
            1.0,
            MatRef::row_major(&[], 0, 3),
            MatRef::row_major(&[0.0; 6], 3, 2),
            0.0,
            &mut c,
        );
        gemm(
            1.0,
            MatRef::row_major(&[0.0; 6], 2, 3),
            MatRef::row_major(&[], 3, 0),
            0.0,
            &mut c,
        );
    }

    #[test]
    fn views_inside_larger_and_unaligned_slices() {
        // A view may start at an odd offset of a bigger buffer.
        let buf = values(40, 3);
        let a = MatRef::row_major(&buf[1..], 3, 4);
        let b = MatRef::row_major(&buf[13..], 4, 2);
        let mut c = vec![0.0; 6];
        gemm(2.0, a, b, 0.0, &mut c);
        for (got, want) in c.iter().zip(naive(a, b)) {
            assert!((*got as f64 - 2.0 * want).abs() <= 1e-5 * (1.0 + want.abs()));
        }
    }

    #[test]
    fn strided_views_reaching_exactly_the_last_element() {
        // A 3×2 view with row stride 5 and column stride 2 reaches index
        // 2·5 + 1·2 = 12: a 13-element slice is just enough.
        let buf = values(13, 4);
        let a = MatRef::new(&buf, 3, 2, 5, 2);
        let b = MatRef::row_major(&buf[..4], 2, 2);
        let mut c = vec![0.0; 6];
        gemm(1.0, a, b, 0.0, &mut c);
        for (got, want) in c.iter().zip(naive(a, b)) {
            assert!((*got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
        }
        // The same through a transpose and a row block at the far end.
        let at = MatRef::new(&buf, 2, 3, 2, 5).t().row_block(2, 1);
        let mut c1 = vec![0.0; 2];
        gemm(1.0, at, b, 0.0, &mut c1);
        assert_eq!(c1, c[4..]);
        assert!(std::panic::catch_unwind(|| MatRef::new(&buf[..12], 3, 2, 5, 2)).is_err());
        assert!(std::panic::catch_unwind(|| MatRef::new(&buf, 2, 2, usize::MAX, 1)).is_err());
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_view_past_its_slice_is_refused() {
        let _ = MatRef::row_major(&[0.0; 5], 2, 3);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_view_whose_size_overflows_is_refused() {
        let _ = MatRef::row_major(&[0.0; 5], usize::MAX, 2);
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_inner_dimensions_are_refused() {
        let mut c = [0.0; 4];
        gemm(
            1.0,
            MatRef::row_major(&[0.0; 6], 2, 3),
            MatRef::row_major(&[0.0; 4], 2, 2),
            0.0,
            &mut c,
        );
    }

    /// gemm_par's column cuts call sgemm directly: the check must come
    /// first, for halves (4–16 MFLOP) and for one block per thread alike.
    #[test]
    fn gemm_par_refuses_mismatched_inner_dimensions_before_cutting() {
        for (m, k, n) in [(50, 100, 784), (64, 300, 1000)] {
            let (a, b) = (vec![0.0; m * k], vec![0.0; (k - 1) * n]);
            let mut c = vec![0.0; m * n];
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let refused = pool.install(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    gemm_par(
                        1.0,
                        MatRef::row_major(&a, m, k),
                        MatRef::row_major(&b, k - 1, n),
                        0.0,
                        &mut c,
                    )
                }))
            });
            let message = refused.expect_err("a mismatched product must panic");
            let text = message
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert!(text.contains("inner dimensions"), "{m}x{k}x{n}: {text}");
        }
    }

    #[test]
    #[should_panic(expected = "C has")]
    fn a_short_output_is_refused() {
        let mut c = [0.0; 3];
        gemm(
            1.0,
            MatRef::row_major(&[0.0; 4], 2, 2),
            MatRef::row_major(&[0.0; 4], 2, 2),
            0.0,
            &mut c,
        );
    }

    /// matrixmultiply's sgemm on row-major operands, bypassing the direct path.
    fn matrixmultiply_product(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
        assert_eq!(c.len(), a.rows * b.cols);
        // SAFETY: C has exactly a.rows·b.cols elements, row stride b.cols,
        // and is a unique borrow.
        unsafe { sgemm_into(alpha, a, b, beta, c.as_mut_ptr(), b.cols) }
    }

    /// C before a product: NaN where β = 0 must keep it from being read.
    fn start_c(len: usize, beta: f32) -> Vec<f32> {
        if beta == 0.0 {
            vec![f32::NAN; len]
        } else {
            values(len, 3)
        }
    }

    /// The packed AVX-512 path against matrixmultiply: bitwise the same on
    /// AVX-512, on every layout the layers use (A and B row-major, either
    /// one a transpose, both strided inside wider buffers, neither with a
    /// unit stride), rows that are and are not multiples of its 12-row tile,
    /// widths of one and two vectors with tails, k with a short last KC
    /// block, α ≠ 1, β = 0 over NaN and β ≠ 0, and into column blocks of C as
    /// `gemm_par` cuts it. Shapes below `suits`'s bounds are included: the
    /// kernel must be right everywhere, `suits` only picks where it is used.
    #[test]
    fn packed_products_are_bitwise_matrixmultiply() {
        use crate::kernels::gemm_direct::KC;
        use crate::kernels::gemm_packed::{gemm_packed, suits};
        use crate::kernels::simd::Isa;
        if Isa::avx512() != Some(Isa::best()) {
            assert!(!suits(256, 1024, 1024));
            return;
        }
        assert!(
            suits(256, 1024, 1024) && suits(784, 256, 1024),
            "W1 and W4 large"
        );
        assert!(!suits(100, 784, 50) && !suits(784, 100, 50), "W4 small");
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (12, KC, 32),
            (13, KC + 1, 33),
            (25, 2 * KC + 44, 16),
            (40, 784, 300),
            (17, 3, 1040),
            (64, KC, 256),
            // Column blocks wider than the packed B's 1024 columns, with
            // more than one block of `l`: the scratch block reused.
            (13, KC + 7, 2200),
        ] {
            let a_data = values((m + 3) * (k + 3), 1);
            let b_data = values((2 * k + 1) * (n + 2), 2);
            let layouts = [
                (
                    "row-major",
                    MatRef::new(&a_data, m, k, k + 3, 1),
                    MatRef::new(&b_data, k, n, n + 2, 1),
                ),
                (
                    "Aᵀ",
                    MatRef::new(&a_data, k, m, m + 3, 1).t(),
                    MatRef::new(&b_data, k, n, n, 1),
                ),
                (
                    "Bᵀ",
                    MatRef::new(&a_data, m, k, k, 1),
                    MatRef::new(&b_data, n, k, k + 2, 1).t(),
                ),
                (
                    "strided",
                    MatRef::new(&a_data, m, k, 1, m + 3),
                    MatRef::new(&b_data, k, n, 2, 2 * k + 1),
                ),
            ];
            for (layout, a, b) in layouts {
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (1.0, 0.3)] {
                    let c0 = start_c(m * n, beta);
                    let mut want = c0.clone();
                    matrixmultiply_product(alpha, a, b, beta, &mut want);
                    let mut got = c0.clone();
                    gemm_packed(alpha, a, b, beta, ColsMut::new(&mut got, m, n));
                    // The same product in column blocks that cut a 32-column
                    // tile, as `gemm_par` may.
                    let mut blocks = c0.clone();
                    let cut = (n / 2).next_multiple_of(TILE).min(n);
                    let (left, right) = ColsMut::new(&mut blocks, m, n).split_at_col(cut);
                    gemm_packed(alpha, a, b.col_block(0, cut), beta, left);
                    gemm_packed(alpha, a, b.col_block(cut, n - cut), beta, right);
                    for (i, ((g, w), h)) in got.iter().zip(&want).zip(&blocks).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{layout} {m}x{k}x{n} α={alpha} β={beta} at {i}"
                        );
                        assert_eq!(
                            h.to_bits(),
                            w.to_bits(),
                            "{layout} {m}x{k}x{n} in blocks at {i}"
                        );
                    }
                }
            }
        }
    }

    /// The packed path on the extremes: NaN, ±∞, ±0, subnormals and ±1e30
    /// in A, B and C give what matrixmultiply gives (NaN where it gives NaN,
    /// whatever the payload; the same bits everywhere else), into the whole
    /// of C and into column blocks of it.
    #[test]
    fn packed_products_keep_matrixmultiplys_extremes() {
        use crate::kernels::gemm_packed::gemm_packed;
        use crate::kernels::simd::Isa;
        if Isa::avx512() != Some(Isa::best()) {
            return;
        }
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-40,
            -1e-42,
            1e30,
            -1e30,
            f32::MAX,
        ];
        let (m, k, n) = (30, 300, 70);
        let with_specials = |len: usize, seed: u32, every: usize| -> Vec<f32> {
            let mut v = values(len, seed);
            for (i, x) in v.iter_mut().enumerate().filter(|(i, _)| i % every == 0) {
                *x = specials[(i / every) % specials.len()];
            }
            v
        };
        let a_data = with_specials(m * k, 5, 97);
        let b_data = with_specials(k * n, 6, 101);
        let c0 = with_specials(m * n, 7, 13);
        let (a, b) = (
            MatRef::row_major(&a_data, m, k),
            MatRef::row_major(&b_data, k, n),
        );
        // α = 1, as every layer calls it. (With another α, matrixmultiply
        // rounds α·AB on its own in a tile at C's edge before adding β·C,
        // while this path and its full tiles fold both in one FMA; the two
        // can differ where α·AB overflows, underflows or is inexact.)
        for beta in [0.0, 1.0, 0.5] {
            let alpha = 1.0;
            let mut want = c0.clone();
            matrixmultiply_product(alpha, a, b, beta, &mut want);
            let mut got = c0.clone();
            gemm_packed(alpha, a, b, beta, ColsMut::new(&mut got, m, n));
            // And in two column blocks, as `gemm_par` cuts C: with k > KC
            // their partial sums pass through the scratch block.
            let mut blocks = c0.clone();
            let (left, right) = ColsMut::new(&mut blocks, m, n).split_at_col(TILE);
            gemm_packed(alpha, a, b.col_block(0, TILE), beta, left);
            gemm_packed(alpha, a, b.col_block(TILE, n - TILE), beta, right);
            assert!(want.iter().any(|v| v.is_nan()) && want.iter().any(|v| v.is_finite()));
            for (i, ((g, h), w)) in got.iter().zip(&blocks).zip(&want).enumerate() {
                for (how, g) in [("whole", g), ("in blocks", h)] {
                    if w.is_nan() {
                        assert!(g.is_nan(), "{how} α={alpha} β={beta} at {i}: {g}, not NaN");
                    } else {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{how} α={alpha} β={beta} at {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// The direct (no packing) path against matrixmultiply: bitwise the same
    /// on AVX-512 (the same FMAs in the same order, the same KC blocks), for
    /// row counts that are and are not multiples of its 12-row tile, widths
    /// of one and two vectors with tails, k across several KC blocks,
    /// α ≠ 1, β = 0 over NaN and β ≠ 0. On other instruction sets (FMA or
    /// not) it is checked against f64.
    #[test]
    fn direct_products_are_bitwise_matrixmultiply() {
        use crate::kernels::gemm_direct::{gemm_direct, gemm_direct_strided, suits, KC};
        use crate::kernels::simd::Isa;
        let bitwise = Isa::avx512() == Some(Isa::best());
        assert_eq!(
            suits(100, 784, 50),
            bitwise,
            "W4 small's forward takes the direct path"
        );
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (12, 300, 32),
            (13, KC + 1, 50),
            (100, 784, 50),
            (25, 3 * KC, 10),
            (7, 1, 17),
            (100, 50, 10),
            (24, 40, 64),
            (5, 600, 48),
        ] {
            let a_data = values((m + 3) * (k + 3), 1);
            let b_data = values(k * (n + 2), 2);
            // Row strides longer than the rows: views inside wider buffers.
            // A row-major, and column-major (the transpose of a k × (m + 3)
            // matrix, as Xᵀ in Xᵀ·dY).
            let a_rows = MatRef::new(&a_data, m, k, k + 3, 1);
            let a_cols = MatRef::new(&a_data, m, k, 1, m + 3);
            let b = MatRef::new(&b_data, k, n, n + 2, 1);
            for ((a, (rsa, csa)), (alpha, beta)) in [(a_rows, (k + 3, 1)), (a_cols, (1, m + 3))]
                .into_iter()
                .flat_map(|a| [(1.0, 0.0), (0.5, 1.0), (1.0, 0.3)].map(|ab| (a, ab)))
            {
                let c0 = start_c(m * n, beta);
                let mut want = c0.clone();
                matrixmultiply_product(alpha, a, b, beta, &mut want);
                let mut got = c0.clone();
                if csa == 1 {
                    gemm_direct(
                        m,
                        k,
                        n,
                        alpha,
                        &a_data,
                        rsa,
                        &b_data,
                        n + 2,
                        beta,
                        &mut got,
                        n,
                    );
                } else {
                    gemm_direct_strided(
                        m,
                        k,
                        n,
                        alpha,
                        &a_data,
                        rsa,
                        csa,
                        &b_data,
                        n + 2,
                        beta,
                        &mut got,
                        n,
                    );
                }
                let mut via_gemm = c0.clone();
                gemm(alpha, a, b, beta, &mut via_gemm);
                let exact = naive(a, b);
                for (i, ((g, w), v)) in got.iter().zip(&want).zip(&via_gemm).enumerate() {
                    let e = alpha as f64 * exact[i]
                        + beta as f64 * (if beta == 0.0 { 0.0 } else { c0[i] as f64 });
                    assert!(!g.is_nan(), "{m}x{k}x{n}: NaN at {i}");
                    assert!(
                        (*g as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()) * (k as f64).sqrt(),
                        "{m}x{k}x{n} at {i}: {g} vs {e}"
                    );
                    if bitwise {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{m}x{k}x{n} A strides ({rsa}, {csa}) α={alpha} β={beta} at {i}"
                        );
                        assert_eq!(v.to_bits(), w.to_bits(), "{m}x{k}x{n} through gemm at {i}");
                    }
                }
            }
        }
    }

    /// Cut by columns (m ≤ n) or by rows (m > n), with edges that cut no
    /// tile and edges that do, strided operands and β ≠ 0: bitwise the
    /// single call, at 2, 3 and 4 threads.
    #[test]
    fn gemm_par_is_bitwise_gemm_for_row_and_column_cuts() {
        for &(m, k, n) in &[
            (64, 300, 1000),
            (37, 500, 1031),
            (1000, 300, 70),
            (513, 129, 200),
            // Halves: rows (W1 100×784×50's forward and dW), columns, and
            // a row cut through the last 16-row tile.
            (100, 784, 50),
            (784, 100, 50),
            (50, 100, 784),
            (133, 300, 97),
        ] {
            let a_data = values(m * k, 1);
            let b_data = values(k * n, 2);
            let c0 = values(m * n, 3);
            for (a, b) in [
                (
                    MatRef::row_major(&a_data, m, k),
                    MatRef::row_major(&b_data, k, n),
                ),
                (
                    MatRef::row_major(&a_data, k, m).t(),
                    MatRef::row_major(&b_data, n, k).t(),
                ),
            ] {
                assert!(
                    2 * m * k * n >= GEMM_HALVES_MIN_FLOPS,
                    "{m}x{k}x{n} must split"
                );
                let mut want = c0.clone();
                gemm(0.5, a, b, 1.0, &mut want);
                for threads in 2..=4 {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut got = c0.clone();
                    pool.install(|| gemm_par(0.5, a, b, 1.0, &mut got));
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(g, w)| g.to_bits() == w.to_bits());
                    assert!(same, "{m}x{k}x{n} at {threads} threads");
                }
            }
        }
    }
}
