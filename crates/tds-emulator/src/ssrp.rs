//! A SQL Server Browser responder (MC-SQLR, SSRP over UDP) so clients can
//! resolve named instances against the emulator end to end.
//!
//! Facts it follows (MC-SQLR 2.2):
//!
//! - a client asks for one instance with CLNT_UCAST_INST: the byte `0x04`,
//!   then the instance name (MBCS, at most 32 bytes), then a NUL;
//!   CLNT_UCAST_EX (`0x03`) and CLNT_BCAST_EX (`0x02`) ask for every instance;
//! - the server answers SVR_RESP: the byte `0x05`, a `u16` little-endian
//!   length, then `ServerName;S;InstanceName;I;IsClustered;No;Version;V;tcp;PORT;;`
//!   per instance (at most 1,024 bytes for one instance);
//! - a name the Browser does not know gets no answer at all (the client
//!   times out), and so does anything it cannot parse.
//!
//! Instance names compare case-insensitively, as SQL Server's do.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// CLNT_BCAST_EX: every instance, broadcast form.
const CLNT_BCAST_EX: u8 = 0x02;
/// CLNT_UCAST_EX: every instance, unicast form.
const CLNT_UCAST_EX: u8 = 0x03;
/// CLNT_UCAST_INST: one instance by name.
const CLNT_UCAST_INST: u8 = 0x04;
/// SVR_RESP.
const SVR_RESP: u8 = 0x05;
/// MC-SQLR 2.2.3: an instance name is at most 32 bytes.
const MAX_INSTANCE_NAME: usize = 32;
/// MC-SQLR 2.2.5: RESP_DATA for one instance is at most 1,024 bytes.
const MAX_INSTANCE_RESPONSE: usize = 1024;

/// One named instance the responder announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserInstance {
    /// The instance name (`SQLEXPRESS`, ...).
    pub name: String,
    /// The TCP port it listens on.
    pub tcp_port: u16,
}

impl BrowserInstance {
    /// An instance listening on `tcp_port`.
    pub fn new(name: impl Into<String>, tcp_port: u16) -> Self {
        BrowserInstance {
            name: name.into(),
            tcp_port,
        }
    }
}

/// A running SQL Browser responder. Dropping it stops it.
#[derive(Debug)]
pub struct BrowserResponder {
    local_addr: SocketAddr,
    requests: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl BrowserResponder {
    /// Binds `addr` (use `127.0.0.1:0` in tests; SQL Browser itself uses UDP
    /// 1434) and answers for `instances` on behalf of the server `server_name`.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(
        addr: SocketAddr,
        server_name: impl Into<String>,
        instances: Vec<BrowserInstance>,
    ) -> io::Result<BrowserResponder> {
        let socket = UdpSocket::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let server_name = server_name.into();
        tokio::spawn(serve(
            socket,
            server_name,
            instances,
            Arc::clone(&requests),
            cancel.clone(),
        ));
        tracing::info!(%local_addr, "tds-emulator SQL Browser responder listening");
        Ok(BrowserResponder {
            local_addr,
            requests,
            cancel,
        })
    }

    /// The UDP address it answers on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Datagrams received so far, answered or not.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops answering.
    pub fn shutdown(self) {
        self.cancel.cancel();
    }
}

impl Drop for BrowserResponder {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(
    socket: UdpSocket,
    server_name: String,
    instances: Vec<BrowserInstance>,
    requests: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let mut buf = [0u8; 512];
    loop {
        let (len, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // An ICMP error from an earlier reply; keep serving.
                Err(_) => continue,
            },
        };
        requests.fetch_add(1, Ordering::Relaxed);
        if let Some(reply) = answer(&buf[..len], &server_name, &instances) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The SVR_RESP for one request, or None when SQL Browser stays silent.
pub fn answer(request: &[u8], server_name: &str, instances: &[BrowserInstance]) -> Option<Vec<u8>> {
    let data = match request.split_first()? {
        (&CLNT_UCAST_INST, rest) => {
            let name = rest.split(|b| *b == 0).next()?;
            if name.is_empty() || name.len() > MAX_INSTANCE_NAME {
                return None;
            }
            let name = std::str::from_utf8(name).ok()?;
            let instance = instances
                .iter()
                .find(|i| i.name.eq_ignore_ascii_case(name))?;
            let data = describe(server_name, instance);
            if data.len() > MAX_INSTANCE_RESPONSE {
                return None;
            }
            data
        }
        (&(CLNT_UCAST_EX | CLNT_BCAST_EX), _) if !instances.is_empty() => instances
            .iter()
            .map(|i| describe(server_name, i))
            .collect::<String>(),
        _ => return None,
    };
    let len = u16::try_from(data.len()).ok()?;
    let mut reply = Vec::with_capacity(3 + data.len());
    reply.push(SVR_RESP);
    reply.extend_from_slice(&len.to_le_bytes());
    reply.extend_from_slice(data.as_bytes());
    Some(reply)
}

fn describe(server_name: &str, instance: &BrowserInstance) -> String {
    format!(
        "ServerName;{server_name};InstanceName;{};IsClustered;No;Version;16.0.4220.0;tcp;{};;",
        instance.name, instance.tcp_port
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_known_instance_and_ignores_the_rest() {
        let instances = [BrowserInstance::new("SQLEXPRESS", 50123)];
        let reply = answer(b"\x04sqlexpress\x00", "EMU", &instances).expect("known");
        let text =
            "ServerName;EMU;InstanceName;SQLEXPRESS;IsClustered;No;Version;16.0.4220.0;tcp;50123;;";
        assert_eq!(reply[0], 0x05);
        assert_eq!(
            u16::from_le_bytes([reply[1], reply[2]]) as usize,
            text.len()
        );
        assert_eq!(&reply[3..], text.as_bytes());
        assert_eq!(answer(b"\x04OTHER\x00", "EMU", &instances), None);
        assert_eq!(answer(b"", "EMU", &instances), None);
        assert_eq!(answer(b"\x04", "EMU", &instances), None);
        assert_eq!(answer(&[0x04; 100], "EMU", &instances), None);
        assert_eq!(answer(b"\x09junk", "EMU", &instances), None);
        assert!(answer(b"\x03", "EMU", &instances).is_some());
    }
}
