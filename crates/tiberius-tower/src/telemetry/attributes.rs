//! The names telemetry uses, defined once: span names, attribute keys and
//! metric names.
//!
//! Keys without the `mssql.` prefix are the OpenTelemetry semantic
//! conventions (database client spans and metrics, `error.type`,
//! `server.*`); backends already understand them. Keys under `mssql.` are
//! this crate's. Keys starting with `otel.` are read by
//! `tracing-opentelemetry` and become the span's kind and status, not
//! attributes. Every name here is documented, with its type and when it is
//! set, in `docs/telemetry.md`; dashboards key on them, so they only change
//! with a major version.

/// Name of the span around one logical connect (kind CLIENT).
pub const SPAN_CONNECT: &str = "mssql.connect";
/// Name of the child span around each attempt (kind INTERNAL).
pub const SPAN_ATTEMPT: &str = "mssql.connect.attempt";

/// Span kind, read by `tracing-opentelemetry` (`"client"` on the connect span).
pub const OTEL_KIND: &str = "otel.kind";
/// Span status code, read by `tracing-opentelemetry` (`"ERROR"` on failure; unset on success).
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Span status description, read by `tracing-opentelemetry`.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";

/// Semantic convention: the database system (`"microsoft.sql_server"`).
pub const DB_SYSTEM_NAME: &str = "db.system.name";
/// Semantic convention: the database the login asks for.
pub const DB_NAMESPACE: &str = "db.namespace";
/// Semantic convention: `"10054"` for the pre-login reset signature, or the
/// server error number.
pub const DB_RESPONSE_STATUS_CODE: &str = "db.response.status_code";
/// Semantic convention: host name or address connected to.
pub const SERVER_ADDRESS: &str = "server.address";
/// Semantic convention: TCP port connected to.
pub const SERVER_PORT: &str = "server.port";
/// Semantic convention: the class of error, here the [`Cause`](crate::Cause) name.
pub const ERROR_TYPE: &str = "error.type";

/// The cause of a failed attempt; on the connect span, the cause of the last
/// failed attempt (what a recovered connect recovered from).
pub const PRELOGIN_CAUSE: &str = "mssql.prelogin.cause";
/// The PRELOGIN ENCRYPTION byte the client offered (in clear only).
pub const PRELOGIN_OFFERED: &str = "mssql.prelogin.offered";
/// The PRELOGIN ENCRYPTION byte the server replied (in clear only).
pub const PRELOGIN_REPLIED: &str = "mssql.prelogin.replied";
/// The furthest handshake phase an attempt reached.
pub const PHASE: &str = "mssql.phase";
/// The TLS alert description number seen in clear.
pub const TLS_ALERT: &str = "mssql.tls.alert";
/// Who sent that alert: `"server"` or `"client"`.
pub const TLS_ALERT_SENDER: &str = "mssql.tls.alert.sender";

/// Encryption level the request was configured with.
pub const ENCRYPTION_REQUESTED: &str = "mssql.encryption.requested";
/// Encryption level of the last attempt.
pub const ENCRYPTION_FINAL: &str = "mssql.encryption.final";
/// Encryption level one attempt asked for.
pub const ENCRYPTION: &str = "mssql.encryption";
/// True when the endpoint memory raised the first attempt above the configured level.
pub const MEMORY_APPLIED: &str = "mssql.memory.applied";

/// Number of attempts the connect made.
pub const ATTEMPTS: &str = "mssql.attempts";
/// The attempt's number, from 1.
pub const ATTEMPT: &str = "mssql.attempt";
/// The retry's number (backoff retries only), 0 for an attempt that is not one.
pub const RETRY: &str = "mssql.retry";
/// The backoff delay, in milliseconds, slept before this attempt.
pub const BACKOFF_DELAY_MS: &str = "mssql.backoff.delay_ms";
/// True on the Strict probe of design §2.3.
pub const STRICT_PROBE: &str = "mssql.strict_probe";
/// What the policy decided after a failed attempt.
pub const DECISION: &str = "mssql.decision";
/// Level before an upgrade.
pub const UPGRADE_FROM: &str = "mssql.upgrade.from";
/// Level after an upgrade.
pub const UPGRADE_TO: &str = "mssql.upgrade.to";
/// Why the policy stopped ([`StopReason`](crate::StopReason) name).
pub const STOP_REASON: &str = "mssql.stop_reason";
/// True when the stop was the shared retry budget running dry.
pub const BUDGET_EXHAUSTED: &str = "mssql.budget.exhausted";
/// Metric attribute: how an attempt ended: `connected`, or the decision taken
/// after it ([`Decision::as_str`](crate::Decision::as_str)).
pub const ATTEMPT_OUTCOME: &str = "mssql.attempt.outcome";
/// Metric attribute: the connection pool's name, when the user gave one.
pub const DB_CLIENT_CONNECTION_POOL_NAME: &str = "db.client.connection.pool.name";

/// Metric names and units.
pub mod metrics {
    /// Semantic convention histogram: time to create a connection, all
    /// attempts and sleeps included.
    pub const CONNECTION_CREATE_TIME: &str = "db.client.connection.create_time";
    /// Unit of [`CONNECTION_CREATE_TIME`]: seconds.
    pub const CONNECTION_CREATE_TIME_UNIT: &str = "s";
    /// Counter of attempts by cause and outcome.
    pub const CONNECTION_ATTEMPTS: &str = "mssql.client.connection.attempts";
    /// Unit of [`CONNECTION_ATTEMPTS`].
    pub const CONNECTION_ATTEMPTS_UNIT: &str = "{attempt}";
    /// Instrumentation scope of the meter taken from the global provider.
    pub const METER_NAME: &str = "tiberius-tower";
}
