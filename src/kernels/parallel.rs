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
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    for_row_blocks(x.len(), 1, y, |r, y| f(&x[r], y));
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
    for_row_blocks(a.len(), 1, out, |r, out| f(&a[r.clone()], &b[r], out));
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

/// Each output's elements per row: `len / rows`, which must divide evenly.
#[inline]
fn per_row(what: &str, len: usize, rows: usize) -> usize {
    let per = len.checked_div(rows).unwrap_or(0);
    assert!(
        per * rows == len,
        "row blocks: {what} has {len} elements, not a whole number per row for {rows} rows"
    );
    per
}

macro_rules! row_blocks {
    ($(#[$doc:meta])* $name:ident, $($out:ident: $t:ident),+) => {
        $(#[$doc])*
        #[inline]
        pub fn $name<$($t: Send),+>(
            rows: usize,
            cols: usize,
            $($out: &mut [$t],)+
            f: impl Fn(Range<usize>, $(&mut [$t]),+) + Sync + Send,
        ) {
            let per = rows_per_task(rows, cols);
            if per >= rows {
                return f(0..rows, $($out),+);
            }
            $(let $out = $out.par_chunks_mut(per_row(stringify!($out), $out.len(), rows) * per);)+
            row_blocks!(@zip f, per, rows; $($out),+);
        }
    };
    (@zip $f:ident, $per:ident, $rows:ident; $a:ident) => {
        $a.enumerate().for_each(|(i, a)| {
            let start = i * $per;
            $f(start..(start + $per).min($rows), a)
        })
    };
    (@zip $f:ident, $per:ident, $rows:ident; $a:ident, $b:ident) => {
        $a.zip($b)
            .enumerate()
            .for_each(|(i, (a, b))| {
                let start = i * $per;
                $f(start..(start + $per).min($rows), a, b)
            })
    };
    (@zip $f:ident, $per:ident, $rows:ident; $a:ident, $b:ident, $c:ident) => {
        $a.zip($b)
            .zip($c)
            .enumerate()
            .for_each(|(i, ((a, b), c))| {
                let start = i * $per;
                $f(start..(start + $per).min($rows), a, b, c)
            })
    };
}

row_blocks!(
    /// The one place row-wise work decides between the calling thread and a
    /// split: `f(rows, out_block)` over blocks of whole rows, where `rows`
    /// is the block's range of row indices (slice read-only inputs with it)
    /// and `out_block` the same rows of `out` (which holds the same number
    /// of elements for every row). `cols` is the work per row: splitting
    /// happens above [`PAR_MIN_ELEMS`] elements of work, in blocks of
    /// [`rows_per_task`] rows. Every output element is written by one call
    /// of `f`, so the split never changes the result. Elementwise work is
    /// rows of one element.
    ///
    /// ```
    /// # use densegrad::kernels::parallel::*;
    /// let x: Vec<f32> = (0..300_000).map(|i| i as f32).collect();
    /// let mut y = vec![0.0f32; 300_000];
    /// for_row_blocks(300_000, 1, &mut y, |rows, y| {
    ///     for (y, x) in y.iter_mut().zip(&x[rows]) {
    ///         *y = 2.0 * x;
    ///     }
    /// });
    /// assert_eq!(y[299_999], 599_998.0);
    /// ```
    ///
    /// # Panics
    /// If `out.len()` is not a multiple of `rows`.
    for_row_blocks, out: T
);

row_blocks!(
    /// [`for_row_blocks`] with two outputs, each split on the same rows.
    ///
    /// ```
    /// # use densegrad::kernels::parallel::*;
    /// let (mut sums, mut firsts) = (vec![0.0f32; 4], vec![0.0f32; 4]);
    /// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    /// for_row_blocks2(4, 2, &mut sums, &mut firsts, |rows, s, f| {
    ///     for ((s, f), row) in s.iter_mut().zip(f).zip(x[rows.start * 2..rows.end * 2].chunks(2)) {
    ///         (*s, *f) = (row[0] + row[1], row[0]);
    ///     }
    /// });
    /// assert_eq!((sums[3], firsts[3]), (15.0, 7.0));
    /// ```
    ///
    /// # Panics
    /// If an output's length is not a multiple of `rows`.
    for_row_blocks2, a: T, b: U
);

row_blocks!(
    /// [`for_row_blocks`] with three outputs, each split on the same rows.
    ///
    /// ```
    /// # use densegrad::kernels::parallel::*;
    /// let (mut a, mut b, mut c) = (vec![0u8; 3], vec![0u16; 3], vec![0u32; 6]);
    /// for_row_blocks3(3, 1, &mut a, &mut b, &mut c, |rows, a, b, c| {
    ///     a.fill(1);
    ///     b.fill(2);
    ///     c.fill(rows.len() as u32);
    /// });
    /// assert_eq!((a[2], b[2], c[5]), (1, 2, 3));
    /// ```
    ///
    /// # Panics
    /// If an output's length is not a multiple of `rows`.
    for_row_blocks3, a: T, b: U, c: W
);

/// How long [`join_awake`]'s calling thread spins for the other half.
const AWAKE_SPIN: Duration = Duration::from_micros(500);

/// `rayon::join(a, b)` for halves of some tens of microseconds: once `a` is
/// done and another thread is running `b`, the calling thread spins (up to
/// 500 µs) until `b` finishes instead of going to sleep. On the 2-core VMs
/// this was measured on, a rayon thread that blocks at the end of a join
/// takes 25–50 µs to wake again, as long as half of a W4-small step; with
/// the spin the join costs ~2 µs when the other thread is awake. The
/// thread that ran `b` then stays awake for 100 µs, taking new work at
/// once, as OpenMP runtimes keep their threads between parallel regions.
/// If no other thread took `b`, the calling thread runs it, as `join` does:
/// a core that is busy when the join starts costs nothing; one that is
/// taken from `b`'s thread midway makes the caller wait (spinning at most
/// 500 µs, then blocking as `join` would). In a pool of one thread it runs
/// `a` then `b`, with no job and no allocation.
///
/// ```
/// # use densegrad::kernels::parallel::join_awake;
/// let (a, b) = join_awake(|| 1 + 1, || "two");
/// assert_eq!((a, b), (2, "two"));
/// ```
pub fn join_awake<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if rayon::current_num_threads() < 2 {
        return (a(), b());
    }
    let started = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let mut rb = None;
    let caller = rayon::current_thread_index();
    let ra = rayon::scope(|s| {
        s.spawn(|_| {
            started.store(true, Ordering::Release);
            rb = Some(b());
            if rayon::current_thread_index() != caller {
                linger_after_join();
            }
            done.store(true, Ordering::Release);
        });
        let ra = a();
        // Spin only for a `b` that another thread is running: one still
        // queued is run by this thread at the end of the scope.
        if started.load(Ordering::Acquire) {
            let since = Instant::now();
            while !done.load(Ordering::Acquire) && since.elapsed() < AWAKE_SPIN {
                std::hint::spin_loop();
            }
        }
        ra
    });
    (ra, rb.expect("the scope has run b"))
}

/// How long a thread that ran [`join_awake`]'s second half stays awake for
/// the next one.
const LINGER: Duration = Duration::from_micros(100);

thread_local! {
    /// This thread is inside a linger already (a linger runs the next
    /// join's half itself, which must not start a second, nested one).
    static LINGERING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the calling rayon thread (the one that ran a join's second half)
/// awake for [`LINGER`] after it: a job on its own queue that takes any new
/// work at once (`rayon::yield_now`) instead of letting the thread fall
/// asleep, which would make the next step's fork pay a 15 µs wake-up call
/// and a 25 µs wake-up. The job does nothing if another thread steals it
/// (it would keep that thread from its own work).
fn linger_after_join() {
    let Some(me) = rayon::current_thread_index() else {
        return;
    };
    if LINGERING.get() {
        return;
    }
    rayon::spawn(move || {
        if rayon::current_thread_index() != Some(me) || LINGERING.get() {
            return;
        }
        LINGERING.set(true);
        let mut idle_since = Instant::now();
        loop {
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => idle_since = Instant::now(),
                _ if idle_since.elapsed() >= LINGER => break,
                _ => std::hint::spin_loop(),
            }
        }
        LINGERING.set(false);
    });
}

/// Joins that stall (see [`timed_join`]) back off for a while: after
/// [`BackOff::STALLS`] of the last 32 joins stalled, the next
/// [`BackOff::SKIPS`] turns run on the calling thread alone. Kept by
/// whoever joins (a network, a layer), never global. With the other core
/// of the 2-core VMs this was measured on fully busy, the helper gets half
/// a core, and chunking every step made W4 small 1.3× slower than one
/// thread (1.1× with the back-off); on a quiet machine about one join in
/// 500 waits that long (an interrupt, a page fault), too few to make three
/// of 32.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BackOff {
    /// Turns left to run on the calling thread.
    skips: u32,
    /// One bit per recent join, newest lowest: whether it stalled.
    stalls: u32,
}

impl BackOff {
    const STALLS: u32 = 3;
    const SKIPS: u32 = 64;

    /// Whether this turn may join: not while backing off.
    pub(crate) fn take_turn(&mut self) -> bool {
        if self.skips > 0 {
            self.skips -= 1;
            return false;
        }
        true
    }

    /// Records whether a join stalled, and backs off after
    /// [`BackOff::STALLS`] of the last 32.
    pub(crate) fn note(&mut self, stalled: bool) {
        self.stalls = self.stalls << 1 | u32::from(stalled);
        if self.stalls.count_ones() >= Self::STALLS {
            self.skips = Self::SKIPS;
            self.stalls = 0;
        }
    }

    /// `(a(), b())`: through [`timed_join`] when this turn may join, noting
    /// whether it stalled, else `a` then `b` on the calling thread. For
    /// halves whose results do not depend on which way they ran.
    pub(crate) fn join<A, B, RA, RB>(&mut self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        if rayon::current_num_threads() < 2 || !self.take_turn() {
            return (a(), b());
        }
        let (results, stalled) = timed_join(a, b);
        self.note(stalled);
        results
    }
}

/// [`join_awake`], and whether the calling thread, done with `a`, then
/// waited longer for `b` than `a` took: the thread running `b` shares its
/// core with another process (or lost it), which the join cannot win back,
/// or no thread was free to take `b` at all.
pub(crate) fn timed_join<A, B, RA, RB>(a: A, b: B) -> ((RA, RB), bool)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let start = Instant::now();
    let mut a_done = start;
    let results = join_awake(
        || {
            let ra = a();
            a_done = Instant::now();
            ra
        },
        b,
    );
    (results, a_done.elapsed() > a_done - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_skips_64_turns_after_3_stalls_in_32_joins() {
        let mut b = BackOff::default();
        // Two stalls among 32 joins: no back-off.
        for i in 0..32 {
            assert!(b.take_turn());
            b.note(i == 3 || i == 20);
        }
        assert!(b.take_turn());
        // Stalls older than 32 joins are forgotten: 29 more joins (the last
        // one stalled) push the old two out; one more stall makes two, a
        // third starts the back-off.
        for i in 0..29 {
            b.note(i == 28);
        }
        b.note(true);
        assert!(b.take_turn());
        b.note(true);
        for _ in 0..BackOff::SKIPS {
            assert!(!b.take_turn());
        }
        assert!(b.take_turn());
    }

    #[test]
    fn back_off_join_runs_both_halves_either_way() {
        let mut b = BackOff {
            skips: 1,
            stalls: 0,
        };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for _ in 0..2 {
                assert_eq!(pool.install(|| b.join(|| 1, || 2)), (1, 2));
            }
        }
    }
}
