//! The binary: complete --help, exit code 2 on bad arguments, prints address and CA path.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tds-emulator");

#[test]
fn help_documents_every_setting_and_the_fault_syntax() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "--encryption",
        "strict-and-legacy",
        "--tds7-tls",
        "--strict-tls",
        "--server-version",
        "--user",
        "--password",
        "--database",
        "--tls-first",
        "--cert",
        "--key",
        "--ca-out",
        "--fault",
        "reset-before-prelogin-reply",
        "alert:D[:raw|:wrapped]",
        "login-error:N",
        "stall:PHASE",
        "p:P[:seed:S]",
        "nonzero-threadid",
        "old-server-hello[:1.0|:1.1]",
        "--terminate",
        "--certificate-flaw",
        "--route",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn bad_arguments_exit_with_code_2_and_a_clear_error() {
    for args in [
        ["--fault", "explode@always"],
        ["--fault", "alert:300"],
        ["--fault", "stall:tls@every:0"],
        ["--encryption", "forced"],
        ["--server-version", "sixteen"],
        ["--route", "127.0.0.1:0"],
        ["--route", "no-port"],
        ["--fault", "old-server-hello:1.2"],
        ["--terminate", "slam"],
        ["--certificate-flaw", "sha1"],
    ] {
        let output = Command::new(BIN).args(args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid"), "{args:?}: {stderr}");
    }
}

#[test]
fn prints_address_and_ca_path() {
    let ca = std::env::temp_dir().join(format!("tds-emulator-cli-ca-{}.pem", std::process::id()));
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--encryption",
            "force",
            "--ca-out",
        ])
        .arg(&ca)
        .args(["--fault", "reset-before-prelogin-reply@first:2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = lines.next().expect("a line").expect("utf-8");
    let second = lines.next().expect("a line").expect("utf-8");
    child.kill().expect("kill our own child");
    let _ = child.wait();
    assert!(Instant::now() < deadline);
    assert!(first.starts_with("listening on 127.0.0.1:"), "{first}");
    assert_eq!(second, format!("CA certificate: {}", ca.display()));
    let pem = std::fs::read_to_string(&ca).expect("CA written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let _ = std::fs::remove_file(ca);
}
