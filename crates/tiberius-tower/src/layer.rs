//! [`PreloginLayer`]: wraps a connector in the [`Prelogin`] service.

use tower_layer::Layer;

use crate::policy::Policy;
use crate::service::Prelogin;
use crate::telemetry::MetricsSink;

/// A `tower::Layer` that applies [`Prelogin`] with a [`Policy`].
///
/// Every service the layer builds shares the policy's retry budget and
/// endpoint memory, and (feature `metrics`) the same instruments.
#[derive(Debug, Clone, Default)]
pub struct PreloginLayer {
    policy: Policy,
    metrics: MetricsSink,
}

impl PreloginLayer {
    /// A layer with this policy. With the `metrics` feature, it records
    /// through the global meter provider unless told otherwise.
    pub fn new(policy: Policy) -> Self {
        PreloginLayer {
            policy,
            metrics: MetricsSink::default(),
        }
    }
}

#[cfg(feature = "metrics")]
impl PreloginLayer {
    /// Records metrics with these instruments instead of the global meter's.
    pub fn metrics(mut self, metrics: crate::metrics::ConnectMetrics) -> Self {
        self.metrics = MetricsSink::Explicit(metrics);
        self
    }

    /// Records no metrics (spans are unaffected: they follow the `tracing`
    /// subscriber).
    pub fn without_metrics(mut self) -> Self {
        self.metrics = MetricsSink::Off;
        self
    }
}

impl<S> Layer<S> for PreloginLayer {
    type Service = Prelogin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Prelogin::new(inner, self.policy.clone()).with_sink(self.metrics.clone())
    }
}
