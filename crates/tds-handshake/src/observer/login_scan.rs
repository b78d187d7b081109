//! A best-effort scan of a plaintext login response for LOGINACK, ERROR and DONE
//! (MS-TDS 2.2.7). Seen only when the login was not encrypted, or in login-only mode.

use super::observation::Phase;
use super::state::{DirState, ScanStep, Shared};

/// LOGINACK token.
const LOGINACK: u8 = 0xAD;
/// ERROR token.
const ERROR: u8 = 0xAA;
/// INFO token.
const INFO: u8 = 0xAB;
/// ENVCHANGE token.
const ENVCHANGE: u8 = 0xE3;
/// DONE, DONEPROC, DONEINPROC: status u16, curcmd u16, rowcount u64 (TDS 7.2+).
const DONE_TOKENS: [u8; 3] = [0xFD, 0xFE, 0xFF];
/// DONE body after the status field.
const DONE_REST: usize = 10;
/// DONE_MORE: more results follow.
const DONE_MORE: u16 = 0x0001;

/// Feeds plaintext login-response payload bytes.
pub(super) fn feed(st: &mut DirState, sh: &mut Shared, mut chunk: &[u8]) {
    while !chunk.is_empty() && !st.passive {
        let scan = &mut st.scan;
        match scan.step {
            ScanStep::Token => {
                let (&token, rest) = chunk.split_first().unwrap_or((&0, &[]));
                chunk = rest;
                scan.token = token;
                scan.have = 0;
                match token {
                    LOGINACK | ERROR | INFO | ENVCHANGE => {
                        scan.login_ack |= token == LOGINACK;
                        scan.error |= token == ERROR;
                        scan.step = ScanStep::Field;
                    }
                    t if DONE_TOKENS.contains(&t) => scan.step = ScanStep::Field,
                    // A token we do not size: stop scanning rather than guess.
                    _ => finish(st, sh, false),
                }
            }
            ScanStep::Field => {
                let have = scan.have;
                let take = (2 - have.min(2)).min(chunk.len());
                if let (Some(dst), Some(src)) =
                    (scan.field.get_mut(have..have + take), chunk.get(..take))
                {
                    dst.copy_from_slice(src);
                }
                scan.have = have + take;
                chunk = chunk.get(take..).unwrap_or_default();
                if scan.have == 2 {
                    let value = u16::from_le_bytes(scan.field);
                    let done = DONE_TOKENS.contains(&scan.token);
                    scan.skip = if done { DONE_REST } else { usize::from(value) };
                    scan.step = ScanStep::Skip;
                    if scan.skip == 0 {
                        after_token(st, sh);
                    }
                }
            }
            ScanStep::Skip => {
                let take = scan.skip.min(chunk.len());
                scan.skip -= take;
                chunk = chunk.get(take..).unwrap_or_default();
                if scan.skip == 0 {
                    after_token(st, sh);
                }
            }
            ScanStep::Done => return,
        }
    }
}

fn after_token(st: &mut DirState, sh: &mut Shared) {
    let scan = &mut st.scan;
    scan.step = ScanStep::Token;
    if DONE_TOKENS.contains(&scan.token) && u16::from_le_bytes(scan.field) & DONE_MORE == 0 {
        let ok = scan.login_ack && !scan.error;
        finish(st, sh, ok);
    }
}

fn finish(st: &mut DirState, sh: &mut Shared, logged_in: bool) {
    st.scan.step = ScanStep::Done;
    st.passive = true;
    if logged_in {
        sh.advance(Phase::LoggedIn);
    }
}
