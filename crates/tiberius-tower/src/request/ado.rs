//! ADO.NET connection strings, read with tiberius's grammar.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::level::EncryptionLevel;

use super::TrustSetting;

/// Errors building a [`ConnectRequest`](crate::ConnectRequest) from a
/// connection string. Messages name the key, never the value, so a password
/// cannot leak through them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// tiberius rejected the connection string.
    #[error("invalid connection string: {0}")]
    Tiberius(#[source] tiberius::error::Error),
    /// A value this crate reads itself is invalid (the message names the key).
    #[error("invalid connection string: {0}")]
    Invalid(&'static str),
    /// A keyword neither SqlClient nor this crate knows (a typo, usually).
    /// The keyword is shown only when it looks like one (letters, digits and
    /// spaces, at most 40 characters), so a mangled pair cannot echo a secret.
    #[error("invalid connection string: unknown keyword `{0}`")]
    UnknownKeyword(String),
    /// A SqlClient keyword this crate does not support, and what to do instead.
    #[error("invalid connection string: `{keyword}` is not supported: {instead}")]
    UnsupportedKeyword {
        /// The keyword, as SqlClient documents it.
        keyword: &'static str,
        /// What to use instead.
        instead: &'static str,
    },
    /// A named instance without a port was given where SQL Browser cannot be
    /// asked (a synchronous parse): use
    /// [`ConnectionString::resolve`](crate::ConnectionString::resolve), or
    /// name the port.
    #[error(
        "invalid connection string: server: a named instance without its TCP port \
         (`host\\instance`) needs SQL Browser: read it with `ConnectionString::resolve`, \
         or give the port (`host\\instance,port`)"
    )]
    NeedsBrowser,
    /// SQL Browser could not say which port the named instance listens on.
    #[error("named instance lookup failed: {0}")]
    Browser(#[source] super::browser::BrowserError),
}

/// What a connection string says, split into the request's fields.
pub(super) struct Parsed {
    pub(super) base: tiberius::Config,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) instance: Option<String>,
    pub(super) database: Option<String>,
    pub(super) encryption: EncryptionLevel,
    pub(super) trust: TrustSetting,
    /// `Connect Timeout` / `Connection Timeout` / `Timeout`.
    pub(super) connect_timeout: Option<Duration>,
    /// `ConnectRetryCount`.
    pub(super) retry_count: Option<u32>,
    /// `ConnectRetryInterval`.
    pub(super) retry_interval: Option<Duration>,
    /// A named instance without a port: SQL Browser must be asked.
    pub(super) browser_needed: bool,
}

/// Keywords tiberius 0.13 reads (it ignores every other key).
const TIBERIUS_KEYWORDS: &[&str] = &[
    "server",
    "data source",
    "uid",
    "username",
    "user",
    "user id",
    "password",
    "pwd",
    "integratedsecurity",
    "integrated security",
    "database",
    "initial catalog",
    "databasename",
    "application name",
    "applicationname",
    "trustservercertificate",
    "trustservercertificateca",
    "hostnameincertificate",
    "hostname in certificate",
    "workstationid",
    "workstation id",
    "encrypt",
    "applicationintent",
    "multisubnetfailover",
];

/// SqlClient keywords this crate reads itself (with their SqlClient
/// synonyms, written with and without spaces).
const CONNECT_TIMEOUT: &[&str] = &["connect timeout", "connection timeout", "timeout"];
const RETRY_COUNT: &[&str] = &["connectretrycount", "connect retry count"];
const RETRY_INTERVAL: &[&str] = &["connectretryinterval", "connect retry interval"];
/// SqlClient keywords accepted without effect: they describe what this crate
/// does anyway (it never echoes a password; it has no MARS, checked below).
const WITHOUT_EFFECT: &[&str] = &[
    "persist security info",
    "persistsecurityinfo",
    "multipleactiveresultsets",
    "multiple active result sets",
];

/// SqlClient keywords that would change behaviour this crate cannot give,
/// rejected by name rather than silently ignored.
const UNSUPPORTED: &[(&str, &str, &str)] = &[
    ("address", "Address", "use `Server`"),
    ("addr", "Addr", "use `Server`"),
    ("network address", "Network Address", "use `Server`"),
    (
        "failover partner",
        "Failover Partner",
        "database mirroring failover is not implemented",
    ),
    (
        "pooling",
        "Pooling",
        "pool with bb8 or deadpool (features `bb8`, `deadpool`)",
    ),
    (
        "max pool size",
        "Max Pool Size",
        "set the size on the bb8 or deadpool pool",
    ),
    (
        "min pool size",
        "Min Pool Size",
        "set `min_idle` on the bb8 pool",
    ),
    (
        "connection lifetime",
        "Connection Lifetime",
        "set `max_lifetime` on the bb8 pool",
    ),
    (
        "load balance timeout",
        "Load Balance Timeout",
        "set `max_lifetime` on the bb8 pool",
    ),
    (
        "authentication",
        "Authentication",
        "pass an `AuthMethod` to `ConnectRequest::builder`",
    ),
    (
        "packet size",
        "Packet Size",
        "not configurable through tiberius",
    ),
    (
        "command timeout",
        "Command Timeout",
        "bound each query with `tokio::time::timeout`",
    ),
    (
        "column encryption setting",
        "Column Encryption Setting",
        "Always Encrypted is not supported by tiberius",
    ),
    (
        "user instance",
        "User Instance",
        "not supported by tiberius",
    ),
    (
        "attachdbfilename",
        "AttachDBFilename",
        "not supported by tiberius",
    ),
    (
        "network library",
        "Network Library",
        "only TCP is supported",
    ),
    (
        "enlist",
        "Enlist",
        "distributed transactions are not supported",
    ),
    // SqlClient spellings tiberius does not read: it would ignore them.
    (
        "application intent",
        "Application Intent",
        "write `ApplicationIntent`",
    ),
    (
        "multi subnet failover",
        "Multi Subnet Failover",
        "write `MultiSubnetFailover`",
    ),
    (
        "trust server certificate",
        "Trust Server Certificate",
        "write `TrustServerCertificate`",
    ),
];

/// Parses `s` (see [`ConnectRequest::from_ado_string`](crate::ConnectRequest::from_ado_string)).
pub(super) fn parse(s: &str) -> Result<Parsed, RequestError> {
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
    // tiberius would connect to 1434, SQL Browser's UDP port, and every
    // attempt would be refused and retried until the deadline: the caller
    // asks SQL Browser instead, or reports it.
    let browser_needed = instance.is_some() && !explicit_port;
    if named.is_some() && instance.is_none() && !explicit_port {
        return Err(RequestError::Invalid(
            "server: `host\\` names no instance and no port",
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

    check_keywords(&pairs)?;
    let connect_timeout = match get(CONNECT_TIMEOUT) {
        None => None,
        // SqlClient: 0 waits forever. Every connect here is bounded.
        Some(v) => match v.trim().parse::<u32>() {
            Ok(0) | Err(_) => {
                return Err(RequestError::Invalid(
                    "connect timeout: expected whole seconds, 1 or more (0, wait forever, is not supported)",
                ));
            }
            Ok(seconds) => Some(Duration::from_secs(u64::from(seconds))),
        },
    };
    // SqlClient's ranges: count 0..=255 (default 1), interval 1..=60 s (default 10).
    let retry_count = match get(RETRY_COUNT) {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(count @ 0..=255) => Some(count),
            _ => {
                return Err(RequestError::Invalid(
                    "connectretrycount: expected a whole number from 0 to 255",
                ));
            }
        },
    };
    let retry_interval = match get(RETRY_INTERVAL) {
        None => None,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(seconds @ 1..=60) => Some(Duration::from_secs(seconds)),
            _ => {
                return Err(RequestError::Invalid(
                    "connectretryinterval: expected whole seconds from 1 to 60",
                ));
            }
        },
    };

    Ok(Parsed {
        base,
        host,
        port,
        instance,
        database,
        encryption,
        trust,
        connect_timeout,
        retry_count,
        retry_interval,
        browser_needed,
    })
}

/// Every key is one tiberius or this crate reads, or a SqlClient keyword
/// rejected by name. Values are never part of an error.
fn check_keywords(pairs: &HashMap<String, String>) -> Result<(), RequestError> {
    // Sorted, so the error names the same keyword on every run.
    let mut keys: Vec<&String> = pairs.keys().collect();
    keys.sort();
    for key in keys {
        let key = key.as_str();
        if let Some((_, keyword, instead)) = UNSUPPORTED.iter().find(|(k, _, _)| *k == key) {
            return Err(RequestError::UnsupportedKeyword { keyword, instead });
        }
        let known = TIBERIUS_KEYWORDS.contains(&key)
            || CONNECT_TIMEOUT.contains(&key)
            || RETRY_COUNT.contains(&key)
            || RETRY_INTERVAL.contains(&key)
            || WITHOUT_EFFECT.contains(&key);
        if !known {
            let shown = key.len() <= 40
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '_');
            return Err(RequestError::UnknownKeyword(if shown {
                key.to_owned()
            } else {
                "<not shown: not a keyword's shape>".to_owned()
            }));
        }
    }
    let mars = ["multipleactiveresultsets", "multiple active result sets"]
        .iter()
        .find_map(|k| pairs.get(*k));
    if let Some(mars) = mars {
        match mars.trim().to_ascii_lowercase().as_str() {
            "false" | "no" => {}
            "true" | "yes" => {
                return Err(RequestError::UnsupportedKeyword {
                    keyword: "MultipleActiveResultSets",
                    instead: "tiberius has no MARS; open one connection per concurrent query",
                });
            }
            _ => {
                return Err(RequestError::Invalid(
                    "multipleactiveresultsets: expected true or false",
                ));
            }
        }
    }
    Ok(())
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
    use crate::ConnectRequest;

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
        assert!(matches!(
            ConnectRequest::from_ado_string("Server=h\\SQLEXPRESS"),
            Err(RequestError::NeedsBrowser)
        ));
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
}
