//! The MS-TDS encryption matrix (tds-handshake.md §3.2) against tiberius 0.13: every server
//! setting × every tiberius encryption level, with the client's certificate trust done properly
//! (the emulator's CA trusted, hostname checked).

mod common;

use common::{HANG_TIMEOUT, Trust, client_config, connect, io_kind, select_one, start};
use std::io::ErrorKind;
use tds_emulator::{EmulatorConfig, Encryption, EncryptionSetting, Termination};
use tiberius::EncryptionLevel;

/// What a cell of the matrix must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Logs in and `SELECT 1` returns 1. `tls`: whether a TLS handshake ran; `login_only`:
    /// whether only LOGIN7 was encrypted.
    LoggedIn { tls: bool, login_only: bool },
    /// The server replied and then reset (matrix termination), or reset with no reply
    /// (strict-only): tiberius `Io { kind: ConnectionReset }` (10054).
    Reset,
    /// The server declined the level the client required: tiberius refuses on the reply.
    Declined,
    /// TLS-first client against a server without TDS 8.0: the server stays silent (SQL Server
    /// 2019), tiberius's handshake timeout fires.
    TimedOut,
    /// tiberius quirk: (Off, NOT_SUP) → tiberius starts TLS although the server said NOT_SUP
    /// (§3.4); the server, expecting LOGIN7, sees a 0x12 packet and closes: tiberius fails on
    /// the closed stream (`Io { UnexpectedEof, "tls handshake eof" }`).
    TlsAgainstNoTls,
}

use EncryptionLevel::{NotSupported, Off, On, Required, Strict};
use EncryptionSetting as S;
use Expect::*;

const PLAIN: Expect = LoggedIn {
    tls: false,
    login_only: false,
};
const FULL: Expect = LoggedIn {
    tls: true,
    login_only: false,
};
const LOGIN_ONLY: Expect = LoggedIn {
    tls: true,
    login_only: true,
};

/// The table, written from the matrix (client byte → server column → reply, terminate) and
/// tiberius's documented reactions (§3.4), not from what the code happens to do.
const CASES: &[(EncryptionSetting, EncryptionLevel, Expect)] = &[
    // NOT_SUP column: no TLS at all.
    (S::None, NotSupported, PLAIN),  // NOT_SUP → NOT_SUP, none
    (S::None, Off, TlsAgainstNoTls), // OFF → NOT_SUP, none; tiberius maps it to On anyway
    (S::None, On, Declined),         // ON → NOT_SUP + terminate; tiberius refuses first
    (S::None, Required, Declined),   // REQ → NOT_SUP + terminate
    (S::None, Strict, TimedOut),     // 0x16 first byte, no TDS 8.0
    // OFF column: SQL Server's default.
    (S::Off, NotSupported, PLAIN), // NOT_SUP → NOT_SUP
    (S::Off, Off, LOGIN_ONLY),     // OFF → OFF: login-only encryption
    (S::Off, On, FULL),            // ON → ON
    (S::Off, Required, FULL),      // REQ → ON
    (S::Off, Strict, TimedOut),
    // ON column: Force Encryption.
    (S::Force, NotSupported, Reset), // NOT_SUP → REQ + terminate: tiberius tries TLS, RST
    (S::Force, Off, FULL),           // OFF → REQ: full
    (S::Force, On, FULL),
    (S::Force, Required, FULL),
    (S::Force, Strict, TimedOut),
    // Force Strict Encryption: TDS 8.0 only.
    (S::StrictOnly, NotSupported, Reset), // plaintext PRELOGIN → RST, no reply
    (S::StrictOnly, Off, Reset),
    (S::StrictOnly, On, Reset),
    (S::StrictOnly, Required, Reset),
    (S::StrictOnly, Strict, FULL),
    // Strict and legacy on one port: 0x12 → the OFF column, 0x16 → strict.
    (S::StrictAndLegacy, NotSupported, PLAIN),
    (S::StrictAndLegacy, Off, LOGIN_ONLY),
    (S::StrictAndLegacy, On, FULL),
    (S::StrictAndLegacy, Required, FULL),
    (S::StrictAndLegacy, Strict, FULL),
];

/// The PRELOGIN ENCRYPTION byte tiberius sends per level (§3.4; Strict sends 0x03 inside TLS).
fn offered_byte(level: EncryptionLevel) -> Encryption {
    match level {
        NotSupported => Encryption::NOT_SUP,
        Off => Encryption::OFF,
        On => Encryption::ON,
        Required | Strict => Encryption::REQ,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setting_against_every_tiberius_level() {
    let mut failures = Vec::new();
    for &(setting, level, expect) in CASES {
        let running = start(EmulatorConfig::new().encryption(setting)).await;
        let mut config = client_config(&running, level, Trust::Ca);
        if expect == TimedOut {
            config.handshake_timeout(Some(HANG_TIMEOUT));
        }
        let outcome = connect(&running, config).await;
        let case = format!("{setting} x {level:?}: expected {expect:?}");
        match (expect, outcome) {
            (LoggedIn { tls, login_only }, Ok(mut client)) => {
                assert_eq!(select_one(&mut client).await, (1, 1), "{case}");
                drop(client);
                let record = &running.emulator.clients()[0];
                assert!(record.logged_in, "{case}: {record:?}");
                assert_eq!(record.started_with_tls, Some(level == Strict), "{case}");
                assert_eq!(
                    record.offered_encryption,
                    Some(offered_byte(level)),
                    "{case}"
                );
                assert_eq!(record.tls_version.is_some(), tls, "{case}: {record:?}");
                assert_eq!(record.login_only_encryption, login_only, "{case}");
                assert_eq!(record.user.as_deref(), Some("sa"), "{case}");
                assert_eq!(record.tds_version, Some(0x7400_0004), "{case}");
                if level == Strict {
                    assert_eq!(record.alpn.as_deref(), Some("tds/8.0"), "{case}");
                    assert_eq!(
                        record.replied_encryption,
                        Some(Encryption::NOT_SUP),
                        "{case}"
                    );
                }
            }
            (Reset, Err(error)) => {
                if io_kind(&error) != Some(ErrorKind::ConnectionReset) {
                    failures.push(format!("{case}, got {error:?}"));
                }
                let stats = running.emulator.stats();
                assert!(
                    running
                        .emulator
                        .wait_for_stats(|s| s.resets_sent == 1, common::PATIENCE)
                        .await,
                    "{case}: {stats:?}"
                );
                let record = &running.emulator.clients()[0];
                assert_eq!(
                    record.offered_encryption,
                    Some(offered_byte(level)),
                    "{case}"
                );
                if setting == S::StrictOnly {
                    assert_eq!(record.replied_encryption, None, "{case}: no reply");
                } else {
                    assert!(record.terminated_by_matrix, "{case}");
                    assert_eq!(record.replied_encryption, Some(Encryption::REQ), "{case}");
                }
            }
            (Declined, Err(tiberius::error::Error::Protocol(text)))
                if text.contains("Server does not allow the requested encryption level") =>
            {
                let record = &running.emulator.clients()[0];
                assert_eq!(
                    record.replied_encryption,
                    Some(Encryption::NOT_SUP),
                    "{case}"
                );
                assert!(record.terminated_by_matrix, "{case}");
            }
            (TimedOut, Err(error)) if io_kind(&error) == Some(ErrorKind::TimedOut) => {
                let record = &running.emulator.clients()[0];
                assert_eq!(record.started_with_tls, Some(true), "{case}");
                assert_eq!(running.emulator.stats().tls_first_refused, 1, "{case}");
            }
            (TlsAgainstNoTls, Err(error)) => {
                let stats = running.emulator.stats();
                // The server closes (FIN) on the unexpected 0x12: "tls handshake eof".
                assert_eq!(
                    io_kind(&error),
                    Some(ErrorKind::UnexpectedEof),
                    "{case}: {error:?}"
                );
                assert_eq!(stats.protocol_errors, 1, "{case}: {stats:?}");
                assert_eq!(stats.logged_in, 0, "{case}");
            }
            (expect, outcome) => failures.push(format!(
                "{setting} x {level:?}: expected {expect:?}, got {:?}",
                outcome.err()
            )),
        }
        running.shutdown().await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiberius_reads_a_reset_or_an_eof_after_the_terminating_reply() {
    // Force Encryption answers tiberius's NotSupported with REQ and terminates; tiberius tries
    // TLS anyway (§3.4) and meets the end of the connection.
    for (termination, kind) in [
        (Termination::Reset, ErrorKind::ConnectionReset),
        (Termination::Fin, ErrorKind::UnexpectedEof),
    ] {
        let running = start(
            EmulatorConfig::new()
                .encryption(S::Force)
                .matrix_termination(termination),
        )
        .await;
        let config = client_config(&running, NotSupported, Trust::Ca);
        let error = connect(&running, config)
            .await
            .err()
            .unwrap_or_else(|| panic!("{termination:?}: the login must fail"));
        assert_eq!(io_kind(&error), Some(kind), "{termination:?}: {error:?}");
        let record = &running.emulator.clients()[0];
        assert!(record.terminated_by_matrix, "{termination:?}");
        assert_eq!(record.replied_encryption, Some(Encryption::REQ));
        let (resets, closes) = match termination {
            Termination::Reset => (1, 0),
            Termination::Fin => (0, 1),
        };
        assert!(
            running
                .emulator
                .wait_for_stats(
                    |s| s.resets_sent == resets && s.closes_sent == closes,
                    common::PATIENCE
                )
                .await,
            "{termination:?}: {:?}",
            running.emulator.stats()
        );
        running.shutdown().await;
    }
}
