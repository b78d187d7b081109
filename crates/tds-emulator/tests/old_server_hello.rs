//! The `old-server-hello` fault against real TLS clients other than tiberius (tds-handshake.md
//! §8: "the client aborts with alert 70"). OpenSSL's `s_client` limited to TLS 1.2 sends alert
//! 70 raw in TDS 8.0 strict mode, and the emulator records it. FreeTDS (GnuTLS) with TLS 1.0
//! disabled rejects the hello too, but, like tiberius in TDS 7, closes without putting the
//! alert on the wire (seen with tshark): in TDS 7 the alert exists only inside the client.
//!
//! Fails (never skips) when `tsql` or `openssl` is missing: CI installs `freetds-bin`, and
//! `openssl` comes with Debian's ca-certificates.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{PASSWORD, PATIENCE, USER, start};
use tds_emulator::{EmulatorConfig, EncryptionSetting, Fault, OldTlsVersion, Schedule};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Waits (bounded) until the emulator has recorded a client alert on connection 0.
async fn client_alert(running: &common::Running) -> Option<u8> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(alert) = running
                .emulator
                .clients()
                .first()
                .and_then(|record| record.client_alert)
            {
                return alert;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .ok()
}

async fn run(mut command: Command, stdin: &[u8]) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let _ = input.write_all(stdin).await;
    drop(input);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the client finished in time")
        .expect("the client ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freetds_without_tls_1_0_rejects_the_version_and_closes_without_an_alert() {
    let running = start(
        EmulatorConfig::new()
            .encryption(EncryptionSetting::Force)
            .fault(
                Fault::OldServerHello(OldTlsVersion::Tls10),
                Schedule::Always,
            ),
    )
    .await;
    let conf = std::env::temp_dir().join(format!(
        "tds-emulator-no-tls10-{}-{}.conf",
        std::process::id(),
        running.emulator.local_addr().port()
    ));
    // FreeTDS 1.3 accepts TLS 1.0 unless told otherwise (GnuTLS "NORMAL:%COMPAT"); a client
    // that requires TLS 1.2 is what meets an unpatched SQL Server 2008-2014.
    std::fs::write(&conf, "[global]\n\tenable tls v1 = no\n").expect("freetds.conf written");
    let dump = conf.with_extension("dump");
    let port = running.emulator.local_addr().port().to_string();
    let mut tsql = Command::new("tsql");
    tsql.args(["-H", "127.0.0.1", "-p", &port, "-U", USER, "-P", PASSWORD])
        .env("FREETDSCONF", &conf)
        .env("TDSDUMP", &dump)
        .env("TDSVER", "7.4");
    let (_, output) = run(tsql, b"exit\n").await;
    let log = std::fs::read_to_string(&dump).unwrap_or_default();
    let _ = std::fs::remove_file(&conf);
    let _ = std::fs::remove_file(&dump);
    assert!(output.contains("connection failed"), "{output}");
    // GnuTLS read the hello's version and refused it.
    assert!(log.contains("Server's version: 3.1"), "{log}");
    assert!(
        log.contains("A packet with illegal or unsupported version was received"),
        "{log}"
    );
    assert!(
        running
            .emulator
            .wait_for_open_connections(0, PATIENCE)
            .await
    );
    let record = running.emulator.clients().remove(0);
    assert_eq!(
        record.client_alert, None,
        "no alert on the wire: {record:?}"
    );
    assert!(!record.logged_in);
    assert_eq!(record.tls_version, None, "no TLS session: {record:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_limited_to_tls_1_2_sends_alert_70_raw_in_strict_mode() {
    for version in [OldTlsVersion::Tls10, OldTlsVersion::Tls11] {
        let running = start(
            EmulatorConfig::new()
                .encryption(EncryptionSetting::StrictAndLegacy)
                .fault(Fault::OldServerHello(version), Schedule::Always),
        )
        .await;
        let mut openssl = Command::new("openssl");
        openssl.args([
            "s_client",
            "-tls1_2",
            "-connect",
            &running.emulator.local_addr().to_string(),
        ]);
        let (success, output) = run(openssl, b"").await;
        assert!(!success, "{version:?}: {output}");
        assert_eq!(
            client_alert(&running).await,
            Some(70),
            "{version:?}: protocol_version: {output}"
        );
        let record = running.emulator.clients().remove(0);
        assert_eq!(record.started_with_tls, Some(true), "{version:?}");
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_alert_after_the_old_hello_is_recorded() {
    use tokio::io::AsyncReadExt;
    // No real client sends alert 70 wrapped in TDS 7 (above), so the wire is driven by hand:
    // digest V1 PRELOGIN (ENCRYPT_ON), any ClientHello bytes in a 0x12 packet, then V11's
    // wrapped alert with description 70.
    let running = start(
        EmulatorConfig::new()
            .encryption(EncryptionSetting::Off)
            .fault(
                Fault::OldServerHello(OldTlsVersion::Tls11),
                Schedule::Always,
            ),
    )
    .await;
    let mut tcp = tokio::net::TcpStream::connect(running.emulator.local_addr())
        .await
        .unwrap();
    let v1: [u8; 47] = [
        0x12, 0x01, 0x00, 0x2F, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1A, 0x00, 0x06, 0x01, 0x00,
        0x20, 0x00, 0x01, 0x02, 0x00, 0x21, 0x00, 0x01, 0x03, 0x00, 0x22, 0x00, 0x04, 0x04, 0x00,
        0x26, 0x00, 0x01, 0xFF, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xB8, 0x0D, 0x00,
        0x00, 0x01,
    ];
    let mut reply = [0u8; 43];
    tokio::time::timeout(PATIENCE, async {
        tcp.write_all(&v1).await.unwrap();
        tcp.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply[40], 0x01, "ENCRYPT_ON answers ENCRYPT_ON");
        // A (truncated, never parsed) ClientHello record in one 0x12 packet.
        let hello = [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00];
        let mut packet = vec![0x12, 0x01, 0x00, 8 + hello.len() as u8, 0, 0, 0, 0];
        packet.extend_from_slice(&hello);
        tcp.write_all(&packet).await.unwrap();
        let mut header = [0u8; 8];
        tcp.read_exact(&mut header).await.unwrap();
        assert_eq!(header[..2], [0x12, 0x01], "one 0x12 packet, EOM");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[2], header[3]])) - 8];
        tcp.read_exact(&mut body).await.unwrap();
        // Record 3.2 (TLS 1.1), ServerHello, hello version 3.2, no session id, 0x002F.
        assert_eq!(body[..3], [0x16, 0x03, 0x02]);
        assert_eq!(body[5], 2, "ServerHello");
        assert_eq!(body[9..11], [0x03, 0x02]);
        assert_eq!(body[43..46], [0x00, 0x00, 0x2F]);
        tcp.write_all(&[
            0x12, 0x01, 0x00, 0x0F, 0x00, 0x00, 0x01, 0x00, 0x15, 0x03, 0x03, 0x00, 0x02, 0x02,
            0x46,
        ])
        .await
        .unwrap();
        let mut rest = [0u8; 16];
        assert_eq!(
            tcp.read(&mut rest).await.unwrap(),
            0,
            "then an orderly close"
        );
    })
    .await
    .expect("the exchange finished in time");
    assert_eq!(client_alert(&running).await, Some(70));
    running.shutdown().await;
}
