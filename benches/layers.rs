//! Criterion benchmarks for DESIGN.md's workloads W1–W5, each beside its
//! baseline in the same run:
//! - W1, W4, W5: raw `matrixmultiply::sgemm` for the same products (1 thread;
//!   W5 also one im2col pass over its batch);
//! - W2: `copy_from_slice` of the same bytes;
//! - W3: Sigmoid forward on as many elements;
//! - GEMM: single products through `kernels::gemm::gemm` (1 thread), beside
//!   raw `matrixmultiply::sgemm` for the same operands.
//!
//! Every workload runs in a 1-thread and a 2-thread rayon pool (ids end in
//! `t1` / `t2`). `scripts/bench.sh` runs this and writes BENCHMARKS.md.
//! Set `DENSEGRAD_BENCH=quick` for shorter measurements.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use densegrad::kernels::conv::im2col;
use densegrad::kernels::window::Window2d;
use densegrad::optim::{Optimizer, Sgd};
use densegrad::{
    Activation, Affine, Convolution, Init, Labels, Layer, Pooling, Relu, Sequential, Sigmoid,
    SoftmaxWithLoss, Tensor,
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
            for (name, layer) in [("relu", &mut relu as &mut dyn Layer), ("sigmoid", &mut sig)] {
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

/// The book's SimpleConvNet (DESIGN.md W5): (100, 1, 28, 28) → Convolution
/// 30×5×5 → ReLU → Pooling 2×2/2 → Affine 4320→100 → ReLU → Affine 100→10
/// → SoftmaxWithLoss, std 0.01 weights, one SGD step (lr 0.1).
fn simple_conv_net() -> Sequential {
    Sequential::new()
        .with(
            Convolution::new(
                normal(&[30, 1, 5, 5], 21).scaled(0.01),
                Tensor::zeros(&[30]),
                1,
                0,
            )
            .unwrap(),
        )
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0).unwrap())
        .with(Affine::new(normal(&[4320, 100], 22).scaled(0.01), Tensor::zeros(&[100])).unwrap())
        .with(Relu::new())
        .with(Affine::new(normal(&[100, 10], 23).scaled(0.01), Tensor::zeros(&[10])).unwrap())
}

trait Scaled {
    fn scaled(self, s: f32) -> Self;
}

impl Scaled for Tensor {
    fn scaled(mut self, s: f32) -> Tensor {
        self.data_mut().iter_mut().for_each(|v| *v *= s);
        self
    }
}

fn w5_conv_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("W5");
    let batch = 100;
    let x = Tensor::new(
        &[batch, 1, 28, 28],
        normal(&[batch * 784], 20)
            .data()
            .iter()
            .map(|v| v.abs().min(1.0))
            .collect(),
    )
    .unwrap();
    let labels: Vec<usize> = (0..batch).map(|i| (i * 7) % 10).collect();

    // The baseline: the step's raw sgemm calls (per sample, the conv
    // forward W·col and dW += dY·colᵀ; the two Affine layers' forward, dW
    // and dX but the first layer's dX, as Sequential does) plus one im2col
    // pass over the batch.
    let geom = Window2d::new("bench", 1, 28, 28, 5, 5, 1, 0).unwrap();
    let (ck, pix) = (geom.col_rows(), geom.col_cols());
    let cw = normal(&[30, ck], 24);
    let mut cols = vec![0.0f32; batch * ck * pix];
    let mut cy = vec![0.0f32; batch * 30 * pix];
    let mut cdw = vec![0.0f32; 30 * ck];
    let mut fcs = [
        RawAffine::new(
            &normal(&[batch, 4320], 25),
            &normal(&[4320, 100], 26),
            &normal(&[batch, 100], 27),
        ),
        RawAffine::new(
            &normal(&[batch, 100], 28),
            &normal(&[100, 10], 29),
            &normal(&[batch, 10], 30),
        ),
    ];
    // One im2col pass over the batch: the baseline's unrolling.
    let unroll = |cols: &mut [f32]| {
        for (xs, col) in x
            .data()
            .chunks_exact(784)
            .zip(cols.chunks_exact_mut(ck * pix))
        {
            im2col(xs, &geom, col);
        }
    };
    g.bench_function("raw sgemm calls + im2col", |b| {
        b.iter(|| {
            unroll(&mut cols);
            for (col, y) in cols
                .chunks_exact(ck * pix)
                .zip(cy.chunks_exact_mut(30 * pix))
            {
                raw_sgemm(
                    30,
                    ck,
                    pix,
                    cw.data(),
                    ck as isize,
                    1,
                    col,
                    pix as isize,
                    1,
                    y,
                );
            }
            for (col, dy) in cols.chunks_exact(ck * pix).zip(cy.chunks_exact(30 * pix)) {
                raw_sgemm(
                    30,
                    pix,
                    ck,
                    dy,
                    pix as isize,
                    1,
                    col,
                    1,
                    pix as isize,
                    &mut cdw,
                );
            }
            for fc in fcs.iter_mut() {
                fc.forward();
                fc.backward_dw();
            }
            fcs[1].backward_dx();
            black_box(&cdw);
        })
    });
    g.bench_function("im2col pass", |b| {
        b.iter(|| {
            unroll(&mut cols);
            black_box(&cols);
        })
    });
    for (t, pool) in pools() {
        let mut net = simple_conv_net();
        let mut opt = Sgd::new(0.1);
        bench_in(&mut g, BenchmarkId::new("sgd step", t), &pool, || {
            black_box(net.loss(black_box(&x), Labels::Index(&labels)).unwrap());
            net.backward().unwrap();
            opt.step(&mut net).unwrap();
        });
    }
    g.finish();
}

/// The products of W1 and W4 large, and the shapes around
/// `gemm_packed::suits`'s bounds, through `gemm` (1 thread) beside raw sgemm:
/// (m, k, n, A stored transposed, B stored transposed).
const GEMM_SHAPES: [(usize, usize, usize, bool, bool); 11] = [
    (256, 1024, 1024, false, false),
    (1024, 256, 1024, true, false),
    (256, 1024, 1024, false, true),
    (256, 784, 1024, false, false),
    (784, 256, 1024, true, false),
    (64, 256, 256, false, false),
    (16, 1024, 1024, false, false),
    (256, 1024, 100, false, false),
    (96, 300, 200, false, false),
    (512, 64, 512, true, false),
    (128, 128, 128, false, false),
];

/// The name of a `GEMM_SHAPES` entry: `m x k x n`, `_at` / `_bt` for a
/// transposed operand.
fn gemm_shape_name(&(m, k, n, at, bt): &(usize, usize, usize, bool, bool)) -> String {
    format!(
        "{m}x{k}x{n}{}{}",
        if at { "_at" } else { "" },
        if bt { "_bt" } else { "" }
    )
}

fn gemm_products(c: &mut Criterion) {
    use densegrad::kernels::gemm::{gemm, MatRef};
    let mut g = c.benchmark_group("GEMM");
    for shape in &GEMM_SHAPES {
        let &(m, k, n, at, bt) = shape;
        let name = gemm_shape_name(shape);
        let a = normal(&[m * k], 31);
        let b = normal(&[k * n], 32);
        let mut out = vec![0.0f32; m * n];
        let (rsa, csa) = if at { (1, m) } else { (k, 1) };
        let (rsb, csb) = if bt { (1, k) } else { (n, 1) };
        g.bench_function(BenchmarkId::new("raw sgemm", &name), |bench| {
            bench.iter(|| {
                let (rsa, csa, rsb, csb) = (rsa as isize, csa as isize, rsb as isize, csb as isize);
                raw_sgemm(m, k, n, a.data(), rsa, csa, b.data(), rsb, csb, &mut out)
            })
        });
        let av = MatRef::new(a.data(), m, k, rsa, csa);
        let bv = MatRef::new(b.data(), k, n, rsb, csb);
        g.bench_function(BenchmarkId::new("gemm", &name), |bench| {
            bench.iter(|| gemm(1.0, av, bv, 0.0, black_box(&mut out)))
        });
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
    targets = w1_affine, w2_activations, w3_softmax_loss, w4_training_step, w5_conv_step, gemm_products
}
criterion_main!(benches);
