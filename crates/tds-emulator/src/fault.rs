//! Faults the emulator injects, each at one exact point of the handshake, and their text syntax.
//!
//! A rule is `FAULT[@SCHEDULE]` (schedule defaults to `always`; see [`Schedule`]). Fault forms:
//!
//! | text | what the server does |
//! |---|---|
//! | `reset-before-prelogin-reply` | reads the PRELOGIN, sends nothing, resets (RST) |
//! | `fin-before-prelogin-reply` | reads the PRELOGIN, sends nothing, closes (FIN) |
//! | `garbage-reply` | answers the PRELOGIN with bytes that are not TDS, then closes |
//! | `truncated-reply` | sends the first half of the PRELOGIN reply, then closes (FIN) |
//! | `reset-after-prelogin-reply` | sends the PRELOGIN reply, then resets |
//! | `nonzero-threadid` | sends a PRELOGIN reply whose THREADID has 4 non-zero bytes (servers send it empty); **debug builds of tiberius 0.13 panic** on it (`debug_assert_eq!(thread_id, 0)`), release builds ignore it |
//! | `reset-after-client-hello` | reads the first TLS flight (ClientHello), resets |
//! | `reset-at-byte:N` | the server's output stops after N bytes in total, then a reset |
//! | `alert:D[:raw\|:wrapped]` | answers the ClientHello with a fatal TLS alert with description D (0-255), raw (default) or wrapped in a 0x12 packet, then closes |
//! | `old-server-hello[:1.0\|:1.1]` | answers the ClientHello with a ServerHello for TLS 1.0 (default) or 1.1, as an unpatched SQL Server 2008-2014 does (wrapped in a 0x12 packet in TDS 7, raw in strict mode); reads the client's answer (a TLS 1.2+ client sends alert 70, protocol_version, recorded in [`ClientRecord::client_alert`](crate::ClientRecord::client_alert)), then closes |
//! | `stall:PHASE` | goes silent at PHASE (`prelogin`, `tls`, `login`, `query`) and holds the connection open until the client leaves or the emulator shuts down |
//! | `wrong-packet-type` | frames its TDS 7 TLS handshake flights as 0x04 packets instead of 0x12 |
//! | `login-error:N` | answers LOGIN7 with ERROR N + DONE(error), then closes |
//! | `close-after-login` | completes the login, then closes (FIN) before any query |
//! | `reset-after-login` | completes the login, then resets before any query |

use std::fmt;
use std::str::FromStr;

use crate::schedule::{Schedule, ScheduleParseError};

/// How a TLS alert fault is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertFraming {
    /// A bare 7-byte TLS alert record.
    Raw,
    /// The alert record inside a TDS 0x12 (PRELOGIN) packet, as a TDS 7 handshake message.
    Wrapped,
}

/// A TLS version older than 1.2, as selected by an old server's ServerHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OldTlsVersion {
    /// TLS 1.0 (0x0301): SQL Server 2008-2014 without the TLS 1.2 updates (KB3135244).
    Tls10,
    /// TLS 1.1 (0x0302).
    Tls11,
}

impl OldTlsVersion {
    /// The minor byte of the wire version (3, minor).
    pub fn wire_minor(self) -> u8 {
        match self {
            OldTlsVersion::Tls10 => 1,
            OldTlsVersion::Tls11 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OldTlsVersion::Tls10 => "1.0",
            OldTlsVersion::Tls11 => "1.1",
        }
    }
}

/// Where a [`Fault::Stall`] goes silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StallPhase {
    /// After reading the client's PRELOGIN, before replying.
    Prelogin,
    /// After reading the ClientHello, before answering it (TDS 7 wrapped or strict).
    Tls,
    /// After reading LOGIN7, before the login response.
    Login,
    /// After login, never answering a request.
    Query,
}

impl StallPhase {
    fn name(self) -> &'static str {
        match self {
            StallPhase::Prelogin => "prelogin",
            StallPhase::Tls => "tls",
            StallPhase::Login => "login",
            StallPhase::Query => "query",
        }
    }
}

/// One misbehaviour, tied to one point of the handshake (see [`Fault::point`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// Read the PRELOGIN, then reset without replying.
    ResetBeforePreloginReply,
    /// Read the PRELOGIN, then close (FIN) without replying.
    FinBeforePreloginReply,
    /// Answer the PRELOGIN with non-TDS bytes (an HTTP status line), then close.
    GarbageReply,
    /// Send only the first half of the PRELOGIN reply, then close (FIN).
    TruncatedReply,
    /// Send the PRELOGIN reply, then reset.
    ResetAfterPreloginReply,
    /// Send a PRELOGIN reply whose THREADID option carries 4 non-zero bytes instead of being
    /// empty (tds-handshake.md §2.3), then carry on normally. Debug builds of tiberius 0.13
    /// panic on it (`debug_assert_eq!(thread_id, 0)` in its PRELOGIN exchange); release builds
    /// compile the assertion out and connect. Use it to test that a driver panic is contained.
    NonZeroThreadId,
    /// Read the ClientHello (first TLS flight), then reset.
    ResetAfterClientHello,
    /// Truncate the server's output after this many bytes (counted from the first byte the
    /// server writes on the connection), then reset.
    ResetAtServerByte(u64),
    /// Answer the ClientHello with a fatal alert of this description, then close (FIN).
    Alert {
        /// TLS AlertDescription (e.g. 40 handshake_failure, 70 protocol_version).
        description: u8,
        /// Raw record or wrapped in a 0x12 packet.
        framing: AlertFraming,
    },
    /// Answer the ClientHello with a ServerHello selecting TLS 1.0 or 1.1 (an unpatched SQL
    /// Server 2008-2014), read the client's answer (alert 70 from a TLS 1.2+ client), close.
    OldServerHello(OldTlsVersion),
    /// Go silent at a phase and hold the connection open.
    Stall(StallPhase),
    /// Frame the TDS 7 TLS handshake flights as type 0x04 packets instead of 0x12.
    WrongPacketType,
    /// Reject the login with this error number (ERROR + DONE(error)), then close.
    LoginError(u32),
    /// Complete the login, then close (FIN).
    CloseAfterLogin,
    /// Complete the login, then reset.
    ResetAfterLogin,
}

/// The exact point of a connection at which a fault is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Right after accept: faults that shape the whole connection (byte budget).
    Accepted,
    /// The client's PRELOGIN has been read; the reply is not sent yet.
    BeforePreloginReply,
    /// The PRELOGIN reply has been sent.
    AfterPreloginReply,
    /// The first TLS client flight (ClientHello) has been read, not yet answered.
    ClientHello,
    /// LOGIN7 has been read; the login response is not sent yet.
    Login,
    /// The login response has been sent.
    AfterLogin,
    /// A request arrived after login.
    Query,
}

impl Fault {
    /// The point at which this fault acts.
    pub fn point(&self) -> FaultPoint {
        match self {
            Fault::ResetBeforePreloginReply
            | Fault::FinBeforePreloginReply
            | Fault::GarbageReply
            | Fault::TruncatedReply
            | Fault::NonZeroThreadId
            | Fault::Stall(StallPhase::Prelogin) => FaultPoint::BeforePreloginReply,
            Fault::ResetAfterPreloginReply => FaultPoint::AfterPreloginReply,
            Fault::ResetAfterClientHello
            | Fault::Alert { .. }
            | Fault::OldServerHello(_)
            | Fault::Stall(StallPhase::Tls)
            | Fault::WrongPacketType => FaultPoint::ClientHello,
            Fault::ResetAtServerByte(_) => FaultPoint::Accepted,
            Fault::LoginError(_) | Fault::Stall(StallPhase::Login) => FaultPoint::Login,
            Fault::CloseAfterLogin | Fault::ResetAfterLogin => FaultPoint::AfterLogin,
            Fault::Stall(StallPhase::Query) => FaultPoint::Query,
        }
    }

    /// A stable snake_case name of the fault kind, used as the key of
    /// [`Stats::faults_injected`](crate::Stats::faults_injected).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::ResetBeforePreloginReply => "reset_before_prelogin_reply",
            Fault::FinBeforePreloginReply => "fin_before_prelogin_reply",
            Fault::GarbageReply => "garbage_reply",
            Fault::TruncatedReply => "truncated_reply",
            Fault::ResetAfterPreloginReply => "reset_after_prelogin_reply",
            Fault::NonZeroThreadId => "nonzero_threadid",
            Fault::ResetAfterClientHello => "reset_after_client_hello",
            Fault::ResetAtServerByte(_) => "reset_at_server_byte",
            Fault::Alert {
                framing: AlertFraming::Raw,
                ..
            } => "alert_raw",
            Fault::Alert {
                framing: AlertFraming::Wrapped,
                ..
            } => "alert_wrapped",
            Fault::OldServerHello(_) => "old_server_hello",
            Fault::Stall(_) => "stall",
            Fault::WrongPacketType => "wrong_packet_type",
            Fault::LoginError(_) => "login_error",
            Fault::CloseAfterLogin => "close_after_login",
            Fault::ResetAfterLogin => "reset_after_login",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::ResetBeforePreloginReply => f.write_str("reset-before-prelogin-reply"),
            Fault::FinBeforePreloginReply => f.write_str("fin-before-prelogin-reply"),
            Fault::GarbageReply => f.write_str("garbage-reply"),
            Fault::TruncatedReply => f.write_str("truncated-reply"),
            Fault::ResetAfterPreloginReply => f.write_str("reset-after-prelogin-reply"),
            Fault::NonZeroThreadId => f.write_str("nonzero-threadid"),
            Fault::ResetAfterClientHello => f.write_str("reset-after-client-hello"),
            Fault::ResetAtServerByte(n) => write!(f, "reset-at-byte:{n}"),
            Fault::Alert {
                description,
                framing,
            } => {
                let framing = match framing {
                    AlertFraming::Raw => "raw",
                    AlertFraming::Wrapped => "wrapped",
                };
                write!(f, "alert:{description}:{framing}")
            }
            Fault::OldServerHello(version) => write!(f, "old-server-hello:{}", version.name()),
            Fault::Stall(phase) => write!(f, "stall:{}", phase.name()),
            Fault::WrongPacketType => f.write_str("wrong-packet-type"),
            Fault::LoginError(n) => write!(f, "login-error:{n}"),
            Fault::CloseAfterLogin => f.write_str("close-after-login"),
            Fault::ResetAfterLogin => f.write_str("reset-after-login"),
        }
    }
}

/// Why a fault or rule string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultParseError {
    /// The fault part is not one of the documented forms.
    #[error(
        "invalid fault {input:?}: {reason}; expected one of reset-before-prelogin-reply, \
         fin-before-prelogin-reply, garbage-reply, truncated-reply, reset-after-prelogin-reply, \
         nonzero-threadid, reset-after-client-hello, reset-at-byte:N, alert:D[:raw|:wrapped], \
         old-server-hello[:1.0|:1.1], stall:prelogin|tls|login|query, wrong-packet-type, login-error:N, close-after-login, \
         reset-after-login"
    )]
    Fault {
        /// The text that was rejected.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The part after `@` is not a valid schedule.
    #[error(transparent)]
    Schedule(#[from] ScheduleParseError),
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| FaultParseError::Fault {
            input: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let number = |text: &str| {
            text.parse::<u64>()
                .map_err(|_| err("N must be a whole number"))
        };
        match parts.as_slice() {
            ["reset-before-prelogin-reply"] => Ok(Fault::ResetBeforePreloginReply),
            ["fin-before-prelogin-reply"] => Ok(Fault::FinBeforePreloginReply),
            ["garbage-reply"] => Ok(Fault::GarbageReply),
            ["truncated-reply"] => Ok(Fault::TruncatedReply),
            ["reset-after-prelogin-reply"] => Ok(Fault::ResetAfterPreloginReply),
            ["nonzero-threadid"] => Ok(Fault::NonZeroThreadId),
            ["reset-after-client-hello"] => Ok(Fault::ResetAfterClientHello),
            ["reset-at-byte", n] => Ok(Fault::ResetAtServerByte(number(n)?)),
            ["alert", d] | ["alert", d, _] => {
                let description = d
                    .parse::<u8>()
                    .map_err(|_| err("the alert description must be a number 0-255"))?;
                let framing = match parts.get(2) {
                    None | Some(&"raw") => AlertFraming::Raw,
                    Some(&"wrapped") => AlertFraming::Wrapped,
                    Some(_) => return Err(err("alert framing must be raw or wrapped")),
                };
                Ok(Fault::Alert {
                    description,
                    framing,
                })
            }
            ["old-server-hello"] | ["old-server-hello", "1.0"] => {
                Ok(Fault::OldServerHello(OldTlsVersion::Tls10))
            }
            ["old-server-hello", "1.1"] => Ok(Fault::OldServerHello(OldTlsVersion::Tls11)),
            ["old-server-hello", _] => Err(err("the ServerHello version must be 1.0 or 1.1")),
            ["stall", phase] => match *phase {
                "prelogin" => Ok(Fault::Stall(StallPhase::Prelogin)),
                "tls" => Ok(Fault::Stall(StallPhase::Tls)),
                "login" => Ok(Fault::Stall(StallPhase::Login)),
                "query" => Ok(Fault::Stall(StallPhase::Query)),
                _ => Err(err("stall phase must be prelogin, tls, login or query")),
            },
            ["wrong-packet-type"] => Ok(Fault::WrongPacketType),
            ["login-error", n] => {
                let n = n
                    .parse::<u32>()
                    .map_err(|_| err("the error number must be a whole number"))?;
                Ok(Fault::LoginError(n))
            }
            ["close-after-login"] => Ok(Fault::CloseAfterLogin),
            ["reset-after-login"] => Ok(Fault::ResetAfterLogin),
            _ => Err(err("unknown fault")),
        }
    }
}

/// A fault with the schedule that decides on which connections it fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRule {
    /// What goes wrong.
    pub fault: Fault,
    /// On which connections.
    pub schedule: Schedule,
}

impl FaultRule {
    /// A rule from its parts.
    pub fn new(fault: Fault, schedule: Schedule) -> Self {
        FaultRule { fault, schedule }
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.fault, self.schedule)
    }
}

impl FromStr for FaultRule {
    type Err = FaultParseError;

    /// `FAULT@SCHEDULE`, or `FAULT` alone for `always`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (fault, schedule) = crate::schedule::split_rule(s)?;
        Ok(FaultRule {
            fault: fault.parse()?,
            schedule,
        })
    }
}

/// The faults that fire on one connection, in rule order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActiveFaults(Vec<Fault>);

impl ActiveFaults {
    /// Evaluates every rule's schedule for the connection with this accept index.
    pub(crate) fn for_connection(rules: &[FaultRule], connection_index: u64) -> Self {
        ActiveFaults(
            rules
                .iter()
                .filter(|rule| rule.schedule.fires(connection_index))
                .map(|rule| rule.fault)
                .collect(),
        )
    }

    /// The first active fault acting at `point` (first matching rule wins).
    pub(crate) fn at(&self, point: FaultPoint) -> Option<Fault> {
        self.0.iter().copied().find(|fault| fault.point() == point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_through_text() {
        let faults = [
            Fault::ResetBeforePreloginReply,
            Fault::FinBeforePreloginReply,
            Fault::GarbageReply,
            Fault::TruncatedReply,
            Fault::ResetAfterPreloginReply,
            Fault::NonZeroThreadId,
            Fault::ResetAfterClientHello,
            Fault::ResetAtServerByte(100),
            Fault::Alert {
                description: 40,
                framing: AlertFraming::Wrapped,
            },
            Fault::Alert {
                description: 70,
                framing: AlertFraming::Raw,
            },
            Fault::OldServerHello(OldTlsVersion::Tls10),
            Fault::OldServerHello(OldTlsVersion::Tls11),
            Fault::Stall(StallPhase::Prelogin),
            Fault::Stall(StallPhase::Tls),
            Fault::Stall(StallPhase::Login),
            Fault::Stall(StallPhase::Query),
            Fault::WrongPacketType,
            Fault::LoginError(18456),
            Fault::CloseAfterLogin,
            Fault::ResetAfterLogin,
        ];
        for fault in faults {
            assert_eq!(fault.to_string().parse::<Fault>(), Ok(fault));
        }
    }

    #[test]
    fn rules_parse_with_schedules() {
        let rule: FaultRule = "reset-before-prelogin-reply@first:2".parse().unwrap();
        assert_eq!(rule.schedule, Schedule::FirstN(2));
        let rule: FaultRule = "alert:40:wrapped@every:3".parse().unwrap();
        assert_eq!(
            rule.fault,
            Fault::Alert {
                description: 40,
                framing: AlertFraming::Wrapped
            }
        );
        let rule: FaultRule = "stall:tls@p:0.3:seed:7".parse().unwrap();
        assert_eq!(rule.schedule, Schedule::Probability { p: 0.3, seed: 7 });
        let rule: FaultRule = "login-error:18456".parse().unwrap();
        assert_eq!(rule.schedule, Schedule::Always);
        assert!("alert:300".parse::<FaultRule>().is_err());
        assert_eq!(
            "old-server-hello@first:1"
                .parse::<FaultRule>()
                .unwrap()
                .fault,
            Fault::OldServerHello(OldTlsVersion::Tls10)
        );
        assert!("old-server-hello:1.2".parse::<FaultRule>().is_err());
        assert!("explode".parse::<FaultRule>().is_err());
        assert!("stall:tls@never".parse::<FaultRule>().is_err());
    }

    #[test]
    fn first_matching_rule_wins_per_point() {
        let rules = [
            FaultRule::new(Fault::ResetBeforePreloginReply, Schedule::FirstN(1)),
            FaultRule::new(Fault::FinBeforePreloginReply, Schedule::Always),
            FaultRule::new(Fault::LoginError(4060), Schedule::Always),
        ];
        let first = ActiveFaults::for_connection(&rules, 0);
        assert_eq!(
            first.at(FaultPoint::BeforePreloginReply),
            Some(Fault::ResetBeforePreloginReply)
        );
        let second = ActiveFaults::for_connection(&rules, 1);
        assert_eq!(
            second.at(FaultPoint::BeforePreloginReply),
            Some(Fault::FinBeforePreloginReply)
        );
        assert_eq!(second.at(FaultPoint::Login), Some(Fault::LoginError(4060)));
        assert_eq!(second.at(FaultPoint::ClientHello), None);
    }
}
