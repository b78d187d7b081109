//! What a probe saw, as plain data: the `--json` output (schema in `docs/doctor.md`).

use serde::Serialize;

use crate::certificate::CertificateReport;

/// Version of the JSON schema; raised when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `tds-doctor probe` found out about one server.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The server probed.
    pub target: TargetFacts,
    /// The per-probe time bound used, in milliseconds.
    pub timeout_ms: u64,
    /// The plaintext PRELOGIN probes, one per offered ENCRYPTION value.
    pub prelogin: Vec<PreloginProbe>,
    /// TLS first with ALPN `tds/8.0` (TDS 8.0 strict).
    pub tds8: TlsProbe,
    /// TLS inside TDS 7 PRELOGIN packets, TLS 1.2 only offered.
    pub tds7_tls12: TlsProbe,
    /// TLS inside TDS 7 PRELOGIN packets, TLS 1.3 only offered.
    pub tds7_tls13: TlsProbe,
    /// The server certificate, from the first probe that received one.
    pub certificate: Option<CertificateReport>,
    /// What the answers say about the server's settings.
    pub posture: Posture,
    /// What a tiberius-tower client at each encryption setting meets.
    pub clients: Vec<ClientVerdict>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// The chain the server presented (leaf first), for `explain` to validate against a
    /// client's own trust settings. Not serialised.
    #[serde(skip)]
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Report {
    /// True when no TCP connection could be opened by any probe.
    pub fn unreachable(&self) -> bool {
        !self.posture.reachable
    }

    /// The process exit code for this report (see [`crate::EXIT_HEALTHY`] and the others).
    pub fn exit_code(&self) -> u8 {
        if self.unreachable() {
            crate::EXIT_UNREACHABLE
        } else if self
            .findings
            .iter()
            .any(|f| f.severity >= Severity::Warning)
        {
            crate::EXIT_FINDINGS
        } else {
            crate::EXIT_HEALTHY
        }
    }
}

/// The server probed, as given.
#[derive(Debug, Clone, Serialize)]
pub struct TargetFacts {
    /// Host name or IP literal.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Instance name sent in PRELOGIN, if any.
    pub instance: Option<String>,
}

/// One plaintext PRELOGIN probe.
#[derive(Debug, Clone, Serialize)]
pub struct PreloginProbe {
    /// The ENCRYPTION value offered: `not_sup`, `off` or `on`.
    pub offered: &'static str,
    /// What came back.
    pub result: PreloginOutcome,
    /// Wall time of the probe, milliseconds.
    pub elapsed_ms: u64,
}

/// The server's answer to a plaintext PRELOGIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PreloginOutcome {
    /// A PRELOGIN reply.
    Replied(PreloginReply),
    /// A TCP reset and no reply (the 10054 shape).
    Reset,
    /// An orderly close and no reply.
    Closed,
    /// No answer within the probe's time bound.
    Timeout,
    /// Bytes that are not a TDS PRELOGIN reply (first 16 in hex).
    NotTds {
        /// Hex of the first bytes.
        first_bytes: String,
    },
    /// No TCP connection.
    Unreachable {
        /// The OS error.
        error: String,
    },
    /// Not run (the server was silent or unreachable on an earlier probe).
    Skipped,
}

/// The decoded PRELOGIN reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreloginReply {
    /// ENCRYPTION reply name (`off`, `on`, `not_sup`, `req`...).
    pub encryption: String,
    /// ENCRYPTION reply byte.
    pub encryption_byte: Option<u8>,
    /// VERSION as MAJOR.MINOR.BUILD.
    pub version: String,
    /// The product the major version belongs to, when known.
    pub product: Option<&'static str>,
    /// INSTOPT: `true` when the server says the instance name matches.
    pub instance_match: Option<bool>,
    /// MARS byte.
    pub mars: Option<u8>,
    /// FEDAUTHREQUIRED byte (the probe sends the option, as tedious does).
    pub fed_auth_required: Option<u8>,
}

/// One TLS probe (TLS first, or TLS inside TDS 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsProbe {
    /// What happened.
    pub result: TlsOutcome,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
}

/// How a TLS handshake attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TlsOutcome {
    /// The handshake completed.
    Negotiated {
        /// `TLS 1.2` or `TLS 1.3`.
        version: String,
        /// The IANA cipher suite name.
        cipher_suite: String,
        /// The ALPN protocol the server selected, if any.
        alpn: Option<String>,
    },
    /// The server sent a TLS alert.
    Alert {
        /// Alert description number (40 handshake_failure, 70 protocol_version, ...).
        description: u8,
        /// Its name.
        name: String,
    },
    /// The server reset the connection during the handshake.
    Reset,
    /// The server closed the connection during the handshake.
    Closed,
    /// No answer within the time bound.
    Timeout,
    /// The probe's own TLS stack refused what the server sent.
    ClientRejected {
        /// rustls's error.
        error: String,
    },
    /// Bytes that are neither TLS nor TDS.
    NotTls {
        /// Hex of the first bytes.
        first_bytes: String,
    },
    /// The server did not get as far as TLS (reason in words).
    NotOffered {
        /// Why no TLS handshake was attempted.
        reason: String,
    },
    /// No TCP connection.
    Unreachable {
        /// The OS error.
        error: String,
    },
}

impl TlsOutcome {
    /// The negotiated version and cipher suite, when the handshake completed.
    pub fn negotiated(&self) -> Option<(&str, &str)> {
        match self {
            TlsOutcome::Negotiated {
                version,
                cipher_suite,
                ..
            } => Some((version, cipher_suite)),
            _ => None,
        }
    }
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A fact worth knowing; healthy.
    Info,
    /// Some clients fail or will soon.
    Warning,
    /// Clients fail.
    Problem,
}

/// One thing the doctor noticed, with the cause clients see and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable snake_case code (listed in `docs/doctor.md`).
    pub code: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// The tiberius-tower cause name a client hits because of it, if any.
    pub cause: Option<&'static str>,
    /// What was seen.
    pub message: String,
    /// What to change, and on which side.
    pub fix: Option<String>,
}

/// Hex of a few bytes, space-separated.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the probes say about the server's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Posture {
    /// A TCP connection was accepted.
    pub reachable: bool,
    /// At least one plaintext PRELOGIN was answered (TDS 7 accepted).
    pub answers_prelogin: bool,
    /// `unavailable`, `available`, `forced` or `unknown`.
    pub encryption: &'static str,
    /// Force Encryption, when the replies tell.
    pub force_encryption: Option<bool>,
    /// TDS 8.0 strict: `required` (Force Strict Encryption), `supported`, `absent`, `unknown`.
    pub tds8: &'static str,
    /// TLS versions the server accepted inside TDS 7 PRELOGIN packets.
    pub tds7_tls_versions: Vec<String>,
    /// The TLS version negotiated in TDS 8.0, when it was.
    pub tds8_tls_version: Option<String>,
    /// Product version from the PRELOGIN reply.
    pub version: Option<String>,
    /// Product name of that version.
    pub product: Option<&'static str>,
}

/// What a client meets against the probed server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientVerdict {
    /// The connection-string setting (`Encrypt=true`, ...).
    pub setting: &'static str,
    /// The level's middleware name.
    pub level: &'static str,
    /// The client ends up logged in (as far as the handshake goes; credentials not checked).
    pub connects: bool,
    /// The protection of the session when it connects.
    pub session: Option<String>,
    /// The cause of the first failed handshake, if any (what a bare driver reports as 10054
    /// or a timeout).
    pub first_cause: Option<&'static str>,
    /// The cause the connect fails with, when it fails.
    pub cause: Option<&'static str>,
    /// tiberius-tower gets through by itself after a failed first handshake.
    pub recovers: bool,
    /// TCP connections with a handshake the middleware makes to reach the outcome (with its
    /// endpoint memory, the next connect needs one).
    pub handshakes: u32,
    /// What to change, client side.
    pub fix_client: Option<String>,
    /// What to change, server side.
    pub fix_server: Option<String>,
}
