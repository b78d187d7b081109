//! [`Plan`]: the one place that decides, for one logical connect.
//!
//! The service ([`Prelogin`](crate::Prelogin)) only executes the plan's
//! steps: make the attempt the plan prepared, run the plaintext check it asks
//! for, sleep the delay it chose. Everything else is decided here, once:
//!
//! - the level of every attempt (the configured level, raised by the endpoint
//!   memory, by upgrades and by a routed node's remembered floor; never below
//!   the floor, never above the ceiling except where the user configured it);
//! - the Strict probe of design §2.3 and its short handshake bound, and the
//!   plaintext check that tells a server without TDS 8.0 from a stall;
//! - routing redirects and their limit;
//! - the deadline (one clock: tokio's), the attempts cap, the backoff
//!   schedule and the shared retry budget (a retry that finds it empty waits
//!   for a token, up to the deadline);
//! - what the endpoint memory learns when the connect succeeds.
//!
//! Each attempt's record is written once, with its cause and its decision.
//! Two causes depend on what comes next (a reset that triggers the Strict
//! probe is `strict_required` only if the probe gets through; a silent
//! TLS-first attempt is `strict_unsupported` only if the server answers a
//! plaintext PRELOGIN), and a retry that waits for the budget is a retry
//! only if a token comes before the deadline, so such a record waits,
//! pending, until that step has run; records are settled in attempt order.
//!
//! Rules the plan never breaks (design §2.2):
//! 1. encryption only moves up the ladder `NotSupported < Off < Required <
//!    Strict`, never below the configured level or the remembered floor, and
//!    never above the ceiling. The one exception is a failed Strict probe
//!    (design §2.3): it is exploratory, and the next attempt returns to the
//!    level held before the probe, still never below the floor;
//! 2. certificate trust is not part of any decision (the request has no
//!    setter for it);
//! 3. deterministic causes stop at once (a TLS rejection seen only as a
//!    bare close after the ClientHello is confirmed by one more attempt, as
//!    a blip looks the same);
//! 4. attempts, the deadline and the shared retry budget bound every connect;
//! 5. upgrades happen immediately, with no backoff sleep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tds_handshake::{Observation, Phase};
use tokio::time::Instant;

use crate::cause::Cause;
use crate::classify::{Verdict, verdict};
use crate::connect::{AttemptError, AttemptFailure, far_future};
use crate::endpoint::EndpointKey;
use crate::error::ConnectError;
use crate::level::EncryptionLevel;
use crate::request::ConnectRequest;

use super::attempt::Attempt;
use super::budget::RetryBudget;
use super::config::ConnectPolicy;
use super::decision::{Decision, StopReason};

/// What the service does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Sleep [`Plan::delay`], then make the attempt [`Plan::request`] describes.
    Attempt,
    /// Sleep [`Plan::delay`], then wait for a token of [`Plan::budget`] until
    /// [`Plan::deadline`], and report with [`Plan::budget_answered`].
    AwaitBudget,
    /// Send one plaintext PRELOGIN to the current address, until
    /// [`Plan::check_until`], and report with [`Plan::checked`].
    CheckPlaintext,
    /// The last attempt logged in: [`Plan::into_attempts`].
    Connected,
    /// Give up: [`Plan::into_error`].
    Stopped,
}

/// Where the next attempt sits in the connect (for its span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextAttempt {
    /// Its number, from 1.
    pub(crate) number: usize,
    /// Which backoff retry it is; 0 when it is not one.
    pub(crate) retry: usize,
    /// The delay slept before it.
    pub(crate) delay: Duration,
    /// It is the Strict probe.
    pub(crate) strict_probe: bool,
}

/// A record whose cause waits for the next step.
#[derive(Debug)]
enum Pending {
    /// Its reset triggered the Strict probe: the probe settles it.
    ProbeTrigger(Attempt),
    /// It met silence after a TLS-first ClientHello: the plaintext check
    /// settles it.
    Silent(Attempt),
    /// Its retry waits for a token of the shared budget: the token, or the
    /// deadline, settles it.
    Budget(Attempt, EncryptionLevel),
}

/// What a failed attempt showed, as the decisions read it.
#[derive(Debug)]
struct Failure {
    verdict: Verdict,
    /// The address of a routing redirect.
    routed: Option<(String, u16)>,
}

/// The decisions for one logical connect.
#[derive(Debug)]
pub(crate) struct Plan {
    policy: ConnectPolicy,
    /// The next attempt's request; the plan rewrites its level, address and
    /// per-attempt bounds.
    request: ConnectRequest,
    configured: EncryptionLevel,
    /// No attempt goes below this (the configured level raised by memory).
    floor: EncryptionLevel,
    ceiling: EncryptionLevel,
    /// The level of the next attempt that is not the Strict probe.
    level: EncryptionLevel,
    memory_applied: bool,
    /// The user's handshake bound (the probe's is shorter).
    handshake_timeout: Duration,
    deadline: Instant,
    backoff: ExponentialBackoff,

    next_probe: bool,
    /// The delay before the next attempt, as its span and record report it.
    next_delay: Duration,
    /// What of that delay the service still has to sleep.
    next_sleep: Duration,
    check_until: Instant,

    started: usize,
    retries: usize,
    redirects: usize,
    probed: bool,
    confirmed_rejection: bool,
    /// Endpoints left by a redirect, with the level that got through to
    /// their routing answer: each learns its own floor.
    redirected_from: Vec<(EndpointKey, EncryptionLevel)>,

    history: Vec<Attempt>,
    pending: Option<Pending>,
    reported: usize,
    last_error: Option<AttemptError>,
    stop: Option<(Cause, StopReason)>,
}

impl Plan {
    /// The plan for one connect of `request`, starting `now`: its first level
    /// is the highest of the configured level and the remembered floor. Takes
    /// the service's per-call copy of the policy, so nothing is cloned twice.
    pub(crate) fn new(policy: ConnectPolicy, mut request: ConnectRequest, now: Instant) -> Plan {
        let configured = request.encryption();
        let remembered = policy
            .memory
            .as_ref()
            .and_then(|memory| memory.floor(&request.endpoint()));
        let floor = remembered.map_or(configured, |level| level.max(configured));
        // `Duration::MAX` means "no deadline".
        let deadline = now
            .checked_add(policy.deadline)
            .unwrap_or_else(|| far_future(now));
        request.set_deadline(deadline);
        let ceiling = policy.ceiling.max(configured);
        let backoff = backoff(&policy);
        let mut plan = Plan {
            policy,
            handshake_timeout: request.handshake_timeout(),
            request,
            configured,
            floor,
            ceiling,
            level: floor,
            memory_applied: floor > configured,
            deadline,
            backoff,
            next_probe: false,
            next_delay: Duration::ZERO,
            next_sleep: Duration::ZERO,
            check_until: deadline,
            started: 0,
            retries: 0,
            redirects: 0,
            probed: false,
            confirmed_rejection: false,
            redirected_from: Vec::new(),
            // Most connects take one attempt, and the history lives as long
            // as the connection when the caller keeps `Connected`: room for
            // one, not the four a first push would reserve.
            history: Vec::with_capacity(1),
            pending: None,
            reported: 0,
            last_error: None,
            stop: None,
        };
        plan.prepare();
        plan
    }

    /// The request of the next attempt.
    pub(crate) fn request(&self) -> &ConnectRequest {
        &self.request
    }

    /// The backoff delay to sleep before the next attempt (or before waiting
    /// for the budget).
    pub(crate) fn delay(&self) -> Duration {
        self.next_sleep
    }

    /// The retry budget a waiting retry takes its token from.
    pub(crate) fn budget(&self) -> std::sync::Arc<RetryBudget> {
        std::sync::Arc::clone(&self.policy.budget)
    }

    /// When the whole connect must be over.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the plaintext check must have been answered.
    pub(crate) fn check_until(&self) -> Instant {
        self.check_until
    }

    /// The next attempt's place in the connect.
    pub(crate) fn next_attempt(&self) -> NextAttempt {
        NextAttempt {
            number: self.started + 1,
            retry: if self.next_delay.is_zero() {
                0
            } else {
                self.retries
            },
            delay: self.next_delay,
            strict_probe: self.next_probe,
        }
    }

    /// True when the endpoint memory raised the first attempt's level.
    pub(crate) fn memory_applied(&self) -> bool {
        self.memory_applied
    }

    /// The records settled since the last call, in attempt order.
    pub(crate) fn newly_settled(&mut self) -> &[Attempt] {
        let from = self.reported.min(self.history.len());
        self.reported = self.history.len();
        self.history.get(from..).unwrap_or_default()
    }

    /// The history of a connect that logged in.
    pub(crate) fn into_attempts(self) -> Vec<Attempt> {
        self.history
    }

    /// The error of a connect that stopped.
    pub(crate) fn into_error(self) -> ConnectError {
        let (cause, reason) = self
            .stop
            .unwrap_or((Cause::Unknown, StopReason::Deterministic));
        ConnectError::new(cause, reason, self.history, self.last_error, self.ceiling)
    }

    /// Takes what the attempt the plan prepared produced, `duration` after it
    /// started, and decides the next step.
    pub(crate) fn step(
        &mut self,
        produced: Result<Option<Observation>, AttemptError>,
        duration: Duration,
        now: Instant,
    ) -> Step {
        self.started += 1;
        let mut record = Attempt::new(
            self.request.host(),
            self.request.port(),
            self.request.encryption(),
            self.next_probe,
            self.next_delay,
        );
        record.duration = duration;
        match produced {
            Ok(observation) => {
                if let Some(observation) = &observation {
                    record.observed(observation);
                }
                record.phase = Some(Phase::LoggedIn);
                if let Some(Pending::ProbeTrigger(mut trigger)) = self.pending.take() {
                    // The probe logged in: the reset was the strict-only server.
                    trigger.cause = Some(Cause::StrictRequired);
                    self.history.push(trigger);
                }
                self.history.push(record);
                self.learn();
                self.policy.budget.deposit();
                Step::Connected
            }
            Err(error) => {
                if let Some(observation) = error.observation() {
                    record.observed(observation);
                }
                let observation = error.observation().copied().unwrap_or_default();
                let verdict = verdict(
                    &observation,
                    error.failure(),
                    &self.policy.transient_numbers,
                );
                record.timings = error.timings();
                record.reset_during_prelogin = verdict.reset_during_prelogin;
                record.server_error = error
                    .failure()
                    .tiberius_error()
                    .and_then(tiberius::error::Error::code);
                record.cause = Some(verdict.cause);
                let routed = routing_address(error.failure());
                self.last_error = Some(error);
                self.failed(record, Failure { verdict, routed }, now)
            }
        }
    }

    /// Takes the plaintext check's answer and decides the next step.
    pub(crate) fn checked(&mut self, answered: bool, now: Instant) -> Step {
        let Some(Pending::Silent(mut record)) = self.pending.take() else {
            // Only `failed` asks for a check, and it leaves the record here.
            self.stop = Some((Cause::Unknown, StopReason::Deterministic));
            return Step::Stopped;
        };
        let decision = if answered {
            record.cause = Some(Cause::StrictUnsupported);
            Decision::Stop {
                cause: Cause::StrictUnsupported,
                reason: StopReason::Deterministic,
            }
        } else {
            // Silent on both: a stall, not the server's posture.
            self.retry(Cause::Timeout)
        };
        self.conclude(record, decision, Cause::Timeout, now)
    }

    /// Takes the budget's answer to a retry that waited for it, `waited`
    /// after the wait (backoff sleep included) began, and decides the next
    /// step: the retry, or a stop when no token came before the deadline.
    pub(crate) fn budget_answered(&mut self, granted: bool, waited: Duration) -> Step {
        let Some(Pending::Budget(record, encryption)) = self.pending.take() else {
            // Only `settle` asks for the budget, and it leaves the record here.
            self.stop = Some((Cause::Unknown, StopReason::Deterministic));
            return Step::Stopped;
        };
        let decision = if granted {
            Decision::Retry {
                delay: waited,
                encryption,
            }
        } else {
            Decision::Stop {
                cause: record.cause.unwrap_or(Cause::Unknown),
                reason: StopReason::BudgetExhausted,
            }
        };
        let step = self.settle(record, decision);
        // Already slept: the delay is what the next attempt reports.
        self.next_sleep = Duration::ZERO;
        step
    }

    fn failed(&mut self, record: Attempt, failure: Failure, now: Instant) -> Step {
        let cause = failure.verdict.cause;
        if record.strict_probe {
            let (decision, cause) = self.after_probe(failure);
            return self.conclude(record, decision, cause, now);
        }
        if cause == Cause::Timeout
            && failure.verdict.silent_after_tls_first
            && record.encryption == EncryptionLevel::Strict
        {
            if now >= self.deadline {
                return self.settle(
                    record,
                    Decision::Stop {
                        cause,
                        reason: StopReason::DeadlineExceeded,
                    },
                );
            }
            let wait = self.policy.strict_probe_timeout;
            self.check_until = now
                .checked_add(wait)
                .map_or(self.deadline, |end| end.min(self.deadline));
            self.pending = Some(Pending::Silent(record));
            return Step::CheckPlaintext;
        }
        let decision = self.decide(&record, failure);
        self.conclude(record, decision, cause, now)
    }

    /// The decision for a failed attempt that is not the Strict probe.
    fn decide(&mut self, record: &Attempt, failure: Failure) -> Decision {
        let verdict = failure.verdict;
        let cause = verdict.cause;
        let stop = |reason| Decision::Stop { cause, reason };
        match cause {
            Cause::EncryptionRequired | Cause::StrictRequired => {
                let wanted = if cause == Cause::StrictRequired {
                    EncryptionLevel::Strict
                } else {
                    EncryptionLevel::Required
                };
                let to = wanted.max(record.encryption.next_rung());
                if to <= record.encryption {
                    // Already at the top of the ladder: nothing to upgrade to.
                    stop(StopReason::Deterministic)
                } else if to > self.ceiling {
                    stop(StopReason::CeilingReached)
                } else {
                    Decision::Upgrade {
                        to: self.level.max(to),
                    }
                }
            }
            Cause::TransientReset
                if verdict.strict_probe_candidate
                    && !self.probed
                    && record.encryption < EncryptionLevel::Strict
                    && self.ceiling >= EncryptionLevel::Strict =>
            {
                self.probed = true;
                Decision::ProbeStrict
            }
            // A close right after the ClientHello is the Schannel signature
            // of a TLS mismatch, but a blip right after the PRELOGIN reply
            // looks the same; one more attempt tells them apart, and a real
            // mismatch still fails in two attempts.
            Cause::TlsHandshakeRejected
                if verdict.unconfirmed_rejection && !self.confirmed_rejection =>
            {
                self.confirmed_rejection = true;
                self.retry(cause)
            }
            Cause::Routing => match failure.routed {
                Some((host, port)) => self.redirect(host, port),
                None => stop(StopReason::Deterministic),
            },
            Cause::ConnectionRefused if !self.policy.retry_connection_refused => {
                stop(StopReason::Deterministic)
            }
            c if c.is_transient() => self.retry(c),
            _ => stop(StopReason::Deterministic),
        }
    }

    /// The decision after the Strict probe failed, and the cause a stop
    /// reports. Settles the attempt that triggered the probe (the probe and
    /// its trigger are always made together).
    fn after_probe(&mut self, failure: Failure) -> (Decision, Cause) {
        let through = failure.verdict.server_spoke_tls || failure.routed.is_some();
        if let Some(Pending::ProbeTrigger(mut trigger)) = self.pending.take() {
            if through {
                trigger.cause = Some(Cause::StrictRequired);
            }
            let original = trigger.cause.unwrap_or(Cause::TransientReset);
            self.history.push(trigger);
            if !through {
                // The reset was a blip after all: retry at the level held
                // before the probe, reporting the trigger's cause if that
                // fails too.
                return (self.retry(original), original);
            }
        }
        // The probe got through the pre-login: the server speaks strict, so
        // Strict is the level from now on (design §2.3). Follow its redirect,
        // retry a transient failure at Strict, or stop.
        self.level = EncryptionLevel::Strict;
        let cause = failure.verdict.cause;
        let decision = match failure.routed {
            Some((host, port)) => self.redirect(host, port),
            None if cause.is_transient() => self.retry(cause),
            None => Decision::Stop {
                cause,
                reason: StopReason::Deterministic,
            },
        };
        (decision, cause)
    }

    fn retry(&mut self, cause: Cause) -> Decision {
        let Some(mut delay) = self.backoff.next() else {
            return Decision::Stop {
                cause,
                reason: StopReason::RetriesExhausted,
            };
        };
        if cause == Cause::ServerTransient {
            delay = delay.max(self.policy.server_transient_min_delay);
        }
        Decision::Retry {
            delay,
            encryption: self.level,
        }
    }

    fn redirect(&mut self, host: String, port: u16) -> Decision {
        if self.redirects >= self.policy.max_redirects {
            return Decision::Stop {
                cause: Cause::Routing,
                reason: StopReason::RedirectLimit,
            };
        }
        Decision::Redirect { host, port }
    }

    /// Passes `decision` through the bounds every next attempt passes, in
    /// order: the attempts cap, the deadline (an attempt that would start at
    /// or after it is not made: it could not run), and for a retry the shared
    /// budget, withdrawn last so a stop never spends it; then settles the
    /// record with it. A retry that finds the budget empty leaves the record
    /// pending and waits for a token ([`Step::AwaitBudget`]), unless nothing
    /// could refill the budget.
    fn conclude(
        &mut self,
        record: Attempt,
        decision: Decision,
        cause: Cause,
        now: Instant,
    ) -> Step {
        let stop = |reason| Decision::Stop { cause, reason };
        let decision = if matches!(decision, Decision::Stop { .. }) {
            decision
        } else if self.started >= self.policy.max_attempts {
            stop(StopReason::AttemptsExhausted)
        } else if now
            .checked_add(decision.delay())
            .is_none_or(|start| start >= self.deadline)
        {
            stop(StopReason::DeadlineExceeded)
        } else if let Decision::Retry { delay, encryption } = decision {
            if self.policy.budget.withdraw() {
                decision
            } else if self.policy.budget.can_refill() {
                // Decided once the budget answers (`budget_answered`).
                self.next_sleep = delay;
                self.pending = Some(Pending::Budget(record, encryption));
                return Step::AwaitBudget;
            } else {
                stop(StopReason::BudgetExhausted)
            }
        } else {
            decision
        };
        self.settle(record, decision)
    }

    /// Writes the decision into the record, carries it out on the request,
    /// and keeps the record (pending, when the probe will settle it).
    fn settle(&mut self, mut record: Attempt, decision: Decision) -> Step {
        record.decision = Some(decision.clone());
        self.next_probe = false;
        self.next_delay = Duration::ZERO;
        self.next_sleep = Duration::ZERO;
        let step = match decision {
            Decision::Retry { delay, encryption } => {
                self.level = encryption.max(self.floor);
                self.next_delay = delay;
                self.next_sleep = delay;
                self.retries += 1;
                Step::Attempt
            }
            Decision::Upgrade { to } => {
                self.level = to.max(self.floor);
                Step::Attempt
            }
            Decision::ProbeStrict => {
                self.next_probe = true;
                self.pending = Some(Pending::ProbeTrigger(record));
                self.prepare();
                return Step::Attempt;
            }
            Decision::Redirect { host, port } => {
                self.redirects += 1;
                self.redirected_from
                    .push((self.request.endpoint(), self.request.encryption()));
                self.request.set_address(host, port);
                // The node is an endpoint of its own: from here on no attempt
                // of this connect goes below its remembered floor.
                let node = self.request.endpoint();
                if let Some(floor) = self.policy.memory.as_ref().and_then(|m| m.floor(&node)) {
                    self.floor = self.floor.max(floor);
                    self.level = self.level.max(floor);
                }
                Step::Attempt
            }
            Decision::Stop { cause, reason } => {
                self.stop = Some((cause, reason));
                Step::Stopped
            }
        };
        self.history.push(record);
        self.prepare();
        step
    }

    /// Sets the next attempt's level and bounds on the request.
    fn prepare(&mut self) {
        let level = if self.next_probe {
            EncryptionLevel::Strict
        } else {
            self.level
        };
        let probe_timeout = self.policy.strict_probe_timeout;
        self.request.set_encryption(level);
        self.request.set_handshake_timeout(if self.next_probe {
            self.handshake_timeout.min(probe_timeout)
        } else {
            self.handshake_timeout
        });
        self.request
            .set_silence_timeout((level == EncryptionLevel::Strict).then_some(probe_timeout));
    }

    /// The connect logged in: each endpoint learns the level that got
    /// through to it (after a redirect, the node is not the gateway).
    fn learn(&mut self) {
        let Some(memory) = &self.policy.memory else {
            return;
        };
        for (endpoint, level) in self.redirected_from.drain(..) {
            if level > self.configured {
                memory.learn(endpoint, level);
            }
        }
        // Most connects log in at the configured level and teach nothing:
        // the key (a lowercased copy of the host) is built only when needed.
        let level = self.request.encryption();
        if level > self.configured {
            memory.learn(self.request.endpoint(), level);
        }
    }
}

/// The address a routing ENVCHANGE sent the client to.
fn routing_address(failure: &AttemptFailure) -> Option<(String, u16)> {
    match failure.tiberius_error()? {
        tiberius::error::Error::Routing { host, port } => Some((host.clone(), *port)),
        _ => None,
    }
}

/// The backon schedule a policy retries with.
fn backoff(policy: &ConnectPolicy) -> ExponentialBackoff {
    let builder = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay.max(policy.min_delay))
        .with_max_times(policy.max_retries);
    if policy.jitter {
        builder.with_jitter().build()
    } else {
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::EndpointKey;
    use crate::policy::{EndpointMemory, RetryBudget};
    use Cause::*;
    use EncryptionLevel::*;

    /// Each attempt "takes" this long on the plan's clock.
    const ATTEMPT: Duration = Duration::from_millis(5);

    fn policy() -> ConnectPolicy {
        ConnectPolicy::new()
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

    fn verdict(cause: Cause) -> Verdict {
        Verdict {
            cause,
            strict_probe_candidate: false,
            silent_after_tls_first: false,
            reset_during_prelogin: false,
            unconfirmed_rejection: false,
            server_spoke_tls: false,
        }
    }

    /// A reset with no reply to a plaintext PRELOGIN.
    fn no_reply() -> Verdict {
        Verdict {
            strict_probe_candidate: true,
            reset_during_prelogin: true,
            ..verdict(TransientReset)
        }
    }

    /// A bare close right after the ClientHello.
    fn unconfirmed() -> Verdict {
        Verdict {
            unconfirmed_rejection: true,
            ..verdict(TlsHandshakeRejected)
        }
    }

    /// The probe's own failure: `through` when the server answered with TLS.
    fn probe(cause: Cause, through: bool) -> Verdict {
        Verdict {
            server_spoke_tls: through,
            ..verdict(cause)
        }
    }

    /// Silence after a TLS-first ClientHello.
    fn silent() -> Verdict {
        Verdict {
            silent_after_tls_first: true,
            ..verdict(Timeout)
        }
    }

    /// A plan under test, with its own clock.
    struct Run {
        plan: Plan,
        now: Instant,
    }

    impl Run {
        fn new(policy: ConnectPolicy, configured: EncryptionLevel) -> Run {
            let now = Instant::now();
            Run {
                plan: Plan::new(policy, request(configured), now),
                now,
            }
        }

        /// One failed attempt at the level the plan prepared: the step and
        /// the decision its record got.
        fn fail(&mut self, verdict: Verdict) -> (Step, Option<Decision>) {
            self.fail_routed(verdict, None)
        }

        fn fail_routed(
            &mut self,
            verdict: Verdict,
            routed: Option<(&str, u16)>,
        ) -> (Step, Option<Decision>) {
            self.now += self.plan.delay() + ATTEMPT;
            self.plan.started += 1;
            let mut record = Attempt::new(
                self.plan.request.host(),
                self.plan.request.port(),
                self.plan.request.encryption(),
                self.plan.next_probe,
                self.plan.next_delay,
            );
            record.cause = Some(verdict.cause);
            let failure = Failure {
                verdict,
                routed: routed.map(|(h, p)| (h.to_owned(), p)),
            };
            let step = self.plan.failed(record, failure, self.now);
            (step, self.latest_decision())
        }

        fn latest_decision(&self) -> Option<Decision> {
            match &self.plan.pending {
                Some(Pending::ProbeTrigger(record)) if self.plan.next_probe => {
                    record.decision.clone()
                }
                Some(Pending::Silent(_)) => None,
                _ => self.plan.history.last().and_then(|r| r.decision.clone()),
            }
        }

        fn level(&self) -> EncryptionLevel {
            self.plan.request.encryption()
        }
    }

    fn retry(ms: u64, encryption: EncryptionLevel) -> Option<Decision> {
        Some(Decision::Retry {
            delay: Duration::from_millis(ms),
            encryption,
        })
    }

    fn upgrade(to: EncryptionLevel) -> Option<Decision> {
        Some(Decision::Upgrade { to })
    }

    fn stop(cause: Cause, reason: StopReason) -> Option<Decision> {
        Some(Decision::Stop { cause, reason })
    }

    struct Row {
        name: &'static str,
        policy: ConnectPolicy,
        configured: EncryptionLevel,
        verdicts: Vec<Verdict>,
        expect: Option<Decision>,
    }

    fn row(
        name: &'static str,
        policy: ConnectPolicy,
        configured: EncryptionLevel,
        verdicts: Vec<Verdict>,
        expect: Option<Decision>,
    ) -> Row {
        Row {
            name,
            policy,
            configured,
            verdicts,
            expect,
        }
    }

    fn rows() -> Vec<Row> {
        let p = policy;
        let d = StopReason::Deterministic;
        vec![
            row(
                "force_encryption_upgrades_not_supported_to_required",
                p(),
                NotSupported,
                vec![verdict(EncryptionRequired)],
                upgrade(Required),
            ),
            row(
                "force_encryption_blocked_by_ceiling",
                p().ceiling(Off),
                NotSupported,
                vec![verdict(EncryptionRequired)],
                stop(EncryptionRequired, StopReason::CeilingReached),
            ),
            row(
                "no_reply_probes_strict",
                p(),
                Required,
                vec![no_reply()],
                Some(Decision::ProbeStrict),
            ),
            row(
                "no_reply_from_not_supported_probes_strict",
                p(),
                NotSupported,
                vec![no_reply()],
                Some(Decision::ProbeStrict),
            ),
            row(
                "no_reply_with_required_ceiling_retries",
                p().ceiling(Required),
                Required,
                vec![no_reply()],
                retry(10, Required),
            ),
            row(
                "probe_that_did_not_get_through_retries_at_the_old_level",
                p(),
                Required,
                vec![no_reply(), probe(TransientReset, false)],
                retry(10, Required),
            ),
            row(
                "probe_timeout_retries_at_the_old_level",
                p(),
                Off,
                vec![no_reply(), probe(Timeout, false)],
                retry(10, Off),
            ),
            row(
                "probe_is_made_once",
                p(),
                Required,
                vec![no_reply(), probe(TransientReset, false), no_reply()],
                retry(20, Required),
            ),
            row(
                "probe_through_then_certificate_stops",
                p(),
                Required,
                vec![no_reply(), probe(CertificateUntrusted, true)],
                stop(CertificateUntrusted, d),
            ),
            row(
                "probe_through_then_reset_retries_at_strict",
                p(),
                Required,
                vec![no_reply(), probe(TransientReset, true)],
                retry(10, Strict),
            ),
            row(
                "reset_retries_with_backoff",
                p(),
                Required,
                vec![verdict(TransientReset)],
                retry(10, Required),
            ),
            row(
                "backoff_doubles",
                p(),
                Required,
                vec![verdict(TransientReset), verdict(TransientReset)],
                retry(20, Required),
            ),
            row(
                "backoff_is_capped",
                p(),
                Required,
                vec![verdict(Timeout); 4],
                retry(40, Required),
            ),
            row(
                "retries_run_out",
                p().max_retries(2),
                Required,
                vec![verdict(TransientReset); 3],
                stop(TransientReset, StopReason::RetriesExhausted),
            ),
            row(
                "attempts_cap",
                p().max_attempts(2),
                Required,
                vec![verdict(TransientReset); 2],
                stop(TransientReset, StopReason::AttemptsExhausted),
            ),
            row(
                "deadline_stops_a_retry_that_would_start_after_it",
                p().deadline(Duration::from_millis(12)),
                Required,
                vec![verdict(TransientReset)],
                stop(TransientReset, StopReason::DeadlineExceeded),
            ),
            row(
                "deadline_stops_an_upgrade_too",
                p().deadline(Duration::from_millis(5)),
                NotSupported,
                vec![verdict(EncryptionRequired)],
                stop(EncryptionRequired, StopReason::DeadlineExceeded),
            ),
            row(
                "empty_budget_stops",
                p().budget(RetryBudget::none()),
                Required,
                vec![verdict(TransientReset)],
                stop(TransientReset, StopReason::BudgetExhausted),
            ),
            row(
                "server_transient_waits_longer",
                p(),
                Required,
                vec![verdict(ServerTransient)],
                retry(50, Required),
            ),
            row(
                "refused_is_retried",
                p(),
                Required,
                vec![verdict(ConnectionRefused)],
                retry(10, Required),
            ),
            row(
                "refused_can_stop",
                p().retry_connection_refused(false),
                Required,
                vec![verdict(ConnectionRefused)],
                stop(ConnectionRefused, d),
            ),
            row(
                "unavailable_never_downgrades",
                p(),
                Required,
                vec![verdict(EncryptionUnavailable)],
                stop(EncryptionUnavailable, d),
            ),
            row(
                "tls_version_stops",
                p(),
                Required,
                vec![verdict(TlsVersionMismatch)],
                stop(TlsVersionMismatch, d),
            ),
            row(
                "tls_rejected_stops",
                p(),
                Required,
                vec![verdict(TlsHandshakeRejected)],
                stop(TlsHandshakeRejected, d),
            ),
            row(
                "bare_close_after_client_hello_is_confirmed_once",
                p(),
                Required,
                vec![unconfirmed()],
                retry(10, Required),
            ),
            row(
                "confirmed_rejection_stops",
                p(),
                Required,
                vec![unconfirmed(), unconfirmed()],
                stop(TlsHandshakeRejected, d),
            ),
            row(
                "certificate_stops",
                p(),
                Strict,
                vec![verdict(CertificateUntrusted)],
                stop(CertificateUntrusted, d),
            ),
            row(
                "login_failed_stops",
                p(),
                Required,
                vec![verdict(LoginFailed)],
                stop(LoginFailed, d),
            ),
            row(
                "server_error_stops",
                p(),
                Required,
                vec![verdict(ServerError)],
                stop(ServerError, d),
            ),
            row(
                "protocol_violation_stops",
                p(),
                Required,
                vec![verdict(ProtocolViolation)],
                stop(ProtocolViolation, d),
            ),
            row(
                "panic_stops",
                p(),
                Required,
                vec![verdict(BackendPanic)],
                stop(BackendPanic, d),
            ),
            row(
                "unknown_stops",
                p(),
                Required,
                vec![verdict(Unknown)],
                stop(Unknown, d),
            ),
            row(
                "routing_without_an_address_stops",
                p(),
                Required,
                vec![verdict(Routing)],
                stop(Routing, d),
            ),
            row(
                "upgrade_then_reset_retries_at_the_upgraded_level",
                p(),
                NotSupported,
                vec![verdict(EncryptionRequired), verdict(TransientReset)],
                retry(10, Required),
            ),
            row(
                "strict_at_the_top_cannot_upgrade",
                p(),
                Strict,
                vec![verdict(StrictRequired)],
                stop(StrictRequired, d),
            ),
        ]
    }

    #[test]
    fn decision_table() {
        for row in rows() {
            let mut run = Run::new(row.policy, row.configured);
            let mut got = None;
            for verdict in row.verdicts {
                got = run.fail(verdict).1;
            }
            assert_eq!(got, row.expect, "{}", row.name);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_that_finds_the_budget_empty_waits_for_it_pending() {
        // One saved retry, one retry per login, no steady allowance.
        let budget = std::sync::Arc::new(RetryBudget::new(1.0, 0.0, 1));
        let mut run = Run::new(policy().budget(std::sync::Arc::clone(&budget)), Required);
        assert_eq!(
            run.fail(verdict(TransientReset)),
            (Step::Attempt, retry(10, Required))
        );
        assert_eq!(run.plan.newly_settled().len(), 1);

        let (step, _) = run.fail(verdict(TransientReset));
        assert_eq!(step, Step::AwaitBudget, "the budget is empty: wait for it");
        assert_eq!(run.plan.delay(), Duration::from_millis(20), "backoff first");
        assert!(
            run.plan.newly_settled().is_empty(),
            "the record waits until the budget answers"
        );

        // The wait (backoff included) took 3 s; then a login elsewhere paid.
        let step = run.plan.budget_answered(true, Duration::from_secs(3));
        assert_eq!(step, Step::Attempt);
        let settled = run.plan.newly_settled();
        assert_eq!(settled.len(), 1);
        assert_eq!(
            settled[0].decision,
            Some(Decision::Retry {
                delay: Duration::from_secs(3),
                encryption: Required
            }),
            "the record reports the whole wait"
        );
        assert_eq!(run.plan.delay(), Duration::ZERO, "nothing left to sleep");
        let next = run.plan.next_attempt();
        assert_eq!(
            (next.number, next.retry, next.delay),
            (3, 2, Duration::from_secs(3))
        );

        // No token before the deadline: the connect stops, and says why.
        assert_eq!(run.fail(verdict(TransientReset)).0, Step::AwaitBudget);
        assert_eq!(
            run.plan.budget_answered(false, Duration::from_secs(27)),
            Step::Stopped
        );
        assert_eq!(
            run.plan.history.last().and_then(|r| r.decision.clone()),
            stop(TransientReset, StopReason::BudgetExhausted)
        );
        let error = std::mem::replace(&mut run.plan, Plan::new(policy(), request(Off), run.now))
            .into_error();
        assert_eq!(error.stop_reason(), StopReason::BudgetExhausted);
        assert_eq!(error.attempts().len(), 3);
    }

    #[test]
    fn a_budget_that_nothing_refills_stops_at_once() {
        let mut run = Run::new(policy().budget(RetryBudget::fixed(0)), Required);
        assert_eq!(
            run.fail(verdict(TransientReset)),
            (
                Step::Stopped,
                stop(TransientReset, StopReason::BudgetExhausted)
            )
        );
    }

    #[test]
    fn upgrades_and_probes_do_not_spend_the_budget() {
        let mut run = Run::new(policy().budget(RetryBudget::none()), NotSupported);
        assert_eq!(run.fail(verdict(EncryptionRequired)).1, upgrade(Required));
        assert_eq!(run.fail(no_reply()).1, Some(Decision::ProbeStrict));
    }

    #[test]
    fn the_probe_runs_at_strict_with_the_short_bound_then_the_level_returns() {
        let mut run = Run::new(
            policy().strict_probe_timeout(Duration::from_secs(2)),
            Required,
        );
        assert_eq!(
            run.plan.request.silence_timeout(),
            None,
            "TDS 7 attempts wait for no byte"
        );
        run.fail(no_reply());
        assert_eq!(run.level(), Strict);
        assert!(run.plan.next_attempt().strict_probe);
        assert_eq!(run.plan.request.handshake_timeout(), Duration::from_secs(2));
        assert_eq!(
            run.plan.request.silence_timeout(),
            Some(Duration::from_secs(2))
        );
        run.fail(probe(Timeout, false));
        assert_eq!(run.level(), Required);
        assert_eq!(
            run.plan.request.handshake_timeout(),
            Duration::from_secs(15)
        );
        assert_eq!(run.plan.request.silence_timeout(), None);
    }

    #[test]
    fn the_trigger_is_written_once_with_the_cause_the_probe_settled() {
        // Through: the reset was the strict-only server.
        let mut run = Run::new(policy(), Required);
        run.fail(no_reply());
        assert!(
            run.plan.history.is_empty(),
            "the trigger waits for the probe"
        );
        run.fail(probe(TransientReset, true));
        let causes: Vec<_> = run.plan.history.iter().map(|r| r.cause).collect();
        assert_eq!(causes, [Some(StrictRequired), Some(TransientReset)]);
        assert_eq!(run.plan.history[0].decision, Some(Decision::ProbeStrict));
        assert!(run.plan.history[1].strict_probe);

        // Not through: it was a blip.
        let mut run = Run::new(policy(), Required);
        run.fail(no_reply());
        run.fail(probe(Timeout, false));
        let causes: Vec<_> = run.plan.history.iter().map(|r| r.cause).collect();
        assert_eq!(causes, [Some(TransientReset), Some(Timeout)]);
    }

    #[test]
    fn a_probe_that_logs_in_settles_its_trigger_as_strict_required() {
        let mut run = Run::new(policy(), Required);
        run.fail(no_reply());
        let step = run.plan.step(Ok(None), ATTEMPT, run.now);
        assert_eq!(step, Step::Connected);
        let history = run.plan.newly_settled().to_vec();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].cause, Some(StrictRequired));
        assert_eq!(history[1].cause, None);
        assert_eq!(history[1].encryption, Strict);
        assert!(
            run.plan.newly_settled().is_empty(),
            "each record is reported once"
        );
    }

    #[test]
    fn a_silent_strict_attempt_is_checked_in_plaintext_before_anything_is_decided() {
        let mut run = Run::new(policy(), Strict);
        assert_eq!(
            run.plan.request.silence_timeout(),
            Some(Duration::from_secs(5))
        );
        let (step, _) = run.fail(silent());
        assert_eq!(step, Step::CheckPlaintext);
        assert!(
            run.plan.history.is_empty(),
            "the silent attempt waits for the check"
        );
        assert!(run.plan.check_until() <= run.now + Duration::from_secs(5));

        // The server answered the plain PRELOGIN: it does not speak TDS 8.0.
        assert_eq!(run.plan.checked(true, run.now), Step::Stopped);
        let record = &run.plan.history[0];
        assert_eq!(record.cause, Some(StrictUnsupported));
        assert_eq!(
            record.encryption, Strict,
            "never below the configured level"
        );
        let error = run.plan.into_error();
        assert_eq!(error.cause(), StrictUnsupported);
        assert_eq!(error.stop_reason(), StopReason::Deterministic);
    }

    #[test]
    fn silence_on_both_is_a_stall_retried_at_strict() {
        let mut run = Run::new(policy(), Strict);
        run.fail(silent());
        assert_eq!(run.plan.checked(false, run.now), Step::Attempt);
        assert_eq!(run.plan.history[0].cause, Some(Timeout));
        assert_eq!(run.plan.history[0].decision, retry(10, Strict));
        assert_eq!(run.level(), Strict);
    }

    #[test]
    fn a_silent_probe_is_not_checked_it_just_did_not_get_through() {
        let mut run = Run::new(policy(), Required);
        run.fail(no_reply());
        let (step, decision) = run.fail(silent());
        assert_eq!(step, Step::Attempt);
        assert_eq!(decision, retry(10, Required));
    }

    #[test]
    fn redirects_are_bounded() {
        let mut run = Run::new(policy().max_redirects(2), Required);
        let routed = |run: &mut Run, host| run.fail_routed(verdict(Routing), Some((host, 11000))).1;
        assert!(matches!(
            routed(&mut run, "a"),
            Some(Decision::Redirect { .. })
        ));
        assert_eq!(run.plan.request.host(), "a");
        assert!(matches!(
            routed(&mut run, "b"),
            Some(Decision::Redirect { .. })
        ));
        assert_eq!(
            routed(&mut run, "c"),
            stop(Routing, StopReason::RedirectLimit)
        );
    }

    #[test]
    fn a_redirect_raises_the_floor_to_the_nodes_for_later_retries() {
        let memory = EndpointMemory::default();
        memory.seed(EndpointKey::new("node", 2, None), Required);
        let mut run = Run::new(policy().memory(memory), NotSupported);
        run.fail_routed(verdict(Routing), Some(("node", 2)));
        assert_eq!(run.level(), Required, "the node starts at its floor");
        assert_eq!(run.fail(verdict(TransientReset)).1, retry(10, Required));
    }

    #[test]
    fn a_redirect_in_answer_to_the_probe_settles_it_at_strict() {
        // The probe logged in and was redirected: it got through. A failure at
        // the node is not the probe's, and must not send the next attempt back
        // to the pre-probe level.
        let mut run = Run::new(policy(), Required);
        run.fail(no_reply());
        let (_, decision) = run.fail_routed(probe(Routing, true), Some(("node", 11000)));
        assert!(matches!(decision, Some(Decision::Redirect { .. })));
        assert_eq!(run.plan.history[0].cause, Some(StrictRequired));
        assert_eq!(run.fail(verdict(TransientReset)).1, retry(10, Strict));
    }

    #[test]
    fn memory_raises_the_first_level_never_lowers_it() {
        let memory = EndpointMemory::default();
        memory.seed(EndpointKey::new("db", 1433, None), Strict);
        let run = Run::new(policy().memory(memory), NotSupported);
        assert_eq!(run.level(), Strict);
        assert!(run.plan.memory_applied());
        let memory = EndpointMemory::default();
        memory.seed(EndpointKey::new("db", 1433, None), Off);
        let run = Run::new(policy().memory(memory), Required);
        assert_eq!(run.level(), Required);
        assert!(!run.plan.memory_applied());
    }

    #[test]
    fn configured_level_above_ceiling_is_kept() {
        let run = Run::new(policy().ceiling(Off), Strict);
        assert_eq!(run.level(), Strict);
        assert_eq!(run.plan.ceiling, Strict);
    }

    #[test]
    fn every_cause_gets_a_decision_and_levels_never_drop_below_the_floor() {
        for configured in EncryptionLevel::LADDER {
            for cause in Cause::ALL {
                let mut run = Run::new(policy(), configured);
                let (_, decision) = run.fail(verdict(cause));
                assert!(run.level() >= configured, "{cause} at {configured}");
                match decision {
                    Some(Decision::Retry { encryption, .. }) => assert!(encryption >= configured),
                    Some(Decision::Upgrade { to }) => assert!(to > configured),
                    Some(Decision::Stop { .. }) => {}
                    other => panic!("{cause} at {configured}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn unbounded_durations_never_overflow() {
        // `Duration::MAX` is how users say "no limit"; `+` on it panics.
        let p = ConnectPolicy::new()
            .deadline(Duration::MAX)
            .min_delay(Duration::MAX)
            .max_delay(Duration::MAX)
            .server_transient_min_delay(Duration::MAX)
            .strict_probe_timeout(Duration::MAX)
            .budget(RetryBudget::fixed(100))
            .without_memory();
        let mut run = Run::new(p.clone(), Required);
        // A delay that cannot be added to the clock cannot start: a stop,
        // not a panic.
        assert_eq!(
            run.fail(verdict(ServerTransient)).1,
            stop(ServerTransient, StopReason::DeadlineExceeded)
        );
        let mut run = Run::new(p.clone(), Strict);
        assert_eq!(run.fail(silent()).0, Step::CheckPlaintext);
        let mut run = Run::new(
            p.min_delay(Duration::from_secs(3600)).jitter(false),
            Required,
        );
        assert_eq!(
            run.fail(verdict(TransientReset)).1,
            retry(3_600_000, Required),
            "an unbounded deadline still allows a long retry"
        );
    }

    #[test]
    fn default_ceiling_follows_the_feature() {
        let expected = if cfg!(feature = "tds80") {
            Strict
        } else {
            Required
        };
        assert_eq!(ConnectPolicy::new().ceiling, expected);
    }
}
