//! SQL Server Browser client (MC-SQLR, SSRP over UDP): which TCP port a named
//! instance listens on.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::net::UdpSocket;

/// SQL Browser's UDP port (MC-SQLR 2.1).
const BROWSER_PORT: u16 = 1434;
/// CLNT_UCAST_INST (MC-SQLR 2.2.3): one instance by name.
const CLNT_UCAST_INST: u8 = 0x04;
/// SVR_RESP (MC-SQLR 2.2.5).
const SVR_RESP: u8 = 0x05;
/// MC-SQLR 2.2.3: an instance name is at most 32 bytes.
const MAX_INSTANCE_NAME: usize = 32;
/// Default wait for an answer to each datagram: 1 s. SQL Browser answers at
/// once; UDP is lost rarely on a LAN and a name it does not know is never
/// answered, so a long wait only delays the error.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where and how patiently to ask SQL Browser. `SqlBrowser::new()` asks UDP
/// 1434 on the instance's host, waits 1 s for an answer, and sends the
/// request once more if none came (two datagrams at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlBrowser {
    port: u16,
    timeout: Duration,
}

impl Default for SqlBrowser {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlBrowser {
    /// UDP 1434, 1 s per try, two tries.
    pub fn new() -> Self {
        SqlBrowser {
            port: BROWSER_PORT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The UDP port SQL Browser answers on (tests, port forwards). Default 1434.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// How long to wait for an answer to each of the two datagrams. Default 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The TCP port of `instance` on `host`.
    ///
    /// # Errors
    ///
    /// [`BrowserError`]: the name is not one SQL Browser can be asked about,
    /// no answer came (SQL Browser stays silent for a name it does not know),
    /// the answer does not describe that instance over TCP, or a socket error.
    pub async fn resolve(&self, host: &str, instance: &str) -> Result<u16, BrowserError> {
        let error = |kind| BrowserError {
            kind,
            host: host.to_owned(),
            port: self.port,
            instance: instance.to_owned(),
        };
        if instance.is_empty() || instance.len() > MAX_INSTANCE_NAME || instance.contains('\0') {
            return Err(error(BrowserErrorKind::BadName));
        }
        let mut request = Vec::with_capacity(instance.len() + 2);
        request.push(CLNT_UCAST_INST);
        request.extend_from_slice(instance.as_bytes());
        request.push(0);

        let target = tokio::net::lookup_host((host, self.port))
            .await
            .map_err(|e| error(BrowserErrorKind::Io(e)))?
            .next()
            .ok_or_else(|| {
                error(BrowserErrorKind::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the host name resolved to no address",
                )))
            })?;
        let local = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| error(BrowserErrorKind::Io(e)))?;
        socket
            .connect(target)
            .await
            .map_err(|e| error(BrowserErrorKind::Io(e)))?;
        // MC-SQLR 2.2.5: at most 3 + 1,024 bytes for one instance; a larger
        // datagram is truncated and then fails to parse.
        let mut buf = [0u8; 3 + 1024 + 1];
        for _ in 0..2 {
            socket
                .send(&request)
                .await
                .map_err(|e| error(BrowserErrorKind::Io(e)))?;
            match tokio::time::timeout(self.timeout, socket.recv(&mut buf)).await {
                Err(_) => continue,
                // Linux reports an ICMP port unreachable here: nothing listens.
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(error(BrowserErrorKind::Refused));
                }
                Ok(Err(e)) => return Err(error(BrowserErrorKind::Io(e))),
                Ok(Ok(len)) => {
                    return tcp_port_of(&buf[..len], instance)
                        .ok_or_else(|| error(BrowserErrorKind::NoTcpPort));
                }
            }
        }
        Err(error(BrowserErrorKind::NoAnswer(self.timeout)))
    }
}

/// The TCP port `instance` has in an SVR_RESP, if the reply is well formed
/// and describes it.
fn tcp_port_of(reply: &[u8], instance: &str) -> Option<u16> {
    let (&kind, rest) = reply.split_first()?;
    if kind != SVR_RESP || rest.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let data = rest.get(2..2 + len)?;
    let text = String::from_utf8_lossy(data);
    // Instances are separated by ";;"; within one, keys and values alternate.
    text.split(";;").find_map(|record| {
        let fields: Vec<&str> = record.split(';').collect();
        let value = |key: &str| {
            fields
                .chunks(2)
                .find(|pair| pair.len() == 2 && pair[0].eq_ignore_ascii_case(key))
                .map(|pair| pair[1])
        };
        if !value("InstanceName")?.eq_ignore_ascii_case(instance) {
            return None;
        }
        value("tcp")?.trim().parse::<u16>().ok().filter(|p| *p != 0)
    })
}

/// SQL Browser could not say which port a named instance listens on.
#[derive(Debug)]
pub struct BrowserError {
    kind: BrowserErrorKind,
    host: String,
    port: u16,
    instance: String,
}

#[derive(Debug)]
enum BrowserErrorKind {
    BadName,
    NoAnswer(Duration),
    Refused,
    NoTcpPort,
    Io(io::Error),
}

impl BrowserError {
    /// Whether SQL Browser did not answer at all (an unknown instance name,
    /// a stopped Browser service, or UDP 1434 blocked).
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self.kind,
            BrowserErrorKind::NoAnswer(_) | BrowserErrorKind::Refused
        )
    }
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BrowserError {
            host,
            port,
            instance,
            ..
        } = self;
        match &self.kind {
            BrowserErrorKind::BadName => write!(
                f,
                "instance name `{instance}` cannot be sent to SQL Browser (1 to 32 bytes, no NUL)"
            ),
            BrowserErrorKind::NoAnswer(timeout) => write!(
                f,
                "SQL Browser at {host}:{port} (UDP) did not answer for instance `{instance}` \
                 (2 tries, {timeout:?} each): the instance does not exist (SQL Browser does not \
                 answer unknown names), the SQL Browser service is stopped, or UDP {port} is \
                 blocked; check the name, or give the port (`{host}\\{instance},PORT`)"
            ),
            BrowserErrorKind::Refused => write!(
                f,
                "nothing answers SQL Browser requests at {host}:{port} (UDP port unreachable): \
                 start the SQL Browser service, or give the instance's port \
                 (`{host}\\{instance},PORT`)"
            ),
            BrowserErrorKind::NoTcpPort => write!(
                f,
                "SQL Browser at {host}:{port} answered without a TCP port for instance \
                 `{instance}`: enable TCP/IP for that instance in SQL Server Configuration Manager"
            ),
            BrowserErrorKind::Io(e) => write!(
                f,
                "asking SQL Browser at {host}:{port} for instance `{instance}` failed: {e}"
            ),
        }
    }
}

impl std::error::Error for BrowserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            BrowserErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_of_the_named_instance() {
        let reply = |text: &str| {
            let mut r = vec![0x05];
            r.extend_from_slice(&(text.len() as u16).to_le_bytes());
            r.extend_from_slice(text.as_bytes());
            r
        };
        let two = reply(
            "ServerName;H;InstanceName;MSSQLSERVER;IsClustered;No;Version;16.0.1;tcp;1433;;\
             ServerName;H;InstanceName;SALES;IsClustered;No;Version;16.0.1;tcp;50123;np;\\\\H\\pipe\\x;;",
        );
        assert_eq!(tcp_port_of(&two, "sales"), Some(50123));
        assert_eq!(tcp_port_of(&two, "MSSQLSERVER"), Some(1433));
        assert_eq!(tcp_port_of(&two, "OTHER"), None);
        let no_tcp = reply("ServerName;H;InstanceName;SALES;IsClustered;No;Version;16.0.1;np;x;;");
        assert_eq!(tcp_port_of(&no_tcp, "SALES"), None);
        // Malformed replies never panic.
        for bad in [
            &b""[..],
            b"\x05",
            b"\x05\xff\xff",
            b"\x04\x01\x00x",
            b"\x05\x03\x00;;;",
        ] {
            assert_eq!(tcp_port_of(bad, "SALES"), None);
        }
    }
}
