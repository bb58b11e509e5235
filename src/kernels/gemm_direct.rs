//! Small products straight from their operands (B row-major, A row- or
//! column-major), with no packing.
//!
//! matrixmultiply packs both operands of every product into its own layout
//! first. For a product whose B is small (W4 small's `x·W`, 100×784 · 784×50)
//! that packing costs as much as the arithmetic: the forward product takes
//! 95 µs through matrixmultiply and 68 µs here (BENCHMARKS.md, "Small products
//! without packing").
//!
//! The kernel is written once on [`Lanes`] and used on AVX-512 only, where it
//! is measured: a tile of R ≤ 12 rows × 2 vectors (32 columns), each row's
//! element of A broadcast against two vectors of a row of B, summed with FMA
//! in `l` order in blocks of [`KC`], and each block folded into C as
//! `α·acc + β·C` (β on the first block, 1 after). That is the same sequence of
//! IEEE operations as matrixmultiply's AVX-512 kernel (KC = 256, fused
//! multiply-add), so the result is bitwise the same as [`gemm`]'s other path
//! (`gemm::tests::direct_products_are_bitwise_matrixmultiply`).
//!
//! ```
//! use densegrad::kernels::gemm::{gemm, MatRef};
//! // A 3×2 · 2×2 product: small enough for this path on AVX-512.
//! let a = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
//! let b = MatRef::row_major(&[1.0, 0.0, 0.0, 1.0], 2, 2);
//! let mut c = [0.0; 6];
//! gemm(1.0, a, b, 0.0, &mut c);
//! assert_eq!(c, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! ```
//!
//! [`gemm`]: crate::kernels::gemm::gemm

use super::simd::{dispatch, Isa, Lanes, SimdKernel};

/// Products are summed in blocks of this many `l` and folded into C after
/// each, as matrixmultiply's sgemm does (its `KC`), so the bits agree.
pub const KC: usize = 256;

/// Rows per tile: 12 rows × 2 vectors is 24 accumulators, which with the two
/// B vectors and a broadcast fill AVX-512's 32 registers.
const MR: usize = 12;

/// Whether [`gemm_direct`] is the faster way to compute an m×k · k×n product
/// whose B has column stride 1 and whose A has one unit stride, on the
/// instruction set in use.
///
/// Measured against matrixmultiply on AVX-512 (BENCHMARKS.md): faster when
/// B fits in L2 (k·n ≤ 256K, n ≤ 512) and the last 32-column tile is more
/// than half full (matrixmultiply's tiles are 16 wide); slower for large B,
/// whose rows then evict each other from L1. With a column-major A (`Xᵀ·dY`,
/// 784×100 · 100×50) it is level with matrixmultiply's packed product, and
/// the step that holds it 1–2% faster (no packing of A).
///
/// ```
/// # use densegrad::kernels::gemm_direct::suits;
/// assert!(!suits(256, 1024, 1024)); // W1's products: B is 4 MiB
/// ```
pub fn suits(m: usize, k: usize, n: usize) -> bool {
    let tail = n % 32;
    m > 0
        && k > 0
        && n > 0
        && n <= 512
        && k.saturating_mul(n) <= 1 << 18
        && (n < 16 || tail == 0 || tail > 16)
        && Isa::avx512().is_some_and(|isa| isa == Isa::best())
}

/// `C = α·A·B + β·C` for row-major A (m×k, row stride `rsa`), row-major B
/// (k×n, row stride `rsb`) and row-major C (m×n, row stride `rsc`), on
/// [`Isa::best`]. With β = 0, C is written without being read.
///
/// # Panics
/// If a row stride is shorter than its row, or a slice is too short for
/// its matrix.
///
/// ```
/// # use densegrad::kernels::gemm_direct::gemm_direct;
/// let a = [1.0, 2.0]; // 1×2
/// let b = [3.0, 4.0]; // 2×1
/// let mut c = [f32::NAN]; // β = 0 never reads it
/// gemm_direct(1, 2, 1, 1.0, &a, 2, &b, 1, 0.0, &mut c, 1);
/// assert_eq!(c, [11.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm_direct(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    b: &[f32],
    rsb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    gemm_direct_strided(m, k, n, alpha, a, rsa, 1, b, rsb, beta, c, rsc)
}

/// Whether an m×k A with strides (`rsa`, `csa`) is one [`gemm_direct`]
/// reads: row-major with rows that do not overlap, or column-major.
pub(crate) fn a_layout_suits(k: usize, rsa: usize, csa: usize) -> bool {
    (csa == 1 && rsa >= k) || rsa == 1
}

/// Whether a k×n B with strides (`rsb`, `csb`) is one [`gemm_direct`]
/// reads: row-major with rows that do not overlap.
pub(crate) fn b_layout_suits(n: usize, rsb: usize, csb: usize) -> bool {
    csb == 1 && rsb >= n
}

/// [`gemm_direct`] for an A that is row-major (`csa == 1`) or column-major
/// (`rsa == 1`: the transpose of a row-major matrix, as `Xᵀ` in `Xᵀ·dY`).
/// A column-major A gives each step `l` its tile's rows of A as one
/// contiguous run, so it is no harder to read than a row-major one.
///
/// # Panics
/// If A's or B's strides are not a layout it reads ([`a_layout_suits`],
/// [`b_layout_suits`]), C's row stride is shorter than its row, or a slice
/// is too short for its matrix.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_direct_strided(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // The empty product: C = β·C, or 0 without reading C.
        for row in c.chunks_mut(rsc.max(1)).take(m) {
            let row = &mut row[..n];
            if beta == 0.0 {
                row.fill(0.0);
            } else {
                row.iter_mut().for_each(|v| *v *= beta);
            }
        }
        return;
    }
    // The last element of a rows × cols matrix with strides (rs, cs) is
    // inside a slice of `len`.
    let fits = |len: usize, rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows - 1)
            .checked_mul(rs)
            .zip((cols - 1).checked_mul(cs))
            .and_then(|(r, c)| r.checked_add(c))
            .is_some_and(|last| last < len)
    };
    assert!(
        a_layout_suits(k, rsa, csa) && b_layout_suits(n, rsb, 1) && rsc >= n,
        "gemm_direct: strides A ({rsa}, {csa}), B ({rsb}, 1), C ({rsc}, 1) for a {m}x{k} · {k}x{n} product"
    );
    assert!(
        fits(a.len(), m, k, rsa, csa) && fits(b.len(), k, n, rsb, 1) && fits(c.len(), m, n, rsc, 1),
        "gemm_direct: a {m}x{k} · {k}x{n} product does not fit its slices"
    );
    let tile = Tile {
        k,
        w: 0,
        alpha,
        beta,
        a,
        rsa,
        csa,
        b,
        rsb,
        rsc,
    };
    dispatch(Isa::best(), Direct { m, n, c, tile });
}

/// The whole product: C cut into tiles of [`MR`] rows and two vectors.
struct Direct<'a> {
    m: usize,
    n: usize,
    c: &'a mut [f32],
    /// Everything a tile needs but its width and where it starts.
    tile: Tile<'a>,
}

impl SimdKernel for Direct<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Direct { m, n, c, tile } = self;
        let w2 = 2 * V::N;
        for j0 in (0..n).step_by(w2) {
            let w = w2.min(n - j0);
            let mut i0 = 0;
            while i0 < m {
                let rows = MR.min(m - i0);
                let t = Tile {
                    w,
                    a: &tile.a[i0 * tile.rsa..],
                    b: &tile.b[j0..],
                    ..tile
                };
                let c = &mut c[i0 * tile.rsc + j0..];
                match (rows, w > V::N) {
                    (12, true) => t.run::<V, 12, true>(c),
                    (12, false) => t.run::<V, 12, false>(c),
                    (r, two) => t.run_rows::<V>(r, two, c),
                }
                i0 += rows;
            }
        }
    }
}

/// One column block of `w ≤ 2·N` columns and up to [`MR`] rows.
#[derive(Clone, Copy)]
struct Tile<'a> {
    k: usize,
    w: usize,
    alpha: f32,
    beta: f32,
    a: &'a [f32],
    rsa: usize,
    /// 1 (A row-major) or, with `rsa == 1`, A's column stride.
    csa: usize,
    b: &'a [f32],
    rsb: usize,
    rsc: usize,
}

impl Tile<'_> {
    /// The tile for a row count known only at run time (the last rows).
    #[inline(always)]
    fn run_rows<V: Lanes>(self, rows: usize, two: bool, c: &mut [f32]) {
        run_tile_rows!(self, V, rows, two, c)
    }

    /// `R` rows; `TWO`: whether the tile is wider than one vector.
    #[inline(always)]
    fn run<V: Lanes, const R: usize, const TWO: bool>(self, c: &mut [f32]) {
        if self.csa == 1 {
            self.run_a::<V, R, TWO, false>(c)
        } else {
            self.run_a::<V, R, TWO, true>(c)
        }
    }

    /// [`Tile::run`] with A row-major (`A_COLS` false: each row of the tile
    /// a run of `k`) or column-major (each `l` a run of `R`).
    // `l` indexes R row slices of A and a row of B at once: an index loop is
    // the register tile's shape, not a missed iterator.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn run_a<V: Lanes, const R: usize, const TWO: bool, const A_COLS: bool>(self, c: &mut [f32]) {
        let (n0, n1) = if TWO {
            (V::N, self.w - V::N)
        } else {
            (self.w, 0)
        };
        let alpha = V::splat(self.alpha);
        let mut l0 = 0;
        while l0 < self.k {
            let kc = KC.min(self.k - l0);
            let mut acc0 = [V::splat(0.0); R];
            let mut acc1 = [V::splat(0.0); R];
            let rows: [&[f32]; R] = std::array::from_fn(|i| {
                if A_COLS {
                    &[][..]
                } else {
                    &self.a[i * self.rsa + l0..][..kc]
                }
            });
            for l in 0..kc {
                let brow = &self.b[(l0 + l) * self.rsb..][..self.w];
                let b0 = load(&brow[..n0]);
                let b1 = if TWO {
                    load(&brow[V::N..])
                } else {
                    V::splat(0.0)
                };
                let col: &[f32] = if A_COLS {
                    &self.a[(l0 + l) * self.csa..][..R]
                } else {
                    &[]
                };
                for i in 0..R {
                    let av = V::splat(if A_COLS { col[i] } else { rows[i][l] });
                    acc0[i] = av.mul_add(b0, acc0[i]);
                    if TWO {
                        acc1[i] = av.mul_add(b1, acc1[i]);
                    }
                }
            }
            let beta = if l0 == 0 { self.beta } else { 1.0 };
            for i in 0..R {
                let crow = &mut c[i * self.rsc..][..self.w];
                fold(alpha, acc0[i], beta, &mut crow[..n0]);
                if TWO {
                    fold(alpha, acc1[i], beta, &mut crow[V::N..V::N + n1]);
                }
            }
            l0 += kc;
        }
    }
}

/// `$tile.run::<$v, R, TWO>($c)` with the constants R = `$rows` (1 to 12)
/// and TWO = `$two`: how a register tile of a run-time height is picked,
/// here and in [`gemm_packed`](super::gemm_packed).
macro_rules! run_tile_rows {
    ($tile:expr, $v:ty, $rows:expr, $two:expr, $c:expr) => {
        run_tile_rows!(@ $tile, $v, $rows, $two, $c; 1 2 3 4 5 6 7 8 9 10 11 12)
    };
    (@ $tile:expr, $v:ty, $rows:expr, $two:expr, $c:expr; $($r:literal)*) => {
        match ($rows, $two) {
            $(($r, true) => $tile.run::<$v, $r, true>($c),
              ($r, false) => $tile.run::<$v, $r, false>($c),)*
            _ => unreachable!("1..=12 rows"),
        }
    };
}
pub(super) use run_tile_rows;

/// `s.len() ≤ N` elements as a vector (the rest 0).
#[inline(always)]
fn load<V: Lanes>(s: &[f32]) -> V {
    if s.len() == V::N {
        V::load(s)
    } else {
        V::load_partial(s, 0.0)
    }
}

/// `c = α·acc + β·c` on `c.len() ≤ N` elements, as matrixmultiply's
/// epilogue: `α·acc` alone when β = 0 (C not read), else one FMA onto `β·c`.
#[inline(always)]
fn fold<V: Lanes>(alpha: V, acc: V, beta: f32, c: &mut [f32]) {
    store(folded(alpha, acc, beta, c), c)
}

/// `α·acc + β·c` for `c.len() ≤ N` elements (c not read when β = 0): the
/// value [`fold`] stores.
#[inline(always)]
pub(super) fn folded<V: Lanes>(alpha: V, acc: V, beta: f32, c: &[f32]) -> V {
    if beta == 0.0 {
        alpha.mul(acc)
    } else {
        alpha.mul_add(acc, load::<V>(c).mul(V::splat(beta)))
    }
}

/// The first `c.len() ≤ N` lanes of `v` into `c`.
#[inline(always)]
pub(super) fn store<V: Lanes>(v: V, c: &mut [f32]) {
    if c.len() == V::N {
        v.store(c)
    } else {
        v.store_partial(c)
    }
}
