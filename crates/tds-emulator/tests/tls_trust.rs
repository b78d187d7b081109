//! Certificate trust is the client's business: a client that does not trust the emulator's CA
//! fails with a certificate error, in TDS 7 and in strict mode; `trust_cert()` works. A trusted
//! CA does not save a leaf that is expired, issued for another name, or signed with SHA-1.

mod common;

use std::path::Path;

use common::{Trust, client_config, connect, select_one, start};
use tds_emulator::{CertificateFlaw, CertificateSource, EmulatorConfig, EncryptionSetting};
use tiberius::EncryptionLevel;
use tiberius::error::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_ca_is_a_certificate_error() {
    for (setting, level) in [
        (EncryptionSetting::Off, EncryptionLevel::Required),
        (EncryptionSetting::Force, EncryptionLevel::Off),
        (EncryptionSetting::StrictOnly, EncryptionLevel::Strict),
    ] {
        let running = start(EmulatorConfig::new().encryption(setting)).await;
        let config = client_config(&running, level, Trust::Nothing);
        match connect(&running, config).await {
            Err(Error::Tls(text)) => assert!(
                text.contains("certificate") || text.contains("Certificate"),
                "{setting} x {level:?}: {text}"
            ),
            other => panic!(
                "{setting} x {level:?}: expected Error::Tls, got {:?}",
                other.err()
            ),
        }
        // The emulator saw the handshake fail on the client's side (the client's alert).
        let stats = running.emulator.stats();
        assert_eq!(stats.logged_in, 0, "{setting}: {stats:?}");
        assert!(
            running
                .emulator
                .wait_for_stats(
                    |s| s.tls_failed == 1 || s.tls_started == 1,
                    common::PATIENCE
                )
                .await
        );
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_cert_and_ip_address_names_work() {
    let running = start(EmulatorConfig::new().encryption(EncryptionSetting::StrictAndLegacy)).await;
    for level in [EncryptionLevel::Required, EncryptionLevel::Strict] {
        // trust_cert(): no validation at all.
        let config = client_config(&running, level, Trust::Any);
        let mut client = connect(&running, config).await.expect("trust_cert login");
        assert_eq!(select_one(&mut client).await, (1, 1));
        // The CA trusted, connecting by IP: the leaf carries 127.0.0.1 as a SAN.
        let mut config = client_config(&running, level, Trust::Ca);
        config.host("127.0.0.1");
        let mut client = connect(&running, config).await.expect("login by IP");
        assert_eq!(select_one(&mut client).await, (1, 1));
    }
    running.shutdown().await;
}

/// The tiberius error text for a certificate the emulator serves with a defect, the CA being
/// trusted (so the defect is the only thing wrong).
async fn certificate_error(config: EmulatorConfig, setting: EncryptionSetting) -> Vec<String> {
    let running = start(config.encryption(setting)).await;
    let mut texts = Vec::new();
    let levels = if setting.accepts_strict() {
        vec![EncryptionLevel::Required, EncryptionLevel::Strict]
    } else {
        vec![EncryptionLevel::Required]
    };
    for level in levels {
        let client = client_config(&running, level, Trust::Ca);
        match connect(&running, client).await {
            Err(Error::Tls(text)) => texts.push(text),
            other => panic!(
                "{setting} x {level:?}: expected Error::Tls, got {:?}",
                other.err()
            ),
        }
    }
    assert_eq!(running.emulator.stats().logged_in, 0);
    running.shutdown().await;
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_misnamed_certificates_are_certificate_errors() {
    for setting in [EncryptionSetting::Off, EncryptionSetting::StrictAndLegacy] {
        for text in certificate_error(
            EmulatorConfig::new().certificate_flaw(CertificateFlaw::Expired),
            setting,
        )
        .await
        {
            assert!(text.contains("certificate expired"), "{setting}: {text}");
        }
        for text in certificate_error(
            EmulatorConfig::new().certificate_flaw(CertificateFlaw::WrongName),
            setting,
        )
        .await
        {
            assert!(
                text.contains(
                    "certificate not valid for name \"localhost\"; certificate is only valid \
                     for DnsName(\"wrong-host.invalid\")"
                ),
                "{setting}: {text}"
            );
        }
    }
}

/// Runs `openssl` with these arguments in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run openssl ({error}): install openssl"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (SHA-256) and a leaf for localhost / 127.0.0.1 signed by it with SHA-1
/// (sha1WithRSAEncryption), written to `dir` as ca.pem, leaf.pem, leaf.key. Neither rcgen nor
/// aws-lc-rs sign with SHA-1, so the real openssl does it.
fn sha1_signed_leaf(dir: &Path) {
    std::fs::create_dir_all(dir).expect("temp dir");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=sha1 test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
         basicConstraints=CA:FALSE\n",
    )
    .expect("extensions written");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "30",
            "-sha1",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha1_signed_certificate_is_a_certificate_error() {
    let dir = std::env::temp_dir().join(format!("tds-emulator-sha1-{}", std::process::id()));
    sha1_signed_leaf(&dir);
    let source = CertificateSource::Pem {
        chain: dir.join("leaf.pem"),
        key: dir.join("leaf.key"),
        ca: Some(dir.join("ca.pem")),
    };
    for setting in [EncryptionSetting::Off, EncryptionSetting::StrictAndLegacy] {
        for text in
            certificate_error(EmulatorConfig::new().certificate(source.clone()), setting).await
        {
            // webpki has no SHA-1: the leaf's algorithm (OID 1.2.840.113549.1.1.5,
            // sha1WithRSAEncryption, DER 06 09 2a 86 48 86 f7 0d 01 01 05) is unsupported.
            assert!(
                text.contains(
                    "UnsupportedSignatureAlgorithmContext { signature_algorithm_id: \
                     [6, 9, 42, 134, 72, 134, 247, 13, 1, 1, 5, 5, 0]"
                ),
                "{setting}: {text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
