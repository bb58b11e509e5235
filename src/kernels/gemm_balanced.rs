//! A large product's two column halves, balanced between two threads while
//! another process takes time from one of their cores.
//!
//! `gemm_par` gives each thread one half of C's columns. On a quiet machine
//! the halves end within a few per cent of each other, but when another
//! process takes the second core for a few milliseconds (as it often does
//! on the shared 2-core VMs this was measured on), the whole product waits
//! for that half: with the second core 40% busy in 4 ms bursts, W4 large at
//! 2 threads took 1.50× its quiet time, against 1.25× for work that follows
//! the free core (BENCHMARKS.md).
//!
//! Here each half is [`gemm_packed`](super::gemm_packed)'s loop over passes
//! (blocks of B, packed by the thread that folds them), cut into blocks of
//! [`BLOCK_SLIVERS`] slivers of rows, each behind a lock with the pass it
//! needs next and its own scratch block. A thread done with its own half
//! takes about half of the other half's work left (blocks not running, last
//! first, if at least [`STEAL_MIN_WORK`] block-passes), packs that half's B
//! again into its own buffer, and carries those blocks to the end; then
//! looks again. Every element is folded by the same tiles in the same order
//! whichever thread runs it, so the bits are those of one `gemm_packed`
//! call (`tests::halves_are_bitwise_one_call_whoever_runs_the_blocks`).
//!
//! Quiet, the cut into blocks measured 0.4–1.3% slower over W4 large's
//! products (1.9–2.1% on the backward's dX beside dW), so a layer runs its products this
//! way only for a while after its fixed halves ended unevenly ([`Balance`]).

use super::gemm::{ColsMut, MatRef};
use super::gemm_direct::KC;
use super::gemm_packed::{block_width, pack_b, packed_block_len, passes, Fold, MR, SCRATCH_PAD};
use super::simd::{dispatch, Isa, Lanes, SimdKernel};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// A's slivers per block of rows: 24 rows, ~55 µs of one pass of a
/// 512-column half, the unit a thread can take over.
const BLOCK_SLIVERS: usize = 2;

/// The least work (passes of blocks of rows) the other half must have left
/// for a thread done with its own to take a share: below it, packing the
/// other half's B again costs about what taking it saves, and a quiet
/// machine's halves end within that of each other.
const STEAL_MIN_WORK: usize = 8;

/// `C = alpha·A·B + beta·C` on two threads (through
/// [`join_awake`](super::parallel::join_awake)), C cut at column `cut`, the
/// work balanced between them. Returns whether a thread took work from the
/// other half.
///
/// # Panics
/// If the shapes disagree, `cut > n`, or AVX-512 is not the instruction set
/// in use (callers ask `gemm_packed::suits` first).
pub(super) fn gemm_halves(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: ColsMut<'_>,
    cut: usize,
) -> bool {
    let halves = Halves::new(alpha, a, b, beta, c, cut);
    let isa = Isa::best();
    super::parallel::join_awake(
        || dispatch(isa, halves.worker(0)),
        || dispatch(isa, halves.worker(1)),
    );
    halves.took()
}

/// Both halves of one product, and what every pass of it shares.
struct Halves<'a> {
    fold: Fold<'a>,
    halves: [Half<'a>; 2],
    /// The length of a thread's buffer for packed blocks of B: the widest
    /// block of either half.
    b_len: usize,
}

impl<'a> Halves<'a> {
    fn new(
        alpha: f32,
        a: MatRef<'a>,
        b: MatRef<'a>,
        beta: f32,
        c: ColsMut<'a>,
        cut: usize,
    ) -> Self {
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        assert!(
            a.cols() == b.rows() && c.rows() == m && c.cols() == n && cut <= n,
            "gemm_halves: a {m}x{k} · {}x{n} product into {}x{}, cut at column {cut}",
            b.rows(),
            c.rows(),
            c.cols()
        );
        assert!(
            Isa::avx512() == Some(Isa::best()),
            "gemm_halves: AVX-512 only"
        );
        let (c0, c1) = c.split_at_col(cut);
        Halves {
            fold: Fold {
                alpha,
                beta,
                a,
                k,
                // Each half is a column block of C.
                scratching: k > KC,
            },
            halves: [
                Half::new(b.col_block(0, cut), c0, k),
                Half::new(b.col_block(cut, n - cut), c1, k),
            ],
            b_len: packed_block_len(block_width(cut.max(n - cut))),
        }
    }

    /// The thread's share that starts with half `own`.
    fn worker(&self, own: usize) -> Worker<'_, 'a> {
        Worker {
            fold: self.fold,
            own: &self.halves[own],
            other: &self.halves[1 - own],
            b_len: self.b_len,
        }
    }

    /// Whether either thread took blocks of the other's half.
    fn took(&self) -> bool {
        (self.halves.iter()).any(|h| h.blocks.iter().any(|b| b.taken.load(Ordering::Relaxed)))
    }
}

/// A column block of C, cut into blocks of rows, and its block of B.
struct Half<'a> {
    b: MatRef<'a>,
    /// How many passes each block needs.
    passes: usize,
    /// The row stride of its blocks' scratch.
    stride: usize,
    blocks: Vec<RowBlock<'a>>,
    /// Whether a thread has started on this half. One not started is still
    /// queued: the thread that queued it runs it when done with its own,
    /// packing its B once.
    started: AtomicBool,
}

/// Rows `i0..` of a half's C.
struct RowBlock<'a> {
    i0: usize,
    /// The next pass to fold, readable without the lock (the thread that
    /// holds the lock writes it).
    next: AtomicUsize,
    /// Taken over by the other half's thread, which carries it to the end.
    /// Set only with `state` locked.
    taken: AtomicBool,
    state: Mutex<BlockState<'a>>,
}

/// What folding a block's passes writes.
struct BlockState<'a> {
    c: ColsMut<'a>,
    /// Allocated (and zeroed) by the thread that folds the block's first
    /// pass, so that it starts in that thread's cache (zeroed by the caller
    /// it cost 2–3%); rows [`Half::stride`] apart.
    scratch: Vec<f32>,
}

impl<'a> Half<'a> {
    /// C (`m` × `b.cols()`, its rows A's) in blocks of
    /// `BLOCK_SLIVERS · MR` rows, and B (`k` rows).
    fn new(b: MatRef<'a>, mut c: ColsMut<'a>, k: usize) -> Self {
        let (m, rows) = (c.rows(), BLOCK_SLIVERS * MR);
        let mut blocks = Vec::with_capacity(m.div_ceil(rows));
        for i0 in (0..m).step_by(rows) {
            let (top, bottom) = c.split_at_row(rows.min(m - i0));
            c = bottom;
            blocks.push(RowBlock {
                i0,
                next: AtomicUsize::new(0),
                taken: AtomicBool::new(false),
                state: Mutex::new(BlockState {
                    c: top,
                    scratch: Vec::new(),
                }),
            });
        }
        Half {
            passes: passes(k, b.cols()).count(),
            stride: block_width(b.cols()) + SCRATCH_PAD,
            b,
            blocks,
            started: AtomicBool::new(false),
        }
    }

    /// Block `i`'s state, for its own thread: `None` if the other thread
    /// has taken it. The other thread holds a block's lock only while it
    /// decides to take it (and from then on, with `taken` set), so a wait
    /// here is short.
    fn own_block(&self, i: usize) -> Option<MutexGuard<'_, BlockState<'a>>> {
        let block = &self.blocks[i];
        loop {
            if block.taken.load(Ordering::Acquire) {
                return None;
            }
            match block.state.try_lock() {
                Ok(state) => return (!block.taken.load(Ordering::Acquire)).then_some(state),
                // Yield, not spin: the holder may share this core.
                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
                // The other thread panicked holding it: rayon's join passes
                // that panic on once this thread stops waiting.
                Err(TryLockError::Poisoned(_)) => panic!("gemm_halves: the other thread panicked"),
            }
        }
    }

    /// Locks and marks taken blocks that are not running, last first, for
    /// about half of the work (passes of blocks) left, if that is at least
    /// [`STEAL_MIN_WORK`] and a thread has started on this half.
    fn take(&self) -> Vec<(usize, MutexGuard<'_, BlockState<'a>>)> {
        let left = |b: &RowBlock<'_>| {
            if b.taken.load(Ordering::Acquire) {
                0
            } else {
                self.passes - b.next.load(Ordering::Acquire)
            }
        };
        let work: usize = self.blocks.iter().map(left).sum();
        let mut taken = Vec::new();
        if work < STEAL_MIN_WORK || !self.started.load(Ordering::Acquire) {
            return taken;
        }
        let mut share = 0;
        for (i, block) in self.blocks.iter().enumerate().rev() {
            if 2 * share >= work {
                break;
            }
            // A block whose lock is held is running on the other thread.
            let Ok(state) = block.state.try_lock() else {
                continue;
            };
            let left = left(block);
            if left > 0 {
                share += left;
                block.taken.store(true, Ordering::Release);
                taken.push((i, state));
            }
        }
        taken
    }
}

/// One thread's share of a product: its own half, then what it takes from
/// the other one.
struct Worker<'h, 'a> {
    fold: Fold<'a>,
    own: &'h Half<'a>,
    other: &'h Half<'a>,
    b_len: usize,
}

impl SimdKernel for Worker<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Worker {
            fold,
            own,
            other,
            b_len,
        } = self;
        own.started.store(true, Ordering::Release);
        // Packed buffers are written in full before they are read; the
        // zeros only make them initialised.
        let mut a_pack = [0.0f32; KC * MR];
        let mut b_pack = vec![0.0f32; b_len];
        // Own blocks pass by pass, then blocks taken from the other half
        // pass by pass, a share at a time: one loop, so that the tile loop
        // (inlined) is there once.
        let mut taken = Vec::new();
        let mut half = own;
        let (mut p, mut i, mut packed) = (0, 0, false);
        loop {
            if p == half.passes {
                taken = other.take();
                let Some(first) = (taken.iter())
                    .map(|&(i, _)| other.blocks[i].next.load(Ordering::Acquire))
                    .min()
                else {
                    return;
                };
                (half, p, i, packed) = (other, first, 0, false);
                continue;
            }
            let stealing = !std::ptr::eq(half, own);
            let blocks = if stealing {
                taken.len()
            } else {
                own.blocks.len()
            };
            if i == blocks {
                (p, i, packed) = (p + 1, 0, false);
                continue;
            }
            let mut guard;
            let (block, state): (&RowBlock<'_>, &mut BlockState<'_>) = if stealing {
                let (b, state) = &mut taken[i];
                (&other.blocks[*b], state)
            } else {
                let Some(state) = own.own_block(i) else {
                    i += 1;
                    continue;
                };
                guard = state;
                (&own.blocks[i], &mut guard)
            };
            i += 1;
            if block.next.load(Ordering::Acquire) != p {
                continue;
            }
            let pass = passes(fold.k, half.b.cols()).nth(p).expect("p < passes");
            if !packed {
                pack_b::<V>(half.b, pass, &mut b_pack);
                packed = true;
            }
            let stride = half.stride;
            let rows = state.c.rows();
            if fold.scratching && state.scratch.is_empty() {
                state.scratch = vec![0.0; rows * stride];
            }
            let scratch_rows = state.scratch.len() / stride;
            let mut scratch = ColsMut::new(&mut state.scratch, scratch_rows, stride);
            let targets = &mut (&mut state.c, &mut scratch);
            let b_block = &b_pack[..pass.packed_len()];
            fold.pass::<V>(pass, b_block, block.i0, rows, &mut a_pack, targets);
            block.next.store(p + 1, Ordering::Release);
        }
    }
}

/// Whether a layer's large products run their two column halves fixed (one
/// per thread, [`gemm_packed`](super::gemm_packed) each: the fastest on a
/// quiet machine) or balanced ([`gemm_halves`]), by how the last ones went.
/// Kept by the layer (never global), shared by the products it runs side
/// by side. Either way gives the same bits.
///
/// When [`Balance::UNEVEN_OF_16`] of the last 16 fixed halves ended more
/// than [`Balance::UNEVEN`] apart (one thread's core taken by another
/// process), the next [`Balance::TURNS`] products run balanced; each
/// balanced product whose threads took work from each other starts the
/// count again. (Two products of a layer that run side by side may each
/// note how they went at once and lose one of the notes: only the timing
/// depends on it.)
#[derive(Debug, Default)]
pub(crate) struct Balance {
    /// Products left to run balanced.
    turns: AtomicU32,
    /// One bit per recent fixed product, newest lowest: whether its halves
    /// ended unevenly.
    uneven: AtomicU32,
}

impl Clone for Balance {
    /// A fresh state: how a layer's products went says nothing about its
    /// copy's.
    fn clone(&self) -> Self {
        Balance::default()
    }
}

impl Balance {
    /// How much longer than the other one half may take, as a fraction of
    /// the longer, before the halves count as uneven. A quiet machine's
    /// halves end within a few per cent of each other.
    const UNEVEN: f64 = 0.2;
    /// How many of the last 16 fixed products must have ended unevenly: on
    /// a quiet machine one now and then does (an interrupt, a page fault).
    const UNEVEN_OF_16: u32 = 2;
    /// How many products run balanced after uneven halves: W4 large's step
    /// has five that qualify.
    const TURNS: u32 = 32;

    /// C's two column halves (cut at column `cut`) through `fixed(i,
    /// half)`, one per thread, or all of C through `balanced` (which says
    /// whether its threads took each other's work), and notes how it went.
    pub(super) fn run<'c, F>(
        &self,
        c: ColsMut<'c>,
        cut: usize,
        fixed: F,
        balanced: impl FnOnce(ColsMut<'c>) -> bool,
    ) where
        F: Fn(usize, ColsMut<'c>) + Sync,
    {
        let turns = self.turns.load(Ordering::Relaxed);
        if turns > 0 {
            let turns = if balanced(c) { Self::TURNS } else { turns - 1 };
            self.turns.store(turns, Ordering::Relaxed);
            return;
        }
        let (c0, c1) = c.split_at_col(cut);
        let (ta, tb) =
            super::parallel::join_awake(|| timed(|| fixed(0, c0)), || timed(|| fixed(1, c1)));
        self.note_fixed(uneven(ta, tb));
    }

    /// Notes whether a fixed product's halves ended unevenly, and turns to
    /// balanced products after [`Balance::UNEVEN_OF_16`] of the last 16.
    fn note_fixed(&self, uneven: bool) {
        let history = (self.uneven.load(Ordering::Relaxed) << 1 | u32::from(uneven)) & 0xffff;
        if history.count_ones() >= Self::UNEVEN_OF_16 {
            self.turns.store(Self::TURNS, Ordering::Relaxed);
            self.uneven.store(0, Ordering::Relaxed);
        } else {
            self.uneven.store(history, Ordering::Relaxed);
        }
    }
}

/// How long `f` took.
fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Whether two halves' times differ by more than [`Balance::UNEVEN`] of the
/// longer.
fn uneven(a: Duration, b: Duration) -> bool {
    let (short, long) = (a.min(b).as_secs_f64(), a.max(b).as_secs_f64());
    long - short > Balance::UNEVEN * long
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::gemm;
    use crate::kernels::gemm::tests::values;

    /// The product of `halves`, run on this thread as `order` says: a
    /// worker with its own half (0 or 1) runs its blocks and then whatever
    /// it takes of the other's.
    fn run_in_order(halves: &Halves<'_>, order: &[usize]) {
        for &own in order {
            dispatch(Isa::best(), halves.worker(own));
        }
    }

    #[test]
    fn halves_are_bitwise_one_call_whoever_runs_the_blocks() {
        if Isa::avx512() != Some(Isa::best()) {
            return;
        }
        // W4 large's shapes (k > KC: the scratch blocks), k within one
        // pass, m not a multiple of a block, n cut off a tile edge.
        for (m, k, n, cut, beta) in [
            (256, 1024, 1024, 512, 0.0),
            (100, 784, 1024, 512, 1.0),
            (61, 300, 530, 272, 1.0),
            (40, 256, 256, 128, 0.0),
        ] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let c0 = values(m * n, 3);
            let (am, bm) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
            let mut want = c0.clone();
            gemm(1.0, am, bm, beta, &mut want);
            // Half 1's thread first, with half 0 marked started: it takes
            // half 0's work, a share at a time, down to the last few
            // block-passes, which half 0's thread then runs.
            let mut got = c0.clone();
            let halves = Halves::new(1.0, am, bm, beta, ColsMut::new(&mut got, m, n), cut);
            halves.halves[0].started.store(true, Ordering::Release);
            run_in_order(&halves, &[1, 0]);
            let took = halves.took();
            drop(halves);
            assert!(
                took || m < 3 * BLOCK_SLIVERS * MR,
                "{m}x{k}x{n}: nothing taken"
            );
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n}: taken blocks differ from one call"
            );
            // Half 0 never started: half 1's thread leaves it, and half 0's
            // thread runs it whole.
            let mut got = c0.clone();
            let halves = Halves::new(1.0, am, bm, beta, ColsMut::new(&mut got, m, n), cut);
            run_in_order(&halves, &[1, 0]);
            assert!(!halves.took());
            drop(halves);
            assert!(got
                .iter()
                .zip(&want)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
            // On two threads, with a layer's `Balance` either way.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let mut got = c0.clone();
            pool.install(|| gemm_halves(1.0, am, bm, beta, ColsMut::new(&mut got, m, n), cut));
            assert!(got
                .iter()
                .zip(&want)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    #[test]
    fn gemm_halves_refuses_a_cut_past_the_columns() {
        if Isa::avx512() != Some(Isa::best()) {
            return;
        }
        let (a, b, mut c) = (vec![0.0; 32 * 256], vec![0.0; 256 * 64], vec![0.0; 32 * 64]);
        let (am, bm) = (
            MatRef::row_major(&a, 32, 256),
            MatRef::row_major(&b, 256, 64),
        );
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gemm_halves(1.0, am, bm, 0.0, ColsMut::new(&mut c, 32, 64), 65)
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("cut at column 65"), "{msg}");
    }

    #[test]
    fn balance_switches_after_uneven_halves_and_back_when_nothing_is_taken() {
        assert!(!uneven(
            Duration::from_micros(1000),
            Duration::from_micros(900)
        ));
        assert!(uneven(
            Duration::from_micros(1000),
            Duration::from_micros(700)
        ));
        assert!(uneven(
            Duration::from_micros(300),
            Duration::from_micros(1000)
        ));
        let balance = Balance::default();
        let turns = || balance.turns.load(Ordering::Relaxed);
        let mut c = vec![0.0f32; 2 * 4];
        // Fixed halves that take `ms[i]` milliseconds each, writing their
        // half's columns; balanced runs write all of C.
        let fixed = |ms: [u64; 2]| {
            move |i: usize, mut c: ColsMut<'_>| {
                std::thread::sleep(Duration::from_millis(ms[i]));
                for r in 0..c.rows() {
                    c.row_mut(r).fill(1.0 + i as f32);
                }
            }
        };
        let balanced = |took: bool| {
            move |mut c: ColsMut<'_>| {
                for r in 0..c.rows() {
                    c.row_mut(r).fill(3.0);
                }
                took
            }
        };
        // Fixed halves (cut at `cut`) that sleep `ms` each, or a balanced
        // product that took work or not; C afterwards.
        let mut run = |cut, ms, took: Option<bool>| {
            let cm = ColsMut::new(&mut c, 2, 4);
            match took {
                None => balance.run(cm, cut, fixed(ms), |_| unreachable!()),
                Some(took) => balance.run(cm, cut, fixed(ms), balanced(took)),
            }
            c.clone()
        };
        // Even halves: stays fixed.
        assert_eq!(
            run(1, [20, 20], None),
            [1.0, 2.0, 2.0, 2.0, 1.0, 2.0, 2.0, 2.0]
        );
        assert_eq!(turns(), 0);
        // Twice uneven among the last 16: the next TURNS run balanced; one
        // that took work starts the count again.
        run(3, [0, 20], None);
        assert_eq!(turns(), 0);
        for _ in 0..15 {
            balance.note_fixed(false);
        }
        balance.note_fixed(true);
        assert_eq!(turns(), 0, "the first uneven one is 17 products back");
        run(3, [20, 0], None);
        assert_eq!(turns(), Balance::TURNS);
        assert_eq!(run(1, [0, 0], Some(false)), [3.0; 8]);
        run(1, [0, 0], Some(false));
        assert_eq!(turns(), Balance::TURNS - 2);
        run(1, [0, 0], Some(true));
        assert_eq!(turns(), Balance::TURNS);
        for _ in 0..Balance::TURNS {
            run(1, [0, 0], Some(false));
        }
        assert_eq!(turns(), 0);
        assert_eq!(
            run(2, [20, 20], None),
            [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
        );
        // A copy starts afresh.
        balance.turns.store(3, Ordering::Relaxed);
        assert_eq!(balance.clone().turns.load(Ordering::Relaxed), 0);
    }
}
