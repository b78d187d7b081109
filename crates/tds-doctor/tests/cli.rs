//! The binary: exit codes, `--json`, `explain`, and usage errors.

mod common;

use std::process::Output;

use common::{PATIENCE, start};
use serde_json::Value;
use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tokio::process::Command;

async fn run(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_tds-doctor"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, child)
        .await
        .expect("tds-doctor ends within its documented bounds")
        .expect("tds-doctor runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_json_and_exit_code_for_a_server_without_encryption() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::None)).await;
    let target = format!("127.0.0.1,{}", server.port());
    let output = run(&["probe", &target, "--timeout", "3", "--json"]).await;

    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(json["posture"]["encryption"], "unavailable");
    assert_eq!(json["findings"][0]["code"], "encryption_unavailable");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_table_for_a_force_encryption_server_exits_healthy() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await;
    let target = format!("127.0.0.1,{}", server.port());
    let ca = server.ca_path.display().to_string();
    let output = run(&["probe", &target, "--timeout", "3", "--ca", &ca]).await;

    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("force encryption           yes"), "{text}");
    assert!(
        text.contains("Encrypt=DANGER_PLAINTEXT   connects   encryption_required"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_the_connection_string_and_never_prints_it() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::StrictOnly)).await;
    let target = format!("127.0.0.1,{}", server.port());
    let connection = format!(
        "Server=127.0.0.1,{};User Id=sa;Password=Top-Secret-1;Encrypt=true;TrustServerCertificateCA={}",
        server.port(),
        server.ca_path.display()
    );
    let output = run(&[
        "explain",
        &target,
        "--timeout",
        "3",
        "--connection-string",
        &connection,
    ])
    .await;

    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Result: connects in 2 handshake(s)"),
        "{text}"
    );
    assert!(text.contains("strict_required"), "{text}");
    assert!(!text.contains("Top-Secret-1"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("Top-Secret-1"));
    server.shutdown().await;
}

#[tokio::test]
async fn usage_errors_exit_2_and_help_documents_the_exit_codes() {
    let output = run(&["probe", "db,notaport"]).await;
    assert_eq!(output.status.code(), Some(2));
    let output = run(&["probe"]).await;
    assert_eq!(output.status.code(), Some(2));
    let output = run(&["--help"]).await;
    let help = stdout(&output);
    for line in ["0  healthy", "1  findings", "2  usage", "3  unreachable"] {
        assert!(help.contains(line), "{help}");
    }
}

#[tokio::test]
async fn unreachable_server_exits_3() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let output = run(&["probe", &format!("127.0.0.1,{port}"), "--timeout", "3"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
}
