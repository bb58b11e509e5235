//! Data: the IDX format MNIST ships in, the MNIST loader, and seeded
//! mini-batches.
//!
//! IDX (LeCun's format): two zero bytes, an element-type byte (`0x08`:
//! unsigned byte, the only type MNIST uses and the only one read here), a
//! dimension count, the dimensions as big-endian u32s, then the elements.
//! Files may be gzip-compressed (detected by the gzip magic), as MNIST is
//! distributed. Truncated, oversized or corrupt files are an
//! [`crate::Error::Format`] naming what was wrong; nothing is
//! allocated on a header's word alone (a header claiming 4 GB on a 1 KB file
//! fails after reading the 1 KB).
//!
//! ```
//! use densegrad::data::read_idx_bytes;
//! let labels = read_idx_bytes(&[0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4])?;
//! assert_eq!(labels.data, vec![5, 0, 4]);
//! # Ok::<(), densegrad::Error>(())
//! ```

use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Error, Tensor};

/// An array read from an IDX file: its dimensions and its bytes, row-major.
///
/// ```
/// let idx = densegrad::data::read_idx_bytes(&[0, 0, 8, 1, 0, 0, 0, 2, 7, 9])?;
/// assert_eq!(idx, densegrad::data::Idx { dims: vec![2], data: vec![7, 9] });
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

const OP: &str = "read idx";

/// Parses an IDX file (raw or gzip-compressed) from bytes.
///
/// ```
/// use densegrad::data::read_idx_bytes;
///
/// // A 2×3 array of unsigned bytes.
/// let bytes = [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let idx = read_idx_bytes(&bytes)?;
/// assert_eq!(idx.dims, vec![2, 3]);
/// assert_eq!(idx.data, vec![1, 2, 3, 4, 5, 6]);
///
/// let err = read_idx_bytes(&bytes[..15]).unwrap_err();
/// assert_eq!(err.to_string(), "read idx: truncated: the header promises 6 elements but the file holds 3");
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn read_idx_bytes(bytes: &[u8]) -> Result<Idx, Error> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse_idx(flate2::read::GzDecoder::new(bytes))
    } else {
        parse_idx(bytes)
    }
}

/// Reads an IDX file (raw or gzip-compressed) from `path`.
///
/// ```no_run
/// let labels = densegrad::data::read_idx("data/mnist/t10k-labels-idx1-ubyte.gz")?;
/// assert_eq!(labels.dims, vec![10000]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<Idx, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(OP, path, e))?;
    read_idx_bytes(&bytes).map_err(|e| match e {
        Error::Format { op, msg } => Error::format(op, format!("{}: {msg}", path.display())),
        other => other,
    })
}

/// The most elements (bytes) an IDX header may declare: 1 GiB, twenty
/// times MNIST's training images. A header claiming more is refused before
/// anything is read or allocated, so a small gzip "bomb" whose header claims
/// 4 G elements costs nothing; within the limit the buffer grows only with
/// the bytes actually decompressed.
///
/// ```
/// use densegrad::data::{read_idx_bytes, MAX_IDX_ELEMENTS};
/// // A header claiming 2^16 × 2^16 × 2^2 elements, and nothing after it.
/// let bomb = [0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4];
/// let err = read_idx_bytes(&bomb).unwrap_err().to_string();
/// assert!(err.contains("over the limit"), "{err}");
/// assert_eq!(MAX_IDX_ELEMENTS, 1 << 30);
/// ```
pub const MAX_IDX_ELEMENTS: usize = 1 << 30;

fn read_fully(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::format(OP, format!("truncated: the file ends inside the {what}"))
        }
        _ => Error::format(OP, format!("corrupt {what}: {e}")),
    })
}

fn parse_idx(mut r: impl Read) -> Result<Idx, Error> {
    let mut magic = [0u8; 4];
    read_fully(&mut r, &mut magic, "magic number")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(Error::format(
            OP,
            format!(
                "not an IDX file: magic bytes are {:02x} {:02x}, expected 00 00",
                magic[0], magic[1]
            ),
        ));
    }
    if magic[2] != 0x08 {
        return Err(Error::format(
            OP,
            format!(
                "element type 0x{:02x} is not supported; only 0x08 (unsigned byte) is",
                magic[2]
            ),
        ));
    }
    let ndims = magic[3] as usize;
    if ndims == 0 {
        return Err(Error::format(OP, "the header declares 0 dimensions"));
    }
    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        let mut d = [0u8; 4];
        read_fully(&mut r, &mut d, "dimensions")?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let n = crate::tensor::checked_numel(&dims).ok_or_else(|| {
        Error::format(
            OP,
            format!("dimensions {dims:?} hold more elements than memory can"),
        )
    })?;
    if n > MAX_IDX_ELEMENTS {
        return Err(Error::format(
            OP,
            format!(
                "the header claims {dims:?} = {n} elements, over the limit of {MAX_IDX_ELEMENTS} (data::MAX_IDX_ELEMENTS)"
            ),
        ));
    }
    // Grow with the data actually present, never by the header's claim.
    let mut data = Vec::new();
    (&mut r)
        .take(n as u64)
        .read_to_end(&mut data)
        .map_err(|e| Error::format(OP, format!("corrupt data: {e}")))?;
    if data.len() < n {
        return Err(Error::format(
            OP,
            format!(
                "truncated: the header promises {n} elements but the file holds {}",
                data.len()
            ),
        ));
    }
    let mut extra = [0u8; 1];
    match r.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => {
            return Err(Error::format(
                OP,
                format!("trailing bytes after the {n} elements the header promises"),
            ))
        }
        Err(e) => return Err(Error::format(OP, format!("corrupt data: {e}"))),
    }
    Ok(Idx { dims, data })
}

/// A labelled set of examples: one row of features per example.
///
/// ```
/// use densegrad::{data::Dataset, Tensor};
/// let d = Dataset::new(Tensor::zeros(&[4, 3]), vec![0, 1, 2, 1], 3)?;
/// assert_eq!((d.len(), d.features(), d.classes()), (4, 3, 3));
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    /// (N, features), row-major.
    x: Tensor,
    /// One class index per row, each below `classes` (checked by `new`;
    /// the fields are private so that it stays true).
    labels: Vec<usize>,
    classes: usize,
}

impl Dataset {
    /// A dataset from features (N, F) and N labels, each `< classes`.
    ///
    /// ```
    /// use densegrad::{data::Dataset, Tensor};
    ///
    /// let d = Dataset::new(Tensor::zeros(&[3, 2]), vec![0, 1, 1], 2)?;
    /// assert_eq!(d.len(), 3);
    /// assert!(Dataset::new(Tensor::zeros(&[3, 2]), vec![0, 1, 2], 2).is_err());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn new(x: Tensor, labels: Vec<usize>, classes: usize) -> Result<Dataset, Error> {
        const OP: &str = "dataset new";
        if x.ndim() != 2 {
            return Err(Error::shape(
                OP,
                format!("features are {:?} but must be 2-D (N, features)", x.shape()),
            ));
        }
        if x.shape()[0] != labels.len() {
            return Err(Error::label(
                OP,
                format!("{} labels for features {:?}", labels.len(), x.shape()),
            ));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
            return Err(Error::label(
                OP,
                format!("label {l} at row {i} is out of range for {classes} classes"),
            ));
        }
        Ok(Dataset { x, labels, classes })
    }

    /// The number of examples.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// assert_eq!(Dataset::new(Tensor::zeros(&[0, 4]), vec![], 10)?.len(), 0);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// assert!(Dataset::new(Tensor::zeros(&[0, 4]), vec![], 10)?.is_empty());
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features, (N, features) row-major.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// let d = Dataset::new(Tensor::zeros(&[2, 4]), vec![0, 1], 2)?;
    /// assert_eq!(d.x().shape(), &[2, 4]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// One class index per example.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// let d = Dataset::new(Tensor::zeros(&[2, 4]), vec![0, 1], 2)?;
    /// assert_eq!(d.labels(), &[0, 1]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The number of classes; every label is below it.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// assert_eq!(Dataset::new(Tensor::zeros(&[1, 4]), vec![0], 10)?.classes(), 10);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The features and labels, taken apart.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// let (x, labels) = Dataset::new(Tensor::zeros(&[1, 4]), vec![3], 10)?.into_parts();
    /// assert_eq!((x.shape(), labels), (&[1, 4][..], vec![3]));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn into_parts(self) -> (Tensor, Vec<usize>) {
        (self.x, self.labels)
    }

    /// The number of features per example.
    ///
    /// ```
    /// # use densegrad::{data::Dataset, Tensor};
    /// assert_eq!(Dataset::new(Tensor::zeros(&[2, 4]), vec![0, 0], 1)?.features(), 4);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn features(&self) -> usize {
        self.x.shape()[1]
    }

    /// Mini-batches of `batch_size` rows (the last may be smaller), in a
    /// random order drawn from `seed` if given, else in order. The same seed
    /// gives the same order on every machine (ChaCha8).
    ///
    /// ```
    /// use densegrad::{data::Dataset, Tensor};
    ///
    /// let d = Dataset::new(Tensor::new(&[5, 1], vec![0.0, 1.0, 2.0, 3.0, 4.0])?, vec![0; 5], 1)?;
    /// let sizes: Vec<usize> = d.batches(2, None)?.map(|(x, _)| x.shape()[0]).collect();
    /// assert_eq!(sizes, vec![2, 2, 1]);
    /// let a: Vec<f32> = d.batches(5, Some(7))?.next().unwrap().0.into_data();
    /// let b: Vec<f32> = d.batches(5, Some(7))?.next().unwrap().0.into_data();
    /// assert_eq!(a, b);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn batches(&self, batch_size: usize, seed: Option<u64>) -> Result<Batches<'_>, Error> {
        if batch_size == 0 {
            return Err(Error::shape(
                "dataset batches",
                "batch size must be at least 1",
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(seed) = seed {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        Ok(Batches {
            data: self,
            order,
            pos: 0,
            batch_size,
        })
    }
}

/// Mini-batches over a [`Dataset`]; see [`Dataset::batches`].
///
/// As an `Iterator` it yields fresh `(x, labels)` pairs; [`Batches::next_into`]
/// fills buffers the caller reuses, so an epoch allocates nothing.
///
/// ```
/// use densegrad::{data::Dataset, Tensor};
/// let d = Dataset::new(Tensor::zeros(&[10, 2]), vec![0; 10], 1)?;
/// assert_eq!(d.batches(4, Some(1))?.count(), 3);
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
}

impl Batches<'_> {
    /// Copies the next batch into `x` (resized to (B, features)) and
    /// `labels`; `false` when the epoch is over.
    ///
    /// ```
    /// use densegrad::{data::Dataset, Tensor};
    ///
    /// let d = Dataset::new(Tensor::new(&[3, 1], vec![0.0, 1.0, 2.0])?, vec![0, 1, 0], 2)?;
    /// let mut batches = d.batches(2, None)?;
    /// let (mut x, mut labels) = (Tensor::zeros(&[0]), Vec::new());
    /// assert!(batches.next_into(&mut x, &mut labels));
    /// assert_eq!((x.data(), labels.as_slice()), (&[0.0, 1.0][..], &[0, 1][..]));
    /// assert!(batches.next_into(&mut x, &mut labels));
    /// assert_eq!(x.shape(), &[1, 1]);
    /// assert!(!batches.next_into(&mut x, &mut labels));
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    pub fn next_into(&mut self, x: &mut Tensor, labels: &mut Vec<usize>) -> bool {
        let n = self.order.len();
        if self.pos >= n {
            return false;
        }
        let end = (self.pos + self.batch_size).min(n);
        let f = self.data.features();
        x.resize_buffer(&[end - self.pos, f]);
        let rows = &self.order[self.pos..end];
        labels.clear();
        labels.extend(rows.iter().map(|&i| self.data.labels[i]));
        if f > 0 {
            for (dst, &i) in x.data_mut().chunks_exact_mut(f).zip(rows) {
                dst.copy_from_slice(&self.data.x.data()[i * f..(i + 1) * f]);
            }
        }
        self.pos = end;
        true
    }
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Vec<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let (mut x, mut labels) = (Tensor::zeros(&[0]), Vec::new());
        self.next_into(&mut x, &mut labels).then_some((x, labels))
    }
}

/// MNIST's training and test sets.
///
/// ```
/// let mnist = densegrad::data::load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60000, 10000));
/// # Ok::<(), densegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mnist {
    /// 60 000 images as rows of 784 values in [0, 1], and their labels.
    pub train: Dataset,
    /// 10 000 images and labels.
    pub test: Dataset,
}

fn find(dir: &Path, stem: &str) -> std::path::PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(stem)
    }
}

fn load_split(dir: &Path, images: &str, labels: &str) -> Result<Dataset, Error> {
    const OP: &str = "load mnist";
    let img = read_idx(find(dir, images))?;
    let lab = read_idx(find(dir, labels))?;
    let (n, h, w) = match img.dims.as_slice() {
        &[n, h, w] => (n, h, w),
        d => {
            return Err(Error::format(
                OP,
                format!("{images}: images are {d:?}, expected [N, rows, cols]"),
            ))
        }
    };
    if lab.dims != [n] {
        return Err(Error::format(
            OP,
            format!(
                "{labels}: labels are {:?} but there are {n} images",
                lab.dims
            ),
        ));
    }
    let x = img.data.iter().map(|&p| p as f32 / 255.0).collect();
    let labels_usize = lab.data.iter().map(|&l| l as usize).collect();
    Dataset::new(Tensor::new(&[n, h * w], x)?, labels_usize, 10).map_err(|e| match e {
        Error::Label { msg, .. } => Error::format(OP, format!("{labels}: {msg}")),
        other => other,
    })
}

/// Loads MNIST from `dir`, which holds the four original IDX files
/// (`train-images-idx3-ubyte`, …), gzip-compressed (`.gz`) or raw. Pixels
/// are scaled to [0, 1].
///
/// ```no_run
/// let mnist = densegrad::data::load_mnist("data/mnist")?;
/// assert_eq!(mnist.train.x().shape(), &[60000, 784]);
/// assert_eq!(mnist.test.labels()[..3], [7, 2, 1]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<Mnist, Error> {
    let dir = dir.as_ref();
    Ok(Mnist {
        train: load_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        test: load_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    })
}
