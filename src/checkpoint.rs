//! Checkpoints in the safetensors format: every state tensor of a
//! [`Sequential`] as little-endian f32, named as PyTorch's `state_dict`
//! (`"0.weight"`, `"0.bias"`, …), so `safetensors.numpy.load_file` or
//! `safetensors.torch.load_file` read them by name.
//!
//! Saving writes a temporary file in the destination's directory, flushes it
//! to disk and renames it over the destination: a crash leaves either the
//! old checkpoint or the new one, never half of one. Loading checks every
//! name, dtype and shape before changing anything, so a refused checkpoint
//! leaves the network as it was.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::{Error, Sequential};

impl Sequential {
    /// Saves every state tensor to `path` (safetensors), atomically.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// use densegrad::{Activation, Init, Sequential};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-save-{}.safetensors", std::process::id()));
    /// let mut a = Sequential::mlp(&[4, 3, 2], Activation::Relu, Init::He, 1)?;
    /// a.save(&path)?;
    /// let mut b = Sequential::mlp(&[4, 3, 2], Activation::Relu, Init::He, 2)?;
    /// b.load(&path)?;
    /// let (mut wa, mut wb) = (Vec::new(), Vec::new());
    /// a.visit_state_ref(&mut |_, t| wa.extend_from_slice(t.data()));
    /// b.visit_state_ref(&mut |_, t| wb.extend_from_slice(t.data()));
    /// assert_eq!(wa, wb);
    ///
    /// let mut wider = Sequential::mlp(&[4, 5, 2], Activation::Relu, Init::He, 1)?;
    /// let err = wider.load(&path).unwrap_err();
    /// assert_eq!(err.to_string(), format!(
    ///     "load checkpoint: {}: tensor 0.weight is [4, 3] in the checkpoint but [4, 5] in the network",
    ///     path.display()));
    /// # std::fs::remove_file(&path).unwrap();
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "safetensors")))]
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        const OP: &str = "save checkpoint";
        let path = path.as_ref();
        if path.is_dir() {
            return Err(Error::io(
                OP,
                path,
                std::io::Error::other("is a directory; save needs a file path"),
            ));
        }
        let bytes = self.save_bytes()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::format(OP, format!("{} is not a file path", path.display())))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(OP, path, e)
        })
    }

    /// The bytes of the safetensors file [`save`](Sequential::save) writes.
    /// `Err` if two state tensors share a name (a custom layer whose
    /// `visit_state` reports one name twice).
    ///
    /// ```
    /// use densegrad::{Affine, Sequential, Tensor};
    /// let mut a = Sequential::new().with(Affine::new(Tensor::zeros(&[2, 2]), Tensor::zeros(&[2]))?);
    /// let bytes = a.save_bytes()?;
    /// let mut b = Sequential::new().with(Affine::new(Tensor::zeros(&[2, 2]), Tensor::from_slice(&[1.0, 2.0]))?);
    /// b.load_bytes(&bytes)?;
    /// let mut biases = Vec::new();
    /// b.visit_state_ref(&mut |name, t| if name.ends_with("bias") { biases.extend_from_slice(t.data()) });
    /// assert_eq!(biases, [0.0, 0.0]);
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "safetensors")))]
    pub fn save_bytes(&self) -> Result<Vec<u8>, Error> {
        const OP: &str = "save checkpoint";
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        self.visit_state_ref(&mut |name, t| {
            let bytes = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((name.to_string(), t.shape().to_vec(), bytes));
        });
        let mut names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::format(
                OP,
                format!("two state tensors are named {}; names must be unique", w[0]),
            ));
        }
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::format(OP, format!("tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = HashMap::from([("format".to_string(), "densegrad".to_string())]);
        safetensors::serialize(views, Some(metadata)).map_err(|e| Error::format(OP, e.to_string()))
    }

    /// Loads every state tensor from the safetensors file at `path`.
    ///
    /// Strict, like PyTorch's `load_state_dict`: every tensor of the network
    /// must be in the file with dtype F32 and the same shape, and the file
    /// may hold no others. On any mismatch nothing is changed and the `Err`
    /// names the tensor and both shapes. See [`save`](Sequential::save).
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// use densegrad::{Activation, Init, Sequential};
    /// let path = std::env::temp_dir().join(format!("doc-load-{}.safetensors", std::process::id()));
    /// Sequential::mlp(&[2, 2], Activation::Relu, Init::He, 1)?.save(&path)?;
    /// let mut net = Sequential::mlp(&[2, 2], Activation::Relu, Init::He, 2)?;
    /// net.load(&path)?;
    /// assert!(net.load("/no/such/file").is_err());
    /// # std::fs::remove_file(&path).unwrap();
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "safetensors")))]
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io("load checkpoint", path, e))?;
        // Every refusal names the file, whatever its kind.
        self.load_bytes(&bytes).map_err(|e| match e {
            Error::Format { op, msg } => Error::format(op, format!("{}: {msg}", path.display())),
            Error::Shape { op, msg } => Error::shape(op, format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// [`load`](Sequential::load) from the bytes of a safetensors file.
    ///
    /// ```
    /// # #[cfg(feature = "rand")] {
    /// use densegrad::{Activation, Init, Sequential};
    /// let mut net = Sequential::mlp(&[2, 2], Activation::Relu, Init::He, 0)?;
    /// assert!(net.load_bytes(b"not a checkpoint").is_err());
    /// # }
    /// # Ok::<(), densegrad::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "safetensors")))]
    pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        const OP: &str = "load checkpoint";
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::format(OP, format!("not a safetensors file: {e}")))?;
        // Validate everything first.
        let mut err = None;
        let mut wanted = Vec::new();
        self.visit_state(&mut |s| {
            let (name, t) = (s.name(), s.value());
            if err.is_some() {
                return;
            }
            wanted.push(name.to_string());
            match st.tensor(name) {
                Err(_) => {
                    err = Some(Error::format(
                        OP,
                        format!("the checkpoint has no tensor {name}"),
                    ))
                }
                Ok(v) if v.dtype() != Dtype::F32 => {
                    err = Some(Error::format(
                        OP,
                        format!("tensor {name} is {:?}, expected F32", v.dtype()),
                    ))
                }
                Ok(v) if v.shape() != t.shape() => {
                    err = Some(Error::shape(
                        OP,
                        format!(
                            "tensor {name} is {:?} in the checkpoint but {:?} in the network",
                            v.shape(),
                            t.shape()
                        ),
                    ))
                }
                Ok(_) => {}
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let mut extra: Vec<&str> = st
            .names()
            .into_iter()
            .filter(|n| !wanted.iter().any(|w| w == n))
            .collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(Error::format(
                OP,
                format!(
                    "the checkpoint has tensors the network does not: {}",
                    extra.join(", ")
                ),
            ));
        }
        // Then copy.
        self.visit_state(&mut |mut s| {
            if let Ok(v) = st.tensor(s.name()) {
                for (dst, src) in s.values_mut().iter_mut().zip(v.data().chunks_exact(4)) {
                    *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
                }
            }
        });
        Ok(())
    }
}
