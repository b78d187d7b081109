//! Fuzzes the Observer with interleaved writes in both directions. The first byte of each
//! write record picks the direction and length, so the fuzzer controls the chunking too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tds_handshake::{Direction, Observer};

fuzz_target!(|data: &[u8]| {
    let mut observer = Observer::new();
    let mut rest = data;
    let (mut client, mut server) = (0u64, 0u64);
    while let Some((&control, tail)) = rest.split_first() {
        let len = usize::from(control & 0x7F).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        if control & 0x80 == 0 {
            observer.client_bytes(chunk);
            client += chunk.len() as u64;
        } else {
            observer.server_bytes(chunk);
            server += chunk.len() as u64;
        }
        rest = tail;
    }
    observer.eof(Direction::ServerToClient);
    observer.eof(Direction::ClientToServer);
    let seen = observer.observation();
    assert_eq!((seen.client_bytes, seen.server_bytes), (client, server));
    assert!(observer.is_passive());
});
