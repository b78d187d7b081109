//! Post-login behaviour: sized result sets, negotiated packet size, TLS versions.

mod common;

use common::{Trust, client_config, connect, select_one, start};
use futures_util::TryStreamExt;
use tds_emulator::{EmulatorConfig, EncryptionSetting, TlsProtocol};
use tiberius::EncryptionLevel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sized_result_sets_arrive_whole() {
    let running = start(EmulatorConfig::new()).await;
    for (level, packet_size) in [
        (EncryptionLevel::Required, 4096),
        (EncryptionLevel::Off, 32767),
        (EncryptionLevel::NotSupported, 512),
    ] {
        let mut config = client_config(&running, level, Trust::Ca);
        config.packet_size(packet_size);
        let mut client = connect(&running, config).await.expect("login");
        for query in ["SELECT ROWS 1000 BYTES 1000", "select rows 3 bytes 8000"] {
            let rows: Vec<tiberius::Row> = client
                .simple_query(query)
                .await
                .expect("batch")
                .into_first_result()
                .await
                .expect("rows");
            let expected: (usize, usize) = if query.contains("1000") {
                (1000, 1000)
            } else {
                (3, 8000)
            };
            assert_eq!(rows.len(), expected.0, "{query}");
            for row in &rows {
                let cell: &[u8] = row.get(0).expect("bytes");
                assert_eq!(cell.len(), expected.1);
                assert_eq!(cell[250], 250);
            }
            // The same marker through RPC (sp_executesql).
            let count = client
                .query(query, &[])
                .await
                .expect("rpc")
                .into_row_stream()
                .try_fold(0usize, |n, _| async move { Ok(n + 1) })
                .await
                .expect("rpc rows");
            assert_eq!(count, expected.0);
        }
        assert_eq!(select_one(&mut client).await, (1, 1));
    }
    let clients = running.emulator.clients();
    let sizes: Vec<_> = clients.iter().map(|c| c.requested_packet_size).collect();
    assert_eq!(sizes, [Some(4096), Some(32767), Some(512)]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_per_mode() {
    // Defaults: TDS 7 negotiates TLS 1.2 (like SQL Server), strict negotiates 1.3.
    let running = start(EmulatorConfig::new().encryption(EncryptionSetting::StrictAndLegacy)).await;
    for level in [EncryptionLevel::Required, EncryptionLevel::Strict] {
        let mut client = connect(&running, client_config(&running, level, Trust::Ca))
            .await
            .expect("login");
        assert_eq!(select_one(&mut client).await, (1, 1));
    }
    let versions: Vec<_> = running
        .emulator
        .clients()
        .into_iter()
        .map(|c| c.tls_version)
        .collect();
    assert_eq!(
        versions,
        [Some("TLSv1_2".to_owned()), Some("TLSv1_3".to_owned())]
    );
    running.shutdown().await;

    // TLS 1.3 inside TDS 7 works because no session tickets are sent (§4.1 pitfall).
    let running = start(
        EmulatorConfig::new()
            .tds7_tls_versions(&[TlsProtocol::Tls13])
            .strict_tls_versions(&[TlsProtocol::Tls12])
            .encryption(EncryptionSetting::StrictAndLegacy),
    )
    .await;
    for level in [
        EncryptionLevel::Required,
        EncryptionLevel::Off,
        EncryptionLevel::Strict,
    ] {
        let mut client = connect(&running, client_config(&running, level, Trust::Ca))
            .await
            .expect("login");
        assert_eq!(select_one(&mut client).await, (1, 1));
    }
    let versions: Vec<_> = running
        .emulator
        .clients()
        .into_iter()
        .map(|c| c.tls_version)
        .collect();
    assert_eq!(
        versions,
        [
            Some("TLSv1_3".to_owned()),
            Some("TLSv1_3".to_owned()),
            Some("TLSv1_2".to_owned())
        ]
    );
    running.shutdown().await;
}
