//! deadpool: [`PoolConnector`] as a `deadpool::managed::Manager`.

use deadpool::managed::{Manager, Metrics, PoolBuilder, RecycleError, RecycleResult};

use super::{LayeredConnect, PoolConnectError, PoolConnector};
use crate::TdsClient;

impl<S> Manager for PoolConnector<S>
where
    S: LayeredConnect,
{
    type Type = TdsClient;
    type Error = PoolConnectError;

    async fn create(&self) -> Result<TdsClient, PoolConnectError> {
        self.connect().await
    }

    async fn recycle(
        &self,
        client: &mut TdsClient,
        _: &Metrics,
    ) -> RecycleResult<PoolConnectError> {
        self.check(client).await.map_err(RecycleError::Backend)
    }
}

impl<S> PoolConnector<S>
where
    S: LayeredConnect,
{
    /// deadpool's builder for this connector with the settings that keep the
    /// pool from second-guessing the layer: the tokio runtime (so timeouts
    /// can be set at all) and no create timeout (the policy's deadline bounds
    /// each connect, and a create timeout shorter than it would replace the
    /// cause with `Timeout(Create)`). deadpool never retries a failed create:
    /// `Pool::get` returns `PoolError::Backend(PoolConnectError::Connect(..))`.
    ///
    /// Set `max_size` and, if callers must not wait for a busy pool forever,
    /// `wait_timeout`.
    pub fn deadpool_builder(self) -> PoolBuilder<Self> {
        deadpool::managed::Pool::builder(self)
            .runtime(deadpool::Runtime::Tokio1)
            .create_timeout(None)
    }
}
