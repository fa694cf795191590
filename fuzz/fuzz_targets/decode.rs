//! Any bytes into the message decoder and the genesis record reader: no
//! panic, no unbounded allocation, and whatever decodes encodes back to a
//! value that decodes the same (see `edgeminer_fuzz::decode`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeminer_fuzz::decode(data);
});
