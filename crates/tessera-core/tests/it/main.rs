//! tessera-core's integration tests, one binary.

mod humanize;
mod usernames;
