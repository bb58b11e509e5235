//! What it costs a product to read weights the other core just rewrote:
//! the cross-core transfer that bounds a small step's gain from its second
//! core (BENCHMARKS.md, "Batch chunks for a small step").
//!
//! Two rayon threads each compute a 50×784 · 784×50 product (W4 small's
//! first layer on half its batch) from one shared W, side by side. With
//! `--rewrite`, each thread then rewrites its half of W, as the optimizer
//! updates do between two steps, so that every product reads half of W
//! from the other core's cache. Prints the median time of one product.
//!
//!     cargo run --release --example cross_core
//!     cargo run --release --example cross_core -- --rewrite

use std::time::Instant;

use clap::Parser;
use densegrad::kernels::gemm::{gemm, MatRef};
use densegrad::kernels::parallel::join_awake;

#[derive(Parser)]
struct Args {
    /// Rewrite W (each thread its half) between the products.
    #[arg(long)]
    rewrite: bool,
    /// Products per thread.
    #[arg(long, default_value_t = 5000)]
    steps: usize,
}

const ROWS: usize = 50;
const K: usize = 784;
const M: usize = 50;

fn product(x: &[f32], w: &[f32], y: &mut [f32]) -> f64 {
    let start = Instant::now();
    gemm(
        1.0,
        MatRef::row_major(x, ROWS, K),
        MatRef::row_major(w, K, M),
        0.0,
        y,
    );
    start.elapsed().as_secs_f64()
}

fn main() {
    let args = Args::parse();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool of 2 threads");
    let values =
        |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| (i % k) as f32 * 0.01).collect() };
    let (x0, x1) = (values(ROWS * K, 7), values(ROWS * K, 11));
    let mut w = values(K * M, 13);
    let (mut y0, mut y1) = (vec![0.0; ROWS * M], vec![0.0; ROWS * M]);
    let mut times = Vec::with_capacity(2 * args.steps);
    pool.install(|| {
        for _ in 0..args.steps {
            let (t0, t1) = join_awake(|| product(&x0, &w, &mut y0), || product(&x1, &w, &mut y1));
            times.extend([t0, t1]);
            if args.rewrite {
                let (a, b) = w.split_at_mut(K * M / 2);
                let rewrite =
                    |half: &mut [f32]| half.iter_mut().for_each(|v| *v = *v * 0.999 + 1e-4);
                join_awake(|| rewrite(a), || rewrite(b));
            }
        }
    });
    times.sort_by(f64::total_cmp);
    println!(
        "{ROWS}x{K} . {K}x{M} on 2 threads, W {}: median {:.1} us per product",
        if args.rewrite {
            "rewritten half by each thread between products"
        } else {
            "read only"
        },
        times[times.len() / 2] * 1e6
    );
}
