//! End to end: spans leave through the real OTLP exporter (HTTP/protobuf)
//! and arrive at a receiver inside the test, which decodes the protobuf and
//! finds the attempt tagged with the 10054 signature.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use tds_emulator::EncryptionSetting;
use tests::receiver::Receiver;
use tests::{Server, WALL_CLOCK, base_config, connect, fast_policy};
use tiberius_tower::{Connector, EncryptionLevel, PreloginLayer};
use tower::ServiceBuilder;
use tracing_subscriber::layer::SubscriberExt;

fn string_attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_export_carries_the_10054_tagged_attempt() {
    let mut receiver = Receiver::start().await.expect("receiver binds");
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", receiver.url()))
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("exporter builds");
    // The batch processor exports from its own thread, as in production.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otlp-test")));

    let server = Server::start(base_config(EncryptionSetting::Force)).await;
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut svc = ServiceBuilder::new()
            .layer(PreloginLayer::new(fast_policy()).without_metrics())
            .service(Connector::new());
        drop(
            connect(&mut svc, server.request(EncryptionLevel::NotSupported))
                .await
                .expect("connects after the upgrade"),
        );
    }
    // force_flush blocks until the export thread is done: not on the runtime.
    let flusher = provider.clone();
    tokio::task::spawn_blocking(move || flusher.force_flush())
        .await
        .expect("flush task")
        .expect("flush succeeds");

    let mut spans = Vec::new();
    while spans.len() < 3 {
        let request = receiver
            .next(WALL_CLOCK)
            .await
            .expect("an export arrives in time");
        assert_eq!(request.path, "/v1/traces");
        let decoded = ExportTraceServiceRequest::decode(request.body.as_slice())
            .expect("valid OTLP protobuf");
        spans.extend(
            decoded
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans),
        );
    }

    let connect_span = spans
        .iter()
        .find(|s| s.name == "mssql.connect")
        .expect("the connect span");
    assert_eq!(connect_span.kind, SpanKind::Client as i32);
    assert_eq!(
        string_attribute(connect_span, "db.system.name").as_deref(),
        Some("microsoft.sql_server")
    );
    let tagged: Vec<&Span> = spans
        .iter()
        .filter(|s| string_attribute(s, "db.response.status_code").as_deref() == Some("10054"))
        .collect();
    assert_eq!(tagged.len(), 1, "{spans:#?}");
    let attempt = tagged[0];
    assert_eq!(attempt.name, "mssql.connect.attempt");
    assert_eq!(attempt.parent_span_id, connect_span.span_id);
    assert_eq!(attempt.trace_id, connect_span.trace_id);
    assert_eq!(
        string_attribute(attempt, "mssql.prelogin.cause").as_deref(),
        Some("encryption_required")
    );
    assert_eq!(
        attempt.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );

    let shutdown = provider.clone();
    let _ = tokio::task::spawn_blocking(move || shutdown.shutdown()).await;
    server.stop().await;
}
