//! The real middleware against the failure shapes the emulator learned to produce (issue 13):
//! an unpatched server's TLS 1.0/1.1 ServerHello, and server certificates that are expired,
//! issued for another name, or signed with SHA-1. Each is a deterministic cause: one attempt,
//! then an error that names it. The client trusts the emulator's CA in every case, so the shape
//! under test is the only thing wrong.
//!
//! The SHA-1 certificate is made with the `openssl` command (Debian's ca-certificates brings
//! it): neither rcgen nor aws-lc-rs sign with SHA-1. The test fails, never skips, without it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tds_emulator::{
    CertificateFlaw, CertificateSource, Emulator, EmulatorConfig, EncryptionSetting, Fault,
    OldTlsVersion, Schedule,
};
use tower::{Service, ServiceExt};

/// Upper bound for one connect through the middleware (generous for a slow shared machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// A running emulator and the file holding the CA the client trusts.
struct Running {
    emulator: Emulator,
    ca_path: PathBuf,
}

impl Running {
    async fn start(config: EmulatorConfig) -> Running {
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let ca_path = std::env::temp_dir().join(format!(
            "tiberius-tower-shapes-ca-{}-{}.pem",
            std::process::id(),
            emulator.local_addr().port()
        ));
        emulator.write_ca_pem(&ca_path).expect("CA written");
        Running { emulator, ca_path }
    }

    async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.ca_path);
        tokio::time::timeout(PATIENCE, self.emulator.shutdown())
            .await
            .expect("emulator shutdown finished");
    }
}

/// What the middleware's error says: its cause, how many attempts it made, its message.
struct Failure {
    cause: tiberius_tower::Cause,
    attempts: usize,
    message: String,
}

/// Connects through `PreloginLayer` + `Connector` at `Required`, trusting the emulator's CA,
/// and returns what the middleware's error says (the login must fail).
async fn connect_error(running: &Running, what: &str) -> Failure {
    let mut service = tower::ServiceBuilder::new()
        .layer(tiberius_tower::PreloginLayer::new(
            tiberius_tower::ConnectPolicy::new(),
        ))
        .service(tiberius_tower::Connector::new());
    let request = tiberius_tower::ConnectRequest::builder()
        .host("localhost")
        .port(running.emulator.local_addr().port())
        .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
        .encryption(tiberius_tower::EncryptionLevel::Required)
        .trust_cert_ca(running.ca_path.clone())
        .build();
    tokio::time::timeout(PATIENCE, async {
        let ready = service.ready().await.expect("the service is ready");
        match ready.call(request).await {
            Ok(_) => panic!("{what}: the login must fail"),
            Err(error) => Failure {
                cause: error.cause(),
                attempts: error.attempts().len(),
                message: error.to_string(),
            },
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the connect did not finish in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_server_hello_is_a_tls_version_mismatch() {
    for version in [OldTlsVersion::Tls10, OldTlsVersion::Tls11] {
        let what = format!("{version:?} ServerHello");
        let running = Running::start(
            EmulatorConfig::new()
                .encryption(EncryptionSetting::Off)
                .fault(Fault::OldServerHello(version), Schedule::Always),
        )
        .await;
        let error = connect_error(&running, &what).await;
        assert_eq!(
            error.cause,
            tiberius_tower::Cause::TlsVersionMismatch,
            "{what}: {}",
            error.message
        );
        assert_eq!(error.attempts, 1, "{what}: deterministic, no retry");
        assert_eq!(running.emulator.stats().accepted, 1, "{what}");
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_misnamed_certificates_are_untrusted() {
    for flaw in [CertificateFlaw::Expired, CertificateFlaw::WrongName] {
        for setting in [EncryptionSetting::Off, EncryptionSetting::Force] {
            let what = format!("{flaw:?} certificate, server {setting}");
            let running = Running::start(
                EmulatorConfig::new()
                    .encryption(setting)
                    .certificate_flaw(flaw),
            )
            .await;
            let error = connect_error(&running, &what).await;
            assert_eq!(
                error.cause,
                tiberius_tower::Cause::CertificateUntrusted,
                "{what}: {}",
                error.message
            );
            assert_eq!(error.attempts, 1, "{what}: deterministic, no retry");
            assert_eq!(running.emulator.stats().logged_in, 0, "{what}");
            running.shutdown().await;
        }
    }
}

/// Runs `openssl` in `dir`; panics with its output when it fails.
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

/// Writes a CA (ca.pem) and a localhost / 127.0.0.1 leaf it signs with SHA-1 (leaf.pem,
/// leaf.key) into `dir`.
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
async fn a_sha1_signed_certificate_is_untrusted() {
    let dir =
        std::env::temp_dir().join(format!("tiberius-tower-shapes-sha1-{}", std::process::id()));
    sha1_signed_leaf(&dir);
    let running = Running::start(
        EmulatorConfig::new()
            .encryption(EncryptionSetting::Off)
            .certificate(CertificateSource::Pem {
                chain: dir.join("leaf.pem"),
                key: dir.join("leaf.key"),
                ca: Some(dir.join("ca.pem")),
            }),
    )
    .await;
    let error = connect_error(&running, "SHA-1 certificate").await;
    assert_eq!(
        error.cause,
        tiberius_tower::Cause::CertificateUntrusted,
        "{}",
        error.message
    );
    assert_eq!(error.attempts, 1, "deterministic, no retry");
    assert_eq!(running.emulator.stats().logged_in, 0);
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
