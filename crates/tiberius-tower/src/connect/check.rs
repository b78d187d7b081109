//! The plaintext PRELOGIN check: does the server at this address speak TDS 7?
//!
//! Used once, when a TLS-first (Strict) attempt met silence. SQL Server 2019
//! and older never answer a ClientHello that arrives first (tds-handshake.md
//! §5.4), and a network stall is silent too; a server that answers a
//! plaintext PRELOGIN on a fresh connection is alive and does not speak TDS
//! 8.0. Only a PRELOGIN is sent, never a login or a credential, and the
//! connection is closed after the reply: nothing runs below the configured
//! level.

use tds_handshake::{
    Encryption, MAX_PRELOGIN_PACKET, MessageReassembler, PacketType, Prelogin, Side, Version,
    encode_message,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// True when the server at `host:port` answered a plaintext PRELOGIN with a
/// well-formed PRELOGIN reply before `until`.
pub(crate) async fn answers_plaintext_prelogin(
    host: &str,
    port: u16,
    instance: Option<&str>,
    until: Instant,
) -> bool {
    let check = async {
        let mut tcp = TcpStream::connect((host, port)).await.ok()?;
        let _ = tcp.set_nodelay(true);
        // VERSION 0.0.0.0 as no client in particular; ENCRYPTION ON, which
        // every server answers (ON, REQ or NOT_SUP) without closing.
        let mut request = Prelogin::client_request(Version::default(), Encryption::ON);
        if let Some(name) = instance {
            request.instance = Some(name.as_bytes().to_vec());
        }
        let mut packet = Vec::new();
        encode_message(
            PacketType::PreLogin,
            0,
            &request.encode(Side::Client),
            MAX_PRELOGIN_PACKET,
            &mut packet,
        );
        tcp.write_all(&packet).await.ok()?;

        let mut reader = MessageReassembler::new(MAX_PRELOGIN_PACKET);
        let mut buf = [0u8; 1024];
        loop {
            let n = tcp.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            reader.push(buf.get(..n)?).ok()?;
            if let Some(message) = reader.next_message() {
                let message = message.ok()?;
                let is_reply = message.known_type() == Some(PacketType::TabularResult);
                return (is_reply && Prelogin::decode(&message.payload, Side::Server).is_ok())
                    .then_some(());
            }
        }
    };
    matches!(tokio::time::timeout_at(until, check).await, Ok(Some(())))
}
