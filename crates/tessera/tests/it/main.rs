//! Black-box tests of the `tessera` binary: real processes, real SQLite files, the real PostgreSQL.

mod admin;
mod audit;
mod cli;
mod cluster;
mod config;
mod durin;
mod faults;
mod forward;
mod keys;
mod limits;
mod openapi;
mod proxy;
mod redis_server;
mod serve;
mod usage;

/// The binary under test; every [`tessera_testkit::TestEnv`] runs it.
const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");
