//! Fuzzes the emulator's LOGIN7 parser: the message comes from the peer, so no input may
//! panic it, and whatever it accepts must stay within the bounds of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tds_emulator::login7::{Login7, MAX_LOGIN7};

fuzz_target!(|data: &[u8]| {
    let Ok(login) = Login7::parse(data) else {
        return;
    };
    // Accepted input is never over the limit, and every string is a slice of it: at most
    // one UTF-16 unit per two input bytes (lossy decoding never adds units).
    assert!(data.len() <= MAX_LOGIN7);
    for field in [
        &login.host_name,
        &login.user,
        login.password(),
        &login.app_name,
        &login.server_name,
        &login.library_name,
        &login.language,
        &login.database,
    ] {
        assert!(field.encode_utf16().count() * 2 <= data.len());
    }
});
