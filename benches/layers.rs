//! Criterion benchmarks for the DESIGN.md workloads W1–W3, each beside its
//! baseline in the same run: raw `matrixmultiply::sgemm` for the products of
//! Affine, `copy_from_slice` of the same bytes for the elementwise kernels.
//!
//! `cargo bench --bench layers` (set `RAYON_NUM_THREADS=1` or `=2`).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use densegrad::{Affine, Labels, Layer, Relu, Sigmoid, SoftmaxWithLoss, Tensor};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

fn normal(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::new(shape, data).unwrap()
}

/// `C = A·B` through raw sgemm on row-major operands with given strides.
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
    // SAFETY: the assert above keeps every access in bounds for the strides
    // used below, which describe m×k and k×n matrices inside `a` and `b`.
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

fn w1_affine(c: &mut Criterion) {
    let mut g = c.benchmark_group("W1 affine");
    for &(n, k, m) in &[(100, 784, 50), (256, 1024, 1024), (64, 4096, 4096)] {
        let id = format!("{n}x{k}x{m}");
        let x = normal(&[n, k], 1);
        let w = normal(&[k, m], 2);
        let dy = normal(&[n, m], 3);
        let mut fc = Affine::new(w.clone(), Tensor::zeros(&[m])).unwrap();
        g.throughput(Throughput::Elements((2 * n * k * m * 3) as u64));
        g.bench_function(BenchmarkId::new("fwd+bwd", &id), |bch| {
            bch.iter(|| {
                let y = fc.forward(black_box(&x)).unwrap();
                black_box(y);
                fc.backward(dy.clone()).unwrap()
            })
        });
        let (mut y, mut dx, mut dw) = (vec![0.0; n * m], vec![0.0; n * k], vec![0.0; k * m]);
        g.bench_function(BenchmarkId::new("raw sgemm x3", &id), |bch| {
            bch.iter(|| {
                let (k_, m_) = (k as isize, m as isize);
                raw_sgemm(n, k, m, x.data(), k_, 1, w.data(), m_, 1, &mut y);
                raw_sgemm(n, m, k, dy.data(), m_, 1, w.data(), 1, m_, &mut dx);
                raw_sgemm(k, n, m, x.data(), 1, k_, dy.data(), m_, 1, &mut dw);
                black_box((&y, &dx, &dw));
            })
        });
    }
    g.finish();
}

fn w2_activations(c: &mut Criterion) {
    let mut g = c.benchmark_group("W2 activations");
    for &len in &[4096usize, 65536, 4_194_304] {
        let x = normal(&[len], 4);
        let dy = normal(&[len], 5);
        g.throughput(Throughput::Bytes((len * 4) as u64));
        let mut relu = Relu::new();
        g.bench_function(BenchmarkId::new("relu fwd+bwd", len), |b| {
            b.iter(|| {
                black_box(relu.forward(&x).unwrap());
                relu.backward(dy.clone()).unwrap()
            })
        });
        let mut sig = Sigmoid::new();
        g.bench_function(BenchmarkId::new("sigmoid fwd+bwd", len), |b| {
            b.iter(|| {
                black_box(sig.forward(&x).unwrap());
                sig.backward(dy.clone()).unwrap()
            })
        });
        let mut out = vec![0.0f32; len];
        g.bench_function(BenchmarkId::new("copy baseline", len), |b| {
            b.iter(|| {
                out.copy_from_slice(black_box(x.data()));
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn w3_softmax_loss(c: &mut Criterion) {
    let mut g = c.benchmark_group("W3 softmax with loss");
    for &(n, classes) in &[(100usize, 10usize), (256, 1000), (32, 32000)] {
        let x = normal(&[n, classes], 6);
        let labels: Vec<usize> = (0..n).map(|i| (i * 7919) % classes).collect();
        let mut swl = SoftmaxWithLoss::new();
        g.throughput(Throughput::Bytes((n * classes * 4) as u64));
        g.bench_function(BenchmarkId::new("fwd+bwd", format!("{n}x{classes}")), |b| {
            b.iter(|| {
                black_box(swl.forward(&x, Labels::Index(&labels)).unwrap());
                swl.backward(1.0).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, w1_affine, w2_activations, w3_softmax_loss);
criterion_main!(benches);
