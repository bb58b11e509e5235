//! [`Lanes`] on AVX2 + FMA (8 lanes). With `avx512.rs` and `kernels/gemm.rs`,
//! one of the three files that hold the crate's `unsafe`.
//!
//! Contract: the `std::arch` intrinsics used here require the CPU to support
//! AVX, AVX2 and FMA; the load/store intrinsics additionally require their
//! pointer to be valid for eight f32s. Soundness rests on two facts:
//!
//! 1. The lane type [`Avx2`] is private to this module and is only ever
//!    instantiated inside [`run_avx2`], which [`run`] calls only after
//!    [`detected`] confirmed AVX2 and FMA on this CPU (AVX2 implies AVX). So
//!    every intrinsic below executes on a CPU that has the features.
//! 2. `load` and `store` slice their argument to exactly eight elements first
//!    (a safe, bounds-checked slice that panics if too short), so the pointer
//!    passed on is valid for the eight lanes read or written.
//! 3. `load_partial` and `store_partial` enable only the lanes below the
//!    slice's length (at most 8) in `vmaskmovps`, which neither reads,
//!    writes nor faults on a disabled lane, so only elements of the slice are
//!    accessed.
//!
//! Everything here is `#[inline(always)]` so that it is inlined into
//! `run_avx2` and compiled with AVX2+FMA enabled.

use super::{Lanes, SimdKernel};
use std::arch::x86_64::*;

/// Whether this CPU has AVX2 and FMA (std caches the CPUID query).
pub(super) fn detected() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Runs `kernel` with AVX2+FMA lanes.
///
/// # Panics
/// If the CPU lacks AVX2 or FMA. `Isa::avx2_fma()` only exists after
/// detection, so this check never fires through the public API; it makes
/// this function sound on its own.
#[inline]
pub(super) fn run<K: SimdKernel>(kernel: K) -> K::Output {
    assert!(
        detected(),
        "densegrad: AVX2+FMA kernels called on a CPU without AVX2+FMA"
    );
    // SAFETY: `run_avx2` needs AVX2 and FMA, asserted just above.
    unsafe { run_avx2(kernel) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<K: SimdKernel>(kernel: K) -> K::Output {
    kernel.run::<Avx2>()
}

/// All ones in lanes `0..min(n, 8)`, zeros above.
#[inline(always)]
fn lanes_below(n: usize) -> __m256i {
    // SAFETY: AVX2 is available (fact 1).
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n.min(8) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// Eight f32 lanes in a `__m256`. Exists only inside `run_avx2`.
#[derive(Clone, Copy)]
struct Avx2(__m256);

// SAFETY (every block below): AVX2+FMA are available, by fact 1 of the module
// contract; loads and stores also rely on fact 2.
impl Lanes for Avx2 {
    const N: usize = 8;
    type Mask = Avx2;

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Avx2(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let s = &s[..8];
        // SAFETY: `s` has exactly 8 elements (fact 2); AVX available (fact 1).
        Avx2(unsafe { _mm256_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        let s = &mut s[..8];
        // SAFETY: `s` has exactly 8 writable elements (fact 2); AVX (fact 1).
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn load_partial(s: &[f32], pad: f32) -> Self {
        // SAFETY: only the lanes below min(len, 8) are enabled (fact 3).
        Avx2(unsafe {
            let mask = lanes_below(s.len());
            let v = _mm256_maskload_ps(s.as_ptr(), mask);
            _mm256_blendv_ps(_mm256_set1_ps(pad), v, _mm256_castsi256_ps(mask))
        })
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        // SAFETY: only the lanes below min(len, 8) are enabled (fact 3).
        unsafe { _mm256_maskstore_ps(s.as_mut_ptr(), lanes_below(s.len()), self.0) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_div_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Avx2(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Avx2(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, b.0) })
    }
    #[inline(always)]
    fn le(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(self.0, b.0) })
    }
    #[inline(always)]
    fn eq(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, b.0) })
    }
    #[inline(always)]
    fn max_or_b(self, b: Self) -> Self {
        // maxps returns its second operand when either is NaN.
        Avx2(unsafe { _mm256_max_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn min_or_b(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_min_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn select(mask: Self, t: Self, f: Self) -> Self {
        Avx2(unsafe { _mm256_blendv_ps(f.0, t.0, mask.0) })
    }
    #[inline(always)]
    fn bits(mask: Self) -> u32 {
        // movemask gathers each lane's sign bit, set in a true mask lane.
        (unsafe { _mm256_movemask_ps(mask.0) }) as u32
    }
    #[inline(always)]
    fn select_bits(bits: u32, t: Self, f: Self) -> Self {
        // Lane i is all ones where (bits & 2^i) == 2^i.
        Avx2(unsafe {
            let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let set =
                _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(bits as i32), lane), lane);
            _mm256_blendv_ps(f.0, t.0, _mm256_castsi256_ps(set))
        })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Avx2(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn deinterleave(a: Self, b: Self) -> (Self, Self) {
        // shuffle_ps works within 128-bit halves: [a0 a2 b0 b2 | a4 a6 b4 b6];
        // permute4x64 then orders the 64-bit pairs as [a0a2 a4a6 b0b2 b4b6].
        unsafe {
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a.0, b.0);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a.0, b.0);
            let order = |v: __m256| {
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
            };
            (Avx2(order(even)), Avx2(order(odd)))
        }
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        Avx2(unsafe {
            let n = _mm256_cvtps_epi32(self.0);
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                n,
                _mm256_set1_epi32(127),
            )))
        })
    }
}
