//! The server certificate: who it names, how long it is valid, how it is signed, its key, and
//! whether a validating client (system roots, or a given CA) accepts it for the host name.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Days before expiry from which an expiring certificate is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What the certificate says, and what validation made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateReport {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject alternative names (`DNS:...`, `IP:...`).
    pub sans: Vec<String>,
    /// Not valid before (UTC, ISO 8601).
    pub not_before: String,
    /// Not valid after (UTC, ISO 8601).
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_to_expiry: i64,
    /// Valid now by its dates.
    pub time_valid: bool,
    /// Signature algorithm name (e.g. `sha256WithRSAEncryption`).
    pub signature_algorithm: String,
    /// The signature hash is one clients reject (MD5, SHA-1, SHA-224, or SHA-512, which
    /// Schannel refuses under TLS 1.2 with a reset).
    pub weak_signature: bool,
    /// Key type and size, e.g. `RSA 2048` or `EC 256`.
    pub key: String,
    /// Key size in bits (0 when unknown).
    pub key_bits: usize,
    /// Certificates the server sent (leaf first).
    pub chain_length: usize,
    /// A SAN matches the host name probed (DNS, wildcard, or IP).
    pub host_name_match: bool,
    /// Validation against the system's trusted roots, for the host name probed.
    pub system_roots: Validation,
    /// Validation against `--ca`, when given.
    pub ca_file: Option<Validation>,
}

/// The outcome of validating the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Validation {
    /// Trusted, in date, valid for the host name.
    Valid,
    /// Rejected.
    Invalid {
        /// Why, in rustls's words.
        error: String,
    },
    /// Could not be checked (no roots, unreadable file).
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl Validation {
    /// True when the chain validated.
    pub fn is_valid(&self) -> bool {
        matches!(self, Validation::Valid)
    }
}

/// Reads the leaf of `chain` and validates the chain for `host`. `None` when the chain is
/// empty or the leaf is not a parsable X.509 certificate.
pub fn analyse(
    chain: &[CertificateDer<'static>],
    host: &str,
    ca: Option<&Path>,
) -> Option<CertificateReport> {
    let leaf = chain.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let sans = sans(&cert);
    let validity = cert.validity();
    let now = UnixTime::now().as_secs() as i64;
    let not_after = validity.not_after.timestamp();
    let (key, key_bits) = key(&cert);
    let (signature_algorithm, weak_signature) =
        signature_algorithm(&cert.signature_algorithm.algorithm.to_id_string());
    Some(CertificateReport {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        host_name_match: host_matches(&sans, host),
        sans,
        not_before: iso8601(validity.not_before.timestamp()),
        not_after: iso8601(not_after),
        days_to_expiry: (not_after - now).div_euclid(86_400),
        time_valid: validity.not_before.timestamp() <= now && now <= not_after,
        signature_algorithm,
        weak_signature,
        key,
        key_bits,
        chain_length: chain.len(),
        system_roots: validate(chain, host, system_roots()),
        ca_file: ca.map(|path| validate(chain, host, ca_roots(path))),
    })
}

/// Validates `chain` for `host` against the roots in the PEM file at `path` (a client's
/// `TrustServerCertificateCA`).
pub fn validate_with_ca_file(
    chain: &[CertificateDer<'static>],
    host: &str,
    path: &Path,
) -> Validation {
    validate(chain, host, ca_roots(path))
}

/// Validates `chain` for `host` against the system's roots.
pub fn validate_with_system_roots(chain: &[CertificateDer<'static>], host: &str) -> Validation {
    validate(chain, host, system_roots())
}

fn system_roots() -> Result<RootCertStore, String> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(loaded.certs);
    if roots.is_empty() {
        return Err("no trusted root certificates found on this system".to_owned());
    }
    Ok(roots)
}

fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .filter_map(Result::ok)
        .collect();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(format!("{} holds no usable certificate", path.display()));
    }
    Ok(roots)
}

fn validate(
    chain: &[CertificateDer<'static>],
    host: &str,
    roots: Result<RootCertStore, String>,
) -> Validation {
    let roots = match roots {
        Ok(roots) => roots,
        Err(reason) => return Validation::Unavailable { reason },
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Validation::Unavailable {
            reason: "the server sent no certificate".to_owned(),
        };
    };
    let verifier = match WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crate::crypto::provider(),
    )
    .build()
    {
        Ok(verifier) => verifier,
        Err(error) => {
            return Validation::Unavailable {
                reason: error.to_string(),
            };
        }
    };
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Validation::Unavailable {
            reason: format!("{host:?} is not a DNS name or IP address"),
        };
    };
    match verifier.verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now()) {
        Ok(_) => Validation::Valid,
        Err(error) => Validation::Invalid {
            error: error.to_string(),
        },
    }
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| format!("IP:{ip}")),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// RFC 6125 matching as validating clients do it: DNS SANs (a wildcard covers exactly one
/// left-most label) and IP SANs; the subject CN is not consulted.
pub fn host_matches(sans: &[String], host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return sans
            .iter()
            .filter_map(|s| s.strip_prefix("IP:"))
            .any(|s| s.parse::<IpAddr>().ok() == Some(ip));
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    sans.iter()
        .filter_map(|s| s.strip_prefix("DNS:"))
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => pattern == host,
        })
}

fn key(cert: &X509Certificate<'_>) -> (String, usize) {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            (format!("RSA {bits}"), bits)
        }
        Ok(PublicKey::EC(ec)) => {
            let bits = ec.key_size();
            (format!("EC {bits}"), bits)
        }
        Ok(PublicKey::DSA(y)) => ("DSA".to_owned(), y.len() * 8),
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => ("Ed25519".to_owned(), 256),
            "1.3.101.113" => ("Ed448".to_owned(), 456),
            other => (format!("unknown ({other})"), 0),
        },
    }
}

/// The name of a signature algorithm OID, and whether clients reject its hash.
fn signature_algorithm(oid: &str) -> (String, bool) {
    let (name, weak) = match oid {
        "1.2.840.113549.1.1.4" => ("md5WithRSAEncryption", true),
        "1.2.840.113549.1.1.5" => ("sha1WithRSAEncryption", true),
        "1.2.840.113549.1.1.14" => ("sha224WithRSAEncryption", true),
        "1.2.840.113549.1.1.11" => ("sha256WithRSAEncryption", false),
        "1.2.840.113549.1.1.12" => ("sha384WithRSAEncryption", false),
        "1.2.840.113549.1.1.13" => ("sha512WithRSAEncryption", true),
        "1.2.840.113549.1.1.10" => ("rsassaPss", false),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", true),
        "1.2.840.10045.4.3.1" => ("ecdsa-with-SHA224", true),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", false),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", false),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", true),
        "1.3.101.112" => ("ed25519", false),
        "1.3.101.113" => ("ed448", false),
        other => return (other.to_owned(), false),
    };
    (name.to_owned(), weak)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (proleptic Gregorian, UTC).
fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(iso8601(-86_400), "1969-12-31T00:00:00Z");
    }

    #[test]
    fn host_names_match_like_validating_clients() {
        let sans = vec![
            "DNS:db.example.com".to_owned(),
            "DNS:*.corp.example.com".to_owned(),
            "IP:127.0.0.1".to_owned(),
        ];
        assert!(host_matches(&sans, "DB.example.com"));
        assert!(host_matches(&sans, "sql1.corp.example.com"));
        assert!(!host_matches(&sans, "a.sql1.corp.example.com"));
        assert!(!host_matches(&sans, "corp.example.com"));
        assert!(host_matches(&sans, "127.0.0.1"));
        assert!(!host_matches(&sans, "127.0.0.2"));
        assert!(!host_matches(&sans, "localhost"));
    }

    #[test]
    fn weak_hashes_are_flagged() {
        for oid in [
            "1.2.840.113549.1.1.4",
            "1.2.840.113549.1.1.5",
            "1.2.840.113549.1.1.14",
            "1.2.840.113549.1.1.13",
        ] {
            assert!(signature_algorithm(oid).1, "{oid}");
        }
        assert_eq!(
            signature_algorithm("1.2.840.113549.1.1.11"),
            ("sha256WithRSAEncryption".to_owned(), false)
        );
    }
}
