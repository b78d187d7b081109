//! [`ConnectPolicy`]: the configuration every plan is made from.

use std::sync::Arc;
use std::time::Duration;

use crate::classify::TransientNumbers;
use crate::level::EncryptionLevel;

use super::budget::RetryBudget;
use super::memory::EndpointMemory;

/// Default first backoff delay after a connect-level reset: 100 ms.
///
/// A reset during the pre-login handshake costs the server one accept and a
/// few bytes, and the usual cause (listener overload, a failover moving the
/// listener) clears within a second, so the first retry comes quickly.
/// SqlClient waits `ConnectRetryInterval` = 10 s, but that setting is for
/// reconnecting idle connections, not for a fresh connect.
pub(crate) const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(100);

/// Default cap on one backoff delay: 5 s. EF Core's
/// `EnableRetryOnFailure` caps at 30 s, but its delays wrap whole
/// operations; a connect that needs more than a few seconds between tries is
/// better reported than hidden inside a pool checkout.
pub(crate) const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);

/// Default minimum delay before retrying a [`Cause::ServerTransient`] error:
/// 5 s, the first delay Microsoft's Azure SQL guidance asks for after
/// 40613/40501/40197 (a reconfiguration takes seconds; retrying sooner only
/// adds load).
pub(crate) const DEFAULT_SERVER_TRANSIENT_MIN_DELAY: Duration = Duration::from_secs(5);

/// Default number of retries of transient causes per connect: 6.
///
/// EF Core's `EnableRetryOnFailure` count; SqlClient's `ConnectRetryCount`
/// = 1 is too few for a failover or an overloaded listener that resets a
/// share of connects. When 30 % of attempts are reset, 4 retries still fail
/// 0.3⁵ ≈ 0.24 % of connects (3 in the 1,000-connect benchmark); 6 fail
/// 0.3⁷ ≈ 0.02 %. With the default delays six retries of a reset span
/// about 6-13 s, inside [`DEFAULT_DEADLINE`]; server transients, which wait
/// at least 5 s each, usually meet the deadline first.
pub(crate) const DEFAULT_MAX_RETRIES: usize = 6;

/// Default hard cap on attempts per connect, counting upgrades, the Strict
/// probe and redirects: 10. Upgrades are bounded by the ladder (3 rungs)
/// and redirects by [`DEFAULT_MAX_REDIRECTS`]; this cap only guards against
/// a combination nobody foresaw.
pub(crate) const DEFAULT_MAX_ATTEMPTS: usize = 10;

/// Default total deadline of one connect, sleeps included: 30 s, twice the
/// 15 s `Connect Timeout` SqlClient uses for a single attempt, so one slow
/// handshake plus a few quick retries fit but a dead server is reported in
/// bounded time.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Default number of routing redirects followed per connect: 2. Azure SQL's
/// gateway redirects once; a second hop covers a read-scale replica.
pub(crate) const DEFAULT_MAX_REDIRECTS: usize = 2;

/// Default handshake bound of a Strict probe: 5 s. A server that speaks TDS
/// 8.0 answers a ClientHello within one round trip; SQL Server 2019 and
/// earlier never answer it (tds-handshake.md §5.4), and waiting the full
/// handshake timeout for that would double the cost of a blip.
pub(crate) const DEFAULT_STRICT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection-setup policy: ceiling, backoff schedule, bounds, shared budget
/// and shared endpoint memory. Cheap to clone; clones share the budget and
/// the memory.
///
/// It is configuration, not tower's `retry::Policy` trait: one logical
/// connect needs its own plan, spans and history (see
/// `docs/adr/0002-connect-policy-not-tower-retry.md`).
#[derive(Debug, Clone)]
pub struct ConnectPolicy {
    pub(crate) ceiling: EncryptionLevel,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) server_transient_min_delay: Duration,
    pub(crate) jitter: bool,
    pub(crate) max_retries: usize,
    pub(crate) max_attempts: usize,
    pub(crate) deadline: Duration,
    pub(crate) max_redirects: usize,
    pub(crate) strict_probe_timeout: Duration,
    pub(crate) retry_connection_refused: bool,
    /// Shared by clones: a policy is cloned for every connect.
    pub(crate) transient_numbers: Arc<TransientNumbers>,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) memory: Option<Arc<EndpointMemory>>,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        ConnectPolicy {
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
            transient_numbers: Arc::new(TransientNumbers::new()),
            budget: Arc::new(RetryBudget::default()),
            memory: Some(Arc::new(EndpointMemory::default())),
        }
    }
}

impl ConnectPolicy {
    /// The documented defaults: ceiling [`EncryptionLevel::DEFAULT_CEILING`],
    /// backoff 100 ms doubling to 5 s with jitter, 6 retries, 10 attempts,
    /// a 30 s deadline, 2 redirects, a 5 s Strict probe, a shared
    /// [`RetryBudget::default`] and [`EndpointMemory::default`].
    pub fn new() -> Self {
        ConnectPolicy::default()
    }

    /// Highest level an upgrade may reach. Default
    /// [`EncryptionLevel::DEFAULT_CEILING`]. A request configured above the
    /// ceiling keeps its level: the ceiling limits upgrades, never the user.
    pub fn ceiling(mut self, ceiling: EncryptionLevel) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// First backoff delay. Default 100 ms.
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Cap on the exponential schedule. Default 5 s.
    ///
    /// With [`jitter`](Self::jitter) on, backon adds up to 100 % on top of
    /// the capped value, so one sleep can reach twice this; the connect's
    /// [`deadline`](Self::deadline) bounds the total either way.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Minimum delay before retrying a server transient error. Default
    /// 5 s (Azure SQL guidance for 40613/40501/40197).
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

    /// Retries of transient causes per connect. Default 6.
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// Hard cap on attempts per connect. Default 10.
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Total time one connect may take, sleeps included. Default 30 s.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Routing redirects followed per connect. Default 2.
    pub fn max_redirects(mut self, redirects: usize) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// How long a TLS-first (Strict) attempt waits for the server's first
    /// byte before the server counts as silent, and the handshake bound of
    /// the Strict probe. Default 5 s.
    ///
    /// A server that speaks TDS 8.0 answers a ClientHello within one round
    /// trip; SQL Server 2019 and older never do. After this much silence the
    /// policy sends one plaintext PRELOGIN (no login) to tell such a server
    /// from a stall: an answer stops the connect with
    /// [`Cause::StrictUnsupported`](crate::Cause::StrictUnsupported), so a
    /// misconfigured client learns why in about two of these timeouts
    /// instead of waiting out its deadline.
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

    /// Adds server error numbers to the set retried as
    /// [`Cause::ServerTransient`](crate::Cause::ServerTransient) (the
    /// defaults stay: 4060, 40613, 40501, 40197, 10928, 10929, 49918-49920
    /// and the others SqlClient and EF Core retry).
    pub fn add_transient_numbers(mut self, numbers: impl IntoIterator<Item = u32>) -> Self {
        self.transient_numbers =
            Arc::new(Arc::unwrap_or_clone(self.transient_numbers).with(numbers));
        self
    }

    /// Replaces the set of transient server error numbers entirely.
    pub fn transient_numbers(mut self, numbers: impl IntoIterator<Item = u32>) -> Self {
        self.transient_numbers = Arc::new(TransientNumbers::empty().with(numbers));
        self
    }

    /// The retry budget: a [`RetryBudget`] of its own, or an
    /// `Arc<RetryBudget>` shared with other policies. Every clone of this
    /// policy (and every service built with it) shares it. Default
    /// [`RetryBudget::default`].
    pub fn budget(mut self, budget: impl Into<Arc<RetryBudget>>) -> Self {
        self.budget = budget.into();
        self
    }

    /// The endpoint memory: an [`EndpointMemory`] of its own (pre-seeded, or
    /// with another TTL), or an `Arc<EndpointMemory>` shared with other
    /// policies. Default [`EndpointMemory::default`].
    pub fn memory(mut self, memory: impl Into<Arc<EndpointMemory>>) -> Self {
        self.memory = Some(memory.into());
        self
    }

    /// Turns the endpoint memory off: every connect starts at the configured level.
    pub fn without_memory(mut self) -> Self {
        self.memory = None;
        self
    }
}
