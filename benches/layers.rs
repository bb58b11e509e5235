//! Criterion benchmarks for DESIGN.md's workloads W1–W4, each beside its
//! baseline in the same run:
//! - W1, W4: raw `matrixmultiply::sgemm` for the same products (1 thread);
//! - W2: `copy_from_slice` of the same bytes;
//! - W3: Sigmoid forward on as many elements.
//!
//! Every workload runs in a 1-thread and a 2-thread rayon pool (ids end in
//! `t1` / `t2`). `scripts/bench.sh` runs this and writes BENCHMARKS.md.
//! Set `DENSEGRAD_BENCH=quick` for shorter measurements.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use densegrad::optim::{Optimizer, Sgd};
use densegrad::{
    Activation, Affine, Init, Labels, Layer, Relu, Sequential, Sigmoid, SoftmaxWithLoss, Tensor,
};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::ThreadPool;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::new(shape, data).unwrap()
}

/// Times `f` inside `pool`: one `install` per batch of iterations, so the
/// cost of entering the pool stays out of the measurement.
fn bench_in<M: criterion::measurement::Measurement<Value = std::time::Duration>>(
    g: &mut criterion::BenchmarkGroup<'_, M>,
    id: BenchmarkId,
    pool: &ThreadPool,
    mut f: impl FnMut() + Send,
) {
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            pool.install(|| {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    f();
                }
                start.elapsed()
            })
        })
    });
}

fn pools() -> Vec<(&'static str, ThreadPool)> {
    [("t1", 1), ("t2", 2)]
        .into_iter()
        .map(|(name, n)| {
            (
                name,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap(),
            )
        })
        .collect()
}

/// `C = A·B` through raw sgemm, A m×k and B k×n given with strides.
#[allow(clippy::too_many_arguments)]
fn raw_sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() == m * n);
    assert!(rsa as usize * (m - 1) + csa as usize * (k - 1) < a.len());
    assert!(rsb as usize * (k - 1) + csb as usize * (n - 1) < b.len());
    // SAFETY: the asserts above keep every element of A (m×k) and B (k×n)
    // with the given strides inside `a` and `b`; C is m×n row-major in `c`,
    // a unique borrow that overlaps neither.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// The three products of an Affine forward+backward, raw.
struct RawAffine {
    x: Tensor,
    w: Tensor,
    dy: Tensor,
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
}

impl RawAffine {
    fn new(x: &Tensor, w: &Tensor, dy: &Tensor) -> Self {
        let (n, k, m) = (x.shape()[0], x.shape()[1], w.shape()[1]);
        RawAffine {
            x: x.clone(),
            w: w.clone(),
            dy: dy.clone(),
            y: vec![0.0; n * m],
            dx: vec![0.0; n * k],
            dw: vec![0.0; k * m],
        }
    }
    fn forward(&mut self) {
        let (n, k, m) = (self.x.shape()[0], self.x.shape()[1], self.w.shape()[1]);
        raw_sgemm(
            n,
            k,
            m,
            self.x.data(),
            k as isize,
            1,
            self.w.data(),
            m as isize,
            1,
            &mut self.y,
        );
    }
    fn backward(&mut self) {
        self.backward_dx();
        self.backward_dw();
    }
    fn backward_dx(&mut self) {
        let (n, k, m) = (self.x.shape()[0], self.x.shape()[1], self.w.shape()[1]);
        raw_sgemm(
            n,
            m,
            k,
            self.dy.data(),
            m as isize,
            1,
            self.w.data(),
            1,
            m as isize,
            &mut self.dx,
        );
    }
    fn backward_dw(&mut self) {
        let (n, k, m) = (self.x.shape()[0], self.x.shape()[1], self.w.shape()[1]);
        raw_sgemm(
            k,
            n,
            m,
            self.x.data(),
            1,
            k as isize,
            self.dy.data(),
            m as isize,
            1,
            &mut self.dw,
        );
    }
}

fn w1_affine(c: &mut Criterion) {
    let mut g = c.benchmark_group("W1");
    for &(n, k, m) in &[(100, 784, 50), (256, 1024, 1024), (64, 4096, 4096)] {
        let shape = format!("{n}x{k}x{m}");
        let x = normal(&[n, k], 1);
        let w = normal(&[k, m], 2)
            .into_data()
            .iter()
            .map(|v| v * 0.03)
            .collect::<Vec<_>>();
        let w = Tensor::new(&[k, m], w).unwrap();
        let dy = normal(&[n, m], 3);
        let mut raw = RawAffine::new(&x, &w, &dy);
        g.bench_function(BenchmarkId::new("raw sgemm fwd", &shape), |b| {
            b.iter(|| raw.forward())
        });
        g.bench_function(BenchmarkId::new("raw sgemm x3", &shape), |b| {
            b.iter(|| {
                raw.forward();
                raw.backward();
            })
        });
        for (t, pool) in pools() {
            let mut fc = Affine::new(w.clone(), normal(&[m], 4)).unwrap();
            bench_in(
                &mut g,
                BenchmarkId::new(format!("affine fwd {t}"), &shape),
                &pool,
                || {
                    fc.forward_ref(black_box(&x)).unwrap();
                },
            );
            bench_in(
                &mut g,
                BenchmarkId::new(format!("affine fwd+bwd {t}"), &shape),
                &pool,
                || {
                    fc.forward_ref(black_box(&x)).unwrap();
                    fc.backward_ref(black_box(&dy)).unwrap();
                },
            );
        }
    }
    g.finish();
}

fn w2_activations(c: &mut Criterion) {
    let mut g = c.benchmark_group("W2");
    for &len in &[4096usize, 65536, 4_194_304] {
        let x = normal(&[len], 4);
        let dy = normal(&[len], 5);
        let mut out = vec![0.0f32; len];
        g.bench_function(BenchmarkId::new("copy", len), |b| {
            b.iter(|| {
                out.copy_from_slice(black_box(x.data()));
                black_box(&out);
            })
        });
        for (t, pool) in pools() {
            let (mut relu, mut sig) = (Relu::new(), Sigmoid::new());
            for (name, layer) in [
                ("relu", &mut relu as &mut (dyn Layer + Send)),
                ("sigmoid", &mut sig),
            ] {
                bench_in(
                    &mut g,
                    BenchmarkId::new(format!("{name} fwd {t}"), len),
                    &pool,
                    || {
                        layer.forward_ref(black_box(&x)).unwrap();
                    },
                );
                bench_in(
                    &mut g,
                    BenchmarkId::new(format!("{name} fwd+bwd {t}"), len),
                    &pool,
                    || {
                        layer.forward_ref(black_box(&x)).unwrap();
                        layer.backward_ref(black_box(&dy)).unwrap();
                    },
                );
            }
        }
    }
    g.finish();
}

fn w3_softmax_loss(c: &mut Criterion) {
    let mut g = c.benchmark_group("W3");
    for &(n, classes) in &[(100usize, 10usize), (256, 1000), (32, 32000)] {
        let shape = format!("{n}x{classes}");
        let x = normal(&[n, classes], 6);
        let labels: Vec<usize> = (0..n).map(|i| (i * 7919) % classes).collect();
        for (t, pool) in pools() {
            let mut swl = SoftmaxWithLoss::new();
            bench_in(
                &mut g,
                BenchmarkId::new(format!("softmax loss fwd+bwd {t}"), &shape),
                &pool,
                || {
                    black_box(swl.forward(black_box(&x), Labels::Index(&labels)).unwrap());
                    swl.backward_ref(1.0).unwrap();
                },
            );
            let mut sig = Sigmoid::new();
            bench_in(
                &mut g,
                BenchmarkId::new(format!("sigmoid fwd {t}"), &shape),
                &pool,
                || {
                    sig.forward_ref(black_box(&x)).unwrap();
                },
            );
        }
    }
    g.finish();
}

fn w4_training_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("W4");
    for (name, dims, batch) in [
        ("small", vec![784usize, 50, 10], 100usize),
        ("large", vec![784, 1024, 1024, 10], 256),
    ] {
        let x = normal(&[batch, dims[0]], 7);
        let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
        let mut raws: Vec<RawAffine> = dims
            .windows(2)
            .map(|d| {
                RawAffine::new(
                    &normal(&[batch, d[0]], 8),
                    &normal(&[d[0], d[1]], 9),
                    &normal(&[batch, d[1]], 10),
                )
            })
            .collect();
        // The products a step needs: every forward, every dW, and every dX
        // but the first layer's (its input is data), as Sequential does.
        g.bench_function(BenchmarkId::new("raw sgemm calls", name), |b| {
            b.iter(|| {
                for (i, r) in raws.iter_mut().enumerate() {
                    r.forward();
                    r.backward_dw();
                    if i > 0 {
                        r.backward_dx();
                    }
                }
            })
        });
        for (t, pool) in pools() {
            let mut net = Sequential::mlp(&dims, Activation::Relu, Init::He, 11).unwrap();
            let mut opt = Sgd::new(0.1);
            bench_in(
                &mut g,
                BenchmarkId::new(format!("sgd step {t}"), name),
                &pool,
                || {
                    black_box(net.loss(black_box(&x), Labels::Index(&labels)).unwrap());
                    net.backward().unwrap();
                    opt.step(&mut net).unwrap();
                },
            );
        }
    }
    g.finish();
}

fn config() -> Criterion {
    let quick = std::env::var("DENSEGRAD_BENCH").as_deref() == Ok("quick");
    let (warm, meas, samples) = if quick {
        (0.3, 1.0, 10)
    } else {
        (1.0, 3.0, 30)
    };
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs_f64(warm))
        .measurement_time(std::time::Duration::from_secs_f64(meas))
        .sample_size(samples)
}

criterion_group! {
    name = benches;
    config = config();
    targets = w1_affine, w2_activations, w3_softmax_loss, w4_training_step
}
criterion_main!(benches);
