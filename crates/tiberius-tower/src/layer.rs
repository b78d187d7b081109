//! [`PreloginLayer`]: wraps a connector in the [`Prelogin`] service.

use tower_layer::Layer;

use crate::policy::Policy;
use crate::service::Prelogin;

/// A `tower::Layer` that applies [`Prelogin`] with a [`Policy`].
///
/// Every service the layer builds shares the policy's retry budget and
/// endpoint memory.
#[derive(Debug, Clone, Default)]
pub struct PreloginLayer {
    policy: Policy,
}

impl PreloginLayer {
    /// A layer with this policy.
    pub fn new(policy: Policy) -> Self {
        PreloginLayer { policy }
    }
}

impl<S> Layer<S> for PreloginLayer {
    type Service = Prelogin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Prelogin::new(inner, self.policy.clone())
    }
}
