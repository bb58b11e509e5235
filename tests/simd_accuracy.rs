//! Accuracy of the vector kernels on every instruction set this CPU has
//! (`Isa::available()`), against f64 references.
//!
//! - `exp` over its working range [EXP_LO, EXP_HI] and `sigmoid` over every
//!   f32: ≤ 2 ulp wherever the result is a normal float (the README reports
//!   the measured maxima). Sampled here on every run; swept over *every* f32
//!   by the `#[ignore]`d `exhaustive_*` tests
//!   (`cargo test --release --test simd_accuracy -- --ignored`).
//! - ReLU forward/backward: bitwise equal to the scalar definition.
//! - The other kernels: each path against the f64 reference, and the paths
//!   against each other.

mod common;

use common::*;
use densegrad::kernels::activation::{
    exp_with, pointwise_backward_signs, pointwise_forward, pointwise_forward_signs,
    relu_backward_into_with, relu_backward_with, relu_forward_with, sigmoid_backward_into_with,
    sigmoid_backward_with, sigmoid_forward_with, sign_bytes, LeakyReluOp, ReluOp, TanhOp,
};
use densegrad::kernels::reduce::{axpy_with, col_sums_with};
use densegrad::kernels::simd::math::{EXP_HI, EXP_LO};
use densegrad::kernels::simd::Isa;
use densegrad::kernels::softmax::{softmax_rows_with, RowStats};
use proptest::prelude::*;

/// Error of `got` in units in the last place of the f32 nearest `want`,
/// or `None` where `want` is not in the normal f32 range.
fn ulp_err(got: f32, want: f64) -> Option<f64> {
    let w = want as f32;
    if !w.is_normal() {
        return None;
    }
    let exp = (w.abs().to_bits() >> 23) as i32 - 127;
    let ulp = 2f64.powi(exp - 23);
    Some((got as f64 - want).abs() / ulp)
}

fn sigmoid_ref(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

/// Max ulp error of exp, sigmoid and tanh over the f32s whose bit patterns
/// are `start, start + step, …` below `end`, processed in blocks.
fn sweep(isa: Isa, start: u32, end: u32, step: u32) -> (f64, f64, f64) {
    let (mut max_exp, mut max_sig, mut max_tanh) = (0.0f64, 0.0f64, 0.0f64);
    let mut xs = Vec::with_capacity(1 << 16);
    let mut ys = vec![0.0f32; 1 << 16];
    let mut bits = start as u64;
    while bits < end as u64 {
        xs.clear();
        while xs.len() < (1 << 16) && bits < end as u64 {
            xs.push(f32::from_bits(bits as u32));
            bits += step as u64;
        }
        let y = &mut ys[..xs.len()];
        exp_with(isa, &xs, y);
        for (&x, &g) in xs.iter().zip(y.iter()) {
            if (EXP_LO..=EXP_HI).contains(&x) {
                if let Some(e) = ulp_err(g, (x as f64).exp()) {
                    assert!(
                        e <= 2.0,
                        "{}: exp({x:e}) = {g:e}, want {:e} ({e} ulp)",
                        isa.name(),
                        (x as f64).exp()
                    );
                    max_exp = max_exp.max(e);
                }
            }
        }
        sigmoid_forward_with(isa, &xs, y);
        for (&x, &g) in xs.iter().zip(y.iter()) {
            if x.is_nan() {
                assert!(g.is_nan());
                continue;
            }
            assert!(
                (0.0..=1.0).contains(&g),
                "{}: sigmoid({x:e}) = {g:e}",
                isa.name()
            );
            if let Some(e) = ulp_err(g, sigmoid_ref(x as f64)) {
                assert!(
                    e <= 2.0,
                    "{}: sigmoid({x:e}) = {g:e}, want {:e} ({e} ulp)",
                    isa.name(),
                    sigmoid_ref(x as f64)
                );
                max_sig = max_sig.max(e);
            }
        }
        pointwise_forward(isa, TanhOp, &xs, y);
        for (&x, &g) in xs.iter().zip(y.iter()) {
            if x.is_nan() {
                assert!(g.is_nan());
                continue;
            }
            assert!(
                (-1.0..=1.0).contains(&g) && (g == 0.0 || g.signum() == x.signum()),
                "{}: tanh({x:e}) = {g:e}",
                isa.name()
            );
            let want = (x as f64).tanh();
            if let Some(e) = ulp_err(g, want) {
                assert!(
                    e <= TANH_ULP,
                    "{}: tanh({x:e}) = {g:e}, want {want:e} ({e} ulp)",
                    isa.name()
                );
                max_tanh = max_tanh.max(e);
            } else {
                assert_eq!(g, want as f32, "{}: tanh({x:e})", isa.name());
            }
        }
    }
    (max_exp, max_sig, max_tanh)
}

/// The tanh bound (README, Accuracy).
const TANH_ULP: f64 = 2.0;

#[test]
fn exp_and_sigmoid_sampled_sweep() {
    for isa in Isa::available() {
        // Every 61st bit pattern of both signs: ~70M values, all exponents.
        let (e1, s1, t1) = sweep(isa, 0, 0x8000_0000, 61);
        let (e2, s2, t2) = sweep(isa, 0x8000_0000, u32::MAX, 61);
        println!(
            "{}: max ulp exp {:.3}, sigmoid {:.3}, tanh {:.3}",
            isa.name(),
            e1.max(e2),
            s1.max(s2),
            t1.max(t2)
        );
    }
}

#[test]
#[ignore = "exhaustive: every f32, ~1 min per instruction set"]
fn exhaustive_exp_and_sigmoid() {
    for isa in Isa::available() {
        let (e1, s1, t1) = sweep(isa, 0, 0x8000_0000, 1);
        let (e2, s2, t2) = sweep(isa, 0x8000_0000, u32::MAX, 1);
        println!(
            "{} exhaustive: max ulp exp {:.3}, sigmoid {:.3}, tanh {:.3}",
            isa.name(),
            e1.max(e2),
            s1.max(s2),
            t1.max(t2)
        );
    }
}

#[test]
fn exp_and_sigmoid_special_values() {
    let xs = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        88.73,
        -103.98,
        EXP_HI,
        EXP_LO,
        -87.4,
        1e-45,
        f32::MAX,
        -f32::MAX,
    ];
    for isa in Isa::available() {
        let mut y = [0.0f32; 13];
        exp_with(isa, &xs, &mut y);
        assert_eq!(y[0], 1.0);
        assert_eq!(y[1], 1.0);
        assert_eq!(y[2], f32::INFINITY);
        assert_eq!(y[3], 0.0);
        assert!(y[4].is_nan());
        assert_eq!(y[5], f32::INFINITY);
        assert_eq!(y[6], 0.0);
        assert!(y[7].is_finite() && y[7] > 3.4e38);
        assert!(y[8] > 0.0 && y[8] < 1e-44, "{}", y[8]); // the smallest subnormal
        assert!(y[9] > 0.0 && !y[9].is_normal()); // subnormal, not flushed
        assert_eq!(y[10], 1.0);
        assert_eq!((y[11], y[12]), (f32::INFINITY, 0.0));

        sigmoid_forward_with(isa, &xs, &mut y);
        assert_eq!(&y[..4], &[0.5, 0.5, 1.0, 0.0]);
        assert!(y[4].is_nan());
        assert_eq!((y[11], y[12]), (1.0, 0.0));
        assert!(y[9] > 0.0, "sigmoid(-87.4) is a tiny normal, not 0");
    }
}

/// Sigmoid and tanh on the two FMA paths, bit for bit: their exponential
/// ends in `Lanes::mul_pow2`, one `vscalefps` on AVX-512 and two products
/// on AVX2. Every f32 in [−104, −87] (sigmoid's subnormal results, which
/// the ulp sweeps skip, checked here against f64 to 2 subnormal ulps) and
/// every 13th bit pattern of the rest of [−110, 0].
#[test]
fn fma_paths_agree_bit_for_bit_on_sigmoid_and_tanh() {
    let (Some(avx2), Some(avx512)) = (Isa::avx2_fma(), Isa::avx512()) else {
        println!("skipped: this CPU lacks AVX2+FMA or AVX-512");
        return;
    };
    let lo_sub = (-87.0f32).to_bits();
    let hi_sub = (-104.0f32).to_bits();
    let xs: Vec<f32> = ((-0.0f32).to_bits()..=(-110.0f32).to_bits())
        .filter(|b| (lo_sub..=hi_sub).contains(b) || b % 13 == 0)
        .map(f32::from_bits)
        .collect();
    let tiny = f32::from_bits(1) as f64;
    let (mut a, mut b) = (vec![0.0f32; xs.len()], vec![0.0f32; xs.len()]);
    sigmoid_forward_with(avx2, &xs, &mut a);
    sigmoid_forward_with(avx512, &xs, &mut b);
    let mut subnormals = 0;
    for ((&x, &g), &h) in xs.iter().zip(&a).zip(&b) {
        assert_eq!(g.to_bits(), h.to_bits(), "sigmoid({x:e}): {g:e} vs {h:e}");
        if g != 0.0 && !g.is_normal() {
            subnormals += 1;
            let err = (g as f64 - sigmoid_ref(x as f64)).abs();
            assert!(
                err <= 2.0 * tiny,
                "sigmoid({x:e}) = {g:e} ({} subnormal ulp)",
                err / tiny
            );
        }
    }
    assert!(subnormals > 1_000_000, "{subnormals} subnormal results");
    pointwise_forward(avx2, TanhOp, &xs, &mut a);
    pointwise_forward(avx512, TanhOp, &xs, &mut b);
    for ((&x, &g), &h) in xs.iter().zip(&a).zip(&b) {
        assert_eq!(g.to_bits(), h.to_bits(), "tanh({x:e}): {g:e} vs {h:e}");
    }
}

fn isa_strategy() -> impl Strategy<Value = Isa> {
    proptest::sample::select(Isa::available())
}

/// The two-bit sign-class path (forward writing the bits, backward reading
/// them) against the scalar definitions of ReLU and LeakyReLU, bitwise, on
/// every path, at lengths around every lane and byte boundary.
fn check_sign_path(isa: Isa, xs: &[f32], ds: &[f32]) -> Result<(), TestCaseError> {
    let n = xs.len();
    let alpha = 0.25f32;
    let mut y = vec![0.0; n];
    let mut signs = vec![0u8; sign_bytes(n)];
    pointwise_forward_signs(isa, ReluOp, xs, &mut y, &mut signs);
    for (x, y) in xs.iter().zip(&y) {
        let want = if *x <= 0.0 { 0.0 } else { *x };
        prop_assert_eq!(y.to_bits(), want.to_bits());
    }
    let mut dx = vec![0.0; n];
    pointwise_backward_signs(isa, ReluOp, &signs, Some(&ds[..n]), &mut dx);
    let mut in_place = ds[..n].to_vec();
    pointwise_backward_signs(isa, ReluOp, &signs, None, &mut in_place);
    for i in 0..n {
        let want = if xs[i] > 0.0 {
            ds[i]
        } else if xs[i] <= 0.0 {
            0.0
        } else {
            f32::NAN
        };
        prop_assert_eq!(
            dx[i].to_bits(),
            want.to_bits(),
            "relu dx at {} of {}, x = {}",
            i,
            n,
            xs[i]
        );
        prop_assert_eq!(in_place[i].to_bits(), want.to_bits());
    }
    let op = LeakyReluOp { alpha };
    pointwise_forward_signs(isa, op, xs, &mut y, &mut signs);
    pointwise_backward_signs(isa, op, &signs, Some(&ds[..n]), &mut dx);
    for i in 0..n {
        let x = xs[i];
        let want_y = if x <= 0.0 { alpha * x } else { x };
        prop_assert_eq!(y[i].to_bits(), want_y.to_bits());
        let want = if x > 0.0 {
            ds[i]
        } else if x <= 0.0 {
            alpha * ds[i]
        } else {
            f32::NAN
        };
        prop_assert_eq!(
            dx[i].to_bits(),
            want.to_bits(),
            "leaky dx at {} of {}, x = {}",
            i,
            n,
            x
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn sign_bits_path_is_bitwise_its_definition(isa in isa_strategy(), xs in proptest::collection::vec(any::<f32>(), 0..70), ds in proptest::collection::vec(-4.0f32..4.0, 70)) {
        check_sign_path(isa, &xs, &ds)?;
    }

    #[test]
    fn relu_is_bitwise_its_definition(isa in isa_strategy(), xs in proptest::collection::vec(any::<f32>(), 0..70), ds in proptest::collection::vec(-4.0f32..4.0, 70)) {
        let n = xs.len();
        let mut y = vec![0.0; n];
        relu_forward_with(isa, &xs, &mut y);
        for (x, y) in xs.iter().zip(&y) {
            let want = if *x <= 0.0 { 0.0 } else { *x };
            prop_assert_eq!(y.to_bits(), want.to_bits());
        }
        let mut d = ds[..n].to_vec();
        let mut d2 = vec![0.0; n];
        relu_backward_into_with(isa, &y, &ds[..n], &mut d2);
        relu_backward_with(isa, &y, &mut d);
        for i in 0..n {
            let want = if y[i] > 0.0 { ds[i] } else { y[i] };
            prop_assert_eq!(d[i].to_bits(), want.to_bits());
            prop_assert_eq!(d2[i].to_bits(), want.to_bits());
        }
    }

    #[test]
    fn sigmoid_backward_matches_reference(isa in isa_strategy(), ys in proptest::collection::vec(0.0f32..=1.0, 0..70), ds in proptest::collection::vec(-4.0f32..4.0, 70)) {
        let n = ys.len();
        let mut d = ds[..n].to_vec();
        let mut d2 = vec![0.0; n];
        sigmoid_backward_with(isa, &ys, &mut d);
        sigmoid_backward_into_with(isa, &ys, &ds[..n], &mut d2);
        for i in 0..n {
            let want = ds[i] as f64 * ys[i] as f64 * (1.0 - ys[i] as f64);
            prop_assert!((d[i] as f64 - want).abs() <= 3.0 * f32::EPSILON as f64 * want.abs() + 1e-45);
            prop_assert_eq!(d[i].to_bits(), d2[i].to_bits());
        }
    }

    #[test]
    fn softmax_rows_match_reference_on_every_path(
        isa in isa_strategy(), rows in 1usize..4, cols in prop_oneof![1usize..40, 1000usize..1100, 31990usize..32010],
        seed in any::<u64>(), spread in prop_oneof![Just(1.0f32), Just(30.0f32), Just(1e4f32)],
    ) {
        let mut rng = seed;
        let x: Vec<f32> = (0..rows * cols).map(|_| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * spread
        }).collect();
        let mut y = vec![0.0; x.len()];
        let mut stats = vec![RowStats::default(); rows];
        softmax_rows_with(isa, &x, cols, &mut y, &mut stats);
        let want = softmax64(&to64(&x), cols);
        for i in 0..x.len() {
            let e = eps_err(y[i], want[i], 1e-44);
            prop_assert!(e <= 4.0, "{} C={}: y[{}] = {} vs {} ({} eps)", isa.name(), cols, i, y[i], want[i], e);
        }
    }

    /// Rows are computed together (one row's exponentials in the loop of the
    /// next row's maximum and the previous row's scaling), yet each row must
    /// come out as if it were alone: same bits, same stats, whatever its
    /// neighbours hold (other scales, NaN, ±∞, ±0, subnormals).
    #[test]
    fn softmax_rows_in_a_block_match_each_row_alone(
        isa in isa_strategy(), rows in 2usize..6, cols in prop_oneof![1usize..40, 1000usize..1040],
        seed in any::<u64>(), kinds in proptest::collection::vec(0usize..6, 6),
    ) {
        let mut rng = seed;
        let mut x = Vec::with_capacity(rows * cols);
        for kind in &kinds[..rows] {
            for j in 0..cols {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                x.push(match (kind, j % 5) {
                    (0, _) => u,
                    (1, _) => u * 1e30,
                    (2, 0) => f32::NAN,
                    (3, 0) => [f32::INFINITY, f32::NEG_INFINITY][j % 2],
                    (4, _) => [0.0, -0.0, 1e-40, -1e-40][j % 4],
                    _ => u * 80.0,
                });
            }
        }
        let mut y = vec![0.0; x.len()];
        let mut stats = vec![RowStats::default(); rows];
        softmax_rows_with(isa, &x, cols, &mut y, &mut stats);
        let rows_alone = x.chunks_exact(cols).zip(y.chunks_exact(cols)).zip(&stats);
        for (i, ((x, y), st)) in rows_alone.enumerate() {
            let mut y1 = vec![0.0; cols];
            let mut st1 = [RowStats::default()];
            softmax_rows_with(isa, x, cols, &mut y1, &mut st1);
            prop_assert_eq!(st.max.to_bits(), st1[0].max.to_bits(), "row {} max", i);
            prop_assert_eq!(st.rest.to_bits(), st1[0].rest.to_bits(), "row {} rest", i);
            for (j, (a, b)) in y.iter().zip(&y1).enumerate() {
                prop_assert_eq!(a.to_bits(), b.to_bits(), "{} C={}: y[{}][{}]", isa.name(), cols, i, j);
            }
        }
    }

    #[test]
    fn col_sums_and_axpy_match_reference(isa in isa_strategy(), rows in 1usize..20, cols in 1usize..300, a in -2.0f32..2.0, seed in any::<u32>()) {
        let x: Vec<f32> = (0..rows * cols).map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5).collect();
        let mut out = vec![0.0; cols];
        col_sums_with(isa, &x, &mut out);
        for j in 0..cols {
            let (s, abs): (f64, f64) = (0..rows).map(|i| x[i * cols + j] as f64).fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
            prop_assert!((out[j] as f64 - s).abs() <= rows as f64 * f32::EPSILON as f64 * abs);
        }
        let mut y: Vec<f32> = x.iter().map(|v| v * 0.5 + 1.0).collect();
        let y0 = y.clone();
        axpy_with(isa, a, &x, &mut y);
        for i in 0..x.len() {
            let want = y0[i] as f64 + a as f64 * x[i] as f64;
            prop_assert!((y[i] as f64 - want).abs() <= 2.0 * f32::EPSILON as f64 * (y0[i].abs() as f64 + (a * x[i]).abs() as f64));
        }
    }
}

/// Above the thread-split threshold, with a length that is not a multiple of
/// the chunk, a lane or a byte: the chunks' bit offsets line up.
#[test]
fn sign_bits_path_across_chunks() {
    let n = (1 << 18) + 13;
    let xs: Vec<f32> = (0..n)
        .map(|i| match i % 7 {
            0 => f32::NAN,
            1 => -0.0,
            _ => ((i as f32) * 0.37).sin(),
        })
        .collect();
    let ds: Vec<f32> = (0..n).map(|i| 1.0 + (i % 5) as f32).collect();
    for isa in Isa::available() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| check_sign_path(isa, &xs, &ds)).unwrap();
        }
    }
}

/// `DENSEGRAD_ISA` naming a path that is unknown fails loudly: the process
/// (this test binary, re-run on one test with the variable set) panics with
/// a message naming the variable and the choices, instead of quietly running
/// another path.
#[test]
fn a_bad_densegrad_isa_fails_loudly() {
    if std::env::var_os("DENSEGRAD_ISA_CHILD").is_some() {
        let isa = Isa::best();
        println!("ran on {}", isa.name());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (value, fails) in [("sse9", true), ("portable", false), ("", false)] {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "a_bad_densegrad_isa_fails_loudly", "--nocapture"])
            .env("DENSEGRAD_ISA", value)
            .env("DENSEGRAD_ISA_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            !out.status.success(),
            fails,
            "DENSEGRAD_ISA={value:?}: {text}"
        );
        if fails {
            assert!(
                text.contains("DENSEGRAD_ISA: unknown instruction set \"sse9\""),
                "{text}"
            );
        }
    }
    // What CI relies on: every available path can be forced by name.
    for isa in Isa::available() {
        assert_eq!(Isa::from_name(isa.name()).unwrap(), isa);
    }
}
