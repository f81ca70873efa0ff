//! Rate limiting with DRF's semantics; the trait and the in-process limiter live in
//! `tessera-core` (so that `tessera-redis` implements the shared one without depending on axum).

pub use tessera_core::throttle::{Decision, LimiterError, MemoryRateLimiter, RateLimiter};
