//! tessera-core's integration tests, one binary.

mod django_hashes;
mod humanize;
mod usernames;
