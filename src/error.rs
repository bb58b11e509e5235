//! The crate's one error type.

use std::fmt;
use std::sync::Arc;

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
    /// path and the operating system's reason, which
    /// [`source`](std::error::Error::source) also gives as the
    /// `std::io::Error`).
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The path and the reason.
        msg: String,
        /// The operating system's error.
        source: IoSource,
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

    pub(crate) fn io(op: &'static str, path: &std::path::Path, err: std::io::Error) -> Self {
        Error::Io {
            op,
            msg: format!("{}: {err}", path.display()),
            source: IoSource(Arc::new(err)),
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

    /// What kind of fault this is, for code that branches on it without
    /// matching every variant.
    ///
    /// ```
    /// use densegrad::{ErrorKind, Layer, Relu, Tensor};
    ///
    /// let err = Relu::new().backward(Tensor::zeros(&[2])).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::State);
    /// let err = densegrad::LeakyRelu::new(-1.0).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Argument);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Shape { .. } => ErrorKind::Shape,
            Error::Label { .. } => ErrorKind::Label,
            Error::Io { .. } => ErrorKind::Io,
            Error::Format { .. } => ErrorKind::Format,
            Error::Argument { .. } => ErrorKind::Argument,
            Error::State { .. } => ErrorKind::State,
        }
    }

    /// The message after the operation's name: what was expected and what
    /// was given.
    ///
    /// ```
    /// use densegrad::{Layer, Relu, Tensor};
    ///
    /// let err = Relu::new().backward(Tensor::zeros(&[2])).unwrap_err();
    /// assert_eq!(err.message(), "backward called before forward");
    /// ```
    pub fn message(&self) -> &str {
        match self {
            Error::Shape { msg, .. }
            | Error::Label { msg, .. }
            | Error::Io { msg, .. }
            | Error::Format { msg, .. }
            | Error::Argument { msg, .. }
            | Error::State { msg, .. } => msg,
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
            | Error::Io { op, msg, .. }
            | Error::Format { op, msg }
            | Error::Argument { op, msg }
            | Error::State { op, msg } => {
                write!(f, "{op}: {msg}")
            }
        }
    }
}

/// The underlying `std::io::Error` reaches callers through
/// [`source`](std::error::Error::source):
///
/// ```
/// # #[cfg(feature = "idx")] {
/// use std::error::Error as _;
/// let err = densegrad::data::read_idx("/nonexistent/file.idx").unwrap_err();
/// let io = err.source().unwrap().downcast_ref::<std::io::Error>().unwrap();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// # }
/// ```
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.0.as_ref()),
            _ => None,
        }
    }
}

/// What kind of fault an [`Error`] is; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Shape`].
    Shape,
    /// [`Error::Label`].
    Label,
    /// [`Error::Io`].
    Io,
    /// [`Error::Format`].
    Format,
    /// [`Error::Argument`].
    Argument,
    /// [`Error::State`].
    State,
}

/// The `std::io::Error` behind an [`Error::Io`], shared so that the error
/// stays `Clone`. Two are equal whenever their errors have the same
/// [`kind`](std::io::ErrorKind) (`std::io::Error` itself has no equality).
///
/// ```
/// # #[cfg(feature = "idx")] {
/// let err = densegrad::data::read_idx("/nonexistent/file.idx").unwrap_err();
/// if let densegrad::Error::Io { source, .. } = &err {
///     assert_eq!(source.get().kind(), std::io::ErrorKind::NotFound);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct IoSource(Arc<std::io::Error>);

impl IoSource {
    /// The operating system's error.
    ///
    /// ```
    /// # #[cfg(feature = "idx")] {
    /// # let err = densegrad::data::read_idx("/nonexistent/file.idx").unwrap_err();
    /// # if let densegrad::Error::Io { source, .. } = &err {
    /// assert!(source.get().raw_os_error().is_some());
    /// # }
    /// # }
    /// ```
    pub fn get(&self) -> &std::io::Error {
        &self.0
    }
}

impl PartialEq for IoSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind()
    }
}

impl Eq for IoSource {}
