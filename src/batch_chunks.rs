//! Batch parallelism for a small training step.
//!
//! A step whose products are all below [`GEMM_PAR_MIN_FLOPS`] gains nothing
//! from splitting each product (every half repacks the uncut operand, and
//! each split is a fork/join of its own). Instead, when rayon has more than
//! one thread, [`Sequential::loss`] cuts the batch into two chunks of rows:
//! the first runs on the network's own layers, the second on a copy of them
//! (the *replica*, cloned once and given the current parameter values at
//! every step), side by side in one [`join_awake`]; `backward` does the
//! same, then adds the replica's parameter gradients to the network's.
//!
//! On one thread the step runs whole, but every sum over the batch is still
//! taken over rows `..s` and `s..` apart and then added (the layers'
//! [`RowSplit`]): the loss, and each Affine's dW and db. Every other result
//! is row by row, and row-by-row results do not depend on the rows around
//! them (the products are not split at these sizes, the kernels round a
//! tail as the rest), so the bits are the same at any thread count
//! (`tests/determinism.rs`). Only the crate's own layers can take part:
//! `RowSplit` cannot be named outside it.
//!
//! [`Sequential::loss`]: crate::Sequential::loss
//! [`RowSplit`]: crate::layers::sealed::RowSplit

use crate::kernels::gemm::GEMM_PAR_MIN_FLOPS;
use crate::kernels::parallel::join_awake;
use crate::kernels::reduce::axpy;
use crate::{Error, Labels, Layer, SoftmaxWithLoss, Tensor};
use std::ops::Range;
use std::time::Instant;

/// Steps run whole once the second chunk's thread keeps falling behind.
/// With the other core of the 2-core VMs this was measured on fully busy,
/// that thread gets half a core, and chunking every step made W4 small
/// 1.3× slower than one thread (1.1× with this back-off); on a quiet
/// machine about one join in 500 waits that long (an interrupt, a page
/// fault), too few to make three of 32.
const BACK_OFF_STEPS: u32 = 64;
/// Of the last 32 joins, this many stalled ones start a back-off.
const STALLS_TO_BACK_OFF: u32 = 3;

/// Batches of fewer rows run whole. 784-50-10 SGD steps, medians, whole
/// against chunked (µs): batch 48 at 2 threads 100 against 108 (chunks of
/// 24 rows lose even there); batch 64 at 1 thread 128 against 142, at 2
/// threads 135 against 116–131; batch 80 at 1 thread 163 against 172, at 2
/// threads 162 against 146; batch 128 at 2 threads 262 against 198; batch
/// 200 at 2 threads 417 against 271.
pub(crate) const MIN_CHUNKED_ROWS: usize = 96;

/// The row at which the batch `x` is cut for `layers` against labels `t`,
/// or `None` when no sum is cut: a layer other than the crate's Affine and
/// pointwise activations, a batch that is not 2-D or has fewer than
/// [`MIN_CHUNKED_ROWS`] rows, labels that do not match it (the whole step
/// then reports the error), or a product big enough for `gemm` to split
/// across threads itself.
pub(crate) fn split_row(layers: &mut [Box<dyn Layer>], x: &Tensor, t: Labels<'_>) -> Option<usize> {
    let &[n, _] = x.shape() else { return None };
    let labels_match = match t {
        Labels::Index(idx) => idx.len() == n,
        Labels::OneHot(t) => matches!(t.shape(), &[rows, _] if rows == n),
    };
    if n < MIN_CHUNKED_ROWS
        || !labels_match
        || layers.is_empty()
        || !layers.iter_mut().all(|l| l.row_split().is_some())
    {
        return None;
    }
    let mut small = true;
    for layer in layers {
        layer.visit_params(&mut |p| {
            small &= n.saturating_mul(p.numel()).saturating_mul(2) < GEMM_PAR_MIN_FLOPS;
        });
    }
    small.then(|| n.div_ceil(2))
}

/// Tells every layer where the sums over its batch are cut (`None`: they
/// are not).
pub(crate) fn set_row_split(layers: &mut [Box<dyn Layer>], at: Option<usize>) {
    for layer in layers {
        if let Some(split) = layer.row_split() {
            split.at = at;
        }
    }
}

/// What a chunked step keeps between `loss` and `backward`.
#[derive(Clone, Default)]
pub(crate) struct BatchChunks {
    /// The second chunk's layers and loss; `None` until the first chunked
    /// step, and dropped whenever the network's layers may have changed.
    replica: Option<Replica>,
    /// The first chunk's rows of the batch.
    first: ChunkRows,
    /// Rows of the last chunked batch; 0 when the last `loss` ran whole.
    rows: usize,
    /// Steps left to run whole after the second chunk's thread kept
    /// falling behind (its core was busy).
    back_off: u32,
    /// One bit per recent join, newest lowest: whether it stalled.
    stalls: u32,
}

#[derive(Clone)]
struct Replica {
    layers: Vec<Box<dyn Layer>>,
    loss: SoftmaxWithLoss,
    rows: ChunkRows,
}

/// A chunk's rows of the input and, for one-hot labels, of the targets
/// (layers take whole tensors, so the rows are copied out).
#[derive(Clone)]
struct ChunkRows {
    x: Tensor,
    onehot: Tensor,
}

impl Default for ChunkRows {
    fn default() -> Self {
        ChunkRows {
            x: Tensor::zeros(&[0]),
            onehot: Tensor::zeros(&[0]),
        }
    }
}

impl ChunkRows {
    /// The summed loss of rows `rows` of the batch `x` against `t`, forward
    /// through `layers` and `loss`.
    fn forward(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        loss: &mut SoftmaxWithLoss,
        x: &Tensor,
        t: Labels<'_>,
        rows: Range<usize>,
    ) -> Result<f64, Error> {
        copy_rows(x, rows.clone(), &mut self.x);
        let t = match t {
            Labels::Index(idx) => Labels::Index(&idx[rows]),
            Labels::OneHot(t) => {
                copy_rows(t, rows, &mut self.onehot);
                Labels::OneHot(&self.onehot)
            }
        };
        let h = crate::net::forward_all(layers, &self.x)?;
        loss.forward_total("softmax with loss forward", h, t, None)
    }
}

impl BatchChunks {
    /// Forgets the replica: the network's layers were replaced or changed
    /// in a way copying parameter values does not follow.
    pub(crate) fn invalidate(&mut self) {
        self.replica = None;
        self.rows = 0;
    }

    /// Whether the last `loss` ran in chunks (so `backward` must too).
    pub(crate) fn active(&self) -> bool {
        self.rows > 0
    }

    /// Marks the last `loss` as run whole.
    pub(crate) fn deactivate(&mut self) {
        self.rows = 0;
    }

    /// Whether this step may run in chunks: not for [`BACK_OFF_STEPS`]
    /// steps after the second chunk's thread kept stalling. (Either way
    /// gives the same bits, so this choice by timing changes only the
    /// speed.)
    pub(crate) fn take_turn(&mut self) -> bool {
        if self.back_off > 0 {
            self.back_off -= 1;
            return false;
        }
        true
    }

    /// Records whether the last join stalled, and backs off after
    /// [`STALLS_TO_BACK_OFF`] of the last 32.
    fn note(&mut self, stalled: bool) {
        self.stalls = self.stalls << 1 | u32::from(stalled);
        if self.stalls.count_ones() >= STALLS_TO_BACK_OFF {
            self.back_off = BACK_OFF_STEPS;
            self.stalls = 0;
        }
    }

    /// The mean loss of the batch `x` against `t`, cut at row `split`
    /// (from [`split_row`]): forward through `layers` and `loss` for the
    /// first rows and through the replica for the rest.
    pub(crate) fn loss(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        loss: &mut SoftmaxWithLoss,
        x: &Tensor,
        t: Labels<'_>,
        split: usize,
    ) -> Result<f32, Error> {
        self.rows = 0;
        let replica = match &mut self.replica {
            Some(r) => r,
            empty => empty.insert(Replica {
                layers: layers.to_vec(),
                loss: SoftmaxWithLoss::new(),
                rows: ChunkRows::default(),
            }),
        };
        for (from, to) in layers.iter().zip(&mut replica.layers) {
            copy_state(from.as_ref(), to.as_mut())?;
        }
        // Each chunk's own sums are whole.
        set_row_split(layers, None);
        set_row_split(&mut replica.layers, None);
        let n = x.shape()[0];
        let first = &mut self.first;
        let ((total0, total1), stalled) = timed_join(
            || first.forward(layers, loss, x, t, 0..split),
            || {
                let Replica { layers, loss, rows } = replica;
                rows.forward(layers, loss, x, t, split..n)
            },
        );
        self.note(stalled);
        let total = total0? + total1?;
        self.rows = n;
        Ok((total / n as f64) as f32)
    }

    /// Backward of both chunks of the last `loss`, then the replica's
    /// parameter gradients added to `layers`'.
    pub(crate) fn backward(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        loss: &mut SoftmaxWithLoss,
    ) -> Result<(), Error> {
        let replica = self
            .replica
            .as_mut()
            .filter(|_| self.rows > 0)
            .ok_or_else(|| {
                Error::state("sequential backward", "no chunked loss to go back from")
            })?;
        // dout / N for the whole batch, as an unchunked backward scales.
        let scale = 1.0 / self.rows as f32;
        let ((r0, r1), stalled) = timed_join(
            || backward_chunk(layers, loss, scale),
            || backward_chunk(&mut replica.layers, &mut replica.loss, scale),
        );
        let result = r0.and(r1);
        if result.is_ok() {
            for (to, from) in layers.iter_mut().zip(&mut replica.layers) {
                add_grads(from.as_mut(), to.as_mut());
            }
        }
        self.note(stalled);
        result
    }
}

/// [`join_awake`], and whether the calling thread, done with `a`, then
/// waited longer for `b` than `a` took: the thread running `b` shares its
/// core with another process (or lost it), which a step cannot win back, or
/// no thread was free to take `b` at all.
fn timed_join<A, B, RA, RB>(a: A, b: B) -> ((RA, RB), bool)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let start = Instant::now();
    let mut a_done = start;
    let results = join_awake(
        || {
            let ra = a();
            a_done = Instant::now();
            ra
        },
        b,
    );
    (results, a_done.elapsed() > a_done - start)
}

/// `dst` set to rows `rows` of the 2-D tensor `src`.
fn copy_rows(src: &Tensor, rows: Range<usize>, dst: &mut Tensor) {
    let cols = src.shape()[1];
    dst.resize_buffer(&[rows.len(), cols]);
    dst.data_mut()
        .copy_from_slice(&src.data()[rows.start * cols..rows.end * cols]);
}

fn backward_chunk(
    layers: &mut [Box<dyn Layer>],
    loss: &mut SoftmaxWithLoss,
    scale: f32,
) -> Result<(), Error> {
    let g = loss.backward_scaled(scale)?;
    crate::net::backward_all(layers, g)
}

/// `to`'s state values set to `from`'s (the same layer type and shapes).
fn copy_state(from: &dyn Layer, to: &mut dyn Layer) -> Result<(), Error> {
    let mut result = Ok(());
    let mut i = 0;
    from.visit_state_ref(&mut |_, src| {
        let mut j = 0;
        to.visit_state(&mut |mut dst| {
            if j == i && result.is_ok() {
                if dst.shape() == src.shape() {
                    in_halves(src.data(), dst.values_mut(), |s, d| d.copy_from_slice(s));
                } else {
                    result = dst.copy_from(src);
                }
            }
            j += 1;
        });
        i += 1;
    });
    result
}

/// `to`'s parameter gradients += `from`'s, parameter by parameter.
fn add_grads(from: &mut dyn Layer, to: &mut dyn Layer) {
    let mut i = 0;
    to.visit_grads_mut(&mut |_, dst| {
        let mut j = 0;
        from.visit_grads_mut(&mut |_, src| {
            if j == i {
                // A clone's gradients: the same lengths, or a bug here.
                assert_eq!(
                    src.len(),
                    dst.len(),
                    "batch chunks: gradient {i} differs in length"
                );
                in_halves(src, dst, |s, d| axpy(1.0, s, d));
            }
            j += 1;
        });
        i += 1;
    });
}

/// Tensors of at least this many elements are copied and added by both
/// threads, half each: the copy of W4 small's first weight (39 200
/// elements) and the sum of its gradient otherwise run on one thread
/// between the joins, reading what the other core wrote.
const HALVES_MIN_ELEMS: usize = 1 << 14;

/// `f` on `src` and `dst` (same length), in two halves side by side when
/// they are long enough. Elementwise, so the halves change no bits.
fn in_halves(src: &[f32], dst: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync) {
    if dst.len() < HALVES_MIN_ELEMS {
        return f(src, dst);
    }
    let mid = dst.len() / 2;
    let ((s0, s1), (d0, d1)) = (src.split_at(mid), dst.split_at_mut(mid));
    join_awake(|| f(s0, d0), || f(s1, d1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Affine, BatchNorm, Relu, Sequential, Sigmoid};

    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    /// `f` in a pool of one thread (the whole batch, its sums cut) and of
    /// two (the chunks side by side).
    fn on_1_and_2_threads(f: fn()) {
        for threads in [1, 2] {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(f);
        }
    }

    /// Parameters of [`mlp`]: W1, b1, W2, b2.
    fn params(k: usize, h: usize, c: usize) -> [Vec<f32>; 4] {
        [
            values(k * h, 1, 0.5),
            values(h, 2, 0.1),
            values(h * c, 3, 0.5),
            values(c, 4, 0.1),
        ]
    }

    /// Affine(k→h) · ReLU · Affine(h→c), with the given parameters.
    fn mlp(p: &[Vec<f32>; 4], k: usize, h: usize, c: usize) -> Sequential {
        let fc = |w: &[f32], b: &[f32], i, o| {
            Affine::new(
                Tensor::new(&[i, o], w.to_vec()).unwrap(),
                Tensor::new(&[o], b.to_vec()).unwrap(),
            )
            .unwrap()
        };
        Sequential::new()
            .with(fc(&p[0], &p[1], k, h))
            .with(Relu::new())
            .with(fc(&p[2], &p[3], h, c))
    }

    /// Loss and parameter gradients of [`mlp`] in f64.
    fn reference(
        x: &[f32],
        p: &[Vec<f32>; 4],
        labels: &[usize],
        (k, h, c): (usize, usize, usize),
    ) -> (f64, [Vec<f64>; 4]) {
        let n = labels.len();
        let mut g = [
            vec![0.0; k * h],
            vec![0.0; h],
            vec![0.0; h * c],
            vec![0.0; c],
        ];
        let mut loss = 0.0;
        for r in 0..n {
            let xr = &x[r * k..(r + 1) * k];
            let a: Vec<f64> = (0..h)
                .map(|j| {
                    let z = (0..k)
                        .map(|i| xr[i] as f64 * p[0][i * h + j] as f64)
                        .sum::<f64>()
                        + p[1][j] as f64;
                    z.max(0.0)
                })
                .collect();
            let z: Vec<f64> = (0..c)
                .map(|j| {
                    (0..h).map(|i| a[i] * p[2][i * c + j] as f64).sum::<f64>() + p[3][j] as f64
                })
                .collect();
            let max = z.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            loss += sum.ln() + max - z[labels[r]];
            let dz: Vec<f64> = (0..c)
                .map(|j| ((z[j] - max).exp() / sum - f64::from(j == labels[r])) / n as f64)
                .collect();
            for i in 0..h {
                for j in 0..c {
                    g[2][i * c + j] += a[i] * dz[j];
                }
            }
            for j in 0..c {
                g[3][j] += dz[j];
            }
            for i in 0..h {
                let da: f64 = (0..c).map(|j| p[2][i * c + j] as f64 * dz[j]).sum();
                let dpre = if a[i] > 0.0 { da } else { 0.0 };
                for (kk, xv) in xr.iter().enumerate() {
                    g[0][kk * h + i] += *xv as f64 * dpre;
                }
                g[1][i] += dpre;
            }
        }
        (loss / n as f64, g)
    }

    #[test]
    fn chunked_step_matches_f64() {
        on_1_and_2_threads(|| {
            let (n, k, h, c) = (100, 37, 19, 7);
            let p = params(k, h, c);
            let x = values(n * k, 5, 1.0);
            let labels: Vec<usize> = (0..n).map(|i| (i * 31) % c).collect();
            let xt = Tensor::new(&[n, k], x.clone()).unwrap();
            let mut net = mlp(&p, k, h, c);
            assert_eq!(
                split_row(&mut net.layers_mut().to_vec(), &xt, Labels::Index(&labels)),
                Some(50)
            );

            let loss = net.loss(&xt, Labels::Index(&labels)).unwrap();
            net.backward().unwrap();
            let (want_loss, want) = reference(&x, &p, &labels, (k, h, c));
            assert!(
                ((loss as f64 - want_loss) / want_loss).abs() < 1e-6,
                "{loss} against {want_loss}"
            );
            let mut i = 0;
            net.visit_params(&mut |p| {
                let scale = want[i].iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (g, w) in p.grad().data().iter().zip(&want[i]) {
                    // f32 sums of ≤ 100 terms against f64: well within 1e-5 of
                    // the largest entry.
                    assert!(
                        (*g as f64 - w).abs() <= 1e-5 * scale,
                        "param {i}: {g} against {w}"
                    );
                }
                i += 1;
            });
            assert_eq!(i, 4);
        });
    }

    #[test]
    fn small_batches_and_big_products_run_whole() {
        let fc = |k, m| {
            Box::new(Affine::new(Tensor::zeros(&[k, m]), Tensor::zeros(&[m])).unwrap())
                as Box<dyn Layer>
        };
        let labels = [0usize; 100];
        let x = |n, k| Tensor::zeros(&[n, k]);
        let mut small = vec![fc(20, 5)];
        assert_eq!(
            split_row(&mut small, &x(100, 20), Labels::Index(&labels)),
            Some(50)
        );
        assert_eq!(
            split_row(&mut small, &x(95, 20), Labels::Index(&labels[..95])),
            None
        );
        assert_eq!(
            split_row(&mut small, &x(100, 20), Labels::Index(&labels[..99])),
            None
        );
        assert_eq!(
            split_row(&mut small, &Tensor::zeros(&[100]), Labels::Index(&labels)),
            None
        );
        // 2 · 100 · 784 · 1024 flops: gemm splits this product itself.
        let mut big = vec![fc(784, 1024)];
        assert_eq!(
            split_row(&mut big, &x(100, 784), Labels::Index(&labels)),
            None
        );
        let mut batchnorm: Vec<Box<dyn Layer>> =
            vec![fc(20, 5), Box::new(BatchNorm::new(5).unwrap())];
        assert_eq!(
            split_row(&mut batchnorm, &x(100, 20), Labels::Index(&labels)),
            None
        );
    }

    #[test]
    fn errors_name_the_whole_batch() {
        on_1_and_2_threads(|| {
            let (n, k, h, c) = (100, 8, 6, 3);
            let p = params(k, h, c);
            let mut net = mlp(&p, k, h, c);
            let x = Tensor::new(&[n, k], values(n * k, 5, 1.0)).unwrap();
            let mut labels: Vec<usize> = (0..n).map(|i| i % c).collect();
            labels[70] = c;
            let err = net
                .loss(&x, Labels::Index(&labels))
                .unwrap_err()
                .to_string();
            assert!(err.contains("label 3 at row 70"), "{err}");
            assert!(net.backward().is_err());
            let wide = Tensor::zeros(&[n, k + 1]);
            let err = net
                .loss(&wide, Labels::Index(&labels))
                .unwrap_err()
                .to_string();
            assert!(err.contains("[100, 9]"), "{err}");
        });
    }

    #[test]
    fn a_replaced_layer_is_used_by_both_chunks() {
        on_1_and_2_threads(|| {
            let (n, k, h, c) = (96, 8, 6, 3);
            let p = params(k, h, c);
            let x = Tensor::new(&[n, k], values(n * k, 5, 1.0)).unwrap();
            let labels: Vec<usize> = (0..n).map(|i| i % c).collect();
            let mut net = mlp(&p, k, h, c);
            net.loss(&x, Labels::Index(&labels)).unwrap();
            net.backward().unwrap();
            net.layers_mut()[1] = Box::new(Sigmoid::new());
            let mut fresh = mlp(&p, k, h, c);
            fresh.layers_mut()[1] = Box::new(Sigmoid::new());
            let (a, b) = (
                net.loss(&x, Labels::Index(&labels)).unwrap(),
                fresh.loss(&x, Labels::Index(&labels)).unwrap(),
            );
            assert_eq!(a.to_bits(), b.to_bits());
        });
    }
}
