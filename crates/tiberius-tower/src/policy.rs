//! The policy: from a cause and the attempt history to the next step.
//!
//! [`Policy`] is the configuration (cloned into every service, sharing the
//! retry budget and the endpoint memory). For each logical connect it makes
//! a [`ConnectPlan`], whose [`next`](ConnectPlan::next) is a pure decision —
//! no I/O, no clock, no sleeping — so the whole decision table is tested
//! without a network. The service ([`Prelogin`](crate::Prelogin)) carries the
//! decisions out.
//!
//! Rules the plan never breaks (design §2.2):
//! 1. encryption only moves up the ladder `NotSupported < Off < Required <
//!    Strict`, never below the configured level or the remembered floor, and
//!    never above the ceiling. The one exception is a failed Strict probe
//!    (design §2.3): it is exploratory, and the next attempt returns to the
//!    level held before the probe — still never below the floor;
//! 2. certificate trust is not part of any decision (the request has no
//!    setter for it);
//! 3. deterministic causes stop at once (a TLS rejection seen only as a
//!    bare close after the ClientHello is confirmed by one more attempt, as
//!    a blip looks the same);
//! 4. attempts, the deadline and the shared retry budget bound every connect;
//! 5. upgrades happen immediately, with no backoff sleep.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tds_handshake::Phase;

use crate::budget::RetryBudget;
use crate::cause::Cause;
use crate::classify::TransientNumbers;
use crate::error::StopReason;
use crate::memory::EndpointMemory;
use crate::request::{ConnectRequest, EncryptionLevel};

/// Default first backoff delay after a connect-level reset: 100 ms.
///
/// A reset during the pre-login handshake costs the server one accept and a
/// few bytes, and the usual cause (listener overload, a failover moving the
/// listener) clears within a second, so the first retry comes quickly.
/// SqlClient waits `ConnectRetryInterval` = 10 s, but that setting is for
/// reconnecting idle connections, not for a fresh connect.
pub const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(100);

/// Default cap on one backoff delay: 5 s. EF Core's
/// `EnableRetryOnFailure` caps at 30 s, but its delays wrap whole
/// operations; a connect that needs more than a few seconds between tries is
/// better reported than hidden inside a pool checkout.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);

/// Default minimum delay before retrying a [`Cause::ServerTransient`] error:
/// 5 s, the first delay Microsoft's Azure SQL guidance asks for after
/// 40613/40501/40197 (a reconfiguration takes seconds; retrying sooner only
/// adds load).
pub const DEFAULT_SERVER_TRANSIENT_MIN_DELAY: Duration = Duration::from_secs(5);

/// Default number of retries of transient causes per connect: 6.
///
/// EF Core's `EnableRetryOnFailure` count; SqlClient's `ConnectRetryCount`
/// = 1 is too few for a failover or an overloaded listener that resets a
/// share of connects. When 30 % of attempts are reset, 4 retries still fail
/// 0.3⁵ ≈ 0.24 % of connects (3 in the 1,000-connect benchmark); 6 fail
/// 0.3⁷ ≈ 0.02 %. With the default delays six retries of a reset span
/// about 6-13 s, inside [`DEFAULT_DEADLINE`]; server transients, which wait
/// at least 5 s each, usually meet the deadline first.
pub const DEFAULT_MAX_RETRIES: usize = 6;

/// Default hard cap on attempts per connect, counting upgrades, the Strict
/// probe and redirects: 10. Upgrades are bounded by the ladder (3 rungs)
/// and redirects by [`DEFAULT_MAX_REDIRECTS`]; this cap only guards against
/// a combination nobody foresaw.
pub const DEFAULT_MAX_ATTEMPTS: usize = 10;

/// Default total deadline of one connect, sleeps included: 30 s, twice the
/// 15 s `Connect Timeout` SqlClient uses for a single attempt, so one slow
/// handshake plus a few quick retries fit but a dead server is reported in
/// bounded time.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Default number of routing redirects followed per connect: 2. Azure SQL's
/// gateway redirects once; a second hop covers a read-scale replica.
pub const DEFAULT_MAX_REDIRECTS: usize = 2;

/// Default handshake bound of a Strict probe: 5 s. A server that speaks TDS
/// 8.0 answers a ClientHello within one round trip; SQL Server 2019 and
/// earlier never answer it (tds-handshake.md §5.4), and waiting the full
/// handshake timeout for that would double the cost of a blip.
pub const DEFAULT_STRICT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One attempt, as recorded in the history returned on success and failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// Host this attempt connected to.
    pub host: String,
    /// Port this attempt connected to.
    pub port: u16,
    /// Encryption level asked of tiberius.
    pub encryption: EncryptionLevel,
    /// Why it failed; None when it connected.
    pub cause: Option<Cause>,
    /// The furthest phase the observer saw; None when TCP never connected.
    pub phase: Option<Phase>,
    /// The backoff delay slept before this attempt (zero for the first
    /// attempt, upgrades, the probe and redirects).
    pub delay: Duration,
    /// Wall time of the attempt itself.
    pub duration: Duration,
    /// DNS + TCP connect time, when it finished.
    pub tcp_connect: Option<Duration>,
    /// TDS handshake time, when it started.
    pub handshake: Option<Duration>,
    /// This attempt was the Strict probe of design §2.3.
    pub strict_probe: bool,
    /// The failure had the shape that triggers a Strict probe.
    pub strict_probe_candidate: bool,
    /// The server reset or closed before LOGIN7 (the 10054 shape).
    pub reset_during_prelogin: bool,
    /// A TLS rejection read from a bare close after the ClientHello, which
    /// one more attempt confirms (see [`Verdict`](crate::Verdict)).
    pub unconfirmed_rejection: bool,
    /// The server answered with TLS (a ServerHello) or the handshake went
    /// past TLS: for a probe, this is "the probe got through".
    pub server_spoke_tls: bool,
    /// The PRELOGIN ENCRYPTION byte the client offered, if seen in clear.
    pub offered: Option<u8>,
    /// The PRELOGIN ENCRYPTION byte the server replied, if seen in clear.
    pub replied: Option<u8>,
    /// The server error number, for server errors.
    pub server_error: Option<u32>,
}

impl AttemptRecord {
    /// A record of an attempt at `encryption` against `host:port`; the driver
    /// fills the other fields.
    pub fn new(host: impl Into<String>, port: u16, encryption: EncryptionLevel) -> Self {
        AttemptRecord {
            host: host.into(),
            port,
            encryption,
            cause: None,
            phase: None,
            delay: Duration::ZERO,
            duration: Duration::ZERO,
            tcp_connect: None,
            handshake: None,
            strict_probe: false,
            strict_probe_candidate: false,
            reset_during_prelogin: false,
            unconfirmed_rejection: false,
            server_spoke_tls: false,
            offered: None,
            replied: None,
            server_error: None,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Same request after `delay`, at `encryption` (usually unchanged; after
    /// a failed probe, the level held before the probe).
    Retry {
        /// Backoff delay, jitter included.
        delay: Duration,
        /// Level of the next attempt.
        encryption: EncryptionLevel,
    },
    /// Same request at a higher level, at once.
    Upgrade {
        /// The new level.
        to: EncryptionLevel,
    },
    /// Try Strict once, at once (design §2.3), with a short handshake bound.
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
        use crate::attributes::values;
        match self {
            Decision::Retry { .. } => values::DECISION_RETRY,
            Decision::Upgrade { .. } => values::DECISION_UPGRADE,
            Decision::ProbeStrict => values::DECISION_PROBE_STRICT,
            Decision::Redirect { .. } => values::DECISION_REDIRECT,
            Decision::Stop { .. } => values::DECISION_STOP,
        }
    }
}

/// Connection-setup policy: ceiling, backoff schedule, bounds, shared budget
/// and shared endpoint memory. Cheap to clone; clones share the budget and
/// the memory.
#[derive(Debug, Clone)]
pub struct Policy {
    ceiling: EncryptionLevel,
    min_delay: Duration,
    max_delay: Duration,
    server_transient_min_delay: Duration,
    jitter: bool,
    max_retries: usize,
    max_attempts: usize,
    deadline: Duration,
    max_redirects: usize,
    strict_probe_timeout: Duration,
    retry_connection_refused: bool,
    transient_numbers: TransientNumbers,
    budget: Arc<RetryBudget>,
    memory: Option<Arc<EndpointMemory>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ceiling: EncryptionLevel::DEFAULT_CEILING,
            min_delay: DEFAULT_MIN_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            server_transient_min_delay: DEFAULT_SERVER_TRANSIENT_MIN_DELAY,
            jitter: true,
            max_retries: DEFAULT_MAX_RETRIES,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            deadline: DEFAULT_DEADLINE,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            strict_probe_timeout: DEFAULT_STRICT_PROBE_TIMEOUT,
            retry_connection_refused: true,
            transient_numbers: TransientNumbers::new(),
            budget: Arc::new(RetryBudget::default()),
            memory: Some(Arc::new(EndpointMemory::default())),
        }
    }
}

impl Policy {
    /// The documented defaults (see the `DEFAULT_*` constants).
    pub fn new() -> Self {
        Policy::default()
    }

    /// Highest level an upgrade may reach. Default
    /// [`EncryptionLevel::DEFAULT_CEILING`]. A request configured above the
    /// ceiling keeps its level: the ceiling limits upgrades, never the user.
    pub fn ceiling(mut self, ceiling: EncryptionLevel) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// First backoff delay. Default [`DEFAULT_MIN_DELAY`].
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Cap on the exponential schedule. Default [`DEFAULT_MAX_DELAY`].
    ///
    /// With [`jitter`](Self::jitter) on, backon adds up to 100 % on top of
    /// the capped value, so one sleep can reach twice this; the connect's
    /// [`deadline`](Self::deadline) bounds the total either way.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Minimum delay before retrying a server transient error. Default
    /// [`DEFAULT_SERVER_TRANSIENT_MIN_DELAY`].
    pub fn server_transient_min_delay(mut self, delay: Duration) -> Self {
        self.server_transient_min_delay = delay;
        self
    }

    /// Random jitter on each delay (backon adds up to 100 %). Default on, so
    /// a pool's connects that failed together do not retry together.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries of transient causes per connect. Default [`DEFAULT_MAX_RETRIES`].
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// Hard cap on attempts per connect. Default [`DEFAULT_MAX_ATTEMPTS`].
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Total time one connect may take, sleeps included. Default [`DEFAULT_DEADLINE`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Routing redirects followed per connect. Default [`DEFAULT_MAX_REDIRECTS`].
    pub fn max_redirects(mut self, redirects: usize) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// Handshake bound of the Strict probe. Default [`DEFAULT_STRICT_PROBE_TIMEOUT`].
    pub fn strict_probe_timeout(mut self, timeout: Duration) -> Self {
        self.strict_probe_timeout = timeout;
        self
    }

    /// Whether `connection_refused` is retried (a failover briefly refuses).
    /// Default true; the budget and deadline still bound it.
    pub fn retry_connection_refused(mut self, retry: bool) -> Self {
        self.retry_connection_refused = retry;
        self
    }

    /// Adds server error numbers to the transient set (keeps the defaults).
    pub fn add_transient_numbers(mut self, numbers: impl IntoIterator<Item = u32>) -> Self {
        self.transient_numbers = self.transient_numbers.with(numbers);
        self
    }

    /// Replaces the transient set.
    pub fn transient_numbers(mut self, numbers: TransientNumbers) -> Self {
        self.transient_numbers = numbers;
        self
    }

    /// Uses this retry budget (shared by every clone of the policy).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Arc::new(budget);
        self
    }

    /// Uses an already shared retry budget.
    pub fn shared_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Uses this endpoint memory (e.g. pre-seeded, or with another TTL).
    pub fn memory(mut self, memory: EndpointMemory) -> Self {
        self.memory = Some(Arc::new(memory));
        self
    }

    /// Uses an already shared endpoint memory.
    pub fn shared_memory(mut self, memory: Arc<EndpointMemory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Turns the endpoint memory off: every connect starts at the configured level.
    pub fn without_memory(mut self) -> Self {
        self.memory = None;
        self
    }

    /// The ceiling.
    pub fn get_ceiling(&self) -> EncryptionLevel {
        self.ceiling
    }

    /// The total deadline of a connect.
    pub fn get_deadline(&self) -> Duration {
        self.deadline
    }

    /// The Strict probe's handshake bound.
    pub fn get_strict_probe_timeout(&self) -> Duration {
        self.strict_probe_timeout
    }

    /// The transient server error numbers.
    pub fn get_transient_numbers(&self) -> &TransientNumbers {
        &self.transient_numbers
    }

    /// The shared retry budget.
    pub fn get_budget(&self) -> &Arc<RetryBudget> {
        &self.budget
    }

    /// The shared endpoint memory, when on.
    pub fn get_memory(&self) -> Option<&Arc<EndpointMemory>> {
        self.memory.as_ref()
    }

    /// The backon schedule this policy retries with.
    pub fn backoff(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_max_times(self.max_retries);
        if self.jitter {
            builder.with_jitter()
        } else {
            builder
        }
    }

    /// The plan for one connect of `request`: its first level is the highest
    /// of the configured level and the remembered floor.
    pub fn plan(&self, request: &ConnectRequest) -> ConnectPlan {
        let configured = request.encryption();
        let remembered = self
            .memory
            .as_ref()
            .and_then(|m| m.floor(&request.endpoint()));
        ConnectPlan::new(self, configured, remembered)
    }
}

/// The decisions for one logical connect: created by [`Policy::plan`],
/// consulted after each failed attempt.
#[derive(Debug)]
pub struct ConnectPlan {
    floor: EncryptionLevel,
    level: EncryptionLevel,
    ceiling: EncryptionLevel,
    backoff: ExponentialBackoff,
    server_transient_min_delay: Duration,
    max_attempts: usize,
    deadline: Duration,
    max_redirects: usize,
    retry_connection_refused: bool,
    budget: Arc<RetryBudget>,
    probed: bool,
    confirmed_rejection: bool,
    redirects: usize,
    /// The cause of the attempt that triggered the probe, while it runs.
    probe_for: Option<Cause>,
}

impl ConnectPlan {
    fn new(
        policy: &Policy,
        configured: EncryptionLevel,
        remembered: Option<EncryptionLevel>,
    ) -> Self {
        let floor = remembered.map_or(configured, |r| r.max(configured));
        ConnectPlan {
            floor,
            level: floor,
            ceiling: policy.ceiling.max(configured),
            backoff: policy.backoff().build(),
            server_transient_min_delay: policy.server_transient_min_delay,
            max_attempts: policy.max_attempts,
            deadline: policy.deadline,
            max_redirects: policy.max_redirects,
            retry_connection_refused: policy.retry_connection_refused,
            budget: Arc::clone(&policy.budget),
            probed: false,
            confirmed_rejection: false,
            redirects: 0,
            probe_for: None,
        }
    }

    /// The level of the first attempt (configured level or remembered floor).
    pub fn floor(&self) -> EncryptionLevel {
        self.floor
    }

    /// The level of the next attempt when not probing.
    pub fn level(&self) -> EncryptionLevel {
        self.level
    }

    /// The effective ceiling (the policy's, or the configured level if higher).
    pub fn ceiling(&self) -> EncryptionLevel {
        self.ceiling
    }

    /// True while the Strict probe is the attempt in flight.
    pub fn probing(&self) -> bool {
        self.probe_for.is_some()
    }

    /// Decides the step after the last attempt in `history` failed.
    ///
    /// Pure apart from withdrawing a retry from the shared budget: elapsed
    /// time is the sum of recorded durations and delays, not a clock.
    pub fn next(&mut self, history: &[AttemptRecord]) -> Decision {
        let Some(last) = history.last() else {
            return Decision::Stop {
                cause: Cause::Unknown,
                reason: StopReason::Deterministic,
            };
        };
        let cause = last.cause.unwrap_or(Cause::Unknown);

        // The Strict probe has just run and failed.
        if let Some(original) = self.probe_for.take() {
            if last.server_spoke_tls {
                // The probe got through the pre-login: the server speaks
                // strict, so Strict is now the level (design §2.3).
                self.level = EncryptionLevel::Strict;
                if !cause.is_transient() {
                    return Decision::Stop {
                        cause,
                        reason: StopReason::Deterministic,
                    };
                }
                return self.retry(history, cause);
            }
            // It did not get through: the reset was a blip after all. Retry
            // at the level held before the probe.
            return self.retry(history, original);
        }

        if history.len() >= self.max_attempts {
            return Decision::Stop {
                cause,
                reason: StopReason::AttemptsExhausted,
            };
        }

        match cause {
            Cause::EncryptionRequired | Cause::StrictRequired => {
                let wanted = if cause == Cause::StrictRequired {
                    EncryptionLevel::Strict
                } else {
                    EncryptionLevel::Required
                };
                let to = wanted.max(next_rung(last.encryption));
                if to <= last.encryption {
                    // Already at the top of the ladder: nothing to upgrade to.
                    Decision::Stop {
                        cause,
                        reason: StopReason::Deterministic,
                    }
                } else if to > self.ceiling {
                    Decision::Stop {
                        cause,
                        reason: StopReason::CeilingReached,
                    }
                } else {
                    self.level = self.level.max(to);
                    Decision::Upgrade { to: self.level }
                }
            }
            Cause::TransientReset
                if last.strict_probe_candidate
                    && !self.probed
                    && last.encryption < EncryptionLevel::Strict
                    && self.ceiling >= EncryptionLevel::Strict =>
            {
                self.probed = true;
                self.probe_for = Some(cause);
                Decision::ProbeStrict
            }
            // A close right after the ClientHello is the Schannel signature
            // of a TLS mismatch, but a blip right after the PRELOGIN reply
            // looks the same; one more attempt tells them apart, and a real
            // mismatch still fails in two attempts.
            Cause::TlsHandshakeRejected
                if last.unconfirmed_rejection && !self.confirmed_rejection =>
            {
                self.confirmed_rejection = true;
                self.retry(history, cause)
            }
            Cause::Routing => Decision::Stop {
                // The service turns a routing failure into Redirect itself
                // (it needs the address from the error); reaching here means
                // no address was available.
                cause,
                reason: StopReason::Deterministic,
            },
            Cause::ConnectionRefused if !self.retry_connection_refused => Decision::Stop {
                cause,
                reason: StopReason::Deterministic,
            },
            c if c.is_transient() => self.retry(history, c),
            c => Decision::Stop {
                cause: c,
                reason: StopReason::Deterministic,
            },
        }
    }

    /// Decides on a routing redirect to `host:port`. `remembered` is the
    /// floor the endpoint memory holds for that node: the node is an endpoint
    /// of its own, so from the redirect on no attempt of this connect goes
    /// below it (retries included), as for the first endpoint's floor.
    pub fn redirect(
        &mut self,
        history: &[AttemptRecord],
        host: &str,
        port: u16,
        remembered: Option<EncryptionLevel>,
    ) -> Decision {
        if history.len() >= self.max_attempts {
            return Decision::Stop {
                cause: Cause::Routing,
                reason: StopReason::AttemptsExhausted,
            };
        }
        if self.redirects >= self.max_redirects {
            return Decision::Stop {
                cause: Cause::Routing,
                reason: StopReason::RedirectLimit,
            };
        }
        self.redirects += 1;
        if let Some(floor) = remembered {
            self.floor = self.floor.max(floor);
            self.level = self.level.max(floor);
        }
        // A redirect in answer to the Strict probe means the probe logged in:
        // it got through, so Strict is the level from now on (design §2.3),
        // and the next failure is not the probe's.
        if self.probe_for.take().is_some() {
            self.level = EncryptionLevel::Strict;
        }
        Decision::Redirect {
            host: host.to_owned(),
            port,
        }
    }

    fn retry(&mut self, history: &[AttemptRecord], cause: Cause) -> Decision {
        if history.len() >= self.max_attempts {
            return Decision::Stop {
                cause,
                reason: StopReason::AttemptsExhausted,
            };
        }
        let Some(mut delay) = self.backoff.next() else {
            return Decision::Stop {
                cause,
                reason: StopReason::RetriesExhausted,
            };
        };
        if cause == Cause::ServerTransient {
            delay = delay.max(self.server_transient_min_delay);
        }
        // Saturating: delays and deadlines are user-provided and may be
        // `Duration::MAX` ("no limit"); `+` and `Sum` would panic.
        let elapsed = history.iter().fold(Duration::ZERO, |total, a| {
            total.saturating_add(a.delay).saturating_add(a.duration)
        });
        if elapsed.saturating_add(delay) >= self.deadline {
            return Decision::Stop {
                cause,
                reason: StopReason::DeadlineExceeded,
            };
        }
        if !self.budget.withdraw() {
            return Decision::Stop {
                cause,
                reason: StopReason::BudgetExhausted,
            };
        }
        Decision::Retry {
            delay,
            encryption: self.level,
        }
    }
}

fn next_rung(level: EncryptionLevel) -> EncryptionLevel {
    match level {
        EncryptionLevel::NotSupported => EncryptionLevel::Off,
        EncryptionLevel::Off => EncryptionLevel::Required,
        EncryptionLevel::Required | EncryptionLevel::Strict => EncryptionLevel::Strict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::EndpointKey;
    use EncryptionLevel::*;

    fn policy() -> Policy {
        Policy::new()
            .min_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(40))
            .server_transient_min_delay(Duration::from_millis(50))
            .jitter(false)
            .budget(RetryBudget::fixed(100))
            .without_memory()
    }

    fn request(level: EncryptionLevel) -> ConnectRequest {
        ConnectRequest::builder()
            .host("db")
            .port(1433)
            .encryption(level)
            .build()
    }

    fn failed(level: EncryptionLevel, cause: Cause) -> AttemptRecord {
        let mut r = AttemptRecord::new("db", 1433, level);
        r.cause = Some(cause);
        r.duration = Duration::from_millis(5);
        r
    }

    fn no_reply(level: EncryptionLevel) -> AttemptRecord {
        let mut r = failed(level, Cause::TransientReset);
        r.strict_probe_candidate = true;
        r
    }

    fn unconfirmed(level: EncryptionLevel) -> AttemptRecord {
        let mut r = failed(level, Cause::TlsHandshakeRejected);
        r.unconfirmed_rejection = true;
        r
    }

    fn probe(cause: Cause, got_through: bool) -> AttemptRecord {
        let mut r = failed(Strict, cause);
        r.strict_probe = true;
        r.server_spoke_tls = got_through;
        r
    }

    struct Row {
        name: &'static str,
        policy: Policy,
        configured: EncryptionLevel,
        history: Vec<AttemptRecord>,
        expect: Decision,
    }

    fn retry(ms: u64, encryption: EncryptionLevel) -> Decision {
        Decision::Retry {
            delay: Duration::from_millis(ms),
            encryption,
        }
    }

    fn stop(cause: Cause, reason: StopReason) -> Decision {
        Decision::Stop { cause, reason }
    }

    /// Runs the plan over the history, attempt by attempt, and returns the
    /// decision after the last one (earlier decisions update plan state).
    fn decide(policy: &Policy, configured: EncryptionLevel, history: &[AttemptRecord]) -> Decision {
        let mut plan = policy.plan(&request(configured));
        let mut decision = None;
        for n in 1..=history.len() {
            decision = Some(plan.next(&history[..n]));
        }
        decision.expect("history is never empty in the table")
    }

    fn rows() -> Vec<Row> {
        use Cause::*;
        let p = policy;
        vec![
            Row {
                name: "force_encryption_upgrades_not_supported_to_required",
                policy: p(),
                configured: NotSupported,
                history: vec![failed(NotSupported, EncryptionRequired)],
                expect: Decision::Upgrade { to: Required },
            },
            Row {
                name: "force_encryption_blocked_by_ceiling",
                policy: p().ceiling(Off),
                configured: NotSupported,
                history: vec![failed(NotSupported, EncryptionRequired)],
                expect: stop(EncryptionRequired, StopReason::CeilingReached),
            },
            Row {
                name: "no_reply_probes_strict",
                policy: p(),
                configured: Required,
                history: vec![no_reply(Required)],
                expect: Decision::ProbeStrict,
            },
            Row {
                name: "no_reply_from_not_supported_probes_strict",
                policy: p(),
                configured: NotSupported,
                history: vec![no_reply(NotSupported)],
                expect: Decision::ProbeStrict,
            },
            Row {
                name: "no_reply_with_required_ceiling_retries",
                policy: p().ceiling(Required),
                configured: Required,
                history: vec![no_reply(Required)],
                expect: retry(10, Required),
            },
            Row {
                name: "probe_that_did_not_get_through_retries_at_the_old_level",
                policy: p(),
                configured: Required,
                history: vec![no_reply(Required), probe(TransientReset, false)],
                expect: retry(10, Required),
            },
            Row {
                name: "probe_timeout_retries_at_the_old_level",
                policy: p(),
                configured: Off,
                history: vec![no_reply(Off), probe(Timeout, false)],
                expect: retry(10, Off),
            },
            Row {
                name: "probe_is_made_once",
                policy: p(),
                configured: Required,
                history: vec![
                    no_reply(Required),
                    probe(TransientReset, false),
                    no_reply(Required),
                ],
                expect: retry(20, Required),
            },
            Row {
                name: "probe_through_then_certificate_stops",
                policy: p(),
                configured: Required,
                history: vec![no_reply(Required), probe(CertificateUntrusted, true)],
                expect: stop(CertificateUntrusted, StopReason::Deterministic),
            },
            Row {
                name: "probe_through_then_reset_retries_at_strict",
                policy: p(),
                configured: Required,
                history: vec![no_reply(Required), probe(TransientReset, true)],
                expect: retry(10, Strict),
            },
            Row {
                name: "reset_retries_with_backoff",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, TransientReset)],
                expect: retry(10, Required),
            },
            Row {
                name: "backoff_doubles",
                policy: p(),
                configured: Required,
                history: vec![
                    failed(Required, TransientReset),
                    failed(Required, TransientReset),
                ],
                expect: retry(20, Required),
            },
            Row {
                name: "backoff_is_capped",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, Timeout); 4],
                expect: retry(40, Required),
            },
            Row {
                name: "retries_run_out",
                policy: p().max_retries(2),
                configured: Required,
                history: vec![failed(Required, TransientReset); 3],
                expect: stop(TransientReset, StopReason::RetriesExhausted),
            },
            Row {
                name: "attempts_cap",
                policy: p().max_attempts(2),
                configured: Required,
                history: vec![failed(Required, TransientReset); 2],
                expect: stop(TransientReset, StopReason::AttemptsExhausted),
            },
            Row {
                name: "deadline_stops_retries",
                policy: p().deadline(Duration::from_millis(12)),
                configured: Required,
                history: vec![failed(Required, TransientReset)],
                expect: stop(TransientReset, StopReason::DeadlineExceeded),
            },
            Row {
                name: "empty_budget_stops",
                policy: p().budget(RetryBudget::none()),
                configured: Required,
                history: vec![failed(Required, TransientReset)],
                expect: stop(TransientReset, StopReason::BudgetExhausted),
            },
            Row {
                name: "server_transient_waits_longer",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, ServerTransient)],
                expect: retry(50, Required),
            },
            Row {
                name: "refused_is_retried",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, ConnectionRefused)],
                expect: retry(10, Required),
            },
            Row {
                name: "refused_can_stop",
                policy: p().retry_connection_refused(false),
                configured: Required,
                history: vec![failed(Required, ConnectionRefused)],
                expect: stop(ConnectionRefused, StopReason::Deterministic),
            },
            Row {
                name: "unavailable_never_downgrades",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, EncryptionUnavailable)],
                expect: stop(EncryptionUnavailable, StopReason::Deterministic),
            },
            Row {
                name: "tls_version_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, TlsVersionMismatch)],
                expect: stop(TlsVersionMismatch, StopReason::Deterministic),
            },
            Row {
                name: "tls_rejected_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, TlsHandshakeRejected)],
                expect: stop(TlsHandshakeRejected, StopReason::Deterministic),
            },
            Row {
                name: "bare_close_after_client_hello_is_confirmed_once",
                policy: p(),
                configured: Required,
                history: vec![unconfirmed(Required)],
                expect: retry(10, Required),
            },
            Row {
                name: "confirmed_rejection_stops",
                policy: p(),
                configured: Required,
                history: vec![unconfirmed(Required), unconfirmed(Required)],
                expect: stop(TlsHandshakeRejected, StopReason::Deterministic),
            },
            Row {
                name: "certificate_stops",
                policy: p(),
                configured: Strict,
                history: vec![failed(Strict, CertificateUntrusted)],
                expect: stop(CertificateUntrusted, StopReason::Deterministic),
            },
            Row {
                name: "login_failed_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, LoginFailed)],
                expect: stop(LoginFailed, StopReason::Deterministic),
            },
            Row {
                name: "server_error_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, ServerError)],
                expect: stop(ServerError, StopReason::Deterministic),
            },
            Row {
                name: "protocol_violation_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, ProtocolViolation)],
                expect: stop(ProtocolViolation, StopReason::Deterministic),
            },
            Row {
                name: "panic_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, BackendPanic)],
                expect: stop(BackendPanic, StopReason::Deterministic),
            },
            Row {
                name: "unknown_stops",
                policy: p(),
                configured: Required,
                history: vec![failed(Required, Unknown)],
                expect: stop(Unknown, StopReason::Deterministic),
            },
            Row {
                name: "upgrade_then_reset_retries_at_the_upgraded_level",
                policy: p(),
                configured: NotSupported,
                history: vec![
                    failed(NotSupported, EncryptionRequired),
                    failed(Required, TransientReset),
                ],
                expect: retry(10, Required),
            },
        ]
    }

    #[test]
    fn decision_table() {
        for row in rows() {
            let got = decide(&row.policy, row.configured, &row.history);
            assert_eq!(got, row.expect, "{}", row.name);
        }
    }

    #[test]
    fn upgrades_and_probes_do_not_spend_the_budget() {
        let p = policy().budget(RetryBudget::none());
        assert_eq!(
            decide(
                &p,
                NotSupported,
                &[failed(NotSupported, Cause::EncryptionRequired)]
            ),
            Decision::Upgrade { to: Required }
        );
        assert_eq!(
            decide(&p, Required, &[no_reply(Required)]),
            Decision::ProbeStrict
        );
    }

    #[test]
    fn redirects_are_bounded() {
        let p = policy().max_redirects(2);
        let mut plan = p.plan(&request(Required));
        let h = vec![failed(Required, Cause::Routing)];
        assert!(matches!(
            plan.redirect(&h, "a", 1, None),
            Decision::Redirect { .. }
        ));
        assert!(matches!(
            plan.redirect(&h, "b", 2, None),
            Decision::Redirect { .. }
        ));
        assert_eq!(
            plan.redirect(&h, "c", 3, None),
            stop(Cause::Routing, StopReason::RedirectLimit)
        );
    }

    #[test]
    fn a_redirect_raises_the_floor_to_the_nodes_for_later_retries() {
        let mut plan = policy().plan(&request(NotSupported));
        let h = vec![failed(NotSupported, Cause::Routing)];
        assert!(matches!(
            plan.redirect(&h, "node", 2, Some(Required)),
            Decision::Redirect { .. }
        ));
        assert_eq!(plan.floor(), Required);
        let h = vec![
            failed(NotSupported, Cause::Routing),
            failed(Required, Cause::TransientReset),
        ];
        match plan.next(&h) {
            Decision::Retry { encryption, .. } => assert_eq!(encryption, Required),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn memory_raises_the_first_level_never_lowers_it() {
        let memory = EndpointMemory::default();
        memory.seed(EndpointKey::new("db", 1433, None), Strict);
        let p = policy().memory(memory);
        assert_eq!(p.plan(&request(NotSupported)).floor(), Strict);
        let memory = EndpointMemory::default();
        memory.seed(EndpointKey::new("db", 1433, None), Off);
        let p = policy().memory(memory);
        assert_eq!(p.plan(&request(Required)).floor(), Required);
    }

    #[test]
    fn configured_level_above_ceiling_is_kept() {
        let plan = policy().ceiling(Off).plan(&request(Strict));
        assert_eq!(plan.floor(), Strict);
        assert_eq!(plan.ceiling(), Strict);
    }

    #[test]
    fn every_cause_gets_a_decision_and_levels_never_drop_below_the_floor() {
        for configured in EncryptionLevel::LADDER {
            for cause in Cause::ALL {
                let mut plan = policy().plan(&request(configured));
                let history = vec![failed(configured, cause)];
                match plan.next(&history) {
                    Decision::Retry { encryption, .. } => assert!(encryption >= configured),
                    Decision::Upgrade { to } => assert!(to > configured),
                    Decision::ProbeStrict | Decision::Redirect { .. } | Decision::Stop { .. } => {}
                }
            }
        }
    }

    #[test]
    fn unbounded_durations_never_overflow() {
        // `Duration::MAX` is how users say "no limit"; `+` on it panics.
        let p = Policy::new()
            .deadline(Duration::MAX)
            .min_delay(Duration::MAX)
            .max_delay(Duration::MAX)
            .server_transient_min_delay(Duration::MAX)
            .budget(RetryBudget::fixed(100))
            .without_memory();
        let mut plan = p.plan(&request(Required));
        let mut history = Vec::new();
        for _ in 0..3 {
            let mut r = failed(Required, Cause::ServerTransient);
            r.delay = Duration::MAX;
            r.duration = Duration::MAX;
            history.push(r);
            // Saturated elapsed time reaches the (saturated) deadline: a stop,
            // not a panic.
            assert_eq!(
                plan.next(&history),
                stop(Cause::ServerTransient, StopReason::DeadlineExceeded)
            );
        }
        let mut plan = p
            .min_delay(Duration::from_secs(3600))
            .jitter(false)
            .plan(&request(Required));
        assert_eq!(
            plan.next(&[failed(Required, Cause::TransientReset)]),
            retry(3_600_000, Required),
            "an unbounded deadline still allows a long retry"
        );
    }

    #[test]
    fn a_redirect_in_answer_to_the_probe_settles_it_at_strict() {
        // The probe logged in and was redirected: it got through. A failure at
        // the node is not the probe's, and must not send the next attempt back
        // to the pre-probe level.
        let mut plan = policy().plan(&request(Required));
        let mut history = vec![no_reply(Required)];
        assert_eq!(plan.next(&history), Decision::ProbeStrict);
        let mut routed = probe(Cause::Routing, true);
        routed.cause = Some(Cause::Routing);
        history.push(routed);
        assert!(matches!(
            plan.redirect(&history, "node", 11000, None),
            Decision::Redirect { .. }
        ));
        assert!(!plan.probing());
        history.push(failed(Strict, Cause::TransientReset));
        assert_eq!(plan.next(&history), retry(10, Strict));
    }

    #[test]
    fn default_ceiling_follows_the_feature() {
        let expected = if cfg!(feature = "tds80") {
            Strict
        } else {
            Required
        };
        assert_eq!(Policy::new().get_ceiling(), expected);
    }
}
