//! Byte builders and synthetic transcripts shared by the integration tests.
//!
//! Every test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use tds_handshake::{
    Direction, Encryption, Observation, Observer, PacketType, Prelogin, Side, Version,
    encode_message,
};

/// Parses spaced hex ("12 01 00 2F"), ignoring `|` separators used in the spec digest.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    s.split(|c: char| c.is_whitespace() || c == '|')
        .filter(|t| !t.is_empty())
        .map(|t| u8::from_str_radix(t, 16).expect("test vector hex"))
        .collect()
}

/// UTF-16LE bytes of `s`.
pub(crate) fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// One TDS message in packets of at most `max_packet` bytes.
pub(crate) fn message(packet_type: PacketType, payload: &[u8], max_packet: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(packet_type, 0, payload, max_packet, &mut out);
    out
}

/// A TLS record.
pub(crate) fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![content_type];
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A handshake message (type + u24 length + body).
pub(crate) fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut out = vec![msg_type, len[1], len[2], len[3]];
    out.extend_from_slice(body);
    out
}

fn extension(ext_type: u16, data: &[u8]) -> Vec<u8> {
    let mut out = ext_type.to_be_bytes().to_vec();
    out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn block_u16(data: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

fn filler(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A realistic ClientHello body: 32-byte session id, 7 suites, SNI, groups, signature
/// algorithms, an X25519 key share, supported_versions and optionally ALPN.
pub(crate) fn client_hello_body(legacy: u16, versions: &[u16], alpn: Option<&[&[u8]]>) -> Vec<u8> {
    let mut b = legacy.to_be_bytes().to_vec();
    b.extend(filler(32, 7)); // random
    b.push(32);
    b.extend(filler(32, 9)); // legacy_session_id
    let suites: [u16; 7] = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030];
    b.extend(block_u16(
        &suites
            .iter()
            .flat_map(|s| s.to_be_bytes())
            .collect::<Vec<_>>(),
    ));
    b.extend([1, 0]); // compression: null
    let mut exts = Vec::new();
    let host = b"localhost";
    let mut sni = vec![0u8]; // host_name
    sni.extend(block_u16(host));
    exts.extend(extension(0x0000, &block_u16(&sni)));
    exts.extend(extension(
        0x000A,
        &block_u16(&[0x00, 0x1D, 0x00, 0x17, 0x00, 0x18]),
    ));
    exts.extend(extension(
        0x000D,
        &block_u16(&[0x04, 0x03, 0x08, 0x04, 0x04, 0x01]),
    ));
    let mut share = vec![0x00, 0x1D];
    share.extend(block_u16(&filler(32, 3)));
    exts.extend(extension(0x0033, &block_u16(&share)));
    let mut sv = vec![u8::try_from(versions.len() * 2).unwrap()];
    sv.extend(versions.iter().flat_map(|v| v.to_be_bytes()));
    exts.extend(extension(0x002B, &sv));
    if let Some(names) = alpn {
        let mut list = Vec::new();
        for n in names {
            list.push(u8::try_from(n.len()).unwrap());
            list.extend_from_slice(n);
        }
        exts.extend(extension(0x0010, &block_u16(&list)));
    }
    b.extend(block_u16(&exts));
    b
}

/// A ServerHello body; `supported` adds the supported_versions extension (TLS 1.3).
pub(crate) fn server_hello_body(legacy: u16, supported: Option<u16>) -> Vec<u8> {
    let mut b = legacy.to_be_bytes().to_vec();
    b.extend(filler(32, 11));
    b.push(32);
    b.extend(filler(32, 9));
    b.extend(if supported.is_some() {
        [0x13, 0x01]
    } else {
        [0xC0, 0x2F]
    });
    b.push(0);
    let mut exts = extension(0xFF01, &[0]); // renegotiation_info
    if let Some(v) = supported {
        exts.extend(extension(0x002B, &v.to_be_bytes()));
        let mut share = vec![0x00, 0x1D];
        share.extend(block_u16(&filler(32, 5)));
        exts.extend(extension(0x0033, &share));
    }
    b.extend(block_u16(&exts));
    b
}

/// One step of a transcript.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Bytes the client wrote.
    Client(Vec<u8>),
    /// Bytes the server wrote.
    Server(Vec<u8>),
    /// Orderly close in a direction.
    Eof(Direction),
}

/// The §2.2 tiberius PRELOGIN with the ENCRYPTION byte replaced.
pub(crate) fn tiberius_prelogin(enc: u8) -> Vec<u8> {
    let mut v = hex(V2);
    v[8 + 32] = enc;
    v
}

/// A SQL Server 16.0.4220 PRELOGIN reply as a 0x04 message.
pub(crate) fn server_reply(enc: Encryption) -> Vec<u8> {
    let version = Version {
        major: 16,
        minor: 0,
        build: 4220,
        sub_build: 0,
    };
    let payload = Prelogin::server_reply(version, enc).encode(Side::Server);
    message(PacketType::TabularResult, &payload, 4096)
}

fn wrapped(bytes: &[u8], max_packet: usize) -> Vec<u8> {
    message(PacketType::PreLogin, bytes, max_packet)
}

/// The TLS 1.2 handshake of a TDS 7 connection, every flight wrapped in 0x12 packets.
/// The server flight uses 512-byte packets so records and handshake messages span packets,
/// and the Certificate spans two records.
fn tds7_tls12_handshake() -> Vec<Step> {
    // The ClientHello spans two records, as large hellos may.
    let hello = handshake(1, &client_hello_body(0x0303, &[0x0304, 0x0303], None));
    let (h1, h2) = hello.split_at(100);
    let mut ch = record(0x16, 0x0301, h1);
    ch.extend(record(0x16, 0x0301, h2));
    let mut flight = record(
        0x16,
        0x0303,
        &handshake(2, &server_hello_body(0x0303, None)),
    );
    let cert = handshake(11, &filler(1400, 1));
    let (c1, c2) = cert.split_at(700);
    flight.extend(record(0x16, 0x0303, c1));
    let mut tail = c2.to_vec();
    tail.extend(handshake(12, &filler(300, 2)));
    tail.extend(handshake(14, &[]));
    flight.extend(record(0x16, 0x0303, &tail));
    let mut client_fin = record(0x16, 0x0303, &handshake(16, &filler(33, 4)));
    client_fin.extend(record(0x14, 0x0303, &[1]));
    client_fin.extend(record(0x16, 0x0303, &filler(40, 5))); // encrypted Finished
    let mut server_fin = record(0x14, 0x0303, &[1]);
    server_fin.extend(record(0x16, 0x0303, &filler(40, 6)));
    vec![
        Step::Client(wrapped(&ch, 4096)),
        Step::Server(wrapped(&flight, 512)),
        Step::Client(wrapped(&client_fin, 4096)),
        Step::Server(wrapped(&server_fin, 4096)),
    ]
}

/// (a) TDS 7, full encryption over TLS 1.2: client REQ, server ON.
pub(crate) fn transcript_tds7_tls12() -> Vec<Step> {
    let mut t = vec![
        Step::Client(tiberius_prelogin(0x03)),
        Step::Server(server_reply(Encryption::ON)),
    ];
    t.extend(tds7_tls12_handshake());
    t.push(Step::Client(record(0x17, 0x0303, &filler(200, 7)))); // LOGIN7
    t.push(Step::Server(record(0x17, 0x0303, &filler(120, 8)))); // login response
    t
}

/// (b) Login-only encryption: client OFF, server OFF; the login response is plaintext.
pub(crate) fn transcript_login_only() -> Vec<Step> {
    let mut t = vec![
        Step::Client(tiberius_prelogin(0x00)),
        Step::Server(server_reply(Encryption::OFF)),
    ];
    t.extend(tds7_tls12_handshake());
    t.push(Step::Client(record(0x17, 0x0303, &filler(200, 7))));
    t.push(Step::Server(hex(V9)));
    t
}

/// (c) TDS 8 strict over TLS 1.3: raw ClientHello with ALPN first.
pub(crate) fn transcript_strict() -> Vec<Step> {
    let alpn: &[&[u8]] = &[b"tds/8.0"];
    let ch = record(
        0x16,
        0x0301,
        &handshake(1, &client_hello_body(0x0303, &[0x0304, 0x0303], Some(alpn))),
    );
    let mut flight = record(
        0x16,
        0x0303,
        &handshake(2, &server_hello_body(0x0303, Some(0x0304))),
    );
    flight.extend(record(0x14, 0x0303, &[1]));
    flight.extend(record(0x17, 0x0303, &filler(900, 1))); // EE, Certificate, CV, Finished
    let mut client_fin = record(0x14, 0x0303, &[1]);
    client_fin.extend(record(0x17, 0x0303, &filler(53, 2)));
    vec![
        Step::Client(ch),
        Step::Server(flight),
        Step::Client(client_fin),
        Step::Client(record(0x17, 0x0303, &filler(70, 3))), // PRELOGIN inside TLS
        Step::Server(record(0x17, 0x0303, &filler(60, 4))),
    ]
}

/// (d) Force Encryption mismatch: client NOT_SUP, server REQ, then the server closes.
pub(crate) fn transcript_force_encryption_mismatch() -> Vec<Step> {
    vec![
        Step::Client(tiberius_prelogin(0x02)),
        Step::Server(server_reply(Encryption::REQ)),
        Step::Eof(Direction::ServerToClient),
    ]
}

/// (e1) A wrapped fatal handshake_failure alert from the server answers the ClientHello.
pub(crate) fn transcript_server_alert() -> Vec<Step> {
    let ch = record(
        0x16,
        0x0301,
        &handshake(1, &client_hello_body(0x0303, &[0x0303], None)),
    );
    vec![
        Step::Client(tiberius_prelogin(0x01)),
        Step::Server(server_reply(Encryption::ON)),
        Step::Client(wrapped(&ch, 4096)),
        Step::Server(hex(V11_WRAPPED)),
        Step::Eof(Direction::ServerToClient),
    ]
}

/// (e2) The server selects TLS 1.0; the client answers with a raw protocol_version alert.
pub(crate) fn transcript_client_alert() -> Vec<Step> {
    let ch = record(
        0x16,
        0x0301,
        &handshake(1, &client_hello_body(0x0303, &[0x0304, 0x0303], None)),
    );
    let sh = record(
        0x16,
        0x0301,
        &handshake(2, &server_hello_body(0x0301, None)),
    );
    vec![
        Step::Client(tiberius_prelogin(0x01)),
        Step::Server(server_reply(Encryption::ON)),
        Step::Client(wrapped(&ch, 4096)),
        Step::Server(wrapped(&sh, 4096)),
        Step::Client(hex("15 03 03 00 02 02 46")),
        Step::Eof(Direction::ClientToServer),
    ]
}

/// Every synthetic transcript, named.
pub(crate) fn all_transcripts() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        ("tds7_tls12", transcript_tds7_tls12()),
        ("login_only", transcript_login_only()),
        ("strict", transcript_strict()),
        (
            "force_encryption_mismatch",
            transcript_force_encryption_mismatch(),
        ),
        ("server_alert", transcript_server_alert()),
        ("client_alert", transcript_client_alert()),
    ]
}

/// Feeds a transcript one step at a time.
pub(crate) fn observe(steps: &[Step]) -> Observer {
    let mut o = Observer::new();
    for s in steps {
        match s {
            Step::Client(b) => o.client_bytes(b),
            Step::Server(b) => o.server_bytes(b),
            Step::Eof(d) => o.eof(*d),
        }
    }
    o
}

/// Feeds a transcript with every step cut into pieces whose sizes come from `sizes`
/// (cycled; a size of 0 feeds an empty slice).
pub(crate) fn observe_chunked(observer: &mut Observer, steps: &[Step], sizes: &[usize]) {
    let mut k = 0usize;
    for s in steps {
        let (dir, mut bytes) = match s {
            Step::Client(b) => (Direction::ClientToServer, b.as_slice()),
            Step::Server(b) => (Direction::ServerToClient, b.as_slice()),
            Step::Eof(d) => {
                observer.eof(*d);
                continue;
            }
        };
        while !bytes.is_empty() {
            let n = if sizes.is_empty() {
                bytes.len()
            } else {
                sizes[k % sizes.len()]
            };
            k += 1;
            let n = n.min(bytes.len());
            let (head, tail) = bytes.split_at(n);
            observer.feed(dir, head);
            bytes = tail;
        }
    }
}

/// Whole-transcript observation.
pub(crate) fn observation(steps: &[Step]) -> Observation {
    observe(steps).into_observation()
}

/// V2: tiberius 0.13.0 client PRELOGIN, encryption Required (tds-handshake.md §2.2).
pub(crate) const V2: &str = "12 01 00 2F 00 00 00 00 00 00 1A 00 06 01 00 20 00 01 02 00 21 00 01 03 00 22 00 04 04 00 26 00 01 FF 00 00 0D 00 00 00 03 00 00 00 00 00 00";

/// V9: minimal login response, LOGINACK 7.4 + DONE.
pub(crate) const V9: &str = "04 01 00 4e 00 33 01 00 ad 36 00 01 74 00 00 04 16 4d 00 69 00 63 00 72 00 6f 00 73 00 6f 00 66 00 74 00 20 00 53 00 51 00 4c 00 20 00 53 00 65 00 72 00 76 00 65 00 72 00 00 00 00 00 10 00 10 7c fd 00 00 00 00 00 00 00 00 00 00 00 00";

/// V11, wrapped: fatal handshake_failure in a 0x12 packet.
pub(crate) const V11_WRAPPED: &str = "12 01 00 0f 00 00 01 00 15 03 03 00 02 02 28";
