//! Row-wise softmax and log-softmax as free functions, without a layer.
//!
//! Both work over the last axis of a tensor of any rank ≥ 1 and subtract each
//! row's maximum first, so they are finite for all finite input. See
//! [`crate::kernels::softmax`] for what NaN and ±∞ logits give.

use crate::kernels::softmax::{log_softmax_from_stats, softmax_rows, RowStats};
use crate::{Error, Tensor};

/// The width of the last axis, or an `Err` for 0-D or empty input.
fn last_axis(op: &'static str, x: &Tensor) -> Result<usize, Error> {
    let Some(&c) = x.shape().last() else {
        return Err(Error::shape(op, "x is a 0-D scalar; softmax needs an axis"));
    };
    if x.numel() == 0 {
        return Err(Error::shape(
            op,
            format!(
                "x {:?} is empty; softmax needs at least one element per row",
                x.shape()
            ),
        ));
    }
    Ok(c)
}

/// Softmax over the last axis: every row is `exp(x − max) / Σ exp(x − max)`.
///
/// ```
/// use densegrad::{softmax, Tensor};
///
/// let x = Tensor::new(&[2, 2], vec![0.0, 0.0, 1e30, -1e30])?;
/// assert_eq!(softmax(&x)?.data(), &[0.5, 0.5, 1.0, 0.0]);
/// assert!(softmax(&Tensor::zeros(&[0, 3])).is_err());
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn softmax(x: &Tensor) -> Result<Tensor, Error> {
    let c = last_axis("softmax", x)?;
    let mut y = Tensor::zeros(x.shape());
    let mut stats = vec![RowStats::default(); x.numel() / c];
    softmax_rows(x.data(), c, y.data_mut(), &mut stats);
    Ok(y)
}

/// Log-softmax over the last axis: `x − max − ln Σ exp(x − max)`, exact
/// where `ln(softmax(x))` would underflow to −∞.
///
/// ```
/// use densegrad::{log_softmax, Tensor};
///
/// let y = log_softmax(&Tensor::from_slice(&[0.0, -200.0]))?;
/// assert_eq!(y.data(), &[0.0, -200.0]); // softmax would give exactly 0 here
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn log_softmax(x: &Tensor) -> Result<Tensor, Error> {
    let c = last_axis("log softmax", x)?;
    let mut y = Tensor::zeros(x.shape());
    let mut stats = vec![RowStats::default(); x.numel() / c];
    softmax_rows(x.data(), c, y.data_mut(), &mut stats);
    log_softmax_from_stats(x.data(), c, &stats, y.data_mut());
    Ok(y)
}
