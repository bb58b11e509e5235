//! Shared helpers for the fuzz targets: a byte reader that never fails
//! (missing bytes read as zero) and two fixed thread pools.
#![allow(dead_code)]

use std::sync::OnceLock;

pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A small size in 0..=max.
    pub fn size(&mut self, max: usize) -> usize {
        self.u8() as usize % (max + 1)
    }

    /// An arbitrary f32 bit pattern (NaN, ±inf, subnormals, ±MAX included).
    pub fn f32_bits(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }

    /// f32 values: arbitrary bit patterns when `raw`, else finite values in
    /// ±`bound` (the fuzzer still picks which).
    pub fn values(&mut self, n: usize, raw: bool, bound: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.f32_bits();
                if raw || (v.is_finite() && v.abs() <= bound) {
                    v
                } else if v.is_finite() {
                    v % bound
                } else {
                    0.0
                }
            })
            .collect()
    }

    pub fn rest(&self) -> &[u8] {
        self.0
    }
}

/// A one-thread and a two-thread pool, built once.
pub fn pools() -> &'static (rayon::ThreadPool, rayon::ThreadPool) {
    static POOLS: OnceLock<(rayon::ThreadPool, rayon::ThreadPool)> = OnceLock::new();
    POOLS.get_or_init(|| {
        let p = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        (p(1), p(2))
    })
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
