//! Emulator settings: encryption posture, TLS versions, certificate, version, logins, faults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::fault::{Fault, FaultRule};
use crate::route::{Route, RouteRule};
use crate::schedule::Schedule;

/// The server's encryption setting, as a SQL Server administrator would set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncryptionSetting {
    /// No TLS at all: the NOT_SUP column of the MS-TDS matrix (not a real SQL Server ≥ 2005
    /// posture, but proxies such as Teleport use it). A TLS-first client gets the legacy
    /// treatment ([`TlsFirstResponse`]).
    None,
    /// SQL Server's default: TLS available, not forced (the OFF column). TDS 7 only.
    #[default]
    Off,
    /// "Force Encryption = Yes" (the ON column). TDS 7 only.
    Force,
    /// "Force Strict Encryption = Yes": TDS 8.0 only. A plaintext PRELOGIN (first byte 0x12) is
    /// read and answered with a TCP reset, no reply.
    StrictOnly,
    /// TDS 8.0 and TDS 7 on one port, decided on the first byte: 0x16 → strict,
    /// 0x12 → TDS 7 with the OFF column (SQL Server 2022 with strict available, not forced).
    StrictAndLegacy,
}

impl EncryptionSetting {
    /// The text form used by [`FromStr`] and the command line.
    pub fn name(self) -> &'static str {
        match self {
            EncryptionSetting::None => "none",
            EncryptionSetting::Off => "off",
            EncryptionSetting::Force => "force",
            EncryptionSetting::StrictOnly => "strict-only",
            EncryptionSetting::StrictAndLegacy => "strict-and-legacy",
        }
    }

    /// Whether a TLS-first (TDS 8.0 strict) connection is accepted.
    pub fn accepts_strict(self) -> bool {
        matches!(
            self,
            EncryptionSetting::StrictOnly | EncryptionSetting::StrictAndLegacy
        )
    }

    /// All settings, in a stable order (handy for table-driven tests).
    pub const ALL: [EncryptionSetting; 5] = [
        EncryptionSetting::None,
        EncryptionSetting::Off,
        EncryptionSetting::Force,
        EncryptionSetting::StrictOnly,
        EncryptionSetting::StrictAndLegacy,
    ];
}

impl fmt::Display for EncryptionSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no [`EncryptionSetting`], [`TlsProtocol`], [`TlsFirstResponse`],
/// [`Termination`], [`CertificateFlaw`] or [`ServerVersion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}")]
pub struct SettingParseError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

impl FromStr for EncryptionSetting {
    type Err = SettingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EncryptionSetting::ALL
            .into_iter()
            .find(|setting| setting.name() == s.trim())
            .ok_or_else(|| SettingParseError {
                what: "encryption setting",
                input: s.to_owned(),
                expected: "none, off, force, strict-only or strict-and-legacy",
            })
    }
}

/// A TLS protocol version the emulator may negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsProtocol {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl FromStr for TlsProtocol {
    type Err = SettingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1.2" | "tls1.2" => Ok(TlsProtocol::Tls12),
            "1.3" | "tls1.3" => Ok(TlsProtocol::Tls13),
            _ => Err(SettingParseError {
                what: "TLS version",
                input: s.to_owned(),
                expected: "1.2 or 1.3",
            }),
        }
    }
}

/// What a server that does not accept TDS 8.0 does when the first bytes are a TLS ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsFirstResponse {
    /// Say nothing and hold the connection (what SQL Server 2019 does; clients time out).
    #[default]
    Hang,
    /// Close (FIN), as MS-TDS 3.3.5.1 allows for an unexpected first byte.
    Close,
    /// Reset.
    Reset,
}

impl FromStr for TlsFirstResponse {
    type Err = SettingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "hang" => Ok(TlsFirstResponse::Hang),
            "close" => Ok(TlsFirstResponse::Close),
            "reset" => Ok(TlsFirstResponse::Reset),
            _ => Err(SettingParseError {
                what: "TLS-first response",
                input: s.to_owned(),
                expected: "hang, close or reset",
            }),
        }
    }
}

/// How the server ends a connection the MS-TDS 2.2.6.5 encryption matrix terminates (the reply
/// is sent first). The spec does not say; the 10054 reports show resets, so that is the
/// default, and an orderly close is the variant a test asks for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Termination {
    /// TCP reset after the client's next bytes (bounded by
    /// [`EmulatorConfig::terminate_grace`]): the client reads ECONNRESET (10054).
    #[default]
    Reset,
    /// Orderly close (FIN) right after the reply: the client reads EOF.
    Fin,
}

impl FromStr for Termination {
    type Err = SettingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "reset" | "rst" => Ok(Termination::Reset),
            "fin" | "close" => Ok(Termination::Fin),
            _ => Err(SettingParseError {
                what: "termination",
                input: s.to_owned(),
                expected: "reset or fin",
            }),
        }
    }
}

/// The product version the server reports in PRELOGIN and LOGINACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerVersion {
    /// Major (16 = SQL Server 2022).
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build number.
    pub build: u16,
}

impl Default for ServerVersion {
    /// 16.0.4220 (a SQL Server 2022 cumulative update).
    fn default() -> Self {
        ServerVersion {
            major: 16,
            minor: 0,
            build: 4220,
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

impl FromStr for ServerVersion {
    type Err = SettingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SettingParseError {
            what: "server version",
            input: s.to_owned(),
            expected: "MAJOR.MINOR.BUILD such as 16.0.4220 (major 9-255)",
        };
        let mut parts = s.trim().split('.');
        let major: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let minor: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let build: u16 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        if parts.next().is_some() || major < 9 {
            return Err(err());
        }
        Ok(ServerVersion {
            major,
            minor,
            build,
        })
    }
}

/// Where the server certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CertificateSource {
    /// Generate at start-up: a CA, and a leaf for "localhost" and 127.0.0.1 signed by it.
    #[default]
    Generated,
    /// Load from PEM files.
    Pem {
        /// The certificate chain, leaf first.
        chain: PathBuf,
        /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
        /// The CA certificate clients should trust; `None` exports the last certificate of
        /// `chain`.
        ca: Option<PathBuf>,
    },
}

/// A defect of the generated server certificate that clients validating it reject, while the
/// CA stays the one they trust: the certificate errors real servers produce (an expired
/// self-provisioned certificate, a certificate issued for another name).
///
/// A certificate signed with a hash clients reject (SHA-1, MD5) cannot be generated here: the
/// crypto provider signs with SHA-256 and up only. Load one from PEM instead
/// ([`CertificateSource::Pem`]); the crate README shows the `openssl` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateFlaw {
    /// The leaf expired long ago (valid 2000-01-01 to 2001-01-01).
    Expired,
    /// The leaf names `wrong-host.invalid` only: neither `localhost` nor 127.0.0.1.
    WrongName,
}

impl FromStr for CertificateFlaw {
    type Err = SettingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "expired" => Ok(CertificateFlaw::Expired),
            "wrong-name" => Ok(CertificateFlaw::WrongName),
            _ => Err(SettingParseError {
                what: "certificate flaw",
                input: s.to_owned(),
                expected: "expired or wrong-name",
            }),
        }
    }
}

/// A login the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// SQL login name.
    pub user: String,
    password: String,
}

impl Login {
    /// A login from a user name and password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Login {
            user: user.into(),
            password: password.into(),
        }
    }

    pub(crate) fn matches(&self, user: &str, password: &str) -> bool {
        self.user.eq_ignore_ascii_case(user) && self.password == password
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything the emulator needs to start. Builder-style: every setter takes and returns `Self`.
///
/// Defaults: listen on `127.0.0.1:0`, encryption [`EncryptionSetting::Off`], TLS 1.2 only in
/// TDS 7 (as SQL Server), TLS 1.2 and 1.3 in strict mode, version 16.0.4220, login
/// `sa` / `Password123!`, database `master`, server name `EMU`, a generated certificate,
/// [`TlsFirstResponse::Hang`], matrix terminations as resets ([`Termination::Reset`]), no
/// faults, no routing.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) encryption: EncryptionSetting,
    pub(crate) tds7_tls: Vec<TlsProtocol>,
    pub(crate) strict_tls: Vec<TlsProtocol>,
    pub(crate) version: ServerVersion,
    pub(crate) logins: Vec<Login>,
    pub(crate) databases: Vec<String>,
    pub(crate) server_name: String,
    pub(crate) certificate: CertificateSource,
    pub(crate) certificate_flaw: Option<CertificateFlaw>,
    pub(crate) tls_first_response: TlsFirstResponse,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) routing: Option<RouteRule>,
    pub(crate) terminate_grace: Duration,
    pub(crate) termination: Termination,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            encryption: EncryptionSetting::Off,
            tds7_tls: vec![TlsProtocol::Tls12],
            strict_tls: vec![TlsProtocol::Tls12, TlsProtocol::Tls13],
            version: ServerVersion::default(),
            logins: vec![Login::new("sa", "Password123!")],
            databases: vec!["master".to_owned()],
            server_name: "EMU".to_owned(),
            certificate: CertificateSource::Generated,
            certificate_flaw: None,
            tls_first_response: TlsFirstResponse::Hang,
            faults: Vec::new(),
            routing: None,
            terminate_grace: Duration::from_secs(2),
            termination: Termination::Reset,
        }
    }
}

impl EmulatorConfig {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The server's encryption setting.
    pub fn encryption(mut self, setting: EncryptionSetting) -> Self {
        self.encryption = setting;
        self
    }

    /// TLS versions offered in TDS 7 (TLS wrapped in PRELOGIN packets). Default: 1.2 only, like
    /// SQL Server. With 1.3 the emulator sends no session tickets (they would be wrapped after
    /// the client switched to raw TLS). An empty list keeps the default.
    pub fn tds7_tls_versions(mut self, versions: &[TlsProtocol]) -> Self {
        if !versions.is_empty() {
            self.tds7_tls = versions.to_vec();
        }
        self
    }

    /// TLS versions offered in TDS 8.0 strict mode. Default: 1.2 and 1.3. An empty list keeps
    /// the default.
    pub fn strict_tls_versions(mut self, versions: &[TlsProtocol]) -> Self {
        if !versions.is_empty() {
            self.strict_tls = versions.to_vec();
        }
        self
    }

    /// The product version reported in PRELOGIN and LOGINACK.
    pub fn version(mut self, version: ServerVersion) -> Self {
        self.version = version;
        self
    }

    /// Replaces the accepted logins with this single one.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.logins = vec![Login::new(user, password)];
        self
    }

    /// Accepts one more login.
    pub fn add_login(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.logins.push(Login::new(user, password));
        self
    }

    /// Accepts one more database name (`master` is always accepted).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.databases.push(name.into());
        self
    }

    /// The server name used in INFO and ERROR tokens (default `EMU`).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// Where the certificate comes from (default: generated).
    pub fn certificate(mut self, source: CertificateSource) -> Self {
        self.certificate = source;
        self
    }

    /// Generates the server certificate with this flaw (default: none). Only for
    /// [`CertificateSource::Generated`]; a loaded certificate is served as it is.
    pub fn certificate_flaw(mut self, flaw: CertificateFlaw) -> Self {
        self.certificate_flaw = Some(flaw);
        self
    }

    /// What a server that does not accept TDS 8.0 does with a TLS-first client (default: hang).
    pub fn tls_first_response(mut self, response: TlsFirstResponse) -> Self {
        self.tls_first_response = response;
        self
    }

    /// Adds a fault rule. Rules are kept in order; for a given point of a connection the first
    /// rule whose schedule fires wins.
    pub fn fault(mut self, fault: Fault, schedule: Schedule) -> Self {
        self.faults.push(FaultRule::new(fault, schedule));
        self
    }

    /// Adds an already built (or parsed) fault rule.
    pub fn fault_rule(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }

    /// Routes logins to another server, as a gateway does: a login that would succeed, on a
    /// connection the schedule picks, is answered with LOGINACK, an ENVCHANGE routing token
    /// (MS-TDS 2.2.7.9, type 20) naming `route`, and DONE; then the server closes. tiberius
    /// returns `Error::Routing { host, port }` from `Client::connect`.
    ///
    /// Per the spec the token goes only to clients that can read it: TDS 7.4 and later, or
    /// TDS 7.1-7.3 with the ReadOnlyIntent flag; other clients log in here normally. Replaces
    /// any earlier route. See [`route`](crate::route).
    pub fn route(self, route: Route, schedule: Schedule) -> Self {
        self.route_rule(RouteRule::new(route, schedule))
    }

    /// Routes logins per an already built (or parsed, `HOST:PORT[@SCHEDULE]`) rule; see
    /// [`route`](Self::route).
    pub fn route_rule(mut self, rule: RouteRule) -> Self {
        self.routing = Some(rule);
        self
    }

    /// How long the server waits, at most, for the client's next bytes (or its close) after
    /// sending a PRELOGIN reply that must be followed by a reset (a matrix termination, or the
    /// `reset-after-prelogin-reply` fault). The reset then meets the client while it waits for
    /// an answer, so it reads ECONNRESET (not EPIPE on a write), and the reply itself is never
    /// destroyed in flight. Clients send or close at once, so this rarely waits. Default 2 s.
    pub fn terminate_grace(mut self, grace: Duration) -> Self {
        self.terminate_grace = grace;
        self
    }

    /// How a matrix termination ends the connection after the reply (default
    /// [`Termination::Reset`], as the 10054 reports show; [`Termination::Fin`] for the orderly
    /// close MS-TDS equally allows).
    pub fn matrix_termination(mut self, termination: Termination) -> Self {
        self.termination = termination;
        self
    }

    /// The configured encryption setting.
    pub fn encryption_setting(&self) -> EncryptionSetting {
        self.encryption
    }

    /// The configured listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub(crate) fn knows_database(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("master")
            || self
                .databases
                .iter()
                .any(|db| db.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        for setting in EncryptionSetting::ALL {
            assert_eq!(setting.name().parse(), Ok(setting));
        }
        assert!("forced".parse::<EncryptionSetting>().is_err());
        assert_eq!("fin".parse(), Ok(Termination::Fin));
        assert_eq!("wrong-name".parse(), Ok(CertificateFlaw::WrongName));
        assert_eq!("expired".parse(), Ok(CertificateFlaw::Expired));
        assert!("sha1".parse::<CertificateFlaw>().is_err());
        assert_eq!("reset".parse(), Ok(Termination::Reset));
        assert!("rest".parse::<Termination>().is_err());
        assert_eq!("16.0.4220".parse(), Ok(ServerVersion::default()));
        assert!("8.0.1".parse::<ServerVersion>().is_err());
        assert_eq!("1.3".parse(), Ok(TlsProtocol::Tls13));
    }

    #[test]
    fn debug_hides_passwords() {
        let text = format!("{:?}", EmulatorConfig::default());
        assert!(!text.contains("Password123!"));
    }
}
