//! A second real client nobody here wrote: FreeTDS's `tsql` (Debian package `freetds-bin`,
//! built with GnuTLS). FreeTDS's default `encryption = request` offers ENCRYPT_OFF, so one
//! client exercises all three answers of the matrix's first row (MS-TDS 2.2.6.5):
//! `off` replies OFF (TLS for LOGIN7 only, then plaintext), `force` replies REQ (full TLS),
//! `none` replies NOT_SUP (no TLS at all).
//!
//! This test FAILS (never skips) when `tsql` is missing: CI installs `freetds-bin`.

mod common;

use std::process::Stdio;

use common::{PASSWORD, PATIENCE, USER, start};
use tds_emulator::{ClientRecord, EmulatorConfig, Encryption, EncryptionSetting};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `SELECT 1` through `tsql` and returns its standard output.
async fn run_tsql(port: u16) -> String {
    let mut child = Command::new("tsql")
        .args([
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            USER,
            "-P",
            PASSWORD,
        ])
        // An empty config directory: no freetds.conf of the machine can change the test.
        .env("FREETDSCONF", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run tsql ({error}): install FreeTDS (`apt-get install freetds-bin`)")
        });
    let mut stdin = child.stdin.take().expect("tsql stdin is piped");
    stdin
        .write_all(b"SELECT 1\ngo\nexit\n")
        .await
        .expect("tsql reads its script");
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("tsql finished in time")
        .expect("tsql ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tsql failed ({:?}): stdout {stdout} stderr {stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsql_logs_in_and_selects_one_under_each_reply() {
    let cases = [
        // (setting, server's reply, TLS for the whole session, TLS for LOGIN7 only)
        (EncryptionSetting::Off, Encryption::OFF, true, true),
        (EncryptionSetting::Force, Encryption::REQ, true, false),
        (EncryptionSetting::None, Encryption::NOT_SUP, false, false),
        (
            EncryptionSetting::StrictAndLegacy,
            Encryption::OFF,
            true,
            true,
        ),
    ];
    for (setting, reply, tls, login_only) in cases {
        let running = start(EmulatorConfig::new().encryption(setting)).await;
        let stdout = run_tsql(running.emulator.local_addr().port()).await;
        assert!(
            stdout.lines().any(|line| line.trim() == "1") && stdout.contains("(1 row affected)"),
            "{setting}: {stdout}"
        );
        let clients = running.emulator.clients();
        let record = clients.first().expect("tsql connected");
        assert_eq!(record.started_with_tls, Some(false), "{setting}");
        assert_eq!(
            record.offered_encryption,
            Some(Encryption::OFF),
            "{setting}"
        );
        assert_eq!(record.replied_encryption, Some(reply), "{setting}");
        assert_eq!(record.tls_version.is_some(), tls, "{setting}: {record:?}");
        assert_eq!(record.login_only_encryption, login_only, "{setting}");
        assert_eq!(record.user.as_deref(), Some(USER), "{setting}");
        assert!(record.logged_in, "{setting}");
        assert!(
            running.emulator.stats().queries >= 1,
            "{setting}: the query reached the server"
        );
        running.shutdown().await;
    }
}

/// What `tsql` printed and whether it exited successfully.
struct TsqlRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `SELECT 1` through `tsql` speaking `tds_version` (FreeTDS's TDSVER), with the client
/// encryption setting `encryption` written into a freetds.conf of its own.
async fn tsql_speaking(port: u16, tds_version: &str, encryption: &str) -> TsqlRun {
    let conf = std::env::temp_dir().join(format!(
        "tds-emulator-freetds-{}-{port}-{tds_version}-{encryption}.conf",
        std::process::id()
    ));
    std::fs::write(&conf, format!("[global]\n\tencryption = {encryption}\n"))
        .expect("freetds.conf written");
    let mut child = Command::new("tsql")
        .args([
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            USER,
            "-P",
            PASSWORD,
        ])
        .env("FREETDSCONF", &conf)
        .env("TDSVER", tds_version)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run tsql ({error}): install FreeTDS (`apt-get install freetds-bin`)")
        });
    let mut stdin = child.stdin.take().expect("tsql stdin is piped");
    // tsql may already have given up (a refused dialect), so a failed write is not an error.
    let _ = stdin.write_all(b"SELECT 1\ngo\nexit\n").await;
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("tsql finished in time")
        .expect("tsql ran");
    let _ = std::fs::remove_file(&conf);
    TsqlRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What SQL Server 2019/2022 do with each dialect FreeTDS 1.3 offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// Logs in and answers `SELECT 1`; LOGIN7 carried this TDSVersion (echoed in LOGINACK).
    Spoken(u32),
    /// The first message is not PRELOGIN (TDS 7.0 sends LOGIN7 0x10 first, TDS 4.2 and 5.0 a
    /// pre-TDS 7 login 0x02): closed without a response (MS-TDS 3.3.5.1).
    RefusedFirstByte(u8),
}

/// FreeTDS 1.3's `tds version` values. "8.0" is its old alias of the newest 7.x it speaks
/// (its net.c logs "Connecting with protocol version 7.4"); FreeTDS 1.3 has no TDS 8.0 strict.
const DIALECTS: &[(&str, Dialect)] = &[
    ("4.2", Dialect::RefusedFirstByte(0x02)),
    ("5.0", Dialect::RefusedFirstByte(0x02)),
    ("7.0", Dialect::RefusedFirstByte(0x10)),
    ("7.1", Dialect::Spoken(0x7100_0001)),
    ("7.2", Dialect::Spoken(0x7209_0002)),
    ("7.3", Dialect::Spoken(0x730B_0003)),
    ("7.4", Dialect::Spoken(0x7400_0004)),
    ("8.0", Dialect::Spoken(0x7400_0004)),
];

fn assert_refused(run: &TsqlRun, record: &ClientRecord, what: &str) {
    assert!(
        !run.success || !run.stdout.contains("(1 row affected)"),
        "{what}: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("Unexpected EOF from the server") || !run.success,
        "{what}: stderr {}",
        run.stderr
    );
    assert!(!record.logged_in, "{what}: {record:?}");
    assert_eq!(record.replied_encryption, None, "{what}: no PRELOGIN reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsql_every_tds_version_in_every_setting() {
    // (client `encryption`, server setting): FreeTDS's default `request` against every server
    // setting, and `require` / `off` against SQL Server's default.
    let settings = [
        ("request", EncryptionSetting::None),
        ("request", EncryptionSetting::Off),
        ("request", EncryptionSetting::Force),
        ("request", EncryptionSetting::StrictOnly),
        ("request", EncryptionSetting::StrictAndLegacy),
        ("require", EncryptionSetting::Off),
        ("off", EncryptionSetting::Off),
    ];
    for (client, setting) in settings {
        let running = start(EmulatorConfig::new().encryption(setting)).await;
        let port = running.emulator.local_addr().port();
        let mut seen = 0;
        for &(tds_version, dialect) in DIALECTS {
            let what = format!("tds version {tds_version}, client {client}, server {setting}");
            // FreeTDS refuses TLS for TDS 4.x/5.0 itself ("Encryption not supported using
            // TDS 4.x") before sending anything; with `off` it sends its pre-TDS 7 login.
            let client_setting = if tds_version.starts_with('7') || tds_version == "8.0" {
                client
            } else {
                "off"
            };
            let run = tsql_speaking(port, tds_version, client_setting).await;
            // tsql may have made more than one connection (FreeTDS retries other versions
            // after a failure); its first is this dialect's.
            let clients = running.emulator.clients();
            let record = clients
                .get(seen)
                .cloned()
                .unwrap_or_else(|| panic!("{what}: tsql did not connect: stderr {}", run.stderr));
            seen = clients.len();
            match dialect {
                Dialect::RefusedFirstByte(first) => {
                    assert_eq!(record.first_byte, Some(first), "{what}");
                    assert_refused(&run, &record, &what);
                }
                Dialect::Spoken(_) if setting == EncryptionSetting::StrictOnly => {
                    // Force Strict Encryption: a plaintext PRELOGIN gets a reset, no reply.
                    assert_eq!(record.first_byte, Some(0x12), "{what}");
                    assert_refused(&run, &record, &what);
                }
                Dialect::Spoken(tds) => {
                    assert!(
                        run.success
                            && run.stdout.lines().any(|line| line.trim() == "1")
                            && run.stdout.contains("(1 row affected)"),
                        "{what}: stdout {} stderr {}",
                        run.stdout,
                        run.stderr
                    );
                    assert_eq!(record.tds_version, Some(tds), "{what}");
                    assert!(record.logged_in, "{what}: {record:?}");
                    assert_eq!(record.queries, 1, "{what}");
                }
            }
        }
        let stats = running.emulator.stats();
        // 4.2, 5.0 and 7.0 on every server (more where FreeTDS fell back to an older version
        // after a refusal); nothing refused for its LOGIN7 version (FreeTDS never sends a 7.0
        // LOGIN7 after a PRELOGIN).
        assert!(
            stats.unknown_first_message >= 3,
            "{client} x {setting}: {stats:?}"
        );
        assert_eq!(
            stats.tds_version_refused, 0,
            "{client} x {setting}: {stats:?}"
        );
        running.shutdown().await;
    }
}
