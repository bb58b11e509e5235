//! Same inputs, bitwise-identical outputs for any number of rayon threads.
//!
//! Every kernel that splits work does so by output (rows of Y, dX and dW,
//! blocks of columns of db, chunks of elementwise output, blocks of softmax
//! rows, a small `Sequential` step's two halves of the batch), or into
//! chunks fixed by the shapes whose partial sums are added in a fixed order
//! (the convolution's samples). This test runs shapes large enough to cross every
//! parallel threshold in pools of 1, 2, 3 and 4 threads and compares the
//! bits.

use densegrad::{
    Affine, Convolution, Labels, Layer, Pooling, Relu, Sigmoid, SoftmaxWithLoss, Tensor,
};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        })
        .collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

/// Every output of a forward+backward pass through all layers, as bits.
fn run_all() -> Vec<Vec<u32>> {
    // 210 MFLOP per product and a 150K-element dY: every split is taken,
    // and from 2 threads dX and dW are computed side by side.
    let (n, k, m) = (300, 700, 500);
    let x = Tensor::new(&[n, k], values(n * k, 1)).unwrap();
    let mut fc = Affine::new(
        Tensor::new(&[k, m], values(k * m, 2)).unwrap(),
        Tensor::new(&[m], values(m, 3)).unwrap(),
    )
    .unwrap();
    let y = fc.forward(&x).unwrap();
    let dx = fc
        .backward(Tensor::new(&[n, m], values(n * m, 4)).unwrap())
        .unwrap();
    let mut out = vec![
        bits(&y),
        bits(&dx),
        bits(fc.dw().unwrap()),
        bits(fc.db().unwrap()),
    ];

    // 7.8 MFLOP: the forward in two halves of K, dW from two column blocks.
    let (n, k, m) = (100, 784, 50);
    let mut fc = Affine::new(
        Tensor::new(&[k, m], values(k * m, 11)).unwrap(),
        Tensor::new(&[m], values(m, 12)).unwrap(),
    )
    .unwrap();
    let y = fc
        .forward(&Tensor::new(&[n, k], values(n * k, 13)).unwrap())
        .unwrap();
    let dx = fc
        .backward(Tensor::new(&[n, m], values(n * m, 14)).unwrap())
        .unwrap();
    out.extend([
        bits(&y),
        bits(&dx),
        bits(fc.dw().unwrap()),
        bits(fc.db().unwrap()),
    ]);

    // Elementwise work above the 2^17-element threshold.
    let big = Tensor::new(&[400, 1000], values(400_000, 5)).unwrap();
    let d = Tensor::new(&[400, 1000], values(400_000, 6)).unwrap();
    for layer in [&mut Relu::new() as &mut dyn Layer, &mut Sigmoid::new()] {
        out.push(bits(&layer.forward(&big).unwrap()));
        out.push(bits(&layer.backward(d.clone()).unwrap()));
        out.push(bits(layer.backward_ref(&d).unwrap()));
    }

    // Softmax rows split in blocks; the loss summed in row order.
    let labels: Vec<usize> = (0..400).map(|i| (i * 7919) % 1000).collect();
    let mut swl = SoftmaxWithLoss::new();
    out.push(vec![swl
        .forward(&big, Labels::Index(&labels))
        .unwrap()
        .to_bits()]);
    out.push(bits(&swl.backward(0.7).unwrap()));
    let t = densegrad::softmax(&d).unwrap();
    out.push(vec![swl
        .forward(&big, Labels::OneHot(&t))
        .unwrap()
        .to_bits()]);
    out.push(bits(&swl.backward(1.3).unwrap()));

    // Convolution: 17 chunks of 6 samples, per-chunk dW/db partials added
    // in chunk order; pooling split by planes (627K input elements).
    let x = Tensor::new(&[100, 3, 28, 28], values(100 * 3 * 784, 7)).unwrap();
    let mut conv = Convolution::new(
        Tensor::new(&[8, 3, 3, 3], values(8 * 27, 8)).unwrap(),
        Tensor::new(&[8], values(8, 9)).unwrap(),
        1,
        1,
    )
    .unwrap();
    let y = conv.forward(&x).unwrap();
    let mut pool = Pooling::new(3, 3, 2, 1).unwrap();
    let p = pool.forward(&y).unwrap();
    let dy = pool
        .backward(Tensor::new(p.shape(), values(p.numel(), 10)).unwrap())
        .unwrap();
    let dx = conv.backward(dy.clone()).unwrap();
    out.extend([
        bits(&y),
        bits(&p),
        bits(&dy),
        bits(&dx),
        bits(conv.dw().unwrap()),
        bits(conv.db().unwrap()),
    ]);
    out
}

/// `run` in pools of 1, 2, 3 and 4 threads: every output the same bits.
fn assert_same_bits_at_1_to_4_threads(run: fn() -> Vec<Vec<u32>>) {
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    let reference = pool(1).install(run);
    for threads in 2..=4 {
        let got = pool(threads).install(run);
        assert_eq!(reference.len(), got.len());
        for (i, (a, b)) in reference.iter().zip(&got).enumerate() {
            assert!(a == b, "output {i} differs between 1 and {threads} threads");
        }
    }
}

#[test]
fn outputs_are_bitwise_identical_for_1_to_4_threads() {
    assert_same_bits_at_1_to_4_threads(run_all);
}

/// Three SGD steps of small networks. 784-50-10 at batch 100: products of
/// 7.8 MFLOP, each cut in two halves (the forward in K, its input kept as
/// two blocks of columns), and the first weight's update in two halves.
/// 100-19-10 at batch 1000 and 64-120-120-120-10 at batch 128: every
/// product below 4 MFLOP, so `Sequential` runs the two halves of the batch
/// side by side; the last one's backward data pass (7.7 MFLOP) too, and
/// its later activations are Sigmoids (backward from the output, where
/// ReLU's reads sign bits). Loss and final parameters as bits, for index
/// and one-hot labels.
fn train_small_mlp() -> Vec<Vec<u32>> {
    let mut out = train_small_mlp_at(100, &[784, 50, 10]);
    out.extend(train_small_mlp_at(1000, &[100, 19, 10]));
    out.extend(train_small_mlp_at(128, &[64, 120, 120, 120, 10]));
    out
}

fn train_small_mlp_at(n: usize, sizes: &[usize]) -> Vec<Vec<u32>> {
    use densegrad::optim::{Optimizer, Sgd};
    use densegrad::Sequential;
    let k = sizes[0];
    let x = Tensor::new(&[n, k], values(n * k, 11)).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| (i * 7919) % 10).collect();
    let onehot = Tensor::new(
        &[n, 10],
        (0..n * 10)
            .map(|i| f32::from(labels[i / 10] == i % 10))
            .collect(),
    )
    .unwrap();
    let mut out = Vec::new();
    for t in [Labels::Index(&labels), Labels::OneHot(&onehot)] {
        let mut net = Sequential::new();
        for (i, w) in sizes.windows(2).enumerate() {
            match i {
                0 => {}
                1 => net.push(Box::new(Relu::new())),
                _ => net.push(Box::new(Sigmoid::new())),
            }
            let weights = values(w[0] * w[1], 12 + i as u64)
                .iter()
                .map(|v| v * 0.05)
                .collect();
            net.push(Box::new(
                Affine::new(
                    Tensor::new(&[w[0], w[1]], weights).unwrap(),
                    Tensor::new(&[w[1]], values(w[1], 20 + i as u64)).unwrap(),
                )
                .unwrap(),
            ));
        }
        let mut opt = Sgd::new(0.1);
        for _ in 0..3 {
            out.push(vec![net.loss(&x, t).unwrap().to_bits()]);
            net.backward().unwrap();
            opt.step(&mut net).unwrap();
        }
        net.visit_params(&mut |p| out.push(bits(p.value())));
    }
    out
}

#[test]
fn batch_chunked_training_is_bitwise_identical_for_1_to_4_threads() {
    assert_same_bits_at_1_to_4_threads(train_small_mlp);
}
