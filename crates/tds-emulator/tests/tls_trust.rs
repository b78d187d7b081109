//! Certificate trust is the client's business: a client that does not trust the emulator's CA
//! fails with a certificate error, in TDS 7 and in strict mode; `trust_cert()` works.

mod common;

use common::{Trust, client_config, connect, select_one, start};
use tds_emulator::{EmulatorConfig, EncryptionSetting};
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
