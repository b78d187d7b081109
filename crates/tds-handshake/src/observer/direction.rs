//! The per-direction reader: tells TDS packets from raw TLS records at every boundary,
//! follows TDS messages and routes their payload (tds-handshake.md §1, §7.3).

use super::observation::{Direction, ParseStopReason, Phase, PreloginSummary, TlsFraming};
use super::state::{DirState, MessageKind, Shared, Unit};
use super::{login_scan, records};
use crate::packet::{HEADER_LEN, PacketHeader, PacketType};
use crate::prelogin::{PreloginView, Side};
use crate::tls::{ContentType, is_record_start};

/// Feeds bytes that moved in `st.dir`. Allocation-free; every step consumes or changes
/// state, so the loop always terminates.
pub(super) fn feed(st: &mut DirState, sh: &mut Shared, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        if st.passive {
            st.offset = st.offset.saturating_add(len_u64(bytes));
            return;
        }
        let used = step(st, sh, bytes).min(bytes.len());
        st.offset = st
            .offset
            .saturating_add(len_u64(bytes.get(..used).unwrap_or_default()));
        bytes = bytes.get(used..).unwrap_or_default();
    }
}

/// Called at an orderly close of this direction.
pub(super) fn eof(st: &mut DirState, sh: &mut Shared) {
    if !st.passive && st.is_mid_unit() {
        sh.stop(st.dir, st.offset, ParseStopReason::TruncatedAtEof);
    }
    st.passive = true;
}

fn len_u64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

fn step(st: &mut DirState, sh: &mut Shared, bytes: &[u8]) -> usize {
    match st.unit {
        Unit::Boundary => {
            if let Some(&first) = bytes.first() {
                boundary(st, sh, first);
            }
            0
        }
        Unit::TdsHeader => {
            let have = st.tds_have;
            let take = (HEADER_LEN - have.min(HEADER_LEN)).min(bytes.len());
            if let (Some(dst), Some(src)) =
                (st.tds_header.get_mut(have..have + take), bytes.get(..take))
            {
                dst.copy_from_slice(src);
            }
            st.tds_have = have + take;
            if st.tds_have == HEADER_LEN {
                packet_header(st, sh);
            }
            take
        }
        Unit::TdsPayload => {
            let take = st.packet_remaining.min(bytes.len());
            packet_payload(st, sh, bytes.get(..take).unwrap_or_default());
            st.packet_remaining -= take;
            if st.packet_remaining == 0 {
                packet_end(st, sh);
            }
            take
        }
        Unit::RawRecord => {
            let (used, ended) = records::step(st, sh, TlsFraming::Raw, bytes);
            if ended {
                st.unit = Unit::Boundary;
            }
            used
        }
    }
}

/// Decides what starts here. No TDS packet type lies in 0x14..=0x18, so those bytes start
/// a raw TLS record (tds-handshake.md §1.2).
fn boundary(st: &mut DirState, sh: &mut Shared, first: u8) {
    st.unit_start = st.offset;
    if st.dir == Direction::ClientToServer && st.offset == 0 {
        // MS-TDS 3.3.5.1: the server decides TDS 8 vs TDS 7 on this very byte.
        if first == ContentType::Handshake.as_u8() {
            sh.obs.started_with_tls = Some(true);
        } else if PacketType::from_u8(first).is_some() {
            sh.obs.started_with_tls = Some(false);
        } else {
            sh.stop(st.dir, 0, ParseStopReason::NotTds { first_byte: first });
            st.passive = true;
            return;
        }
    }
    if is_record_start(first) {
        // A raw record cannot continue a wrapped one; drop any half-read wrapped record.
        st.record.have = 0;
        st.record.in_body = false;
        st.unit = Unit::RawRecord;
    } else {
        st.tds_have = 0;
        st.unit = Unit::TdsHeader;
    }
}

fn packet_header(st: &mut DirState, sh: &mut Shared) {
    let header = PacketHeader::decode(&st.tds_header)
        .ok()
        .filter(|h| h.known_type().is_some());
    let Some(header) = header else {
        sh.stop(st.dir, st.unit_start, ParseStopReason::InvalidPacketHeader);
        st.passive = true;
        return;
    };
    if !st.message_open || st.message_type != header.packet_type {
        // A new message; a different type abandons an unfinished one.
        let continues_tls = matches!(st.message_kind, MessageKind::WrappedTls(_))
            && st.record.is_mid_record()
            && st.message_type == header.packet_type;
        st.message_open = true;
        st.message_type = header.packet_type;
        st.message_start = st.unit_start;
        if !continues_tls {
            st.message_kind = MessageKind::Undecided;
        }
    }
    if st.dir == Direction::ClientToServer && header.packet_type == PacketType::Login7.as_u8() {
        // LOGIN7 in clear (no encryption negotiated); nothing later in this direction
        // matters to the handshake.
        sh.advance(Phase::LoginSent);
        st.passive = true;
        return;
    }
    st.packet_eom = header.is_eom();
    st.packet_remaining = header.payload_len();
    st.unit = Unit::TdsPayload;
    if st.packet_remaining == 0 {
        packet_end(st, sh);
    }
}

fn packet_payload(st: &mut DirState, sh: &mut Shared, chunk: &[u8]) {
    let Some(&first) = chunk.first() else {
        return;
    };
    if st.message_kind == MessageKind::Undecided {
        st.message_kind = decide(st, sh, first);
    }
    match st.message_kind {
        MessageKind::Prelogin | MessageKind::PreloginReply => st.capture.push(chunk),
        MessageKind::WrappedTls(framing) => records::feed_wrapped(st, sh, framing, chunk),
        MessageKind::LoginResponse => login_scan::feed(st, sh, chunk),
        MessageKind::Skip | MessageKind::Undecided => {}
    }
}

/// Chooses how to read a message from its type, its first payload byte and the phase.
fn decide(st: &mut DirState, sh: &mut Shared, first: u8) -> MessageKind {
    let prelogin = PacketType::PreLogin.as_u8();
    let tabular = PacketType::TabularResult.as_u8();
    let t = st.message_type;
    if is_record_start(first) {
        // TLS inside TDS 7: 0x12 per MS-TDS 2.2.6.5; some servers use 0x04.
        return if t == prelogin {
            MessageKind::WrappedTls(TlsFraming::WrappedPrelogin)
        } else if t == tabular {
            MessageKind::WrappedTls(TlsFraming::WrappedTabular)
        } else {
            MessageKind::Skip
        };
    }
    let phase = sh.obs.phase;
    match st.dir {
        Direction::ClientToServer if t == prelogin && !st.prelogin_done => {
            st.capture.reset();
            MessageKind::Prelogin
        }
        Direction::ServerToClient
            if (t == tabular || t == prelogin) && !st.prelogin_done && phase < Phase::LoginSent =>
        {
            // tiberius accepts a reply typed 0x12 too (tds-handshake.md §2.3).
            st.capture.reset();
            MessageKind::PreloginReply
        }
        Direction::ServerToClient if t == tabular && phase >= Phase::LoginSent => {
            // After a TLS-wrapped LOGIN7, a plaintext reply means login-only encryption
            // (MS-TDS 3.2.5.2, tds-handshake.md §3.3).
            if sh.login_in_tls {
                sh.obs.login_only = true;
            }
            MessageKind::LoginResponse
        }
        _ => MessageKind::Skip,
    }
}

fn packet_end(st: &mut DirState, sh: &mut Shared) {
    if !st.passive {
        st.unit = Unit::Boundary;
    }
    if !st.packet_eom {
        return;
    }
    st.message_open = false;
    let side = match st.message_kind {
        MessageKind::Prelogin => Side::Client,
        MessageKind::PreloginReply => Side::Server,
        MessageKind::LoginResponse => {
            // The response ended without a final DONE: stop scanning.
            st.passive = true;
            return;
        }
        _ => return,
    };
    st.prelogin_done = true;
    let parsed = if st.capture.overflowed() {
        Err(ParseStopReason::PreloginTooLarge)
    } else {
        PreloginView::parse(st.capture.bytes(), side)
            .map(|v| PreloginSummary::from_view(&v))
            .map_err(|e| ParseStopReason::PreloginInvalid(e.kind))
    };
    match (side, parsed) {
        (Side::Client, Ok(summary)) => {
            sh.obs.client_prelogin = Some(summary);
            sh.advance(Phase::PreloginSent);
        }
        (Side::Server, Ok(summary)) => {
            sh.obs.server_prelogin = Some(summary);
            sh.advance(Phase::PreloginReplied);
        }
        (side, Err(reason)) => {
            sh.stop(st.dir, st.message_start, reason);
            if side == Side::Client {
                // The client did send a whole PRELOGIN, however malformed.
                sh.advance(Phase::PreloginSent);
            }
        }
    }
}
