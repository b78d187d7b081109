//! The emulator driven byte by byte over a raw socket: every cell of the MS-TDS encryption
//! matrix (CLIENT_CERT values included) as it appears on the wire, the shape of the PRELOGIN
//! reply, post-login framing, and hostile peers (bad lengths, endless messages, vanished
//! clients, oversized LOGIN7) that must neither panic nor hold resources.

use std::io::ErrorKind;
use std::time::Duration;

use tds_emulator::{Emulator, EmulatorConfig, Encryption, EncryptionSetting, Termination};
use tds_handshake::{
    PacketHeader, PacketType, Prelogin, ServerEncryption, Side, ThreadId, Version, encode_message,
    negotiate,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(30);
/// How long a test waits to conclude that the emulator is *not* closing a connection.
const QUIET: Duration = Duration::from_millis(300);

const CLIENT_VERSION: Version = Version {
    major: 0,
    minor: 0,
    build: 0x0D00,
    sub_build: 0,
};

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config.terminate_grace(Duration::from_secs(5)))
        .await
        .expect("emulator starts")
}

fn prelogin_wire(prelogin: &Prelogin) -> Vec<u8> {
    let mut wire = Vec::new();
    encode_message(
        PacketType::PreLogin,
        0,
        &prelogin.encode(Side::Client),
        4096,
        &mut wire,
    );
    wire
}

/// One reassembled server message: (headers of its packets, payload).
async fn read_message(tcp: &mut TcpStream) -> std::io::Result<(Vec<PacketHeader>, Vec<u8>)> {
    let mut headers = Vec::new();
    let mut payload = Vec::new();
    loop {
        let mut raw = [0u8; 8];
        tcp.read_exact(&mut raw).await?;
        let header = PacketHeader::decode(&raw).expect("a valid header from the emulator");
        let mut body = vec![0u8; header.payload_len()];
        tcp.read_exact(&mut body).await?;
        payload.extend_from_slice(&body);
        headers.push(header);
        if header.is_eom() {
            return Ok((headers, payload));
        }
    }
}

/// Waits until the emulator ends the connection: EOF or a reset, never silence.
async fn assert_closed_by_server(tcp: &mut TcpStream, what: &str) {
    let mut sink = [0u8; 4096];
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "{what}: the emulator kept the connection open"
    );
}

async fn assert_no_open_connections(emulator: &Emulator, what: &str) {
    assert!(
        emulator.wait_for_open_connections(0, PATIENCE).await,
        "{what}: {} connections still open",
        emulator.open_connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matrix_cell_on_the_wire_including_client_cert() {
    let columns = [
        (EncryptionSetting::None, ServerEncryption::NotSup),
        (EncryptionSetting::Off, ServerEncryption::Off),
        (EncryptionSetting::Force, ServerEncryption::On),
    ];
    let offered = [0x00u8, 0x01, 0x02, 0x03, 0x80, 0x81, 0x82, 0x83];
    for (setting, column) in columns {
        let emulator = start(EmulatorConfig::new().encryption(setting)).await;
        let mut terminations = 0;
        for byte in offered {
            let cell = format!("{setting} × 0x{byte:02x}");
            let expected = negotiate(Encryption(byte), column);
            let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
            tcp.write_all(&prelogin_wire(&Prelogin::client_request(
                CLIENT_VERSION,
                Encryption(byte),
            )))
            .await
            .unwrap();
            let (headers, payload) = read_message(&mut tcp).await.expect(&cell);
            // §2.3: one 0x04 message, SPID 0, no packet over 4096 bytes.
            for header in &headers {
                assert_eq!(header.packet_type, 0x04, "{cell}");
                assert_eq!(header.spid, 0, "{cell}");
                assert!(usize::from(header.length) <= 4096, "{cell}");
            }
            let reply = Prelogin::decode(&payload, Side::Server).expect(&cell);
            assert_eq!(reply.encryption, Some(expected.reply), "{cell}");
            assert_eq!(reply.thread_id, Some(ThreadId::Empty), "{cell}: THREADID");
            assert_eq!(reply.mars, Some(0), "{cell}: MARS");
            assert_eq!(reply.instance.as_deref(), Some(&[0u8][..]), "{cell}");
            assert_eq!(reply.fed_auth_required, None, "{cell}: not asked for");
            assert_eq!(reply.nonce, None, "{cell}: not asked for");
            assert_eq!(reply.trace_id, None, "{cell}");
            // The exact option set, in order: nothing a client would reject as unknown.
            assert_eq!(
                payload[..26]
                    .chunks(5)
                    .map(|entry| entry[0])
                    .collect::<Vec<_>>(),
                [0x00, 0x01, 0x02, 0x03, 0x04, 0xFF],
                "{cell}"
            );
            if expected.terminate {
                terminations += 1;
                // "Reply, then terminate": a reset once the client speaks again.
                let _ = tcp.write_all(&[0x12]).await;
                let mut buf = [0u8; 16];
                let outcome = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
                    .await
                    .expect(&cell);
                assert!(
                    matches!(&outcome, Err(e) if e.kind() == ErrorKind::ConnectionReset),
                    "{cell}: expected a reset, got {outcome:?}"
                );
            } else {
                // The server waits for the next step (TLS or LOGIN7), it does not close.
                let mut buf = [0u8; 16];
                let idle = tokio::time::timeout(QUIET, tcp.read(&mut buf)).await;
                assert!(
                    idle.is_err(),
                    "{cell}: the server spoke or closed: {idle:?}"
                );
            }
        }
        assert!(
            emulator
                .wait_for_stats(|s| s.matrix_terminations == terminations, PATIENCE)
                .await,
            "{setting}: {:?}",
            emulator.stats()
        );
        let replied: Vec<_> = emulator
            .clients()
            .iter()
            .map(|c| c.replied_encryption)
            .collect();
        let expected: Vec<_> = offered
            .iter()
            .map(|&b| Some(negotiate(Encryption(b), column).reply))
            .collect();
        assert_eq!(replied, expected, "{setting}");
        emulator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_termination_is_a_fin_when_the_test_asks_for_it() {
    // Force Encryption × NOT_SUP and no TLS × ON: "reply, then terminate" (MS-TDS 2.2.6.5).
    for (setting, offered, reply) in [
        (
            EncryptionSetting::Force,
            Encryption::NOT_SUP,
            Encryption::REQ,
        ),
        (EncryptionSetting::None, Encryption::ON, Encryption::NOT_SUP),
    ] {
        let cell = format!("{setting} × {offered:?}");
        let emulator = start(
            EmulatorConfig::new()
                .encryption(setting)
                .matrix_termination(Termination::Fin),
        )
        .await;
        let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
        tcp.write_all(&prelogin_wire(&Prelogin::client_request(
            CLIENT_VERSION,
            offered,
        )))
        .await
        .unwrap();
        let (_, payload) = read_message(&mut tcp).await.expect(&cell);
        let decoded = Prelogin::decode(&payload, Side::Server).expect(&cell);
        assert_eq!(decoded.encryption, Some(reply), "{cell}");
        // The reply is followed by EOF, without the client having to speak first.
        let mut buf = [0u8; 16];
        let outcome = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .expect(&cell);
        assert!(
            matches!(outcome, Ok(0)),
            "{cell}: expected EOF, got {outcome:?}"
        );
        assert_no_open_connections(&emulator, &cell).await;
        let stats = emulator.stats();
        assert_eq!(
            (
                stats.matrix_terminations,
                stats.closes_sent,
                stats.resets_sent
            ),
            (1, 1, 0),
            "{cell}: {stats:?}"
        );
        assert!(emulator.clients()[0].terminated_by_matrix, "{cell}");
        emulator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedauth_and_nonce_are_answered_only_when_sent() {
    let emulator = start(EmulatorConfig::new()).await;
    let mut request = Prelogin::client_request(CLIENT_VERSION, Encryption::ON);
    request.fed_auth_required = Some(1);
    request.nonce = Some([9; 32]);
    let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
    tcp.write_all(&prelogin_wire(&request)).await.unwrap();
    let (_, payload) = read_message(&mut tcp).await.unwrap();
    let reply = Prelogin::decode(&payload, Side::Server).unwrap();
    assert_eq!(reply.fed_auth_required, Some(0), "on-prem answers 0");
    let nonce = reply.nonce.expect("a nonce answers a nonce");
    assert_ne!(nonce, [9; 32], "the server's own nonce, not an echo");
    assert_ne!(nonce, [0; 32]);
    drop(tcp);
    emulator.shutdown().await;
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A LOGIN7 payload with the given user, password and packet size (TDS 7.4).
fn login7(user: &str, password: &str, packet_size: u32) -> Vec<u8> {
    let mut fixed = vec![0u8; 94];
    fixed[4..8].copy_from_slice(&0x7400_0004u32.to_le_bytes());
    fixed[8..12].copy_from_slice(&packet_size.to_le_bytes());
    let mut data = Vec::new();
    // The user goes last so a long one does not push the other offsets past u16.
    for (at, text, obfuscate) in [(36, "host", false), (44, password, true), (40, user, false)] {
        let start = u16::try_from(94 + data.len()).unwrap();
        let chars = u16::try_from(text.encode_utf16().count()).unwrap();
        fixed[at..at + 2].copy_from_slice(&start.to_le_bytes());
        fixed[at + 2..at + 4].copy_from_slice(&chars.to_le_bytes());
        data.extend(utf16(text).into_iter().map(|b| {
            if obfuscate {
                b.rotate_left(4) ^ 0xA5
            } else {
                b
            }
        }));
    }
    let total = u32::try_from(94 + data.len()).unwrap();
    fixed[0..4].copy_from_slice(&total.to_le_bytes());
    fixed.extend(data);
    fixed
}

/// Connects without TLS (setting `none`, client NOT_SUP) and sends the PRELOGIN.
async fn plain_prelogin(emulator: &Emulator) -> TcpStream {
    let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
    tcp.write_all(&prelogin_wire(&Prelogin::client_request(
        CLIENT_VERSION,
        Encryption::NOT_SUP,
    )))
    .await
    .unwrap();
    let (_, payload) = read_message(&mut tcp).await.unwrap();
    let reply = Prelogin::decode(&payload, Side::Server).unwrap();
    assert_eq!(reply.encryption, Some(Encryption::NOT_SUP));
    tcp
}

fn done_tokens(payload: &[u8]) -> Vec<u16> {
    // The last 13 bytes of a batch reply are its final DONE.
    let done = &payload[payload.len() - 13..];
    assert_eq!(done[0], 0xFD, "a batch reply ends with DONE");
    vec![u16::from_le_bytes([done[1], done[2]])]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_uses_4096_then_the_negotiated_size_and_attention_gets_done_attn() {
    let emulator = start(EmulatorConfig::new().encryption(EncryptionSetting::None)).await;
    let mut tcp = plain_prelogin(&emulator).await;
    let mut wire = Vec::new();
    encode_message(
        PacketType::Login7,
        0,
        &login7("sa", "Password123!", 512),
        4096,
        &mut wire,
    );
    tcp.write_all(&wire).await.unwrap();
    let (headers, payload) = read_message(&mut tcp).await.unwrap();
    assert!(headers.iter().all(|h| h.packet_type == 0x04));
    assert!(
        headers.iter().all(|h| h.spid >= 51),
        "the SPID is set after login"
    );
    assert!(payload.windows(2).any(|w| w == [0xAD, 0x36]), "LOGINACK");
    assert_eq!(done_tokens(&payload), [0], "final DONE, no MORE");
    // ENVCHANGE packet size: new "512", old "4096".
    let envchange = [
        &[0xE3, 0x11, 0x00, 0x04, 0x03][..],
        &utf16("512"),
        &[4],
        &utf16("4096"),
    ]
    .concat();
    assert!(payload.windows(envchange.len()).any(|w| w == envchange));

    // After login, replies are framed at the negotiated 512 bytes.
    let mut batch = vec![0x16, 0, 0, 0, 0x12, 0, 0, 0, 2, 0];
    batch.extend_from_slice(&[0; 8]);
    batch.extend_from_slice(&1u32.to_le_bytes());
    batch.extend(utf16("SELECT ROWS 4 BYTES 300"));
    let mut wire = Vec::new();
    encode_message(PacketType::SqlBatch, 0, &batch, 512, &mut wire);
    tcp.write_all(&wire).await.unwrap();
    let (headers, payload) = read_message(&mut tcp).await.unwrap();
    assert!(headers.len() > 2, "{} packets", headers.len());
    assert!(headers.iter().all(|h| h.length <= 512));
    assert!(headers[..headers.len() - 1].iter().all(|h| h.length == 512));
    assert_eq!(done_tokens(&payload), [0x10], "DONE COUNT, no MORE");

    // Attention (header only) → DONE with DONE_ATTN.
    let mut wire = Vec::new();
    encode_message(PacketType::Attention, 0, &[], 512, &mut wire);
    tcp.write_all(&wire).await.unwrap();
    let (_, payload) = read_message(&mut tcp).await.unwrap();
    assert_eq!(payload, [0xFD, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(emulator.stats().attentions, 1);
    drop(tcp);
    assert_no_open_connections(&emulator, "client left").await;
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_end_cleanly_and_release_their_connection() {
    let emulator = start(EmulatorConfig::new()).await;
    let addr = emulator.local_addr();

    // A header whose length is below the header size.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x12, 0x01, 0x00, 0x07, 0, 0, 0, 0])
        .await
        .unwrap();
    assert_closed_by_server(&mut tcp, "length 7").await;

    // A length of 0.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x12, 0x01, 0x00, 0x00, 0, 0, 0, 0])
        .await
        .unwrap();
    assert_closed_by_server(&mut tcp, "length 0").await;

    // A PRELOGIN that never ends: full packets without EOM, forever.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut packet = vec![0x12, 0x00, 0x10, 0x00, 0, 0, 0, 0];
    packet.resize(4096, 0);
    let flood = tokio::time::timeout(PATIENCE, async {
        for _ in 0..1_000 {
            if tcp.write_all(&packet).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        flood.is_ok(),
        "the emulator stopped reading without closing"
    );
    assert_closed_by_server(&mut tcp, "endless PRELOGIN").await;

    // Neither PRELOGIN nor TLS.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_closed_by_server(&mut tcp, "HTTP").await;

    // A header announcing 65535 bytes, 3 of them sent, then the client vanishes.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x12, 0x01, 0xFF, 0xFF, 0, 0, 0, 0, 1, 2, 3])
        .await
        .unwrap();
    drop(tcp);

    // Connect and leave without a byte.
    drop(TcpStream::connect(addr).await.unwrap());

    assert_no_open_connections(&emulator, "hostile peers").await;
    let stats = emulator.stats();
    assert_eq!(stats.accepted, 6);
    assert!(stats.protocol_errors >= 4, "{stats:?}");
    assert_eq!(stats.prelogin_received, 0);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_hostile_logins_are_bounded() {
    let emulator = start(EmulatorConfig::new().encryption(EncryptionSetting::None)).await;

    // A LOGIN7 message over the 128 KB limit, as packets without EOM: refused before the end.
    let mut tcp = plain_prelogin(&emulator).await;
    let mut packet = vec![0x10, 0x00, 0x10, 0x00, 0, 0, 0, 0];
    packet.resize(4096, 0xAA);
    let _ = tokio::time::timeout(PATIENCE, async {
        for _ in 0..64 {
            if tcp.write_all(&packet).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert_closed_by_server(&mut tcp, "LOGIN7 over 128 KB").await;
    assert_eq!(emulator.stats().login7_received, 0);

    // A user name of 40 000 characters: the login fails with a well-framed ERROR token, and
    // the client record keeps a bounded copy.
    let user = "u".repeat(40_000);
    let mut tcp = plain_prelogin(&emulator).await;
    let mut wire = Vec::new();
    encode_message(
        PacketType::Login7,
        0,
        &login7(&user, "x", 4096),
        4096,
        &mut wire,
    );
    tcp.write_all(&wire).await.unwrap();
    let (headers, payload) = read_message(&mut tcp).await.unwrap();
    assert!(headers.iter().all(|h| usize::from(h.length) <= 4096));
    assert_eq!(payload[0], 0xAA, "ERROR token");
    let declared = usize::from(u16::from_le_bytes([payload[1], payload[2]]));
    assert_eq!(
        3 + declared + 13,
        payload.len(),
        "ERROR length matches its bytes, then DONE"
    );
    assert_eq!(&payload[payload.len() - 13..][..3], &[0xFD, 0x02, 0x00]);
    assert_closed_by_server(&mut tcp, "failed login").await;
    let record = emulator.clients().pop().unwrap();
    assert_eq!(record.login_error, Some(18456));
    let kept = record.user.expect("user recorded");
    assert!(
        user.starts_with(&kept) && kept.len() <= 256,
        "{}",
        kept.len()
    );

    assert_no_open_connections(&emulator, "logins").await;
    emulator.shutdown().await;
}
