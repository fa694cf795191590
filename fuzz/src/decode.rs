//! The `decode` target's check: any bytes into the message decoder and
//! the genesis record reader: no panic, no unbounded allocation, and
//! whatever decodes encodes back to a value that decodes the same.

use edgeminer::protocol::Genesis;
use edgeminer::wire::{self, Body, Commit, Envelope, Payload};

/// Checks one input; panics on a broken rule.
pub fn decode(data: &[u8]) {
    // Every size limit a topic family uses.
    for limit in [
        wire::MAX_PHASE_MESSAGE,
        wire::MAX_ROSTER_MESSAGE,
        wire::MAX_CERT_MESSAGE,
    ] {
        let Ok(env) = Envelope::decode(data, limit) else {
            continue;
        };
        assert!(data.len() <= limit);
        let again =
            Envelope::decode(&env.encode(), usize::MAX).expect("a decoded envelope re-encodes");
        assert_eq!(again, env);
        let Ok(body) = Body::decode(&env.body) else {
            continue;
        };
        assert_eq!(Body::decode(&body.encode()).as_ref(), Ok(&body));
        let nested: Vec<&[u8]> = match &body.payload {
            Payload::Challenge(c) => c
                .votes
                .iter()
                .chain(&c.change)
                .map(|b| b.0.as_slice())
                .collect(),
            Payload::Commit(c) => {
                let again = Commit::decode(&c.encode()).expect("a decoded commit re-encodes");
                assert_eq!(&again, c);
                c.confirmations
                    .iter()
                    .map(|b| b.0.as_slice())
                    .chain([c.challenge.0.as_slice(), c.solution.0.as_slice()])
                    .collect()
            }
            _ => Vec::new(),
        };
        for n in nested {
            if let Ok(e) = Envelope::decode(n, wire::MAX_CERT_MESSAGE) {
                let _ = Body::decode(&e.body);
            }
        }
    }
    let _ = Commit::decode(data);
    // The ledger's first record: only its one canonical encoding is read.
    if let Ok(g) = Genesis::decode(data) {
        assert_eq!(g.encode(), data, "a genesis reads only in canonical form");
    }
}
