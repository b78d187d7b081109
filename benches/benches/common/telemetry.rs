//! The "telemetry on" setup the `connect` and `telemetry` benches measure:
//! `tracing-opentelemetry` into an SDK tracer provider (batch processor, an
//! exporter that discards), plus the metrics through an SDK meter provider
//! (periodic reader, in-memory exporter).
//!
//! Two subscribers: [`Telemetry::new`] filters at INFO, the level production
//! services run at (this crate's spans are INFO; tiberius's own DEBUG and
//! TRACE events are then off at their call sites); [`Telemetry::all_events`]
//! has no filter, so every event of the driver at every level becomes a span
//! event of the attempt span, as when debugging.

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tiberius_tower::ConnectMetrics;
use tiberius_tower::{ConnectPolicy, ConnectRequest, Connector, Prelogin, PreloginLayer};
use tokio::runtime::Runtime;
use tower::ServiceBuilder;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

use super::connect_through;

/// A span exporter that drops everything: the cost measured is the
/// instrumentation and the SDK, not a network.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

/// Tracer and meter providers plus the subscriber to run connects under.
pub(crate) struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    /// The subscriber; run the measured code under
    /// `tracing::dispatcher::with_default(&telemetry.dispatch, ..)`.
    pub(crate) dispatch: tracing::Dispatch,
}

impl Telemetry {
    /// Builds the pipeline, filtered at INFO. Build it only after the
    /// telemetry-off runs, so those never saw a subscriber exist.
    pub(crate) fn new() -> Telemetry {
        Telemetry::build(Some(LevelFilter::INFO))
    }

    /// Builds the pipeline with no level filter: every event of every level
    /// reaches `tracing-opentelemetry`.
    pub(crate) fn all_events() -> Telemetry {
        Telemetry::build(None)
    }

    fn build(filter: Option<LevelFilter>) -> Telemetry {
        let tracer_provider = SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
            .build();
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(filter)
                .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"))),
        );
        Telemetry {
            tracer_provider,
            meter_provider,
            dispatch,
        }
    }

    /// The layer over `Connector` with its metrics recorded into this pipeline.
    pub(crate) fn layered(&self, policy: ConnectPolicy) -> Prelogin<Connector> {
        ServiceBuilder::new()
            .layer(
                PreloginLayer::new(policy)
                    .metrics(ConnectMetrics::new(&self.meter_provider.meter("bench"))),
            )
            .service(Connector::new())
    }

    /// [`layered`](Self::layered), with this pipeline's subscriber to run its
    /// connects under.
    pub(crate) fn traced(&self, policy: ConnectPolicy) -> Traced {
        Traced {
            svc: self.layered(policy),
            dispatch: self.dispatch.clone(),
        }
    }

    /// Flushes and stops both providers.
    pub(crate) fn shutdown(self) {
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

/// A layered service whose connects run with the pipeline's subscriber
/// current, installed around each connect only (`with_default`), so that
/// they can alternate with connects that see no subscriber.
pub(crate) struct Traced {
    svc: Prelogin<Connector>,
    dispatch: tracing::Dispatch,
}

impl Traced {
    /// One clean connect of `request` on `client` under the subscriber.
    pub(crate) fn connect(&mut self, client: &Runtime, request: &ConnectRequest) {
        tracing::dispatcher::with_default(&self.dispatch, || {
            connect_through(client, &mut self.svc, request);
        });
    }

    /// One connect before any measured one. While the pipeline's is the only
    /// `Dispatch` in the process, tracing-core decides a callsite's interest
    /// at its first use from the *current thread's* default, and keeps it
    /// (tokio-rs/tracing#2874, #3611): a span or event first reached by a
    /// connect outside [`connect`](Self::connect) is then off for good,
    /// traced connects included. This connect reaches every callsite a
    /// traced connect does while the subscriber is current.
    pub(crate) fn warm_up(&mut self, client: &Runtime, request: &ConnectRequest) {
        self.connect(client, request);
    }
}
