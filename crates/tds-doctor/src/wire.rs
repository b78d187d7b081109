//! Bounded socket helpers shared by the probes: connect, send a TDS message, read one.

use std::io;

use tds_handshake::{MAX_PRELOGIN_PACKET, Message, MessageReassembler, PacketType, encode_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest server message a probe accepts (a PRELOGIN reply is well under 100 bytes; a TLS
/// flight with a long chain fits easily).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// How a read that expected bytes ended instead.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// TCP reset (ECONNRESET, WSAECONNRESET 10054).
    Reset,
    /// Orderly close (EOF) before a whole message.
    Closed,
    /// The bytes are not TDS packets; the first bytes, for the report.
    NotTds(Vec<u8>),
    /// Another I/O error.
    Io(io::Error),
}

impl From<io::Error> for ReadEnd {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ReadEnd::Reset,
            io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => ReadEnd::Closed,
            _ => ReadEnd::Io(error),
        }
    }
}

/// Connects to `host:port` (the caller bounds the time).
pub(crate) async fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `payload` as one TDS message of `packet_type` in packets of at most 4096 bytes.
pub(crate) async fn send_message(
    stream: &mut TcpStream,
    packet_type: PacketType,
    payload: &[u8],
) -> io::Result<()> {
    let mut wire = Vec::with_capacity(payload.len() + 16);
    encode_message(packet_type, 0, payload, MAX_PRELOGIN_PACKET, &mut wire);
    stream.write_all(&wire).await?;
    stream.flush().await
}

/// Reads bytes until one whole TDS message has arrived.
pub(crate) async fn read_message(
    stream: &mut TcpStream,
    reassembler: &mut MessageReassembler,
    first: &mut bool,
) -> Result<Message, ReadEnd> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(next) = reassembler.next_message() {
            return next.map_err(|_| ReadEnd::NotTds(Vec::new()));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(ReadEnd::Closed);
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if *first {
            *first = false;
            // A TDS server's first byte is a packet type (0x04, or 0x12 from some servers);
            // anything else (an HTTP status line, a TLS alert) is kept for the report.
            let head = chunk.first().copied().unwrap_or_default();
            if head != PacketType::TabularResult.as_u8() && head != PacketType::PreLogin.as_u8() {
                return Err(ReadEnd::NotTds(chunk.iter().take(16).copied().collect()));
            }
        }
        if reassembler.push(chunk).is_err() {
            return Err(ReadEnd::NotTds(chunk.iter().take(16).copied().collect()));
        }
    }
}
