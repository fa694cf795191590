//! edgeminer: a small cluster on one MQTT broker that elects a leader, mines
//! SHA-1 proof-of-work challenges, votes on solutions with signed messages and
//! keeps an agreed, durable ledger.
//!
//! The modules, by layer; each depends only on those above it:
//!
//! - the core, no clock, async or global RNG: [`wire`] (messages, topics,
//!   signatures), [`protocol`] (the six phases, the roster, catch-up),
//!   [`pow`] (the proof of work and its engines) and [`identity`] (node ids
//!   and keys; reading and writing the key file is the layer's only IO);
//! - storage: [`store`] (the record file and the ledger on it);
//! - adapters to the outside: [`mqtt`] (the broker), [`miner`] (threads),
//!   [`thermal`], [`service`] (systemd), [`metrics`] (Prometheus),
//!   [`progress`] (the terminal line), [`logging`], [`signals`];
//! - the driver that joins them: [`node`];
//! - applications: [`demo`], [`status`], [`admin`], [`report`],
//!   [`bench`], and their configuration ([`cli`], [`config`],
//!   [`credentials`], [`genesis_file`]);
//! - the deterministic simulation of whole clusters of the core: [`sim`].

// The core.
pub mod identity;
pub mod pow;
pub mod protocol;
pub mod wire;

// Storage.
pub mod store;

// Adapters.
pub mod logging;
pub mod metrics;
pub mod miner;
pub mod mqtt;
pub mod progress;
pub mod service;
pub mod signals;
pub mod thermal;

// The driver.
pub mod node;

// Applications and their configuration.
pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod genesis_file;
pub mod report;
pub mod status;

// The simulation.
pub mod sim;
