//! TLS handshakes the way SQL Server clients run them, over rustls, stopping before any login:
//! TLS first with ALPN `tds/8.0` (TDS 8.0 strict, MS-TDS 3.3.5.1), or TLS wrapped in TDS 7
//! PRELOGIN (0x12) packets (tds-handshake.md §4.1).
//!
//! The probe accepts any certificate so that it can see the handshake through and report the
//! certificate itself; nothing secret travels on these connections, and
//! [`certificate`](crate::certificate) validates the captured chain separately.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tds_handshake::{AlertDescription, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::report::{TlsOutcome, hex};
use crate::wire::{self, ReadEnd};

/// ALPN protocol id of TDS 8.0.
pub const ALPN_TDS8: &[u8] = b"tds/8.0";

/// How TLS records travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Raw records on the socket (TDS 8.0 strict).
    Raw,
    /// Records inside TDS 0x12 packets until the handshake completes (TDS 7).
    Tds7,
}

/// A TLS version to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
    /// Both, as a modern client offers.
    Both,
}

/// The certificate chain the server presented, captured during the handshake.
pub(crate) type Captured = Arc<Mutex<Option<Vec<CertificateDer<'static>>>>>;

/// A client configuration offering `offer`, with ALPN `tds/8.0` when `alpn`, that records
/// the server's chain into `captured` and accepts it.
pub(crate) fn client_config(offer: Offer, alpn: bool, captured: Captured) -> Option<ClientConfig> {
    let provider = crate::crypto::provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match offer {
        Offer::Tls12 => &[&rustls::version::TLS12],
        Offer::Tls13 => &[&rustls::version::TLS13],
        Offer::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let verifier = Arc::new(CapturingVerifier {
        algorithms: provider.signature_verification_algorithms,
        captured,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![ALPN_TDS8.to_vec()];
    }
    Some(config)
}

/// Runs a client handshake on `stream` until it completes or fails, never sending application
/// data. The caller bounds the time.
pub(crate) async fn handshake(
    stream: &mut TcpStream,
    config: ClientConfig,
    host: &str,
    framing: Framing,
) -> TlsOutcome {
    let name = match ServerName::try_from(host.to_owned()) {
        Ok(name) => name,
        Err(_) => {
            return TlsOutcome::ClientRejected {
                error: format!("{host:?} is not a valid DNS name or IP address"),
            };
        }
    };
    let mut conn = match ClientConnection::new(Arc::new(config), name) {
        Ok(conn) => conn,
        Err(error) => {
            return TlsOutcome::ClientRejected {
                error: error.to_string(),
            };
        }
    };
    let mut inbound = Tds7Unwrapper::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Err(end) = flush(stream, &mut conn, framing).await {
            return end_outcome(end);
        }
        if !conn.is_handshaking() {
            return TlsOutcome::Negotiated {
                version: match conn.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
                    other => other.map(|v| format!("{v:?}")).unwrap_or_default(),
                },
                cipher_suite: conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default(),
                alpn: conn
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            };
        }
        let n = match stream.read(&mut buf).await {
            Ok(0) => return TlsOutcome::Closed,
            Ok(n) => n,
            Err(error) => return end_outcome(ReadEnd::from(error)),
        };
        let received = buf.get(..n).unwrap_or_default();
        let records = match framing {
            Framing::Raw => received.to_vec(),
            Framing::Tds7 => match inbound.push(received) {
                Ok(records) => records,
                Err(first) => {
                    return TlsOutcome::NotTls {
                        first_bytes: hex(&first),
                    };
                }
            },
        };
        if let Some(outcome) = feed(&mut conn, &records) {
            // Send our own alert if rustls queued one, then report.
            let _ = flush(stream, &mut conn, framing).await;
            return outcome;
        }
    }
}

/// Gives rustls the received records; `Some` when the handshake failed.
fn feed(conn: &mut ClientConnection, mut records: &[u8]) -> Option<TlsOutcome> {
    while !records.is_empty() {
        match conn.read_tls(&mut records) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                return Some(TlsOutcome::ClientRejected {
                    error: error.to_string(),
                });
            }
        }
        if let Err(error) = conn.process_new_packets() {
            return Some(match error {
                rustls::Error::AlertReceived(alert) => {
                    let description = u8::from(alert);
                    TlsOutcome::Alert {
                        description,
                        name: AlertDescription(description).name().to_owned(),
                    }
                }
                other => TlsOutcome::ClientRejected {
                    error: other.to_string(),
                },
            });
        }
    }
    None
}

/// Writes what rustls wants to send, wrapped in one 0x12 message per flight in TDS 7.
async fn flush(
    stream: &mut TcpStream,
    conn: &mut ClientConnection,
    framing: Framing,
) -> Result<(), ReadEnd> {
    let mut out = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut out).is_err() {
            break;
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    match framing {
        Framing::Raw => {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        Framing::Tds7 => wire::send_message(stream, PacketType::PreLogin, &out).await?,
    }
    Ok(())
}

fn end_outcome(end: ReadEnd) -> TlsOutcome {
    match end {
        ReadEnd::Reset => TlsOutcome::Reset,
        ReadEnd::Closed => TlsOutcome::Closed,
        ReadEnd::NotTds(first) => TlsOutcome::NotTls {
            first_bytes: hex(&first),
        },
        ReadEnd::Io(error) => TlsOutcome::ClientRejected {
            error: error.to_string(),
        },
    }
}

/// Strips TDS packet headers from the server's TDS 7 handshake flights. Servers frame them as
/// 0x12 (some as 0x04); a bare TLS record (a raw alert) is passed through as it is.
#[derive(Default)]
struct Tds7Unwrapper {
    pending: Vec<u8>,
}

impl Tds7Unwrapper {
    /// Returns the TLS bytes complete so far, or the first bytes if they are not TDS or TLS.
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut records = Vec::new();
        while let Some(&first) = self.pending.first() {
            if first == PacketType::PreLogin.as_u8() || first == PacketType::TabularResult.as_u8() {
                let Some(len) = self
                    .pending
                    .get(2..4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    break;
                };
                if len < tds_handshake::HEADER_LEN {
                    return Err(self.pending.iter().take(16).copied().collect());
                }
                if self.pending.len() < len {
                    break;
                }
                records.extend_from_slice(
                    self.pending
                        .get(tds_handshake::HEADER_LEN..len)
                        .unwrap_or_default(),
                );
                self.pending.drain(..len);
            } else if tds_handshake::tls::is_record_start(first) {
                // A raw record (e.g. an unwrapped alert): hand everything to rustls.
                records.append(&mut self.pending);
            } else {
                return Err(self.pending.iter().take(16).copied().collect());
            }
        }
        Ok(records)
    }
}

/// Records the chain and accepts it; signatures are still checked, so the handshake is a real
/// one with the key the certificate names.
#[derive(Debug)]
struct CapturingVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    captured: Captured,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut slot) = self.captured.lock() {
            *slot = Some(chain);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapper_strips_headers_across_chunks_and_passes_raw_alerts() {
        let mut u = Tds7Unwrapper::default();
        let packet = [0x12, 0x01, 0x00, 0x0b, 0, 0, 1, 0, 0x16, 0x03, 0x03];
        assert_eq!(u.push(&packet[..5]), Ok(vec![]));
        assert_eq!(u.push(&packet[5..]), Ok(vec![0x16, 0x03, 0x03]));
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
        assert_eq!(u.push(&alert), Ok(alert.to_vec()));
        let mut u = Tds7Unwrapper::default();
        assert!(u.push(b"HTTP/1.1 400").is_err());
    }
}
