//! Tessera on Redis (in progress).
