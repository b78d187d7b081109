//! What one logical connect asks for: [`ConnectRequest`] and its builder.
//!
//! `tiberius::Config` does not expose its host, port, instance, encryption
//! level or trust setting, yet the policy must read the first four and change
//! the encryption level and address between attempts. So the request keeps
//! those fields itself and rebuilds a `tiberius::Config` for every attempt
//! from a base configuration that holds everything else (authentication,
//! database, application name, certificate trust).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tds_handshake::Observation;

use crate::memory::EndpointKey;

/// Default port of a SQL Server default instance.
pub const DEFAULT_PORT: u16 = 1433;

/// Default bound on DNS resolution plus the TCP connect of one attempt.
///
/// Five seconds: a healthy listener answers a SYN in one round trip, and a
/// SYN that goes unanswered for seconds means a black-holed address, which
/// the retry policy handles better than a long wait.
pub const DEFAULT_TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on the TDS handshake of one attempt (PRELOGIN, TLS, LOGIN7).
///
/// Fifteen seconds, the `Connect Timeout` default of SqlClient and of
/// tiberius's own `handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Encryption levels ordered by strength: `NotSupported < Off < Required < Strict`.
///
/// tiberius's own `EncryptionLevel` is ordered by wire value, not strength,
/// and has both `On` and `Required`; they behave the same in tiberius 0.13
/// (both fail on a server reply of OFF or NOT_SUP), so `On` maps to
/// [`EncryptionLevel::Required`] here and the ladder has four rungs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EncryptionLevel {
    /// No TLS at all (PRELOGIN ENCRYPTION = NOT_SUP).
    NotSupported,
    /// TLS for the login only, if the server has a certificate (ENCRYPTION = OFF).
    Off,
    /// TLS for everything, fail without it (ENCRYPTION = REQ).
    Required,
    /// TDS 8.0: TLS before the first TDS byte, ALPN `tds/8.0`.
    Strict,
}

impl EncryptionLevel {
    /// The ladder, weakest first.
    pub const LADDER: [EncryptionLevel; 4] = [
        EncryptionLevel::NotSupported,
        EncryptionLevel::Off,
        EncryptionLevel::Required,
        EncryptionLevel::Strict,
    ];

    /// The highest level the policy may reach by default: Strict when this
    /// crate's `tds80` feature is on, Required otherwise.
    pub const DEFAULT_CEILING: EncryptionLevel = if cfg!(feature = "tds80") {
        EncryptionLevel::Strict
    } else {
        EncryptionLevel::Required
    };

    /// A stable lowercase name: `not_supported`, `off`, `required`, `strict`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EncryptionLevel::NotSupported => "not_supported",
            EncryptionLevel::Off => "off",
            EncryptionLevel::Required => "required",
            EncryptionLevel::Strict => "strict",
        }
    }

    /// The tiberius level that realises this rung.
    pub const fn to_tiberius(self) -> tiberius::EncryptionLevel {
        match self {
            EncryptionLevel::NotSupported => tiberius::EncryptionLevel::NotSupported,
            EncryptionLevel::Off => tiberius::EncryptionLevel::Off,
            EncryptionLevel::Required => tiberius::EncryptionLevel::Required,
            EncryptionLevel::Strict => tiberius::EncryptionLevel::Strict,
        }
    }

    /// The rung a PRELOGIN ENCRYPTION byte offered by a client stands for
    /// (MS-TDS 2.2.6.5): 0x02 NOT_SUP, 0x00 OFF, 0x01 ON and 0x03 REQ both
    /// Required. The CLIENT_CERT bit is ignored. Unknown values give `None`.
    /// A stream that started with TLS is Strict whatever its PRELOGIN says.
    pub fn from_offer(first_byte_tls: bool, encryption_byte: Option<u8>) -> Option<Self> {
        if first_byte_tls {
            return Some(EncryptionLevel::Strict);
        }
        match encryption_byte? & 0x7f {
            0x00 => Some(EncryptionLevel::Off),
            0x01 | 0x03 => Some(EncryptionLevel::Required),
            0x02 => Some(EncryptionLevel::NotSupported),
            _ => None,
        }
    }
}

impl From<tiberius::EncryptionLevel> for EncryptionLevel {
    fn from(level: tiberius::EncryptionLevel) -> Self {
        match level {
            tiberius::EncryptionLevel::NotSupported => EncryptionLevel::NotSupported,
            tiberius::EncryptionLevel::Off => EncryptionLevel::Off,
            tiberius::EncryptionLevel::On | tiberius::EncryptionLevel::Required => {
                EncryptionLevel::Required
            }
            tiberius::EncryptionLevel::Strict => EncryptionLevel::Strict,
        }
    }
}

impl fmt::Display for EncryptionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// Errors building a [`ConnectRequest`] from a connection string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// tiberius rejected the connection string.
    #[error("invalid connection string: {0}")]
    Tiberius(#[source] tiberius::error::Error),
    /// A value this crate reads itself is invalid (the message names the key,
    /// never the value, so a password cannot leak).
    #[error("invalid connection string: {0}")]
    Invalid(&'static str),
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
    /// Where the connector reports the observation of a successful attempt:
    /// tiberius keeps the stream (and so the observer) inside its `Client`,
    /// so the request carries the way back. A fresh slot per attempt.
    report: Option<ObservationSlot>,
}

/// One attempt's report slot, shared by the middleware and the connector.
pub(crate) type ObservationSlot = Arc<Mutex<Option<Observation>>>;

impl ConnectRequest {
    /// Starts a builder with host `localhost`, port 1433, encryption
    /// Required, system trust roots and the default timeouts.
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
    /// them private. A missing `Encrypt` means Required, as in tiberius.
    pub fn from_ado_string(s: &str) -> Result<Self, RequestError> {
        let base = tiberius::Config::from_ado_string(s).map_err(RequestError::Tiberius)?;
        let pairs = parse_ado_pairs(s);
        let get = |keys: &[&str]| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| keys.contains(&k.as_str()))
                .map(|(_, v)| v.as_str())
        };

        // `get_addr` is public and already applies tiberius's defaults
        // (localhost, 1433, 1434 for a named instance); the port is after the
        // last colon even for an IPv6 literal.
        let addr = base.get_addr();
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
            .ok_or(RequestError::Invalid("server"))?;

        let instance = get(&["server", "data source", "address", "addr"])
            .and_then(|server| server.split_once('\\'))
            .map(|(_, rest)| rest.split(',').next().unwrap_or(rest).trim().to_owned())
            .filter(|name| !name.is_empty());

        let encryption = match get(&["encrypt"]).map(|v| v.trim().to_ascii_lowercase()) {
            None => EncryptionLevel::Required,
            Some(v) => match v.as_str() {
                "true" | "yes" | "mandatory" => EncryptionLevel::Required,
                "false" | "no" | "optional" => EncryptionLevel::Off,
                "danger_plaintext" => EncryptionLevel::NotSupported,
                "strict" => EncryptionLevel::Strict,
                _ => return Err(RequestError::Invalid("encrypt")),
            },
        };

        let trust_all = matches!(
            get(&["trustservercertificate"]).map(|v| v.trim().to_ascii_lowercase()),
            Some(ref v) if v == "true" || v == "yes"
        );
        let trust = match (trust_all, get(&["trustservercertificateca"])) {
            (true, _) => TrustSetting::TrustAll,
            (false, Some(path)) => TrustSetting::CaFile(PathBuf::from(path.trim())),
            (false, None) => TrustSetting::SystemRoots,
        };

        let database = get(&["database", "initial catalog", "databasename"])
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());

        Ok(ConnectRequest {
            base,
            host,
            port,
            instance,
            database,
            encryption,
            trust,
            tcp_connect_timeout: DEFAULT_TCP_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            report: None,
        })
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

    /// The encryption level the next attempt uses.
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

    /// Bound on the TDS handshake of one attempt.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The endpoint this request targets, as the endpoint memory keys it.
    pub fn endpoint(&self) -> EndpointKey {
        EndpointKey::new(&self.host, self.port, self.instance.as_deref())
    }

    /// The `tiberius::Config` for one attempt: the base configuration with
    /// this request's host, port and encryption level.
    ///
    /// tiberius's own handshake timer is switched off: the connector bounds
    /// the handshake itself, so there is one clock and one timeout error.
    pub fn tiberius_config(&self) -> tiberius::Config {
        let mut config = self.base.clone();
        config.host(&self.host);
        config.port(self.port);
        config.encryption(self.encryption.to_tiberius());
        config.handshake_timeout(None);
        if self.instance.is_none() {
            // tiberius has no way to unset an instance name the base config got from the
            // connection string; a routing redirect clears ours. An empty name is the same
            // PRELOGIN INSTOPT on the wire (a lone NUL) as no name.
            config.instance_name("");
        }
        config
    }

    /// Returns the request with another encryption level. Crate-private: only
    /// the policy driver changes it, and only upwards (or back from a failed
    /// Strict probe).
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

    /// Tells the middleware what the handshake observer saw during a
    /// successful attempt (the offered and replied encryption bytes end up
    /// in [`AttemptRecord`](crate::AttemptRecord) and the attempt's span).
    ///
    /// [`Connector`](crate::Connector) calls it; a custom connector should
    /// too. Outside the middleware it does nothing. Failed attempts report
    /// through [`AttemptError`](crate::AttemptError) instead.
    pub fn report_observation(&self, observation: &Observation) {
        if let Some(slot) = &self.report {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(*observation);
        }
    }

    /// A copy of this request whose successful attempt reports into `slot`.
    pub(crate) fn with_report(&self, slot: ObservationSlot) -> ConnectRequest {
        let mut request = self.clone();
        request.report = Some(slot);
        request
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

    /// Named instance (sent in PRELOGIN INSTOPT). This crate does not query
    /// SQL Browser: set the instance's port explicitly.
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.base.instance_name(&name);
        self.instance = Some(name);
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

    /// Bound on DNS + TCP connect of one attempt. Default
    /// [`DEFAULT_TCP_CONNECT_TIMEOUT`].
    pub fn tcp_connect_timeout(mut self, timeout: Duration) -> Self {
        self.tcp_connect_timeout = timeout;
        self
    }

    /// Bound on the TDS handshake of one attempt. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Adjusts the base `tiberius::Config` for settings this builder does not
    /// mirror (packet size, readonly, client name, ...). Host, port,
    /// encryption, handshake timeout and trust set here are overridden by
    /// the request's own fields.
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
            report: None,
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

/// Splits an ADO.NET connection string into lowercase keys and raw values,
/// honouring single and double quotes (doubled quote = literal quote), so a
/// quoted password containing `;encrypt=...` cannot be mistaken for a key.
fn parse_ado_pairs(s: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        // Key: up to '='.
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            if c == ';' {
                key.clear();
                continue;
            }
            key.push(c);
        }
        let key = key.trim().to_ascii_lowercase();
        // Skip spaces before the value.
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        match chars.peek().copied() {
            Some(q @ ('"' | '\'')) => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == q {
                        if chars.peek() == Some(&q) {
                            chars.next();
                            value.push(q);
                        } else {
                            break;
                        }
                    } else {
                        value.push(c);
                    }
                }
                // Drop anything up to the separator.
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                }
            }
            _ => {
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                }
            }
        }
        if !key.is_empty() {
            pairs.push((key, value.trim().to_owned()));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    pairs
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
    fn ladder_is_ordered_by_strength() {
        assert!(EncryptionLevel::NotSupported < EncryptionLevel::Off);
        assert!(EncryptionLevel::Off < EncryptionLevel::Required);
        assert!(EncryptionLevel::Required < EncryptionLevel::Strict);
        assert_eq!(
            EncryptionLevel::from(tiberius::EncryptionLevel::On),
            EncryptionLevel::Required
        );
        for level in EncryptionLevel::LADDER {
            assert_eq!(EncryptionLevel::from(level.to_tiberius()), level);
        }
    }

    #[test]
    fn offers_map_to_rungs() {
        assert_eq!(
            EncryptionLevel::from_offer(true, Some(3)),
            Some(EncryptionLevel::Strict)
        );
        assert_eq!(
            EncryptionLevel::from_offer(false, Some(2)),
            Some(EncryptionLevel::NotSupported)
        );
        assert_eq!(
            EncryptionLevel::from_offer(false, Some(0)),
            Some(EncryptionLevel::Off)
        );
        assert_eq!(
            EncryptionLevel::from_offer(false, Some(1)),
            Some(EncryptionLevel::Required)
        );
        assert_eq!(
            EncryptionLevel::from_offer(false, Some(0x83)),
            Some(EncryptionLevel::Required)
        );
        assert_eq!(EncryptionLevel::from_offer(false, Some(9)), None);
        assert_eq!(EncryptionLevel::from_offer(false, None), None);
    }

    #[test]
    fn ado_string_fields_we_need() {
        let r = ConnectRequest::from_ado_string(
            "Server=tcp:db.example.com,14330;User Id=sa;Password=\"p;encrypt=strict\";Encrypt=false;TrustServerCertificate=true;Database=shop",
        )
        .unwrap();
        assert_eq!(r.host(), "db.example.com");
        assert_eq!(r.port(), 14330);
        assert_eq!(r.encryption(), EncryptionLevel::Off);
        assert_eq!(r.trust(), &TrustSetting::TrustAll);
        assert_eq!(r.database(), Some("shop"));
        let debug = format!("{r:?}");
        assert!(!debug.contains("p;encrypt"), "{debug}");

        let r = ConnectRequest::from_ado_string("server=tcp:h\\INST,1500;encrypt=strict").unwrap();
        assert_eq!(r.instance(), Some("INST"));
        assert_eq!(r.port(), 1500);
        assert_eq!(r.encryption(), EncryptionLevel::Strict);

        let r = ConnectRequest::from_ado_string("server=tcp:h;TrustServerCertificateCA=/x/ca.pem")
            .unwrap();
        assert_eq!(r.encryption(), EncryptionLevel::Required);
        assert_eq!(r.trust(), &TrustSetting::CaFile(PathBuf::from("/x/ca.pem")));
        assert_eq!(r.port(), 1433);

        assert!(ConnectRequest::from_ado_string("server=tcp:h;encrypt=maybe").is_err());
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
