//! `Tensor`: a shape and a contiguous row-major `Vec<f32>`.

use std::fmt;

use rayon::iter::ParallelExtend;

use crate::Error;

/// Zero tensors of at least this many elements (4 MiB) are written by
/// every rayon thread: one thread's memset of 16 MiB took ~0.9 ms, as long
/// as half of a ReLU forward and backward over it on two threads (measured
/// on the owned ReLU, which since writes its output without zeroing it);
/// below 4 MiB a memset costs little more than waking a thread.
const PAR_ZEROS_MIN_ELEMS: usize = 1 << 20;

/// A dense, row-major, contiguous array of `f32` with a shape.
///
/// The shape may have any number of dimensions, including zero (a scalar,
/// one element) and zero-sized dimensions (no elements). The last dimension
/// varies fastest. There are no strides and no views: a `Tensor` owns its
/// `Vec<f32>`, and [`Tensor::into_data`] gives it back without a copy.
///
/// ```
/// use densegrad::Tensor;
///
/// let t = Tensor::new(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.data()[4], 5.0);
/// assert_eq!(t.to_string(), "[[1.0, 2.0, 3.0],\n [4.0, 5.0, 6.0]]");
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// The number of elements of `shape`, or `None` if it overflows `usize` or
/// would not fit in memory as `f32`s (more than `isize::MAX` bytes).
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    let bytes = n.checked_mul(std::mem::size_of::<f32>())?;
    (bytes <= isize::MAX as usize).then_some(n)
}

impl Tensor {
    /// A tensor of the given shape holding `data` in row-major order.
    ///
    /// Errors if `data.len()` is not the product of `shape`, or if that
    /// product overflows `usize`.
    ///
    /// ```
    /// use densegrad::Tensor;
    ///
    /// let t = Tensor::new(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(t.numel(), 4);
    ///
    /// let err = Tensor::new(&[2, 3], vec![0.0; 5]).unwrap_err();
    /// assert_eq!(err.to_string(), "tensor new: shape [2, 3] holds 6 elements but data has 5");
    /// assert!(Tensor::new(&[usize::MAX, 2], vec![]).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Tensor, Error> {
        let n = checked_numel(shape).ok_or_else(|| {
            Error::shape(
                "tensor new",
                format!("shape {shape:?} has more elements than memory can hold"),
            )
        })?;
        if n != data.len() {
            return Err(Error::shape(
                "tensor new",
                format!(
                    "shape {shape:?} holds {n} elements but data has {}",
                    data.len()
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of zeros, or an `Err` if the element count overflows or the
    /// memory cannot be had (never an abort: the allocation is fallible).
    ///
    /// ```
    /// use densegrad::Tensor;
    ///
    /// assert_eq!(Tensor::try_zeros(&[3, 0])?.numel(), 0);
    /// assert!(Tensor::try_zeros(&[1 << 40, 1 << 40]).is_err());
    /// assert!(Tensor::try_zeros(&[1 << 30, 1 << 30]).is_err()); // 4 EiB
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn try_zeros(shape: &[usize]) -> Result<Tensor, Error> {
        let n = checked_numel(shape).ok_or_else(|| {
            Error::shape(
                "tensor zeros",
                format!("shape {shape:?} has more elements than memory can hold"),
            )
        })?;
        let mut data = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            Error::shape(
                "tensor zeros",
                format!("shape {shape:?} needs {n} f32s, more memory than can be allocated"),
            )
        })?;
        if n >= PAR_ZEROS_MIN_ELEMS && rayon::current_num_threads() > 1 {
            // Written by every thread, each its part: a fresh buffer that
            // a kernel then fills in parallel (`softmax`, a caller's own
            // output) would otherwise wait for one thread's memset.
            data.par_extend(rayon::iter::repeat_n(0.0, n));
        } else {
            data.resize(n, 0.0);
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of zeros.
    ///
    /// # Panics
    /// If the element count overflows `usize` (like `vec![0.0; n]` would);
    /// use [`Tensor::try_zeros`] for shapes that come from untrusted input.
    ///
    /// ```
    /// use densegrad::Tensor;
    ///
    /// let z = Tensor::zeros(&[2, 3]);
    /// assert_eq!(z.shape(), &[2, 3]);
    /// assert!(z.data().iter().all(|&v| v == 0.0));
    /// ```
    pub fn zeros(shape: &[usize]) -> Tensor {
        match Tensor::try_zeros(shape) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// A 1-D tensor holding a copy of `values`.
    ///
    /// ```
    /// use densegrad::Tensor;
    ///
    /// let t = Tensor::from_slice(&[1.0, 8.0, 3.0]);
    /// assert_eq!(t.shape(), &[3]);
    /// ```
    pub fn from_slice(values: &[f32]) -> Tensor {
        Tensor {
            shape: vec![values.len()],
            data: values.to_vec(),
        }
    }

    /// The shape, outermost dimension first.
    ///
    /// ```
    /// use densegrad::Tensor;
    /// assert_eq!(Tensor::zeros(&[4, 5]).shape(), &[4, 5]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    ///
    /// ```
    /// use densegrad::Tensor;
    /// assert_eq!(Tensor::zeros(&[4, 5, 6]).ndim(), 3);
    /// ```
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements (the product of the shape).
    ///
    /// ```
    /// use densegrad::Tensor;
    /// assert_eq!(Tensor::zeros(&[4, 5]).numel(), 20);
    /// ```
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    ///
    /// ```
    /// use densegrad::Tensor;
    /// let t = Tensor::new(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(t.data()[2], 3.0); // row 1, column 0
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The elements in row-major order, mutable. The shape cannot change
    /// through this slice.
    ///
    /// ```
    /// use densegrad::Tensor;
    /// let mut t = Tensor::zeros(&[2]);
    /// t.data_mut()[1] = 7.0;
    /// assert_eq!(t.data(), &[0.0, 7.0]);
    /// ```
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The elements, without a copy.
    ///
    /// ```
    /// use densegrad::Tensor;
    /// let v = Tensor::from_slice(&[1.0, 2.0]).into_data();
    /// assert_eq!(v, vec![1.0, 2.0]);
    /// ```
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Changes the shape in place, keeping the elements in the same order.
    ///
    /// Errors, leaving the tensor unchanged, if the new shape holds a
    /// different number of elements.
    ///
    /// ```
    /// use densegrad::Tensor;
    /// let mut t = Tensor::zeros(&[2, 3]);
    /// t.reshape(&[3, 2])?;
    /// assert_eq!(t.shape(), &[3, 2]);
    /// let err = t.reshape(&[4, 2]).unwrap_err();
    /// assert_eq!(err.to_string(), "tensor reshape: cannot reshape [3, 2] (6 elements) to [4, 2] (8 elements)");
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn reshape(&mut self, shape: &[usize]) -> Result<(), Error> {
        match checked_numel(shape) {
            Some(n) if n == self.data.len() => {
                self.shape.clear();
                self.shape.extend_from_slice(shape);
                Ok(())
            }
            Some(n) => Err(Error::shape(
                "tensor reshape",
                format!(
                    "cannot reshape {:?} ({} elements) to {shape:?} ({n} elements)",
                    self.shape,
                    self.data.len()
                ),
            )),
            None => Err(Error::shape(
                "tensor reshape",
                format!(
                    "cannot reshape {:?} to {shape:?}: its element count overflows",
                    self.shape
                ),
            )),
        }
    }

    /// The (rows, columns) this tensor has as a batch: a 1-D tensor is one
    /// sample (1, len); otherwise the first dimension is the batch and the
    /// rest are flattened. `None` for a 0-D tensor.
    pub(crate) fn batch_dims(&self) -> Option<(usize, usize)> {
        match self.shape.as_slice() {
            [] => None,
            [k] => Some((1, *k)),
            // A zero among the rest makes the product 0 before the other
            // (possibly huge) dimensions can overflow it.
            [n, rest @ ..] => Some((*n, checked_numel(rest).unwrap_or(0))),
        }
    }

    /// Makes this tensor `shape`, reusing its allocations: no allocation when
    /// the capacity already suffices (the layers' reusable buffers). The
    /// values are unspecified afterwards; callers overwrite them.
    pub(crate) fn resize_buffer(&mut self, shape: &[usize]) {
        let n = checked_numel(shape).expect("buffer shape was checked by the caller");
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(n, 0.0);
    }

    /// [`resize_buffer`](Tensor::resize_buffer) for a shape that input
    /// controls: an `Err` (naming `op`) instead of an abort when the element
    /// count overflows or the memory cannot be had.
    pub(crate) fn try_resize_buffer(
        &mut self,
        op: &'static str,
        shape: &[usize],
    ) -> Result<(), Error> {
        let n = checked_numel(shape).ok_or_else(|| {
            Error::shape(
                op,
                format!("shape {shape:?} has more elements than memory can hold"),
            )
        })?;
        if n > self.data.len() {
            self.data
                .try_reserve_exact(n - self.data.len())
                .map_err(|_| {
                    Error::shape(
                        op,
                        format!(
                            "shape {shape:?} needs {n} f32s, more memory than can be allocated"
                        ),
                    )
                })?;
        }
        self.resize_buffer(shape);
        Ok(())
    }
}

/// How many items of each dimension are printed before eliding (numpy's
/// `edgeitems`), and the element count above which elision starts
/// (numpy's `threshold`).
const EDGE_ITEMS: usize = 3;
const ELIDE_ABOVE: usize = 1000;

fn fmt_value(v: f32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match f.precision() {
        Some(p) => write!(f, "{v:.p$}"),
        // Debug gives the shortest text that round-trips, with an exponent
        // for very large or small magnitudes (1e30, not 31 digits).
        None => write!(f, "{v:?}"),
    }
}

fn fmt_nested(
    shape: &[usize],
    data: &[f32],
    depth: usize,
    elide: bool,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let Some((&len, inner)) = shape.split_first() else {
        return fmt_value(data[0], f);
    };
    let stride: usize = inner.iter().product();
    f.write_str("[")?;
    let skip = elide && len > 2 * EDGE_ITEMS;
    let mut first = true;
    for i in 0..len {
        if skip && i >= EDGE_ITEMS && i < len - EDGE_ITEMS {
            if i == EDGE_ITEMS {
                f.write_str(if inner.is_empty() { ", ..." } else { ",\n" })?;
                if !inner.is_empty() {
                    write!(f, "{:width$}...", "", width = depth + 1)?;
                }
            }
            continue;
        }
        if !first {
            if inner.is_empty() {
                f.write_str(", ")?;
            } else {
                f.write_str(",")?;
                for _ in 0..inner.len() {
                    f.write_str("\n")?;
                }
                write!(f, "{:width$}", "", width = depth + 1)?;
            }
        }
        first = false;
        fmt_nested(
            inner,
            &data[i * stride..(i + 1) * stride],
            depth + 1,
            elide,
            f,
        )?;
    }
    f.write_str("]")
}

/// numpy-like nested brackets; tensors of more than 1000 elements show the
/// first and last three items of each dimension with `...` between. A
/// precision (`{:.3}`) applies to every element.
///
/// ```
/// use densegrad::Tensor;
///
/// let t = Tensor::new(&[2, 2], vec![0.5, 1e30, -0.0, f32::NAN])?;
/// assert_eq!(t.to_string(), "[[0.5, 1e30],\n [-0.0, NaN]]");
/// assert_eq!(format!("{:.2}", Tensor::from_slice(&[1.0, 2.5])), "[1.00, 2.50]");
/// let big = Tensor::zeros(&[2000]);
/// assert_eq!(big.to_string(), "[0.0, 0.0, 0.0, ..., 0.0, 0.0, 0.0]");
/// # Ok::<(), densegrad::Error>(())
/// ```
impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.data.is_empty() {
            return f.write_str("[]");
        }
        fmt_nested(&self.shape, &self.data, 0, self.data.len() > ELIDE_ABOVE, f)
    }
}

/// The shape, then the values as `Display` prints them.
///
/// ```
/// use densegrad::Tensor;
/// let t = Tensor::from_slice(&[1.0, 2.0]);
/// assert_eq!(format!("{t:?}"), "Tensor(shape=[2], [1.0, 2.0])");
/// ```
impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor(shape={:?}, ", self.shape)?;
        fmt::Display::fmt(self, f)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above `PAR_ZEROS_MIN_ELEMS`, at 2 threads, the zeros are written by
    /// both threads: every element is there and is +0.
    #[test]
    fn large_zeros_written_in_parallel_are_all_zero() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let n = PAR_ZEROS_MIN_ELEMS + 13;
        let t = pool.install(|| Tensor::try_zeros(&[n, 3])).unwrap();
        assert_eq!((t.shape(), t.numel()), (&[n, 3][..], 3 * n));
        assert!(t.data().iter().all(|v| v.to_bits() == 0));
    }

    #[test]
    fn display_3d_and_scalar() {
        let t = Tensor::new(&[2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(t.to_string(), "[[[1.0, 2.0]],\n\n [[3.0, 4.0]]]");
        let s = Tensor::new(&[], vec![4.5]).unwrap();
        assert_eq!(s.to_string(), "4.5");
        assert_eq!(Tensor::zeros(&[0, 3]).to_string(), "[]");
    }

    #[test]
    fn display_elides_rows_of_a_large_matrix() {
        let t = Tensor::zeros(&[100, 20]);
        let text = t.to_string();
        assert_eq!(text.lines().count(), 7, "{text}");
        assert_eq!(text.lines().nth(3).unwrap(), " ...,", "{text}");
        assert!(text.starts_with("[[0.0, 0.0, 0.0, ..., 0.0, 0.0, 0.0],"));
    }

    #[test]
    fn numel_overflow_is_detected() {
        assert_eq!(checked_numel(&[usize::MAX, 2]), None);
        assert_eq!(checked_numel(&[1 << 62]), None); // too many bytes
        assert_eq!(checked_numel(&[usize::MAX, 0]), Some(0));
        assert_eq!(checked_numel(&[usize::MAX, 2, 0]), Some(0));
        assert_eq!(checked_numel(&[]), Some(1));
    }

    #[test]
    fn batch_dims_flatten_all_but_the_first() {
        assert_eq!(Tensor::zeros(&[4]).batch_dims(), Some((1, 4)));
        assert_eq!(Tensor::zeros(&[2, 3, 4]).batch_dims(), Some((2, 12)));
        assert_eq!(Tensor::new(&[], vec![1.0]).unwrap().batch_dims(), None);
    }
}
