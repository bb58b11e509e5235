//! Slice-level math: no `Tensor`, no state, no allocation.
//!
//! Every kernel takes plain slices (and a row width where rows matter) and
//! writes into caller-owned buffers, so layers can lay their activation memory
//! out once and reuse it, as llm.c does.
//!
//! **Contract.** Shapes are the caller's business: a kernel whose slices
//! disagree in length (or with the row width it is given) panics, as Rust's
//! slice APIs do, and each public kernel says so under `# Panics`. It never
//! reads or writes out of bounds. The layers check every shape first and
//! answer bad input with an [`Error`](crate::Error), so no input to a layer
//! reaches one of these panics.
//!
//! - [`activation`]: the pointwise ops (ReLU, Sigmoid, Tanh, LeakyReLU, and
//!   the vector exp) and the drivers that run any [`activation::PointwiseOp`].
//! - [`softmax`]: row-wise max, log-sum-exp, softmax, log-softmax and the
//!   fused softmax-cross-entropy forward/backward.
//! - [`reduce`]: column sums (for `db`), row broadcast (for `+ b`), axpy.
//! - [`optim`]: the optimizers' update rules, each written once on lanes.
//! - [`window`], [`conv`], [`pool`]: 2-D window geometry, convolution as
//!   im2col + sgemm (forward and backward), and max pooling.
//! - [`gemm`]: a checked `sgemm` wrapper; [`gemm_direct`]: small products
//!   without packing, bitwise the same; `gemm_packed` (private, taken by
//!   [`gemm::gemm`] on its own): large products on AVX-512 with both
//!   operands packed, bitwise the same; `gemm_balanced` (private, taken by
//!   an `Affine` layer's products after uneven halves): the packed kernel's
//!   two column halves balanced between two threads, bitwise the same.
//! - [`simd`]: the lane trait every vector kernel is written in, and run-time
//!   dispatch to AVX2+FMA or AVX-512.
//! - [`parallel`]: splitting across rayon threads on fixed boundaries;
//!   [`parallel::for_row_blocks`] is the one place row-wise and elementwise
//!   work decides whether to split.
//!
//! `unsafe` lives in three files only, each with its contract on top:
//! `gemm.rs` (the sgemm call), `simd/avx2.rs` and `simd/avx512.rs` (the
//! intrinsics).
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
mod gemm_balanced;
pub mod gemm_direct;
mod gemm_packed;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod simd;
pub mod softmax;
pub mod window;
