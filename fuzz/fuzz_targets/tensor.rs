//! Tensor construction and reshape from arbitrary shapes and lengths:
//! overflowing products and zero dimensions give Err or a consistent tensor.
#![no_main]

use densegrad::Tensor;
use libfuzzer_sys::fuzz_target;

mod common;
use common::Bytes;

fn shape(b: &mut Bytes<'_>) -> Vec<usize> {
    let ndim = b.size(5);
    (0..ndim)
        .map(|_| match b.u8() % 4 {
            0 => b.size(6),
            1 => b.u32() as usize,
            2 => usize::MAX - b.size(3),
            _ => 1 << b.size(63),
        })
        .collect()
}

fn product(s: &[usize]) -> Option<usize> {
    if s.contains(&0) {
        return Some(0);
    }
    s.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let s = shape(&mut b);
    let len = b.size(64);
    let values: Vec<f32> = (0..len).map(|_| b.f32_bits()).collect();
    match Tensor::new(&s, values.clone()) {
        Ok(t) => {
            assert_eq!(product(&s), Some(len), "accepted {s:?} for {len} values");
            assert_eq!(t.shape(), &s[..]);
            assert_eq!(t.numel(), len);
            let _ = t.to_string();
            let mut t = t;
            let s2 = shape(&mut b);
            let ok = t.reshape(&s2).is_ok();
            assert_eq!(ok, product(&s2) == Some(len), "reshape {s:?} -> {s2:?}");
            assert_eq!(t.shape(), if ok { &s2[..] } else { &s[..] });
            assert_eq!(bits(t.data()), bits(&values), "reshape keeps the data");
        }
        Err(e) => {
            assert_ne!(product(&s), Some(len), "refused a valid shape {s:?}: {e}");
            assert!(e.to_string().starts_with("tensor new: "));
        }
    }
    // try_zeros never allocates more than it may: only small shapes are built.
    if product(&s).is_some_and(|n| n <= 1 << 16) {
        assert!(Tensor::try_zeros(&s).is_ok());
    } else if product(&s).is_none() {
        assert!(Tensor::try_zeros(&s).is_err());
    }
});

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
