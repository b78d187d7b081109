//! What the plan decides after a failed attempt: [`Decision`], and why it
//! stops: [`StopReason`].

use std::time::Duration;

use crate::cause::Cause;
use crate::level::EncryptionLevel;

/// What the policy did after a failed attempt. Every failed attempt's
/// record carries its decision ([`Attempt::decision`](crate::Attempt::decision)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The same request again after `delay`, at `encryption` (usually
    /// unchanged; after a failed Strict probe, the level held before it).
    Retry {
        /// Backoff delay, jitter included, plus the wait for a token of the
        /// retry budget when it was empty (the retry was decided when the
        /// token came).
        delay: Duration,
        /// Level of the next attempt.
        encryption: EncryptionLevel,
    },
    /// The same request at a higher level, at once.
    Upgrade {
        /// The new level.
        to: EncryptionLevel,
    },
    /// Strict once, at once, with a short handshake bound (design §2.3).
    ProbeStrict,
    /// Follow a routing redirect, at once.
    Redirect {
        /// New host.
        host: String,
        /// New port.
        port: u16,
    },
    /// Give up with this cause.
    Stop {
        /// The cause reported to the caller.
        cause: Cause,
        /// Why no further attempt is made.
        reason: StopReason,
    },
}

impl Decision {
    /// A stable snake_case name (`retry`, `upgrade`, `probe_strict`,
    /// `redirect`, `stop`), as recorded in the `mssql.decision` span
    /// attribute and the attempts counter's outcome.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Decision::Retry { .. } => "retry",
            Decision::Upgrade { .. } => "upgrade",
            Decision::ProbeStrict => "probe_strict",
            Decision::Redirect { .. } => "redirect",
            Decision::Stop { .. } => "stop",
        }
    }

    /// The backoff delay before the next attempt (zero unless a retry).
    pub(crate) fn delay(&self) -> Duration {
        match self {
            Decision::Retry { delay, .. } => *delay,
            _ => Duration::ZERO,
        }
    }
}

/// Why the policy stopped trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The cause repeats until a setting changes (certificate, TLS version,
    /// credentials...): no attempt was spent on it.
    Deterministic,
    /// An upgrade was needed but the ceiling forbids it.
    CeilingReached,
    /// The retry schedule (max retries) is used up.
    RetriesExhausted,
    /// The hard cap on attempts per connect was reached.
    AttemptsExhausted,
    /// The next attempt would start at or after the connect's deadline, or
    /// the deadline passed during an attempt.
    DeadlineExceeded,
    /// The retry budget shared by all clones was empty and no token came
    /// before the deadline (or nothing could refill it).
    BudgetExhausted,
    /// Too many routing redirects.
    RedirectLimit,
}

impl StopReason {
    /// A stable snake_case name, as in the `mssql.stop_reason` attribute.
    pub const fn as_str(self) -> &'static str {
        match self {
            StopReason::Deterministic => "deterministic",
            StopReason::CeilingReached => "ceiling_reached",
            StopReason::RetriesExhausted => "retries_exhausted",
            StopReason::AttemptsExhausted => "attempts_exhausted",
            StopReason::DeadlineExceeded => "deadline_exceeded",
            StopReason::BudgetExhausted => "budget_exhausted",
            StopReason::RedirectLimit => "redirect_limit",
        }
    }
}
