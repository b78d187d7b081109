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

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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

/// How many endpoints' attribute sets are kept (most services talk to one
/// or a few servers; past this, the oldest set is rebuilt when needed).
const ENDPOINTS_KEPT: usize = 16;

/// The most attributes one measurement carries: the endpoint's four
/// (system, address, port, pool) and an attempt's four (level, outcome,
/// cause, status code).
const MAX_ATTRIBUTES: usize = 8;

/// The instruments the layer records connects and attempts with.
///
/// Cheap to clone (the instruments are handles); clones share the
/// endpoints' attribute sets, built once per endpoint.
#[derive(Debug, Clone)]
pub struct ConnectMetrics {
    create_time: Histogram<f64>,
    attempts: Counter<u64>,
    pool_name: Option<Arc<str>>,
    endpoints: Arc<Mutex<Vec<Arc<Endpoint>>>>,
}

/// The attributes of one endpoint, built once and shared by every
/// measurement of it: a measurement then copies reference-counted strings
/// instead of allocating them.
#[derive(Debug)]
pub(crate) struct Endpoint {
    host: Box<str>,
    port: u16,
    database: Option<Box<str>>,
    /// `db.system.name`, `server.address`, `server.port` and the pool name.
    attempt: Box<[KeyValue]>,
    /// The same and `db.namespace` when the request names a database.
    connect: Box<[KeyValue]>,
}

impl Endpoint {
    fn new(host: &str, port: u16, database: Option<&str>, pool: Option<&Arc<str>>) -> Self {
        let mut attempt = Vec::with_capacity(4);
        attempt.push(KeyValue::new(attr::DB_SYSTEM_NAME, "microsoft.sql_server"));
        attempt.push(KeyValue::new(attr::SERVER_ADDRESS, Arc::<str>::from(host)));
        attempt.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
        if let Some(pool) = pool {
            attempt.push(KeyValue::new(
                attr::DB_CLIENT_CONNECTION_POOL_NAME,
                Arc::clone(pool),
            ));
        }
        let mut connect = attempt.clone();
        if let Some(database) = database {
            connect.push(KeyValue::new(
                attr::DB_NAMESPACE,
                Arc::<str>::from(database),
            ));
        }
        Endpoint {
            host: host.into(),
            port,
            database: database.map(Box::from),
            attempt: attempt.into_boxed_slice(),
            connect: connect.into_boxed_slice(),
        }
    }

    /// Same host and port; `database` is checked too unless it is `None`.
    fn is(&self, host: &str, port: u16, database: Option<Option<&str>>) -> bool {
        self.port == port
            && *self.host == *host
            && database.is_none_or(|database| self.database.as_deref() == database)
    }
}

/// Calls `measure` with `base` followed by the `extra` attributes that are set.
fn with_attributes<const N: usize>(
    base: &[KeyValue],
    extra: [Option<KeyValue>; N],
    measure: impl FnOnce(&[KeyValue]),
) {
    // On the stack: a measurement allocates nothing of its own.
    let mut buffer: [KeyValue; MAX_ATTRIBUTES] =
        std::array::from_fn(|_| KeyValue::new(attr::ATTEMPT, false));
    let mut len = 0;
    for attribute in base.iter().cloned().chain(extra.into_iter().flatten()) {
        if let Some(slot) = buffer.get_mut(len) {
            *slot = attribute;
            len += 1;
        }
    }
    measure(buffer.get(..len).unwrap_or_default());
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
            endpoints: Arc::default(),
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
        // The attribute sets built so far lack the name.
        self.endpoints = Arc::default();
        self
    }

    /// The attribute sets of `host:port` (and `database`, unless `None`),
    /// built at its first measurement.
    fn endpoint(&self, host: &str, port: u16, database: Option<Option<&str>>) -> Arc<Endpoint> {
        // A poisoned lock only means a panic elsewhere while it was held;
        // the list itself is always valid.
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = endpoints.iter().find(|e| e.is(host, port, database)) {
            return Arc::clone(found);
        }
        let endpoint = Arc::new(Endpoint::new(
            host,
            port,
            database.flatten(),
            self.pool_name.as_ref(),
        ));
        if endpoints.len() >= ENDPOINTS_KEPT {
            endpoints.remove(0);
        }
        endpoints.push(Arc::clone(&endpoint));
        endpoint
    }

    /// Counts one attempt by cause and outcome: `connected`, or the name of
    /// the decision the policy took after it.
    fn record_attempt(&self, record: &Attempt) {
        let endpoint = self.endpoint(record.host(), record.port(), None);
        let outcome = record.decision().map_or("connected", |d| d.as_str());
        let extra = [
            Some(KeyValue::new(
                attr::ENCRYPTION,
                record.encryption().as_str(),
            )),
            Some(KeyValue::new(attr::ATTEMPT_OUTCOME, outcome)),
            record
                .cause()
                .map(|cause| KeyValue::new(attr::PRELOGIN_CAUSE, cause.as_str())),
            record
                .response_status_code()
                .map(|code| KeyValue::new(attr::DB_RESPONSE_STATUS_CODE, code.to_string())),
        ];
        with_attributes(&endpoint.attempt, extra, |attributes| {
            self.attempts.add(1, attributes);
        });
    }

    /// Records one logical connect's duration; `failed` is its cause on failure.
    fn record_connect(&self, endpoint: &Endpoint, elapsed: Duration, failed: Option<Cause>) {
        let extra = [failed.map(|cause| KeyValue::new(attr::ERROR_TYPE, cause.as_str()))];
        with_attributes(&endpoint.connect, extra, |attributes| {
            self.create_time.record(elapsed.as_secs_f64(), attributes);
        });
    }
}

/// What the create-time histogram is told about a connect: the endpoint as
/// the user asked for it.
#[derive(Debug)]
pub(crate) enum ConnectFacts {
    /// Its attribute sets, looked up when the connect started.
    Endpoint(Arc<Endpoint>),
    /// The global meter is not resolved yet (it is at the first connect
    /// that finishes): the endpoint as asked for, looked up at the end.
    Deferred {
        host: String,
        port: u16,
        database: Option<String>,
    },
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
        let metrics = match &self.0 {
            Sink::Global(cell) => match cell.get() {
                Some(metrics) => metrics,
                None => {
                    return Some(ConnectFacts::Deferred {
                        host: request.host().to_owned(),
                        port: request.port(),
                        database: request.database().map(str::to_owned),
                    });
                }
            },
            Sink::Explicit(metrics) => metrics,
            Sink::Off => return None,
        };
        let endpoint = metrics.endpoint(request.host(), request.port(), Some(request.database()));
        Some(ConnectFacts::Endpoint(endpoint))
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
        let Some(metrics) = self.get() else {
            return;
        };
        match facts {
            ConnectFacts::Endpoint(endpoint) => metrics.record_connect(endpoint, elapsed, failed),
            ConnectFacts::Deferred {
                host,
                port,
                database,
            } => {
                let endpoint = metrics.endpoint(host, *port, Some(database.as_deref()));
                metrics.record_connect(&endpoint, elapsed, failed);
            }
        }
    }
}
