//! SIMD lanes and run-time dispatch.
//!
//! Every vector kernel is written once, generic over [`Lanes`] (N f32 lanes
//! and their masks), and run through [`dispatch`] on the instruction set
//! chosen at run time:
//!
//! - [`Isa::portable`]: `wide::f32x8`, which `wide` compiles for the build's
//!   target features (SSE2 on baseline x86-64, NEON on aarch64, scalar
//!   elsewhere). Always available.
//! - [`Isa::avx2_fma`]: 8 lanes of AVX2+FMA (`avx2.rs`).
//! - [`Isa::avx512`]: 16 lanes of AVX-512F (`avx512.rs`).
//!
//! The x86 paths run even in a default `cargo build --release` of a
//! downstream crate: the kernel is inlined into one
//! `#[target_feature(enable = …)]` function per instruction set, so it is
//! compiled for those features whatever the crate's own target features are.
//!
//! [`Isa::best`] detects once (cached) and may be overridden for a whole
//! process with `DENSEGRAD_ISA=portable` (or `avx2`, `avx512`), as
//! matrixmultiply's `MMTEST_FEATURE` does, so the entire test suite can be
//! run on each path; a name that is unknown or that this CPU lacks panics
//! at that first call rather than quietly running another path. Every kernel also has a `*_with(isa, …)` form that tests
//! use to compare the paths directly.
//!
//! ```
//! use densegrad::kernels::activation::exp_with;
//! use densegrad::kernels::simd::Isa;
//! // Every path gives (nearly) the same answer; `best` is the fastest.
//! for isa in Isa::available() {
//!     let mut y = [0.0];
//!     exp_with(isa, &[0.0], &mut y);
//!     assert_eq!(y, [1.0]);
//! }
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod math;
mod portable;

use std::sync::OnceLock;

/// The most lanes any [`Lanes`] type has (sizes the kernels' tail buffers).
///
/// ```
/// # use densegrad::kernels::simd::*;
/// assert_eq!(MAX_LANES, 16);
/// ```
pub const MAX_LANES: usize = 16;

/// `N` f32 lanes: the operations the kernels are written in.
///
/// Comparisons return a [`Lanes::Mask`] for [`Lanes::select`]. Implemented
/// by `wide::f32x8` and, on x86-64, by private AVX2+FMA and AVX-512 types
/// that only exist inside functions compiled for those features.
///
/// ```
/// # use densegrad::kernels::simd::*;
/// fn double<V: Lanes>(v: V) -> V {
///     v.add(v)
/// }
/// assert_eq!(double(wide::f32x8::splat(1.5)).to_buf()[..8], [3.0; 8]);
/// ```
pub trait Lanes: Copy {
    /// The number of lanes (8 or 16), at most [`MAX_LANES`].
    const N: usize;
    /// The result of a comparison.
    type Mask: Copy;
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// The first `N` elements of `s` (panics if `s` is shorter).
    fn load(s: &[f32]) -> Self;
    /// Writes the lanes to the first `N` elements of `s` (panics if shorter).
    fn store(self, s: &mut [f32]);
    /// Lane-wise `self + b`.
    fn add(self, b: Self) -> Self;
    /// Lane-wise `self − b`.
    fn sub(self, b: Self) -> Self;
    /// Lane-wise `self · b`.
    fn mul(self, b: Self) -> Self;
    /// Lane-wise `self / b`, correctly rounded (never a reciprocal estimate).
    fn div(self, b: Self) -> Self;
    /// Lane-wise square root, correctly rounded (never an estimate).
    fn sqrt(self) -> Self;
    /// `self · b + c`, fused (one rounding) where the instruction set has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// Mask of `self < b` (false where either is NaN).
    fn lt(self, b: Self) -> Self::Mask;
    /// Mask of `self <= b` (false where either is NaN).
    fn le(self, b: Self) -> Self::Mask;
    /// Mask of `self == b` (false where either is NaN).
    fn eq(self, b: Self) -> Self::Mask;
    /// Lane-wise maximum; where either lane is NaN the result is NaN or `b`
    /// (x86's `maxps(self, b)` returns `b`; NEON returns NaN). Passing the
    /// value that may be NaN as `b` therefore propagates it.
    fn max_or_b(self, b: Self) -> Self;
    /// Lane-wise minimum, with the NaN behaviour of [`Lanes::max_or_b`].
    fn min_or_b(self, b: Self) -> Self;
    /// `mask ? t : f` lane-wise.
    fn select(mask: Self::Mask, t: Self, f: Self) -> Self;
    /// The mask as bits: bit `i` set where lane `i` is true (bits `N` and up
    /// clear). With [`Lanes::select_bits`], how a mask is kept in memory at
    /// one bit per lane.
    fn bits(mask: Self::Mask) -> u32;
    /// `bit i of bits ? t : f` lane-wise (bits `N` and up ignored).
    fn select_bits(bits: u32, t: Self, f: Self) -> Self;
    /// Lane-wise absolute value (clears the sign bit; NaN stays NaN).
    fn abs(self) -> Self;
    /// `2^n` for lanes holding integers `n` in [−126, 127].
    fn pow2i(self) -> Self;
    /// `self · 2^n`, rounded once (to a subnormal or 0 where it is that
    /// small), for `self` in [1/2, 2) (or NaN) and lanes `n` holding
    /// integers in [−190, 63]: the last step of an exponential of a
    /// non-positive argument. The default forms `self · 2^(n + 64)`, exact
    /// since `n + 64` is a normal exponent, then multiplies by `2^−64`;
    /// AVX-512 does the same in one `vscalefps`, bit for bit.
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// let v = wide::f32x8::splat(1.5).mul_pow2(wide::f32x8::splat(-149.0));
    /// assert_eq!(v.to_buf()[0], 2.0 * f32::from_bits(1)); // 1.5 · 2^−149 rounds to even
    /// ```
    #[inline(always)]
    fn mul_pow2(self, n: Self) -> Self {
        self.mul(n.add(Self::splat(64.0)).pow2i())
            .mul(Self::splat(f32::from_bits(0x1f80_0000)))
    }
    /// The even and the odd lanes of the `2N` values `a ++ b`:
    /// `([a0, a2, …, b0, b2, …], [a1, a3, …, b1, b3, …])` (pairs of
    /// neighbours split apart, as a 2-wide pooling window needs).
    fn deinterleave(a: Self, b: Self) -> (Self, Self);

    /// The first `s.len() < N` lanes from `s`, the rest `pad`.
    #[inline(always)]
    fn load_partial(s: &[f32], pad: f32) -> Self {
        let mut buf = [pad; MAX_LANES];
        buf[..s.len()].copy_from_slice(s);
        Self::load(&buf)
    }
    /// Writes the first `s.len() < N` lanes to `s`.
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        let mut buf = [0.0; MAX_LANES];
        self.store(&mut buf);
        let n = s.len();
        s.copy_from_slice(&buf[..n]);
    }
    /// The `N` lanes of `s` from index `i`, or the fewer left padded with 0:
    /// how every kernel reads its last, partial vector.
    #[inline(always)]
    fn load_at(s: &[f32], i: usize) -> Self {
        let rest = &s[i..];
        if rest.len() >= Self::N {
            Self::load(rest)
        } else {
            Self::load_partial(rest, 0.0)
        }
    }
    /// Stores the lanes to `s` from index `i`, as many as fit: the
    /// counterpart of [`Lanes::load_at`].
    #[inline(always)]
    fn store_at(self, s: &mut [f32], i: usize) {
        let rest = &mut s[i..];
        if rest.len() >= Self::N {
            self.store(rest)
        } else {
            self.store_partial(rest)
        }
    }
    /// A hint to bring the cache line holding `s[0]` into L1 before it is
    /// read (nothing if `s` is empty). It never changes a result; lane types
    /// without a prefetch instruction do nothing.
    #[inline(always)]
    fn prefetch(s: &[f32]) {
        let _ = s;
    }
    /// The lanes, in order, in the first `N` elements of an array.
    #[inline(always)]
    fn to_buf(self) -> [f32; MAX_LANES] {
        let mut buf = [0.0; MAX_LANES];
        self.store(&mut buf);
        buf
    }
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
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// `wide::f32x8`, compiled for the build's target features.
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// assert_eq!(Isa::portable().name(), "portable");
    /// ```
    pub fn portable() -> Isa {
        Isa(IsaKind::Portable)
    }

    /// AVX2 with FMA, if this CPU has both (x86-64 only).
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// if let Some(isa) = Isa::avx2_fma() {
    ///     assert_eq!(isa.name(), "avx2+fma");
    /// }
    /// ```
    pub fn avx2_fma() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        if avx2::detected() {
            return Some(Isa(IsaKind::Avx2Fma));
        }
        None
    }

    /// AVX-512F (16 lanes), if this CPU has it (x86-64 only).
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// if let Some(isa) = Isa::avx512() {
    ///     assert!(Isa::available().contains(&isa));
    /// }
    /// ```
    pub fn avx512() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        if avx512::detected() {
            return Some(Isa(IsaKind::Avx512));
        }
        None
    }

    /// Every instruction set this CPU can run, from the most portable.
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// assert_eq!(Isa::available()[0], Isa::portable());
    /// ```
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::portable()];
        v.extend(Isa::avx2_fma());
        v.extend(Isa::avx512());
        v
    }

    /// The fastest available instruction set, detected once per process.
    /// `DENSEGRAD_ISA=portable` (or `avx2`, `avx512`) in the environment,
    /// read at that first call, overrides the choice, as matrixmultiply's
    /// `MMTEST_FEATURE` does, so that a test run can be forced onto each
    /// path.
    ///
    /// # Panics
    /// If `DENSEGRAD_ISA` names an unknown instruction set or one this CPU
    /// lacks (see [`Isa::from_name`]): a run meant to test a path must not
    /// quietly test another. Unset or empty, it is ignored.
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// println!("vector kernels run on {}", Isa::best().name());
    /// ```
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| match std::env::var("DENSEGRAD_ISA") {
            Ok(name) if !name.is_empty() => {
                Isa::from_name(&name).unwrap_or_else(|e| panic!("densegrad: {e}"))
            }
            _ => *Isa::available()
                .last()
                .expect("portable is always available"),
        })
    }

    /// The instruction set called `name` (`"portable"`, `"avx2"` or
    /// `"avx2+fma"`, `"avx512"`), if this CPU has it; an
    /// [`Error::Argument`](crate::Error::Argument) naming the choices
    /// otherwise.
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// assert_eq!(Isa::from_name("portable")?, Isa::portable());
    /// let err = Isa::from_name("sse9").unwrap_err();
    /// assert!(err.to_string().starts_with("DENSEGRAD_ISA: unknown instruction set \"sse9\""));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn from_name(name: &str) -> Result<Isa, crate::Error> {
        const OP: &str = "DENSEGRAD_ISA";
        let available = || {
            Isa::available()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (wanted, found) = match name {
            "portable" => ("portable", Some(Isa::portable())),
            "avx2" | "avx2+fma" => ("avx2+fma", Isa::avx2_fma()),
            "avx512" => ("avx512", Isa::avx512()),
            _ => {
                return Err(crate::Error::argument(
                    OP,
                    format!(
                        "unknown instruction set {name:?}; choose portable, avx2 or avx512 (this CPU has {})",
                        available()
                    ),
                ))
            }
        };
        found.ok_or_else(|| {
            crate::Error::argument(
                OP,
                format!("this CPU lacks {wanted}; it has {}", available()),
            )
        })
    }

    /// A short name: `"portable"`, `"avx2+fma"` or `"avx512"`.
    ///
    /// ```
    /// # use densegrad::kernels::simd::*;
    /// assert_eq!(Isa::portable().name(), "portable");
    /// ```
    pub fn name(self) -> &'static str {
        match self.0 {
            IsaKind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512 => "avx512",
        }
    }
}

/// A kernel body generic over the lane type, run by [`dispatch`].
///
/// Implementations must be `#[inline(always)]` (and so must everything they
/// call) for the AVX2 path to be compiled with AVX2 enabled; a non-inlined
/// helper is still correct, only slower.
///
/// ```
/// # use densegrad::kernels::simd::*;
/// struct Sum<'a>(&'a [f32]);
/// impl SimdKernel for Sum<'_> {
///     type Output = f32;
///     fn run<V: Lanes>(self) -> f32 {
///         let mut acc = V::splat(0.0);
///         let mut chunks = self.0.chunks_exact(V::N);
///         for c in &mut chunks {
///             acc = acc.add(V::load(c));
///         }
///         acc.to_buf()[..V::N].iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
///     }
/// }
/// for isa in Isa::available() {
///     assert_eq!(dispatch(isa, Sum(&[1.0; 37])), 37.0);
/// }
/// ```
pub trait SimdKernel {
    /// What the kernel returns.
    type Output;
    /// Runs the kernel with lane type `V`.
    fn run<V: Lanes>(self) -> Self::Output;
}

/// Runs `kernel` on instruction set `isa`.
///
/// ```
/// # use densegrad::kernels::simd::*;
/// struct Len;
/// impl SimdKernel for Len {
///     type Output = usize;
///     fn run<V: Lanes>(self) -> usize {
///         V::N
///     }
/// }
/// assert_eq!(dispatch(Isa::portable(), Len), 8);
/// ```
#[inline]
pub fn dispatch<K: SimdKernel>(isa: Isa, kernel: K) -> K::Output {
    match isa.0 {
        IsaKind::Portable => kernel.run::<wide::f32x8>(),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2Fma => avx2::run(kernel),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512 => avx512::run(kernel),
    }
}
