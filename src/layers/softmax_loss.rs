use crate::kernels::simd::Isa;
use crate::kernels::softmax::{
    softmax_xent_dense_backward_with, softmax_xent_dense_forward_with,
    softmax_xent_index_backward_with, softmax_xent_index_forward_with, RowStats,
};
use crate::{Error, Tensor};

/// The targets of a cross-entropy loss.
///
/// ```
/// use densegrad::{Labels, Tensor};
///
/// let logits = Tensor::new(&[2, 3], vec![1.0, 8.0, 3.0, 1.0, 3.0, 8.0])?;
/// let one_hot = Tensor::new(&[2, 3], vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0])?;
/// let a = densegrad::cross_entropy(&logits, Labels::OneHot(&one_hot))?;
/// let b = densegrad::cross_entropy(&logits, Labels::Index(&[1, 1]))?;
/// assert_eq!(a, b);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a> {
    /// One target distribution per row, with the logits' shape: one-hot rows,
    /// or soft labels. Entries must be finite and ≥ 0. Rows normally sum to 1;
    /// a row that does not still gets the exact loss `Σ_j t_j·(lse − x_j)`
    /// and its exact gradient `y·Σt − t`.
    OneHot(&'a Tensor),
    /// One class index per row, each `< C`.
    Index(&'a [usize]),
}

/// (N, C) of logits usable by a loss: 1-D (one sample) or 2-D, non-empty.
pub(crate) fn loss_dims(op: &'static str, x: &Tensor) -> Result<(usize, usize), Error> {
    let (n, c) = match x.shape() {
        &[c] => (1, c),
        &[n, c] => (n, c),
        s => {
            return Err(Error::shape(
                op,
                format!("logits are {s:?} but must be 1-D [C] or 2-D [N, C]"),
            ))
        }
    };
    if n == 0 || c == 0 {
        return Err(Error::shape(
            op,
            format!(
                "logits {:?} are empty; a loss needs at least one row and one class",
                x.shape()
            ),
        ));
    }
    Ok((n, c))
}

/// `Err` unless `t` fits logits `x` of (n, c), naming the offending entry.
pub(crate) fn check_labels(
    op: &'static str,
    x: &Tensor,
    n: usize,
    c: usize,
    t: Labels<'_>,
) -> Result<(), Error> {
    match t {
        Labels::Index(idx) => {
            if idx.len() != n {
                return Err(Error::label(
                    op,
                    format!(
                        "{} labels for logits {:?}, which have {n} row(s)",
                        idx.len(),
                        x.shape()
                    ),
                ));
            }
            if let Some((row, &bad)) = idx.iter().enumerate().find(|(_, &l)| l >= c) {
                return Err(Error::label(
                    op,
                    format!("label {bad} at row {row} is out of range for {c} classes"),
                ));
            }
        }
        Labels::OneHot(t) => {
            if t.shape() != x.shape() {
                return Err(Error::label(
                    op,
                    format!(
                        "targets are {:?} but logits are {:?}; one-hot targets need the logits' shape",
                        t.shape(),
                        x.shape()
                    ),
                ));
            }
            if let Some(i) = t.data().iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(Error::label(
                    op,
                    format!(
                        "target at row {}, class {} is {:?}; targets must be finite and >= 0",
                        i / c,
                        i % c,
                        t.data()[i]
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The mean cross-entropy between the softmax of each row of `logits` and
/// the targets `t`, computed exactly as `mean_i(logsumexp(x_i) − x_i[label_i])`
/// (no `+1e-7` inside the log; PyTorch's `F.cross_entropy`).
///
/// `logits` are 1-D (one sample) or (N, C). The result is finite for every
/// finite input whose true loss fits in f32 (logits of ±1e30 included); NaN
/// or +∞ logits give NaN. The per-row terms are summed in f64.
///
/// ```
/// use densegrad::{cross_entropy, Labels, Tensor};
///
/// let loss = cross_entropy(&Tensor::from_slice(&[1.0, 8.0, 3.0]), Labels::Index(&[1]))?;
/// assert!((loss - 0.0076207).abs() < 1e-6);
///
/// let err = cross_entropy(&Tensor::from_slice(&[1.0, 8.0, 3.0]), Labels::Index(&[3])).unwrap_err();
/// assert_eq!(err.to_string(), "cross entropy: label 3 at row 0 is out of range for 3 classes");
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn cross_entropy(logits: &Tensor, t: Labels<'_>) -> Result<f32, Error> {
    let mut layer = SoftmaxWithLoss::new();
    layer.forward_as("cross entropy", logits, t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelKind {
    Index,
    Dense,
}

/// Softmax followed by the mean cross-entropy loss, fused so that backward is
/// the simple and exact `dout · (softmax(x) − t) / N`.
///
/// Softmax is row-wise over the last axis (the notebook's global `np.max` is
/// wrong for batches); a 1-D input is one sample, so N = 1 (the notebook
/// divides a 1-D batch by its class count instead). `backward` honours `dout`
/// (the notebook ignores it).
///
/// ```
/// use densegrad::{Labels, SoftmaxWithLoss, Tensor};
///
/// let mut swl = SoftmaxWithLoss::new();
/// let loss = swl.forward(&Tensor::from_slice(&[1.0, 8.0, 3.0]), Labels::Index(&[1]))?;
/// assert!((loss - 0.0076207).abs() < 1e-6);
/// let dx = swl.backward(1.0)?;
/// let want = [0.00090496, -0.00759175, 0.00668679];
/// for (g, w) in dx.data().iter().zip(want) {
///     assert!((g - w).abs() < 1e-6);
/// }
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SoftmaxWithLoss {
    /// Softmax of the last forward's logits, (n, c).
    y: Vec<f32>,
    shape: Vec<usize>,
    n: usize,
    c: usize,
    stats: Vec<RowStats>,
    index: Vec<usize>,
    t: Vec<f32>,
    t_sums: Vec<f32>,
    kind: Option<LabelKind>,
    dx: Tensor,
    isa: Isa,
}

impl Default for SoftmaxWithLoss {
    fn default() -> Self {
        SoftmaxWithLoss {
            y: Vec::new(),
            shape: Vec::new(),
            n: 0,
            c: 0,
            stats: Vec::new(),
            index: Vec::new(),
            t: Vec::new(),
            t_sums: Vec::new(),
            kind: None,
            dx: Tensor::zeros(&[0]),
            isa: Isa::best(),
        }
    }
}

impl SoftmaxWithLoss {
    /// A loss layer with no cached state.
    ///
    /// ```
    /// let swl = densegrad::SoftmaxWithLoss::new();
    /// assert!(swl.probabilities().is_none());
    /// ```
    pub fn new() -> SoftmaxWithLoss {
        SoftmaxWithLoss::default()
    }

    /// The mean cross-entropy loss of logits `x` (1-D or (N, C)) against `t`,
    /// remembering the softmax and the labels for `backward`.
    ///
    /// Errors (naming both shapes or the bad label) for logits that are not
    /// 1-D/2-D or are empty, a label count other than N, a label ≥ C, one-hot
    /// targets of another shape, or negative / non-finite targets.
    ///
    /// ```
    /// use densegrad::{Labels, SoftmaxWithLoss, Tensor};
    ///
    /// let mut swl = SoftmaxWithLoss::new();
    /// let x = Tensor::new(&[2, 2], vec![0.0, 0.0, 5.0, 5.0])?;
    /// let loss = swl.forward(&x, Labels::Index(&[0, 1]))?;
    /// assert!((loss - std::f32::consts::LN_2).abs() < 1e-7);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn forward(&mut self, x: &Tensor, t: Labels<'_>) -> Result<f32, Error> {
        self.forward_as("softmax with loss forward", x, t)
    }

    fn forward_as(&mut self, op: &'static str, x: &Tensor, t: Labels<'_>) -> Result<f32, Error> {
        // A refused forward leaves nothing for a backward to use.
        self.kind = None;
        let (n, c) = loss_dims(op, x)?;
        check_labels(op, x, n, c, t)?;
        self.y.resize(n * c, 0.0);
        self.stats.resize(n, RowStats::default());
        let total = match t {
            Labels::Index(idx) => {
                self.index.clear();
                self.index.extend_from_slice(idx);
                self.kind = Some(LabelKind::Index);
                softmax_xent_index_forward_with(
                    self.isa,
                    x.data(),
                    c,
                    idx,
                    &mut self.y,
                    &mut self.stats,
                )
            }
            Labels::OneHot(t) => {
                super::store(&mut self.t, t.data());
                self.t_sums.resize(n, 0.0);
                self.kind = Some(LabelKind::Dense);
                softmax_xent_dense_forward_with(
                    self.isa,
                    x.data(),
                    c,
                    t.data(),
                    &mut self.y,
                    &mut self.stats,
                    &mut self.t_sums,
                )
            }
        };
        self.shape.clear();
        self.shape.extend_from_slice(x.shape());
        self.n = n;
        self.c = c;
        Ok((total / n as f64) as f32)
    }

    /// The gradient of `dout · loss` with respect to the last forward's
    /// logits: `dout · (softmax(x) − t) / N`, in the logits' shape.
    /// `Err` before the first forward.
    ///
    /// ```
    /// use densegrad::{Labels, SoftmaxWithLoss, Tensor};
    ///
    /// let mut swl = SoftmaxWithLoss::new();
    /// assert!(swl.backward(1.0).is_err());
    /// swl.forward(&Tensor::new(&[2, 2], vec![0.0, 0.0, 0.0, 0.0])?, Labels::Index(&[0, 1]))?;
    /// assert_eq!(swl.backward(2.0)?.data(), &[-0.5, 0.5, 0.5, -0.5]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn backward(&mut self, dout: f32) -> Result<Tensor, Error> {
        self.backward_ref(dout).cloned()
    }

    /// [`backward`](SoftmaxWithLoss::backward) into a buffer the layer owns
    /// and reuses (no allocation once it has the right size).
    ///
    /// ```
    /// use densegrad::{Labels, SoftmaxWithLoss, Tensor};
    ///
    /// let mut swl = SoftmaxWithLoss::new();
    /// swl.forward(&Tensor::from_slice(&[0.0, 0.0]), Labels::Index(&[1]))?;
    /// assert_eq!(swl.backward_ref(1.0)?.data(), &[0.5, -0.5]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn backward_ref(&mut self, dout: f32) -> Result<&Tensor, Error> {
        let kind = self
            .kind
            .ok_or_else(|| super::not_ready("softmax with loss backward"))?;
        let scale = dout / self.n as f32;
        self.dx.resize_buffer(&self.shape);
        let dx = self.dx.data_mut();
        match kind {
            LabelKind::Index => softmax_xent_index_backward_with(
                self.isa,
                &self.y,
                self.c,
                &self.index,
                &self.stats,
                scale,
                dx,
            ),
            LabelKind::Dense => softmax_xent_dense_backward_with(
                self.isa,
                &self.y,
                self.c,
                &self.t,
                &self.t_sums,
                &self.stats,
                scale,
                dx,
            ),
        }
        Ok(&self.dx)
    }

    /// The softmax of the last forward's logits, row-major (N, C), or `None`
    /// before the first forward.
    ///
    /// ```
    /// use densegrad::{Labels, SoftmaxWithLoss, Tensor};
    ///
    /// let mut swl = SoftmaxWithLoss::new();
    /// swl.forward(&Tensor::from_slice(&[3.0, 3.0]), Labels::Index(&[0]))?;
    /// assert_eq!(swl.probabilities(), Some(&[0.5, 0.5][..]));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn probabilities(&self) -> Option<&[f32]> {
        self.kind.map(|_| self.y.as_slice())
    }
}
