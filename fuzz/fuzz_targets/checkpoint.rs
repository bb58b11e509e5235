//! The safetensors checkpoint loader on arbitrary bytes: a clean Err, or a
//! load that changed exactly the network's state and nothing else, with a
//! refused load changing nothing.
#![no_main]

use densegrad::{Activation, BatchNorm, Init, Sequential};
use libfuzzer_sys::fuzz_target;

fn state(net: &mut Sequential) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let mut v = Vec::new();
    net.visit_state_ref(&mut |name, t| {
        v.push((
            name.to_string(),
            t.shape().to_vec(),
            t.data().iter().map(|x| x.to_bits()).collect(),
        ))
    });
    v
}

fuzz_target!(|data: &[u8]| {
    let mut net = Sequential::mlp(&[3, 2, 2], Activation::Relu, Init::He, 1)
        .unwrap()
        .with(BatchNorm::new(2).unwrap());
    let before = state(&mut net);
    match net.load_bytes(data) {
        Ok(()) => {
            let after = state(&mut net);
            for (a, b) in before.iter().zip(&after) {
                assert_eq!((&a.0, &a.1), (&b.0, &b.1), "names and shapes never change");
            }
        }
        Err(_) => assert_eq!(before, state(&mut net), "a refused load changes nothing"),
    }
});
