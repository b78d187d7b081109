//! The metrics a connect records through the `opentelemetry` API into the
//! SDK's in-memory metric exporter: the create-time histogram and the
//! attempts counter, with their units and attributes.

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use tds_emulator::EncryptionSetting;
use tests::{Pipeline, Server, base_config, connect, fast_policy, find};
use tiberius_tower::EncryptionLevel;

/// One data point: its attributes and its count (histogram) or value (sum).
#[derive(Debug)]
struct Point {
    attributes: Vec<KeyValue>,
    value: u64,
}

impl Point {
    fn get(&self, key: &str) -> Option<String> {
        find(&self.attributes, key).map(|v| v.as_str().into_owned())
    }
}

/// The points of metric `name` in the latest export, and its unit.
fn points(exports: &[ResourceMetrics], name: &str) -> (String, Vec<Point>) {
    let latest = exports.last().expect("one export");
    let metric = latest
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {latest:#?}"));
    let points = match metric.data() {
        AggregatedMetrics::F64(MetricData::Histogram(h)) => h
            .data_points()
            .map(|p| Point {
                attributes: p.attributes().cloned().collect(),
                value: p.count(),
            })
            .collect(),
        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
            assert!(sum.is_monotonic(), "a counter");
            sum.data_points()
                .map(|p| Point {
                    attributes: p.attributes().cloned().collect(),
                    value: p.value(),
                })
                .collect()
        }
        other => panic!("{name} has unexpected data {other:?}"),
    };
    (metric.unit().to_owned(), points)
}

fn assert_semconv(point: &Point, port: u16) {
    assert_eq!(
        point.get("db.system.name").as_deref(),
        Some("microsoft.sql_server")
    );
    assert_eq!(point.get("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        find(&point.attributes, "server.port"),
        Some(&opentelemetry::Value::I64(i64::from(port)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_counts_each_attempt_by_cause_and_outcome_and_times_the_connect() {
    let server = Server::start(base_config(EncryptionSetting::Force)).await;
    let pipeline = Pipeline::new();
    let mut svc = pipeline.service(fast_policy());
    drop(
        connect(&mut svc, server.request(EncryptionLevel::NotSupported))
            .await
            .expect("connects"),
    );
    let exports = pipeline.metrics();

    let (unit, created) = points(&exports, "db.client.connection.create_time");
    assert_eq!(unit, "s");
    assert_eq!(created.len(), 1);
    let point = &created[0];
    assert_eq!(point.value, 1, "one connect");
    assert_semconv(point, server.port());
    assert_eq!(point.get("db.namespace").as_deref(), Some("master"));
    assert_eq!(point.get("error.type"), None, "it connected");

    let (unit, attempts) = points(&exports, "mssql.client.connection.attempts");
    assert_eq!(unit, "{attempt}");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let refused = attempts
        .iter()
        .find(|p| p.get("mssql.attempt.outcome").as_deref() == Some("upgrade"))
        .expect("the refused attempt");
    assert_eq!(refused.value, 1);
    assert_semconv(refused, server.port());
    assert_eq!(
        refused.get("mssql.prelogin.cause").as_deref(),
        Some("encryption_required")
    );
    assert_eq!(
        refused.get("db.response.status_code").as_deref(),
        Some("10054")
    );
    assert_eq!(
        refused.get("mssql.encryption").as_deref(),
        Some("not_supported")
    );
    let connected = attempts
        .iter()
        .find(|p| p.get("mssql.attempt.outcome").as_deref() == Some("connected"))
        .expect("the connected attempt");
    assert_eq!(connected.value, 1);
    assert_eq!(connected.get("mssql.prelogin.cause"), None);
    assert_eq!(
        connected.get("mssql.encryption").as_deref(),
        Some("required")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_probe_counts_the_settled_cause() {
    let server = Server::start(base_config(EncryptionSetting::StrictOnly)).await;
    let pipeline = Pipeline::new();
    let mut svc = pipeline.service(fast_policy());
    drop(
        connect(&mut svc, server.request(EncryptionLevel::Required))
            .await
            .expect("connects"),
    );
    let (_, attempts) = points(&pipeline.metrics(), "mssql.client.connection.attempts");
    let probed = attempts
        .iter()
        .find(|p| p.get("mssql.attempt.outcome").as_deref() == Some("probe_strict"))
        .expect("the attempt that led to the probe");
    // Counted once the probe got through, so with the cause it settled.
    assert_eq!(
        probed.get("mssql.prelogin.cause").as_deref(),
        Some("strict_required")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connect_time_carries_error_type_and_pool_name() {
    let server = Server::start(base_config(EncryptionSetting::Off)).await;
    let pipeline = Pipeline::new();
    let mut svc = tower::ServiceBuilder::new()
        .layer(
            tiberius_tower::PreloginLayer::new(fast_policy())
                .metrics(pipeline.connect_metrics().pool_name("orders")),
        )
        .service(tiberius_tower::Connector::new());
    let error = connect(
        &mut svc,
        server.request_with(EncryptionLevel::Required, "wrong"),
    )
    .await
    .expect_err("login fails");
    assert_eq!(error.cause().as_str(), "login_failed");

    let exports = pipeline.metrics();
    let (_, created) = points(&exports, "db.client.connection.create_time");
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].get("error.type").as_deref(),
        Some("login_failed")
    );
    assert_eq!(
        created[0].get("db.client.connection.pool.name").as_deref(),
        Some("orders")
    );
    let (_, attempts) = points(&exports, "mssql.client.connection.attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].get("mssql.attempt.outcome").as_deref(),
        Some("stop")
    );
    assert_eq!(
        attempts[0].get("db.response.status_code").as_deref(),
        Some("18456")
    );
    server.stop().await;
}
