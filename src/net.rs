//! `Sequential`: a stack of layers ending in softmax cross-entropy.

use crate::batch_chunks::{row_wise_mut, split_row, BatchChunks};
#[cfg(feature = "rand")]
use crate::{Affine, Init, InitRng, LeakyRelu, Relu, Sigmoid, Tanh};
use crate::{Error, Labels, Layer, Param, SoftmaxWithLoss, StateMut, Tensor};

/// The activation between the Affine layers of [`Sequential::mlp`].
///
/// ```
/// # #[cfg(feature = "rand")] {
/// use densegrad::{Activation, Init, Sequential};
/// let net = Sequential::mlp(&[4, 8, 2], Activation::LeakyRelu(0.01), Init::He, 0)?;
/// assert_eq!(net.len(), 3);
/// # }
/// # Ok::<(), densegrad::Error>(())
/// ```
#[cfg(feature = "rand")]
#[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// [`Relu`](crate::Relu).
    Relu,
    /// [`Sigmoid`](crate::Sigmoid).
    Sigmoid,
    /// [`Tanh`](crate::Tanh).
    Tanh,
    /// [`LeakyRelu`](crate::LeakyRelu) with the given slope.
    LeakyRelu(f32),
}

#[cfg(feature = "rand")]
impl Activation {
    fn layer(self) -> Result<Box<dyn Layer>, Error> {
        Ok(match self {
            Activation::Relu => Box::new(Relu::new()),
            Activation::Sigmoid => Box::new(Sigmoid::new()),
            Activation::Tanh => Box::new(Tanh::new()),
            Activation::LeakyRelu(a) => Box::new(LeakyRelu::new(a)?),
        })
    }
}

/// A network: layers applied in order, then softmax cross-entropy.
///
/// Forward and backward go through each layer's own buffers
/// ([`Layer::forward_ref`]), so a training step allocates nothing once the
/// batch size has been seen.
///
/// ```
/// # #[cfg(feature = "rand")] {
/// use densegrad::{Activation, Init, Labels, Sequential, Tensor};
///
/// let mut net = Sequential::mlp(&[4, 8, 3], Activation::Relu, Init::He, 7)?;
/// let x = Tensor::new(&[2, 4], vec![0.1, 0.2, 0.3, 0.4, -0.1, 0.5, 0.0, 1.0])?;
/// let loss = net.loss(&x, Labels::Index(&[0, 2]))?;
/// net.backward()?;
/// net.visit_params(&mut |mut p| {
///     let (values, grad) = p.values_and_grad();
///     for (v, g) in values.iter_mut().zip(grad) {
///         *v -= 0.1 * g;
///     }
/// });
/// assert!(net.loss(&x, Labels::Index(&[0, 2]))? < loss);
/// assert_eq!(net.predict(&x)?.shape(), &[2, 3]);
/// # }
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Clone)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    /// One flag per layer: its parameters are left alone by optimizers.
    frozen: Vec<bool>,
    /// The mode last set by `set_training`.
    training: bool,
    loss: SoftmaxWithLoss,
    ready_for_backward: bool,
    /// The activation buffers of a small step run in two halves of its
    /// batch (`batch_chunks`).
    chunks: BatchChunks,
}

/// The layers in order, by [`Layer::name`], each with the shapes of its
/// state tensors, frozen ones marked.
///
/// ```
/// use densegrad::{Affine, Relu, Sequential, Tensor};
/// let mut net = Sequential::new()
///     .with(Affine::new(Tensor::zeros(&[4, 3]), Tensor::zeros(&[3]))?)
///     .with(Relu::new());
/// net.set_frozen(0, true)?;
/// assert_eq!(format!("{net:?}"), "Sequential[Affine(weight [4, 3], bias [3]) frozen, Relu]");
/// # Ok::<(), densegrad::Error>(())
/// ```
impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sequential[")?;
        for (i, (layer, &frozen)) in self.layers.iter().zip(&self.frozen).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", layer.name())?;
            let mut state = Vec::new();
            layer.visit_state_ref(&mut |name, t| state.push(format!("{name} {:?}", t.shape())));
            if !state.is_empty() {
                write!(f, "({})", state.join(", "))?;
            }
            if frozen {
                write!(f, " frozen")?;
            }
        }
        write!(f, "]")
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Sequential {
    /// An empty network (its output is its input).
    ///
    /// ```
    /// assert_eq!(densegrad::Sequential::new().len(), 0);
    /// ```
    pub fn new() -> Sequential {
        Sequential {
            layers: Vec::new(),
            frozen: Vec::new(),
            training: true,
            loss: SoftmaxWithLoss::new(),
            ready_for_backward: false,
            chunks: BatchChunks::default(),
        }
    }

    /// Appends a layer.
    ///
    /// ```
    /// use densegrad::{Affine, Relu, Sequential, Tensor};
    /// let net = Sequential::new()
    ///     .with(Affine::new(Tensor::zeros(&[2, 3]), Tensor::zeros(&[3]))?)
    ///     .with(Relu::new());
    /// assert_eq!(net.len(), 2);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[must_use = "the builder returns the changed value; the original is consumed"]
    pub fn with(mut self, layer: impl Layer + 'static) -> Sequential {
        self.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    ///
    /// ```
    /// use densegrad::{Relu, Sequential};
    /// let mut net = Sequential::new();
    /// net.push(Box::new(Relu::new()));
    /// assert_eq!(net.len(), 1);
    /// ```
    pub fn push(&mut self, layer: Box<dyn Layer>) {
        self.chunks.invalidate();
        self.layers.push(layer);
        self.frozen.push(false);
    }

    /// A multi-layer perceptron: Affine layers of sizes `dims[0] → dims[1]
    /// → … → dims[last]` with `activation` between them (none after the
    /// last), weights drawn by `init` from a ChaCha8 stream seeded by
    /// `seed`, biases 0. `mlp(&[784, 50, 10], Relu, He, seed)` is the
    /// book's TwoLayerNet.
    ///
    /// ```
    /// use densegrad::{Activation, Init, Sequential};
    /// let net = Sequential::mlp(&[784, 50, 10], Activation::Relu, Init::He, 42)?;
    /// assert_eq!(net.len(), 3); // Affine, ReLU, Affine
    /// assert!(Sequential::mlp(&[784], Activation::Relu, Init::He, 42).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
    #[cfg(feature = "rand")]
    pub fn mlp(
        dims: &[usize],
        activation: Activation,
        init: Init,
        seed: u64,
    ) -> Result<Sequential, Error> {
        if dims.len() < 2 || dims.contains(&0) {
            return Err(Error::shape(
                "sequential mlp",
                format!("layer sizes {dims:?} need at least two sizes, all at least 1"),
            ));
        }
        let mut rng = InitRng::new(seed);
        let mut net = Sequential::new();
        for (i, d) in dims.windows(2).enumerate() {
            if i > 0 {
                net.push(activation.layer()?);
            }
            let w = init.weights(d[0], d[1], &mut rng)?;
            net.push(Box::new(Affine::new(w, Tensor::zeros(&[d[1]]))?));
        }
        Ok(net)
    }

    /// The number of layers (the loss not counted).
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential};
    /// assert_eq!(Sequential::mlp(&[2, 3, 4, 5], Activation::Tanh, Init::Xavier, 0)?.len(), 5);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the network has no layers.
    ///
    /// ```
    /// assert!(densegrad::Sequential::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers, in order.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential};
    /// let net = Sequential::mlp(&[2, 3], Activation::Relu, Init::He, 0)?;
    /// assert_eq!(net.layers().len(), 1);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layers, in order, mutably: to reach a layer's parameters or
    /// switch its mode, or to replace it by another layer.
    ///
    /// ```
    /// use densegrad::{Layer, Relu, Sequential, Sigmoid};
    /// let mut net = Sequential::new().with(Relu::new());
    /// net.layers_mut()[0] = Box::new(Sigmoid::new());
    /// assert_eq!(net.layers()[0].name(), "Sigmoid");
    /// ```
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        self.ready_for_backward = false;
        self.chunks.invalidate();
        keep_lent_inputs(&mut self.layers);
        &mut self.layers
    }

    /// Freezes (`true`) or unfreezes layer `index`: every optimizer's
    /// [`step`](crate::optim::Optimizer::step) leaves a frozen layer's
    /// parameters unchanged (its gradients are still computed, so that the
    /// layers before it learn). `Err` for an index past the last layer.
    ///
    /// ```
    /// use densegrad::optim::{Optimizer, Sgd};
    /// use densegrad::{Affine, Labels, Sequential, Tensor};
    ///
    /// let fc = |w: [f32; 4]| Affine::new(Tensor::new(&[2, 2], w.to_vec()).unwrap(), Tensor::zeros(&[2])).unwrap();
    /// let mut net = Sequential::new().with(fc([0.5; 4])).with(fc([1.0, -1.0, 0.5, 0.25]));
    /// net.set_frozen(1, true)?;
    /// net.loss(&Tensor::new(&[1, 2], vec![1.0, 2.0])?, Labels::Index(&[0]))?;
    /// net.backward()?;
    /// Sgd::new(0.1).step(&mut net)?;
    /// let mut weights = Vec::new();
    /// net.visit_params(&mut |p| if p.shape().len() == 2 { weights.push(p.value().data().to_vec()) });
    /// assert_ne!(weights[0], [0.5; 4]);                // trained
    /// assert_eq!(weights[1], [1.0, -1.0, 0.5, 0.25]); // frozen
    /// assert!(net.set_frozen(2, true).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn set_frozen(&mut self, index: usize, frozen: bool) -> Result<(), Error> {
        let n = self.layers.len();
        let flag = self.frozen.get_mut(index).ok_or_else(|| {
            Error::shape(
                "sequential set_frozen",
                format!("layer {index} does not exist; the network has {n} layers"),
            )
        })?;
        *flag = frozen;
        Ok(())
    }

    /// Whether layer `index` is frozen (`false` past the last layer).
    ///
    /// ```
    /// use densegrad::{Relu, Sequential};
    /// let mut net = Sequential::new().with(Relu::new());
    /// assert!(!net.is_frozen(0));
    /// net.set_frozen(0, true)?;
    /// assert!(net.is_frozen(0));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn is_frozen(&self, index: usize) -> bool {
        self.frozen.get(index).copied().unwrap_or(false)
    }

    /// Calls `f(index, parameter, gradient)` for every parameter of every
    /// layer that is not [frozen](Sequential::set_frozen), where `index` is
    /// the parameter's position in [`visit_params`](Sequential::visit_params)
    /// order (frozen ones counted), so an optimizer's per-parameter state
    /// stays attached to the same parameter when layers are frozen or
    /// unfrozen. This is what [`Optimizer::step`](crate::optim::Optimizer::step)
    /// uses.
    ///
    /// ```
    /// use densegrad::{Affine, Relu, Sequential, Tensor};
    /// let fc = || Affine::new(Tensor::zeros(&[2, 2]), Tensor::zeros(&[2])).unwrap();
    /// let mut net = Sequential::new().with(fc()).with(Relu::new()).with(fc());
    /// net.set_frozen(0, true)?;
    /// let mut seen = Vec::new();
    /// net.visit_trainable_params(&mut |i, _| seen.push(i));
    /// assert_eq!(seen, [2, 3]); // layer 0's weight and bias are 0 and 1
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn visit_trainable_params(&mut self, f: &mut dyn FnMut(usize, Param<'_>)) {
        let mut index = 0;
        for (layer, &frozen) in self.layers.iter_mut().zip(&self.frozen) {
            layer.visit_params(&mut |p| {
                if !frozen {
                    f(index, p);
                }
                index += 1;
            });
        }
    }

    /// The predicted class of every row of `x` (the index of its largest
    /// logit, the first on ties), or `None` for a row whose logits hold a
    /// NaN (a diverged network has no prediction).
    ///
    /// ```
    /// use densegrad::{Affine, Sequential, Tensor};
    /// let w = Tensor::new(&[2, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0])?;
    /// let mut net = Sequential::new().with(Affine::new(w, Tensor::zeros(&[3]))?);
    /// let x = Tensor::new(&[3, 2], vec![2.0, 1.0, 0.0, 3.0, f32::NAN, 0.0])?;
    /// assert_eq!(net.predict_classes(&x)?, [Some(0), Some(1), None]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn predict_classes(&mut self, x: &Tensor) -> Result<Vec<Option<usize>>, Error> {
        let out = self.predict(x)?;
        let c = match out.shape() {
            [.., c] => *c,
            [] => 1,
        };
        Ok(out.data().chunks(c.max(1)).map(argmax).collect())
    }

    /// Switches every layer between training and evaluation (Dropout,
    /// BatchNorm). Networks start in training mode.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential};
    /// let mut net = Sequential::mlp(&[2, 3], Activation::Relu, Init::He, 0)?;
    /// net.set_training(false);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn set_training(&mut self, training: bool) {
        self.chunks.invalidate();
        self.training = training;
        for l in &mut self.layers {
            l.set_training(training);
        }
    }

    /// Whether the network is in training mode (as last set by
    /// [`set_training`](Sequential::set_training); `true` at first).
    ///
    /// ```
    /// let mut net = densegrad::Sequential::new();
    /// assert!(net.is_training());
    /// net.set_training(false);
    /// assert!(!net.is_training());
    /// ```
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The network's output (the logits) for `x`, in the last layer's buffer.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential, Tensor};
    /// let mut net = Sequential::mlp(&[2, 3], Activation::Relu, Init::He, 0)?;
    /// assert_eq!(net.predict(&Tensor::zeros(&[5, 2]))?.shape(), &[5, 3]);
    /// assert!(net.predict(&Tensor::zeros(&[5, 4])).is_err());
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn predict<'a>(&'a mut self, x: &'a Tensor) -> Result<&'a Tensor, Error> {
        self.ready_for_backward = false;
        forward_all_inference(&mut self.layers, x)
    }

    /// Forward through every layer and the loss: the mean cross-entropy of
    /// `x` against `t`, remembering what [`backward`](Sequential::backward)
    /// needs.
    ///
    /// **Lent inputs.** An [`Affine`](crate::Affine) layer after another
    /// Affine or pointwise layer keeps no copy of its input: `backward`
    /// reads it in the previous layer's output buffer (the same bits as the
    /// copy).
    /// [`layers_mut`](Sequential::layers_mut) gives such a layer a copy
    /// first, so that its own `backward_ref` works as before; a clone of it
    /// taken through [`layers`](Sequential::layers) refuses its own
    /// backward with an `Err` instead.
    ///
    /// **Batch chunks.** A network of the crate's Affine layers and
    /// pointwise activations whose products are each below
    /// [`GEMM_HALVES_MIN_FLOPS`](crate::kernels::gemm::GEMM_HALVES_MIN_FLOPS)
    /// but average at least 1.5 MFLOP, on a 2-D batch of at least 64 rows,
    /// is a *small step*: too small for its products to be split across
    /// threads, large enough for halves of the batch to pay for their
    /// join. When rayon has more than
    /// one thread, `loss` runs the layers on the two halves of such a
    /// batch's rows side by side, on activation buffers the network keeps
    /// for the whole batch (the layers' parameters are read in place, and
    /// their own forward caches are left empty: a `backward` through a
    /// layer itself is refused until its own next forward). The loss, and
    /// in `backward` every dW and db, is then taken over the whole batch in
    /// one piece, as the layers' own passes take it, so the bits are those
    /// of the unchunked step at any thread count. While the second half's
    /// core keeps being taken by another process, steps run unchunked for a
    /// while (the same bits, at one core's speed). A chunked step allocates
    /// a few small vectors of row slices and rayon's job boxes besides
    /// matrixmultiply's packing buffers.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Labels, Sequential, Tensor};
    /// let mut net = Sequential::mlp(&[2, 3], Activation::Relu, Init::Normal { std: 0.0 }, 0)?;
    /// let loss = net.loss(&Tensor::zeros(&[1, 2]), Labels::Index(&[1]))?;
    /// assert!((loss - 3f32.ln()).abs() < 1e-6);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn loss(&mut self, x: &Tensor, t: Labels<'_>) -> Result<f32, Error> {
        self.ready_for_backward = false;
        self.chunks.invalidate();
        let split = split_row(&self.layers, x, t)
            .filter(|_| rayon::current_num_threads() > 1 && self.chunks.take_turn());
        let l = match split {
            Some(s) => self
                .chunks
                .loss(&mut self.layers, &mut self.loss, x, t, s)?,
            None => {
                let h = forward_all(&mut self.layers, x)?;
                self.loss.forward(h, t)?
            }
        };
        self.ready_for_backward = true;
        Ok(l)
    }

    /// Backward from the last [`loss`](Sequential::loss): the gradient of
    /// every parameter, reachable through [`visit_params`](Sequential::visit_params).
    /// `Err` unless the last call was `loss`.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential};
    /// let mut net = Sequential::mlp(&[2, 3], Activation::Relu, Init::He, 0)?;
    /// assert!(net.backward().is_err());
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn backward(&mut self) -> Result<(), Error> {
        if !self.ready_for_backward {
            return Err(Error::state(
                "sequential backward",
                "backward needs a loss() call first",
            ));
        }
        if self.chunks.active() {
            return self.chunks.backward(&mut self.layers, &mut self.loss);
        }
        let g = self.loss.backward_ref(1.0)?;
        backward_all(&mut self.layers, g)
    }

    /// The fraction of rows of `x` whose largest logit is at its label, in
    /// batches of at most `batch` rows (evaluation of a whole test set without
    /// a test-set-sized activation buffer); see [`evaluate`](Sequential::evaluate).
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential, Tensor};
    /// let mut net = Sequential::mlp(&[1, 2], Activation::Relu, Init::Normal { std: 0.0 }, 0)?;
    /// net.visit_params(&mut |mut p| if p.shape().len() == 2 { p.values_mut().copy_from_slice(&[-1.0, 1.0]) });
    /// let x = Tensor::new(&[3, 1], vec![1.0, -1.0, 2.0])?;
    /// assert_eq!(net.accuracy(&x, &[1, 0, 0], 2)?, 2.0 / 3.0);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn accuracy(&mut self, x: &Tensor, labels: &[usize], batch: usize) -> Result<f32, Error> {
        self.evaluate(x, labels, batch).map(|(_, acc)| acc)
    }

    /// Mean loss and accuracy over a whole labelled set in one forward pass,
    /// in batches of at most `batch` rows (no set-sized activation buffer).
    ///
    /// Always in evaluation mode: a network in training mode is switched to
    /// evaluation for the pass and back afterwards, so the result does not
    /// depend on Dropout's random stream and BatchNorm's running statistics
    /// do not move.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential, Tensor};
    /// let mut net = Sequential::mlp(&[1, 2], Activation::Relu, Init::Normal { std: 0.0 }, 0)?;
    /// net.visit_params(&mut |mut p| if p.shape().len() == 2 { p.values_mut().copy_from_slice(&[-1.0, 1.0]) });
    /// let x = Tensor::new(&[3, 1], vec![1.0, -1.0, 2.0])?;
    /// let (loss, acc) = net.evaluate(&x, &[1, 0, 0], 2)?;
    /// assert_eq!(acc, 2.0 / 3.0);
    /// assert!(loss > 0.0);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn evaluate(
        &mut self,
        x: &Tensor,
        labels: &[usize],
        batch: usize,
    ) -> Result<(f32, f32), Error> {
        const OP: &str = "sequential evaluate";
        let (n, f) = x
            .batch_dims()
            .ok_or_else(|| Error::shape(OP, "x is a 0-D scalar"))?;
        if labels.len() != n {
            return Err(Error::label(
                OP,
                format!("{} labels for x {:?}", labels.len(), x.shape()),
            ));
        }
        if n == 0 || batch == 0 {
            return Err(Error::shape(
                OP,
                "evaluation needs at least one row and a batch of at least 1",
            ));
        }
        let was_training = self.training;
        if was_training {
            self.set_training(false);
        }
        let result = self.evaluate_chunks(x, labels, batch, n, f);
        if was_training {
            self.set_training(true);
        }
        self.ready_for_backward = false;
        result
    }

    fn evaluate_chunks(
        &mut self,
        x: &Tensor,
        labels: &[usize],
        batch: usize,
        n: usize,
        f: usize,
    ) -> Result<(f32, f32), Error> {
        let (mut loss, mut correct) = (0.0f64, 0usize);
        let mut chunk = Tensor::zeros(&[0]);
        // Each chunk keeps the shape of a sample ((N, C, H, W) stays 4-D).
        let mut shape = vec![0, f];
        if x.ndim() > 2 {
            shape.truncate(1);
            shape.extend_from_slice(&x.shape()[1..]);
        }
        for (start, rows) in (0..n).step_by(batch).map(|s| (s, batch.min(n - s))) {
            shape[0] = rows;
            chunk.resize_buffer(&shape);
            chunk
                .data_mut()
                .copy_from_slice(&x.data()[start * f..(start + rows) * f]);
            let l = &labels[start..start + rows];
            // No backward follows: nothing kept for one.
            self.ready_for_backward = false;
            let h = forward_all_inference(&mut self.layers, &chunk)?;
            loss += self.loss.forward(h, Labels::Index(l))? as f64 * rows as f64;
            let probs = self.loss.probabilities().unwrap_or(&[]);
            let c = probs.len() / rows;
            for (row, &label) in probs.chunks_exact(c.max(1)).zip(l) {
                if argmax(row) == Some(label) {
                    correct += 1;
                }
            }
        }
        Ok(((loss / n as f64) as f32, correct as f32 / n as f32))
    }

    /// Calls `f` with a [`Param`] view for every parameter of every layer,
    /// in order; see [`Layer::visit_params`].
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential};
    /// let mut net = Sequential::mlp(&[4, 3, 2], Activation::Relu, Init::He, 0)?;
    /// let mut count = 0;
    /// net.visit_params(&mut |p| count += p.numel());
    /// assert_eq!(count, 4 * 3 + 3 + 3 * 2 + 2);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        for layer in &mut self.layers {
            layer.visit_params(f);
        }
    }

    /// Calls `f` with a [`StateMut`] view of every state tensor of every
    /// layer, named `"{layer index}.{name}"` as PyTorch's `state_dict` does
    /// (`"0.weight"`, `"0.bias"`, `"2.weight"`, …).
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Sequential};
    /// let mut net = Sequential::mlp(&[4, 3, 2], Activation::Relu, Init::He, 0)?;
    /// let mut names = Vec::new();
    /// net.visit_state(&mut |s| names.push(s.name().to_string()));
    /// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn visit_state(&mut self, f: &mut dyn FnMut(StateMut<'_>)) {
        let mut name = String::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.visit_state(&mut |s| {
                state_name(&mut name, i, s.name());
                f(s.renamed(&name))
            });
        }
    }

    /// [`visit_state`](Sequential::visit_state), read-only (what `save`
    /// writes, with the `safetensors` feature), with the same names.
    ///
    /// ```
    /// use densegrad::{Affine, Relu, Sequential, Tensor};
    /// let net = Sequential::new()
    ///     .with(Affine::new(Tensor::zeros(&[4, 3]), Tensor::zeros(&[3]))?)
    ///     .with(Relu::new());
    /// let mut names = Vec::new();
    /// net.visit_state_ref(&mut |name, t| names.push(format!("{name} {:?}", t.shape())));
    /// assert_eq!(names, ["0.weight [4, 3]", "0.bias [3]"]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn visit_state_ref(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        let mut name = String::new();
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_state_ref(&mut |n, t| {
                state_name(&mut name, i, n);
                f(&name, t)
            });
        }
    }

    /// The book's `numerical_gradient`: ∂loss/∂p for every parameter p (in
    /// [`visit_params`](Sequential::visit_params) order) by central
    /// differences `(L(p + h) − L(p − h)) / 2h`, evaluating the network in f32.
    ///
    /// Tolerance: with `h = 1e-2` and a loss of order 1, f32 rounding
    /// contributes about `1e-7·L/h ≈ 1e-5` and truncation `O(h²)`, so
    /// backprop and this agree to about 1e-3 relative to the largest
    /// gradient entry; [`gradient_check`](Sequential::gradient_check) reports
    /// exactly that number. A step that crosses a ReLU kink can make a single
    /// entry differ more.
    ///
    /// Runs on a copy of the network, so its state (BatchNorm's running
    /// statistics, Dropout's random stream) does not move. `Err` if the
    /// network is random in its current mode (two identical forward passes
    /// give different losses: Dropout while training), where differences
    /// would compare noise.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Labels, Sequential, Tensor};
    /// let mut net = Sequential::mlp(&[3, 4, 2], Activation::Sigmoid, Init::Xavier, 1)?;
    /// let x = Tensor::new(&[2, 3], vec![0.5, -1.0, 2.0, 1.0, 0.0, -0.5])?;
    /// let grads = net.numerical_gradient(&x, Labels::Index(&[0, 1]), 1e-2)?;
    /// assert_eq!(grads.len(), 4);
    /// assert!(net.gradient_check(&x, Labels::Index(&[0, 1]), 1e-2)? < 1e-3);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn numerical_gradient(
        &self,
        x: &Tensor,
        t: Labels<'_>,
        h: f32,
    ) -> Result<Vec<Tensor>, Error> {
        if !(h > 0.0 && h.is_finite()) {
            return Err(Error::argument(
                "numerical gradient",
                format!("step h = {h} must be finite and > 0"),
            ));
        }
        // On a copy: the network's own state (BatchNorm's running
        // statistics, Dropout's random stream) must not move.
        let mut probe = self.clone();
        probe.require_deterministic(x, t)?;
        probe.numerical_gradient_in_place(x, t, h)
    }

    /// `Err` unless two identical forward passes give the same loss, bit for
    /// bit: a finite-difference check of a random function (Dropout in
    /// training mode) would compare noise.
    fn require_deterministic(&mut self, x: &Tensor, t: Labels<'_>) -> Result<(), Error> {
        let (a, b) = (self.loss(x, t)?, self.loss(x, t)?);
        if a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()) {
            return Err(Error::state(
                "gradient check",
                format!(
                    "two identical forward passes gave losses {a} and {b}: the network is random \
                     in this mode (Dropout while training?); call set_training(false) first"
                ),
            ));
        }
        Ok(())
    }

    fn numerical_gradient_in_place(
        &mut self,
        x: &Tensor,
        t: Labels<'_>,
        h: f32,
    ) -> Result<Vec<Tensor>, Error> {
        // Parameters are visited by index, one element at a time, perturbed
        // in place and restored bit for bit.
        let mut shapes = Vec::new();
        self.visit_params(&mut |p| shapes.push(p.shape().to_vec()));
        let mut grads = Vec::with_capacity(shapes.len());
        for (pi, shape) in shapes.iter().enumerate() {
            let mut g = Tensor::try_zeros(shape)?;
            for e in 0..g.numel() {
                let orig = self.param_elem(pi, e, None);
                self.param_elem(pi, e, Some(orig + h));
                let up = self.loss(x, t)?;
                self.param_elem(pi, e, Some(orig - h));
                let down = self.loss(x, t)?;
                self.param_elem(pi, e, Some(orig));
                g.data_mut()[e] = ((up as f64 - down as f64) / (2.0 * h as f64)) as f32;
            }
            grads.push(g);
        }
        self.ready_for_backward = false;
        Ok(grads)
    }

    /// Backprop against [`numerical_gradient`](Sequential::numerical_gradient):
    /// `max |backprop − numeric| / max(max |numeric|, 1e-8)` over every
    /// parameter, or `∞` if any gradient on either side is NaN (so a NaN
    /// fails however the result is compared). See there for the tolerance
    /// to expect; like it, this runs on a copy and leaves the network as it
    /// was.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// # use densegrad::{Activation, Init, Labels, Sequential, Tensor};
    /// let mut net = Sequential::mlp(&[3, 5, 3], Activation::Tanh, Init::Xavier, 3)?;
    /// let x = Tensor::new(&[1, 3], vec![0.3, -0.7, 1.1])?;
    /// assert!(net.gradient_check(&x, Labels::Index(&[2]), 1e-2)? < 1e-3);
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn gradient_check(&self, x: &Tensor, t: Labels<'_>, h: f32) -> Result<f32, Error> {
        if !(h > 0.0 && h.is_finite()) {
            return Err(Error::argument(
                "gradient check",
                format!("step h = {h} must be finite and > 0"),
            ));
        }
        let mut probe = self.clone();
        probe.require_deterministic(x, t)?;
        let numeric = probe.numerical_gradient_in_place(x, t, h)?;
        probe.loss(x, t)?;
        probe.backward()?;
        let mut analytic = Vec::new();
        probe.visit_params(&mut |p| analytic.push(p.grad().clone()));
        let (mut max_diff, mut max_num) = (0.0f32, 0.0f32);
        for (a, n) in analytic.iter().zip(&numeric) {
            for (&a, &n) in a.data().iter().zip(n.data()) {
                let d = (a - n).abs();
                if d.is_nan() {
                    // A NaN gradient (either side) fails the check however
                    // the caller compares: ∞ is above every tolerance.
                    return Ok(f32::INFINITY);
                }
                max_diff = max_diff.max(d);
                max_num = max_num.max(n.abs());
            }
        }
        Ok(max_diff / max_num.max(1e-8))
    }

    /// Reads element `e` of parameter `pi`, writing `value` first if given.
    fn param_elem(&mut self, pi: usize, e: usize, value: Option<f32>) -> f32 {
        let mut i = 0;
        let mut out = 0.0;
        self.visit_params(&mut |mut p| {
            if i == pi {
                if let Some(v) = value {
                    p.values_mut()[e] = v;
                }
                out = p.value().data()[e];
            }
            i += 1;
        });
        out
    }
}

/// `"{layer}.{name}"` into `buf` (reused, as PyTorch's `state_dict` names).
fn state_name(buf: &mut String, layer: usize, name: &str) {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{layer}.{name}");
}

/// `x` through every layer for inference (nothing kept for a backward).
fn forward_all_inference<'a>(
    layers: &'a mut [Box<dyn Layer>],
    x: &'a Tensor,
) -> Result<&'a Tensor, Error> {
    let mut h = x;
    for layer in layers {
        h = layer.forward_inference(h)?;
    }
    Ok(h)
}

/// `x` through every layer, each writing into its own buffer.
///
/// A layer that would copy its input for the backward (Affine) is lent it
/// instead when the input is the output of a
/// [`RowWise`](crate::layers::sealed::RowWise) layer before it, which stays
/// in that layer's buffer until [`backward_all`] hands it back (llm.c's
/// activations, read in place by the backward). W4 large's step copied 2
/// MiB of inputs so; the first layer's input, the caller's batch, is still
/// copied (the borrow ends with the call).
pub(crate) fn forward_all<'a>(
    layers: &'a mut [Box<dyn Layer>],
    x: &'a Tensor,
) -> Result<&'a Tensor, Error> {
    let mut h = x;
    let mut after_row_wise = false;
    for layer in layers {
        let lend = after_row_wise && layer.row_wise().is_some_and(|l| l.keeps_input());
        after_row_wise = layer.row_wise().is_some();
        h = if lend {
            row_wise_mut("sequential forward", layer.as_mut())?.forward_lent(h)?
        } else {
            layer.forward_ref(h)?
        };
    }
    Ok(h)
}

/// The loss gradient `g` back through every layer, leaving each layer's
/// parameter gradients in it; a layer lent its input by [`forward_all`] is
/// given it back, from the layer before it.
pub(crate) fn backward_all<'a>(
    layers: &'a mut [Box<dyn Layer>],
    mut g: &'a Tensor,
) -> Result<(), Error> {
    let mut rest = layers;
    while let Some((layer, before)) = rest.split_last_mut() {
        // The first layer's input is data: its gradient is never needed.
        let want_dx = !before.is_empty();
        if let Some(x) = lent_input(before, layer.as_ref()) {
            let l = row_wise_mut("sequential backward", layer.as_mut())?;
            match l.backward_lent(x, g, want_dx)? {
                Some(dx) => g = dx,
                None => break,
            }
        } else if want_dx {
            g = layer.backward_ref(g)?;
        } else {
            layer.backward_params_only(g)?;
        }
        rest = before;
    }
    Ok(())
}

/// The input `layer` was lent by [`forward_all`]: the output of the last
/// of `before`, or `None` when it keeps its own.
fn lent_input<'a>(before: &'a [Box<dyn Layer>], layer: &dyn Layer) -> Option<&'a Tensor> {
    layer.row_wise().filter(|l| l.input_lent())?;
    Some(before.last()?.row_wise()?.output())
}

/// Gives every layer lent its input by [`forward_all`] a copy of it, so
/// that its own backward works once the layers are handed out.
fn keep_lent_inputs(layers: &mut [Box<dyn Layer>]) {
    for i in 1..layers.len() {
        let (before, after) = layers.split_at_mut(i);
        let layer = &mut after[0];
        if let (Some(x), Some(l)) = (lent_input(before, layer.as_ref()), layer.row_wise_mut()) {
            l.keep_lent(x);
        }
    }
}

/// The index of the largest element (the first of equals), `None` if any is
/// NaN or the row is empty.
fn argmax(row: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() {
            return None;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}
