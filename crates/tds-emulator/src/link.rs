//! One connection's byte pipe: plaintext TDS or TLS-protected TDS over the TCP socket. It reads
//! whole TDS messages with exact framing (so bytes after a switch point stay available), drives a
//! rustls `ServerConnection` by hand, enforces the server byte budget of the `reset-at-byte`
//! fault, and ends connections with a reset, an orderly close or a stall.

use std::io::{self, Read, Write};
use std::time::Duration;

use rustls::ServerConnection;
use socket2::SockRef;
use tds_handshake::{HEADER_LEN, PacketHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read from the socket per call.
const READ_CHUNK: usize = 16 * 1024;
/// Largest TLS record accepted as the first strict-mode record (2^14 + 2048).
const MAX_TLS_RECORD: usize = (1 << 14) + 2048;
/// Plaintext handed to rustls per call (its outgoing buffer is bounded).
const TLS_WRITE_CHUNK: usize = 16 * 1024;
/// How long an orderly close waits for the peer's own close before dropping the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Why the link stopped.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The peer closed cleanly between messages.
    Closed,
    /// A socket error, or EOF in the middle of a message.
    Io(io::Error),
    /// The peer broke TDS framing.
    Protocol(&'static str),
    /// rustls rejected the peer's TLS.
    Tls(rustls::Error),
    /// The `reset-at-byte` budget ran out: the connection must be reset.
    ByteLimit,
}

impl From<io::Error> for LinkError {
    fn from(error: io::Error) -> Self {
        LinkError::Io(error)
    }
}

/// A reassembled TDS message.
#[derive(Debug)]
pub(crate) struct TdsMessage {
    pub(crate) packet_type: u8,
    pub(crate) payload: Vec<u8>,
}

pub(crate) struct Link {
    tcp: TcpStream,
    /// TDS-level bytes received and not consumed yet: plaintext from the socket, or plaintext
    /// decrypted by `tls`.
    inbuf: Vec<u8>,
    /// Present while raw TLS protects the stream (after a TDS 7 wrapped handshake, or strict).
    tls: Option<ServerConnection>,
    /// Bytes the server has written to the socket.
    sent: u64,
    /// `reset-at-byte` budget.
    byte_limit: Option<u64>,
    scratch: Box<[u8]>,
}

impl Link {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Link {
            tcp,
            inbuf: Vec::new(),
            tls: None,
            sent: 0,
            byte_limit: None,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    pub(crate) fn limit_output(&mut self, bytes: u64) {
        self.byte_limit = Some(bytes);
    }

    pub(crate) fn first_byte(&self) -> Option<u8> {
        self.inbuf.first().copied()
    }

    pub(crate) fn tls_facts(&self) -> (Option<String>, Option<String>) {
        match &self.tls {
            Some(tls) => (
                tls.protocol_version().map(|v| format!("{v:?}")),
                tls.alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            ),
            None => (None, None),
        }
    }

    /// Reads once from the socket; returns `true` at EOF (or a TLS close_notify).
    async fn fill(&mut self) -> Result<bool, LinkError> {
        let n = self.tcp.read(&mut self.scratch).await?;
        if n == 0 {
            return Ok(true);
        }
        let Some(tls) = self.tls.as_mut() else {
            self.inbuf.extend_from_slice(&self.scratch[..n]);
            return Ok(false);
        };
        let absorbed = absorb(tls, &self.scratch[..n], &mut self.inbuf);
        // Send what rustls queued (handshake flights, tickets, or the alert for its own error).
        let flushed = self.flush_tls().await;
        let closed = absorbed?;
        flushed?;
        Ok(closed)
    }

    /// Waits until at least `n` TDS-level bytes are buffered; `false` at EOF before that.
    pub(crate) async fn want(&mut self, n: usize) -> Result<bool, LinkError> {
        while self.inbuf.len() < n {
            if self.fill().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits until the buffer holds one whole TLS record (strict mode, before TLS starts).
    pub(crate) async fn want_tls_record(&mut self) -> Result<bool, LinkError> {
        if !self.want(5).await? {
            return Ok(false);
        }
        let len = usize::from(u16::from_be_bytes([self.inbuf[3], self.inbuf[4]]));
        if len > MAX_TLS_RECORD {
            return Err(LinkError::Protocol("TLS record longer than 2^14 + 2048"));
        }
        self.want(5 + len).await
    }

    /// Removes and returns the whole raw TLS record at the front of the buffer (strict mode,
    /// after [`want_tls_record`](Self::want_tls_record) said it is there).
    pub(crate) fn take_tls_record(&mut self) -> Vec<u8> {
        let len = match self.inbuf.get(3..5) {
            Some(&[hi, lo]) => 5 + usize::from(u16::from_be_bytes([hi, lo])),
            _ => self.inbuf.len(),
        };
        self.inbuf.drain(..len.min(self.inbuf.len())).collect()
    }

    /// Reads one whole TDS message (packets up to EOM), at most `max` payload bytes.
    pub(crate) async fn read_message(&mut self, max: usize) -> Result<TdsMessage, LinkError> {
        let mut message: Option<TdsMessage> = None;
        loop {
            if !self.want(HEADER_LEN).await? {
                return Err(match (&message, self.inbuf.is_empty()) {
                    (None, true) => LinkError::Closed,
                    _ => LinkError::Io(io::ErrorKind::UnexpectedEof.into()),
                });
            }
            let header = PacketHeader::decode(&self.inbuf)
                .map_err(|_| LinkError::Protocol("invalid TDS packet header"))?;
            let len = usize::from(header.length);
            if !self.want(len).await? {
                return Err(LinkError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            let message = message.get_or_insert_with(|| TdsMessage {
                packet_type: header.packet_type,
                payload: Vec::new(),
            });
            if message.packet_type != header.packet_type {
                return Err(LinkError::Protocol("packet type changed inside a message"));
            }
            if message.payload.len() + header.payload_len() > max {
                return Err(LinkError::Protocol("message longer than allowed"));
            }
            message
                .payload
                .extend_from_slice(&self.inbuf[HEADER_LEN..len]);
            self.inbuf.drain(..len);
            if header.is_eom() {
                break;
            }
        }
        message.ok_or(LinkError::Protocol("empty message"))
    }

    /// Sends TDS-level bytes: encrypted when TLS is on, plaintext otherwise.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        if self.tls.is_none() {
            return self.write_wire(bytes).await;
        }
        for chunk in bytes.chunks(TLS_WRITE_CHUNK) {
            if let Some(tls) = self.tls.as_mut() {
                tls.writer().write_all(chunk)?;
            }
            self.flush_tls().await?;
        }
        Ok(())
    }

    async fn flush_tls(&mut self) -> Result<(), LinkError> {
        let mut out = Vec::new();
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                tls.write_tls(&mut out)?;
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        self.write_wire(&out).await
    }

    /// Writes bytes to the socket as they are, within the byte budget.
    pub(crate) async fn write_wire(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        if let Some(limit) = self.byte_limit {
            let room = limit.saturating_sub(self.sent);
            if bytes.len() as u64 > room {
                let take = usize::try_from(room).unwrap_or(bytes.len());
                self.tcp.write_all(&bytes[..take]).await?;
                self.tcp.flush().await?;
                self.sent += room;
                return Err(LinkError::ByteLimit);
            }
        }
        self.tcp.write_all(bytes).await?;
        self.tcp.flush().await?;
        self.sent += bytes.len() as u64;
        Ok(())
    }

    /// Switches to raw TLS after a handshake driven elsewhere (TDS 7 wrapped). Plaintext the
    /// engine already holds comes first, then whatever raw bytes were buffered behind the last
    /// handshake message.
    pub(crate) async fn start_tls(&mut self, mut tls: ServerConnection) -> Result<(), LinkError> {
        let leftover = std::mem::take(&mut self.inbuf);
        absorb(&mut tls, &leftover, &mut self.inbuf)?;
        self.tls = Some(tls);
        self.flush_tls().await
    }

    /// Runs a TLS handshake on the raw socket (TDS 8.0 strict): buffered bytes are the start of
    /// the client's first flight.
    pub(crate) async fn handshake_raw(&mut self, tls: ServerConnection) -> Result<(), LinkError> {
        self.start_tls(tls).await?;
        while self.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            if self.fill().await? {
                return Err(LinkError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(())
    }

    /// Drops TLS without close_notify (login-only encryption: MS-TDS 3.2.5.2).
    pub(crate) fn stop_tls(&mut self) {
        self.tls = None;
    }

    /// Waits up to `grace` for the peer's next bytes or its close, so a reply just written is
    /// not destroyed by an immediate reset.
    pub(crate) async fn wait_for_peer(&mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, self.tcp.read(&mut self.scratch)).await;
    }

    /// Ends with a TCP reset (SO_LINGER 0, then close): the client sees ECONNRESET (10054).
    pub(crate) fn reset(self) {
        let _ = SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        drop(self.tcp);
    }

    /// Ends with an orderly close (FIN), then waits (bounded) for the peer to close too, so
    /// unread bytes do not turn the close into a reset.
    pub(crate) async fn close(mut self) {
        let _ = self.tcp.shutdown().await;
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            loop {
                match self.tcp.read(&mut self.scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }

    /// Goes silent: discards whatever arrives until the peer closes. Shutdown cancels it.
    pub(crate) async fn stall(mut self) {
        loop {
            match self.tcp.read(&mut self.scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// Feeds raw TLS bytes to rustls and appends the plaintext it yields to `plaintext`. Returns
/// `true` when the peer sent close_notify.
pub(crate) fn absorb(
    tls: &mut ServerConnection,
    mut bytes: &[u8],
    plaintext: &mut Vec<u8>,
) -> Result<bool, LinkError> {
    let mut closed = false;
    loop {
        if !bytes.is_empty() && tls.read_tls(&mut bytes)? == 0 {
            break;
        }
        let state = tls.process_new_packets().map_err(LinkError::Tls)?;
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            let start = plaintext.len();
            plaintext.resize(start + available, 0);
            tls.reader().read_exact(&mut plaintext[start..])?;
        }
        closed |= state.peer_has_closed();
        if bytes.is_empty() {
            break;
        }
    }
    Ok(closed)
}

/// Everything rustls wants to send.
pub(crate) fn drain_tls_output(tls: &mut ServerConnection) -> Result<Vec<u8>, LinkError> {
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    Ok(out)
}
