//! edgeminer: a small cluster on one MQTT broker that elects a leader, mines
//! SHA-1 proof-of-work challenges, votes on solutions with signed messages and
//! keeps an agreed, durable ledger.

pub mod admin;
pub mod bench;
pub mod chain;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod genesis_file;
pub mod identity;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod miner;
pub mod mqtt;
pub mod node;
pub mod pow;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod service;
pub mod signals;
pub mod sim;
pub mod status;
pub mod thermal;
pub mod wire;
