//! TLS record layer of the observer: records, handshake messages, alerts, phase changes
//! (tds-handshake.md §7.3).

use super::observation::{Direction, ObservedAlert, ParseStopReason, Phase, TlsFraming};
use super::state::{CAPTURE_LIMIT, DirState, Shared};
use crate::tls::{
    Alert, ClientHelloFacts, ContentType, HANDSHAKE_HEADER_LEN, RECORD_HEADER_LEN, RecordHeader,
    ServerHelloFacts, handshake_type,
};

/// Consumes bytes of one TLS record (header and/or body), stopping at the record's end.
/// Returns the bytes consumed (at least 1 when `bytes` is not empty) and whether the
/// record ended.
pub(super) fn step(
    st: &mut DirState,
    sh: &mut Shared,
    framing: TlsFraming,
    bytes: &[u8],
) -> (usize, bool) {
    if !st.record.in_body {
        let have = st.record.have;
        let take = (RECORD_HEADER_LEN - have.min(RECORD_HEADER_LEN)).min(bytes.len());
        if let (Some(dst), Some(src)) = (
            st.record.header.get_mut(have..have + take),
            bytes.get(..take),
        ) {
            dst.copy_from_slice(src);
        }
        st.record.have = have + take;
        if st.record.have < RECORD_HEADER_LEN {
            return (take, false);
        }
        st.record.have = 0;
        let header = RecordHeader::parse(&st.record.header);
        let Some(header) = header.filter(RecordHeader::is_plausible) else {
            sh.stop(st.dir, st.unit_start, ParseStopReason::InvalidTlsRecord);
            st.passive = true;
            return (take, true);
        };
        start_record(st, sh, header, framing);
        st.record.in_body = true;
        st.record.remaining = usize::from(header.length);
        if st.record.remaining == 0 {
            end_record(st, sh);
            return (take, true);
        }
        return (take, false);
    }
    let take = st.record.remaining.min(bytes.len());
    let chunk = bytes.get(..take).unwrap_or_default();
    record_body(st, sh, chunk);
    st.record.remaining -= take;
    if st.record.remaining == 0 {
        end_record(st, sh);
        return (take, true);
    }
    (take, false)
}

/// Feeds a run of wrapped bytes (a TDS payload chunk) through as many records as it holds.
pub(super) fn feed_wrapped(st: &mut DirState, sh: &mut Shared, framing: TlsFraming, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() && !st.passive {
        let (used, _) = step(st, sh, framing, rest);
        rest = rest.get(used..).unwrap_or_default();
    }
}

fn start_record(st: &mut DirState, sh: &mut Shared, header: RecordHeader, framing: TlsFraming) {
    let phase = sh.obs.phase;
    st.record.content_type = header.content_type;
    st.record.framing = framing;
    st.record.clear = !st.cipher_active;
    st.record.alert_have = 0;
    if st.dir == Direction::ServerToClient
        && sh.obs.tls_framing.is_none()
        && phase < Phase::LoginSent
    {
        sh.obs.tls_framing = Some(framing);
    }
    match header.known_type() {
        Some(ContentType::Handshake) => {
            let strict = sh.obs.started_with_tls == Some(true);
            if st.dir == Direction::ClientToServer && strict {
                // TDS 8: the ClientHello is the first thing the client sends; the PRELOGIN
                // itself travels encrypted later (MS-TDS 3.3.5.1).
                sh.advance(Phase::PreloginSent);
            } else if phase >= Phase::PreloginSent {
                sh.advance(Phase::TlsHandshake);
            }
        }
        Some(ContentType::ApplicationData) => {
            let raw = framing == TlsFraming::Raw;
            match st.dir {
                // After the handshake the client switches to raw records and the first
                // one carries LOGIN7 (tds-handshake.md §4.1); nothing after it is readable.
                Direction::ClientToServer
                    if raw && phase >= Phase::TlsHandshake && phase < Phase::LoginSent =>
                {
                    sh.advance(Phase::LoginSent);
                    sh.login_in_tls = true;
                    st.passive = true;
                }
                // An encrypted login response: full encryption, nothing more to learn.
                Direction::ServerToClient if raw && phase >= Phase::LoginSent => {
                    st.passive = true;
                }
                _ => {}
            }
        }
        Some(ContentType::ChangeCipherSpec) => st.cipher_active = true,
        _ => {}
    }
}

fn record_body(st: &mut DirState, sh: &mut Shared, chunk: &[u8]) {
    if !st.record.clear {
        return;
    }
    match ContentType::from_u8(st.record.content_type) {
        Some(ContentType::Handshake) => handshake_bytes(st, sh, chunk),
        Some(ContentType::Alert) => {
            let have = st.record.alert_have;
            let take = (2 - have.min(2)).min(chunk.len());
            if let (Some(dst), Some(src)) = (
                st.record.alert.get_mut(have..have + take),
                chunk.get(..take),
            ) {
                dst.copy_from_slice(src);
            }
            st.record.alert_have = have + take;
        }
        _ => {}
    }
}

fn end_record(st: &mut DirState, sh: &mut Shared) {
    st.record.in_body = false;
    st.record.remaining = 0;
    let is_alert = st.record.content_type == ContentType::Alert.as_u8();
    if !(is_alert && st.record.clear && st.record.alert_have == 2) {
        return;
    }
    if let Some(alert) = Alert::parse(&st.record.alert) {
        sh.obs.alerts = sh.obs.alerts.saturating_add(1);
        if sh.obs.first_alert.is_none() {
            sh.obs.first_alert = Some(ObservedAlert {
                sender: st.dir,
                alert,
                framing: st.record.framing,
            });
        }
    }
}

/// Reassembles handshake messages across records; captures the hello of this direction.
fn handshake_bytes(st: &mut DirState, sh: &mut Shared, mut chunk: &[u8]) {
    while !chunk.is_empty() {
        let hs = &mut st.handshake;
        if !hs.in_body {
            let have = hs.have;
            let take = (HANDSHAKE_HEADER_LEN - have.min(HANDSHAKE_HEADER_LEN)).min(chunk.len());
            if let (Some(dst), Some(src)) =
                (hs.header.get_mut(have..have + take), chunk.get(..take))
            {
                dst.copy_from_slice(src);
            }
            hs.have = have + take;
            chunk = chunk.get(take..).unwrap_or_default();
            if hs.have < HANDSHAKE_HEADER_LEN {
                return;
            }
            start_message(st, sh);
            continue;
        }
        let take = hs.remaining.min(chunk.len());
        if hs.capturing {
            st.capture.push(chunk.get(..take).unwrap_or_default());
        }
        st.handshake.remaining -= take;
        chunk = chunk.get(take..).unwrap_or_default();
        if st.handshake.remaining == 0 {
            end_message(st, sh);
        }
    }
}

fn start_message(st: &mut DirState, sh: &mut Shared) {
    let [msg_type, l0, l1, l2] = st.handshake.header;
    let len = usize::try_from(u32::from_be_bytes([0, l0, l1, l2])).unwrap_or(usize::MAX);
    let wanted = match st.dir {
        Direction::ClientToServer => handshake_type::CLIENT_HELLO,
        Direction::ServerToClient => handshake_type::SERVER_HELLO,
    };
    st.handshake.have = 0;
    st.handshake.in_body = true;
    st.handshake.remaining = len;
    st.handshake.capturing = false;
    if msg_type == wanted {
        if len > CAPTURE_LIMIT {
            // Bounded memory over completeness: the facts stay unknown.
            sh.stop(st.dir, st.unit_start, ParseStopReason::HelloTooLarge);
        } else {
            st.capture.reset();
            st.handshake.capturing = true;
        }
    }
    if len == 0 {
        end_message(st, sh);
    }
}

fn end_message(st: &mut DirState, sh: &mut Shared) {
    st.handshake.in_body = false;
    if !st.handshake.capturing {
        return;
    }
    st.handshake.capturing = false;
    let body = st.capture.bytes();
    let result = match st.dir {
        Direction::ClientToServer => {
            ClientHelloFacts::parse(body).map(|f| sh.obs.client_hello = Some(f))
        }
        Direction::ServerToClient => {
            ServerHelloFacts::parse(body).map(|f| sh.obs.server_hello = Some(f))
        }
    };
    if let Err(e) = result {
        sh.stop(st.dir, st.unit_start, ParseStopReason::HelloInvalid(e));
    }
}
