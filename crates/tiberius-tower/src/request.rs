//! What one logical connect asks for: [`ConnectRequest`] and its builder.
//!
//! `tiberius::Config` does not expose its host, port, instance, encryption
//! level or trust setting, yet the policy must read the first four and change
//! the encryption level and address between attempts. So the request keeps
//! those fields itself and rebuilds a `tiberius::Config` for every attempt
//! from a base configuration that holds everything else (authentication,
//! database, application name, certificate trust).

use std::collections::HashMap;
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
    /// When the whole logical connect must be over (set by the middleware
    /// for each attempt); the connector clips its own timeouts to it.
    deadline: Option<tokio::time::Instant>,
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
    /// them private, with tiberius's own grammar (quotes, `{…}` braces,
    /// `==`), so both always read the same value. A missing `Encrypt` means
    /// Required, as in tiberius.
    ///
    /// # Errors
    ///
    /// [`RequestError::Tiberius`] when tiberius rejects the string (syntax,
    /// a non-boolean `TrustServerCertificate`, both `TrustServerCertificate`
    /// and `TrustServerCertificateCA`, an unknown `Encrypt` value, `strict`
    /// without the `tds80` feature...). [`RequestError::Invalid`] when no
    /// `Server`/`Data Source` is given or it is empty (tiberius would quietly
    /// use localhost), or a named instance comes without its port
    /// (`host\instance,port`: SQL Browser is not queried, and tiberius's
    /// default, 1434, is the Browser's port, not the instance's). Error
    /// messages name the key, never the value.
    pub fn from_ado_string(s: &str) -> Result<Self, RequestError> {
        let base = tiberius::Config::from_ado_string(s).map_err(RequestError::Tiberius)?;
        let pairs = parse_ado_pairs(s);
        // The keys tiberius reads, in its order of preference.
        let get = |keys: &[&str]| keys.iter().find_map(|k| pairs.get(*k)).map(String::as_str);

        // tiberius would connect to localhost: a connection string that names
        // no server is a mistake to report, not a default to guess.
        let server = get(&["server", "data source"])
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .ok_or(RequestError::Invalid(
                "server: no `Server` (or `Data Source`) is set",
            ))?;
        let server = server.strip_prefix("tcp:").unwrap_or(server);
        let explicit_port = server.split(',').nth(1).is_some();

        // `get_addr` is public and already applies tiberius's defaults
        // (`.` and `(local)` mean localhost); the port is after the last colon
        // even for an IPv6 literal.
        let addr = base.get_addr();
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
            .ok_or(RequestError::Invalid("server: the port is not a number"))?;
        // `[::1]` is how connection strings quote an IPv6 literal; the socket
        // address wants it bare.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        if host.is_empty() {
            return Err(RequestError::Invalid("server: the host name is empty"));
        }

        let named = server.split(',').next().and_then(|h| h.split_once('\\'));
        let instance = named
            .map(|(_, name)| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        if named.is_some() && !explicit_port {
            // tiberius would connect to 1434, SQL Browser's UDP port, and
            // every attempt would be refused and retried until the deadline.
            return Err(RequestError::Invalid(
                "server: a named instance needs its TCP port (`host\\instance,port`); \
                 SQL Browser is not queried",
            ));
        }

        // The values tiberius accepts (it has already rejected the others).
        let encryption = match get(&["encrypt"]).map(str::trim) {
            None => EncryptionLevel::Required,
            Some("DANGER_PLAINTEXT") => EncryptionLevel::NotSupported,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "yes" => EncryptionLevel::Required,
                "false" | "no" => EncryptionLevel::Off,
                "strict" => EncryptionLevel::Strict,
                _ => {
                    return Err(RequestError::Invalid(
                        "encrypt: expected true, false, yes, no, strict or DANGER_PLAINTEXT",
                    ));
                }
            },
        };

        let trust_all = matches!(
            get(&["trustservercertificate"]).map(|v| v.trim().to_ascii_lowercase()),
            Some(ref v) if v == "true" || v == "yes"
        );
        let trust = match (trust_all, get(&["trustservercertificateca"])) {
            (true, _) => TrustSetting::TrustAll,
            // Verbatim, as tiberius reads it.
            (false, Some(path)) => TrustSetting::CaFile(PathBuf::from(path)),
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
            deadline: None,
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
        // The request's field is the one source of the instance name (a routing redirect
        // clears it). tiberius cannot unset a name its base config got from a connection
        // string, and an empty name is the same PRELOGIN INSTOPT on the wire (a lone NUL).
        config.instance_name(self.instance.as_deref().unwrap_or(""));
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

    pub(crate) fn set_deadline(&mut self, deadline: tokio::time::Instant) {
        self.deadline = Some(deadline);
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
            deadline: None,
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

/// Splits an ADO.NET connection string into lowercase keys and unescaped
/// values, by the grammar tiberius 0.13 parses it with (so both read the same
/// value for every key): pairs separated by `;`, the key up to the first
/// single `=` (`==` is a literal `=`), values quoted with `'…'` or `"…"`
/// (a doubled quote is a literal quote) or with `{…}` (to the first `}`),
/// unquoted values trimmed. Duplicate keys: the last wins. A password
/// holding `;Encrypt=false` inside quotes or braces is never read as a key.
///
/// tiberius has already accepted the string when this runs; on input it
/// would reject, this stops at the first malformed pair and never panics.
fn parse_ado_pairs(s: &str) -> HashMap<String, String> {
    let mut pairs = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        loop {
            match chars.next() {
                None | Some(';') => return pairs,
                Some('=') if chars.next_if_eq(&'=').is_some() => key.push('='),
                Some('=') => break,
                Some(c) => key.push(c),
            }
        }
        let key = key.trim().to_ascii_lowercase();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        match chars.peek().copied() {
            Some(quote @ ('"' | '\'')) => {
                chars.next();
                loop {
                    match chars.next() {
                        None => return pairs,
                        Some(c) if c == quote => {
                            if chars.next_if_eq(&quote).is_some() {
                                value.push(quote);
                            } else {
                                break;
                            }
                        }
                        Some(c) => value.push(c),
                    }
                }
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                }
            }
            Some('{') => {
                chars.next();
                loop {
                    match chars.next() {
                        None => return pairs,
                        Some('}') => break,
                        Some(c) => value.push(c),
                    }
                }
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
                value.truncate(value.trim_end().len());
            }
        }
        if !key.is_empty() {
            pairs.insert(key, value);
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

        assert!(matches!(
            ConnectRequest::from_ado_string("server=tcp:h;encrypt=maybe"),
            Err(RequestError::Tiberius(_))
        ));
    }

    #[test]
    fn a_braced_or_quoted_password_is_never_read_as_keys() {
        // tiberius reads `{…}` as one value: the password. Reading the `;`
        // inside it as a separator would lower the encryption below what the
        // user configured, and report a trust tiberius does not apply.
        for s in [
            "Server=tcp:h,1433;Encrypt=true;Password={x;Encrypt=false;}",
            "Server=tcp:h,1433;Encrypt=true;Password={x;Encrypt=false;TrustServerCertificate=true}",
            "Server=tcp:h,1433;Encrypt=true;Password='x;Encrypt=false;'",
            "Server=tcp:h,1433;Encrypt=true;Password=\"x;Encrypt=\"\"false\"\";\"",
        ] {
            let r = ConnectRequest::from_ado_string(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(r.encryption(), EncryptionLevel::Required, "{s}");
            assert_eq!(r.trust(), &TrustSetting::SystemRoots, "{s}");
            assert_eq!(r.host(), "h");
        }
    }

    #[test]
    fn ado_string_values_tiberius_accepts() {
        let level = |s: &str| ConnectRequest::from_ado_string(s).unwrap().encryption();
        assert_eq!(level("Server=h;Encrypt=strict"), EncryptionLevel::Strict);
        assert_eq!(level("Server=h;Encrypt=STRICT"), EncryptionLevel::Strict);
        assert_eq!(level("Server=h;Encrypt=yes"), EncryptionLevel::Required);
        assert_eq!(level("Server=h;Encrypt=no"), EncryptionLevel::Off);
        assert_eq!(
            level("Server=h;Encrypt=DANGER_PLAINTEXT"),
            EncryptionLevel::NotSupported
        );
        let r = ConnectRequest::from_ado_string("Server=h;TrustServerCertificate=yes").unwrap();
        assert_eq!(r.trust(), &TrustSetting::TrustAll);
        let r = ConnectRequest::from_ado_string("Server=h;TrustServerCertificate=No").unwrap();
        assert_eq!(r.trust(), &TrustSetting::SystemRoots);
        // `Server` wins over `Data Source` whatever the order, as in tiberius.
        let r = ConnectRequest::from_ado_string("Server=a,1500;Data Source=b\\X,1600").unwrap();
        assert_eq!((r.host(), r.port(), r.instance()), ("a", 1500, None));
        let r = ConnectRequest::from_ado_string("Data Source=b\\X,1600").unwrap();
        assert_eq!((r.host(), r.port(), r.instance()), ("b", 1600, Some("X")));
        let r = ConnectRequest::from_ado_string("Server=(local),1500").unwrap();
        assert_eq!(r.host(), "localhost");
        let r = ConnectRequest::from_ado_string("Server=[::1],1433").unwrap();
        assert_eq!(
            r.host(),
            "::1",
            "an IPv6 literal is usable as a socket address"
        );
    }

    #[test]
    fn ado_string_mistakes_are_clear_errors() {
        let invalid = |s: &str| match ConnectRequest::from_ado_string(s) {
            Err(RequestError::Invalid(why)) => why,
            other => panic!("{s}: {other:?}"),
        };
        assert!(invalid("Database=shop;User Id=sa").starts_with("server"));
        assert!(invalid("Server=;Database=shop").starts_with("server"));
        assert!(invalid("Server=  ;Database=shop").starts_with("server"));
        // A named instance without a port: tiberius would use 1434 (SQL
        // Browser), where no TDS listener ever answers.
        assert!(invalid("Server=h\\SQLEXPRESS").contains("port"));
        assert!(invalid("Server=tcp:h\\").contains("port"));
        assert!(ConnectRequest::from_ado_string("Server=h\\SQLEXPRESS,1500").is_ok());

        // tiberius's own rejections, none of which echoes a value.
        for s in [
            "Server=h;Encrypt=maybe;Password=Hunter2Secret",
            "Server=h;TrustServerCertificate=true;TrustServerCertificateCA=/ca.pem;Password=Hunter2Secret",
            "Server=h;Password='Hunter2Secret",
            "Server=h;Password={Hunter2Secret",
            "Server=h;Password",
            "Server=h;TrustServerCertificate=sometimes;Password=Hunter2Secret",
        ] {
            let error = ConnectRequest::from_ado_string(s).expect_err(s);
            assert!(matches!(error, RequestError::Tiberius(_)), "{s}: {error:?}");
            assert!(!error.to_string().contains("Hunter2Secret"), "{error}");
        }
    }

    #[test]
    fn ado_string_parsing_never_panics() {
        // A deterministic sweep over strings made of the characters the
        // grammar cares about.
        const ALPHABET: &[char] = &[
            ';', '=', '\'', '"', '{', '}', ' ', '\\', ',', ':', '[', ']', 's', 'e', 'r', 'v', '1',
        ];
        const KEYS: &[&str] = &["Server=", "Encrypt=", "Data Source=", "Password=", ""];
        let mut state = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                s.push_str(KEYS[state as usize % KEYS.len()]);
                for i in 0..(state % 7) {
                    s.push(ALPHABET[(state.rotate_left(i * 4) as usize) % ALPHABET.len()]);
                }
            }
            let _ = ConnectRequest::from_ado_string(&s);
            let _ = parse_ado_pairs(&s);
        }
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
