//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in densegrad.
///
/// Every variant carries the name of the operation that refused the input
/// (`"affine forward"`, `"tensor reshape"`, ...) and a message that names the
/// shapes or values involved, so that the `Display` text alone says what to fix:
///
/// ```
/// use densegrad::{Affine, Layer, Tensor};
///
/// let mut fc = Affine::new(Tensor::zeros(&[784, 50]), Tensor::zeros(&[50])).unwrap();
/// let err = fc.forward(&Tensor::zeros(&[100, 783])).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "affine forward: x is [100, 783] but weight is [784, 50]: x needs 784 features per row"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Shapes that do not fit together: a data length that does not match the
    /// shape, two operands whose dimensions disagree, a reshape to another
    /// element count, an empty batch.
    Shape {
        /// The operation that refused its input.
        op: &'static str,
        /// What was expected and what was given.
        msg: String,
    },
    /// Labels that do not fit the logits: wrong count, a class index ≥ C,
    /// a negative or non-finite target probability.
    Label {
        /// The operation that refused its input.
        op: &'static str,
        /// What was expected and what was given.
        msg: String,
    },
    /// A file that could not be read or written (the message includes the
    /// path and the operating system's reason).
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The path and the reason.
        msg: String,
    },
    /// Bytes that are not what they claim to be: a truncated or corrupt IDX
    /// file or checkpoint, a wrong magic number, a checksum mismatch.
    Format {
        /// The operation that refused the input.
        op: &'static str,
        /// What was expected and what was found.
        msg: String,
    },
    /// A value outside what the operation accepts, whatever the shapes: a
    /// NaN learning rate, a momentum or β outside [0, 1).
    Argument {
        /// The operation that refused the value.
        op: &'static str,
        /// Which value, and what it must be.
        msg: String,
    },
    /// A call made in the wrong order, such as `backward` before `forward`.
    State {
        /// The operation that refused to run.
        op: &'static str,
        /// Why it cannot run now.
        msg: String,
    },
}

// I/O and format errors come from the optional data and checkpoint code.
#[cfg_attr(not(any(feature = "idx", feature = "safetensors")), allow(dead_code))]
impl Error {
    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn label(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Label {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, err: &std::io::Error) -> Self {
        Error::Io {
            op,
            msg: format!("{}: {err}", path.display()),
        }
    }

    pub(crate) fn format(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Format {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn argument(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Argument {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn state(op: &'static str, msg: impl Into<String>) -> Self {
        Error::State {
            op,
            msg: msg.into(),
        }
    }

    /// The operation that produced this error, e.g. `"affine forward"`.
    ///
    /// ```
    /// use densegrad::{Layer, Relu, Tensor};
    ///
    /// let err = Relu::new().backward(Tensor::zeros(&[2])).unwrap_err();
    /// assert_eq!(err.op(), "relu backward");
    /// ```
    pub fn op(&self) -> &'static str {
        match self {
            Error::Shape { op, .. }
            | Error::Label { op, .. }
            | Error::Io { op, .. }
            | Error::Format { op, .. }
            | Error::Argument { op, .. }
            | Error::State { op, .. } => op,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, msg }
            | Error::Label { op, msg }
            | Error::Io { op, msg }
            | Error::Format { op, msg }
            | Error::Argument { op, msg }
            | Error::State { op, msg } => {
                write!(f, "{op}: {msg}")
            }
        }
    }
}

impl std::error::Error for Error {}
