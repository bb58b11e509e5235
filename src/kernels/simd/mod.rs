//! SIMD lanes and run-time dispatch.
//!
//! Every vector kernel is written once, generic over [`F32x8`] (eight f32
//! lanes), and run through [`dispatch`] on the instruction set chosen at run
//! time:
//!
//! - [`Isa::portable`]: `wide::f32x8`, which `wide` compiles for the build's
//!   target features (SSE2 on baseline x86-64, NEON on aarch64, scalar
//!   elsewhere). Always available.
//! - [`Isa::avx2_fma`]: an AVX2+FMA implementation (`avx2.rs`), used on
//!   x86-64 CPUs that have both, even in a default `cargo build --release`
//!   of a downstream crate: the kernel is inlined into one
//!   `#[target_feature(enable = "avx2,fma")]` function, so it is compiled
//!   for AVX2 whatever the crate's own target features are.
//!
//! [`Isa::best`] detects once (cached) and may be overridden for a whole
//! process with `DENSEGRAD_ISA=portable` (or `avx2`), as matrixmultiply's
//! `MMTEST_FEATURE` does, so the entire test suite can be run on each path.
//! Every kernel also has a `*_with(isa, …)` form that tests use to compare
//! the paths directly.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod math;
mod portable;

use std::sync::OnceLock;

/// Eight f32 lanes: the operations the kernels are written in.
///
/// Comparisons return masks (all bits set in lanes where true) usable by
/// [`F32x8::select`]. Implemented by `wide::f32x8` and, on x86-64, by a
/// private AVX2+FMA type that only exists inside a function compiled for
/// those features.
pub trait F32x8: Copy {
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// The first eight elements of `s` (panics if `s` is shorter).
    fn load(s: &[f32]) -> Self;
    /// Writes the lanes to the first eight elements of `s` (panics if shorter).
    fn store(self, s: &mut [f32]);
    /// Lane-wise `self + b`.
    fn add(self, b: Self) -> Self;
    /// Lane-wise `self − b`.
    fn sub(self, b: Self) -> Self;
    /// Lane-wise `self · b`.
    fn mul(self, b: Self) -> Self;
    /// Lane-wise `self / b`, correctly rounded (never a reciprocal estimate).
    fn div(self, b: Self) -> Self;
    /// `self · b + c`, fused (one rounding) where the instruction set has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// Mask of `self < b` (false where either is NaN).
    fn lt(self, b: Self) -> Self;
    /// Mask of `self <= b` (false where either is NaN).
    fn le(self, b: Self) -> Self;
    /// Mask of `self == b` (false where either is NaN).
    fn eq(self, b: Self) -> Self;
    /// `mask ? t : f` lane-wise, for masks made by the comparisons.
    fn select(mask: Self, t: Self, f: Self) -> Self;
    /// Lane-wise absolute value (clears the sign bit; NaN stays NaN).
    fn abs(self) -> Self;
    /// Round to the nearest integer (ties either way), as f32. Only used on
    /// values well inside ±2^22.
    fn round(self) -> Self;
    /// `2^n` for lanes holding integers `n` in [−126, 127].
    fn pow2i(self) -> Self;
    /// The lanes as an array.
    fn to_array(self) -> [f32; 8];
}

/// An instruction set the vector kernels can run on. Values are only made by
/// the constructors, which check the CPU, so holding an `Isa` proves the CPU
/// can run it.
///
/// ```
/// use densegrad::kernels::simd::Isa;
///
/// let portable = Isa::portable();
/// assert_eq!(portable.name(), "portable");
/// // Every Isa this CPU can run, best last:
/// assert!(Isa::available().contains(&Isa::best()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(IsaKind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IsaKind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// `wide::f32x8`, compiled for the build's target features.
    pub fn portable() -> Isa {
        Isa(IsaKind::Portable)
    }

    /// AVX2 with FMA, if this CPU has both (x86-64 only).
    pub fn avx2_fma() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        if avx2::detected() {
            return Some(Isa(IsaKind::Avx2Fma));
        }
        None
    }

    /// Every instruction set this CPU can run, from the most portable.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::portable()];
        v.extend(Isa::avx2_fma());
        v
    }

    /// The fastest available instruction set, detected once per process.
    /// `DENSEGRAD_ISA=portable` (or `avx2`) in the environment, read at that
    /// first call, overrides the choice; an unavailable or unknown name falls
    /// back to detection.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            let detected = Isa::avx2_fma().unwrap_or(Isa::portable());
            match std::env::var("DENSEGRAD_ISA").as_deref() {
                Ok("portable") => Isa::portable(),
                Ok("avx2") => Isa::avx2_fma().unwrap_or(detected),
                _ => detected,
            }
        })
    }

    /// A short name: `"portable"` or `"avx2+fma"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            IsaKind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2Fma => "avx2+fma",
        }
    }
}

/// A kernel body generic over the lane type, run by [`dispatch`].
///
/// Implementations must be `#[inline(always)]` (and so must everything they
/// call) for the AVX2 path to be compiled with AVX2 enabled; a non-inlined
/// helper is still correct, only slower.
pub trait SimdKernel {
    /// What the kernel returns.
    type Output;
    /// Runs the kernel with lane type `V`.
    fn run<V: F32x8>(self) -> Self::Output;
}

/// Runs `kernel` on instruction set `isa`.
#[inline]
pub fn dispatch<K: SimdKernel>(isa: Isa, kernel: K) -> K::Output {
    match isa.0 {
        IsaKind::Portable => kernel.run::<wide::f32x8>(),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2Fma => avx2::run(kernel),
    }
}

/// Applies `body` to `x` in chunks of 8 lanes, the last one padded with
/// `pad` (only the real lanes of it are passed on to `tail`).
///
/// Kernels use this so that the remainder of a row that is not a multiple of
/// 8 goes through the same vector code as the rest.
#[inline(always)]
pub fn for_each_chunk<V: F32x8>(x: &[f32], pad: f32, mut body: impl FnMut(V, usize, usize)) {
    let mut chunks = x.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        body(V::load(c), i, 8);
        i += 8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [pad; 8];
        buf[..rest.len()].copy_from_slice(rest);
        body(V::load(&buf), i, rest.len());
    }
}

/// Stores the first `len` lanes of `v` at `out[..len]`.
#[inline(always)]
pub fn store_n<V: F32x8>(v: V, out: &mut [f32], len: usize) {
    if len == 8 {
        v.store(out);
    } else {
        out[..len].copy_from_slice(&v.to_array()[..len]);
    }
}
