//! From answers to advice: the server's posture, the findings, and what a tiberius-tower client
//! at each encryption setting meets (the middleware's cause names, its recovery, the fix).
//!
//! The client model is tiberius 0.13 with rustls behind `tiberius-tower`'s default policy
//! (ceiling Strict, one Strict probe after a reply-less reset): TLS 1.2 and 1.3 offered, the
//! PRELOGIN encryption bytes of tds-handshake.md §3.4, certificate validation unless
//! `TrustServerCertificate=true`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tds_handshake::Encryption;

use crate::certificate::{self, EXPIRY_WARNING_DAYS, Validation};
use crate::report::{
    ClientVerdict, Finding, Posture, PreloginOutcome, PreloginReply, Report, Severity, TlsOutcome,
};

/// A client's encryption setting, as tiberius-tower names the levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientLevel {
    /// `Encrypt=DANGER_PLAINTEXT`: offers NOT_SUP.
    NotSupported,
    /// `Encrypt=false`: offers OFF (login-only encryption).
    Off,
    /// `Encrypt=true` (tiberius's default): offers REQ.
    Required,
    /// `Encrypt=strict`: TDS 8.0, TLS first.
    Strict,
}

impl ClientLevel {
    /// All levels, lowest first.
    pub const ALL: [ClientLevel; 4] = [
        ClientLevel::NotSupported,
        ClientLevel::Off,
        ClientLevel::Required,
        ClientLevel::Strict,
    ];

    /// The middleware's name of the level.
    pub fn name(self) -> &'static str {
        match self {
            ClientLevel::NotSupported => "not_supported",
            ClientLevel::Off => "off",
            ClientLevel::Required => "required",
            ClientLevel::Strict => "strict",
        }
    }

    /// The ADO connection-string setting that selects it.
    pub fn setting(self) -> &'static str {
        match self {
            ClientLevel::NotSupported => "Encrypt=DANGER_PLAINTEXT",
            ClientLevel::Off => "Encrypt=false",
            ClientLevel::Required => "Encrypt=true",
            ClientLevel::Strict => "Encrypt=strict",
        }
    }

    /// Reads an `Encrypt` value as tiberius does (missing means `true`).
    pub fn from_encrypt(value: Option<&str>) -> Option<ClientLevel> {
        let Some(value) = value.map(str::trim) else {
            return Some(ClientLevel::Required);
        };
        if value == "DANGER_PLAINTEXT" {
            return Some(ClientLevel::NotSupported);
        }
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "mandatory" => Some(ClientLevel::Required),
            "false" | "no" | "optional" => Some(ClientLevel::Off),
            "strict" => Some(ClientLevel::Strict),
            _ => None,
        }
    }
}

/// How a client decides whether to trust the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTrust {
    /// The system's roots (tiberius's default).
    SystemRoots,
    /// `TrustServerCertificateCA=PATH`.
    CaFile(PathBuf),
    /// `TrustServerCertificate=true`: anything is accepted.
    TrustAll,
}

/// A client's settings, as far as the handshake is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Encryption level.
    pub level: ClientLevel,
    /// Certificate trust.
    pub trust: ClientTrust,
    /// The host name the client validates the certificate for (default: the probed host).
    pub host: Option<String>,
}

impl ClientSettings {
    /// Reads a client's ADO.NET connection string exactly as the middleware does
    /// ([`tiberius_tower::ConnectRequest::from_ado_string`]: tiberius's grammar, quotes and
    /// braces, unknown keywords refused), and keeps only the encryption level, the
    /// certificate trust and the host. The password is never kept.
    ///
    /// # Errors
    ///
    /// The middleware's message for a string it refuses; it names the key, never the value.
    pub fn from_ado_string(text: &str) -> Result<ClientSettings, String> {
        use tiberius_tower::{EncryptionLevel, TrustSetting};
        let request =
            tiberius_tower::ConnectRequest::from_ado_string(text).map_err(|e| e.to_string())?;
        let level = match request.encryption() {
            EncryptionLevel::NotSupported => ClientLevel::NotSupported,
            EncryptionLevel::Off => ClientLevel::Off,
            EncryptionLevel::Required => ClientLevel::Required,
            EncryptionLevel::Strict => ClientLevel::Strict,
        };
        let trust = match request.trust() {
            TrustSetting::TrustAll => ClientTrust::TrustAll,
            TrustSetting::CaFile(path) => ClientTrust::CaFile(path.clone()),
            _ => ClientTrust::SystemRoots,
        };
        Ok(ClientSettings {
            level,
            trust,
            host: Some(request.host().to_owned()),
        })
    }
}

/// Fills the posture, the client table and the findings of `report`.
pub fn diagnose(report: &mut Report, ca: Option<&Path>) {
    report.posture = posture(report);
    let trust = match ca {
        Some(path) => ClientTrust::CaFile(path.to_owned()),
        None => ClientTrust::SystemRoots,
    };
    report.clients = ClientLevel::ALL
        .into_iter()
        .map(|level| {
            explain(
                report,
                &ClientSettings {
                    level,
                    trust: trust.clone(),
                    host: None,
                },
            )
        })
        .collect();
    let mut findings = findings(report);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    report.findings = findings;
}

fn reply(report: &Report, index: usize) -> Option<&PreloginReply> {
    match report.prelogin.get(index).map(|p| &p.result) {
        Some(PreloginOutcome::Replied(reply)) => Some(reply),
        _ => None,
    }
}

fn posture(report: &Report) -> Posture {
    let reachable = !matches!(
        report.prelogin.first().map(|p| &p.result),
        Some(PreloginOutcome::Unreachable { .. }) | None
    );
    let replies: Vec<Option<&PreloginReply>> = (0..3).map(|i| reply(report, i)).collect();
    let byte = |i: usize| {
        replies
            .get(i)
            .copied()
            .flatten()
            .and_then(|r| r.encryption_byte)
    };
    let answers_prelogin = replies.iter().any(Option::is_some);
    // MS-TDS 2.2.6.5: NOT_SUP offered → REQ means Force Encryption; OFF offered → REQ too.
    let force_encryption = match (byte(0), byte(1)) {
        (Some(0x03), _) | (_, Some(0x03)) => Some(true),
        (Some(_), _) | (_, Some(_)) => Some(false),
        _ => None,
    };
    let unavailable = [byte(1), byte(2)].contains(&Some(Encryption::NOT_SUP.0));
    let encryption = if !answers_prelogin {
        "unknown"
    } else if unavailable {
        "unavailable"
    } else if force_encryption == Some(true) {
        "forced"
    } else {
        "available"
    };
    let tds8 = match &report.tds8.result {
        TlsOutcome::Negotiated { .. } if !answers_prelogin => "required",
        TlsOutcome::Negotiated { .. } => "supported",
        TlsOutcome::Unreachable { .. } | TlsOutcome::ClientRejected { .. } => "unknown",
        _ => "absent",
    };
    let tds7_tls_versions = [&report.tds7_tls12, &report.tds7_tls13]
        .iter()
        .filter_map(|p| p.result.negotiated().map(|(v, _)| v.to_owned()))
        .collect();
    let first = replies.iter().copied().flatten().next();
    Posture {
        reachable,
        answers_prelogin,
        encryption,
        force_encryption,
        tds8,
        tds7_tls_versions,
        tds8_tls_version: report.tds8.result.negotiated().map(|(v, _)| v.to_owned()),
        version: first.map(|r| r.version.clone()),
        product: first.and_then(|r| r.product),
    }
}

/// Where a client's handshake ends.
enum End {
    Connects(String),
    Fails(&'static str),
}

struct Walk<'a> {
    report: &'a Report,
    settings: &'a ClientSettings,
    handshakes: u32,
    first_cause: Option<&'static str>,
}

impl Walk<'_> {
    fn failed(&mut self, cause: &'static str) {
        self.first_cause.get_or_insert(cause);
    }

    /// A client at `level`, as the middleware drives it.
    fn level(&mut self, level: ClientLevel) -> End {
        self.handshakes += 1;
        if level == ClientLevel::Strict {
            return self.strict();
        }
        let index = match level {
            ClientLevel::NotSupported => 0,
            ClientLevel::Off => 1,
            _ => 2,
        };
        let outcome = self
            .report
            .prelogin
            .get(index)
            .map(|p| p.result.clone())
            .unwrap_or(PreloginOutcome::Skipped);
        match outcome {
            PreloginOutcome::Unreachable { .. } => End::Fails("connection_refused"),
            PreloginOutcome::Timeout | PreloginOutcome::Skipped => End::Fails("timeout"),
            PreloginOutcome::NotTds { .. } => End::Fails("protocol_violation"),
            PreloginOutcome::Reset | PreloginOutcome::Closed => {
                // Design §2.3: a reply-less reset is probed once with Strict; the cause
                // becomes strict_required only when the probe gets through.
                self.failed("transient_reset");
                if matches!(self.report.tds8.result, TlsOutcome::Negotiated { .. }) {
                    match self.level(ClientLevel::Strict) {
                        End::Connects(session) => {
                            self.first_cause = Some("strict_required");
                            End::Connects(session)
                        }
                        failed => failed,
                    }
                } else {
                    End::Fails("transient_reset")
                }
            }
            PreloginOutcome::Replied(reply) => {
                let replied = reply.encryption_byte.map(Encryption);
                match (level, replied.map(Encryption::base)) {
                    (ClientLevel::NotSupported, Some(Encryption::REQ)) => {
                        // Force Encryption: REQ, then the server terminates (MS-TDS 2.2.6.5).
                        self.failed("encryption_required");
                        self.level(ClientLevel::Required)
                    }
                    (ClientLevel::NotSupported, _) => {
                        End::Connects("none: not encrypted, login included".to_owned())
                    }
                    (ClientLevel::Off, Some(Encryption::NOT_SUP)) => {
                        // tiberius 0.13 maps (Off, NOT_SUP) to On and starts TLS against a
                        // server that has none (tds-handshake.md §3.4); seen in
                        // tests/connect.rs against the emulator.
                        End::Fails("encryption_unavailable")
                    }
                    (ClientLevel::Off, Some(Encryption::OFF)) => {
                        self.tds7_tls("login only: TLS for LOGIN7, then plaintext")
                    }
                    (ClientLevel::Required, Some(Encryption::NOT_SUP | Encryption::OFF)) => {
                        End::Fails("encryption_unavailable")
                    }
                    _ => self.tds7_tls("full: TLS inside TDS 7"),
                }
            }
        }
    }

    fn strict(&mut self) -> End {
        match self.report.tds8.result.clone() {
            TlsOutcome::Negotiated { version, .. } => {
                self.trusted(format!("full: TDS 8.0 strict, {version}"))
            }
            TlsOutcome::Timeout if self.report.posture.answers_prelogin => {
                End::Fails("strict_unsupported")
            }
            TlsOutcome::Timeout => End::Fails("timeout"),
            TlsOutcome::Alert {
                description: 70, ..
            } => End::Fails("tls_version_mismatch"),
            TlsOutcome::Unreachable { .. } => End::Fails("connection_refused"),
            TlsOutcome::NotTls { .. } => End::Fails("protocol_violation"),
            other => {
                self.confirm_bare_close(&other);
                End::Fails("tls_handshake_rejected")
            }
        }
    }

    fn tds7_tls(&mut self, session: &str) -> End {
        let (v12, v13) = (
            &self.report.tds7_tls12.result,
            &self.report.tds7_tls13.result,
        );
        if let Some((version, _)) = v12.negotiated().or_else(|| v13.negotiated()) {
            return self.trusted(format!("{session}, {version}"));
        }
        let alert70 = |o: &TlsOutcome| {
            matches!(
                o,
                TlsOutcome::Alert {
                    description: 70,
                    ..
                }
            )
        };
        if alert70(v12) && alert70(v13) {
            End::Fails("tls_version_mismatch")
        } else {
            let v12 = v12.clone();
            self.confirm_bare_close(&v12);
            End::Fails("tls_handshake_rejected")
        }
    }

    /// A bare reset or close right after the ClientHello is read as a TLS rejection only once
    /// one more attempt shows the same (the middleware's `unconfirmed_rejection`): one more
    /// handshake, after a backoff delay.
    fn confirm_bare_close(&mut self, outcome: &TlsOutcome) {
        if matches!(outcome, TlsOutcome::Reset | TlsOutcome::Closed) {
            self.handshakes += 1;
        }
    }

    fn trusted(&mut self, session: String) -> End {
        let host = self
            .settings
            .host
            .clone()
            .unwrap_or_else(|| self.report.target.host.clone());
        let chain = &self.report.chain;
        let validation = match &self.settings.trust {
            ClientTrust::TrustAll => Validation::Valid,
            _ if chain.is_empty() => Validation::Valid,
            ClientTrust::SystemRoots => certificate::validate_with_system_roots(chain, &host),
            ClientTrust::CaFile(path) => certificate::validate_with_ca_file(chain, &host, path),
        };
        if validation.is_valid() {
            End::Connects(session)
        } else {
            End::Fails("certificate_untrusted")
        }
    }
}

/// What a client with `settings` meets against the server `report` describes.
pub fn explain(report: &Report, settings: &ClientSettings) -> ClientVerdict {
    let mut walk = Walk {
        report,
        settings,
        handshakes: 0,
        first_cause: None,
    };
    let end = walk.level(settings.level);
    let (connects, session, cause) = match end {
        End::Connects(session) => (true, Some(session), None),
        End::Fails(cause) => (false, None, Some(cause)),
    };
    let first_cause = walk.first_cause.or(cause);
    let (fix_client, fix_server) = fixes(report, first_cause, cause);
    ClientVerdict {
        setting: settings.level.setting(),
        level: settings.level.name(),
        connects,
        session,
        first_cause,
        cause,
        recovers: connects && walk.first_cause.is_some(),
        handshakes: walk.handshakes,
        fix_client,
        fix_server,
    }
}

fn fixes(
    report: &Report,
    first: Option<&'static str>,
    last: Option<&'static str>,
) -> (Option<String>, Option<String>) {
    let Some(cause) = last.or(first) else {
        return (None, None);
    };
    let s = |a: &str, b: &str| (Some(a.to_owned()), Some(b.to_owned()));
    match cause {
        "encryption_required" => s(
            "set Encrypt=true so the first handshake already offers encryption",
            "none needed: Force Encryption is the safe setting",
        ),
        "strict_required" => s(
            "set Encrypt=strict (TDS 8.0) so the first handshake goes straight to TLS",
            "turn Force Strict Encryption off only if TDS 7 clients must connect",
        ),
        "strict_unsupported" => s(
            "set Encrypt=true: this server speaks TDS 7 with TLS but not TDS 8.0",
            "upgrade to SQL Server 2022 or later to offer TDS 8.0 strict",
        ),
        "encryption_unavailable" => s(
            "only Encrypt=DANGER_PLAINTEXT connects (tiberius starts TLS even at Encrypt=false), and only if a plaintext session, login included, is acceptable; tiberius-tower never lowers the level",
            "give the server a certificate so it offers TLS",
        ),
        "tls_version_mismatch" => s(
            "allow TLS 1.2 in the client",
            "enable TLS 1.2 on the server (SQL Server 2008-2014 need the KB3135244 updates)",
        ),
        "tls_handshake_rejected" => s(
            "none on the client side in most cases",
            "check the server's cipher suites and the certificate's signature hash (no MD5, SHA-1, SHA-224, SHA-512); read Schannel events 36874/36888",
        ),
        "certificate_untrusted" => s(
            "trust the server's CA (TrustServerCertificateCA=PATH) and connect by a name the certificate holds; TrustServerCertificate=true only if you accept the risk",
            &format!(
                "install a certificate issued for {} by a CA the clients trust",
                report.target.host
            ),
        ),
        "transient_reset" => s(
            "none: the middleware retries within its budget",
            "the server resets every PRELOGIN without a reply and speaks no TDS 8.0: is this SQL Server, and is its listener healthy?",
        ),
        "timeout" => s(
            "none",
            "the server accepts TCP but never answers: is this SQL Server?",
        ),
        "connection_refused" => s(
            "check host, port and instance (SQL Browser is not queried)",
            "is SQL Server running and listening on TCP at this port?",
        ),
        "protocol_violation" => s(
            "check the address: something other than SQL Server answers there",
            "a proxy or another service is on this port",
        ),
        _ => (None, None),
    }
}

fn find(
    code: &'static str,
    severity: Severity,
    cause: Option<&'static str>,
    message: String,
    fix: Option<&str>,
) -> Finding {
    Finding {
        code,
        severity,
        cause,
        message,
        fix: fix.map(str::to_owned),
    }
}

fn findings(report: &Report) -> Vec<Finding> {
    let p = &report.posture;
    let mut out = Vec::new();
    if !p.reachable {
        let error = match report.prelogin.first().map(|x| &x.result) {
            Some(PreloginOutcome::Unreachable { error }) => error.clone(),
            _ => String::new(),
        };
        out.push(find(
            "unreachable",
            Severity::Problem,
            Some("connection_refused"),
            format!(
                "no TCP connection to {}:{}: {error}",
                report.target.host, report.target.port
            ),
            Some("check host and port; is SQL Server listening on TCP there?"),
        ));
        return out;
    }
    if matches!(
        report.prelogin.first().map(|x| &x.result),
        Some(PreloginOutcome::NotTds { .. })
    ) {
        out.push(find(
            "not_tds",
            Severity::Problem,
            Some("protocol_violation"),
            "the server answered PRELOGIN with bytes that are not TDS".to_owned(),
            Some("something other than SQL Server listens on this port"),
        ));
    }
    match p.force_encryption {
        Some(true) => out.push(find(
            "force_encryption",
            Severity::Info,
            Some("encryption_required"),
            "Force Encryption is on: a PRELOGIN offering no encryption gets ENCRYPT_REQ and the connection is closed".to_owned(),
            Some("clients should use Encrypt=true; tiberius-tower upgrades Encrypt=DANGER_PLAINTEXT clients by itself"),
        )),
        Some(false) if p.encryption == "available" => out.push(find(
            "encryption_available",
            Severity::Info,
            None,
            "encryption is available and not forced (SQL Server's default)".to_owned(),
            None,
        )),
        _ => {}
    }
    if p.encryption == "unavailable" {
        out.push(find(
            "encryption_unavailable",
            Severity::Problem,
            Some("encryption_unavailable"),
            "the server offers no encryption (PRELOGIN reply ENCRYPT_NOT_SUP): tiberius clients at Encrypt=true and Encrypt=false fail (tiberius starts TLS at false too); only Encrypt=DANGER_PLAINTEXT connects, login in clear".to_owned(),
            Some("give the server a certificate; never lower the clients' encryption to get through"),
        ));
    }
    match (p.tds8, &report.tds8.result) {
        ("required", _) => out.push(find(
            "tds8_only",
            Severity::Info,
            Some("strict_required"),
            "TDS 8.0 only (Force Strict Encryption): every plaintext PRELOGIN is reset without a reply (10054)".to_owned(),
            Some("clients should use Encrypt=strict; tiberius-tower reaches it by itself with one Strict probe"),
        )),
        ("supported", _) => out.push(find(
            "tds8_supported",
            Severity::Info,
            None,
            "TDS 8.0 strict is accepted (TLS first, ALPN tds/8.0)".to_owned(),
            None,
        )),
        ("absent", TlsOutcome::Timeout) if p.answers_prelogin => out.push(find(
            "tds8_absent",
            Severity::Info,
            Some("strict_unsupported"),
            format!(
                "no TDS 8.0: a TLS-first ClientHello got no answer within {} ms (SQL Server 2019 and older stay silent)",
                report.timeout_ms
            ),
            Some("clients must not use Encrypt=strict against this server"),
        )),
        ("absent", other) if p.answers_prelogin => out.push(find(
            "tds8_refused",
            Severity::Info,
            Some("tls_handshake_rejected"),
            format!("no TDS 8.0: a TLS-first ClientHello was refused ({})", tls_words(other)),
            Some("clients must not use Encrypt=strict against this server"),
        )),
        _ => {}
    }
    if !p.answers_prelogin && p.tds8 != "required" && p.reachable {
        let silent = matches!(
            report.prelogin.first().map(|x| &x.result),
            Some(PreloginOutcome::Timeout)
        );
        out.push(find(
            if silent { "silent" } else { "no_prelogin_reply" },
            Severity::Problem,
            Some(if silent { "timeout" } else { "transient_reset" }),
            if silent {
                format!(
                    "the server accepts TCP but answered neither PRELOGIN nor a TLS ClientHello within {} ms",
                    report.timeout_ms
                )
            } else {
                "the server closes every PRELOGIN without a reply and does not speak TDS 8.0".to_owned()
            },
            Some("check that SQL Server (not another service) listens here and that its listener is healthy"),
        ));
    }
    tls_findings(report, &mut out);
    certificate_findings(report, &mut out);
    out
}

fn tls_words(outcome: &TlsOutcome) -> String {
    match outcome {
        TlsOutcome::Alert { description, name } => format!("alert {description} {name}"),
        TlsOutcome::Reset => "reset".to_owned(),
        TlsOutcome::Closed => "closed".to_owned(),
        TlsOutcome::Timeout => "no answer".to_owned(),
        TlsOutcome::ClientRejected { error } => error.clone(),
        TlsOutcome::NotTls { first_bytes } => format!("not TLS: {first_bytes}"),
        TlsOutcome::NotOffered { reason } => reason.clone(),
        TlsOutcome::Unreachable { error } => error.clone(),
        TlsOutcome::Negotiated { version, .. } => version.clone(),
    }
}

fn tls_findings(report: &Report, out: &mut Vec<Finding>) {
    let (v12, v13) = (&report.tds7_tls12.result, &report.tds7_tls13.result);
    if matches!(
        v12,
        TlsOutcome::NotOffered { .. } | TlsOutcome::Unreachable { .. }
    ) {
        return;
    }
    if let Some((_, suite)) = v12.negotiated() {
        out.push(find(
            "tds7_tls12",
            Severity::Info,
            None,
            format!("TLS 1.2 inside TDS 7 works ({suite})"),
            None,
        ));
    } else {
        let both_fail = v13.negotiated().is_none();
        out.push(find(
            "tds7_tls12_rejected",
            if both_fail { Severity::Problem } else { Severity::Warning },
            Some(match v12 {
                TlsOutcome::Alert { description: 70, .. } => "tls_version_mismatch",
                _ => "tls_handshake_rejected",
            }),
            format!("TLS 1.2 inside TDS 7 failed: {}", tls_words(v12)),
            Some("enable TLS 1.2 on the server; check its cipher suites and certificate hash (Schannel events 36874/36888)"),
        ));
    }
    match v13 {
        TlsOutcome::Negotiated { cipher_suite, .. } => out.push(find(
            "tds7_tls13",
            Severity::Info,
            None,
            format!("TLS 1.3 inside TDS 7 works ({cipher_suite}); SQL Server before 2025 offers it only with TDS 8.0"),
            None,
        )),
        other => out.push(find(
            "tds7_tls13_absent",
            Severity::Info,
            Some(match other {
                TlsOutcome::Alert { description: 70, .. } => "tls_version_mismatch",
                _ => "tls_handshake_rejected",
            }),
            format!(
                "TLS 1.3 inside TDS 7 is not accepted ({}), as SQL Server 2022 and older: a TLS 1.3-only client must use TDS 8.0",
                tls_words(other)
            ),
            None,
        )),
    }
}

fn certificate_findings(report: &Report, out: &mut Vec<Finding>) {
    let Some(cert) = &report.certificate else {
        return;
    };
    let host = &report.target.host;
    if cert.days_to_expiry < 0 {
        out.push(find(
            "certificate_expired",
            Severity::Problem,
            Some("certificate_untrusted"),
            format!(
                "the certificate expired on {} ({} days ago)",
                cert.not_after, -cert.days_to_expiry
            ),
            Some("install a new certificate on the server"),
        ));
    } else if !cert.time_valid {
        out.push(find(
            "certificate_not_yet_valid",
            Severity::Problem,
            Some("certificate_untrusted"),
            format!("the certificate is not valid before {}", cert.not_before),
            Some("check the server's clock and the certificate's dates"),
        ));
    } else if cert.days_to_expiry < EXPIRY_WARNING_DAYS {
        out.push(find(
            "certificate_expires_soon",
            Severity::Warning,
            None,
            format!(
                "the certificate expires in {} days ({})",
                cert.days_to_expiry, cert.not_after
            ),
            Some("renew the server certificate"),
        ));
    }
    if !cert.host_name_match {
        out.push(find(
            "certificate_name_mismatch",
            Severity::Problem,
            Some("certificate_untrusted"),
            format!(
                "the certificate is not issued for {host} (names: {})",
                if cert.sans.is_empty() { "none".to_owned() } else { cert.sans.join(", ") }
            ),
            Some("connect by a name the certificate holds, or install a certificate that names this host"),
        ));
    }
    if cert.weak_signature {
        out.push(find(
            "weak_signature",
            Severity::Problem,
            Some("tls_handshake_rejected"),
            format!(
                "the certificate is signed with {}, which TLS 1.2 clients reject",
                cert.signature_algorithm
            ),
            Some("reissue the certificate with SHA-256 or SHA-384"),
        ));
    }
    if cert.key.starts_with("RSA") && cert.key_bits < 2048 {
        out.push(find(
            "weak_key",
            Severity::Warning,
            Some("certificate_untrusted"),
            format!("the certificate's key is {} bits", cert.key_bits),
            Some("reissue with RSA 2048 or more, or an EC key"),
        ));
    }
    let ca_valid = cert.ca_file.as_ref().map(Validation::is_valid);
    match (&cert.system_roots, ca_valid) {
        (Validation::Valid, _) => {}
        (_, Some(true)) => out.push(find(
            "certificate_trusted_by_ca",
            Severity::Info,
            None,
            "the certificate validates against --ca (not against the system roots)".to_owned(),
            Some("clients need TrustServerCertificateCA pointing at that CA"),
        )),
        (system, _) => out.push(find(
            "certificate_untrusted",
            Severity::Warning,
            Some("certificate_untrusted"),
            format!(
                "clients validating against the system roots reject the certificate: {}",
                match system {
                    Validation::Invalid { error } => error.clone(),
                    Validation::Unavailable { reason } => reason.clone(),
                    Validation::Valid => String::new(),
                }
            ),
            Some("install a certificate from a CA the clients trust, or give the clients this CA (TrustServerCertificateCA)"),
        )),
    }
    if let Some(Validation::Invalid { error }) = &cert.ca_file {
        out.push(find(
            "certificate_untrusted_by_ca",
            Severity::Warning,
            Some("certificate_untrusted"),
            format!("the certificate does not validate against --ca: {error}"),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_settings() {
        let s = ClientSettings::from_ado_string(
            "Server=tcp:db.example.com,1433;User Id=sa;Password=secret;Encrypt=strict;TrustServerCertificateCA=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(s.level, ClientLevel::Strict);
        assert_eq!(s.trust, ClientTrust::CaFile(PathBuf::from("/etc/ca.pem")));
        assert_eq!(s.host.as_deref(), Some("db.example.com"));
        let s =
            ClientSettings::from_ado_string("server=db;encrypt=false;trustservercertificate=yes")
                .unwrap();
        assert_eq!(
            (s.level, s.trust),
            (ClientLevel::Off, ClientTrust::TrustAll)
        );
        assert_eq!(
            ClientSettings::from_ado_string("Server=db").unwrap().level,
            ClientLevel::Required
        );
        let err = ClientSettings::from_ado_string("Server=db;Password=hunter2;Encrypt=maybe")
            .unwrap_err();
        assert!(!err.contains("hunter2") && !err.contains("maybe"));
    }
}
