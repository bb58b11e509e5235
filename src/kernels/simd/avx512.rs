//! [`Lanes`] on AVX-512F (16 lanes). With `avx2.rs` and `kernels/gemm.rs`,
//! one of the three files that hold the crate's `unsafe`.
//!
//! Contract: the `std::arch` AVX-512 intrinsics used here require the CPU to
//! support AVX-512F; the load/store intrinsics additionally require their
//! pointer to be valid for sixteen f32s. Soundness rests on two facts:
//!
//! 1. The lane type [`Avx512`] is private to this module and is only ever
//!    instantiated inside [`run_avx512`], which [`run`] calls only after
//!    [`detected`] confirmed AVX-512F on this CPU. So every intrinsic below
//!    executes on a CPU that has the feature.
//! 2. `load` and `store` slice their argument to exactly sixteen elements
//!    first (a safe, bounds-checked slice that panics if too short), so the
//!    pointer passed on is valid for the lanes read or written.
//! 3. `load_partial` and `store_partial` mask off every lane at or past the
//!    slice's length (at most 16 lanes are ever enabled), and a masked AVX-512
//!    load or store neither reads, writes nor faults on a disabled lane, so
//!    only elements of the slice are accessed.
//!
//! Everything here is `#[inline(always)]` so that it is inlined into
//! `run_avx512` and compiled with AVX-512F enabled.

use super::{Lanes, SimdKernel};
use std::arch::x86_64::*;

/// Whether this CPU has AVX-512F (std caches the CPUID query).
pub(super) fn detected() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Runs `kernel` with AVX-512 lanes.
///
/// # Panics
/// If the CPU lacks AVX-512F. `Isa::avx512()` only exists after detection,
/// so this never fires through the public API; it makes this function sound
/// on its own.
#[inline]
pub(super) fn run<K: SimdKernel>(kernel: K) -> K::Output {
    assert!(
        detected(),
        "densegrad: AVX-512 kernels called on a CPU without AVX-512F"
    );
    // SAFETY: `run_avx512` needs AVX-512F, asserted just above.
    unsafe { run_avx512(kernel) }
}

#[target_feature(enable = "avx512f")]
unsafe fn run_avx512<K: SimdKernel>(kernel: K) -> K::Output {
    kernel.run::<Avx512>()
}

/// The mask of lanes `0..min(n, 16)`.
#[inline(always)]
fn lanes_below(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as __mmask16
}

/// Sixteen f32 lanes in a `__m512`. Exists only inside `run_avx512`.
#[derive(Clone, Copy)]
struct Avx512(__m512);

// SAFETY (every block below): AVX-512F is available, by fact 1 of the module
// contract; loads and stores also rely on fact 2.
impl Lanes for Avx512 {
    const N: usize = 16;
    type Mask = __mmask16;

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Avx512(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let s = &s[..16];
        // SAFETY: `s` has exactly 16 elements (fact 2); AVX-512F (fact 1).
        Avx512(unsafe { _mm512_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        let s = &mut s[..16];
        // SAFETY: `s` has exactly 16 writable elements (fact 2); AVX-512F.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn load_partial(s: &[f32], pad: f32) -> Self {
        let mask = lanes_below(s.len());
        // SAFETY: only the first min(len, 16) lanes are enabled (fact 3).
        Avx512(unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(pad), mask, s.as_ptr()) })
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        let mask = lanes_below(s.len());
        // SAFETY: only the first min(len, 16) lanes are enabled (fact 3).
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), mask, self.0) }
    }
    #[inline(always)]
    fn prefetch(s: &[f32]) {
        if let Some(x) = s.first() {
            // SAFETY: a prefetch reads nothing into the program and never
            // faults; the pointer is to an element of `s` in any case.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const f32).cast::<i8>()) }
        }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_div_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Avx512(unsafe { _mm512_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Avx512(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn le(self, b: Self) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn max_or_b(self, b: Self) -> Self {
        // vmaxps returns its second operand when either is NaN.
        Avx512(unsafe { _mm512_max_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn min_or_b(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_min_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn select(mask: __mmask16, t: Self, f: Self) -> Self {
        // mask_blend takes its second source where the mask bit is set.
        Avx512(unsafe { _mm512_mask_blend_ps(mask, f.0, t.0) })
    }
    #[inline(always)]
    fn bits(mask: __mmask16) -> u32 {
        u32::from(mask)
    }
    #[inline(always)]
    fn select_bits(bits: u32, t: Self, f: Self) -> Self {
        // A __mmask16 is the bits themselves.
        Avx512(unsafe { _mm512_mask_blend_ps(bits as __mmask16, f.0, t.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Avx512(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn deinterleave(a: Self, b: Self) -> (Self, Self) {
        // permutex2var picks lane i of a (index i) or of b (index 16 + i).
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            (
                Avx512(_mm512_permutex2var_ps(a.0, even, b.0)),
                Avx512(_mm512_permutex2var_ps(a.0, odd, b.0)),
            )
        }
    }
    #[inline(always)]
    fn mul_pow2(self, n: Self) -> Self {
        // One rounding of self · 2^floor(n), into the subnormals as the
        // default's two products do.
        Avx512(unsafe { _mm512_scalef_ps(self.0, n.0) })
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        Avx512(unsafe {
            let n = _mm512_cvtps_epi32(self.0);
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                n,
                _mm512_set1_epi32(127),
            )))
        })
    }
}
