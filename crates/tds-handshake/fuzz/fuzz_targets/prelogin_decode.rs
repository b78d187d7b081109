//! Fuzzes the PRELOGIN decoder on both sides; whatever decodes must re-encode to a payload
//! that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tds_handshake::{Prelogin, Side};

fuzz_target!(|data: &[u8]| {
    for side in [Side::Client, Side::Server] {
        if let Ok(p) = Prelogin::decode(data, side) {
            let again =
                Prelogin::decode(&p.encode(side), side).expect("re-encoded PRELOGIN decodes");
            assert_eq!(again, p);
        }
    }
});
