//! [`Lanes`] for `wide::f32x8`: the portable path, compiled for whatever
//! target features the build has.

use super::Lanes;
use wide::{f32x8, i32x8};

impl Lanes for f32x8 {
    const N: usize = 8;
    type Mask = f32x8;

    #[inline(always)]
    fn splat(v: f32) -> Self {
        f32x8::splat(v)
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let a: [f32; 8] = s[..8].try_into().expect("8 lanes");
        f32x8::new(a)
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s[..8].copy_from_slice(&self.to_array());
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        self + b
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        self - b
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        self / b
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32x8::sqrt(self)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32x8::mul_add(self, b, c)
    }
    #[inline(always)]
    fn lt(self, b: Self) -> Self {
        self.simd_lt(b)
    }
    #[inline(always)]
    fn le(self, b: Self) -> Self {
        self.simd_le(b)
    }
    #[inline(always)]
    fn eq(self, b: Self) -> Self {
        self.simd_eq(b)
    }
    #[inline(always)]
    fn max_or_b(self, b: Self) -> Self {
        // wide's `fast_max` is `maxps(self, b)` on x86 (b on NaN) and a
        // NaN-propagating max elsewhere.
        self.fast_max(b)
    }
    #[inline(always)]
    fn min_or_b(self, b: Self) -> Self {
        self.fast_min(b)
    }
    #[inline(always)]
    fn select(mask: Self, t: Self, f: Self) -> Self {
        mask.bitselect(t, f)
    }
    #[inline(always)]
    fn bits(mask: Self) -> u32 {
        mask.to_bitmask()
    }
    #[inline(always)]
    fn select_bits(bits: u32, t: Self, f: Self) -> Self {
        let lane = i32x8::new([1, 2, 4, 8, 16, 32, 64, 128]);
        let set = (i32x8::splat(bits as i32) & lane).simd_eq(lane);
        let mask: f32x8 = wide::bytemuck::cast(set);
        mask.bitselect(t, f)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x8::abs(self)
    }
    #[inline(always)]
    fn deinterleave(a: Self, b: Self) -> (Self, Self) {
        let (a, b) = (a.to_array(), b.to_array());
        let (mut even, mut odd) = ([0.0; 8], [0.0; 8]);
        for i in 0..4 {
            (even[i], odd[i]) = (a[2 * i], a[2 * i + 1]);
            (even[4 + i], odd[4 + i]) = (b[2 * i], b[2 * i + 1]);
        }
        (f32x8::new(even), f32x8::new(odd))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let n: i32x8 = self.round_int();
        wide::bytemuck::cast((n + i32x8::splat(127)) << 23)
    }
}
