//! The shipped MNIST, the IDX reader on good and bad bytes, and batches.

use std::io::Read;

use densegrad::data::{load_mnist, read_idx, read_idx_bytes, Dataset};
use densegrad::{Error, Tensor};
use sha2::{Digest, Sha256};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The compressed files match `data/mnist/SHA256SUMS`, and their contents
/// match the uncompressed sums published in `data/mnist/README.md`.
#[test]
fn shipped_mnist_matches_its_checksums() {
    let sums = std::fs::read_to_string(format!("{DIR}/SHA256SUMS")).unwrap();
    let readme = std::fs::read_to_string(format!("{DIR}/README.md")).unwrap();
    let mut checked = 0;
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let gz = std::fs::read(format!("{DIR}/{name}")).unwrap();
        assert_eq!(sha256_hex(&gz), sum, "{name}");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let stem = name.trim_end_matches(".gz");
        let want = format!("{}  {stem}", sha256_hex(&raw));
        assert!(
            readme.contains(&want),
            "uncompressed {stem}: {want} is not in README.md"
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn mnist_loads_with_the_published_first_labels() {
    let m = load_mnist(DIR).unwrap();
    assert_eq!(m.train.x().shape(), &[60000, 784]);
    assert_eq!(m.test.x().shape(), &[10000, 784]);
    assert_eq!(m.train.labels()[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(m.test.labels()[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert!(m.train.x().data().iter().all(|&p| (0.0..=1.0).contains(&p)));
    // Every class is present in both splits.
    for d in [&m.train, &m.test] {
        let mut seen = [0usize; 10];
        d.labels().iter().for_each(|&l| seen[l] += 1);
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn format_msg(r: Result<densegrad::data::Idx, Error>) -> String {
    match r {
        Err(Error::Format { msg, .. }) => msg,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn idx_reads_raw_and_gzip_alike() {
    let raw = idx(&[2, 2], &[1, 2, 3, 4]);
    let a = read_idx_bytes(&raw).unwrap();
    let b = read_idx_bytes(&gzip(&raw)).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.dims, a.data), (vec![2, 2], vec![1, 2, 3, 4]));
    // Zero-sized arrays are valid.
    assert_eq!(
        read_idx_bytes(&idx(&[0, 5], &[])).unwrap().data,
        Vec::<u8>::new()
    );
}

#[test]
fn bad_idx_bytes_are_format_errors() {
    assert!(format_msg(read_idx_bytes(&[]))
        .contains("truncated: the file ends inside the magic number"));
    assert!(format_msg(read_idx_bytes(&[1, 0, 8, 1, 0, 0, 0, 0])).contains("not an IDX file"));
    assert!(format_msg(read_idx_bytes(&[0, 0, 0x0d, 1, 0, 0, 0, 0]))
        .contains("element type 0x0d is not supported"));
    assert!(format_msg(read_idx_bytes(&[0, 0, 8, 0])).contains("0 dimensions"));
    assert!(format_msg(read_idx_bytes(&[0, 0, 8, 2, 0, 0, 0, 1])).contains("inside the dimensions"));
    let e = format_msg(read_idx_bytes(&idx(&[3], &[1, 2])));
    assert_eq!(
        e,
        "truncated: the header promises 3 elements but the file holds 2"
    );
    assert!(format_msg(read_idx_bytes(&idx(&[1], &[1, 2]))).contains("trailing bytes"));
    // A header claiming ~2^64 elements: refused, nothing allocated for it.
    assert!(
        format_msg(read_idx_bytes(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[])))
            .contains("more elements than memory")
    );
    // A header claiming 4 GB on a tiny file is refused from the header (over
    // MAX_IDX_ELEMENTS); one claiming less than the limit but more than the
    // file holds fails after reading what is there.
    assert!(format_msg(read_idx_bytes(&idx(&[u32::MAX], &[7; 10]))).contains("over the limit"));
    assert!(format_msg(read_idx_bytes(&idx(&[1 << 20], &[7; 10]))).contains("holds 10"));
    // Truncated and corrupted gzip streams.
    let gz = gzip(&idx(&[100], &[9; 100]));
    assert!(read_idx_bytes(&gz[..gz.len() / 2]).is_err());
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    assert!(read_idx_bytes(&bad).is_err());
}

#[test]
fn missing_and_corrupt_files_name_the_path() {
    let e = read_idx("/nonexistent/file.idx").unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("/nonexistent/file.idx"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("densegrad-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.idx");
    std::fs::write(&p, idx(&[5], &[1])).unwrap();
    let e = read_idx(&p).unwrap_err().to_string();
    assert!(e.contains("bad.idx") && e.contains("truncated"), "{e}");
    // An MNIST directory whose label file does not match its images.
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx(&[2, 1, 1], &[0, 255]),
    )
    .unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[3], &[0, 1, 2])).unwrap();
    let e = load_mnist(&dir).unwrap_err().to_string();
    assert!(e.contains("labels are [3] but there are 2 images"), "{e}");
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[2], &[0, 10])).unwrap();
    let e = load_mnist(&dir).unwrap_err().to_string();
    assert!(
        e.contains("label 10 at row 1 is out of range for 10 classes"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batches_cover_every_row_once_in_a_seeded_order() {
    let n = 103;
    let d = Dataset::new(
        Tensor::new(&[n, 2], (0..2 * n).map(|v| v as f32).collect()).unwrap(),
        (0..n).map(|i| i % 7).collect(),
        7,
    )
    .unwrap();
    let mut seen = vec![0; n];
    let mut first_rows = Vec::new();
    for (x, labels) in d.batches(10, Some(42)).unwrap() {
        assert_eq!(x.shape()[0], labels.len());
        for (row, &l) in x.data().chunks(2).zip(&labels) {
            let i = row[0] as usize / 2;
            assert_eq!(row[1], row[0] + 1.0);
            assert_eq!(l, i % 7);
            seen[i] += 1;
        }
        first_rows.push(x.data()[0]);
    }
    assert!(seen.iter().all(|&c| c == 1));
    let again: Vec<f32> = d
        .batches(10, Some(42))
        .unwrap()
        .map(|(x, _)| x.data()[0])
        .collect();
    assert_eq!(first_rows, again, "same seed, same order");
    let other: Vec<f32> = d
        .batches(10, Some(43))
        .unwrap()
        .map(|(x, _)| x.data()[0])
        .collect();
    assert_ne!(first_rows, other, "another seed, another order");
    assert!(d.batches(0, None).is_err());
}

/// A gzip bomb: a small file whose header claims 4 G elements, followed by
/// megabytes of compressed zeros. It is refused from its header, before any
/// of the zeros are decompressed (issue 11: it used to grow to 683 MB).
#[test]
fn a_gzip_bomb_is_refused_from_its_header() {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&[0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0]).unwrap();
    e.write_all(&vec![0u8; 32 << 20]).unwrap();
    let gz = e.finish().unwrap();
    assert!(gz.len() < 100_000, "{} bytes", gz.len());
    let err = read_idx_bytes(&gz).unwrap_err().to_string();
    assert_eq!(
        err,
        "read idx: the header claims [65536, 65536] = 4294967296 elements, over the limit of 1073741824 (data::MAX_IDX_ELEMENTS)"
    );
}
