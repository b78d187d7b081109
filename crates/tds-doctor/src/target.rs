//! The server to diagnose: `HOST[,PORT]` as SQL Server tools write it.

use std::fmt;

/// SQL Server's default TCP port.
pub const DEFAULT_PORT: u16 = 1433;

/// A server address: host, TCP port, and optionally the instance name sent in PRELOGIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    instance: Option<String>,
}

/// A `HOST[,PORT]` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(&'static str);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TargetError {}

impl Target {
    /// A target at `host:port` without an instance name.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Target {
            host: host.into(),
            port,
            instance: None,
        }
    }

    /// Parses `HOST`, `HOST,PORT` (SQL Server's form), `HOST:PORT`, `[IPV6]:PORT`,
    /// `HOST\INSTANCE,PORT`, with an optional `tcp:` prefix. The port defaults to 1433. A named
    /// instance needs its port: SQL Browser is not queried.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let text = text.trim();
        let text = text.strip_prefix("tcp:").unwrap_or(text);
        let (address, port) = match text.rsplit_once(',') {
            Some((address, port)) => (address, Some(port)),
            None => split_colon_port(text),
        };
        let port = match port {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(TargetError("the port is not a number between 1 and 65535"))?,
            None => DEFAULT_PORT,
        };
        let (host, instance) = match address.split_once('\\') {
            Some((host, instance)) => (host, Some(instance.trim().to_owned())),
            None => (address, None),
        };
        if instance.is_some() && !text.contains(',') && port == DEFAULT_PORT {
            return Err(TargetError(
                "a named instance needs its TCP port (HOST\\INSTANCE,PORT): SQL Browser is not queried",
            ));
        }
        let host = host.trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(TargetError("the host name is empty"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            instance: instance.filter(|i| !i.is_empty()),
        })
    }

    /// Sets the instance name sent in the PRELOGIN INSTOPT option.
    pub fn with_instance(mut self, instance: Option<String>) -> Self {
        if instance.is_some() {
            self.instance = instance;
        }
        self
    }

    /// The host name or IP literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance name, if any.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(instance) = &self.instance {
            write!(f, "\\{instance}")?;
        }
        write!(f, ",{}", self.port)
    }
}

/// `host:port` or `[v6]:port`; a bare IPv6 literal (several colons) has no port.
fn split_colon_port(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        return match text.rsplit_once("]:") {
            Some((host, port)) => (host.strip_prefix('[').unwrap_or(host), Some(port)),
            None => (text, None),
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_sql_server_tools_use() {
        let t = Target::parse("db.example.com").unwrap();
        assert_eq!(
            (t.host(), t.port(), t.instance()),
            ("db.example.com", 1433, None)
        );
        let t = Target::parse("tcp:db,14330").unwrap();
        assert_eq!((t.host(), t.port()), ("db", 14330));
        let t = Target::parse("127.0.0.1:5000").unwrap();
        assert_eq!((t.host(), t.port()), ("127.0.0.1", 5000));
        let t = Target::parse("[::1]:5000").unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 5000));
        let t = Target::parse("::1").unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 1433));
        let t = Target::parse("db\\SALES,50123").unwrap();
        assert_eq!(
            (t.host(), t.port(), t.instance()),
            ("db", 50123, Some("SALES"))
        );
        assert_eq!(t.to_string(), "db\\SALES,50123");
    }

    #[test]
    fn rejects_what_cannot_be_probed() {
        assert!(Target::parse("").is_err());
        assert!(Target::parse("db,notaport").is_err());
        assert!(Target::parse("db,0").is_err());
        assert!(Target::parse("db\\SALES").is_err());
    }
}
