//! The IDX reader on arbitrary bytes (raw and gzip): Ok results are
//! consistent with their header; everything else is a clean Err.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match densegrad::data::read_idx_bytes(data) {
        Ok(idx) => {
            let n: usize = idx.dims.iter().product();
            assert_eq!(idx.data.len(), n);
            assert!(!idx.dims.is_empty());
        }
        Err(e) => {
            assert!(e.to_string().starts_with("read idx: "), "{e}");
        }
    }
});
