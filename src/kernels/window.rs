//! The geometry of a 2-D window (a convolution filter or a pooling window)
//! sliding over (C, H, W) planes: output size, im2col size, and which input
//! pixel each window position reads. Shared by [`conv`](super::conv) and
//! [`pool`](super::pool), so the two agree on every edge case.
//!
//! ```
//! use densegrad::kernels::window::Window2d;
//! // MNIST through the book's 5×5 filters: 24×24 outputs, 25 im2col rows.
//! let g = Window2d::new("conv", 1, 28, 28, 5, 5, 1, 0)?;
//! assert_eq!((g.out_h(), g.out_w(), g.col_rows(), g.col_cols()), (24, 24, 25, 576));
//! # Ok::<(), densegrad::Error>(())
//! ```

use crate::Error;

/// A `kh`×`kw` window moved with `stride` over `c` planes of `h`×`w`
/// values padded by `pad` on every side: output `out_h`×`out_w` with
/// `out_h = (h + 2·pad − kh) / stride + 1` (floor), likewise `out_w`.
///
/// Only [`Window2d::new`] builds one, after checking that every size it
/// reports, and every product of them the kernels use, fits in `usize`.
///
/// ```
/// use densegrad::kernels::window::Window2d;
/// let g = Window2d::new("pool", 3, 5, 5, 2, 2, 2, 0)?; // floor: 2×2 outputs
/// assert_eq!((g.out_h(), g.out_w()), (2, 2));
/// assert!(Window2d::new("pool", 1, 2, 2, 3, 3, 1, 0).is_err()); // window > input
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window2d {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Window2d {
    /// The geometry, or an `Err` (naming `op` and the sizes) if a size is 0,
    /// the stride is 0, the window is larger than the padded input, or a
    /// size the kernels need (`c·h·w`, `c·kh·kw`, `out_h·out_w`, their
    /// product, `h + 2·pad`) overflows `usize`.
    ///
    /// ```
    /// use densegrad::kernels::window::Window2d;
    /// let err = Window2d::new("convolution forward", 1, 4, 4, 3, 3, 0, 0).unwrap_err();
    /// assert_eq!(err.to_string(), "convolution forward: stride must be at least 1");
    /// // A kernel equal to the padded input: one output.
    /// let g = Window2d::new("conv", 2, 3, 3, 5, 5, 1, 1)?;
    /// assert_eq!((g.out_h(), g.out_w()), (1, 1));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: &'static str,
        c: usize,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Window2d, Error> {
        if stride == 0 {
            return Err(Error::argument(op, "stride must be at least 1"));
        }
        if kh == 0 || kw == 0 {
            return Err(Error::shape(
                op,
                format!("window {kh}×{kw} is empty; both sizes must be at least 1"),
            ));
        }
        if c == 0 || h == 0 || w == 0 {
            return Err(Error::shape(
                op,
                format!("input planes [{c}, {h}, {w}] are empty"),
            ));
        }
        let too_big = || {
            Error::shape(
                op,
                format!(
                    "input [{c}, {h}, {w}] with window {kh}×{kw}, stride {stride}, pad {pad} has more elements than memory can hold"
                ),
            )
        };
        let padded = |n: usize| pad.checked_mul(2).and_then(|p| p.checked_add(n));
        let (ph, pw) = (
            padded(h).ok_or_else(too_big)?,
            padded(w).ok_or_else(too_big)?,
        );
        if kh > ph || kw > pw {
            return Err(Error::shape(
                op,
                format!(
                    "window {kh}×{kw} is larger than the padded input {ph}×{pw} (input {h}×{w}, pad {pad})"
                ),
            ));
        }
        let (oh, ow) = ((ph - kh) / stride + 1, (pw - kw) / stride + 1);
        let g = Window2d {
            c,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            oh,
            ow,
        };
        // Every product the kernels form, checked once here; the f32 byte
        // count must fit in isize as for any allocation.
        let fits = |n: Option<usize>| {
            n.and_then(|n| n.checked_mul(4))
                .is_some_and(|b| b <= isize::MAX as usize)
        };
        let plane = c.checked_mul(h).and_then(|v| v.checked_mul(w));
        let rows = c.checked_mul(kh).and_then(|v| v.checked_mul(kw));
        let cols = oh.checked_mul(ow);
        let col = rows.and_then(|r| cols.and_then(|c| r.checked_mul(c)));
        if !(fits(plane) && fits(rows) && fits(cols) && fits(col)) {
            return Err(too_big());
        }
        Ok(g)
    }

    /// Channels (planes) per sample.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 3, 8, 8, 3, 3, 1, 1)?.channels(), 3);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn channels(&self) -> usize {
        self.c
    }

    /// Input height.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 1, 6, 8, 3, 3, 1, 0)?.in_h(), 6);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn in_h(&self) -> usize {
        self.h
    }

    /// Input width.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 1, 6, 8, 3, 3, 1, 0)?.in_w(), 8);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn in_w(&self) -> usize {
        self.w
    }

    /// Output height, `(h + 2·pad − kh) / stride + 1`.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 1, 7, 7, 3, 3, 2, 1)?.out_h(), 4);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn out_h(&self) -> usize {
        self.oh
    }

    /// Output width, `(w + 2·pad − kw) / stride + 1`.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 1, 7, 9, 3, 2, 1, 0)?.out_w(), 8);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn out_w(&self) -> usize {
        self.ow
    }

    /// Values per input sample, `c·h·w`.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 2, 3, 4, 1, 1, 1, 0)?.in_len(), 24);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Rows of the im2col matrix, `c·kh·kw` (one per filter tap).
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 3, 8, 8, 3, 3, 1, 1)?.col_rows(), 27);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn col_rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the im2col matrix, `out_h·out_w` (one per output pixel).
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 3, 8, 8, 3, 3, 1, 1)?.col_cols(), 64);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn col_cols(&self) -> usize {
        self.oh * self.ow
    }

    /// `col_rows · col_cols`: the im2col buffer of one sample.
    ///
    /// ```
    /// # use densegrad::kernels::window::Window2d;
    /// assert_eq!(Window2d::new("conv", 1, 28, 28, 5, 5, 1, 0)?.col_len(), 25 * 576);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn col_len(&self) -> usize {
        self.col_rows() * self.col_cols()
    }

    /// For window offset `k` (0 ≤ k < kernel size) along an axis of input
    /// length `len`: the range of output positions `o` whose input position
    /// `o·stride + k − pad` lies inside `0..len`, and the input position of
    /// the first of them. Outputs outside the range read padding.
    #[inline]
    pub(crate) fn valid_outputs(
        &self,
        k: usize,
        len: usize,
        outs: usize,
    ) -> (std::ops::Range<usize>, usize) {
        let s = self.stride;
        // o·s + k ≥ pad  ⇔  o ≥ ceil((pad − k) / s)
        let lo = if self.pad > k {
            (self.pad - k).div_ceil(s)
        } else {
            0
        };
        // o·s + k − pad ≤ len − 1  ⇔  o ≤ (len − 1 + pad − k) / s
        let hi = if len - 1 + self.pad >= k {
            ((len - 1 + self.pad - k) / s + 1).min(outs)
        } else {
            0
        };
        if lo >= hi {
            // No output reads an input pixel at this offset.
            return (hi..hi, 0);
        }
        (lo..hi, lo * s + k - self.pad)
    }

    /// The window's rows (as `kh`, `stride`, `pad` and input `h`).
    #[inline]
    pub(crate) fn rows_of(&self, k: usize) -> (std::ops::Range<usize>, usize) {
        self.valid_outputs(k, self.h, self.oh)
    }

    /// The window's columns.
    #[inline]
    pub(crate) fn cols_of(&self, k: usize) -> (std::ops::Range<usize>, usize) {
        self.valid_outputs(k, self.w, self.ow)
    }

    pub(crate) fn kernel(&self) -> (usize, usize) {
        (self.kh, self.kw)
    }

    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    pub(crate) fn pad(&self) -> usize {
        self.pad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_outputs_match_a_brute_force_scan() {
        for h in 1..7 {
            for k in 1..=h + 4 {
                for stride in 1..4 {
                    for pad in 0..3 {
                        let Ok(g) = Window2d::new("t", 1, h, h, k, k, stride, pad) else {
                            continue;
                        };
                        for kk in 0..k {
                            let (range, first) = g.rows_of(kk);
                            let want: Vec<usize> = (0..g.out_h())
                                .filter(|&o| {
                                    let i = (o * stride + kk) as isize - pad as isize;
                                    i >= 0 && (i as usize) < h
                                })
                                .collect();
                            assert_eq!(range.clone().collect::<Vec<_>>(), want);
                            if let Some(&o) = want.first() {
                                assert_eq!(first, o * stride + kk - pad);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn overflowing_geometries_are_refused() {
        assert!(Window2d::new("t", 1, 1, 1, 1, 1, 1, usize::MAX / 2).is_err());
        assert!(Window2d::new("t", usize::MAX, 2, 2, 1, 1, 1, 0).is_err());
        assert!(Window2d::new("t", 1 << 21, 1 << 21, 1 << 21, 1, 1, 1, 0).is_err());
        assert!(Window2d::new("t", 1, 1, 1, 1, 1, 1, 1 << 40).is_err());
    }
}
