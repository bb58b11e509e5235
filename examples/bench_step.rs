//! Times one DESIGN.md workload with the same rule as the peers' benchmarks:
//! warm up, then 7 samples of at least 0.2 s each, and print the median time
//! per call as one JSON line. `scripts/compare_peers.py` runs this beside
//! NumPy, PyTorch and JAX in interleaved rounds.
//!
//!     cargo run --release --example bench_step -- w4_large --threads 2
//!
//! Workloads (`--list` prints them):
//! - `w1_NxKxM`: Affine forward + backward (dX, dW, db) through
//!   `forward_ref` / `backward_ref`, for 100x784x50, 256x1024x1024 and
//!   64x4096x4096.
//! - `w2_relu_N`, `w2_sigmoid_N`: forward + backward through `forward_ref` /
//!   `backward_ref`, N = 65536 or 4194304.
//! - `w3_NxC`: SoftmaxWithLoss forward + backward (index labels), for 100x10,
//!   256x1000, 32x32000.
//! - `w4_small`, `w4_large`: one SGD step (lr 0.1) of `Sequential`
//!   784-50-10 at batch 100 and 784-1024-1024-10 at batch 256 (ReLU, std-0.01
//!   weights).
//! - `w5`: one SGD step of the book's SimpleConvNet at batch 100.
//! - `mlp_<widths>_b<batch>`, e.g. `mlp_100-19-10_b1000`: one SGD step of
//!   the W4 kind (ReLU between Affine layers) of any widths and batch.
//!
//! Baselines and variants, densegrad only:
//! - `relu_naive_4194304`: ReLU forward + backward as a naive scalar loop with
//!   a `Vec<bool>` mask (the notebook's layer, in Rust).
//! - `relu_owned_4194304`, `w1_owned_256x1024x1024`, `w4_large_owned`: the
//!   same work through the owned `forward` / `backward`.
//! - `w3_naive_100x10`: softmax-with-loss forward + backward as a naive
//!   scalar loop (f32 max, exp, sum, log).
//! - `w4_small_sgemm`, `w4_large_sgemm`: only the sgemm calls of that step
//!   (the checked single-thread wrapper), nothing else.
//!
//! `--per-layer STEPS` (with `w4_small`, `w4_large` or `mlp_*`) prints, instead
//! of the step's median, a table of each layer's forward and backward and of
//! the update, each timed inside the step, medians over STEPS steps. Each
//! layer runs its own `forward_ref` / `backward_ref`, so every Affine copies
//! its input, which `Sequential`'s step lends the layers after the first
//! instead (W4 large: 2 MiB a step):
//!
//!     cargo run --release --example bench_step -- w4_large --threads 2 --per-layer 300

use std::time::Instant;

use clap::Parser;
use densegrad::kernels::gemm::{gemm, MatRef};
use densegrad::optim::{Optimizer, Sgd};
use densegrad::{
    Affine, Convolution, Init, Labels, Layer, Pooling, Relu, Sequential, Sigmoid, SoftmaxWithLoss,
    Tensor,
};

#[derive(Parser)]
struct Args {
    /// The workload (see `--list`).
    #[arg(required_unless_present = "list")]
    workload: Option<String>,
    /// rayon threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the workload names and exit.
    #[arg(long)]
    list: bool,
    /// For `w4_small`, `w4_large` and `mlp_*`: instead of the step's median,
    /// the median of each layer's forward and backward and of the update,
    /// timed inside the step over this many steps (the layers one after
    /// another, as `Sequential` runs a step it does not cut into batch
    /// chunks).
    #[arg(long, value_name = "STEPS")]
    per_layer: Option<std::num::NonZeroUsize>,
}

const WORKLOADS: &[&str] = &[
    "w1_100x784x50",
    "w1_256x1024x1024",
    "w1_64x4096x4096",
    "w2_relu_65536",
    "w2_relu_4194304",
    "w2_sigmoid_65536",
    "w2_sigmoid_4194304",
    "w3_100x10",
    "w3_256x1000",
    "w3_32x32000",
    "w4_small",
    "w4_large",
    "w5",
    "relu_naive_4194304",
    "relu_owned_4194304",
    "w1_owned_256x1024x1024",
    "w4_large_owned",
    "w3_naive_100x10",
    "w4_small_sgemm",
    "w4_large_sgemm",
];

/// Median seconds per call of `f` over 7 samples of at least 0.2 s.
fn median_time(mut f: impl FnMut()) -> f64 {
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
    samples[3]
}

/// A fixed pseudo-random stream in [-1, 1) (the values do not change the
/// timing).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, scale: f32) -> Result<Tensor, densegrad::Error> {
    let n = shape.iter().product();
    Tensor::new(shape, values(n, seed).iter().map(|v| v * scale).collect())
}

fn labels(n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 7919) % classes).collect()
}

/// "NxKxM" → [N, K, M].
fn dims(s: &str) -> Vec<usize> {
    s.split('x')
        .map(|d| d.parse().expect("a dimension"))
        .collect()
}

type Bench = Result<f64, densegrad::Error>;

fn w1(shape: &str, owned: bool) -> Bench {
    let d = dims(shape);
    let (n, k, m) = (d[0], d[1], d[2]);
    let x = tensor(&[n, k], 1, 1.0)?;
    let dy = tensor(&[n, m], 2, 1.0)?;
    let mut fc = Affine::new(
        tensor(&[k, m], 3, 1.0 / (k as f32).sqrt())?,
        tensor(&[m], 4, 1.0)?,
    )?;
    Ok(if owned {
        median_time(|| {
            let y = fc.forward(&x).unwrap();
            std::hint::black_box(&y);
            std::hint::black_box(fc.backward(dy.clone()).unwrap());
        })
    } else {
        median_time(|| {
            fc.forward_ref(&x).unwrap();
            fc.backward_ref(&dy).unwrap();
        })
    })
}

fn w2(kind: &str, len: usize) -> Bench {
    let (x, dy) = (tensor(&[len], 5, 3.0)?, tensor(&[len], 6, 1.0)?);
    let mut layer: Box<dyn Layer> = match kind {
        "relu" => Box::new(Relu::new()),
        _ => Box::new(Sigmoid::new()),
    };
    Ok(median_time(|| {
        layer.forward_ref(std::hint::black_box(&x)).unwrap();
        std::hint::black_box(layer.backward_ref(&dy).unwrap());
    }))
}

fn relu_owned(len: usize) -> Bench {
    let x = tensor(&[len], 5, 3.0)?;
    let mut relu = Relu::new();
    Ok(median_time(|| {
        // The output serves as the upstream gradient: what an owned chain
        // of layers hands back.
        let y = relu.forward(std::hint::black_box(&x)).unwrap();
        std::hint::black_box(relu.backward(y).unwrap());
    }))
}

fn relu_naive(len: usize) -> Bench {
    let (x, d) = (tensor(&[len], 5, 3.0)?, tensor(&[len], 6, 1.0)?);
    let (x, d) = (x.data(), d.data());
    let (mut y, mut mask, mut dx) = (vec![0.0f32; len], vec![false; len], vec![0.0f32; len]);
    Ok(median_time(|| {
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
    }))
}

fn w3(shape: &str) -> Bench {
    let d = dims(shape);
    let (n, c) = (d[0], d[1]);
    let x = tensor(&[n, c], 7, 4.0)?;
    let t = labels(n, c);
    let mut swl = SoftmaxWithLoss::new();
    Ok(median_time(|| {
        std::hint::black_box(swl.forward(&x, Labels::Index(&t)).unwrap());
        std::hint::black_box(swl.backward_ref(1.0).unwrap());
    }))
}

fn w3_naive(shape: &str) -> Bench {
    let d = dims(shape);
    let (n, c) = (d[0], d[1]);
    let x = tensor(&[n, c], 7, 4.0)?;
    let t = labels(n, c);
    let mut dx = vec![0.0f32; n * c];
    Ok(median_time(|| {
        let mut loss = 0.0f32;
        for ((row, dxr), &label) in std::hint::black_box(x.data())
            .chunks_exact(c)
            .zip(dx.chunks_exact_mut(c))
            .zip(&t)
        {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for (d, &v) in dxr.iter_mut().zip(row) {
                *d = (v - max).exp();
                sum += *d;
            }
            loss += sum.ln() - (row[label] - max);
            let scale = 1.0 / (sum * n as f32);
            for d in dxr.iter_mut() {
                *d *= scale;
            }
            dxr[label] -= 1.0 / n as f32;
        }
        std::hint::black_box((loss / n as f32, &dx));
    }))
}

fn mlp_sizes(name: &str) -> (Vec<usize>, usize) {
    if name == "small" {
        (vec![784, 50, 10], 100)
    } else {
        (vec![784, 1024, 1024, 10], 256)
    }
}

fn mlp_layers(sizes: &[usize]) -> Result<Vec<Box<dyn Layer>>, densegrad::Error> {
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        if i > 0 {
            layers.push(Box::new(Relu::new()));
        }
        let std = Init::Normal { std: 0.01 };
        layers.push(Box::new(Affine::with_init(w[0], w[1], std, i as u64)?));
    }
    Ok(layers)
}

/// The median time of one SGD step (lr 0.1) of `net` on `x` against `t`.
fn sgd_steps(net: &mut Sequential, x: &Tensor, t: &[usize]) -> Bench {
    let mut opt = Sgd::new(0.1);
    let mut result = Ok(());
    let time = median_time(|| {
        let step = net
            .loss(x, Labels::Index(t))
            .and_then(|_| net.backward())
            .and_then(|_| opt.step(net));
        if result.is_ok() {
            result = step;
        }
    });
    result.map(|_| time)
}

/// One SGD step of the W4 kind of network with layer widths `sizes` at
/// batch `batch` (workloads `mlp_100-19-10_b1000`).
fn w4_mlp(sizes: &[usize], batch: usize) -> Bench {
    let x = tensor(&[batch, sizes[0]], 8, 1.0)?;
    let t = labels(batch, *sizes.last().unwrap());
    let mut net = Sequential::new();
    for layer in mlp_layers(sizes)? {
        net.push(layer);
    }
    sgd_steps(&mut net, &x, &t)
}

/// The median time of each part of a W4-kind step over `steps` steps (after
/// 10 untimed ones): each layer's `forward_ref`, the loss, each layer's
/// `backward_ref` (parameters only for the first) and the SGD update, as a
/// table with each part's share of the sum.
fn w4_per_layer(sizes: &[usize], batch: usize, steps: usize) -> Result<String, densegrad::Error> {
    let x = tensor(&[batch, sizes[0]], 8, 1.0)?;
    let t = labels(batch, *sizes.last().unwrap());
    let mut layers = mlp_layers(sizes)?;
    let mut loss = SoftmaxWithLoss::new();
    let mut opt = Sgd::new(0.1);
    let n = layers.len();
    // Parts: n forwards, the loss (forward and backward), n backwards, the
    // update.
    let mut times = vec![Vec::with_capacity(steps); 2 * n + 2];
    let mut took = vec![0.0; 2 * n + 2];
    for step in 0..steps + 10 {
        let mut h = &x;
        for (i, layer) in layers.iter_mut().enumerate() {
            let start = Instant::now();
            h = layer.forward_ref(h)?;
            took[i] = start.elapsed().as_secs_f64();
        }
        let start = Instant::now();
        loss.forward(h, Labels::Index(&t))?;
        let mut g = loss.backward_ref(1.0)?;
        took[n] = start.elapsed().as_secs_f64();
        let (first, rest) = layers.split_first_mut().expect("an MLP has layers");
        for (i, layer) in rest.iter_mut().enumerate().rev() {
            let start = Instant::now();
            g = layer.backward_ref(g)?;
            took[n + 2 + i] = start.elapsed().as_secs_f64();
        }
        let start = Instant::now();
        first.backward_params_only(g)?;
        took[n + 1] = start.elapsed().as_secs_f64();
        let start = Instant::now();
        update_all(&mut layers, &mut opt)?;
        took[2 * n + 1] = start.elapsed().as_secs_f64();
        if step >= 10 {
            for (all, &t) in times.iter_mut().zip(&took) {
                all.push(t);
            }
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let sum: f64 = medians.iter().sum();
    // In the order the step runs them: forwards, the loss, backwards from
    // the last layer, the update.
    let mut rows: Vec<(String, f64)> = (0..n)
        .map(|i| (format!("{} {i} forward", layers[i].name()), medians[i]))
        .collect();
    rows.push(("loss forward + backward".into(), medians[n]));
    rows.extend((0..n).rev().map(|i| {
        (
            format!("{} {i} backward", layers[i].name()),
            medians[n + 1 + i],
        )
    }));
    rows.push(("SGD update".into(), medians[2 * n + 1]));
    let mut table = String::from("| part | median | share |\n|:--|--:|--:|\n");
    for (name, t) in rows {
        let time = if t < 1e-3 {
            format!("{:.1} µs", t * 1e6)
        } else {
            format!("{:.3} ms", t * 1e3)
        };
        table += &format!("| {name} | {time} | {:.1}% |\n", 100.0 * t / sum);
    }
    table += &format!("| sum of the medians | {:.3} ms | |\n", sum * 1e3);
    Ok(table)
}

/// W4 large through boxed layers and the owned `forward` / `backward`.
fn w4_owned(name: &str) -> Bench {
    let (sizes, batch) = mlp_sizes(name);
    let x = tensor(&[batch, sizes[0]], 8, 1.0)?;
    let t = labels(batch, *sizes.last().unwrap());
    let mut layers = mlp_layers(&sizes)?;
    let mut loss = SoftmaxWithLoss::new();
    let mut opt = Sgd::new(0.1);
    Ok(median_time(|| {
        let mut h = layers[0].forward(&x).unwrap();
        for layer in &mut layers[1..] {
            h = layer.forward(&h).unwrap();
        }
        std::hint::black_box(loss.forward(&h, Labels::Index(&t)).unwrap());
        let mut d = loss.backward(1.0).unwrap();
        for layer in layers[1..].iter_mut().rev() {
            d = layer.backward(d).unwrap();
        }
        layers[0].backward_params_only(&d).unwrap();
        update_all(&mut layers, &mut opt).unwrap();
    }))
}

/// One optimizer update of every parameter of `layers`, each under its own
/// index (as `Optimizer::step` numbers a `Sequential`'s parameters).
fn update_all(layers: &mut [Box<dyn Layer>], opt: &mut Sgd) -> Result<(), densegrad::Error> {
    let (mut result, mut index) = (Ok(()), 0);
    for layer in layers.iter_mut() {
        layer.visit_params(&mut |mut p| {
            let (v, g) = p.values_and_grad();
            if result.is_ok() {
                result = opt.update(index, v, g);
            }
            index += 1;
        });
    }
    result
}

/// Only the sgemm calls of a W4 step: forward products, then dW for every
/// layer and dX for all but the first.
fn w4_sgemm(name: &str) -> Bench {
    let (sizes, batch) = mlp_sizes(name);
    let x = values(batch * sizes[0], 8);
    let ws: Vec<Vec<f32>> = sizes.windows(2).map(|w| values(w[0] * w[1], 9)).collect();
    let mut acts: Vec<Vec<f32>> = sizes.iter().map(|&d| vec![0.0; batch * d]).collect();
    acts[0] = x;
    let mut grads: Vec<Vec<f32>> = sizes.iter().map(|&d| vec![0.1; batch * d]).collect();
    let mut dws: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0; w.len()]).collect();
    Ok(median_time(|| {
        for (i, w) in sizes.windows(2).enumerate() {
            let (k, m) = (w[0], w[1]);
            let (before, after) = acts.split_at_mut(i + 1);
            let a = MatRef::row_major(&before[i], batch, k);
            gemm(1.0, a, MatRef::row_major(&ws[i], k, m), 0.0, &mut after[0]);
        }
        for (i, w) in sizes.windows(2).enumerate().rev() {
            let (k, m) = (w[0], w[1]);
            let (gb, ga) = grads.split_at_mut(i + 1);
            let dy = MatRef::row_major(&ga[0], batch, m);
            gemm(
                1.0,
                MatRef::row_major(&acts[i], batch, k).t(),
                dy,
                0.0,
                &mut dws[i],
            );
            if i > 0 {
                let wt = MatRef::row_major(&ws[i], k, m).t();
                gemm(1.0, dy, wt, 0.0, &mut gb[i]);
            }
        }
        std::hint::black_box(&dws);
    }))
}

fn w5() -> Bench {
    let batch = 100;
    let x = Tensor::new(
        &[batch, 1, 28, 28],
        values(batch * 784, 10)
            .iter()
            .map(|v| 0.5 * (v + 1.0))
            .collect(),
    )?;
    let t: Vec<usize> = (0..batch).map(|i| (i * 7) % 10).collect();
    let std = Init::Normal { std: 0.01 };
    let mut net = Sequential::new()
        .with(Convolution::with_init([30, 1, 5, 5], 1, 0, std, 1)?)
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0)?)
        .with(Affine::with_init(4320, 100, std, 2)?)
        .with(Relu::new())
        .with(Affine::with_init(100, 10, std, 3)?);
    sgd_steps(&mut net, &x, &t)
}

/// "100-19-10_b1000" → ([100, 19, 10], 1000): at least two widths, none
/// of them 0, and a batch above 0.
fn parse_mlp(spec: &str) -> Option<(Vec<usize>, usize)> {
    let (sizes, batch) = spec.rsplit_once("_b")?;
    let sizes: Vec<usize> = sizes
        .split('-')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if sizes.len() < 2 || sizes.contains(&0) {
        return None;
    }
    Some((sizes, batch.parse().ok().filter(|&b| b > 0)?))
}

/// The layer widths and batch of a workload that is one SGD step of an MLP
/// (`w4_small`, `w4_large`, `mlp_*`), or `None` for any other.
fn mlp_workload(workload: &str) -> Option<(Vec<usize>, usize)> {
    match workload {
        "w4_small" => Some(mlp_sizes("small")),
        "w4_large" => Some(mlp_sizes("large")),
        w => parse_mlp(w.strip_prefix("mlp_")?),
    }
}

fn run(workload: &str) -> Option<Bench> {
    if let Some((sizes, batch)) = mlp_workload(workload) {
        return Some(w4_mlp(&sizes, batch));
    }
    let (head, rest) = workload.split_once('_').unwrap_or((workload, ""));
    Some(match (head, rest) {
        ("w1", "owned_256x1024x1024") => w1("256x1024x1024", true),
        ("w1", shape) => w1(shape, false),
        ("w2", kind_len) => {
            let (kind, len) = kind_len.split_once('_')?;
            w2(kind, len.parse().ok()?)
        }
        ("w3", "naive_100x10") => w3_naive("100x10"),
        ("w3", shape) => w3(shape),
        ("w4", "large_owned") => w4_owned("large"),
        ("w4", "small_sgemm") => w4_sgemm("small"),
        ("w4", "large_sgemm") => w4_sgemm("large"),
        ("w5", "") => w5(),
        ("relu", "naive_4194304") => relu_naive(4 << 20),
        ("relu", "owned_4194304") => relu_owned(4 << 20),
        _ => return None,
    })
}

fn main() {
    let args = Args::parse();
    if args.list {
        println!("{}", WORKLOADS.join("\n"));
        return;
    }
    let workload = args.workload.expect("clap requires it");
    let known = WORKLOADS.contains(&workload.as_str()) || workload.starts_with("mlp_");
    if !known || args.threads == 0 {
        eprintln!(
            "error: unknown workload {workload:?} or --threads 0; workloads: {}",
            WORKLOADS.join(", ")
        );
        std::process::exit(2);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("a rayon pool");
    if let Some(steps) = args.per_layer {
        let Some((sizes, batch)) = mlp_workload(&workload) else {
            eprintln!("error: --per-layer takes w4_small, w4_large or mlp_*");
            std::process::exit(2);
        };
        match pool.install(|| w4_per_layer(&sizes, batch, steps.get())) {
            Ok(table) => print!("{table}"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    match pool.install(|| run(&workload)) {
        Some(Ok(t)) => println!(
            "{{\"workload\": \"{workload}\", \"system\": \"densegrad\", \"threads\": {}, \"median_s\": {t:e}}}",
            args.threads
        ),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        None => {
            eprintln!("error: cannot parse workload {workload:?} (e.g. mlp_100-19-10_b1000)");
            std::process::exit(2);
        }
    }
}
