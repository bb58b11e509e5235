//! Large products on AVX-512, with both operands packed into the
//! micro-kernel's layout: the same arithmetic as matrixmultiply, laid out for
//! this machine's caches.
//!
//! matrixmultiply's AVX-512 sgemm ran W1's three 256×1024×1024 products
//! ~18% slower per core than PyTorch's oneDNN (BENCHMARKS.md, "Own packed
//! sgemm"). This path keeps its sequence of IEEE operations, and so its
//! bits, and changes the blocking:
//!
//! - the micro-kernel is [`gemm_direct`](super::gemm_direct)'s 12 × 32 tile
//!   (12 broadcasts of A against two vectors of B, 24 accumulators, FMA in
//!   `l` order over blocks of [`KC`] = 256, each block folded into C as
//!   `α·acc + β·C`), run on packed operands;
//! - B is packed once per block of `KC` rows and [`NC`] columns (1 MiB, half
//!   of a core's L2) in slivers of `KC × 32` ([`SLIVER_PAD`] apart), read
//!   in turn by every sliver of A; each A sliver (`KC × 12`, 12 KiB) is
//!   packed once and stays in L1 while all of B's slivers stream past it
//!   from L2 — the loop order that needs the fewer bytes per flop from L2
//!   (an A element is reused against 32 columns, a B element against only
//!   12 rows);
//! - the kernel prefetches B [`PREFETCH_ROWS`] rows ahead and C's tile
//!   before it folds into it;
//! - into a column block of a wider C, the folds before the last go to a
//!   scratch block with rows not 4 KiB apart ([`SCRATCH_PAD`]).
//!
//! The loop over B's blocks is [`Fold::pass`], which
//! [`gemm_balanced`](super::gemm_balanced) also runs on blocks of rows that
//! two threads share out.
//!
//! It is used on AVX-512 only (where it is measured), for products that
//! [`suits`] picks. Every element goes through the same operations in the
//! same order as through matrixmultiply, so which path computes a product,
//! or a block of it, never shows (`gemm::tests::packed_products_are_bitwise_matrixmultiply`).
//! One exception, outside the layers' use: matrixmultiply rounds `α·acc` on
//! its own in the tiles at C's edge before adding `β·C`, so with α ≠ 1 such
//! an element can differ where `α·acc` is inexact, overflows or underflows.
//! Every layer calls with α = 1.
//! No `unsafe` here: C is written through [`ColsMut`]'s checked rows.

use super::gemm::{ColsMut, MatRef};
use super::gemm_direct::{folded, run_tile_rows, store, KC};
use super::simd::{dispatch, Isa, Lanes, SimdKernel};

/// Rows of A per micro-kernel tile.
pub(super) const MR: usize = 12;
/// Columns of B per micro-kernel tile: two AVX-512 vectors.
pub(super) const NR: usize = 32;
/// Columns of B packed at once: `KC × NC` f32 is 1 MiB.
pub(super) const NC: usize = 1024;
/// Elements (128 bytes) between the end of one packed B sliver and the
/// start of the next. Back to back, slivers of `KC` rows start 32 KiB
/// apart, on the same L1 sets, and the packing writes each row of B into
/// all of them at once: with the gap, 256×1024·1024×512 at one thread took
/// 0.98× the time (2543–2551 against 2587–2602 µs, interleaved runs;
/// 64 bytes 0.99×, 192 and 320 bytes as 128).
const SLIVER_PAD: usize = 32;

/// Where packed B slivers of `kc` rows start, one after another.
pub(super) fn sliver_stride(kc: usize) -> usize {
    kc * NR + SLIVER_PAD
}

/// The length of a packed block of B `width` columns wide (whole slivers,
/// [`block_width`]) and up to [`KC`] rows: the buffer [`pack_b`] packs
/// into.
pub(super) fn packed_block_len(width: usize) -> usize {
    packed_len(width, KC)
}

/// The length of a block of B `nc` columns wide and `kc` rows packed: `kc`
/// rows of whole slivers.
fn packed_len(nc: usize, kc: usize) -> usize {
    nc.div_ceil(NR) * sliver_stride(kc)
}

/// How many rows of a B sliver ahead the kernel prefetches.
const PREFETCH_ROWS: usize = 8;
/// How many rows of a row-major B ahead its packing prefetches.
const PACK_AHEAD: usize = 2;

/// Whether an m×k · k×n product runs here: on AVX-512 (when it is the
/// instruction set in use), from 16 rows, 256 inner elements and 256
/// columns, where packing both operands pays (BENCHMARKS.md, "Own packed
/// sgemm": smaller k or n ran 1.0–1.4× matrixmultiply's time). The result
/// is the same either way; only the time differs.
pub(crate) fn suits(m: usize, k: usize, n: usize) -> bool {
    m >= 16 && k >= 256 && n >= 256 && Isa::avx512().is_some_and(|isa| isa == Isa::best())
}

/// `C = alpha·A·B + beta·C`, with `beta == 0` never reading C (as
/// matrixmultiply).
///
/// # Panics
/// If the shapes disagree, or AVX-512 is not the instruction set in use
/// (callers ask [`suits`] first).
pub(crate) fn gemm_packed(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: ColsMut<'_>) {
    assert!(
        a.cols() == b.rows() && c.rows() == a.rows() && c.cols() == b.cols(),
        "gemm_packed: a {}x{} · {}x{} product into {}x{}",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols(),
        c.rows(),
        c.cols()
    );
    let isa = Isa::best();
    assert!(Isa::avx512() == Some(isa), "gemm_packed: AVX-512 only");
    dispatch(
        isa,
        Packed {
            alpha,
            a,
            b,
            beta,
            c,
        },
    );
}

struct Packed<'a> {
    alpha: f32,
    a: MatRef<'a>,
    b: MatRef<'a>,
    beta: f32,
    c: ColsMut<'a>,
}

impl SimdKernel for Packed<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Packed {
            alpha,
            a,
            b,
            beta,
            mut c,
        } = self;
        assert_eq!(V::N, LANES, "gemm_packed: a tile is two vectors");
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        if m == 0 || n == 0 {
            return;
        }
        // Packed buffers are written in full before they are read; the
        // zeros only make them initialised.
        let mut a_pack = [0.0f32; KC * MR];
        // The scratch block (see `SCRATCH_PAD`), when C is a column block
        // and there is more than one block of `l`; one allocation with the
        // packed B (two freed at once crossed glibc's trim threshold and
        // were mapped afresh, page faults and all, on every call).
        // The widest block of B, in whole slivers.
        let width = block_width(n);
        let b_len = packed_block_len(width);
        let scratching = k > KC && c.is_column_block();
        let scratch_rows = if scratching { m } else { 0 };
        let stride = width + SCRATCH_PAD;
        let mut buffers = vec![0.0f32; b_len + scratch_rows * stride];
        let (b_pack, scratch_buf) = buffers.split_at_mut(b_len);
        let mut scratch = ColsMut::new(scratch_buf, scratch_rows, stride);
        let fold = Fold {
            alpha,
            beta,
            a,
            k,
            scratching,
        };
        for pass in passes(k, n) {
            let b_block = pack_b::<V>(b, pass, b_pack);
            fold.pass::<V>(
                pass,
                b_block,
                0,
                m,
                &mut a_pack,
                &mut (&mut c, &mut scratch),
            );
        }
    }
}

/// One block of B, packed at once: rows `l0..l0 + kc`, columns
/// `jc..jc + nc`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pass {
    pub(super) jc: usize,
    pub(super) nc: usize,
    pub(super) l0: usize,
    pub(super) kc: usize,
}

impl Pass {
    /// The packed block's length.
    pub(super) fn packed_len(self) -> usize {
        packed_len(self.nc, self.kc)
    }
}

/// The width of the widest block of a B with `n` columns, in whole
/// slivers: a packed block holds `KC` rows of it, and a scratch block's
/// rows are it and [`SCRATCH_PAD`] apart.
pub(super) fn block_width(n: usize) -> usize {
    NC.min(n).next_multiple_of(NR)
}

/// The passes over a k × n B, in the order their folds must run: blocks
/// of [`NC`] columns, each in blocks of [`KC`] rows.
pub(super) fn passes(k: usize, n: usize) -> impl Iterator<Item = Pass> {
    (0..n).step_by(NC).flat_map(move |jc| {
        (0..k).step_by(KC).map(move |l0| Pass {
            jc,
            nc: NC.min(n - jc),
            l0,
            kc: KC.min(k - l0),
        })
    })
}

/// What every pass of one product shares.
#[derive(Clone, Copy)]
pub(super) struct Fold<'a> {
    pub(super) alpha: f32,
    /// C's factor in the first pass of `l` (later ones add to it).
    pub(super) beta: f32,
    pub(super) a: MatRef<'a>,
    pub(super) k: usize,
    /// Whether the folds before the last go to the scratch block.
    pub(super) scratching: bool,
}

impl Fold<'_> {
    /// Folds one pass (its B block packed in `b_block`) into `rows` rows of
    /// the targets, which are A's rows `i_base..`: one A sliver after
    /// another, all of B's slivers against each.
    #[inline(always)]
    pub(super) fn pass<V: Lanes>(
        self,
        pass: Pass,
        b_block: &[f32],
        i_base: usize,
        rows: usize,
        a_pack: &mut [f32; KC * MR],
        targets: &mut Targets<'_, '_, '_>,
    ) {
        let Pass { jc, nc, l0, kc } = pass;
        let beta = if l0 == 0 { self.beta } else { 1.0 };
        let from_scratch = self.scratching && l0 > 0;
        let to_scratch = self.scratching && l0 + kc < self.k;
        for i0 in (0..rows).step_by(MR) {
            let r = MR.min(rows - i0);
            let a_sliver = &mut a_pack[..kc * MR];
            pack_a::<V>(self.a, i_base + i0, r, l0, kc, a_sliver);
            for s in 0..nc.div_ceil(NR) {
                let j0 = jc + s * NR;
                let tile = Tile {
                    kc,
                    a: a_sliver,
                    // The rest of the block, so that the prefetch runs on
                    // into the next sliver.
                    b: &b_block[s * sliver_stride(kc)..],
                    alpha: self.alpha,
                    beta,
                    i0,
                    j0,
                    sj0: j0 - jc,
                    from_scratch,
                    to_scratch,
                    w: NR.min(jc + nc - j0),
                };
                tile.run_rows::<V>(r, targets);
            }
        }
    }
}

/// One register tile: rows `i0..` (R of them) × columns `j0..j0 + w` of C.
#[derive(Clone, Copy)]
struct Tile<'a> {
    kc: usize,
    /// The packed A sliver: `kc` groups of [`MR`].
    a: &'a [f32],
    /// The packed B sliver (`kc` rows of [`NR`]) and what follows it.
    b: &'a [f32],
    alpha: f32,
    beta: f32,
    i0: usize,
    j0: usize,
    /// The tile's first column in the scratch block.
    sj0: usize,
    /// Whether the fold reads its start from the scratch block instead of C.
    from_scratch: bool,
    /// Whether the fold writes the scratch block instead of C.
    to_scratch: bool,
    w: usize,
}

impl Tile<'_> {
    /// Row `i` of the tile's start: its `w` elements in C, or in the
    /// scratch block when the fold reads from there.
    #[inline(always)]
    fn start_row<'r>(&self, c: &'r ColsMut<'_>, scratch: &'r ColsMut<'_>, i: usize) -> &'r [f32] {
        if self.from_scratch {
            &scratch.row(self.i0 + i)[self.sj0..][..self.w]
        } else {
            &c.row(self.i0 + i)[self.j0..][..self.w]
        }
    }

    #[inline(always)]
    fn run_rows<V: Lanes>(self, rows: usize, c: &mut Targets<'_, '_, '_>) {
        run_tile_rows!(self, V, rows, self.w > LANES, c)
    }

    // `i` indexes the tile's rows of A and its accumulators at once: an
    // index loop is the register tile's shape, not a missed iterator.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn run<V: Lanes, const R: usize, const TWO: bool>(self, targets: &mut Targets<'_, '_, '_>) {
        let (c, scratch) = targets;
        let (kc, w) = (self.kc, self.w);
        for i in 0..R {
            let row = self.start_row(c, scratch, i);
            V::prefetch(row);
            V::prefetch(&row[w - 1..]);
        }
        let a = &self.a[..kc * MR];
        let b = &self.b[..kc * NR];
        let mut acc0 = [V::splat(0.0); R];
        let mut acc1 = [V::splat(0.0); R];
        // A macro, not a closure: closures do not inherit the AVX-512 target
        // feature of the function they sit in, and would not be inlined.
        macro_rules! step {
            ($a_l:expr, $b_l:expr) => {{
                let a_l: &[f32; MR] = $a_l;
                let b_l: &[f32; NR] = $b_l;
                let b0 = V::load(b_l);
                let b1 = if TWO { V::load(&b_l[LANES..]) } else { b0 };
                for i in 0..R {
                    let av = V::splat(a_l[i]);
                    acc0[i] = av.mul_add(b0, acc0[i]);
                    if TWO {
                        acc1[i] = av.mul_add(b1, acc1[i]);
                    }
                }
            }};
        }
        // Rows with a B row `PREFETCH_ROWS` ahead to prefetch (into the
        // next sliver at the end), then the rest.
        let ahead = self.b.get(PREFETCH_ROWS * NR..).unwrap_or(&[]);
        let with_prefetch = kc.min(ahead.len() / NR);
        let (a0, a1) = a.split_at(with_prefetch * MR);
        let (b0, b1) = b.split_at(with_prefetch * NR);
        // Slices of arrays, not `chunks_exact`, whose zips divide by the
        // chunk length and, with two kernels calling this one, were not
        // inlined.
        let (a0, a1) = (a0.as_chunks::<MR>().0, a1.as_chunks::<MR>().0);
        let (b0, b1) = (b0.as_chunks::<NR>().0, b1.as_chunks::<NR>().0);
        for ((a_l, b_l), p) in a0.iter().zip(b0).zip(ahead.as_chunks::<NR>().0) {
            V::prefetch(p);
            V::prefetch(&p[LANES..]);
            step!(a_l, b_l);
        }
        for (a_l, b_l) in a1.iter().zip(b1) {
            step!(a_l, b_l);
        }
        let alpha = V::splat(self.alpha);
        let (n0, n1) = (w.min(V::N), w.saturating_sub(V::N));
        for i in 0..R {
            let src = self.start_row(c, scratch, i);
            let v0 = folded(alpha, acc0[i], self.beta, &src[..n0]);
            let v1 = if n1 > 0 {
                folded(alpha, acc1[i], self.beta, &src[V::N..])
            } else {
                v0
            };
            let dst = if self.to_scratch {
                &mut scratch.row_mut(self.i0 + i)[self.sj0..][..w]
            } else {
                &mut c.row_mut(self.i0 + i)[self.j0..][..w]
            };
            store(v0, &mut dst[..n0]);
            if n1 > 0 {
                store(v1, &mut dst[V::N..]);
            }
        }
    }
}

/// C and the scratch block, as a tile folds into them.
pub(super) type Targets<'t, 'c, 's> = (&'t mut ColsMut<'c>, &'t mut ColsMut<'s>);

/// Elements added to the rows of the scratch block, so that they are not a
/// multiple of 4 KiB apart when C's are.
///
/// Into a column block of a wider C (each half of `gemm_par`'s column cut)
/// with more than one block of `l`, a tile folds its first block's sums
/// from C into the scratch block (the block's shape, its rows `nc` + 16
/// apart), the middle ones from scratch to scratch, and only the last one
/// into C: C is read once and written once. Its own rows (4 KiB apart in W1
/// and W4 large, every row sharing a cache line with the other half) cost
/// the two column halves of 256×784 · 784×1024 at 2 threads 2.25–2.35 ms
/// against 2.11–2.16 ms this way, 256×1024 · 1024×1024 2.79–2.84 against
/// 2.68–2.71, and its dX (·Wᵀ) 2.81–2.88 against 2.71–2.73 (BENCHMARKS.md).
/// Into a whole C (one thread) it measured no faster, and is not used. The
/// same value is folded and stored either way, so the bits do not change.
pub(super) const SCRATCH_PAD: usize = 16;

/// Lanes per vector: the kernel's tile is two of them.
const LANES: usize = NR / 2;

/// The transpose of the 16×16 matrix whose row `r` is `v[r]`: four rounds
/// of splitting neighbouring rows into even and odd lanes. (A round maps
/// lane bits `c3c2c1c0` of rows `2i, 2i + 1` to lane bits `r0c3c2c1` of rows
/// `i` (c0 = 0) and `i + 8` (c0 = 1); after four, lane and row bits have
/// traded places.)
#[inline(always)]
fn transpose<V: Lanes>(v: &mut [V; LANES]) {
    for _ in 0..LANES.trailing_zeros() {
        let old = *v;
        for i in 0..LANES / 2 {
            (v[i], v[i + LANES / 2]) = V::deinterleave(old[2 * i], old[2 * i + 1]);
        }
    }
}

/// Packs the pass's block of B (rows `l0..l0 + kc`, columns `jc..jc + nc`)
/// into the start of `buf`, and returns it: one sliver of `kc` rows ×
/// [`NR`] columns after another, the last padded with zeros.
#[inline(always)]
pub(super) fn pack_b<'d, V: Lanes>(b: MatRef<'_>, pass: Pass, buf: &'d mut [f32]) -> &'d [f32] {
    let Pass { jc, nc, l0, kc } = pass;
    let dst = &mut buf[..pass.packed_len()];
    let (data, rs, cs) = b.parts();
    if cs == 1 {
        // Rows of B are contiguous: read them in order, each into every
        // sliver in turn. (Sliver by sliver, each read is 128 bytes from
        // the next 4 KiB page, which the hardware prefetcher does not
        // follow: packing took 9% of W1's X·W that way, 6% this way.)
        for l in 0..kc {
            let src = &data[(l0 + l) * rs + jc..][..nc];
            if let Some(next) = data.get((l0 + l + PACK_AHEAD) * rs + jc..) {
                V::prefetch(next);
            }
            let mut slivers = dst.chunks_exact_mut(sliver_stride(kc));
            let mut runs = src.chunks_exact(NR);
            for (run, sliver) in runs.by_ref().zip(slivers.by_ref()) {
                let row = &mut sliver[l * NR..][..NR];
                V::load(run).store(row);
                V::load(&run[LANES..]).store(&mut row[LANES..]);
            }
            let tail = runs.remainder();
            if let Some(sliver) = slivers.next() {
                let row = &mut sliver[l * NR..][..NR];
                row[..tail.len()].copy_from_slice(tail);
                row[tail.len()..].fill(0.0);
            }
        }
        return dst;
    }
    for (s, sliver) in dst.chunks_exact_mut(sliver_stride(kc)).enumerate() {
        let sliver = &mut sliver[..kc * NR];
        let j0 = jc + s * NR;
        let w = NR.min(jc + nc - j0);
        if w < NR {
            sliver.fill(0.0);
        }
        let mut j = 0;
        if rs == 1 {
            // Columns of B are contiguous (B is a transpose): 16 columns ×
            // 16 rows at a time, turned in registers.
            while j + LANES <= w {
                let mut l = 0;
                while l + LANES <= kc {
                    // Loops, not `array::from_fn`: its closure would not
                    // inherit the target feature, and with two kernels
                    // calling this function it was not inlined.
                    let mut v = [V::splat(0.0); LANES];
                    for (c, v) in v.iter_mut().enumerate() {
                        *v = V::load(&data[(j0 + j + c) * cs + l0 + l..]);
                    }
                    transpose(&mut v);
                    for (r, v) in v.iter().enumerate() {
                        v.store(&mut sliver[(l + r) * NR + j..]);
                    }
                    l += LANES;
                }
                for c in j..j + LANES {
                    let col = &data[(j0 + c) * cs + l0..];
                    for l in l..kc {
                        sliver[l * NR + c] = col[l];
                    }
                }
                j += LANES;
            }
        }
        // What is left, one column at a time along its stride.
        for j in j..w {
            let col = &data[(j0 + j) * cs + l0 * rs..];
            for (l, row) in sliver.chunks_exact_mut(NR).enumerate() {
                row[j] = col[l * rs];
            }
        }
    }
    dst
}

/// Packs rows `i0..i0 + rows` and columns `l0..l0 + kc` of A into `dst`:
/// `kc` groups of [`MR`], element (i, l) at `l·MR + i`. Places past `rows`
/// are left as they are: the kernel for `rows` rows never reads them.
#[inline(always)]
fn pack_a<V: Lanes>(a: MatRef<'_>, i0: usize, rows: usize, l0: usize, kc: usize, dst: &mut [f32]) {
    let (data, rs, cs) = a.parts();
    let dst = &mut dst[..kc * MR];
    if rs == 1 && rows == MR {
        // Columns of A are contiguous (A is a transpose): 12 at a time.
        for (l, group) in dst.chunks_exact_mut(MR).enumerate() {
            let src = &data[(l0 + l) * cs + i0..][..MR];
            let group: &mut [f32; MR] = group.try_into().expect("MR elements");
            *group = src.try_into().expect("MR elements");
        }
        return;
    }
    let mut l = 0;
    if cs == 1 {
        // Rows of A are contiguous: 16 columns of its rows at a time, turned
        // in registers (rows past `rows` read as zeros, never stored).
        while l + LANES <= kc {
            let mut v = [V::splat(0.0); LANES];
            for (i, v) in v.iter_mut().enumerate().take(rows) {
                *v = V::load(&data[(i0 + i) * rs + l0 + l..]);
            }
            transpose(&mut v);
            for (c, v) in v.iter().enumerate() {
                v.store_partial(&mut dst[(l + c) * MR..][..rows]);
            }
            l += LANES;
        }
    }
    for i in 0..rows {
        let row = &data[(i0 + i) * rs + l0 * cs..];
        for l in l..kc {
            dst[l * MR + i] = row[l * cs];
        }
    }
}
