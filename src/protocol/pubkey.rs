//! Phase 2, pubkey: learning the members' public keys.
//!
//! Keys are retained on `pubkey/<id>`. A node's id is the first 8 bytes of
//! SHA-256 of its compressed key, so a key announced under someone else's id
//! is visibly false and is refused; the message is signed with the key it
//! carries (proof of possession), and only a member's key is kept (the
//! membership check comes before this module). A key message names the
//! cluster id its sender runs, so a board started with another genesis is
//! named as such. Messages that arrived before their
//! signer's key are replayed once it is known. Because a key message proves
//! itself, any member may pass one on: voters relay the keys of the miner
//! and leader whose solution they back, which may be gone along with their
//! retained key.

use tracing::info;

use super::{gate, Node, Publish, Reject};
use crate::wire::{Body, Envelope, Family, Payload, PubKey};

impl Node {
    pub(crate) fn pubkey_message(&self) -> Publish {
        let payload = match &self.announcements {
            Some((key, _)) => key.clone(),
            None => self.sign(
                0,
                0,
                Payload::PubKey(PubKey {
                    key: self.public,
                    name: self.cfg.name.clone(),
                    cluster: self.cfg.cluster_id(),
                }),
            ),
        };
        Publish {
            topic: self.topics.own(Family::PubKey, self.me),
            payload,
            retain: true,
        }
    }

    pub(crate) fn on_pubkey(
        &mut self,
        env: &Envelope,
        body: &Body,
        pk: &PubKey,
    ) -> Result<(), Reject> {
        gate::key(&self.sigs, &self.cfg.cluster_id(), env, body.sender, pk)?;
        if self
            .members
            .insert_key(body.sender, pk.key, pk.name.clone(), env.encode())
        {
            if body.sender != self.me {
                info!("pubkey: learned the key of {} ({})", pk.name, body.sender);
            }
            self.held.key_arrived(body.sender);
        }
        Ok(())
    }
}
