//! # densegrad
//!
//! Exact, fast, embeddable neural-network layers with proven gradients: the
//! backpropagation layers of a textbook notebook (ReLU, Sigmoid, Affine,
//! Softmax-with-loss) as a Rust library.
//!
//! - [`Tensor`]: a shape plus a contiguous row-major `Vec<f32>`.
//! - [`Layer`]: `forward` / `backward` pairs, implemented by [`Relu`],
//!   [`Sigmoid`], [`Tanh`], [`LeakyRelu`] (all [`Pointwise`] over an op
//!   from [`kernels::activation`]), [`Affine`], [`Convolution`],
//!   [`Pooling`], [`Reshape`], [`BatchNorm`] and (feature `rand`) `Dropout`;
//!   [`SoftmaxWithLoss`] ends a network.
//! - [`Sequential`]: layers in order plus the loss, with freezing, checkpoints
//!   (feature `safetensors`) and evaluation; [`optim`]: SGD, Momentum,
//!   Nesterov, AdaGrad, RMSprop and Adam over a `Sequential`.
//! - `data` (feature `idx`): IDX files, MNIST and seeded mini-batches;
//!   [`Init`] (weights with feature `rand`).
//! - [`softmax`], [`log_softmax`], [`cross_entropy`]: the same math as free
//!   functions.
//! - [`kernels`]: the slice-level math underneath, usable on its own.
//!
//! Features (all on by default): `rand`, `idx`, `safetensors`; without them
//! the crate depends on matrixmultiply, wide and rayon only.
//!
//! Every bad input (mismatched shapes, a label ≥ C, an empty batch, backward
//! before forward) is an [`Error`] naming the operation and the shapes, never
//! a panic.
//!
//! ## Semantics
//!
//! Where the notebook is loose, densegrad follows PyTorch:
//! softmax is row-wise; the loss is the mean over the batch of
//! `logsumexp(x) − x[label]` (no `+1e-7`); a 1-D input is one sample;
//! `SoftmaxWithLoss::backward` is `dout · (softmax(x) − t) / N`; gradients
//! are overwritten on each backward, not accumulated.
//!
//! ## Example: one SGD step of a two-layer network
//!
//! ```
//! use densegrad::{Affine, Labels, Layer, Relu, SoftmaxWithLoss, Tensor};
//!
//! let mut fc1 = Affine::new(Tensor::new(&[2, 3], vec![0.1, -0.2, 0.3, 0.4, 0.5, -0.6])?,
//!                           Tensor::zeros(&[3]))?;
//! let mut relu = Relu::new();
//! let mut fc2 = Affine::new(Tensor::new(&[3, 2], vec![0.2, -0.1, 0.3, 0.1, -0.5, 0.4])?,
//!                           Tensor::zeros(&[2]))?;
//! let mut loss = SoftmaxWithLoss::new();
//!
//! let x = Tensor::new(&[2, 2], vec![1.0, 2.0, -1.0, 0.5])?;
//! let before = loss.forward(&fc2.forward(&relu.forward(&fc1.forward(&x)?)?)?, Labels::Index(&[0, 1]))?;
//!
//! let d = loss.backward(1.0)?;
//! fc1.backward(relu.backward(fc2.backward(d)?)?)?;
//! for layer in [&mut fc1 as &mut dyn Layer, &mut fc2] {
//!     layer.visit_params(&mut |mut p| {
//!         let (values, grad) = p.values_and_grad();
//!         for (v, g) in values.iter_mut().zip(grad) {
//!             *v -= 0.5 * g;
//!         }
//!     });
//! }
//!
//! let after = loss.forward(&fc2.forward(&relu.forward(&fc1.forward(&x)?)?)?, Labels::Index(&[0, 1]))?;
//! assert!(after < before);
//! # Ok::<(), densegrad::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod batch_chunks;
#[cfg(feature = "safetensors")]
mod checkpoint;
#[cfg(feature = "idx")]
#[cfg_attr(docsrs, doc(cfg(feature = "idx")))]
pub mod data;
mod error;
mod functional;
mod init;
pub mod kernels;
mod layers;
mod net;
pub mod optim;
mod param;
mod tensor;

pub use error::{Error, ErrorKind, IoSource};
pub use functional::{log_softmax, softmax};
pub use init::Init;
#[cfg(feature = "rand")]
#[cfg_attr(docsrs, doc(cfg(feature = "rand")))]
pub use init::InitRng;
#[cfg(feature = "rand")]
pub use layers::Dropout;
pub use layers::{
    cross_entropy, Affine, BatchNorm, Convolution, Labels, Layer, LayerClone, LeakyRelu, Pointwise,
    Pooling, Relu, Reshape, Sigmoid, SoftmaxWithLoss, Tanh,
};
#[cfg(feature = "rand")]
pub use net::Activation;
pub use net::Sequential;
pub use param::{Param, StateMut};
pub use tensor::Tensor;

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(all(doctest, feature = "idx", feature = "safetensors"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
