//! One client connection, from the first byte to the last reply: the TDS 7 and TDS 8.0 strict
//! flows, the encryption matrix, LOGIN7, requests, and every fault point.

use std::sync::Arc;

use rustls::ServerConnection;
use tds_handshake::{
    Alert, AlertDescription, Encryption, MAX_PRELOGIN_PACKET, PacketType, Prelogin,
    ServerEncryption, Side, ThreadId, TlsVersion, Version, encode_message, negotiate,
};
use tokio::net::TcpStream;

use crate::config::{EncryptionSetting, Termination, TlsFirstResponse};
use crate::fault::{ActiveFaults, AlertFraming, Fault, FaultPoint, StallPhase};
use crate::link::{Link, LinkError, absorb, drain_tls_output};
use crate::login7::{Login7, MAX_LOGIN7, TDS_7_1, TDS_8_0, loginack_version};
use crate::request::{self, Query};
use crate::schedule::splitmix64;
use crate::shared::Shared;
use crate::tls;
use crate::tokens::{self, Dialect, LoginResponse, RequestKind};

/// Largest TLS handshake message a client may send wrapped in 0x12 packets.
const MAX_HANDSHAKE_MESSAGE: usize = 64 * 1024;
/// Largest post-login request.
const MAX_REQUEST: usize = 4 << 20;
/// What the `garbage-reply` fault answers: what a web server on the port would say.
const GARBAGE: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// How the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer left, or the conversation is over: just drop the socket.
    Done,
    /// TCP reset now.
    Reset,
    /// TCP reset after the peer's next bytes (bounded wait): the matrix's termination.
    ResetAfterReply,
    /// Orderly close (FIN).
    Close,
    /// Silence until the peer closes or the emulator shuts down.
    Stall,
}

/// How LOGIN7 arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginEncryption {
    /// No TLS (reply NOT_SUP).
    Plain,
    /// Only LOGIN7 is inside TLS (client OFF, server OFF).
    LoginOnly,
    /// Everything inside TLS.
    Full,
}

struct Session {
    shared: Arc<Shared>,
    index: u64,
    spid: u16,
    faults: ActiveFaults,
    link: Link,
    /// The token dialect, known once LOGIN7 has been read (TDS 7.4 until then).
    dialect: Dialect,
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, index: u64) {
    let faults = ActiveFaults::for_connection(&shared.config.faults, index);
    let mut link = Link::new(tcp);
    if let Some(Fault::ResetAtServerByte(n)) = faults.at(FaultPoint::Accepted) {
        link.limit_output(n);
    }
    let mut session = Session {
        spid: u16::try_from(51 + index % 32_000).unwrap_or(51),
        shared,
        index,
        faults,
        link,
        dialect: Dialect::default(),
    };
    let end = match session.run().await {
        Ok(end) => end,
        Err(error) => session.end_for(error),
    };
    session.finish(end).await;
}

impl Session {
    async fn run(&mut self) -> Result<End, LinkError> {
        if !self.link.want(1).await? {
            return Ok(End::Done);
        }
        let first = self.link.first_byte().unwrap_or_default();
        self.record(|r| {
            r.first_byte = Some(first);
            r.started_with_tls = match first {
                0x16 => Some(true),
                0x12 => Some(false),
                _ => None,
            };
        });
        let setting = self.shared.config.encryption;
        match first {
            // MS-TDS 3.3.5.1: 0x16 → TLS negotiation (TDS 8.0), 0x12 → PRELOGIN, else close.
            0x16 if setting.accepts_strict() => self.strict().await,
            0x16 => {
                self.count(|s| {
                    s.tls_first += 1;
                    s.tls_first_refused += 1;
                });
                Ok(match self.shared.config.tls_first_response {
                    TlsFirstResponse::Hang => End::Stall,
                    TlsFirstResponse::Close => End::Close,
                    TlsFirstResponse::Reset => End::Reset,
                })
            }
            0x12 => self.tds7().await,
            // MS-TDS 3.3.5.1: anything else is closed without a response. This is how SQL
            // Server 2019/2022 refuse a TDS 7.0 client (LOGIN7 first, no PRELOGIN) and the
            // pre-TDS 7 logins of TDS 4.2 and 5.0 (type 0x02).
            _ => {
                self.count(|s| s.unknown_first_message += 1);
                Err(LinkError::Protocol(
                    "first byte is neither PRELOGIN nor TLS",
                ))
            }
        }
    }

    /// TDS 7: plaintext PRELOGIN, matrix, optional TLS wrapped in 0x12 packets, LOGIN7.
    async fn tds7(&mut self) -> Result<End, LinkError> {
        let prelogin = self.read_prelogin().await?;
        let setting = self.shared.config.encryption;
        if setting == EncryptionSetting::StrictOnly {
            // "Force Strict Encryption": the plaintext PRELOGIN gets no reply, only a reset.
            self.count(|s| s.strict_only_refusals += 1);
            return Ok(End::Reset);
        }
        if let Some(end) = self.before_prelogin_reply(&prelogin).await? {
            return Ok(end);
        }
        let column = match setting {
            EncryptionSetting::None => ServerEncryption::NotSup,
            EncryptionSetting::Force => ServerEncryption::On,
            EncryptionSetting::Off
            | EncryptionSetting::StrictAndLegacy
            | EncryptionSetting::StrictOnly => ServerEncryption::Off,
        };
        // A PRELOGIN without ENCRYPTION is read as ENCRYPT_OFF (the option's default meaning:
        // encryption available, not wanted).
        let offered = prelogin.encryption.unwrap_or(Encryption::OFF);
        let negotiation = negotiate(offered, column);
        if negotiation.terminate {
            // Recorded before the reply leaves: a client that has read it may look at once.
            self.record(|r| r.terminated_by_matrix = true);
            self.count(|s| s.matrix_terminations += 1);
        }
        self.send_prelogin_reply(&prelogin, negotiation.reply)
            .await?;
        if negotiation.terminate {
            // MS-TDS 2.2.6.5: reply, then terminate. A reset by default, as the 10054 reports
            // show; FIN when the configuration asks for it.
            return Ok(match self.shared.config.termination {
                Termination::Reset => End::ResetAfterReply,
                Termination::Fin => End::Close,
            });
        }
        if let Some(fault @ Fault::ResetAfterPreloginReply) =
            self.faults.at(FaultPoint::AfterPreloginReply)
        {
            self.inject(fault);
            return Ok(End::ResetAfterReply);
        }
        let mode = match negotiation.reply.base() {
            Encryption::NOT_SUP => LoginEncryption::Plain,
            Encryption::OFF => LoginEncryption::LoginOnly,
            _ => LoginEncryption::Full,
        };
        if mode != LoginEncryption::Plain
            && let Some(end) = self.wrapped_tls_handshake().await?
        {
            return Ok(end);
        }
        self.login(mode).await
    }

    /// TDS 8.0 strict: TLS first (ALPN tds/8.0), then PRELOGIN and LOGIN7 inside TLS.
    async fn strict(&mut self) -> Result<End, LinkError> {
        self.count(|s| {
            s.tls_first += 1;
            s.tls_started += 1;
        });
        if !self.link.want_tls_record().await? {
            return Ok(End::Done);
        }
        if let Some(end) = self.at_client_hello(false).await? {
            return Ok(end);
        }
        let tls = ServerConnection::new(self.shared.strict_tls.clone()).map_err(LinkError::Tls)?;
        self.link.handshake_raw(tls).await?;
        self.tls_completed();
        let prelogin = self.read_prelogin().await?;
        if let Some(end) = self.before_prelogin_reply(&prelogin).await? {
            return Ok(end);
        }
        // §5.2: the client's value is ignored; reply NOT_SUP, never REQ (SqlClient rejects REQ).
        self.send_prelogin_reply(&prelogin, Encryption::NOT_SUP)
            .await?;
        if let Some(fault @ Fault::ResetAfterPreloginReply) =
            self.faults.at(FaultPoint::AfterPreloginReply)
        {
            self.inject(fault);
            return Ok(End::ResetAfterReply);
        }
        self.login(LoginEncryption::Full).await
    }

    async fn read_prelogin(&mut self) -> Result<Prelogin, LinkError> {
        let message = self.link.read_message(MAX_PRELOGIN_PACKET * 4).await?;
        if message.packet_type != PacketType::PreLogin.as_u8() {
            return Err(LinkError::Protocol("expected a PRELOGIN message"));
        }
        let prelogin = Prelogin::decode(&message.payload, Side::Client)
            .map_err(|_| LinkError::Protocol("undecodable PRELOGIN"))?;
        self.count(|s| s.prelogin_received += 1);
        self.record(|r| r.offered_encryption = prelogin.encryption);
        Ok(prelogin)
    }

    /// Faults at [`FaultPoint::BeforePreloginReply`].
    async fn before_prelogin_reply(
        &mut self,
        prelogin: &Prelogin,
    ) -> Result<Option<End>, LinkError> {
        let Some(fault) = self.faults.at(FaultPoint::BeforePreloginReply) else {
            return Ok(None);
        };
        if fault == Fault::NonZeroThreadId {
            // Shapes the reply itself; injected (and counted) when the reply is sent.
            return Ok(None);
        }
        self.inject(fault);
        Ok(Some(match fault {
            Fault::ResetBeforePreloginReply => End::Reset,
            Fault::FinBeforePreloginReply => End::Close,
            Fault::Stall(StallPhase::Prelogin) => End::Stall,
            Fault::GarbageReply => {
                self.link.send(GARBAGE).await?;
                End::Close
            }
            Fault::TruncatedReply => {
                let reply = self.prelogin_reply(prelogin, Encryption::ON);
                self.link.send(&reply[..reply.len() / 2]).await?;
                End::Close
            }
            _ => return Ok(None),
        }))
    }

    fn prelogin_reply(&self, client: &Prelogin, encryption: Encryption) -> Vec<u8> {
        let version = self.shared.config.version;
        let mut reply = Prelogin::server_reply(
            Version {
                major: version.major,
                minor: version.minor,
                build: version.build,
                sub_build: 0,
            },
            encryption,
        );
        // SQL Server answers the options the client sent, no more: a 4-option request
        // (VERSION, ENCRYPTION, INSTOPT, THREADID: MS-SSTDS 4.1, older clients) gets a 37-byte
        // reply without MARS. VERSION and ENCRYPTION are always answered (every client needs
        // the latter); TRACEID is never echoed; FEDAUTHREQUIRED and NONCEOPT only when sent.
        if client.instance.is_none() {
            reply.instance = None;
        }
        if client.thread_id.is_none() {
            reply.thread_id = None;
        }
        if client.mars.is_none() {
            reply.mars = None;
        }
        if client.fed_auth_required.is_some() {
            reply.fed_auth_required = Some(0);
        }
        if self.faults.at(FaultPoint::BeforePreloginReply) == Some(Fault::NonZeroThreadId) {
            // Servers send THREADID empty (§2.3); 4 non-zero bytes trip tiberius's debug
            // assertion. The SPID is never 0 (it starts at 51), so the value is non-zero.
            reply.thread_id = Some(ThreadId::Id(u32::from(self.spid)));
        }
        if client.nonce.is_some() {
            let mut nonce = [0u8; 32];
            for (i, chunk) in nonce.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&splitmix64(self.index ^ (i as u64) << 56).to_le_bytes());
            }
            reply.nonce = Some(nonce);
        }
        let mut wire = Vec::new();
        encode_message(
            PacketType::TabularResult,
            0,
            &reply.encode(Side::Server),
            MAX_PRELOGIN_PACKET,
            &mut wire,
        );
        wire
    }

    async fn send_prelogin_reply(
        &mut self,
        client: &Prelogin,
        encryption: Encryption,
    ) -> Result<(), LinkError> {
        let wire = self.prelogin_reply(client, encryption);
        if let Some(fault @ Fault::NonZeroThreadId) =
            self.faults.at(FaultPoint::BeforePreloginReply)
        {
            self.inject(fault);
        }
        // Bookkeeping before the bytes leave (here and below): a test that has seen the
        // server's answer must find it in stats() and clients() without racing this task.
        self.count(|s| s.prelogin_replied += 1);
        self.record(|r| r.replied_encryption = Some(encryption));
        self.link.send(&wire).await?;
        Ok(())
    }

    /// Faults at [`FaultPoint::ClientHello`]. `wrapped` tells whether the handshake is TDS 7's.
    async fn at_client_hello(&mut self, wrapped: bool) -> Result<Option<End>, LinkError> {
        let Some(fault) = self.faults.at(FaultPoint::ClientHello) else {
            return Ok(None);
        };
        let end = match fault {
            Fault::ResetAfterClientHello => End::Reset,
            Fault::Stall(StallPhase::Tls) => End::Stall,
            Fault::Alert {
                description,
                framing,
            } => {
                // Counted before the alert leaves, like every other answer.
                self.inject(fault);
                let record =
                    Alert::fatal(AlertDescription(description)).to_record(TlsVersion::TLS12);
                match framing {
                    AlertFraming::Raw => self.link.write_wire(&record).await?,
                    AlertFraming::Wrapped => {
                        let mut wire = Vec::new();
                        encode_message(
                            PacketType::PreLogin,
                            0,
                            &record,
                            MAX_PRELOGIN_PACKET,
                            &mut wire,
                        );
                        self.link.write_wire(&wire).await?;
                    }
                }
                return Ok(Some(End::Close));
            }
            Fault::OldServerHello(version) => {
                self.inject(fault);
                let mut random = [0u8; 32];
                for (i, chunk) in random.chunks_mut(8).enumerate() {
                    chunk.copy_from_slice(&splitmix64(self.index ^ (i as u64) << 48).to_le_bytes());
                }
                let hello = tls::old_server_hello(version.wire_minor(), random);
                let grace = self.shared.config.terminate_grace;
                let answer = if wrapped {
                    // TDS 7: the flight goes in a 0x12 packet; a client alert would come back
                    // in one too (tiberius and FreeTDS close without sending it).
                    let mut wire = Vec::new();
                    encode_message(
                        PacketType::PreLogin,
                        0,
                        &hello,
                        MAX_PRELOGIN_PACKET,
                        &mut wire,
                    );
                    self.link.write_wire(&wire).await?;
                    tokio::time::timeout(grace, self.link.read_message(MAX_HANDSHAKE_MESSAGE))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(|message| message.payload)
                } else {
                    // Strict: the ClientHello is still buffered; the answer is a raw record.
                    self.link.take_tls_record();
                    self.link.write_wire(&hello).await?;
                    match tokio::time::timeout(grace, self.link.want_tls_record()).await {
                        Ok(Ok(true)) => Some(self.link.take_tls_record()),
                        _ => None,
                    }
                };
                if let Some(description) = answer.as_deref().and_then(tls::alert_description) {
                    self.record(|r| r.client_alert = Some(description));
                }
                return Ok(Some(End::Close));
            }
            // Acts on the framing of the handshake replies, only where there is framing.
            Fault::WrongPacketType if wrapped => {
                self.inject(fault);
                return Ok(None);
            }
            _ => return Ok(None),
        };
        self.inject(fault);
        Ok(Some(end))
    }

    /// The TDS 7 TLS handshake, wrapped in 0x12 packets both ways: one server message per
    /// client flight (≤ 4096-byte packets, EOM on the last), then raw TLS (§4.1).
    async fn wrapped_tls_handshake(&mut self) -> Result<Option<End>, LinkError> {
        let Some(config) = self.shared.tds7_tls.clone() else {
            return Err(LinkError::Protocol(
                "TLS negotiated without a TLS configuration",
            ));
        };
        let mut tls = ServerConnection::new(config).map_err(LinkError::Tls)?;
        self.count(|s| s.tls_started += 1);
        let mut framing = PacketType::PreLogin;
        let mut early_plaintext = Vec::new();
        let mut first_flight = true;
        while tls.is_handshaking() {
            let message = self.link.read_message(MAX_HANDSHAKE_MESSAGE).await?;
            if message.packet_type != PacketType::PreLogin.as_u8() {
                return Err(LinkError::Protocol(
                    "expected a 0x12 packet during the TLS handshake",
                ));
            }
            if first_flight {
                first_flight = false;
                if let Some(end) = self.at_client_hello(true).await? {
                    return Ok(Some(end));
                }
                if self.faults.at(FaultPoint::ClientHello) == Some(Fault::WrongPacketType) {
                    framing = PacketType::TabularResult;
                }
            }
            let absorbed = absorb(&mut tls, &message.payload, &mut early_plaintext);
            let flight = drain_tls_output(&mut tls)?;
            if !flight.is_empty() {
                let mut wire = Vec::new();
                encode_message(framing, 0, &flight, MAX_PRELOGIN_PACKET, &mut wire);
                self.link.write_wire(&wire).await?;
            }
            absorbed?;
        }
        self.link.start_tls(tls).await?;
        // Plaintext that arrived inside the last wrapped flight comes before anything raw.
        if !early_plaintext.is_empty() {
            return Err(LinkError::Protocol(
                "application data inside a wrapped handshake",
            ));
        }
        self.tls_completed();
        Ok(None)
    }

    fn tls_completed(&self) {
        let (version, alpn) = self.link.tls_facts();
        self.count(|s| s.tls_completed += 1);
        self.record(|r| {
            r.tls_version = version;
            r.alpn = alpn;
        });
    }

    async fn login(&mut self, mode: LoginEncryption) -> Result<End, LinkError> {
        let message = self.link.read_message(MAX_LOGIN7).await?;
        if message.packet_type != PacketType::Login7.as_u8() {
            return Err(LinkError::Protocol("expected LOGIN7"));
        }
        let login = Login7::parse(&message.payload)
            .map_err(|_| LinkError::Protocol("undecodable LOGIN7"))?;
        self.count(|s| s.login7_received += 1);
        self.record(|r| {
            r.tds_version = Some(login.tds_version);
            r.user = Some(recorded(&login.user));
            r.database = Some(recorded(&login.database));
            r.app_name = Some(recorded(&login.app_name));
            r.requested_packet_size = Some(login.packet_size);
            r.login_only_encryption = mode == LoginEncryption::LoginOnly;
        });
        if mode == LoginEncryption::LoginOnly {
            // MS-TDS 3.2.5.2: only LOGIN7 is encrypted; both sides drop TLS, no close_notify.
            self.link.stop_tls();
        }
        if login.tds_version != TDS_8_0 && login.tds_version < TDS_7_1 {
            // Below 7.1 (TDS 7.0 and garbage): SQL Server logs 17802 "The Tabular Data
            // Stream (TDS) version ... is unsupported or unknown. The connection has been
            // closed." and closes without a token.
            self.count(|s| s.tds_version_refused += 1);
            return Ok(End::Close);
        }
        self.dialect = Dialect::for_tds_version(login.tds_version);
        match self.faults.at(FaultPoint::Login) {
            Some(fault @ Fault::LoginError(number)) => {
                self.inject(fault);
                return self.reject_login(number, &login).await;
            }
            Some(fault @ Fault::Stall(StallPhase::Login)) => {
                self.inject(fault);
                return Ok(End::Stall);
            }
            _ => {}
        }
        let config = &self.shared.config;
        let authenticated = !login.integrated_security()
            && config
                .logins
                .iter()
                .any(|known| known.matches(&login.user, login.password()));
        if !authenticated {
            return self.reject_login(18456, &login).await;
        }
        let database = if login.database.is_empty() {
            "master".to_owned()
        } else {
            login.database.clone()
        };
        if !config.knows_database(&database) {
            return self.reject_login(4060, &login).await;
        }
        // 0 asks for the server default; otherwise the spec's range (MS-TDS 2.2.6.4).
        let packet_size = match login.packet_size {
            0 => 4096,
            size => size.clamp(512, 32767),
        };
        let accepted = LoginResponse {
            database: &database,
            server: &config.server_name,
            tds_version: loginack_version(login.tds_version),
            version: config.version,
            packet_size,
        };
        if let Some(rule) = &config.routing
            && login.accepts_routing()
            && rule.schedule.fires(self.index)
        {
            let route = rule.route.clone();
            let response = tokens::routing_response(&accepted, &route);
            self.count(|s| s.routed += 1);
            self.record(|r| r.routed_to = Some(route.to_string()));
            self.send_tokens(&response, MAX_PRELOGIN_PACKET).await?;
            // The session lives on the alternate server; the client reconnects there and
            // closes this connection, so an orderly close loses nothing.
            return Ok(End::Close);
        }
        let response = tokens::login_response(&accepted);
        // The new packet size applies from the message after the login response.
        self.count(|s| s.logged_in += 1);
        self.record(|r| r.logged_in = true);
        self.send_tokens(&response, MAX_PRELOGIN_PACKET).await?;
        match self.faults.at(FaultPoint::AfterLogin) {
            Some(fault @ Fault::CloseAfterLogin) => {
                self.inject(fault);
                return Ok(End::Close);
            }
            Some(fault @ Fault::ResetAfterLogin) => {
                self.inject(fault);
                return Ok(End::Reset);
            }
            _ => {}
        }
        self.serve_requests(packet_size as usize).await
    }

    /// ERROR + DONE(error), then close (MS-TDS 3.3.5.5).
    async fn reject_login(&mut self, number: u32, login: &Login7) -> Result<End, LinkError> {
        let server = self.shared.config.server_name.clone();
        let (class, text) = tokens::login_error_text(number, &login.user, &login.database, &server);
        let reply = tokens::login_error_in(self.dialect, number, class, &text, &server);
        self.count(|s| s.login_failed += 1);
        self.record(|r| r.login_error = Some(number));
        self.send_tokens(&reply, MAX_PRELOGIN_PACKET).await?;
        Ok(End::Close)
    }

    async fn serve_requests(&mut self, packet_size: usize) -> Result<End, LinkError> {
        loop {
            let message = match self.link.read_message(MAX_REQUEST).await {
                Err(LinkError::Closed) => return Ok(End::Done),
                other => other?,
            };
            if let Some(fault @ Fault::Stall(StallPhase::Query)) = self.faults.at(FaultPoint::Query)
            {
                self.inject(fault);
                return Ok(End::Stall);
            }
            let reply = match PacketType::from_u8(message.packet_type) {
                Some(PacketType::SqlBatch) => reply_to(
                    request::classify_batch(&message.payload),
                    RequestKind::Batch,
                    self.dialect,
                ),
                Some(PacketType::Rpc) => reply_to(
                    request::classify_rpc(&message.payload),
                    RequestKind::Rpc,
                    self.dialect,
                ),
                Some(PacketType::Attention) => {
                    self.count(|s| s.attentions += 1);
                    self.send_tokens(&tokens::attention_ack_in(self.dialect), packet_size)
                        .await?;
                    continue;
                }
                Some(PacketType::TransactionManager) => tokens::transaction_reply_in(
                    request::transaction_request_type(&message.payload),
                    splitmix64(self.index),
                    self.dialect,
                ),
                _ => return Err(LinkError::Protocol("unexpected request type after login")),
            };
            self.count(|s| s.queries += 1);
            self.record(|r| r.queries += 1);
            self.send_tokens(&reply, packet_size).await?;
        }
    }

    async fn send_tokens(&mut self, payload: &[u8], packet_size: usize) -> Result<(), LinkError> {
        let mut wire = Vec::with_capacity(payload.len() + 64);
        encode_message(
            PacketType::TabularResult,
            self.spid,
            payload,
            packet_size,
            &mut wire,
        );
        self.link.send(&wire).await
    }

    fn end_for(&self, error: LinkError) -> End {
        match error {
            LinkError::Closed => End::Done,
            LinkError::Io(error) => {
                tracing::debug!(connection = self.index, %error, "connection lost");
                End::Done
            }
            LinkError::ByteLimit => {
                if let Some(fault) = self.faults.at(FaultPoint::Accepted) {
                    self.inject(fault);
                }
                End::Reset
            }
            LinkError::Protocol(reason) => {
                tracing::debug!(connection = self.index, reason, "protocol violation");
                self.count(|s| s.protocol_errors += 1);
                End::Close
            }
            LinkError::Tls(error) => {
                tracing::debug!(connection = self.index, %error, "TLS handshake failed");
                self.count(|s| s.tls_failed += 1);
                End::Close
            }
        }
    }

    async fn finish(self, end: End) {
        let grace = self.shared.config.terminate_grace;
        let stats = &self.shared.stats;
        match end {
            End::Done => {}
            End::Reset => {
                stats.count(|s| s.resets_sent += 1);
                self.link.reset();
            }
            End::ResetAfterReply => {
                let mut link = self.link;
                link.wait_for_peer(grace).await;
                stats.count(|s| s.resets_sent += 1);
                link.reset();
            }
            End::Close => {
                stats.count(|s| s.closes_sent += 1);
                self.link.close().await;
            }
            End::Stall => {
                stats.count(|s| s.stalls += 1);
                self.link.stall().await;
            }
        }
    }

    fn inject(&self, fault: Fault) {
        self.count(|s| *s.faults_injected.entry(fault.kind()).or_default() += 1);
        self.record(|r| r.fault = Some(fault.to_string()));
    }

    fn count(&self, update: impl FnOnce(&mut crate::stats::Stats)) {
        self.shared.stats.count(update);
    }

    fn record(&self, update: impl FnOnce(&mut crate::stats::ClientRecord)) {
        self.shared.stats.record(self.index, update);
    }
}

/// Longest LOGIN7 string kept in a [`ClientRecord`](crate::ClientRecord), in characters.
/// LOGIN7 allows ~64 Ki characters per field and up to 100 000 records are kept, so an
/// unbounded copy would let clients grow the emulator by gigabytes. SQL Server's own names
/// (sysname) are at most 128 characters.
pub(crate) const MAX_RECORDED_CHARS: usize = 256;

fn recorded(text: &str) -> String {
    text.chars().take(MAX_RECORDED_CHARS).collect()
}

fn reply_to(query: Query, kind: RequestKind, dialect: Dialect) -> Vec<u8> {
    match query {
        Query::SelectOne => tokens::select_one_in(kind, dialect),
        Query::Rows { rows, bytes } => tokens::sized_rows_in(kind, rows, bytes, dialect),
        Query::Other => tokens::empty_result_in(kind, dialect),
    }
}
