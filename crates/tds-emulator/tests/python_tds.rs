//! A real client nobody here wrote: python-tds (`pip install python-tds`, module `pytds`) logs
//! in and runs `SELECT 1`. Without a cafile pytds offers ENCRYPT_NOT_SUP, so the `off` and
//! `none` settings both answer NOT_SUP and the login is plaintext.
//!
//! This test FAILS (never skips) when python3 or pytds is missing: CI must run
//! `pip install python-tds`.

mod common;

use std::process::Stdio;

use common::{PASSWORD, PATIENCE, USER, start};
use tds_emulator::{EmulatorConfig, Encryption, EncryptionSetting};
use tokio::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pytds_select_one.py");

async fn run_pytds(port: u16) -> String {
    let output = tokio::time::timeout(
        PATIENCE,
        Command::new("python3")
            .arg(SCRIPT)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg(USER)
            .arg(PASSWORD)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("pytds finished in time")
    .unwrap_or_else(|error| {
        panic!("cannot run python3 ({error}): install Python 3 and run `pip install python-tds`")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(3),
        "python-tds is not installed: run `pip install python-tds` ({stderr})"
    );
    assert!(
        output.status.success(),
        "pytds failed ({:?}): stdout {stdout} stderr {stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytds_logs_in_and_selects_one() {
    for setting in [EncryptionSetting::Off, EncryptionSetting::None] {
        let running = start(EmulatorConfig::new().encryption(setting)).await;
        let stdout = run_pytds(running.emulator.local_addr().port()).await;
        assert!(stdout.contains("RESULT 1"), "{setting}: {stdout}");
        assert!(stdout.contains("ROWS 3 5"), "{setting}: {stdout}");
        let record = &running.emulator.clients()[0];
        assert_eq!(record.started_with_tls, Some(false), "{setting}");
        assert_eq!(
            record.offered_encryption,
            Some(Encryption::NOT_SUP),
            "{setting}"
        );
        assert_eq!(
            record.replied_encryption,
            Some(Encryption::NOT_SUP),
            "{setting}"
        );
        assert_eq!(record.user.as_deref(), Some(USER), "{setting}");
        assert_eq!(record.database.as_deref(), Some("master"), "{setting}");
        assert!(record.logged_in, "{setting}");
        assert_eq!(running.emulator.stats().queries, 2, "{setting}");
        running.shutdown().await;
    }
}
