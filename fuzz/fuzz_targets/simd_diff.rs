//! Differential: every SIMD path this CPU has against the scalar f64
//! reference, within the documented bounds, on arbitrary inputs: exp and
//! sigmoid ≤ 2 ulp where the result is normal; ReLU bitwise; softmax rows
//! ≤ 4 ε relative; and the paths agree on NaN.
#![no_main]

use densegrad::kernels::activation::{exp_with, relu_forward_with, sigmoid_forward_with};
use densegrad::kernels::simd::math::{EXP_HI, EXP_LO};
use densegrad::kernels::simd::Isa;
use densegrad::kernels::softmax::{softmax_rows_with, RowStats};
use libfuzzer_sys::fuzz_target;

mod common;
use common::Bytes;

fn ulp_err(got: f32, want: f64) -> Option<f64> {
    let w = want as f32;
    if !w.is_normal() {
        return None;
    }
    let e = (w.abs().to_bits() >> 23) as i32 - 127;
    Some((got as f64 - want).abs() / 2f64.powi(e - 23))
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let cols = 1 + b.size(40);
    let n = b.rest().len() / 4;
    let xs: Vec<f32> = (0..n).map(|_| b.f32_bits()).collect();
    let mut y = vec![0.0f32; n];
    for isa in Isa::available() {
        exp_with(isa, &xs, &mut y);
        for (&x, &g) in xs.iter().zip(&y) {
            if x.is_nan() {
                assert!(g.is_nan());
            } else if (EXP_LO..=EXP_HI).contains(&x) {
                if let Some(e) = ulp_err(g, (x as f64).exp()) {
                    assert!(e <= 2.0, "{}: exp({x:e}) = {g:e}, {e} ulp", isa.name());
                }
            }
        }
        sigmoid_forward_with(isa, &xs, &mut y);
        for (&x, &g) in xs.iter().zip(&y) {
            assert_eq!(x.is_nan(), g.is_nan());
            if let Some(e) = ulp_err(g, sigmoid64(x as f64)) {
                assert!(e <= 2.0, "{}: sigmoid({x:e}) = {g:e}, {e} ulp", isa.name());
            }
        }
        relu_forward_with(isa, &xs, &mut y);
        for (&x, &g) in xs.iter().zip(&y) {
            let want = if x <= 0.0 { 0.0 } else { x };
            assert_eq!(g.to_bits(), want.to_bits());
        }
        // Softmax over finite, bounded rows.
        let rows = n / cols;
        if rows > 0 {
            let xr: Vec<f32> = xs[..rows * cols]
                .iter()
                .map(|v| if v.is_finite() { v % 100.0 } else { 0.0 })
                .collect();
            let mut ys = vec![0.0f32; xr.len()];
            let mut stats = vec![RowStats::default(); rows];
            softmax_rows_with(isa, &xr, cols, &mut ys, &mut stats);
            for (row, yrow) in xr.chunks(cols).zip(ys.chunks(cols)) {
                let m = row
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, |a, v| a.max(v as f64));
                let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                for (&v, &p) in row.iter().zip(yrow) {
                    let want = (v as f64 - m).exp() / s;
                    if (want as f32).is_normal() {
                        assert!(
                            (p as f64 - want).abs() <= 4.0 * f32::EPSILON as f64 * want,
                            "{}: softmax {p} vs {want}",
                            isa.name()
                        );
                    }
                }
            }
        }
    }
});
