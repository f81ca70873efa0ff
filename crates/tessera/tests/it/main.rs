//! Black-box tests of the `tessera` binary: real processes, real SQLite files, the real PostgreSQL.

mod cli;
mod config;
mod serve;
mod support;
