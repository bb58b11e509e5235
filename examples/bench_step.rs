//! Times one training step of a DESIGN.md workload with the same rule as the
//! peers' benchmarks: warm up, then 7 samples of at least 0.2 s each, and
//! print the median time per step as one JSON line. `scripts/compare_peers.py`
//! runs this beside PyTorch and JAX in interleaved rounds.
//!
//!     cargo run --release --example bench_step -- w5 --threads 1
//!
//! Workloads: `w5` (one SGD step, lr 0.1, of the book's SimpleConvNet at
//! batch 100 on (100, 1, 28, 28) inputs in [0, 1), std-0.01 weights).

use std::time::Instant;

use clap::{Parser, ValueEnum};
use densegrad::optim::{Optimizer, Sgd};
use densegrad::{Affine, Convolution, Init, Labels, Pooling, Relu, Sequential, Tensor};

#[derive(Parser)]
struct Args {
    workload: Workload,
    /// rayon threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Workload {
    W5,
}

/// Median seconds per call of `f` over 7 samples of at least 0.2 s.
fn median_time(mut f: impl FnMut()) -> (f64, usize) {
    let start = Instant::now();
    let mut n = 0;
    while n < 3 || start.elapsed().as_secs_f64() < 0.1 {
        f();
        n += 1;
    }
    let per = start.elapsed().as_secs_f64() / n as f64;
    let reps = ((0.2 / per).ceil() as usize).max(1);
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[3], reps)
}

fn w5() -> Result<f64, densegrad::Error> {
    let batch = 100;
    // A fixed pseudo-random stream (the values do not change the timing).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let x = Tensor::new(
        &[batch, 1, 28, 28],
        (0..batch * 784).map(|_| uniform()).collect(),
    )?;
    let labels: Vec<usize> = (0..batch).map(|i| (i * 7) % 10).collect();
    let std = Init::Normal { std: 0.01 };
    let mut net = Sequential::new()
        .with(Convolution::with_init([30, 1, 5, 5], 1, 0, std, 1)?)
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0)?)
        .with(Affine::with_init(4320, 100, std, 2)?)
        .with(Relu::new())
        .with(Affine::with_init(100, 10, std, 3)?);
    let mut opt = Sgd::new(0.1);
    let mut result = Ok(());
    let (t, _) = median_time(|| {
        let step = net
            .loss(&x, Labels::Index(&labels))
            .and_then(|_| net.backward())
            .and_then(|_| opt.step(&mut net));
        if result.is_ok() {
            result = step;
        }
    });
    result.map(|_| t)
}

fn main() {
    let args = Args::parse();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("a rayon pool");
    let (name, t) = match args.workload {
        Workload::W5 => ("w5_convnet_step", pool.install(w5)),
    };
    match t {
        Ok(t) => println!(
            "{{\"workload\": \"{name}\", \"system\": \"densegrad\", \"threads\": {}, \"median_s\": {t:e}}}",
            args.threads
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
