//! edgeminer: a small cluster on one MQTT broker that elects a leader, mines
//! SHA-1 proof-of-work challenges, votes on solutions with signed messages and
//! keeps an agreed, durable ledger.
//!
//! The modules, by layer; each depends only on its own layer and those
//! above it:
//!
//! - the core, no clock, async or global RNG: [`wire`] (messages, topics,
//!   signatures), [`protocol`] (the six phases, the roster, catch-up),
//!   [`pow`] (the proof of work and its engines) and [`identity`] (node ids
//!   and keys; reading and writing the key file is the layer's only IO);
//! - storage: [`store`] (the record file and the ledger on it);
//! - adapters to the outside: [`mqtt`] (the broker, with [`credentials`]),
//!   [`miner`] (threads), [`thermal`], [`service`] (systemd), [`metrics`]
//!   (Prometheus), [`progress`] (the terminal line), [`logging`],
//!   [`signals`], and [`standing`] (the snapshot the displays read);
//! - configuration: [`cli`], [`config`], [`genesis_file`];
//! - the driver that joins them: [`node`];
//! - applications: [`demo`], [`status`], [`admin`], [`report`], [`bench`];
//! - the deterministic simulation of whole clusters of the core: [`sim`].
//!
//! `tests/layers.rs` reads this file and fails when a module names one of
//! a later layer.

// The core.
pub mod identity;
pub mod pow;
pub mod protocol;
pub mod wire;

// Storage.
pub mod store;

// Adapters.
pub mod credentials;
pub mod logging;
pub mod metrics;
pub mod miner;
pub mod mqtt;
pub mod progress;
pub mod service;
pub mod signals;
pub mod standing;
pub mod thermal;

// Configuration.
pub mod cli;
pub mod config;
pub mod genesis_file;

// The driver.
pub mod node;

// Applications.
pub mod admin;
pub mod bench;
pub mod demo;
pub mod doctor;
pub mod report;
pub mod status;

// The simulation.
pub mod sim;
