//! The certificate findings against the emulator serving certificates generated here: an
//! expired one and one issued for another host.

mod common;

use std::path::PathBuf;

use common::{cause_of, codes, start};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use tds_doctor::certificate::Validation;
use tds_emulator::{CertificateSource, EmulatorConfig, EncryptionSetting};

/// PEM files of a CA and of a leaf it signed for `names`, valid from `from` to `until` (years).
struct Pems {
    chain: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Pems {
    fn remove(&self) {
        for path in [&self.chain, &self.key, &self.ca] {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn issue(tag: &str, names: &[&str], from: i32, until: i32) -> Pems {
    issue_by(tag, names, from, until, KeyPair::generate().unwrap())
}

/// As [`issue`], with a CA whose key (hence the leaf's signature algorithm) is `ca_key`.
fn issue_by(tag: &str, names: &[&str], from: i32, until: i32, ca_key: KeyPair) -> Pems {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tds-doctor test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let mut leaf_params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, names[0]);
    leaf_params.not_before = date_time_ymd(from, 1, 1);
    leaf_params.not_after = date_time_ymd(until, 1, 1);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();

    let dir = std::env::temp_dir();
    let base = format!("tds-doctor-{}-{tag}", std::process::id());
    let pems = Pems {
        chain: dir.join(format!("{base}-chain.pem")),
        key: dir.join(format!("{base}-key.pem")),
        ca: dir.join(format!("{base}-ca.pem")),
    };
    std::fs::write(&pems.chain, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(&pems.key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&pems.ca, ca.pem()).unwrap();
    pems
}

fn serving(pems: &Pems) -> EmulatorConfig {
    EmulatorConfig::new()
        .encryption(EncryptionSetting::Force)
        .certificate(CertificateSource::Pem {
            chain: pems.chain.clone(),
            key: pems.key.clone(),
            ca: Some(pems.ca.clone()),
        })
}

#[tokio::test]
async fn expired_certificate_is_said() {
    let pems = issue("expired", &["localhost", "127.0.0.1"], 2020, 2021);
    let server = start(serving(&pems)).await;
    let report = server.probe().await;

    let cert = report.certificate.as_ref().expect("a certificate was seen");
    assert_eq!(cert.not_after, "2021-01-01T00:00:00Z");
    assert!(cert.days_to_expiry < 0);
    assert!(!cert.time_valid);
    assert!(cert.host_name_match);
    assert!(
        matches!(&cert.ca_file, Some(Validation::Invalid { error }) if error.contains("certificate expired")),
        "{:?}",
        cert.ca_file
    );
    assert_eq!(
        cause_of(&report, "certificate_expired"),
        Some("certificate_untrusted")
    );
    // A validating client fails; one that trusts any certificate gets through.
    let required = report
        .clients
        .iter()
        .find(|c| c.level == "required")
        .unwrap();
    assert_eq!(required.cause, Some("certificate_untrusted"));
    assert_eq!(report.exit_code(), 1);
    server.shutdown().await;
    pems.remove();
}

#[tokio::test]
async fn certificate_for_another_host_is_said() {
    let pems = issue("misnamed", &["db.example.com"], 2024, 2090);
    let server = start(serving(&pems)).await;
    let report = server.probe().await;

    let cert = report.certificate.as_ref().expect("a certificate was seen");
    assert_eq!(cert.sans, ["DNS:db.example.com"]);
    assert!(!cert.host_name_match);
    assert!(cert.time_valid);
    assert!(
        matches!(&cert.ca_file, Some(Validation::Invalid { error }) if error.contains("not valid for name")),
        "{:?}",
        cert.ca_file
    );
    assert!(codes(&report).contains(&"certificate_name_mismatch"));
    assert!(!codes(&report).contains(&"certificate_expired"));
    server.shutdown().await;
    pems.remove();
}

#[tokio::test]
async fn sha512_signature_is_flagged() {
    // A P-521 CA signs with ecdsa-with-SHA512, a hash Schannel refuses under TLS 1.2.
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let pems = issue_by("sha512", &["localhost", "127.0.0.1"], 2024, 2090, ca_key);
    let server = start(serving(&pems)).await;
    let report = server.probe().await;

    let cert = report.certificate.as_ref().expect("a certificate was seen");
    assert_eq!(cert.signature_algorithm, "ecdsa-with-SHA512");
    assert!(cert.weak_signature);
    assert_eq!(
        cause_of(&report, "weak_signature"),
        Some("tls_handshake_rejected")
    );
    server.shutdown().await;
    pems.remove();
}

#[tokio::test]
async fn good_certificate_gives_its_facts() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await;
    let report = server.probe().await;
    let cert = report.certificate.as_ref().expect("a certificate was seen");
    assert_eq!(cert.subject, "CN=localhost");
    assert_eq!(cert.issuer, "CN=tds-emulator test CA");
    assert_eq!(cert.sans, ["DNS:localhost", "IP:127.0.0.1"]);
    assert_eq!(cert.chain_length, 2);
    assert!(!cert.weak_signature);
    assert_eq!(cert.signature_algorithm, "ecdsa-with-SHA256");
    assert_eq!(cert.key, "EC 256");
    assert_eq!(cert.ca_file, Some(Validation::Valid));
    // The emulator's CA is in no system store.
    assert!(!cert.system_roots.is_valid());
    server.shutdown().await;
}
