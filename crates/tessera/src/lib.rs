//! The `tessera` binary as a library: configuration, the server key, the CLI and `serve`. The
//! binary itself (`main.rs`) only parses arguments and reports errors.
#![deny(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod durin;
pub mod forward_config;
pub mod identity_key;
pub mod key;
pub mod logging;
pub mod openapi;
pub mod redis_checks;
pub mod serve;
