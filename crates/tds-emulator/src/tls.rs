//! The server's TLS identity (generated with rcgen or loaded from PEM) and the rustls server
//! configurations for TDS 7 (wrapped handshake) and TDS 8.0 strict (ALPN `tds/8.0`).

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{CertificateFlaw, CertificateSource, TlsProtocol};

/// ALPN protocol id of TDS 8.0 (MS-TDS 3.3.5.1).
pub const ALPN_TDS8: &[u8] = b"tds/8.0";

/// Why the TLS identity or configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// rcgen failed to generate the certificates.
    #[error("could not generate the emulator's certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path} holds no {what}")]
    Empty {
        /// The file.
        path: String,
        /// What was looked for.
        what: &'static str,
    },
    /// A PEM file could be read but not decoded (a broken section, bad base64).
    #[error("could not decode {path}: {source}")]
    Pem {
        /// The file.
        path: String,
        /// What the PEM decoder reported.
        source: pem::Error,
    },
    /// rustls rejected the configuration (e.g. key does not match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate chain and key the server presents, and the CA clients should trust.
pub(crate) struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_pem: String,
}

impl ServerIdentity {
    pub(crate) fn from_source(
        source: &CertificateSource,
        flaw: Option<CertificateFlaw>,
    ) -> Result<Self, TlsSetupError> {
        match source {
            CertificateSource::Generated => Self::generate(flaw),
            CertificateSource::Pem { chain, key, ca } => Self::load(chain, key, ca.as_deref()),
        }
    }

    /// A fresh CA, and a leaf for `localhost` and `127.0.0.1` signed by it. The CA is a real CA
    /// certificate (basicConstraints CA), so clients can trust it as a root and validate the leaf
    /// with hostname checks on. A `flaw` spoils the leaf only, so it is the one thing wrong.
    fn generate(flaw: Option<CertificateFlaw>) -> Result<Self, TlsSetupError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tds-emulator test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut leaf_params = match flaw {
            Some(CertificateFlaw::WrongName) => {
                CertificateParams::new(vec!["wrong-host.invalid".to_owned()])?
            }
            _ => {
                let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
                params
                    .subject_alt_names
                    .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
                params
            }
        };
        if flaw == Some(CertificateFlaw::Expired) {
            leaf_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            leaf_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

        Ok(ServerIdentity {
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            ca_pem: ca.pem(),
        })
    }

    fn load(chain: &Path, key: &Path, ca: Option<&Path>) -> Result<Self, TlsSetupError> {
        let chain_pem = read(chain)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|error| pem_error(chain, "certificate", error))?;
        let last = certs.last().cloned().ok_or_else(|| TlsSetupError::Empty {
            path: chain.display().to_string(),
            what: "certificate",
        })?;
        let key_pem = read(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|error| pem_error(key, "private key", error))?;
        let ca_pem = match ca {
            Some(ca) => String::from_utf8_lossy(&read(ca)?).into_owned(),
            None => pem_certificate(&last),
        };
        Ok(ServerIdentity {
            chain: certs,
            key: key_der,
            ca_pem,
        })
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A rustls server configuration with the aws-lc-rs provider (never the process default:
    /// the emulator must not depend on or change what the client side of a test installs).
    pub(crate) fn server_config(
        &self,
        versions: &[TlsProtocol],
        alpn_tds8: bool,
        tls13_tickets: usize,
    ) -> Result<Arc<ServerConfig>, TlsSetupError> {
        let mut protocol_versions = Vec::new();
        if versions.contains(&TlsProtocol::Tls13) {
            protocol_versions.push(&rustls::version::TLS13);
        }
        if versions.contains(&TlsProtocol::Tls12) {
            protocol_versions.push(&rustls::version::TLS12);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&protocol_versions)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.send_tls13_tickets = tls13_tickets;
        if alpn_tds8 {
            config.alpn_protocols = vec![ALPN_TDS8.to_vec()];
        }
        Ok(Arc::new(config))
    }
}

/// TLS_RSA_WITH_AES_128_CBC_SHA: what a TLS 1.0 Schannel server typically picks.
const TLS_RSA_WITH_AES_128_CBC_SHA: [u8; 2] = [0x00, 0x2F];

/// A ServerHello record selecting TLS 1.`minor - 1` (1 = TLS 1.0, 2 = TLS 1.1), as a server
/// without TLS 1.2 answers a TLS 1.2 ClientHello: record and hello version 3.minor, no
/// session id, TLS_RSA_WITH_AES_128_CBC_SHA, no compression (RFC 2246 7.4.1.3), and one
/// extension, an empty renegotiation_info (RFC 5746), which Schannel has sent since 2010 and
/// without which OpenSSL refuses the hello before it looks at the version.
/// A TLS 1.2+ client stops at this message and sends alert 70 (protocol_version), so the
/// Certificate and ServerHelloDone that would follow are not sent.
pub(crate) fn old_server_hello(minor: u8, random: [u8; 32]) -> Vec<u8> {
    let mut body = vec![3, minor];
    body.extend_from_slice(&random);
    body.push(0); // session_id length
    body.extend_from_slice(&TLS_RSA_WITH_AES_128_CBC_SHA);
    body.push(0); // compression: null
    body.extend_from_slice(&[0x00, 0x05, 0xFF, 0x01, 0x00, 0x01, 0x00]); // renegotiation_info
    let mut record = vec![0x16, 3, minor];
    let handshake_len = body.len() + 4;
    record.extend_from_slice(
        &u16::try_from(handshake_len)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    record.push(2); // ServerHello
    record.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    record.extend_from_slice(&body);
    record
}

/// The description of a fatal or warning TLS alert record at the start of `bytes`.
pub(crate) fn alert_description(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [0x15, 3, _, 0, 2, _level, description, ..] => Some(*description),
        _ => None,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A PEM decoding failure of `path`; "nothing of that kind in the file" keeps its own variant.
fn pem_error(path: &Path, what: &'static str, error: pem::Error) -> TlsSetupError {
    let path = path.display().to_string();
    match error {
        pem::Error::NoItemsFound => TlsSetupError::Empty { path, what },
        source => TlsSetupError::Pem { path, source },
    }
}

/// PEM text of one DER certificate (base64 with 64-character lines).
fn pem_certificate(der: &CertificateDer<'_>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.as_ref().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_server_hello_is_a_tls_1_0_record_of_54_bytes() {
        let hello = old_server_hello(1, [0xAB; 32]);
        assert_eq!(hello.len(), 54);
        assert_eq!(&hello[..11], &[0x16, 3, 1, 0, 49, 2, 0, 0, 45, 3, 1]);
        assert_eq!(
            &hello[43..],
            &[0, 0x00, 0x2F, 0, 0x00, 0x05, 0xFF, 0x01, 0x00, 0x01, 0x00]
        );
        assert_eq!(old_server_hello(2, [0; 32])[2], 2);
        assert_eq!(alert_description(&[0x15, 3, 3, 0, 2, 2, 70]), Some(70));
        assert_eq!(alert_description(&[0x16, 3, 3, 0, 2, 2, 70]), None);
        assert_eq!(alert_description(&[0x15, 3]), None);
    }

    #[test]
    fn generated_identity_builds_both_configs() {
        let identity = ServerIdentity::generate(None).unwrap();
        assert!(identity.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        identity
            .server_config(&[TlsProtocol::Tls12], false, 0)
            .unwrap();
        let strict = identity
            .server_config(&[TlsProtocol::Tls12, TlsProtocol::Tls13], true, 2)
            .unwrap();
        assert_eq!(strict.alpn_protocols, vec![ALPN_TDS8.to_vec()]);
    }

    #[test]
    fn pem_encoding_round_trips_through_the_pki_types_decoder() {
        let identity = ServerIdentity::generate(None).unwrap();
        let pem = pem_certificate(&identity.chain[1]);
        let parsed: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed, vec![identity.chain[1].clone()]);
        assert_eq!(pem, identity.ca_pem());
    }

    #[test]
    fn loads_a_pem_chain_and_key_and_reports_empty_files() {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("tds-emulator-pem-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (chain, key_path, empty) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("e.pem"));
        fs::write(&chain, cert.pem()).unwrap();
        fs::write(&key_path, key.serialize_pem()).unwrap();
        fs::write(&empty, "no PEM here\n").unwrap();

        let identity = ServerIdentity::load(&chain, &key_path, None).unwrap();
        assert_eq!(identity.chain, vec![cert.der().clone()]);
        assert_eq!(identity.ca_pem(), pem_certificate(cert.der()));
        identity
            .server_config(&[TlsProtocol::Tls12], false, 0)
            .unwrap();

        let no_key = ServerIdentity::load(&chain, &empty, None).err().unwrap();
        assert!(
            matches!(
                no_key,
                TlsSetupError::Empty {
                    what: "private key",
                    ..
                }
            ),
            "{no_key:?}"
        );
        let no_cert = ServerIdentity::load(&empty, &key_path, None).err().unwrap();
        assert!(
            matches!(
                no_cert,
                TlsSetupError::Empty {
                    what: "certificate",
                    ..
                }
            ),
            "{no_cert:?}"
        );
        fs::write(
            &empty,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let broken = ServerIdentity::load(&empty, &key_path, None).err().unwrap();
        assert!(matches!(broken, TlsSetupError::Pem { .. }), "{broken:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
