//! [`Attempt`]: the record of one attempt, as the history keeps it.

use std::time::Duration;

use tds_handshake::{Direction, Encryption, Observation, Phase};

use crate::cause::Cause;
use crate::connect::AttemptTimings;
use crate::level::EncryptionLevel;

use super::decision::Decision;

/// SQL Server's client error number for "an existing connection was forcibly
/// closed by the remote host" during the pre-login handshake.
const ERROR_10054: u32 = 10054;

/// One attempt, as recorded in the history that [`Connected`](crate::Connected)
/// and [`ConnectError`](crate::ConnectError) return: where it went, at which
/// level, what the wire showed, why it failed and what the policy did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) encryption: EncryptionLevel,
    pub(crate) strict_probe: bool,
    pub(crate) delay: Duration,
    pub(crate) duration: Duration,
    pub(crate) timings: AttemptTimings,
    pub(crate) phase: Option<Phase>,
    pub(crate) offered: Option<Encryption>,
    pub(crate) replied: Option<Encryption>,
    pub(crate) tls_alert: Option<(u8, Direction)>,
    pub(crate) reset_during_prelogin: bool,
    pub(crate) server_error: Option<u32>,
    pub(crate) cause: Option<Cause>,
    pub(crate) decision: Option<Decision>,
}

impl Attempt {
    pub(crate) fn new(
        host: &str,
        port: u16,
        encryption: EncryptionLevel,
        strict_probe: bool,
        delay: Duration,
    ) -> Self {
        Attempt {
            host: host.to_owned(),
            port,
            encryption,
            strict_probe,
            delay,
            duration: Duration::ZERO,
            timings: AttemptTimings::default(),
            phase: None,
            offered: None,
            replied: None,
            tls_alert: None,
            reset_during_prelogin: false,
            server_error: None,
            cause: None,
            decision: None,
        }
    }

    /// Copies the wire facts of `observation` into the record.
    pub(crate) fn observed(&mut self, observation: &Observation) {
        self.phase = Some(observation.phase);
        self.offered = observation.client_prelogin.and_then(|p| p.encryption);
        self.replied = observation.server_prelogin.and_then(|p| p.encryption);
        self.tls_alert = observation
            .first_alert
            .map(|a| (a.alert.description.0, a.sender));
    }

    /// Host this attempt connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port this attempt connected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Encryption level asked of tiberius.
    pub fn encryption(&self) -> EncryptionLevel {
        self.encryption
    }

    /// True for the Strict probe of design §2.3 (made once, after a reset
    /// with no reply to a plaintext PRELOGIN).
    pub fn strict_probe(&self) -> bool {
        self.strict_probe
    }

    /// The delay slept before this attempt (zero for the first attempt,
    /// upgrades, the probe and redirects): the backoff delay, plus the wait
    /// for a retry token when the shared budget was empty.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Wall time of the attempt itself.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Time spent in TCP connect and in the TDS handshake.
    pub fn timings(&self) -> AttemptTimings {
        self.timings
    }

    /// The furthest handshake phase the observer saw; None when TCP never
    /// connected.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The PRELOGIN ENCRYPTION value the client offered, when seen in clear.
    pub fn offered(&self) -> Option<Encryption> {
        self.offered
    }

    /// The PRELOGIN ENCRYPTION value the server replied, when seen in clear.
    pub fn replied(&self) -> Option<Encryption> {
        self.replied
    }

    /// The first TLS alert seen in clear: its description number and who
    /// sent it.
    pub fn tls_alert(&self) -> Option<(u8, Direction)> {
        self.tls_alert
    }

    /// True when the server reset or closed the connection before LOGIN7
    /// was sent: the event SQL Server drivers report as error 10054.
    pub fn reset_during_prelogin(&self) -> bool {
        self.reset_during_prelogin
    }

    /// The server error number, for server errors.
    pub fn server_error(&self) -> Option<u32> {
        self.server_error
    }

    /// Why it failed; None when it connected.
    pub fn cause(&self) -> Option<Cause> {
        self.cause
    }

    /// What the policy did after it failed; None when it connected.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The value of `db.response.status_code`: the server error number, or
    /// 10054 when the server reset or closed during the pre-login handshake.
    pub(crate) fn response_status_code(&self) -> Option<u32> {
        self.server_error
            .or(self.reset_during_prelogin.then_some(ERROR_10054))
    }
}
