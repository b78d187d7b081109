//! Which server error numbers are transient.

use std::collections::BTreeSet;

use crate::cause::Cause;

/// Server error numbers retried by default during login.
///
/// The union of SqlClient's configurable-retry transient list and EF Core's
/// `SqlServerTransientExceptionDetector`, restricted to errors that can
/// arrive in a login response or describe a connection-level condition:
///
/// - 4060 cannot open database (often a database still coming online after failover);
/// - 4221 login to a read-secondary failed during redo catch-up;
/// - 10053, 10054, 10060, 121, 64, 233: network-level failures that SqlClient
///   reports with an error number;
/// - 10928, 10929, 10936: Azure SQL resource governance limits;
/// - 40143, 40197, 40501, 40540, 40613: Azure SQL reconfiguration / busy;
/// - 42108, 42109: Azure serverless/pool resuming;
/// - 49918, 49919, 49920: Azure management throttling.
///
/// Left out on purpose: 1205 and 1222 (deadlock/lock timeout) and the
/// 413xx in-memory OLTP commit failures, which concern statements, not
/// logins; 20 ("server does not support encryption"), which is the
/// deterministic [`Cause::EncryptionUnavailable`]; 0, -2 and 997, which are
/// client-side codes that never appear in a server ERROR token.
pub(crate) const DEFAULT_TRANSIENT_NUMBERS: &[u32] = &[
    64, 121, 233, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 10936, 40143, 40197, 40501, 40540,
    40613, 42108, 42109, 49918, 49919, 49920,
];

/// SQL Server's "Login failed for user" error number.
pub(crate) const LOGIN_FAILED_NUMBER: u32 = 18456;

/// The set of server error numbers classified as [`Cause::ServerTransient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransientNumbers(BTreeSet<u32>);

impl TransientNumbers {
    /// The default set, [`DEFAULT_TRANSIENT_NUMBERS`].
    pub(crate) fn new() -> Self {
        TransientNumbers(DEFAULT_TRANSIENT_NUMBERS.iter().copied().collect())
    }

    /// An empty set (replace the defaults entirely).
    pub(crate) fn empty() -> Self {
        TransientNumbers(BTreeSet::new())
    }

    /// Adds numbers to the set.
    pub(crate) fn with(mut self, numbers: impl IntoIterator<Item = u32>) -> Self {
        self.0.extend(numbers);
        self
    }

    /// True if `number` is transient.
    pub(crate) fn contains(&self, number: u32) -> bool {
        self.0.contains(&number)
    }
}

impl Default for TransientNumbers {
    fn default() -> Self {
        TransientNumbers::new()
    }
}

/// The cause of a server ERROR token with this number.
pub(crate) fn server_cause(number: u32, transient: &TransientNumbers) -> Cause {
    if number == LOGIN_FAILED_NUMBER {
        Cause::LoginFailed
    } else if transient.contains(number) {
        Cause::ServerTransient
    } else {
        Cause::ServerError
    }
}
