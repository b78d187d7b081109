//! The test vectors of tds-handshake.md §9 decode to the documented values, and the
//! PRELOGIN ones re-encode to the exact same bytes.

mod common;

use common::{V2, V9, V11_WRAPPED, hex, utf16};
use tds_handshake::{
    Alert, AlertDescription, AlertLevel, Direction, Encryption, HEADER_LEN, MessageReassembler,
    Observer, PacketHeader, PacketType, Phase, Prelogin, RecordHeader, Side, ThreadId, TlsFraming,
    TlsVersion, Version,
};

const V1: &str = "12 01 00 2F 00 00 01 00 00 00 1A 00 06 01 00 20 00 01 02 00 21 00 01 03 00 22 00 04 04 00 26 00 01 FF
09 00 00 00 00 00 | 01 | 00 | B8 0D 00 00 | 01";
const V1B: &str =
    "12 01 00 34 00 00 01 00 00 00 15 00 06 01 00 1B 00 01 02 00 1C 00 0C 03 00 28 00 04 FF
08 00 01 55 00 00 | 00 | 4D 53 53 51 4C 53 65 72 76 65 72 00 | 80 19 00 00";
const V3: &str = "04 01 00 2b 00 00 01 00 00 00 1a 00 06 01 00 20 00 01 02 00 21 00 01 03 00 22 00 00 04 00 22 00 01 ff 0a 00 15 88 00 00 02 00 00";
const V3B: &str = "04 01 00 31 00 00 01 00 00 00 1f 00 06 01 00 25 00 01 02 00 26 00 01 03 00 27 00 00 04 00 27 00 01 06 00 28 00 01 ff 0c 00 14 e5 00 00 02 00 00 01";
const V5: &str = "04 01 00 2b 00 00 01 00 00 00 1a 00 06 01 00 20 00 01 02 00 21 00 01 03 00 22 00 00 04 00 22 00 01 ff 10 00 10 7c 00 00 02 00 00";
const V7: &str = "04 01 00 33 00 00 01 00 81 01 00 00 00 00 00 20 00 A7 03 00 09 04 D0 00 34 03 62 00 61 00 72 00 D1 03 00 66 6F 6F FD 10 00 C1 00 01 00 00 00 00 00 00 00";
const V8: &str = "04 01 00 27 00 00 01 00 FF 11 00 C1 00 01 00 00 00 00 00 00 00 79 00 00 00 00 FE 00 00 E0 00 00 00 00 00 00 00 00 00";

/// Decodes one whole-packet message and re-encodes it byte for byte.
fn prelogin_of(bytes: &[u8], side: Side) -> Prelogin {
    let header = PacketHeader::decode(bytes).unwrap();
    assert_eq!(header.payload_len(), bytes.len() - HEADER_LEN);
    let payload = &bytes[HEADER_LEN..];
    let p = Prelogin::decode(payload, side).unwrap();
    assert_eq!(p.encode(side), payload, "re-encoding reproduces the vector");
    p
}

fn version(major: u8, minor: u8, build: u16) -> Version {
    Version {
        major,
        minor,
        build,
        sub_build: 0,
    }
}

#[test]
fn v1_ms_tds_4_1_client_prelogin() {
    let bytes = hex(V1);
    let h = PacketHeader::decode(&bytes).unwrap();
    assert_eq!(
        (h.packet_type, h.status.0, h.length, h.spid, h.packet_id),
        (0x12, 1, 47, 0, 1)
    );
    let p = prelogin_of(&bytes, Side::Client);
    assert_eq!(p.version, version(9, 0, 0));
    assert_eq!(p.encryption, Some(Encryption::ON));
    assert_eq!(p.instance, Some(vec![]));
    assert_eq!(p.thread_id, Some(ThreadId::Id(0x0DB8)));
    assert_eq!(p.mars, Some(1));
    assert_eq!(
        (p.trace_id, p.fed_auth_required, p.nonce),
        (None, None, None)
    );
}

#[test]
fn v1b_ms_sstds_older_client_prelogin_with_instance_name() {
    let p = prelogin_of(&hex(V1B), Side::Client);
    assert_eq!(p.version, version(8, 0, 341));
    assert_eq!(p.encryption, Some(Encryption::OFF));
    assert_eq!(p.instance.as_deref(), Some(&b"MSSQLServer"[..]));
    assert_eq!(p.thread_id, Some(ThreadId::Id(0x1980)));
    assert_eq!(p.mars, None);
}

#[test]
fn v2_tiberius_client_prelogin() {
    let bytes = hex(V2);
    let h = PacketHeader::decode(&bytes).unwrap();
    assert_eq!((h.packet_type, h.length, h.packet_id), (0x12, 47, 0));
    let p = prelogin_of(&bytes, Side::Client);
    assert_eq!(
        p,
        Prelogin::client_request(version(0, 0, 0x0D00), Encryption::REQ)
    );
}

#[test]
fn v3_sql_server_2008_reply() {
    let bytes = hex(V3);
    let h = PacketHeader::decode(&bytes).unwrap();
    assert_eq!(
        (h.packet_type, h.status.0, h.length, h.spid, h.packet_id),
        (0x04, 1, 43, 0, 1)
    );
    let p = prelogin_of(&bytes, Side::Server);
    assert_eq!(p.version, version(10, 0, 5512));
    assert_eq!(p.encryption, Some(Encryption::NOT_SUP));
    assert_eq!(p.instance, Some(vec![0]));
    assert_eq!(p.thread_id, Some(ThreadId::Empty));
    assert_eq!(p.mars, Some(0));
    assert_eq!(
        p,
        Prelogin::server_reply(version(10, 0, 5512), Encryption::NOT_SUP)
    );
}

#[test]
fn v3b_pytds_fedauth_reply() {
    let p = prelogin_of(&hex(V3B), Side::Server);
    assert_eq!(p.version, version(12, 0, 5349));
    assert_eq!(p.encryption, Some(Encryption::NOT_SUP));
    assert_eq!(p.fed_auth_required, Some(1));
    assert_eq!(p.thread_id, Some(ThreadId::Empty));
}

#[test]
fn v5_emulator_reply_is_exactly_what_server_reply_encodes() {
    let v = version(16, 0, 4220);
    let mut out = Vec::new();
    let payload = Prelogin::server_reply(v, Encryption::NOT_SUP).encode(Side::Server);
    tds_handshake::encode_message(PacketType::TabularResult, 0, &payload, 4096, &mut out);
    assert_eq!(out, hex(V5));
    // ENCRYPT_ON differs only in payload byte 0x20 (packet byte 0x28).
    let mut on = hex(V5);
    on[0x28] = 0x01;
    assert_eq!(
        prelogin_of(&on, Side::Server).encryption,
        Some(Encryption::ON)
    );
}

#[test]
fn v11_raw_alerts() {
    let cases = [
        (
            0x28,
            AlertDescription::HANDSHAKE_FAILURE,
            "handshake_failure",
        ),
        (0x46, AlertDescription::PROTOCOL_VERSION, "protocol_version"),
        (
            0x47,
            AlertDescription::INSUFFICIENT_SECURITY,
            "insufficient_security",
        ),
        (0x30, AlertDescription::UNKNOWN_CA, "unknown_ca"),
    ];
    for (byte, description, name) in cases {
        let bytes = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, byte];
        let h = RecordHeader::parse(&bytes).unwrap();
        assert!(h.is_plausible());
        assert_eq!(
            (h.content_type, h.version, h.length),
            (0x15, TlsVersion::TLS12, 2)
        );
        let alert = Alert::parse(&bytes[5..]).unwrap();
        assert_eq!(
            alert,
            Alert {
                level: AlertLevel::Fatal,
                description
            }
        );
        assert_eq!(alert.description.name(), name);
        assert_eq!(alert.to_record(TlsVersion::TLS12), bytes);
    }
}

#[test]
fn v11_wrapped_alert_decodes_as_prelogin_packet_holding_a_record() {
    let bytes = hex(V11_WRAPPED);
    let h = PacketHeader::decode(&bytes).unwrap();
    assert_eq!((h.packet_type, h.length, h.packet_id), (0x12, 15, 1));
    assert!(h.is_eom());
    let record = &bytes[HEADER_LEN..];
    assert_eq!(RecordHeader::parse(record).unwrap().content_type, 0x15);
    assert_eq!(
        Alert::parse(&record[5..]),
        Some(Alert::fatal(AlertDescription::HANDSHAKE_FAILURE))
    );
}

/// V4 rebuilt from the token listing of tds-handshake.md §9: the lengths it gives add up
/// to the 429 bytes of the real capture.
fn v4() -> Vec<u8> {
    let mut p = Vec::new();
    let b_varchar = |s: &str| {
        let mut v = vec![u8::try_from(s.encode_utf16().count()).unwrap()];
        v.extend(utf16(s));
        v
    };
    let us_varchar = |s: &str| {
        let mut v = u16::try_from(s.encode_utf16().count())
            .unwrap()
            .to_le_bytes()
            .to_vec();
        v.extend(utf16(s));
        v
    };
    let token = |p: &mut Vec<u8>, t: u8, body: &[u8]| {
        p.push(t);
        p.extend(u16::try_from(body.len()).unwrap().to_le_bytes());
        p.extend_from_slice(body);
    };
    let info = |number: u32, state: u8, msg: &str| {
        let mut b = number.to_le_bytes().to_vec();
        b.extend([state, 0]);
        b.extend(us_varchar(msg));
        b.extend(b_varchar("MSSQLHV30"));
        b.push(0);
        b.extend(1u32.to_le_bytes());
        b
    };
    let mut env = vec![1];
    env.extend(b_varchar("SubmissionPortal"));
    env.extend(b_varchar("master"));
    token(&mut p, 0xE3, &env);
    token(
        &mut p,
        0xAB,
        &info(5701, 2, "Changed database context to 'SubmissionPortal'."),
    );
    token(&mut p, 0xE3, &hex("07 05 09 04 00 01 00 00"));
    let mut lang = vec![2];
    lang.extend(b_varchar("us_english"));
    lang.push(0);
    token(&mut p, 0xE3, &lang);
    token(
        &mut p,
        0xAB,
        &info(5703, 1, "Changed language setting to us_english."),
    );
    let mut ack = hex("01 73 0b 00 03");
    ack.extend(b_varchar("Microsoft SQL Server\0\0"));
    ack.extend(hex("0a 00 15 88"));
    token(&mut p, 0xAD, &ack);
    let mut size = vec![4];
    size.extend(b_varchar("4096"));
    size.extend(b_varchar("4096"));
    token(&mut p, 0xE3, &size);
    p.extend(hex("fd 00 00 00 00 00 00 00 00 00 00 00 00"));
    let mut packet = hex("04 01 00 00 00 5a 01 00");
    packet.extend(p);
    let len = u16::try_from(packet.len()).unwrap().to_be_bytes();
    packet[2..4].copy_from_slice(&len);
    packet
}

/// V6 rebuilt from the MS-TDS §4.4 token order (empty server name): 353 bytes.
fn v6() -> Vec<u8> {
    let b_varchar = |s: &str| {
        let mut v = vec![u8::try_from(s.encode_utf16().count()).unwrap()];
        v.extend(utf16(s));
        v
    };
    let token = |p: &mut Vec<u8>, t: u8, body: &[u8]| {
        p.push(t);
        p.extend(u16::try_from(body.len()).unwrap().to_le_bytes());
        p.extend_from_slice(body);
    };
    let info = |number: u32, state: u8, msg: &str| {
        let mut b = number.to_le_bytes().to_vec();
        b.extend([state, 0]);
        b.extend(u16::try_from(msg.len()).unwrap().to_le_bytes());
        b.extend(utf16(msg));
        b.extend([0, 0]); // server name, proc name: empty
        b.extend(1u32.to_le_bytes());
        b
    };
    let mut p = Vec::new();
    let mut env = vec![1];
    env.extend(b_varchar("master"));
    env.extend(b_varchar("master"));
    token(&mut p, 0xE3, &env);
    token(
        &mut p,
        0xAB,
        &info(5701, 2, "Changed database context to 'master'."),
    );
    token(&mut p, 0xE3, &hex("07 05 09 04 d0 00 34 00"));
    let mut lang = vec![2];
    lang.extend(b_varchar("us_english"));
    lang.push(0);
    token(&mut p, 0xE3, &lang);
    let mut size = vec![4];
    size.extend(b_varchar("4096"));
    size.extend(b_varchar("4096"));
    token(&mut p, 0xE3, &size);
    token(
        &mut p,
        0xAB,
        &info(5703, 1, "Changed language setting to us_english."),
    );
    let mut ack = hex("01 72 09 00 02");
    ack.extend(b_varchar("Microsoft SQL Server\0\0"));
    ack.extend(hex("09 00 00 00"));
    token(&mut p, 0xAD, &ack);
    p.extend(hex("fd 00 00 00 00 00 00 00 00 00 00 00 00"));
    let mut packet = hex("04 01 00 00 00 00 01 00");
    packet.extend(p);
    let len = u16::try_from(packet.len()).unwrap().to_be_bytes();
    packet[2..4].copy_from_slice(&len);
    packet
}

fn v10() -> Vec<u8> {
    let mut b = hex("04 01 00 62 00 00 01 00 aa 4a 00 18 48 00 00 01 0e 1b 00");
    b.extend(utf16("Login failed for user 'sa'."));
    b.push(3);
    b.extend(utf16("EMU"));
    b.extend(hex("00 01 00 00 00 fd 02 00 00 00 00 00 00 00 00 00 00 00"));
    b
}

/// (vector, total length, spid) for the server responses V4, V6-V10.
fn responses() -> Vec<(&'static str, Vec<u8>, usize, u16)> {
    vec![
        ("V4", v4(), 429, 0x5a),
        ("V6", v6(), 353, 0),
        ("V7", hex(V7), 0x33, 0),
        ("V8", hex(V8), 0x27, 0),
        ("V9", hex(V9), 0x4e, 0x33),
        ("V10", v10(), 0x62, 0),
    ]
}

#[test]
fn v4_v6_to_v10_decode_as_single_packet_tabular_messages() {
    for (name, bytes, len, spid) in responses() {
        assert_eq!(bytes.len(), len, "{name} length");
        let h = PacketHeader::decode(&bytes).unwrap();
        assert_eq!(h.known_type(), Some(PacketType::TabularResult), "{name}");
        assert_eq!(
            (usize::from(h.length), h.spid, h.packet_id),
            (len, spid, 1),
            "{name}"
        );
        assert!(h.is_eom(), "{name}");
        let mut r = MessageReassembler::new(4096);
        for chunk in bytes.chunks(7) {
            r.push(chunk).unwrap();
        }
        let m = r.next_message().unwrap().unwrap();
        assert_eq!(
            (m.packet_type, m.packets, m.payload.as_slice()),
            (0x04, 1, &bytes[8..])
        );
        assert!(r.next_message().is_none());
    }
}

/// An unencrypted login (client NOT_SUP, server NOT_SUP), then the response.
fn observe_login_response(response: &[u8]) -> Observer {
    let mut o = Observer::new();
    o.client_bytes(&common::tiberius_prelogin(0x02));
    o.server_bytes(&hex(V3));
    assert_eq!(o.phase(), Phase::PreloginReplied);
    let mut login = Vec::new();
    tds_handshake::encode_message(PacketType::Login7, 0, &[0x5A; 172], 4096, &mut login);
    o.client_bytes(&login);
    assert_eq!(o.phase(), Phase::LoginSent);
    for chunk in response.chunks(5) {
        o.server_bytes(chunk);
    }
    o
}

#[test]
fn observer_sees_login_succeed_in_v4_v6_v9() {
    for (name, bytes) in [("V4", v4()), ("V6", v6()), ("V9", hex(V9))] {
        let o = observe_login_response(&bytes);
        assert_eq!(o.phase(), Phase::LoggedIn, "{name}");
        assert!(o.is_passive(), "{name}");
        let obs = o.observation();
        assert!(!obs.login_only, "{name}: the login was never in TLS");
        assert_eq!(obs.parse_stopped, None, "{name}");
        assert_eq!(
            obs.server_prelogin.unwrap().encryption,
            Some(Encryption::NOT_SUP)
        );
    }
}

#[test]
fn observer_sees_login_failed_in_v10() {
    let o = observe_login_response(&v10());
    assert_eq!(o.phase(), Phase::LoginSent);
    assert_eq!(o.observation().parse_stopped, None);
}

#[test]
fn observer_reads_v11_wrapped_alert_after_prelogin() {
    let mut o = Observer::new();
    o.client_bytes(&hex(V1));
    o.server_bytes(&hex(V3));
    o.server_bytes(&hex(V11_WRAPPED));
    let a = o.observation().first_alert.unwrap();
    assert_eq!(a.sender, Direction::ServerToClient);
    assert_eq!(a.framing, TlsFraming::WrappedPrelogin);
    assert_eq!(a.alert, Alert::fatal(AlertDescription::HANDSHAKE_FAILURE));
}
