//! Black-box tests of the `tessera` binary: real processes, real SQLite files, the real PostgreSQL.

mod cli;
mod cluster;
mod config;
mod faults;
mod proxy;
mod serve;
mod support;
