//! The observer on whole synthetic transcripts, and chunking invariance.

mod common;

use common::{Step, all_transcripts, observation, observe, observe_chunked};
use proptest::prelude::*;
use tds_handshake::{
    Alert, AlertDescription, Direction, Encryption, Observer, ParseStopReason, Phase, TlsFraming,
    TlsVersion,
};

#[test]
fn tds7_full_encryption_over_tls12() {
    let o = observe(&common::transcript_tds7_tls12());
    assert!(
        o.is_passive(),
        "the login went inside TLS in both directions"
    );
    let obs = *o.observation();
    assert_eq!(obs.phase, Phase::LoginSent);
    assert_eq!(obs.started_with_tls, Some(false));
    assert_eq!(
        obs.client_prelogin.unwrap().encryption,
        Some(Encryption::REQ)
    );
    assert_eq!(
        obs.server_prelogin.unwrap().encryption,
        Some(Encryption::ON)
    );
    let ch = obs.client_hello.unwrap();
    assert_eq!(ch.legacy_version, TlsVersion::TLS12);
    assert!(ch.supported_versions_ext);
    assert!(ch.offered_versions.contains(TlsVersion::TLS13));
    assert!(ch.offered_versions.contains(TlsVersion::TLS12));
    assert!(!ch.offered_versions.contains(TlsVersion::TLS11));
    assert!(ch.sni && !ch.alpn_offered && !ch.alpn_tds8);
    assert_eq!(ch.cipher_suites, 7);
    let sh = obs.server_hello.unwrap();
    assert_eq!(sh.selected_version, TlsVersion::TLS12);
    assert_eq!(sh.alpn_tds8, None);
    assert_eq!(obs.tls_framing, Some(TlsFraming::WrappedPrelogin));
    assert_eq!((obs.first_alert, obs.alerts), (None, 0));
    assert_eq!(obs.parse_stopped, None);
    assert!(!obs.login_only);
    let total = |dir| -> u64 {
        common::transcript_tds7_tls12()
            .iter()
            .map(|s| match (s, dir) {
                (Step::Client(b), Direction::ClientToServer)
                | (Step::Server(b), Direction::ServerToClient) => b.len() as u64,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(obs.client_bytes, total(Direction::ClientToServer));
    assert_eq!(obs.server_bytes, total(Direction::ServerToClient));
}

#[test]
fn login_only_server_answers_in_plaintext() {
    let o = observe(&common::transcript_login_only());
    let obs = o.observation();
    assert!(obs.login_only);
    assert_eq!(obs.phase, Phase::LoggedIn, "LOGINACK + DONE seen in clear");
    assert_eq!(
        obs.client_prelogin.unwrap().encryption,
        Some(Encryption::OFF)
    );
    assert_eq!(
        obs.server_prelogin.unwrap().encryption,
        Some(Encryption::OFF)
    );
    assert!(o.is_passive());
}

#[test]
fn strict_starts_with_a_client_hello_offering_tds8() {
    let o = observe(&common::transcript_strict());
    let obs = o.observation();
    assert_eq!(obs.started_with_tls, Some(true));
    assert_eq!(obs.phase, Phase::LoginSent);
    assert_eq!(obs.client_prelogin, None, "the PRELOGIN is inside TLS");
    assert_eq!(obs.server_prelogin, None);
    let ch = obs.client_hello.unwrap();
    assert!(ch.alpn_offered && ch.alpn_tds8 && ch.sni);
    assert_eq!(
        obs.server_hello.unwrap().selected_version,
        TlsVersion::TLS13
    );
    assert_eq!(obs.server_hello.unwrap().legacy_version, TlsVersion::TLS12);
    assert_eq!(obs.tls_framing, Some(TlsFraming::Raw));
    assert_eq!(obs.parse_stopped, None);
}

#[test]
fn strict_phases_step_by_step() {
    let steps = common::transcript_strict();
    let mut o = Observer::new();
    let expected = [
        Phase::PreloginSent,
        Phase::TlsHandshake,
        Phase::LoginSent,
        Phase::LoginSent,
        Phase::LoginSent,
    ];
    for (step, phase) in steps.iter().zip(expected) {
        observe_chunked(&mut o, std::slice::from_ref(step), &[]);
        assert_eq!(o.phase(), phase);
    }
}

#[test]
fn tds7_phases_step_by_step() {
    let steps = common::transcript_tds7_tls12();
    let mut o = Observer::new();
    let expected = [
        Phase::PreloginSent,
        Phase::PreloginReplied,
        Phase::TlsHandshake,
        Phase::TlsHandshake,
        Phase::TlsHandshake,
        Phase::TlsHandshake,
        Phase::LoginSent,
        Phase::LoginSent,
    ];
    for (i, (step, phase)) in steps.iter().zip(expected).enumerate() {
        observe_chunked(&mut o, std::slice::from_ref(step), &[]);
        assert_eq!(o.phase(), phase, "after step {i}");
        assert_eq!(o.is_passive(), i == 7, "after step {i}");
    }
}

#[test]
fn force_encryption_mismatch_then_server_close() {
    let obs = observation(&common::transcript_force_encryption_mismatch());
    assert_eq!(obs.phase, Phase::PreloginReplied);
    assert_eq!(
        obs.client_prelogin.unwrap().encryption,
        Some(Encryption::NOT_SUP)
    );
    assert_eq!(
        obs.server_prelogin.unwrap().encryption,
        Some(Encryption::REQ)
    );
    assert!(obs.server_eof);
    assert_eq!(obs.parse_stopped, None);
}

#[test]
fn wrapped_server_alert_40() {
    let obs = observation(&common::transcript_server_alert());
    assert_eq!(obs.phase, Phase::TlsHandshake);
    let a = obs.first_alert.unwrap();
    assert_eq!(a.sender, Direction::ServerToClient);
    assert_eq!(a.framing, TlsFraming::WrappedPrelogin);
    assert_eq!(a.alert, Alert::fatal(AlertDescription::HANDSHAKE_FAILURE));
    assert_eq!(obs.tls_framing, Some(TlsFraming::WrappedPrelogin));
    assert!(
        obs.client_hello
            .unwrap()
            .offered_versions
            .contains(TlsVersion::TLS12)
    );
    assert_eq!(obs.server_hello, None);
}

#[test]
fn raw_client_alert_70_after_old_server_hello() {
    let obs = observation(&common::transcript_client_alert());
    assert_eq!(
        obs.server_hello.unwrap().selected_version,
        TlsVersion::TLS10
    );
    let a = obs.first_alert.unwrap();
    assert_eq!(a.sender, Direction::ClientToServer);
    assert_eq!(a.framing, TlsFraming::Raw);
    assert_eq!(a.alert, Alert::fatal(AlertDescription::PROTOCOL_VERSION));
    assert_eq!(obs.alerts, 1);
    assert!(obs.client_eof);
}

#[test]
fn server_wrapping_tls_in_tabular_packets_is_tolerated() {
    let mut steps = common::transcript_tds7_tls12();
    for step in &mut steps {
        if let Step::Server(b) = step
            && b.first() == Some(&0x12)
        {
            // Retype every packet header of the wrapped server flights to 0x04.
            let mut i = 0;
            while i + 8 <= b.len() {
                let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
                b[i] = 0x04;
                i += len;
            }
        }
    }
    let obs = observation(&steps);
    assert_eq!(obs.tls_framing, Some(TlsFraming::WrappedTabular));
    assert_eq!(
        obs.server_hello.unwrap().selected_version,
        TlsVersion::TLS12
    );
    assert_eq!(obs.phase, Phase::LoginSent);
}

#[test]
fn non_tds_first_byte_stops_parsing() {
    let mut o = Observer::new();
    o.client_bytes(b"GET / HTTP/1.1\r\n");
    let stop = o.observation().parse_stopped.unwrap();
    assert_eq!(stop.reason, ParseStopReason::NotTds { first_byte: b'G' });
    assert_eq!(
        (stop.direction, stop.offset),
        (Direction::ClientToServer, 0)
    );
    assert_eq!(o.observation().started_with_tls, None);
    assert_eq!(o.observation().client_bytes, 16);
}

#[test]
fn truncated_reply_at_eof_is_reported() {
    let mut o = Observer::new();
    o.client_bytes(&common::tiberius_prelogin(0x01));
    let reply = common::server_reply(Encryption::ON);
    o.server_bytes(&reply[..20]);
    o.eof(Direction::ServerToClient);
    let stop = o.observation().parse_stopped.unwrap();
    assert_eq!(stop.reason, ParseStopReason::TruncatedAtEof);
    assert_eq!(stop.offset, 20);
    assert_eq!(o.phase(), Phase::PreloginSent);
}

#[test]
fn malformed_reply_is_a_parse_stop_not_a_phase() {
    let mut o = Observer::new();
    o.client_bytes(&common::tiberius_prelogin(0x01));
    // A reply with no terminator: VERSION entry then data.
    let payload = [0x00, 0x00, 0x05, 0x00, 0x06, 0x10, 0x00];
    o.server_bytes(&common::message(
        tds_handshake::PacketType::TabularResult,
        &payload,
        4096,
    ));
    let stop = o.observation().parse_stopped.unwrap();
    assert!(matches!(stop.reason, ParseStopReason::PreloginInvalid(_)));
    assert_eq!(o.phase(), Phase::PreloginSent);
}

#[test]
fn oversized_client_hello_gives_up_without_allocating_more() {
    let mut o = Observer::new();
    o.client_bytes(&common::tiberius_prelogin(0x01));
    o.server_bytes(&common::server_reply(Encryption::ON));
    let hello = common::handshake(1, &vec![0u8; 5000]);
    let mut records = Vec::new();
    for part in hello.chunks(4000) {
        records.extend(common::record(0x16, 0x0303, part));
    }
    o.client_bytes(&common::message(
        tds_handshake::PacketType::PreLogin,
        &records,
        4096,
    ));
    let stop = o.observation().parse_stopped.unwrap();
    assert_eq!(stop.reason, ParseStopReason::HelloTooLarge);
    assert_eq!(o.phase(), Phase::TlsHandshake, "framing is still followed");
    assert_eq!(o.observation().client_hello, None);
}

#[test]
fn mark_logged_in_makes_the_observer_passive() {
    let mut o = observe(&common::transcript_force_encryption_mismatch()[..2]);
    assert!(!o.is_passive());
    o.mark_logged_in();
    assert!(o.is_passive());
    assert_eq!(o.phase(), Phase::LoggedIn);
    o.client_bytes(&[0xFF; 100]);
    assert_eq!(o.observation().parse_stopped, None);
}

/// Cases for the chunking property; CI runs it as is.
const CHUNKING_CASES: u32 = 256;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CHUNKING_CASES))]

    /// Whatever the split points, every transcript yields the same observation as fed whole.
    #[test]
    fn chunking_does_not_change_the_observation(
        sizes in proptest::collection::vec(0usize..64, 1..24),
        big in 1usize..3000,
    ) {
        let mut sizes = sizes;
        sizes.push(big);
        for (name, steps) in all_transcripts() {
            let whole = observe(&steps);
            let mut chunked = Observer::new();
            observe_chunked(&mut chunked, &steps, &sizes);
            prop_assert_eq!(whole.observation(), chunked.observation(), "{}", name);
            prop_assert_eq!(whole.is_passive(), chunked.is_passive(), "{}", name);
        }
    }
}
