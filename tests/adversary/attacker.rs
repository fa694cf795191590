//! A misbehaving cluster member for the adversary tests.
//!
//! It holds a real key of its own (so its own signatures are valid and it
//! counts as a member), connects to the same broker as the honest nodes,
//! records everything published in the cluster, and publishes what each
//! attack needs: messages signed with its key under other nodes' ids,
//! challenges it was never elected to issue, stolen seeds, two votes for one
//! round, replays of old messages and undecodable bytes. It speaks MQTT
//! through its own `rumqttc` client, not through the node's driver, so
//! nothing in the node's code can filter what it sends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgeminer::identity::{Identity, NodeId};
use edgeminer::protocol::reference;
use edgeminer::wire::{
    self, Approval, Body, Challenge, ClusterId, Envelope, Family, Payload, Presence, PubKey,
    Solution, Topics, Vote,
};
use rumqttc::{Broker, Client, Event, MqttOptions, Packet, PublishOptions, QoS};

/// One message seen on the broker, decoded when it could be.
#[derive(Clone, Debug)]
pub struct Seen {
    pub topic: String,
    pub payload: Vec<u8>,
    pub body: Option<Body>,
}

pub struct Attacker {
    pub id: Identity,
    /// The cluster id of the genesis that lists the attacker as a member.
    pub cluster_id: ClusterId,
    pub topics: Topics,
    client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Messages kept for replays and lookups (the tests run a few transactions).
const KEEP: usize = 20_000;

impl Attacker {
    /// Connects with `id` (a member of cluster `cluster_id`) and starts
    /// recording the cluster's traffic.
    pub fn connect(
        broker_port: u16,
        cluster: &str,
        cluster_id: ClusterId,
        id: Identity,
    ) -> Attacker {
        let mut opts = MqttOptions::new(
            format!("attacker-{}", id.id),
            Broker::tcp("127.0.0.1", broker_port),
        );
        opts.set_keep_alive(5);
        // Large enough for every attack's own payloads echoed back.
        opts.set_max_packet_size(Some(4 << 20));
        opts.set_request_channel_capacity(1024);
        let (client, mut connection) = Client::builder(opts).build();
        let topics = Topics::new(cluster);
        client
            .subscribe(format!("edgeminer/{cluster}/#"), QoS::AtLeastOnce)
            .expect("the request channel is open: the connection thread has not started");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let sink = seen.clone();
        std::thread::spawn(move || {
            for ev in connection.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let body = Envelope::decode(&p.payload, wire::MAX_CERT_MESSAGE)
                            .ok()
                            .and_then(|e| Body::decode(&e.body).ok());
                        let Ok(mut s) = sink.lock() else { return };
                        if s.len() < KEEP {
                            s.push(Seen {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload.to_vec(),
                                body,
                            });
                        }
                    }
                    Ok(_) => {}
                    // The broker stopped (end of test) or refused us.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Attacker {
            id,
            cluster_id,
            topics,
            client,
            seen,
        }
    }

    pub fn me(&self) -> NodeId {
        self.id.id
    }

    pub fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(
                topic,
                payload,
                PublishOptions::at_least_once().retain(retain),
            )
            .expect("the connection thread runs until the test ends");
    }

    /// `payload` in a body that claims `sender`, signed with our key.
    pub fn signed_as(&self, sender: NodeId, tx: u64, round: u32, payload: Payload) -> Vec<u8> {
        let body = Body {
            sender,
            tx,
            round,
            payload,
        };
        wire::sign(&self.cluster_id, &self.id.key, body.encode())
    }

    /// `payload` signed honestly, under our own id.
    pub fn signed(&self, tx: u64, round: u32, payload: Payload) -> Vec<u8> {
        self.signed_as(self.me(), tx, round, payload)
    }

    /// Joins as a member: our key and an "online" presence, retained.
    pub fn announce(&self, name: &str) {
        let key = self.signed(
            0,
            0,
            Payload::PubKey(PubKey {
                cluster: self.cluster_id,
                key: self.id.public,
                name: name.into(),
            }),
        );
        self.publish(&self.topics.own(Family::PubKey, self.me()), key, true);
        let presence = self.signed(
            0,
            0,
            Payload::Presence(Presence {
                online: true,
                incarnation: 1,
                name: name.into(),
                threads: 1,
                version: env!("CARGO_PKG_VERSION").into(),
            }),
        );
        self.publish(&self.topics.own(Family::Init, self.me()), presence, true);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The ids of the nodes that announced a key, other than us.
    pub fn others(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .seen()
            .iter()
            .filter_map(|s| match &s.body {
                Some(b) if matches!(b.payload, Payload::PubKey(_)) && b.sender != self.me() => {
                    Some(b.sender)
                }
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Waits (bounded) for the first new message after `after` messages
    /// that `pick` accepts.
    pub fn wait_for<T>(
        &self,
        limit: Duration,
        after: usize,
        mut pick: impl FnMut(&Seen) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut from = after;
        while Instant::now() < deadline {
            let seen = self.seen();
            for s in &seen[from.min(seen.len())..] {
                if let Some(t) = pick(s) {
                    return Some(t);
                }
            }
            from = seen.len();
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// How many messages have been recorded so far.
    pub fn mark(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// The next honest election vote: (tx, round, prev).
    pub fn next_vote(&self, limit: Duration, after: usize) -> Option<(u64, u32, [u8; 16])> {
        let me = self.me();
        self.wait_for(limit, after, |s| match &s.body {
            Some(Body {
                sender,
                tx,
                round,
                payload: Payload::Vote(v),
            }) if *sender != me => Some((*tx, *round, v.prev)),
            _ => None,
        })
    }

    /// The next challenge from an honest leader: (tx, round, its body
    /// reference, the challenge itself).
    pub fn next_challenge(
        &self,
        limit: Duration,
        after: usize,
    ) -> Option<(u64, u32, [u8; 16], Challenge)> {
        let me = self.me();
        self.wait_for(limit, after, |s| {
            let env = Envelope::decode(&s.payload, wire::MAX_CERT_MESSAGE).ok()?;
            match &s.body {
                Some(Body {
                    sender,
                    tx,
                    round,
                    payload: Payload::Challenge(c),
                }) if *sender != me => Some((*tx, *round, reference(&env.body), c.clone())),
                _ => None,
            }
        })
    }

    /// The next solution from an honest miner: (its body, the solution).
    pub fn next_solution(&self, limit: Duration, after: usize) -> Option<(Body, Solution)> {
        let me = self.me();
        self.wait_for(limit, after, |s| match &s.body {
            Some(b) if b.sender != me => match &b.payload {
                Payload::Solution(sol) => Some((b.clone(), sol.clone())),
                _ => None,
            },
            _ => None,
        })
    }

    /// Two votes for one round, for different candidates.
    pub fn equivocate(&self, tx: u64, round: u32, prev: [u8; 16], a: NodeId, b: NodeId) {
        let topic = self.topics.own(Family::Election, self.me());
        for candidate in [a, b] {
            let v = self.signed(tx, round, Payload::Vote(Vote { candidate, prev }));
            self.publish(&topic, v, false);
        }
    }

    /// Our own solution to a challenge, mined here.
    pub fn mine(&self, c: &Challenge) -> u64 {
        let t = edgeminer::pow::Template::new(&c.salt, &self.me().0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        edgeminer::pow::engine::best()
            .search(&t, 0, u64::MAX, c.difficulty, &stop)
            .found
            .expect("the seed space holds a seed for any test difficulty")
    }

    /// Approvals of `solution` in voting rounds 0..rounds, signed by us
    /// under every id in `as_ids`.
    pub fn approvals_as(&self, as_ids: &[NodeId], tx: u64, solution: [u8; 16], rounds: u32) {
        for &victim in as_ids {
            for v in 0..rounds {
                let a = self.signed_as(
                    victim,
                    tx,
                    v,
                    Payload::Approval(Approval::approve(solution, v)),
                );
                self.publish(&self.topics.own(Family::Voting, victim), a, false);
            }
        }
    }
}
