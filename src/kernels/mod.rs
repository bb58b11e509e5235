//! Slice-level math: no `Tensor`, no state, no allocation.
//!
//! Every kernel takes plain slices (and a row width where rows matter) and
//! writes into caller-owned buffers, so layers can lay their activation memory
//! out once and reuse it, as llm.c does. Shapes are the caller's business: a
//! kernel only `debug_assert!`s that its slices agree, and the safe slice
//! indexing it uses would panic (never read out of bounds) if a caller broke
//! that. Layers validate every shape and return an `Error` first.
//!
//! - [`activation`]: ReLU and Sigmoid, forward and backward.
//! - [`softmax`]: row-wise max, log-sum-exp, softmax, log-softmax and the
//!   fused softmax-cross-entropy forward/backward.
//! - [`reduce`]: column sums (for `db`) and row broadcast (for `+ b`).
//! - [`window`], [`conv`], [`pool`]: 2-D window geometry, convolution as
//!   im2col + sgemm (forward and backward), and max pooling.
//! - [`gemm`]: a checked `sgemm` wrapper, one of the two places with `unsafe`.
//! - [`simd`]: the lane trait every vector kernel is written in, and run-time
//!   dispatch to AVX2+FMA (the other place with `unsafe`).
//! - [`parallel`]: splitting across rayon threads on fixed boundaries.
//!
//! ```
//! # use densegrad::kernels::activation::relu_forward;
//! // Slices in, slices out: no Tensor, no allocation.
//! let mut y = [0.0; 3];
//! relu_forward(&[-1.0, 0.0, 2.0], &mut y);
//! assert_eq!(y, [0.0, 0.0, 2.0]);
//! ```

pub mod activation;
pub mod conv;
pub mod gemm;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod simd;
pub mod softmax;
pub mod window;
