//! OpenTelemetry metrics (cargo feature `metrics`): [`ConnectMetrics`].
//!
//! Two instruments, recorded through the `opentelemetry` API crate only, so
//! the application chooses the SDK and exporter:
//!
//! - `db.client.connection.create_time` (histogram, seconds): one value per
//!   logical connect, from the call to the connected client or the final
//!   error, attempts and backoff sleeps included;
//! - `mssql.client.connection.attempts` (counter): one per attempt, by cause
//!   and outcome (`connected`, or the policy's decision after the failure).
//!
//! Attributes are low-cardinality facts only: host, port, database, level,
//! cause, status code, outcome, pool name. No credential is an attribute.
//!
//! Without a [`ConnectMetrics`] given to the layer, it records through
//! `opentelemetry::global::meter("tiberius-tower")`, resolved at the first
//! connect that finishes (so a global provider installed after the layer
//! was built, but before it is used, still gets the data).
//!
//! ```
//! use tiberius_tower::{ConnectMetrics, ConnectPolicy, Connector, PreloginLayer};
//! use tower::ServiceBuilder;
//!
//! // Any `Meter`: from your SDK's `SdkMeterProvider`, or the global one.
//! let meter = opentelemetry::global::meter("my-service");
//! let metrics = ConnectMetrics::new(&meter).pool_name("orders");
//! let connect = ServiceBuilder::new()
//!     .layer(PreloginLayer::new(ConnectPolicy::new()).metrics(metrics))
//!     .service(Connector::new());
//! # let _ = connect;
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::cause::Cause;
use crate::policy::Attempt;
use crate::request::ConnectRequest;

use super::attributes::{self as attr, metrics as names};

/// Bucket bounds of the create-time histogram, in seconds: the semantic
/// conventions' advice for `db.client.connection.create_time`, from 1 ms
/// (a loopback login) to 10 s (several retries).
const CREATE_TIME_BOUNDS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The instruments the layer records connects and attempts with.
///
/// Cheap to clone (the instruments are handles).
#[derive(Debug, Clone)]
pub struct ConnectMetrics {
    create_time: Histogram<f64>,
    attempts: Counter<u64>,
    pool_name: Option<Arc<str>>,
}

impl ConnectMetrics {
    /// Instruments created from `meter`.
    pub fn new(meter: &Meter) -> Self {
        ConnectMetrics {
            create_time: meter
                .f64_histogram(names::CONNECTION_CREATE_TIME)
                .with_unit(names::CONNECTION_CREATE_TIME_UNIT)
                .with_description("Time it took to create a new connection, all attempts included.")
                .with_boundaries(CREATE_TIME_BOUNDS.to_vec())
                .build(),
            attempts: meter
                .u64_counter(names::CONNECTION_ATTEMPTS)
                .with_unit(names::CONNECTION_ATTEMPTS_UNIT)
                .with_description("Connection attempts, by pre-login cause and outcome.")
                .build(),
            pool_name: None,
        }
    }

    /// Instruments from the global meter provider's meter `"tiberius-tower"`
    /// as it is now.
    pub fn global() -> Self {
        ConnectMetrics::new(&opentelemetry::global::meter(names::METER_NAME))
    }

    /// Adds `db.client.connection.pool.name` to every measurement (the
    /// semantic conventions require it when the connection belongs to a pool).
    pub fn pool_name(mut self, name: impl Into<String>) -> Self {
        self.pool_name = Some(Arc::from(name.into()));
        self
    }

    /// The attributes every measurement of `host:port` carries.
    fn base(&self, host: &str, port: u16) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(8);
        attributes.push(KeyValue::new(attr::DB_SYSTEM_NAME, "microsoft.sql_server"));
        attributes.push(KeyValue::new(attr::SERVER_ADDRESS, host.to_owned()));
        attributes.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
        if let Some(pool) = &self.pool_name {
            attributes.push(KeyValue::new(
                attr::DB_CLIENT_CONNECTION_POOL_NAME,
                Arc::clone(pool),
            ));
        }
        attributes
    }

    /// Counts one attempt by cause and outcome: `connected`, or the name of
    /// the decision the policy took after it.
    fn record_attempt(&self, record: &Attempt) {
        let mut attributes = self.base(record.host(), record.port());
        attributes.push(KeyValue::new(
            attr::ENCRYPTION,
            record.encryption().as_str(),
        ));
        let outcome = record.decision().map_or("connected", |d| d.as_str());
        attributes.push(KeyValue::new(attr::ATTEMPT_OUTCOME, outcome));
        if let Some(cause) = record.cause() {
            attributes.push(KeyValue::new(attr::PRELOGIN_CAUSE, cause.as_str()));
        }
        if let Some(code) = record.response_status_code() {
            attributes.push(KeyValue::new(
                attr::DB_RESPONSE_STATUS_CODE,
                code.to_string(),
            ));
        }
        self.attempts.add(1, &attributes);
    }

    /// Records one logical connect's duration; `failed` is its cause on failure.
    fn record_connect(&self, connect: &ConnectFacts, elapsed: Duration, failed: Option<Cause>) {
        let mut attributes = self.base(&connect.host, connect.port);
        if let Some(database) = &connect.database {
            attributes.push(KeyValue::new(attr::DB_NAMESPACE, database.clone()));
        }
        if let Some(cause) = failed {
            attributes.push(KeyValue::new(attr::ERROR_TYPE, cause.as_str()));
        }
        self.create_time.record(elapsed.as_secs_f64(), &attributes);
    }
}

/// What the create-time histogram is told about a connect: the endpoint as
/// the user asked for it (a routing redirect may change where it ends).
#[derive(Debug)]
pub(crate) struct ConnectFacts {
    host: String,
    port: u16,
    database: Option<String>,
}

/// Where a service sends its measurements. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct MetricsSink(Sink);

#[derive(Debug, Clone)]
enum Sink {
    /// The global provider's meter, resolved at first use.
    Global(Arc<OnceLock<ConnectMetrics>>),
    /// Instruments the user gave.
    Explicit(ConnectMetrics),
    /// No metrics.
    Off,
}

impl Default for MetricsSink {
    fn default() -> Self {
        MetricsSink(Sink::Global(Arc::new(OnceLock::new())))
    }
}

impl MetricsSink {
    pub(crate) fn explicit(metrics: ConnectMetrics) -> Self {
        MetricsSink(Sink::Explicit(metrics))
    }

    pub(crate) fn off() -> Self {
        MetricsSink(Sink::Off)
    }

    fn get(&self) -> Option<&ConnectMetrics> {
        match &self.0 {
            Sink::Global(cell) => Some(cell.get_or_init(ConnectMetrics::global)),
            Sink::Explicit(metrics) => Some(metrics),
            Sink::Off => None,
        }
    }

    /// The endpoint of a connect that starts with `request`, when metrics
    /// are on.
    pub(crate) fn connect_facts(&self, request: &ConnectRequest) -> Option<ConnectFacts> {
        (!matches!(self.0, Sink::Off)).then(|| ConnectFacts {
            host: request.host().to_owned(),
            port: request.port(),
            database: request.database().map(str::to_owned),
        })
    }

    /// Counts one settled attempt.
    pub(crate) fn count_attempt(&self, record: &Attempt) {
        if let Some(metrics) = self.get() {
            metrics.record_attempt(record);
        }
    }

    /// Records a connect's duration; `failed` is its cause on failure.
    pub(crate) fn measure_connect(
        &self,
        facts: &ConnectFacts,
        elapsed: Duration,
        failed: Option<Cause>,
    ) {
        if let Some(metrics) = self.get() {
            metrics.record_connect(facts, elapsed, failed);
        }
    }
}
