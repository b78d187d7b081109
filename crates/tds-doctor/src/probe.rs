//! The bounded probes behind `tds-doctor probe`, each on its own TCP connection, none sending
//! a login.
//!
//! | # | probe | bound |
//! |---|---|---|
//! | 1-3 | plaintext PRELOGIN offering NOT_SUP, OFF, ON | `timeout` each |
//! | 4 | TLS first, ALPN `tds/8.0` (TDS 8.0 strict) | `timeout` |
//! | 5 | PRELOGIN ON, then TLS 1.2 only inside 0x12 packets | `timeout` |
//! | 6 | PRELOGIN ON, then TLS 1.3 only inside 0x12 packets | `timeout` |
//!
//! `timeout` covers the whole probe (TCP connect included). The total is therefore at most
//! 6 × `timeout` (30 s with the default 5 s). A refused or unresolvable address ends after the
//! first probe; a server that accepts TCP but never answers PRELOGIN skips probes 2, 3, 5 and 6,
//! so it ends after 2 × `timeout`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tds_handshake::{Encryption, MessageReassembler, PacketType, Prelogin, Side, Version};
use tokio::net::TcpStream;

use crate::certificate;
use crate::diagnosis;
use crate::report::{
    PreloginOutcome, PreloginProbe, PreloginReply, Report, SCHEMA_VERSION, TargetFacts, TlsOutcome,
    TlsProbe, hex,
};
use crate::target::Target;
use crate::tls::{self, Captured, Framing, Offer};
use crate::wire::{self, MAX_MESSAGE, ReadEnd};

/// Default bound of one probe: 5 s, as tiberius-tower's Strict probe. A server answers a
/// PRELOGIN or a ClientHello within one round trip; a silent one is the finding.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The version the probe announces in its PRELOGIN (this crate's, as drivers send theirs).
const PROBE_VERSION: Version = Version {
    major: 0,
    minor: 1,
    build: 0,
    sub_build: 0,
};

/// Settings of a probe run. Builder-style.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    timeout: Duration,
    ca: Option<PathBuf>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: DEFAULT_TIMEOUT,
            ca: None,
        }
    }
}

impl ProbeOptions {
    /// Defaults: [`DEFAULT_TIMEOUT`] per probe, system roots only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bound of each probe, TCP connect included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A PEM file of CA certificates to validate the server certificate against, besides the
    /// system roots.
    pub fn ca(mut self, path: Option<PathBuf>) -> Self {
        self.ca = path;
        self
    }

    /// The per-probe bound.
    pub fn probe_timeout(&self) -> Duration {
        self.timeout
    }
}

/// Runs the probes against `target` and diagnoses the answers. Never fails: an unreachable
/// or silent server is itself the result.
pub async fn probe(target: &Target, options: &ProbeOptions) -> Report {
    let captured: Captured = Arc::new(Mutex::new(None));
    let mut prelogin = Vec::new();
    let mut stop = false;
    for (offered, encryption) in [
        ("not_sup", Encryption::NOT_SUP),
        ("off", Encryption::OFF),
        ("on", Encryption::ON),
    ] {
        let started = Instant::now();
        let result = if stop {
            PreloginOutcome::Skipped
        } else {
            bounded(options.timeout, prelogin_probe(target, encryption))
                .await
                .unwrap_or(PreloginOutcome::Timeout)
        };
        // A silent or absent server answers no other offer either: do not wait for it twice.
        stop |= matches!(
            result,
            PreloginOutcome::Timeout | PreloginOutcome::Unreachable { .. }
        );
        prelogin.push(PreloginProbe {
            offered,
            result,
            elapsed_ms: millis(started),
        });
    }
    let unreachable = prelogin.first().and_then(|p| match &p.result {
        PreloginOutcome::Unreachable { error } => Some(error.clone()),
        _ => None,
    });

    let tds8 = match &unreachable {
        Some(error) => not_run(TlsOutcome::Unreachable {
            error: error.clone(),
        }),
        None => timed(options.timeout, tls_first(target, captured.clone())).await,
    };

    // TLS inside TDS 7 needs a PRELOGIN reply that lets TLS start.
    let on_reply = prelogin.get(2).map(|p| p.result.clone());
    let tds7_reason = match &on_reply {
        Some(PreloginOutcome::Replied(reply))
            if reply.encryption_byte == Some(Encryption::NOT_SUP.0) =>
        {
            Some("the server replied not_sup: it offers no TLS in TDS 7".to_owned())
        }
        Some(PreloginOutcome::Replied(_)) => None,
        Some(other) => Some(format!(
            "no PRELOGIN reply to an ON offer ({})",
            outcome_words(other)
        )),
        None => Some("not probed".to_owned()),
    };
    let (tds7_tls12, tds7_tls13) = match (&unreachable, tds7_reason) {
        (Some(error), _) => (
            not_run(TlsOutcome::Unreachable {
                error: error.clone(),
            }),
            not_run(TlsOutcome::Unreachable {
                error: error.clone(),
            }),
        ),
        (None, Some(reason)) => (
            not_run(TlsOutcome::NotOffered {
                reason: reason.clone(),
            }),
            not_run(TlsOutcome::NotOffered { reason }),
        ),
        (None, None) => (
            timed(
                options.timeout,
                tls_in_tds7(target, Offer::Tls12, captured.clone()),
            )
            .await,
            timed(
                options.timeout,
                tls_in_tds7(target, Offer::Tls13, captured.clone()),
            )
            .await,
        ),
    };

    let chain = captured.lock().ok().and_then(|mut c| c.take());
    let certificate = chain
        .as_deref()
        .and_then(|chain| certificate::analyse(chain, target.host(), options.ca.as_deref()));

    let mut report = Report {
        schema: SCHEMA_VERSION,
        target: TargetFacts {
            host: target.host().to_owned(),
            port: target.port(),
            instance: target.instance().map(str::to_owned),
        },
        timeout_ms: u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX),
        prelogin,
        tds8,
        tds7_tls12,
        tds7_tls13,
        certificate,
        posture: crate::report::Posture::default(),
        clients: Vec::new(),
        findings: Vec::new(),
        chain: chain.unwrap_or_default(),
    };
    diagnosis::diagnose(&mut report, options.ca.as_deref());
    report
}

async fn bounded<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, work).await.ok()
}

async fn timed(limit: Duration, work: impl Future<Output = TlsOutcome>) -> TlsProbe {
    let started = Instant::now();
    let result = bounded(limit, work).await.unwrap_or(TlsOutcome::Timeout);
    TlsProbe {
        result,
        elapsed_ms: millis(started),
    }
}

fn not_run(result: TlsOutcome) -> TlsProbe {
    TlsProbe {
        result,
        elapsed_ms: 0,
    }
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn outcome_words(outcome: &PreloginOutcome) -> &'static str {
    match outcome {
        PreloginOutcome::Replied(_) => "replied",
        PreloginOutcome::Reset => "reset",
        PreloginOutcome::Closed => "closed",
        PreloginOutcome::Timeout => "silent",
        PreloginOutcome::NotTds { .. } => "not TDS",
        PreloginOutcome::Unreachable { .. } => "unreachable",
        PreloginOutcome::Skipped => "skipped",
    }
}

/// The client PRELOGIN: VERSION, ENCRYPTION, INSTOPT, THREADID, MARS, FEDAUTHREQUIRED (sent,
/// as tedious does, so the reply says whether Azure AD authentication is required).
fn client_prelogin(target: &Target, encryption: Encryption) -> Vec<u8> {
    let mut request = Prelogin::client_request(PROBE_VERSION, encryption);
    request.instance = Some(target.instance().unwrap_or_default().as_bytes().to_vec());
    request.fed_auth_required = Some(1);
    request.encode(Side::Client)
}

/// Sends a PRELOGIN offering `encryption` and reads the reply, on a fresh connection; returns
/// the stream when there was a reply, for the TLS probes to continue on.
async fn exchange_prelogin(
    target: &Target,
    encryption: Encryption,
) -> (PreloginOutcome, Option<TcpStream>) {
    let mut stream = match wire::connect(target.host(), target.port()).await {
        Ok(stream) => stream,
        Err(error) => {
            return (
                PreloginOutcome::Unreachable {
                    error: error.to_string(),
                },
                None,
            );
        }
    };
    let payload = client_prelogin(target, encryption);
    if let Err(error) = wire::send_message(&mut stream, PacketType::PreLogin, &payload).await {
        return (read_end(ReadEnd::from(error)), None);
    }
    let mut reassembler = MessageReassembler::new(MAX_MESSAGE);
    let mut first = true;
    let message = match wire::read_message(&mut stream, &mut reassembler, &mut first).await {
        Ok(message) => message,
        Err(end) => return (read_end(end), None),
    };
    match Prelogin::decode(&message.payload, Side::Server) {
        Ok(reply) => (PreloginOutcome::Replied(summarise(&reply)), Some(stream)),
        Err(_) => (
            PreloginOutcome::NotTds {
                first_bytes: hex(message.payload.get(..16).unwrap_or(&message.payload)),
            },
            None,
        ),
    }
}

async fn prelogin_probe(target: &Target, encryption: Encryption) -> PreloginOutcome {
    exchange_prelogin(target, encryption).await.0
}

fn read_end(end: ReadEnd) -> PreloginOutcome {
    match end {
        ReadEnd::Reset => PreloginOutcome::Reset,
        ReadEnd::Closed => PreloginOutcome::Closed,
        ReadEnd::NotTds(first) => PreloginOutcome::NotTds {
            first_bytes: hex(&first),
        },
        ReadEnd::Io(error) => PreloginOutcome::NotTds {
            first_bytes: format!("(read error: {error})"),
        },
    }
}

fn summarise(reply: &Prelogin) -> PreloginReply {
    let v = reply.version;
    PreloginReply {
        encryption: reply
            .encryption
            .map(|e| e.name().to_owned())
            .unwrap_or_else(|| "absent".to_owned()),
        encryption_byte: reply.encryption.map(|e| e.0),
        version: format!("{}.{}.{}", v.major, v.minor, v.build),
        product: product(v.major),
        instance_match: reply
            .instance
            .as_ref()
            .and_then(|i| i.first())
            .map(|b| *b == 0),
        mars: reply.mars,
        fed_auth_required: reply.fed_auth_required,
    }
}

/// The SQL Server release of a major version number.
fn product(major: u8) -> Option<&'static str> {
    Some(match major {
        17 => "SQL Server 2025",
        16 => "SQL Server 2022",
        15 => "SQL Server 2019",
        14 => "SQL Server 2017",
        13 => "SQL Server 2016",
        12 => "SQL Server 2014",
        11 => "SQL Server 2012",
        10 => "SQL Server 2008 / 2008 R2",
        9 => "SQL Server 2005",
        _ => return None,
    })
}

/// TDS 8.0: a ClientHello with ALPN `tds/8.0` as the first bytes, TLS 1.2 and 1.3 offered.
async fn tls_first(target: &Target, captured: Captured) -> TlsOutcome {
    let mut stream = match wire::connect(target.host(), target.port()).await {
        Ok(stream) => stream,
        Err(error) => {
            return TlsOutcome::Unreachable {
                error: error.to_string(),
            };
        }
    };
    let Some(config) = tls::client_config(Offer::Both, true, captured) else {
        return TlsOutcome::ClientRejected {
            error: "no TLS configuration".to_owned(),
        };
    };
    tls::handshake(&mut stream, config, target.host(), Framing::Raw).await
}

/// TDS 7: a PRELOGIN offering ON, then TLS offering only `offer`, wrapped in 0x12 packets.
async fn tls_in_tds7(target: &Target, offer: Offer, captured: Captured) -> TlsOutcome {
    let (outcome, stream) = exchange_prelogin(target, Encryption::ON).await;
    let mut stream = match (outcome, stream) {
        (PreloginOutcome::Replied(reply), Some(stream)) => {
            if reply.encryption_byte == Some(Encryption::NOT_SUP.0) {
                return TlsOutcome::NotOffered {
                    reason: "the server replied not_sup".to_owned(),
                };
            }
            stream
        }
        (PreloginOutcome::Unreachable { error }, _) => return TlsOutcome::Unreachable { error },
        (other, _) => {
            return TlsOutcome::NotOffered {
                reason: format!("no PRELOGIN reply ({})", outcome_words(&other)),
            };
        }
    };
    let Some(config) = tls::client_config(offer, false, captured) else {
        return TlsOutcome::ClientRejected {
            error: "no TLS configuration".to_owned(),
        };
    };
    tls::handshake(&mut stream, config, target.host(), Framing::Tds7).await
}
