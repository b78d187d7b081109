//! [`PreloginLayer`]: wraps a connector in the [`Prelogin`] service.

use tower_layer::Layer;

use crate::policy::ConnectPolicy;
use crate::telemetry::MetricsSink;

use super::Prelogin;

/// A `tower::Layer` that applies [`Prelogin`] with a [`ConnectPolicy`].
///
/// Every service the layer builds shares the policy's retry budget and
/// endpoint memory, and (feature `metrics`) the same instruments.
#[derive(Debug, Clone, Default)]
pub struct PreloginLayer {
    policy: ConnectPolicy,
    metrics: MetricsSink,
}

impl PreloginLayer {
    /// A layer with this policy. With the `metrics` feature, it records
    /// through the global meter provider unless told otherwise.
    pub fn new(policy: ConnectPolicy) -> Self {
        PreloginLayer {
            policy,
            metrics: MetricsSink::default(),
        }
    }
}

#[cfg(feature = "metrics")]
impl PreloginLayer {
    /// Records metrics with these instruments instead of the global meter's.
    pub fn metrics(mut self, metrics: crate::ConnectMetrics) -> Self {
        self.metrics = MetricsSink::explicit(metrics);
        self
    }

    /// Records no metrics (spans are unaffected: they follow the `tracing`
    /// subscriber).
    pub fn without_metrics(mut self) -> Self {
        self.metrics = MetricsSink::off();
        self
    }
}

impl<S> Layer<S> for PreloginLayer {
    type Service = Prelogin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Prelogin::new(inner, self.policy.clone()).with_metrics(self.metrics.clone())
    }
}
