//! Any bytes as the broker's choices and a rogue member's messages for a
//! small cluster of pure protocol nodes (see `edgeminer_fuzz::Cluster`):
//! no panic, agreement among the honest nodes, every commit valid.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeminer_fuzz::Cluster::new().run(data);
});
