//! Durations and token lifetimes: never panic; what parses is positive, at most 100 years, and
//! parses back from its Display to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::duration::{MAX_DURATION_SECS, format_duration};
use tessera_core::{Ttl, parse_duration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = parse_duration(text) {
        let secs = d.num_seconds();
        assert!(secs > 0 && secs <= MAX_DURATION_SECS, "{text:?} -> {secs}");
        let shown = format_duration(d);
        assert_eq!(parse_duration(&shown), Ok(d), "{text:?} -> {shown:?}");
    }
    if let Ok(ttl) = text.parse::<Ttl>() {
        let shown = ttl.to_string();
        assert_eq!(shown.parse::<Ttl>(), Ok(ttl), "{text:?} -> {shown:?}");
        assert_eq!(Ttl::from_secs(ttl.as_secs()), ttl);
    }
});
