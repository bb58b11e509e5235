//! A training step through the layers' own buffers allocates nothing after
//! the first step, except the packing buffer matrixmultiply allocates inside
//! each sgemm call.
//!
//! W4 small of DESIGN.md: 784-50-10, ReLU, batch 100, SGD lr 0.1, on a
//! one-thread pool (at more threads large products are split into more
//! sgemm calls, each with its own packing buffer).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use densegrad::kernels::reduce::axpy;
use densegrad::{Affine, Labels, Layer, Relu, SoftmaxWithLoss, Tensor};

struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// sgemm calls in one step: forward 1 per Affine, backward 2 per Affine
/// (dX and dW; db is a column sum), and one more each for the first
/// layer's 7.8-MFLOP forward and dW, which run as two products (the
/// forward cut in K, dW from two blocks of columns). On AVX-512 the forward
/// halves take the unpacked path and allocate nothing (5 measured).
const SGEMM_CALLS_PER_STEP: usize = 2 * 3 + 2;

#[test]
fn a_w4_small_step_allocates_only_sgemm_packing_buffers() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let (n, d0, d1, d2) = (100, 784, 50, 10);
        let mut fc1 = Affine::new(Tensor::new(&[d0, d1], values(d0 * d1, 1)).unwrap(), Tensor::zeros(&[d1])).unwrap();
        let mut relu = Relu::new();
        let mut fc2 = Affine::new(Tensor::new(&[d1, d2], values(d1 * d2, 2)).unwrap(), Tensor::zeros(&[d2])).unwrap();
        let mut loss = SoftmaxWithLoss::new();
        let x = Tensor::new(&[n, d0], values(n * d0, 3).iter().map(|v| v.abs() * 5.0).collect()).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % d2).collect();

        let mut step = || -> f32 {
            let h = fc1.forward_ref(&x).unwrap();
            let h = relu.forward_ref(h).unwrap();
            let z = fc2.forward_ref(h).unwrap();
            let l = loss.forward(z, Labels::Index(&labels)).unwrap();
            let g = loss.backward_ref(1.0).unwrap();
            let g = fc2.backward_ref(g).unwrap();
            let g = relu.backward_ref(g).unwrap();
            fc1.backward_ref(g).unwrap();
            for layer in [&mut fc1 as &mut dyn Layer, &mut fc2] {
                layer.visit_params(&mut |mut p| {
                    let (v, g) = p.values_and_grad();
                    axpy(-0.1, g, v)
                });
            }
            l
        };

        let first = step(); // sizes every buffer
        let before = allocs();
        let steps = 20;
        let mut last = first;
        for _ in 0..steps {
            last = step();
        }
        let per_step = (allocs() - before) as f64 / steps as f64;
        println!("allocations per step after the first: {per_step} (sgemm calls per step: {SGEMM_CALLS_PER_STEP})");
        assert!(per_step <= SGEMM_CALLS_PER_STEP as f64, "{per_step} allocations per step");
        assert!(last < first, "training lowers the loss: {first} -> {last}");
    });
}

/// A convolutional step, Convolution→ReLU→Pooling→Affine→SoftmaxWithLoss on
/// 8 MNIST-sized samples: after the first step, nothing but matrixmultiply's
/// packing buffer in each sgemm call — 8 forward and 8 dW products for the
/// convolution (its dX is not needed: it is the first layer), and the
/// Affine's forward, dX and dW.
#[test]
fn a_convolutional_step_allocates_only_sgemm_packing_buffers() {
    use densegrad::{Convolution, Pooling};
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let n = 8;
        let mut conv = Convolution::new(
            Tensor::new(&[6, 1, 5, 5], values(150, 4)).unwrap(),
            Tensor::zeros(&[6]),
            1,
            0,
        )
        .unwrap();
        let mut relu = Relu::new();
        let mut pool2 = Pooling::new(2, 2, 2, 0).unwrap();
        let mut fc = Affine::new(
            Tensor::new(&[6 * 12 * 12, 10], values(8640, 5)).unwrap(),
            Tensor::zeros(&[10]),
        )
        .unwrap();
        let mut loss = SoftmaxWithLoss::new();
        let x = Tensor::new(
            &[n, 1, 28, 28],
            values(n * 784, 6).iter().map(|v| v.abs() * 5.0).collect(),
        )
        .unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % 10).collect();
        let mut step = || -> f32 {
            let h = conv.forward_ref(&x).unwrap();
            let h = relu.forward_ref(h).unwrap();
            let h = pool2.forward_ref(h).unwrap();
            let z = fc.forward_ref(h).unwrap();
            let l = loss.forward(z, Labels::Index(&labels)).unwrap();
            let g = loss.backward_ref(1.0).unwrap();
            let g = fc.backward_ref(g).unwrap();
            let g = pool2.backward_ref(g).unwrap();
            let g = relu.backward_ref(g).unwrap();
            conv.backward_params_only(g).unwrap();
            for layer in [&mut conv as &mut dyn Layer, &mut fc] {
                layer.visit_params(&mut |mut p| {
                    let (v, g) = p.values_and_grad();
                    axpy(-0.1, g, v)
                });
            }
            l
        };
        let first = step();
        let before = allocs();
        let steps = 10;
        let mut last = first;
        for _ in 0..steps {
            last = step();
        }
        let sgemm_calls = 2 * n + 3;
        let per_step = (allocs() - before) as f64 / steps as f64;
        println!("allocations per step after the first: {per_step} (sgemm calls per step: {sgemm_calls})");
        assert!(per_step <= sgemm_calls as f64, "{per_step} allocations per step");
        assert!(last < first, "training lowers the loss: {first} -> {last}");
    });
}

/// BatchNorm in training mode allocates nothing after the first step (its
/// per-feature sums are reused): Affine → BatchNorm → ReLU → Affine.
#[test]
fn a_batchnorm_step_allocates_only_sgemm_packing_buffers() {
    use densegrad::BatchNorm;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let (n, d0, d1, d2) = (32, 20, 16, 4);
        let mut fc1 = Affine::new(
            Tensor::new(&[d0, d1], values(d0 * d1, 7)).unwrap(),
            Tensor::zeros(&[d1]),
        )
        .unwrap();
        let mut bn = BatchNorm::new(d1).unwrap();
        let mut relu = Relu::new();
        let mut fc2 = Affine::new(
            Tensor::new(&[d1, d2], values(d1 * d2, 8)).unwrap(),
            Tensor::zeros(&[d2]),
        )
        .unwrap();
        let mut loss = SoftmaxWithLoss::new();
        let x = Tensor::new(&[n, d0], values(n * d0, 9)).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % d2).collect();
        let mut step = || {
            let h = fc1.forward_ref(&x).unwrap();
            let h = bn.forward_ref(h).unwrap();
            let h = relu.forward_ref(h).unwrap();
            let z = fc2.forward_ref(h).unwrap();
            loss.forward(z, Labels::Index(&labels)).unwrap();
            let g = loss.backward_ref(1.0).unwrap();
            let g = fc2.backward_ref(g).unwrap();
            let g = relu.backward_ref(g).unwrap();
            let g = bn.backward_ref(g).unwrap();
            fc1.backward_ref(g).unwrap();
        };
        step();
        let before = allocs();
        for _ in 0..10 {
            step();
        }
        let per_step = (allocs() - before) as f64 / 10.0;
        assert!(
            per_step <= SGEMM_CALLS_PER_STEP as f64,
            "{per_step} allocations per step"
        );
    });
}
