//! `edgeminer bench --signatures`: how fast this machine signs and checks
//! the P-256 signatures the protocol uses, on one core.
//!
//! Mining takes every core, but the protocol's own cost is signatures: a
//! node signs a few messages per transaction and checks every member's, so
//! the time a board needs per transaction, at a given cluster size, is
//! about the number of checks times the figure measured here (see
//! `docs/PERFORMANCE.md`). The messages are the real envelopes, domain
//! separation included, and no check is served from a cache.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::identity::Identity;
use crate::wire::{self, Body, ClusterId, Envelope, Payload};

#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// Signatures made per second, and microseconds each.
    pub signs_per_second: f64,
    pub sign_us: f64,
    /// Signatures checked per second, and microseconds each.
    pub verifies_per_second: f64,
    pub verify_us: f64,
    pub seconds: f64,
}

/// Signs, then checks, a typical approval for `seconds` in all (half each).
pub fn run(seconds: f64) -> SignatureReport {
    let me = Identity::ephemeral(&mut rand_core::OsRng);
    let cluster = ClusterId([7; 16]);
    let body = Body {
        sender: me.id,
        tx: 1234,
        round: 2,
        payload: Payload::Approval(wire::Approval::approve([0x5a; 16], 1)),
    }
    .encode();
    let half = Duration::from_secs_f64(seconds.max(0.02) / 2.0);
    let started = Instant::now();
    let mut signs = 0u64;
    let mut signed = Vec::new();
    while started.elapsed() < half || signs == 0 {
        signed = wire::sign(&cluster, &me.key, body.clone());
        signs += 1;
    }
    let sign_time = started.elapsed().as_secs_f64();
    let env = Envelope::decode(&signed, wire::MAX_PHASE_MESSAGE).expect("our own envelope");
    let key = *me.key.verifying_key();
    let started = Instant::now();
    let mut verifies = 0u64;
    while started.elapsed() < half || verifies == 0 {
        std::hint::black_box(env.verify(&cluster, &key));
        verifies += 1;
    }
    let verify_time = started.elapsed().as_secs_f64();
    SignatureReport {
        signs_per_second: signs as f64 / sign_time,
        sign_us: sign_time * 1e6 / signs as f64,
        verifies_per_second: verifies as f64 / verify_time,
        verify_us: verify_time * 1e6 / verifies as f64,
        seconds: sign_time + verify_time,
    }
}

impl SignatureReport {
    pub fn to_text(&self) -> String {
        format!(
            "P-256 on one core: sign {:.0} µs ({:.0}/s), verify {:.0} µs ({:.0}/s)\n",
            self.sign_us, self.signs_per_second, self.verify_us, self.verifies_per_second
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn measures_both_operations() {
        let r = super::run(0.02);
        assert!(r.verify_us > 0.0 && r.sign_us > 0.0);
        assert!(r.signs_per_second > 0.0 && r.verifies_per_second > 0.0);
        assert!((r.sign_us * r.signs_per_second - 1e6).abs() < 1.0);
        assert!(r.to_text().contains("verify"));
    }
}
