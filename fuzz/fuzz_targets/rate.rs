//! Throttle rates: never panic; what parses has at least one request and parses back from its
//! Display to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::Rate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(rate) = text.parse::<Rate>() {
        assert!(rate.requests() >= 1);
        let shown = rate.to_string();
        assert_eq!(shown.parse::<Rate>(), Ok(rate), "{text:?} -> {shown:?}");
        assert_eq!(Rate::new(rate.requests(), rate.period()), Some(rate));
    }
});
