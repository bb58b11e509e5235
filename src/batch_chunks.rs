//! Batch parallelism for a small training step.
//!
//! A step whose products are all below [`GEMM_HALVES_MIN_FLOPS`] gains
//! nothing from splitting each product (a fork/join costs more than such a
//! product's half). Instead, when rayon has more than
//! one thread, [`Sequential::loss`] runs the layers on the two halves of
//! the batch's rows side by side, in one
//! [`join_awake`](crate::kernels::parallel::join_awake). Only layers whose
//! every output row depends on its input row alone take part (the crate's
//! Affine and pointwise activations, through the sealed [`RowWise`]), and
//! they run on buffers laid out here for the whole batch, each half writing
//! its own rows: the layers' parameters are read by both halves in place.
//!
//! Every sum over the batch is then taken over the whole batch in one
//! piece, exactly as the layers' own passes take it: the loss (on the
//! whole logits, by [`SoftmaxWithLoss`] itself) and each Affine's dW and db
//! (`gemm_par`, which splits a product only by its output). The row-wise
//! work gives the same bits for any cut of the rows (the kernels do not
//! depend on the rows around a row), so a chunked step has the bits of the
//! layers' own passes, at any thread count (`tests/determinism.rs`).
//!
//! [`Sequential::loss`]: crate::Sequential::loss
//! [`RowWise`]: crate::layers::sealed::RowWise

use crate::kernels::gemm::GEMM_HALVES_MIN_FLOPS;
use crate::kernels::parallel::{timed_join, BackOff};
use crate::layers::sealed::RowWise;
use crate::{Error, Labels, Layer, SoftmaxWithLoss, Tensor};

/// Batches of fewer rows run whole: at 32 rows, two of the three networks
/// measured lost with chunks (BENCHMARKS.md, "When a step runs in chunks").
pub(crate) const MIN_CHUNKED_ROWS: usize = 64;

/// Steps whose forward products (Affine layers) average fewer flops than
/// this run whole. Each product's parameter gradient is a sum over the
/// whole batch, so it reads the rows the other core wrote, and the
/// activations cross between the cores at about 5 GB/s: below this the
/// crossing and the joins cost more than the half of the work they share.
/// Measured at 2 threads on 22 steps (7 networks), chunked against
/// whole (BENCHMARKS.md): every step at 1.5 MFLOP per product or more
/// gained (0.83–0.92×); below, most lost (up to 1.35×) and the few that
/// gained, gained at most 16%.
pub(crate) const MIN_CHUNKED_FLOPS_PER_PRODUCT: usize = 1_500_000;

/// The backward data pass (the input gradients of every layer but the
/// first) runs its two halves side by side from this many flops, as
/// `gemm_par` splits a product, and on the calling thread below. W4
/// small's is 0.1 MFLOP; side by side, its step at 2 threads took 175–181
/// µs against 160–168 µs (5 interleaved rounds): the join and the rows'
/// move between the cores cost more than the few µs of work they share.
const SIDE_BY_SIDE_BACKWARD_MIN_FLOPS: usize = GEMM_HALVES_MIN_FLOPS;

/// The row at which the batch `x` is cut for `layers` against labels `t`,
/// or `None` when the step runs whole: a layer other than the crate's
/// Affine and pointwise activations, a batch that is not 2-D, has fewer
/// than [`MIN_CHUNKED_ROWS`] rows or a width the layers do not take, labels
/// that do not match it (the whole step then reports the error), products
/// (Affine layers) that average fewer than
/// [`MIN_CHUNKED_FLOPS_PER_PRODUCT`] flops or none at all, or a
/// product of [`GEMM_HALVES_MIN_FLOPS`] or more, which the layers split
/// across threads themselves (Affine cuts such a forward in K, so that each
/// thread reads only its half of W: W4 small's 7.8-MFLOP products ran that
/// way in 125–128 µs at 2 threads against 150–163 µs with the batch cut in
/// halves, whose every half reads all of W, just rewritten by the
/// optimizer on the other core).
pub(crate) fn split_row(layers: &[Box<dyn Layer>], x: &Tensor, t: Labels<'_>) -> Option<usize> {
    let &[n, mut width] = x.shape() else {
        return None;
    };
    let labels_match = match t {
        Labels::Index(idx) => idx.len() == n,
        Labels::OneHot(t) => matches!(t.shape(), &[rows, _] if rows == n),
    };
    if n < MIN_CHUNKED_ROWS || !labels_match || layers.is_empty() {
        return None;
    }
    let (mut product_flops, mut products) = (0usize, 0usize);
    for layer in row_wise(layers)? {
        let flops = n.saturating_mul(layer.flops_per_row(width));
        if flops >= GEMM_HALVES_MIN_FLOPS {
            return None;
        }
        if layer.has_params() {
            product_flops = product_flops.saturating_add(flops);
            products += 1;
        }
        width = layer.out_width(width)?;
    }
    let enough = product_flops >= products.saturating_mul(MIN_CHUNKED_FLOPS_PER_PRODUCT);
    (products > 0 && enough).then_some(n.div_ceil(2))
}

/// Every layer as [`RowWise`], or `None` if one is not.
fn row_wise(layers: &[Box<dyn Layer>]) -> Option<Vec<&dyn RowWise>> {
    layers.iter().map(|l| l.row_wise()).collect()
}

/// A layer's [`RowWise`], which the caller found it to have ([`split_row`]
/// said every layer has one, or `Sequential` lent it its input).
pub(crate) fn row_wise_mut<'a>(
    op: &'static str,
    layer: &'a mut dyn Layer,
) -> Result<&'a mut dyn RowWise, Error> {
    layer
        .row_wise_mut()
        .ok_or_else(|| Error::state(op, "a layer is not one of the crate's row-wise layers"))
}

/// The buffers of a chunked step, laid out once and reused, and the
/// back-off.
#[derive(Clone, Default)]
pub(crate) struct BatchChunks {
    /// `acts[0]`: a copy of the batch; `acts[i + 1]`: layer `i`'s output
    /// (the last: the logits). Each (rows, width).
    acts: Vec<Tensor>,
    /// `grads[i]`: the gradient with respect to `acts[i]`, for every layer
    /// `i` but the first (whose input is data); the logits' gradient is the
    /// loss's own buffer.
    grads: Vec<Tensor>,
    /// Per half of the rows, per layer: the sign classes its backward reads.
    signs: [Vec<Vec<u8>>; 2],
    /// Where the last chunked batch was cut.
    split: usize,
    /// Rows of the last chunked batch; 0 when the last `loss` ran whole.
    rows: usize,
    /// Steps run unchunked while the second half's thread keeps falling
    /// behind (its core is busy).
    back_off: BackOff,
}

impl BatchChunks {
    /// Forgets the last chunked `loss`: the network's layers were replaced
    /// or changed, so `backward` cannot follow it.
    pub(crate) fn invalidate(&mut self) {
        self.rows = 0;
    }

    /// Whether the last `loss` ran in chunks (so `backward` must too).
    pub(crate) fn active(&self) -> bool {
        self.rows > 0
    }

    /// Whether this step may run in chunks: not while the second half's
    /// thread keeps stalling ([`BackOff`]). (Either way gives the same
    /// bits, so this choice by timing changes only the speed.)
    pub(crate) fn take_turn(&mut self) -> bool {
        self.back_off.take_turn()
    }

    /// The mean loss of the batch `x` against `t`: `layers` forward on
    /// rows `..split` and `split..` side by side (`split` from
    /// [`split_row`]), then `loss` on the whole logits.
    pub(crate) fn loss(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        loss: &mut SoftmaxWithLoss,
        x: &Tensor,
        t: Labels<'_>,
        split: usize,
    ) -> Result<f32, Error> {
        self.rows = 0;
        for layer in layers.iter_mut() {
            row_wise_mut("sequential loss", layer.as_mut())?.forget();
        }
        let rw = row_wise(layers).ok_or_else(|| {
            Error::state("sequential loss", "a layer cannot run on rows of the batch")
        })?;
        let (n, mut width) = (x.shape()[0], x.shape()[1]);
        self.acts.resize_with(rw.len() + 1, || Tensor::zeros(&[0]));
        self.acts[0].resize_buffer(&[n, width]);
        for (layer, act) in rw.iter().zip(&mut self.acts[1..]) {
            width = layer.out_width(width).ok_or_else(|| {
                Error::state("sequential loss", "a layer refused the batch's width")
            })?;
            act.resize_buffer(&[n, width]);
        }
        for signs in &mut self.signs {
            signs.resize_with(rw.len(), Vec::new);
        }
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for act in &mut self.acts {
            let width = act.shape()[1];
            let (a, b) = act.data_mut().split_at_mut(split * width);
            top.push(a);
            bottom.push(b);
        }
        let (x_top, x_bottom) = x.data().split_at(split * x.shape()[1]);
        let [signs_top, signs_bottom] = &mut self.signs;
        let rw = &rw;
        let (_, stalled) = timed_join(
            || forward_rows(rw, x_top, &mut top, signs_top),
            || forward_rows(rw, x_bottom, &mut bottom, signs_bottom),
        );
        self.back_off.note(stalled);
        let mean = loss.forward(&self.acts[rw.len()], t)?;
        (self.split, self.rows) = (split, n);
        Ok(mean)
    }

    /// Backward from the last chunked `loss`: the input gradients of the
    /// layers on both halves of the rows, then every layer's parameter
    /// gradients over the whole batch.
    pub(crate) fn backward(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        loss: &mut SoftmaxWithLoss,
    ) -> Result<(), Error> {
        if self.rows == 0 {
            return Err(Error::state(
                "sequential backward",
                "no chunked loss to go back from",
            ));
        }
        let (n, split) = (self.rows, self.split);
        let g = loss.backward_ref(1.0)?.data();
        self.grads.resize_with(layers.len(), || Tensor::zeros(&[0]));
        for (grad, act) in self.grads.iter_mut().zip(&self.acts).skip(1) {
            grad.resize_buffer(act.shape());
        }
        {
            let rw = row_wise(layers).ok_or_else(|| {
                Error::state(
                    "sequential backward",
                    "a layer cannot run on rows of the batch",
                )
            })?;
            let flops: usize = rw
                .iter()
                .zip(&self.acts)
                .skip(1)
                .map(|(l, act)| n.saturating_mul(l.flops_per_row(act.shape()[1])))
                .sum();
            let (mut acts_top, mut acts_bottom) = (Vec::new(), Vec::new());
            for act in &self.acts {
                let (a, b) = act.data().split_at(split * act.shape()[1]);
                acts_top.push(a);
                acts_bottom.push(b);
            }
            let (mut grads_top, mut grads_bottom) = (Vec::new(), Vec::new());
            for grad in &mut self.grads {
                let w = grad.shape().get(1).copied().unwrap_or(0);
                let (a, b) = grad.data_mut().split_at_mut(split * w);
                grads_top.push(a);
                grads_bottom.push(b);
            }
            let (g_top, g_bottom) = g.split_at(g.len() / n * split);
            let [signs_top, signs_bottom] = &self.signs;
            let rw = &rw;
            let mut top = || backward_rows(rw, &acts_top, &mut grads_top, g_top, signs_top);
            let mut bottom =
                || backward_rows(rw, &acts_bottom, &mut grads_bottom, g_bottom, signs_bottom);
            if flops >= SIDE_BY_SIDE_BACKWARD_MIN_FLOPS {
                let (_, stalled) = timed_join(top, bottom);
                self.back_off.note(stalled);
            } else {
                top();
                bottom();
            }
        }
        let last = layers.len() - 1;
        for (i, layer) in layers.iter_mut().enumerate() {
            let dy = if i == last {
                g
            } else {
                self.grads[i + 1].data()
            };
            row_wise_mut("sequential backward", layer.as_mut())?
                .param_grads(self.acts[i].data(), dy);
        }
        Ok(())
    }
}

/// One half's rows forward: `x` copied to `acts[0]`, then layer `i` from
/// `acts[i]` to `acts[i + 1]`.
fn forward_rows(
    layers: &[&dyn RowWise],
    x: &[f32],
    acts: &mut [&mut [f32]],
    signs: &mut [Vec<u8>],
) {
    acts[0].copy_from_slice(x);
    for (i, (layer, signs)) in layers.iter().zip(signs).enumerate() {
        let (done, rest) = acts.split_at_mut(i + 1);
        layer.forward_rows(done[i], rest[0], signs);
    }
}

/// One half's rows backward, from `g` (the logits' gradient) down to
/// `grads[1]` (the second layer's input gradient).
fn backward_rows(
    layers: &[&dyn RowWise],
    acts: &[&[f32]],
    grads: &mut [&mut [f32]],
    g: &[f32],
    signs: &[Vec<u8>],
) {
    let last = layers.len() - 1;
    for i in (1..layers.len()).rev() {
        let (below, above) = grads.split_at_mut(i + 1);
        let dy: &[f32] = if i == last { g } else { above[0] };
        layers[i].backward_rows(acts[i], acts[i + 1], &signs[i], dy, below[i]);
    }
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
            on_threads(threads, f);
        }
    }

    fn on_threads(threads: usize, f: fn()) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f);
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
            // Halves of 50 and of 128 rows; products of 3.2 and 2.0–3.1
            // MFLOP, enough for chunks.
            for (n, k, h, c) in [(100, 400, 40, 7), (256, 30, 200, 20)] {
                chunked_step_matches_f64_at(n, k, h, c);
            }
        });
    }

    fn chunked_step_matches_f64_at(n: usize, k: usize, h: usize, c: usize) {
        {
            let p = params(k, h, c);
            let x = values(n * k, 5, 1.0);
            let labels: Vec<usize> = (0..n).map(|i| (i * 31) % c).collect();
            let xt = Tensor::new(&[n, k], x.clone()).unwrap();
            let mut net = mlp(&p, k, h, c);
            assert_eq!(
                split_row(net.layers_mut(), &xt, Labels::Index(&labels)),
                Some(n.div_ceil(2))
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
                    // f32 sums of ≤ 256 terms against f64: well within 1e-5
                    // of the largest entry.
                    assert!(
                        (*g as f64 - w).abs() <= 1e-5 * scale,
                        "param {i}: {g} against {w}"
                    );
                }
                i += 1;
            });
            assert_eq!(i, 4);
        }
    }

    #[test]
    fn small_batches_light_steps_and_big_products_run_whole() {
        let fc = |k, m| {
            Box::new(Affine::new(Tensor::zeros(&[k, m]), Tensor::zeros(&[m])).unwrap())
                as Box<dyn Layer>
        };
        let labels = [0usize; 100];
        let x = |n, k| Tensor::zeros(&[n, k]);
        // 2 · 100 · 784 · 20 = 3.1 MFLOP.
        let chunked = vec![fc(784, 20)];
        assert_eq!(
            split_row(&chunked, &x(100, 784), Labels::Index(&labels)),
            Some(50)
        );
        assert_eq!(
            split_row(&chunked, &x(64, 784), Labels::Index(&labels[..64])),
            Some(32)
        );
        assert_eq!(
            split_row(&chunked, &x(63, 784), Labels::Index(&labels[..63])),
            None
        );
        assert_eq!(
            split_row(&chunked, &x(100, 784), Labels::Index(&labels[..99])),
            None
        );
        assert_eq!(
            split_row(&chunked, &Tensor::zeros(&[784]), Labels::Index(&labels)),
            None
        );
        // Products averaging 1.59 MFLOP (3.1 and 0.04), then 1.27 (2.5 and
        // 0.03); a step of light products; one without any.
        let relu = || Box::new(Relu::new()) as Box<dyn Layer>;
        let two = vec![fc(784, 20), relu(), fc(20, 10)];
        assert_eq!(
            split_row(&two, &x(100, 784), Labels::Index(&labels)),
            Some(50)
        );
        let two = vec![fc(784, 16), relu(), fc(16, 10)];
        assert_eq!(split_row(&two, &x(100, 784), Labels::Index(&labels)), None);
        let light = vec![fc(20, 5)];
        assert_eq!(split_row(&light, &x(100, 20), Labels::Index(&labels)), None);
        let no_products = vec![relu()];
        assert_eq!(
            split_row(&no_products, &x(100, 784), Labels::Index(&labels)),
            None
        );
        // 2 · 100 · 784 · 1024 flops: gemm splits this product itself.
        let big = vec![fc(784, 1024)];
        assert_eq!(split_row(&big, &x(100, 784), Labels::Index(&labels)), None);
        let batchnorm: Vec<Box<dyn Layer>> =
            vec![fc(784, 20), Box::new(BatchNorm::new(20).unwrap())];
        assert_eq!(
            split_row(&batchnorm, &x(100, 784), Labels::Index(&labels)),
            None
        );
    }

    #[test]
    fn errors_name_the_whole_batch() {
        on_1_and_2_threads(|| {
            let (n, k, h, c) = (100, 400, 40, 3);
            let p = params(k, h, c);
            let mut net = mlp(&p, k, h, c);
            let x = Tensor::new(&[n, k], values(n * k, 5, 1.0)).unwrap();
            assert!(split_row(net.layers_mut(), &x, Labels::Index(&[0; 100])).is_some());
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
            assert!(err.contains("[100, 401]"), "{err}");
        });
    }

    /// A 500-40-3 [`mlp`] (products of 3.8 MFLOP, so chunked) after one
    /// step on 96 rows, its batch, labels and initial parameters.
    fn after_one_step() -> (Sequential, Tensor, Vec<usize>, [Vec<f32>; 4]) {
        let (n, k, h, c) = (96, 500, 40, 3);
        let p = params(k, h, c);
        let x = Tensor::new(&[n, k], values(n * k, 5, 1.0)).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % c).collect();
        let mut net = mlp(&p, k, h, c);
        net.loss(&x, Labels::Index(&labels)).unwrap();
        net.backward().unwrap();
        (net, x, labels, p)
    }

    #[test]
    fn a_layer_run_in_halves_refuses_its_own_backward() {
        on_threads(2, || {
            let (mut net, ..) = after_one_step();
            // The layers' own caches hold nothing of that step.
            let err = net.layers_mut()[2]
                .backward(Tensor::zeros(&[96, 3]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("backward called before forward"), "{err}");
            assert!(net.backward().is_err());
        });
    }

    #[test]
    fn a_replaced_layer_is_used_by_both_chunks() {
        on_1_and_2_threads(|| {
            let (mut net, x, labels, p) = after_one_step();
            net.layers_mut()[1] = Box::new(Sigmoid::new());
            let mut fresh = mlp(&p, 500, 40, 3);
            fresh.layers_mut()[1] = Box::new(Sigmoid::new());
            let (a, b) = (
                net.loss(&x, Labels::Index(&labels)).unwrap(),
                fresh.loss(&x, Labels::Index(&labels)).unwrap(),
            );
            assert_eq!(a.to_bits(), b.to_bits());
        });
    }
}
