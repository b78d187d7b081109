//! Helpers for the end-to-end tests: an emulator in one line, requests and
//! fast policies, and a real OpenTelemetry pipeline (`tracing` →
//! `tracing-opentelemetry` → `opentelemetry_sdk` in-memory exporters) whose
//! output the tests read back.
//!
//! Providers are never installed globally and the subscriber is set per
//! thread with a guard, so the tests are correct both under nextest (one
//! process per test) and under `cargo test` (one process, many threads).
//! A `#[tokio::test]` polls its body on the test's own thread, so a guard
//! taken there covers the connect (the emulator's tasks run elsewhere and
//! are not traced).
#![forbid(unsafe_code)]

pub mod receiver;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
use tiberius_tower::ConnectMetrics;
use tiberius_tower::{
    ConnectError, ConnectPolicy, ConnectRequest, Connected, Connector, EncryptionLevel, Prelogin,
    PreloginLayer, RetryBudget, TdsClient,
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

/// Every wait is bounded by this (CI is a slow 2-core machine).
pub const WALL_CLOCK: Duration = Duration::from_secs(60);

/// The password the emulator accepts in these tests.
pub const PASSWORD: &str = "Emu-Pa55word!";

/// A started emulator plus the CA file its certificate chains to.
pub struct Server {
    /// The emulator.
    pub emulator: Emulator,
    /// Path of the CA certificate (PEM).
    pub ca: PathBuf,
}

impl Server {
    /// Starts an emulator with `config` (credentials `sa` / [`PASSWORD`]).
    pub async fn start(config: EmulatorConfig) -> Server {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let emulator = Emulator::start(config.credentials("sa", PASSWORD))
            .await
            .expect("emulator starts");
        let ca = std::env::temp_dir().join(format!(
            "tiberius-tower-e2e-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        emulator.write_ca_pem(&ca).expect("CA written");
        Server { emulator, ca }
    }

    /// A request for `sa` with `password` at `level`, trusting the emulator's CA.
    pub fn request_with(&self, level: EncryptionLevel, password: &str) -> ConnectRequest {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(self.emulator.local_addr().port())
            .database("master")
            .authentication(tiberius::AuthMethod::sql_server("sa", password))
            .encryption(level)
            .trust_cert_ca(&self.ca)
            .tcp_connect_timeout(Duration::from_secs(5))
            .handshake_timeout(Duration::from_secs(5))
            .build()
    }

    /// A request with the right password.
    pub fn request(&self, level: EncryptionLevel) -> ConnectRequest {
        self.request_with(level, PASSWORD)
    }

    /// The emulator's TCP port.
    pub fn port(&self) -> u16 {
        self.emulator.local_addr().port()
    }

    /// Shuts the emulator down and removes the CA file.
    pub async fn stop(self) {
        self.emulator.shutdown().await;
        let _ = std::fs::remove_file(&self.ca);
    }
}

/// An emulator configuration with `setting` and otherwise SQL Server's
/// behaviour (a server without TDS 8.0 stays silent to a TLS-first client,
/// as SQL Server 2019 does). A test that needs a harsher server asks for it
/// itself.
pub fn base_config(setting: EncryptionSetting) -> EmulatorConfig {
    EmulatorConfig::new().encryption(setting)
}

/// Millisecond backoff, no jitter, no memory, a large private budget.
pub fn fast_policy() -> ConnectPolicy {
    ConnectPolicy::new()
        .min_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(40))
        .server_transient_min_delay(Duration::from_millis(20))
        .jitter(false)
        .max_retries(2)
        .deadline(Duration::from_secs(45))
        .strict_probe_timeout(Duration::from_secs(3))
        .budget(RetryBudget::fixed(1_000))
        .without_memory()
}

/// Runs one connect through `svc`, bounded by [`WALL_CLOCK`].
pub async fn connect(
    svc: &mut Prelogin<Connector>,
    request: ConnectRequest,
) -> Result<Connected<TdsClient>, ConnectError> {
    let ready = svc.ready().await.expect("always ready");
    tokio::time::timeout(WALL_CLOCK, ready.call(request))
        .await
        .expect("connect finished within the wall-clock bound")
}

/// A real pipeline: `tracing-opentelemetry` into the SDK's in-memory span
/// exporter, and a meter provider whose reader exports into memory.
pub struct Pipeline {
    spans: InMemorySpanExporter,
    tracer_provider: SdkTracerProvider,
    metrics: InMemoryMetricExporter,
    meter_provider: SdkMeterProvider,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new()
    }
}

impl Pipeline {
    /// A fresh pipeline (nothing global is touched).
    pub fn new() -> Self {
        let spans = InMemorySpanExporter::default();
        // The simple processor exports each span as it ends, so the spans
        // are readable as soon as the connect returns.
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        Pipeline {
            spans,
            tracer_provider,
            metrics,
            meter_provider,
        }
    }

    /// The `tracing` subscriber that feeds this pipeline.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let tracer = self.tracer_provider.tracer("tests");
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    /// Makes this pipeline the current thread's subscriber until the guard drops.
    pub fn set_default(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.subscriber())
    }

    /// Instruments on this pipeline's meter provider.
    pub fn connect_metrics(&self) -> ConnectMetrics {
        use opentelemetry::metrics::MeterProvider as _;
        ConnectMetrics::new(&self.meter_provider.meter("tests"))
    }

    /// A connect service recording metrics into this pipeline.
    pub fn service(&self, policy: ConnectPolicy) -> Prelogin<Connector> {
        ServiceBuilder::new()
            .layer(PreloginLayer::new(policy).metrics(self.connect_metrics()))
            .service(Connector::new())
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().expect("spans readable")
    }

    /// Every span exported so far, forgetting them.
    pub fn take_spans(&self) -> Vec<SpanData> {
        let spans = self.spans();
        self.spans.reset();
        spans
    }

    /// Collects and exports the metrics now, and returns every export so far.
    pub fn metrics(&self) -> Vec<ResourceMetrics> {
        self.meter_provider.force_flush().expect("metrics flushed");
        self.metrics
            .get_finished_metrics()
            .expect("metrics readable")
    }
}

/// The spans of one connect: the connect span and its attempts, in order.
#[derive(Debug)]
pub struct ConnectTrace {
    /// The `mssql.connect` span.
    pub connect: SpanData,
    /// Its `mssql.connect.attempt` children, by `mssql.attempt`.
    pub attempts: Vec<SpanData>,
}

impl ConnectTrace {
    /// Finds the only connect span in `spans` and its attempt children.
    pub fn find(spans: &[SpanData]) -> ConnectTrace {
        let connects: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.name == tiberius_tower::attributes::SPAN_CONNECT)
            .collect();
        assert_eq!(connects.len(), 1, "one connect span in {spans:#?}");
        let connect = connects[0].clone();
        let mut attempts: Vec<SpanData> = spans
            .iter()
            .filter(|s| s.name == tiberius_tower::attributes::SPAN_ATTEMPT)
            .cloned()
            .collect();
        attempts.sort_by_key(|s| int(s, tiberius_tower::attributes::ATTEMPT));
        ConnectTrace { connect, attempts }
    }

    /// The connect span's id.
    pub fn connect_id(&self) -> SpanId {
        self.connect.span_context.span_id()
    }
}

/// An attribute of a span.
pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    find(&span.attributes, key)
}

/// An attribute from a list.
pub fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// A string attribute (panics with the span if absent or not a string).
pub fn string(span: &SpanData, key: &str) -> String {
    match attr(span, key) {
        Some(Value::String(s)) => s.as_str().to_owned(),
        other => panic!("{key} is {other:?}, not a string, on {}", span.name),
    }
}

/// An integer attribute (panics if absent or not an integer).
pub fn int(span: &SpanData, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::I64(n)) => *n,
        other => panic!("{key} is {other:?}, not an integer, on {}", span.name),
    }
}

/// A boolean attribute (panics if absent or not a boolean).
pub fn boolean(span: &SpanData, key: &str) -> bool {
    match attr(span, key) {
        Some(Value::Bool(b)) => *b,
        other => panic!("{key} is {other:?}, not a boolean, on {}", span.name),
    }
}
