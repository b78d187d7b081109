//! The human-readable report: aligned sections a DBA can read top to bottom.

use std::fmt::Write as _;

use crate::certificate::Validation;
use crate::report::ClientVerdict;
use crate::report::{PreloginOutcome, Report, Severity, TlsOutcome};

/// The whole report as text.
pub fn report(report: &Report) -> String {
    let mut out = String::new();
    let t = &report.target;
    let _ = writeln!(
        out,
        "tds-doctor probe {}{},{}  (each probe bounded by {} ms)",
        t.host,
        t.instance
            .as_deref()
            .map(|i| format!("\\{i}"))
            .unwrap_or_default(),
        t.port,
        report.timeout_ms
    );
    let p = &report.posture;
    out.push_str("\nServer\n");
    row(&mut out, "reachable", yes_no(p.reachable));
    if let Some(version) = &p.version {
        row(
            &mut out,
            "version",
            &format!(
                "{version}{}",
                p.product.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        );
    }
    row(&mut out, "encryption", p.encryption);
    row(
        &mut out,
        "force encryption",
        p.force_encryption.map_or("unknown", yes_no),
    );
    row(&mut out, "TDS 8.0 strict", p.tds8);
    row(
        &mut out,
        "TLS in TDS 7",
        &if p.tds7_tls_versions.is_empty() {
            "none".to_owned()
        } else {
            p.tds7_tls_versions.join(", ")
        },
    );
    if let Some(v) = &p.tds8_tls_version {
        row(&mut out, "TLS in TDS 8.0", v);
    }

    out.push_str("\nProbes\n");
    for probe in &report.prelogin {
        row(
            &mut out,
            &format!("PRELOGIN offer {}", probe.offered),
            &format!("{}  [{} ms]", prelogin(&probe.result), probe.elapsed_ms),
        );
    }
    for (name, probe) in [
        ("TLS first, ALPN tds/8.0", &report.tds8),
        ("TDS 7 + TLS 1.2 only", &report.tds7_tls12),
        ("TDS 7 + TLS 1.3 only", &report.tds7_tls13),
    ] {
        row(
            &mut out,
            name,
            &format!("{}  [{} ms]", tls(&probe.result), probe.elapsed_ms),
        );
    }

    if let Some(c) = &report.certificate {
        out.push_str("\nCertificate\n");
        row(&mut out, "subject", &c.subject);
        row(&mut out, "names (SAN)", &c.sans.join(", "));
        row(&mut out, "issuer", &c.issuer);
        row(
            &mut out,
            "valid",
            &format!(
                "{} .. {} ({} days left)",
                c.not_before, c.not_after, c.days_to_expiry
            ),
        );
        row(
            &mut out,
            "signature",
            &format!(
                "{}{}",
                c.signature_algorithm,
                if c.weak_signature {
                    "  (rejected by clients)"
                } else {
                    ""
                }
            ),
        );
        row(&mut out, "key", &c.key);
        row(&mut out, "chain length", &c.chain_length.to_string());
        row(&mut out, "host name match", yes_no(c.host_name_match));
        row(&mut out, "system roots", &validation(&c.system_roots));
        if let Some(ca) = &c.ca_file {
            row(&mut out, "--ca", &validation(ca));
        }
    }

    out.push_str("\nClients (tiberius-tower, default policy)\n");
    let _ = writeln!(
        out,
        "  {:<26} {:<10} {:<24} {:<9} handshakes",
        "setting", "result", "cause", "recovers"
    );
    for c in &report.clients {
        let _ = writeln!(
            out,
            "  {:<26} {:<10} {:<24} {:<9} {}",
            c.setting,
            if c.connects { "connects" } else { "fails" },
            c.cause.or(c.first_cause).unwrap_or("-"),
            if c.first_cause.is_some() {
                yes_no(c.recovers)
            } else {
                "-"
            },
            c.handshakes
        );
    }

    out.push_str("\nFindings\n");
    if report.findings.is_empty() {
        out.push_str("  none\n");
    }
    for f in &report.findings {
        let level = match f.severity {
            Severity::Problem => "PROBLEM",
            Severity::Warning => "WARNING",
            Severity::Info => "info",
        };
        let _ = writeln!(
            out,
            "  {level:<7} {}{}: {}",
            f.code,
            f.cause.map(|c| format!(" [{c}]")).unwrap_or_default(),
            f.message
        );
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "          fix: {fix}");
        }
    }
    out
}

/// One client's verdict as text (`tds-doctor explain`).
pub fn verdict(v: &ClientVerdict) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Client setting: {} (level {})", v.setting, v.level);
    if v.connects {
        let _ = writeln!(
            out,
            "Result: connects in {} handshake(s); session encryption: {}",
            v.handshakes,
            v.session.as_deref().unwrap_or("-")
        );
        if let Some(cause) = v.first_cause {
            let _ = writeln!(
                out,
                "First handshake fails with {cause}; tiberius-tower recovers by itself (a bare driver reports the failure)."
            );
        }
    } else {
        let _ = writeln!(
            out,
            "Result: fails with {} after {} handshake(s); tiberius-tower does not recover by itself.",
            v.cause.unwrap_or("unknown"),
            v.handshakes
        );
    }
    if let Some(fix) = &v.fix_client {
        let _ = writeln!(out, "Fix, client side: {fix}");
    }
    if let Some(fix) = &v.fix_server {
        let _ = writeln!(out, "Fix, server side: {fix}");
    }
    out
}

fn row(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "  {name:<26} {value}");
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn validation(v: &Validation) -> String {
    match v {
        Validation::Valid => "valid".to_owned(),
        Validation::Invalid { error } => format!("REJECTED: {error}"),
        Validation::Unavailable { reason } => format!("not checked: {reason}"),
    }
}

fn prelogin(outcome: &PreloginOutcome) -> String {
    match outcome {
        PreloginOutcome::Replied(r) => format!(
            "reply {} (0x{:02x}), version {}, MARS {}, FEDAUTHREQUIRED {}",
            r.encryption,
            r.encryption_byte.unwrap_or_default(),
            r.version,
            r.mars.map_or("-".to_owned(), |m| m.to_string()),
            r.fed_auth_required
                .map_or("-".to_owned(), |m| m.to_string()),
        ),
        PreloginOutcome::Reset => "reset, no reply (10054)".to_owned(),
        PreloginOutcome::Closed => "closed, no reply".to_owned(),
        PreloginOutcome::Timeout => "no answer (timeout)".to_owned(),
        PreloginOutcome::NotTds { first_bytes } => format!("not TDS: {first_bytes}"),
        PreloginOutcome::Unreachable { error } => format!("unreachable: {error}"),
        PreloginOutcome::Skipped => "skipped".to_owned(),
    }
}

fn tls(outcome: &TlsOutcome) -> String {
    match outcome {
        TlsOutcome::Negotiated {
            version,
            cipher_suite,
            alpn,
        } => format!(
            "{version}, {cipher_suite}{}",
            alpn.as_deref()
                .map(|a| format!(", ALPN {a}"))
                .unwrap_or_default()
        ),
        TlsOutcome::Alert { description, name } => format!("alert {description} ({name})"),
        TlsOutcome::Reset => "reset (10054)".to_owned(),
        TlsOutcome::Closed => "closed".to_owned(),
        TlsOutcome::Timeout => "no answer (timeout)".to_owned(),
        TlsOutcome::ClientRejected { error } => format!("refused by the probe: {error}"),
        TlsOutcome::NotTls { first_bytes } => format!("not TLS: {first_bytes}"),
        TlsOutcome::NotOffered { reason } => format!("not run: {reason}"),
        TlsOutcome::Unreachable { error } => format!("unreachable: {error}"),
    }
}
