//! What one logical connect asks for: [`ConnectRequest`] and its builder.
//!
//! `tiberius::Config` does not expose its host, port, instance, encryption
//! level or trust setting, yet the policy must read the first four and change
//! the encryption level and address between attempts. So the request keeps
//! those fields itself and rebuilds a `tiberius::Config` for every attempt
//! from a base configuration that holds everything else (authentication,
//! database, application name, certificate trust).
//!
//! The request holds the user's intent and the few fields the policy
//! rewrites between attempts (level, address, the per-attempt bounds and the
//! connect's deadline); nothing travels back through it.

mod ado;
mod browser;
mod connection_string;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::endpoint::EndpointKey;
use crate::level::EncryptionLevel;

pub use ado::RequestError;
pub use browser::{BrowserError, SqlBrowser};
pub use connection_string::ConnectionString;

/// Default port of a SQL Server default instance.
const DEFAULT_PORT: u16 = 1433;

/// Default bound on DNS resolution plus the TCP connect of one attempt: 5 s.
///
/// A healthy listener answers a SYN in one round trip, and a SYN that goes
/// unanswered for seconds means a black-holed address, which the retry
/// policy handles better than a long wait.
pub(crate) const DEFAULT_TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on the TDS handshake of one attempt (PRELOGIN, TLS,
/// LOGIN7): 15 s, the `Connect Timeout` default of SqlClient and of
/// tiberius's own `handshake_timeout`.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How the server certificate is trusted. Set once by the user; the policy
/// has no way to change it (there is no setter on [`ConnectRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustSetting {
    /// Validate against the system trust store (tiberius's default).
    SystemRoots,
    /// Validate against the system store plus this CA file (PEM or DER).
    CaFile(PathBuf),
    /// Accept any certificate (`TrustServerCertificate=true`). Dangerous.
    TrustAll,
}

/// One logical connect: the tiberius configuration plus the fields tiberius
/// does not expose, plus this crate's per-attempt timeouts.
///
/// Build it with [`ConnectRequest::builder`] or
/// [`ConnectRequest::from_ado_string`]. `Debug` never prints credentials.
#[derive(Clone)]
pub struct ConnectRequest {
    base: tiberius::Config,
    host: String,
    port: u16,
    instance: Option<String>,
    database: Option<String>,
    encryption: EncryptionLevel,
    trust: TrustSetting,
    tcp_connect_timeout: Duration,
    handshake_timeout: Duration,
    /// Set by the policy on TLS-first (Strict) attempts: how long to wait
    /// for the server's first byte before calling the server silent.
    silence_timeout: Option<Duration>,
    /// When the whole logical connect must be over (set by the policy).
    deadline: Option<tokio::time::Instant>,
}

impl ConnectRequest {
    /// Starts a builder with host `localhost`, port 1433, encryption
    /// Required, system trust roots, a 5 s TCP connect timeout and a 15 s
    /// handshake timeout.
    pub fn builder() -> ConnectRequestBuilder {
        ConnectRequestBuilder {
            base: tiberius::Config::new(),
            host: "localhost".to_owned(),
            port: None,
            instance: None,
            database: None,
            encryption: EncryptionLevel::Required,
            trust: TrustSetting::SystemRoots,
            tcp_connect_timeout: DEFAULT_TCP_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Parses an ADO.NET connection string.
    ///
    /// tiberius parses it for everything it understands (credentials,
    /// database, trust, application name...); this crate additionally reads
    /// `Server`, `Encrypt`, `TrustServerCertificate` and
    /// `TrustServerCertificateCA` itself, because `tiberius::Config` keeps
    /// them private, with tiberius's own grammar (quotes, `{…}` braces,
    /// `==`), so both always read the same value. A missing `Encrypt` means
    /// Required, as in tiberius.
    ///
    /// `Connect Timeout` (or `Connection Timeout`, `Timeout`), in whole
    /// seconds, becomes the request's
    /// [`handshake_timeout`](Self::handshake_timeout). `ConnectRetryCount`
    /// and `ConnectRetryInterval` are checked here but belong to the policy:
    /// read the string with [`ConnectionString::parse`] to get both the
    /// request and the policy they describe. The accepted keywords are listed
    /// in `docs/guide.md` (section 9).
    ///
    /// # Errors
    ///
    /// [`RequestError::Tiberius`] when tiberius rejects the string (syntax,
    /// a non-boolean `TrustServerCertificate`, both `TrustServerCertificate`
    /// and `TrustServerCertificateCA`, an unknown `Encrypt` value, `strict`
    /// without the `tds80` feature...). [`RequestError::Invalid`] when no
    /// `Server`/`Data Source` is given or it is empty (tiberius would quietly
    /// use localhost), or a timeout or retry value is out of SqlClient's
    /// range. [`RequestError::NeedsBrowser`] for a named instance without
    /// its port (`host\instance`): this synchronous parse cannot ask SQL
    /// Browser, and tiberius's default, 1434, is the Browser's UDP port, not
    /// the instance's; [`ConnectionString::resolve`] asks SQL Browser.
    /// [`RequestError::UnknownKeyword`] for a keyword nobody reads, and
    /// [`RequestError::UnsupportedKeyword`] for a SqlClient keyword this
    /// crate cannot honour. Error messages name the key, never the value.
    pub fn from_ado_string(s: &str) -> Result<Self, RequestError> {
        ConnectionString::parse(s).map(ConnectionString::into_request)
    }

    /// The request a parsed connection string describes.
    fn from_parsed(parsed: ado::Parsed) -> Self {
        ConnectRequest {
            base: parsed.base,
            host: parsed.host,
            port: parsed.port,
            instance: parsed.instance,
            database: parsed.database,
            encryption: parsed.encryption,
            trust: parsed.trust,
            tcp_connect_timeout: DEFAULT_TCP_CONNECT_TIMEOUT,
            handshake_timeout: parsed.connect_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            silence_timeout: None,
            deadline: None,
        }
    }

    /// The host this attempt connects to (changes only on a routing redirect).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port this attempt connects to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The named instance, if any.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The database, if one was set.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The encryption level: as configured before the first attempt, the
    /// level the policy chose for the attempt after that.
    pub fn encryption(&self) -> EncryptionLevel {
        self.encryption
    }

    /// How the server certificate is trusted. Never changed after build.
    pub fn trust(&self) -> &TrustSetting {
        &self.trust
    }

    /// Bound on DNS resolution plus TCP connect for one attempt.
    pub fn tcp_connect_timeout(&self) -> Duration {
        self.tcp_connect_timeout
    }

    /// Bound on the TDS handshake of one attempt (the policy shortens it for
    /// its Strict probe).
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// On a TLS-first (Strict) attempt under the middleware: how long to
    /// wait for the server's first byte. SQL Server 2019 and older never
    /// answer a TLS ClientHello (tds-handshake.md §5.4); the policy tells that
    /// apart from a stall after this much silence. None outside the
    /// middleware and on TDS 7 attempts.
    ///
    /// [`Connector`](crate::Connector) ends a silent attempt at this point
    /// with [`AttemptFailure::Silent`](crate::AttemptFailure::Silent); a
    /// custom connector that ignores it still works, only slower (its
    /// handshake timeout ends the silence instead).
    pub fn silence_timeout(&self) -> Option<Duration> {
        self.silence_timeout
    }

    /// The instant by which the whole logical connect must be over, when it
    /// runs under [`Prelogin`](crate::Prelogin) (None outside it).
    ///
    /// [`Connector`](crate::Connector) ends its TCP connect and handshake at
    /// this instant even when their own timeouts are longer, so an attempt
    /// cut by the deadline still reports what the wire showed; a custom
    /// connector should do the same (`tokio::time::timeout_at`). The
    /// middleware also stops any attempt still running at the deadline.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// The endpoint this request targets, as the endpoint memory keys it.
    pub fn endpoint(&self) -> EndpointKey {
        EndpointKey::new(&self.host, self.port, self.instance.as_deref())
    }

    /// The `tiberius::Config` for one attempt: the base configuration with
    /// this request's host, port, instance and encryption level.
    ///
    /// tiberius's own handshake timer is switched off: the connector bounds
    /// the handshake itself, so there is one clock and one timeout error.
    pub fn tiberius_config(&self) -> tiberius::Config {
        self.configure(self.base.clone())
    }

    /// [`tiberius_config`](Self::tiberius_config) for a request the caller
    /// is done with: the base configuration is moved, not copied.
    pub(crate) fn into_tiberius_config(mut self) -> tiberius::Config {
        let base = std::mem::take(&mut self.base);
        self.configure(base)
    }

    fn configure(&self, mut config: tiberius::Config) -> tiberius::Config {
        config.host(&self.host);
        config.port(self.port);
        config.encryption(self.encryption.to_tiberius());
        config.handshake_timeout(None);
        // The request's field is the one source of the instance name (a routing redirect
        // clears it). tiberius cannot unset a name its base config got from a connection
        // string, and an empty name is the same PRELOGIN INSTOPT on the wire (a lone NUL).
        config.instance_name(self.instance.as_deref().unwrap_or(""));
        config
    }

    // The policy's rewrites. Crate-private: certificate trust has no setter
    // at all, and the level only ever moves as the plan decides.

    pub(crate) fn set_encryption(&mut self, level: EncryptionLevel) {
        self.encryption = level;
    }

    /// Points the request at a routed node. The instance name is dropped: it named an
    /// instance on the gateway, and the routing ENVCHANGE (MS-TDS 2.2.7.9, type 20) already
    /// gives the node's exact port.
    pub(crate) fn set_address(&mut self, host: String, port: u16) {
        self.host = host;
        self.port = port;
        self.instance = None;
    }

    pub(crate) fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    pub(crate) fn set_silence_timeout(&mut self, timeout: Option<Duration>) {
        self.silence_timeout = timeout;
    }

    pub(crate) fn set_deadline(&mut self, deadline: tokio::time::Instant) {
        self.deadline = Some(deadline);
    }
}

impl fmt::Debug for ConnectRequest {
    // Hand-written so that credentials (password, AAD token) can never reach
    // a log line, whatever tiberius's own Debug does in a future version.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("instance", &self.instance)
            .field("database", &self.database)
            .field("encryption", &self.encryption)
            .field("trust", &self.trust)
            .field("authentication", &"<redacted>")
            .field("tcp_connect_timeout", &self.tcp_connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// Builder for [`ConnectRequest`]; every setter returns `Self`.
pub struct ConnectRequestBuilder {
    base: tiberius::Config,
    host: String,
    port: Option<u16>,
    instance: Option<String>,
    database: Option<String>,
    encryption: EncryptionLevel,
    trust: TrustSetting,
    tcp_connect_timeout: Duration,
    handshake_timeout: Duration,
}

impl ConnectRequestBuilder {
    /// Server host name or IP address. Default `localhost`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Server TCP port. Default 1433.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Named instance (sent in PRELOGIN INSTOPT). The builder does not query
    /// SQL Browser: set the instance's port explicitly, or get it with
    /// [`SqlBrowser::resolve`](crate::SqlBrowser::resolve).
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// Database to open at login.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        let database = database.into();
        self.base.database(&database);
        self.database = Some(database);
        self
    }

    /// Authentication method (SQL login, AAD token, ...).
    pub fn authentication(mut self, auth: tiberius::AuthMethod) -> Self {
        self.base.authentication(auth);
        self
    }

    /// Application name reported to the server.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.base.application_name(name.into());
        self
    }

    /// The configured encryption level: the floor no attempt goes below.
    /// Accepts this crate's [`EncryptionLevel`] or tiberius's (`On` counts
    /// as `Required`). Default Required.
    pub fn encryption(mut self, level: impl Into<EncryptionLevel>) -> Self {
        self.encryption = level.into();
        self
    }

    /// Trust an extra CA certificate file (PEM or DER). Replaces an earlier
    /// [`trust_cert`](Self::trust_cert): the last trust call wins, so the
    /// builder never panics the way tiberius's mutually exclusive setters do.
    pub fn trust_cert_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust = TrustSetting::CaFile(path.into());
        self
    }

    /// Accept any server certificate. Only on a network you already trust.
    /// The last trust call wins.
    pub fn trust_cert(mut self) -> Self {
        self.trust = TrustSetting::TrustAll;
        self
    }

    /// Bound on DNS + TCP connect of one attempt. Default 5 s.
    pub fn tcp_connect_timeout(mut self, timeout: Duration) -> Self {
        self.tcp_connect_timeout = timeout;
        self
    }

    /// Bound on the TDS handshake of one attempt. Default 15 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Adjusts the base `tiberius::Config` for settings this builder does not
    /// mirror (packet size, readonly, client name, ...). Host, port, instance,
    /// encryption and handshake timeout set here are overridden by the
    /// request's own fields.
    ///
    /// Certificate trust is not: set it with [`trust_cert`](Self::trust_cert)
    /// or [`trust_cert_ca`](Self::trust_cert_ca) only. A tiberius trust
    /// setter called here is not reflected in [`ConnectRequest::trust`], and
    /// tiberius panics in [`build`](Self::build) when it conflicts with the
    /// builder's (its `trust_cert` and `trust_cert_ca` exclude each other).
    pub fn tiberius_config(mut self, adjust: impl FnOnce(&mut tiberius::Config)) -> Self {
        adjust(&mut self.base);
        self
    }

    /// Finishes the request.
    pub fn build(self) -> ConnectRequest {
        let mut base = self.base;
        // Applied once, here: a fresh Config has no trust set, so exactly one
        // of tiberius's mutually exclusive trust setters runs.
        match &self.trust {
            TrustSetting::SystemRoots => {}
            TrustSetting::CaFile(path) => base.trust_cert_ca(path.display()),
            TrustSetting::TrustAll => base.trust_cert(),
        }
        ConnectRequest {
            base,
            host: self.host,
            port: self.port.unwrap_or(DEFAULT_PORT),
            instance: self.instance,
            database: self.database,
            encryption: self.encryption,
            trust: self.trust,
            tcp_connect_timeout: self.tcp_connect_timeout,
            handshake_timeout: self.handshake_timeout,
            silence_timeout: None,
            deadline: None,
        }
    }
}

impl fmt::Debug for ConnectRequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequestBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("encryption", &self.encryption)
            .field("authentication", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_drops_the_gateway_instance_name() {
        let mut request = ConnectRequest::builder()
            .host("gateway")
            .port(1433)
            .instance("SALES")
            .build();
        assert_eq!(request.instance(), Some("SALES"));
        request.set_address("node-2".to_owned(), 11000);
        assert_eq!(request.instance(), None);
        assert_eq!(request.endpoint(), EndpointKey::new("node-2", 11000, None));
    }

    #[test]
    fn debug_redacts_credentials() {
        let r = ConnectRequest::builder()
            .host("h")
            .authentication(tiberius::AuthMethod::sql_server("sa", "Sup3rSecret!"))
            .build();
        let debug = format!("{r:?}");
        assert!(!debug.contains("Sup3rSecret!"));
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn trust_is_last_wins_and_never_panics() {
        let r = ConnectRequest::builder()
            .trust_cert()
            .trust_cert_ca("/tmp/ca.pem")
            .build();
        assert_eq!(
            r.trust(),
            &TrustSetting::CaFile(PathBuf::from("/tmp/ca.pem"))
        );
        let r = ConnectRequest::builder()
            .trust_cert_ca("/tmp/ca.pem")
            .trust_cert()
            .build();
        assert_eq!(r.trust(), &TrustSetting::TrustAll);
    }
}
