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
use densegrad::{Affine, Convolution, Init, Labels, Layer, Pooling, Relu, Sequential, Tensor};

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
    /// ReLU forward + backward on 4M elements through `forward_ref` /
    /// `backward_ref`.
    ReluRef,
    /// The same through the owned `forward` / `backward`.
    ReluOwned,
    /// The same as a naive scalar loop keeping a `Vec<bool>` mask (the
    /// baseline).
    ReluNaive,
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

const RELU_LEN: usize = 4 << 20;

fn relu_inputs() -> (Tensor, Tensor) {
    let x: Vec<f32> = (0..RELU_LEN).map(|i| ((i as f32) * 0.618).sin()).collect();
    let d: Vec<f32> = (0..RELU_LEN).map(|i| ((i as f32) * 0.377).cos()).collect();
    (Tensor::from_slice(&x), Tensor::from_slice(&d))
}

fn relu_ref() -> Result<f64, densegrad::Error> {
    let (x, d) = relu_inputs();
    let mut relu = Relu::new();
    let (t, _) = median_time(|| {
        relu.forward_ref(std::hint::black_box(&x)).unwrap();
        std::hint::black_box(relu.backward_ref(&d).unwrap());
    });
    Ok(t)
}

fn relu_owned() -> Result<f64, densegrad::Error> {
    let (x, _) = relu_inputs();
    let mut relu = Relu::new();
    let (t, _) = median_time(|| {
        // The output serves as the upstream gradient: what an owned chain
        // of layers hands back.
        let y = relu.forward(std::hint::black_box(&x)).unwrap();
        std::hint::black_box(relu.backward(y).unwrap());
    });
    Ok(t)
}

fn relu_naive() -> Result<f64, densegrad::Error> {
    let (x, d) = relu_inputs();
    let (x, d) = (x.data(), d.data());
    let (mut y, mut mask, mut dx) = (
        vec![0.0f32; x.len()],
        vec![false; x.len()],
        vec![0.0f32; x.len()],
    );
    let (t, _) = median_time(|| {
        for ((y, m), &x) in y
            .iter_mut()
            .zip(mask.iter_mut())
            .zip(std::hint::black_box(x))
        {
            *m = x <= 0.0;
            *y = if *m { 0.0 } else { x };
        }
        for ((dx, &m), &d) in dx.iter_mut().zip(&mask).zip(d) {
            *dx = if m { 0.0 } else { d };
        }
        std::hint::black_box((&y, &dx));
    });
    Ok(t)
}

fn main() {
    let args = Args::parse();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("a rayon pool");
    let (name, t) = match args.workload {
        Workload::W5 => ("w5_convnet_step", pool.install(w5)),
        Workload::ReluRef => ("relu_4m_fwd_bwd_ref", pool.install(relu_ref)),
        Workload::ReluOwned => ("relu_4m_fwd_bwd_owned", pool.install(relu_owned)),
        Workload::ReluNaive => ("relu_4m_fwd_bwd_naive", pool.install(relu_naive)),
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
