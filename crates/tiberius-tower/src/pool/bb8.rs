//! bb8: [`PoolConnector`] as a `bb8::ManageConnection`, and [`Bb8Pool`],
//! whose `get` returns the layer's error instead of bb8's `TimedOut`.

use bb8::{ManageConnection, Pool, PooledConnection, RunError};
use tokio::sync::broadcast::error::RecvError;

use super::{LayeredConnect, PoolConnectError, PoolConnector};
use crate::TdsClient;

impl<S> ManageConnection for PoolConnector<S>
where
    S: LayeredConnect,
{
    type Connection = TdsClient;
    type Error = PoolConnectError;

    async fn connect(&self) -> Result<TdsClient, PoolConnectError> {
        PoolConnector::connect(self).await
    }

    async fn is_valid(&self, client: &mut TdsClient) -> Result<(), PoolConnectError> {
        self.check(client).await
    }

    fn has_broken(&self, _: &mut TdsClient) -> bool {
        // tiberius's Client shows neither its stream nor a failed read; the
        // checkout's `is_valid` finds a dead connection instead.
        false
    }
}

/// A `bb8::Pool` of layered connections whose [`get`](Self::get) returns the
/// layer's [`ConnectError`](crate::ConnectError) as soon as a connect fails.
///
/// bb8 0.9 connects in a background task: with its defaults a failed
/// connect is retried with backoff until `connection_timeout` (30 s) and
/// `Pool::get` then says `TimedOut`, having thrown the cause away. This pool
/// builds bb8 with `retry_connection(false)` (the layer already retried what
/// was worth retrying) and has `get` listen for the connector's failures.
///
/// A failed connect fails every `get` waiting at that moment: they were all
/// waiting for a connection the pool could not make. `connection_timeout`
/// still bounds a `get` that waits for a busy pool; keep it above the
/// policy's deadline (both default to 30 s).
///
/// # Example
///
/// A login the server refuses: `get` says so after one attempt.
///
/// ```
/// use tiberius_tower::pool::{Bb8Pool, PoolConnector};
/// use tiberius_tower::{Cause, ConnectPolicy, ConnectRequest, Connector, PreloginLayer};
/// use tds_emulator::{Emulator, EmulatorConfig};
/// use tower::ServiceBuilder;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Emulator::start(EmulatorConfig::new()).await?;
/// let ca = std::env::temp_dir().join(format!("bb8-pool-doc-{}.pem", std::process::id()));
/// server.write_ca_pem(&ca)?;
/// let service = ServiceBuilder::new()
///     .layer(PreloginLayer::new(ConnectPolicy::new()))
///     .service(Connector::new());
/// let request = ConnectRequest::builder()
///     .host("127.0.0.1")
///     .port(server.local_addr().port())
///     .authentication(tiberius::AuthMethod::sql_server("sa", "wrong"))
///     .trust_cert_ca(&ca)
///     .build();
/// let pool = Bb8Pool::build(
///     Bb8Pool::builder().max_size(4),
///     PoolConnector::new(service, request),
/// );
/// match pool.get().await {
///     Err(bb8::RunError::User(error)) => assert_eq!(error.cause(), Some(Cause::LoginFailed)),
///     _ => unreachable!("the server refuses this login"),
/// }
/// # server.shutdown().await;
/// # let _ = std::fs::remove_file(&ca);
/// # Ok(())
/// # }
/// ```
pub struct Bb8Pool<S>
where
    S: LayeredConnect,
{
    pool: Pool<PoolConnector<S>>,
    failures: tokio::sync::broadcast::Sender<PoolConnectError>,
}

impl<S> Bb8Pool<S>
where
    S: LayeredConnect,
{
    /// bb8's builder with the settings this pool needs:
    /// `retry_connection(false)`. Adjust the others (`max_size`,
    /// `min_idle`, `connection_timeout`, ...) and pass it to
    /// [`build`](Self::build).
    pub fn builder() -> bb8::Builder<PoolConnector<S>> {
        Pool::builder().retry_connection(false)
    }

    /// Builds the pool without connecting (bb8's `build_unchecked`): the
    /// first `get` makes the first connection and reports its error.
    ///
    /// `retry_connection` is forced off whatever `builder` says.
    pub fn build(builder: bb8::Builder<PoolConnector<S>>, connector: PoolConnector<S>) -> Self {
        let failures = connector.failures.clone();
        Bb8Pool {
            pool: builder.retry_connection(false).build_unchecked(connector),
            failures,
        }
    }

    /// A connection from the pool, or the error of the connect that failed
    /// while this call waited.
    ///
    /// # Errors
    ///
    /// `RunError::User(PoolConnectError::Connect(..))` with the layer's
    /// error; `RunError::TimedOut` when no connection came free within
    /// bb8's `connection_timeout`.
    pub async fn get(
        &self,
    ) -> Result<PooledConnection<'_, PoolConnector<S>>, RunError<PoolConnectError>> {
        // Subscribed before asking, so a failure of the connect this get
        // triggers cannot be missed.
        let mut failures = self.failures.subscribe();
        let get = self.pool.get();
        tokio::pin!(get);
        loop {
            tokio::select! {
                biased;
                result = &mut get => return result,
                failure = failures.recv() => match failure {
                    Ok(error) => return Err(RunError::User(error)),
                    // Failures were missed: the newest one is still coming.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return get.await,
                },
            }
        }
    }

    /// The bb8 pool itself (state, statistics, `add`).
    pub fn pool(&self) -> &Pool<PoolConnector<S>> {
        &self.pool
    }
}

impl<S> std::fmt::Debug for Bb8Pool<S>
where
    S: LayeredConnect,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("Bb8Pool")
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish_non_exhaustive()
    }
}
