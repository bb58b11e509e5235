//! The IDX reader on arbitrary bytes (raw and gzip): Ok results are
//! consistent with their header; everything else is a clean Err.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match densegrad::data::read_idx_bytes(data) {
        Ok(idx) => {
            // A zero dimension makes the array empty whatever the others are
            // (so the product is taken zero-first, not left to right).
            let n = if idx.dims.contains(&0) {
                0
            } else {
                idx.dims
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .expect("Ok implies no overflow")
            };
            assert_eq!(idx.data.len(), n);
            assert!(!idx.dims.is_empty());
        }
        Err(e) => {
            assert!(e.to_string().starts_with("read idx: "), "{e}");
        }
    }
});
