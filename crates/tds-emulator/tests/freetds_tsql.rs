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
use tds_emulator::{EmulatorConfig, Encryption, EncryptionSetting};
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
