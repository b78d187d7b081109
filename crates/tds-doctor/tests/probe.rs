//! `probe` against the emulator in every encryption setting and TLS fault: the findings match
//! what the server was configured to do.

mod common;

use common::{cause_of, codes, start};
use serde_json::Value;
use tds_doctor::report::{PreloginOutcome, TlsOutcome};
use tds_emulator::{EmulatorConfig, EncryptionSetting, Fault, Schedule, TlsProtocol};

fn replied(outcome: &PreloginOutcome) -> Option<&str> {
    match outcome {
        PreloginOutcome::Replied(reply) => Some(&reply.encryption),
        _ => None,
    }
}

#[tokio::test]
async fn force_encryption_server_is_reported_as_force_encryption_on() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await;
    let report = server.probe().await;

    let replies: Vec<_> = report.prelogin.iter().map(|p| replied(&p.result)).collect();
    assert_eq!(replies, [Some("req"), Some("req"), Some("on")]);
    assert_eq!(report.posture.encryption, "forced");
    assert_eq!(report.posture.force_encryption, Some(true));
    assert_eq!(report.posture.version.as_deref(), Some("16.0.4220"));
    assert_eq!(
        cause_of(&report, "force_encryption"),
        Some("encryption_required")
    );
    // One TCP connection per probe, and no login on any of them.
    let stats = server.emulator.stats();
    assert_eq!(stats.accepted, 6);
    assert_eq!(stats.login7_received, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn default_server_offers_encryption_without_forcing_it_and_no_tds8() {
    let server = start(EmulatorConfig::new()).await;
    let report = server.probe().await;

    let replies: Vec<_> = report.prelogin.iter().map(|p| replied(&p.result)).collect();
    assert_eq!(replies, [Some("not_sup"), Some("off"), Some("on")]);
    assert_eq!(report.posture.encryption, "available");
    assert_eq!(report.posture.force_encryption, Some(false));
    // SQL Server 2019 and older stay silent on a TLS-first ClientHello (the emulator's
    // default): a finding after the probe's bound, not a hang.
    assert_eq!(report.tds8.result, TlsOutcome::Timeout);
    assert_eq!(report.posture.tds8, "absent");
    assert_eq!(cause_of(&report, "tds8_absent"), Some("strict_unsupported"));
    assert_eq!(report.exit_code(), 0, "{:#?}", report.findings);
    server.shutdown().await;
}

#[tokio::test]
async fn server_without_encryption_is_reported_as_unavailable() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::None)).await;
    let report = server.probe().await;

    let replies: Vec<_> = report.prelogin.iter().map(|p| replied(&p.result)).collect();
    assert_eq!(replies, [Some("not_sup"), Some("not_sup"), Some("not_sup")]);
    assert_eq!(report.posture.encryption, "unavailable");
    assert!(matches!(
        report.tds7_tls12.result,
        TlsOutcome::NotOffered { .. }
    ));
    assert!(report.certificate.is_none());
    assert_eq!(
        cause_of(&report, "encryption_unavailable"),
        Some("encryption_unavailable")
    );
    assert_eq!(report.exit_code(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn strict_only_server_is_reported_as_tds8_only() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::StrictOnly)).await;
    let report = server.probe().await;

    for probe in &report.prelogin {
        assert_eq!(probe.result, PreloginOutcome::Reset, "{}", probe.offered);
    }
    let TlsOutcome::Negotiated { alpn, .. } = &report.tds8.result else {
        panic!("TLS first should get through: {:?}", report.tds8.result);
    };
    assert_eq!(alpn.as_deref(), Some("tds/8.0"));
    assert_eq!(report.posture.tds8, "required");
    assert_eq!(cause_of(&report, "tds8_only"), Some("strict_required"));
    // The certificate comes from the strict handshake.
    assert_eq!(
        report.certificate.as_ref().map(|c| c.host_name_match),
        Some(true)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn strict_and_legacy_server_accepts_both() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::StrictAndLegacy)).await;
    let report = server.probe().await;

    assert_eq!(replied(&report.prelogin[1].result), Some("off"));
    assert_eq!(report.posture.tds8, "supported");
    assert!(codes(&report).contains(&"tds8_supported"));
    assert_eq!(report.posture.tds7_tls_versions, ["TLS 1.2"]);
    server.shutdown().await;
}

#[tokio::test]
async fn tls_versions_inside_tds7_are_the_ones_the_server_offers() {
    // SQL Server's default: TLS 1.2 only in TDS 7.
    let server = start(EmulatorConfig::new()).await;
    let report = server.probe().await;
    assert_eq!(
        report.tds7_tls12.result.negotiated().map(|v| v.0),
        Some("TLS 1.2")
    );
    assert!(
        matches!(
            report.tds7_tls13.result,
            TlsOutcome::Alert {
                description: 70,
                ..
            }
        ),
        "{:?}",
        report.tds7_tls13.result
    );
    server.shutdown().await;

    // A server asked for TLS 1.3 only inside TDS 7 (SQL Server 2025-like).
    let server = start(EmulatorConfig::new().tds7_tls_versions(&[TlsProtocol::Tls13])).await;
    let report = server.probe().await;
    assert_eq!(
        report.tds7_tls13.result.negotiated().map(|v| v.0),
        Some("TLS 1.3")
    );
    assert!(
        matches!(
            report.tds7_tls12.result,
            TlsOutcome::Alert {
                description: 70,
                ..
            }
        ),
        "{:?}",
        report.tds7_tls12.result
    );
    assert_eq!(
        cause_of(&report, "tds7_tls12_rejected"),
        Some("tls_version_mismatch")
    );
    assert_eq!(report.posture.tds7_tls_versions, ["TLS 1.3"]);
    server.shutdown().await;
}

#[tokio::test]
async fn close_after_client_hello_is_reported_as_tls_rejected() {
    let server = start(
        EmulatorConfig::new()
            .encryption(EncryptionSetting::Force)
            .fault(Fault::ResetAfterClientHello, Schedule::Always),
    )
    .await;
    let report = server.probe().await;

    assert_eq!(report.tds7_tls12.result, TlsOutcome::Reset);
    assert_eq!(report.tds7_tls13.result, TlsOutcome::Reset);
    assert_eq!(
        cause_of(&report, "tds7_tls12_rejected"),
        Some("tls_handshake_rejected")
    );
    assert!(report.clients.iter().any(|c| c.level == "required"
        && !c.connects
        && c.cause == Some("tls_handshake_rejected")));
    assert_eq!(report.exit_code(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn handshake_alert_is_named() {
    let server = start(EmulatorConfig::new().fault(
        Fault::Alert {
            description: 40,
            framing: tds_emulator::AlertFraming::Wrapped,
        },
        Schedule::Always,
    ))
    .await;
    let report = server.probe().await;
    assert_eq!(
        report.tds7_tls12.result,
        TlsOutcome::Alert {
            description: 40,
            name: "handshake_failure".to_owned()
        }
    );
    assert_eq!(
        cause_of(&report, "tds7_tls12_rejected"),
        Some("tls_handshake_rejected")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn json_report_has_the_documented_shape() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await;
    let report = server.probe().await;
    let json: Value = serde_json::to_value(&report).unwrap();

    assert_eq!(json["schema"], 1);
    assert_eq!(json["target"]["port"], u64::from(server.port()));
    assert_eq!(json["prelogin"][0]["offered"], "not_sup");
    assert_eq!(json["prelogin"][0]["result"]["outcome"], "replied");
    assert_eq!(json["prelogin"][0]["result"]["encryption"], "req");
    assert_eq!(json["tds8"]["result"]["outcome"], "timeout");
    assert_eq!(json["tds7_tls12"]["result"]["outcome"], "negotiated");
    assert_eq!(json["tds7_tls12"]["result"]["version"], "TLS 1.2");
    assert_eq!(json["posture"]["force_encryption"], true);
    assert_eq!(json["certificate"]["ca_file"]["result"], "valid");
    assert_eq!(json["clients"][0]["setting"], "Encrypt=DANGER_PLAINTEXT");
    assert_eq!(json["clients"][0]["first_cause"], "encryption_required");
    assert_eq!(json["findings"][0]["severity"], "info");
    assert!(json.get("chain").is_none());
    server.shutdown().await;
}
