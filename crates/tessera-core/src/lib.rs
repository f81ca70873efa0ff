//! Tessera's domain: users, API clients and their tokens, the token codec, durations and rates,
//! settings, events and the [`store`] traits every backend implements.
//!
//! This crate does no I/O (beyond asking the OS for random bytes), depends on no web framework and
//! makes no async-runtime choice. Everything that parses user input — [`Ttl`], [`Rate`],
//! [`ClientName`], [`Username`] — parses once into a type that is trusted afterwards.
//!
//! ```
//! use tessera_core::{Rate, Ttl, ServerKey, TokenCodec};
//!
//! let rate: Rate = "100/h".parse().unwrap();
//! assert_eq!(rate.to_string(), "100/h");
//! assert!("2/minute".parse::<Rate>().unwrap_err().to_string().contains("invalid period 'minute'"));
//!
//! let ttl: Ttl = "1d 2h".parse().unwrap();
//! assert_eq!(ttl.to_string(), "1d 2h");
//!
//! let codec = TokenCodec::new(ServerKey::generate(), "tsr_", 64).unwrap();
//! let issued = codec.issue();
//! assert_eq!(issued.token.expose().len(), 64);
//! // The store only ever sees the digest; the token itself is re-derived from the seed.
//! assert_eq!(codec.parse(issued.token.expose()).unwrap(), issued.digest);
//! let again = codec.rederive(issued.key_id, &issued.seed, &issued.digest).unwrap();
//! assert_eq!(again.expose(), issued.token.expose());
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod bus;
pub mod clock;
pub mod duration;
pub mod event;
pub mod forward;
pub mod humanize;
pub mod model;
pub mod net;
pub mod password;
pub mod rate;
pub mod route_rules;
pub mod search;
pub mod settings;
pub mod split;
pub mod store;
pub mod throttle;
pub mod token;
pub mod usage;

pub use audit::{AuditLog, AuditQuery, AuditRecord, AuditSink};
pub use clock::{Clock, ManualClock, SystemClock};
pub use duration::{Ttl, parse_duration};
pub use event::{Actor, Event, EventKind, Revoker};
pub use humanize::expires_in_str;
pub use model::{
    AuthToken, Client, ClientId, ClientName, Devices, NewClient, NewToken, NewUser, OnDeviceLimit, TokenId, User,
    UserId, Username,
};
pub use rate::{Period, Rate};
pub use search::{
    PageAt, SortKey, TokenCursor, TokenPage, TokenSearch, TokenSort, TokenStatus, UserPage, UserPageAt, UserSearch,
};
pub use settings::{LegacyTokens, Settings};
pub use store::{ClientUpdate, DeviceToken, Invalidation, Store, StoreError, TokenFilter, TokenWithOwner};
pub use token::{
    IssuedToken, KeyId, KeyRing, MalformedToken, ServerKey, TokenCodec, TokenDigest, TokenSecret, TokenSeed,
};
pub use usage::{AuthOutcome, DailyUsage, LoginOutcome, UsageBatch, UsageCounts, UsageLog, UsageQuery, UsageSink};
