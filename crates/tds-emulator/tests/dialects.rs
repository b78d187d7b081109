//! The emulator answers each client in its own dialect, byte by byte over a raw socket: the
//! PRELOGIN reply carries the options the client sent (MS-SSTDS 4.1's 4-option request gets a
//! 37-byte reply), a TDS 7.1 session gets 7.1 token sizes, and what SQL Server refuses (a
//! TDS 7.0 LOGIN7, a first message that is not PRELOGIN) is closed without a response.

use std::time::Duration;

use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
use tds_handshake::{PacketHeader, PacketType, encode_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(30);

/// MS-SSTDS §4.1 (the digest's V1b): an older client's PRELOGIN with 4 options (VERSION,
/// ENCRYPTION = OFF, INSTOPT "MSSQLServer", THREADID), no MARS.
const V1B_PRELOGIN: [u8; 52] = [
    0x12, 0x01, 0x00, 0x34, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x15, 0x00, 0x06, 0x01, 0x00, 0x1B,
    0x00, 0x01, 0x02, 0x00, 0x1C, 0x00, 0x0C, 0x03, 0x00, 0x28, 0x00, 0x04, 0xFF, 0x08, 0x00, 0x01,
    0x55, 0x00, 0x00, 0x00, 0x4D, 0x53, 0x53, 0x51, 0x4C, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72, 0x00,
    0x80, 0x19, 0x00, 0x00,
];

async fn start(setting: EncryptionSetting) -> Emulator {
    Emulator::start(EmulatorConfig::new().encryption(setting))
        .await
        .expect("emulator starts")
}

/// One reassembled server message: (its first header, payload).
async fn read_message(tcp: &mut TcpStream) -> (PacketHeader, Vec<u8>) {
    tokio::time::timeout(PATIENCE, async {
        let mut first = None;
        let mut payload = Vec::new();
        loop {
            let mut raw = [0u8; 8];
            tcp.read_exact(&mut raw).await.expect("a packet header");
            let header = PacketHeader::decode(&raw).expect("a valid header");
            let mut body = vec![0u8; header.payload_len()];
            tcp.read_exact(&mut body).await.expect("the packet body");
            payload.extend_from_slice(&body);
            let first = *first.get_or_insert(header);
            if header.is_eom() {
                return (first, payload);
            }
        }
    })
    .await
    .expect("a server message in time")
}

/// Asserts the server ends the connection without sending a byte.
async fn assert_closed_without_response(tcp: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: the server kept the connection open"));
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{what}: the server answered {:02x?}", &buf[..n]),
    }
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A LOGIN7 payload for `sa` / `Password123!` with this TDSVersion.
fn login7(tds_version: u32) -> Vec<u8> {
    let mut fixed = vec![0u8; 94];
    fixed[4..8].copy_from_slice(&tds_version.to_le_bytes());
    fixed[8..12].copy_from_slice(&4096u32.to_le_bytes());
    let mut data = Vec::new();
    for (at, text, obfuscate) in [
        (36, "host", false),
        (40, "sa", false),
        (44, "Password123!", true),
    ] {
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

fn message(packet_type: PacketType, payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    encode_message(packet_type, 0, payload, 4096, &mut wire);
    wire
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_option_prelogin_gets_a_37_byte_reply_without_mars() {
    let emulator = start(EncryptionSetting::None).await;
    let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
    tcp.write_all(&V1B_PRELOGIN).await.unwrap();
    let (header, payload) = read_message(&mut tcp).await;
    assert_eq!(header.packet_type, 0x04, "a tabular result");
    assert_eq!(
        usize::from(header.length),
        37,
        "SQL Server's length for 4 options"
    );
    #[rustfmt::skip]
    let expected: [u8; 29] = [
        0x00, 0x00, 0x15, 0x00, 0x06, // VERSION @21 len 6
        0x01, 0x00, 0x1B, 0x00, 0x01, // ENCRYPTION @27 len 1
        0x02, 0x00, 0x1C, 0x00, 0x01, // INSTOPT @28 len 1
        0x03, 0x00, 0x1D, 0x00, 0x00, // THREADID @29 len 0
        0xFF,
        0x10, 0x00, 0x10, 0x7C, 0x00, 0x00, // 16.0.4220
        0x02, // ENCRYPT_NOT_SUP: a server without TLS answers the client's OFF so
        0x00, // INSTOPT: "MSSQLServer" is the default instance
    ];
    assert_eq!(payload, expected);
    drop(tcp);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tds_7_1_session_gets_7_1_token_sizes() {
    let emulator = start(EncryptionSetting::None).await;
    let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
    tcp.write_all(&V1B_PRELOGIN).await.unwrap();
    read_message(&mut tcp).await;
    tcp.write_all(&message(PacketType::Login7, &login7(0x7100_0001)))
        .await
        .unwrap();
    let (_, response) = read_message(&mut tcp).await;
    let ack = response
        .windows(8)
        .position(|w| w[0] == 0xAD && w[3] == 0x01)
        .expect("a LOGINACK");
    assert_eq!(
        &response[ack..ack + 8],
        &[0xAD, 0x36, 0x00, 0x01, 0x71, 0x00, 0x00, 0x01],
        "LOGINACK echoes TDS 7.1 rev 1"
    );
    // DONE with a 4-byte row count (TDS 7.1) ends the response.
    assert_eq!(
        &response[response.len() - 9..],
        &[0xFD, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // INFO 5701 ends with a 2-byte line number: its declared length covers exactly that.
    let info = response.iter().position(|b| *b == 0xAB).expect("INFO 5701");
    let info_len = usize::from(u16::from_le_bytes([response[info + 1], response[info + 2]]));
    let text_units = usize::from(u16::from_le_bytes([
        response[info + 9],
        response[info + 10],
    ]));
    let server_at = info + 11 + 2 * text_units;
    let server_units = usize::from(response[server_at]);
    let proc_at = server_at + 1 + 2 * server_units;
    assert_eq!(response[proc_at], 0, "no procedure name");
    assert_eq!(
        info_len,
        proc_at + 1 + 2 - (info + 3),
        "LineNumber is a u16"
    );

    // A TDS 7.1 batch has no ALL_HEADERS: just the text.
    tcp.write_all(&message(PacketType::SqlBatch, &utf16("SELECT 1")))
        .await
        .unwrap();
    let (_, reply) = read_message(&mut tcp).await;
    #[rustfmt::skip]
    let expected: [u8; 23] = [
        0x81, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, // COLMETADATA, UserType u16
        0xD1, 0x01, 0x00, 0x00, 0x00, // ROW: 1
        0xFD, 0x10, 0x00, 0xC1, 0x00, 0x01, 0x00, 0x00, 0x00, // DONE COUNT, u32 count 1
    ];
    assert_eq!(reply, expected);
    let record = emulator.clients().remove(0);
    assert_eq!(record.tds_version, Some(0x7100_0001));
    assert!(record.logged_in);
    drop(tcp);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tds_7_0_and_non_prelogin_first_messages_are_closed_without_a_response() {
    let emulator = start(EncryptionSetting::None).await;
    // A TDS 7.0 client sends LOGIN7 first: MS-TDS 3.3.5.1 closes anything but PRELOGIN/TLS.
    let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
    tcp.write_all(&message(PacketType::Login7, &login7(0x7000_0000)))
        .await
        .unwrap();
    assert_closed_without_response(&mut tcp, "LOGIN7 first").await;
    // A 7.0 LOGIN7 after a PRELOGIN: SQL Server closes (17802, unsupported TDS version).
    let mut tcp = TcpStream::connect(emulator.local_addr()).await.unwrap();
    tcp.write_all(&V1B_PRELOGIN).await.unwrap();
    read_message(&mut tcp).await;
    tcp.write_all(&message(PacketType::Login7, &login7(0x7000_0000)))
        .await
        .unwrap();
    assert_closed_without_response(&mut tcp, "TDS 7.0 LOGIN7").await;
    assert!(
        emulator.wait_for_open_connections(0, PATIENCE).await,
        "both connections ended"
    );
    let stats = emulator.stats();
    assert_eq!(stats.unknown_first_message, 1, "{stats:?}");
    assert_eq!(stats.tds_version_refused, 1, "{stats:?}");
    assert_eq!(stats.logged_in, 0, "{stats:?}");
    let clients = emulator.clients();
    assert_eq!(clients[0].first_byte, Some(0x10));
    assert_eq!(clients[1].tds_version, Some(0x7000_0000));
    emulator.shutdown().await;
}
