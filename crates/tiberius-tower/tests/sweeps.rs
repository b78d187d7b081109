//! Resets at every byte of the server's handshake (design §4, issue 11),
//! for the TDS 7 TLS flow (Force Encryption, client Required) and the TDS 8.0
//! strict flow (Force Strict Encryption, client Strict).
//!
//! Two sweeps per flow:
//! - over sockets: the emulator truncates its output after N bytes and
//!   resets, for every N from 0 to the clean handshake's length. Each offset
//!   gets exactly one attempt; every offset short of the end fails with a
//!   cause from the expected set, never a timeout (a hang is a failure), and
//!   the end connects. One emulator (one certificate) serves a whole lane of
//!   offsets: its fault rules give accept index i the offset of row i;
//! - as a replay: a clean connect is recorded through a loopback relay (both
//!   directions, in order), then for every cut offset its prefix is fed
//!   through `tds_handshake::Observer` and `classify` is asked about a reset
//!   there. No socket, so it covers every byte in milliseconds.

mod common;

use std::time::Duration;

use common::{Server, Side, base_config, fast_policy, record_one_connection, service};
use tds_emulator::{EncryptionSetting, Fault, Schedule};
use tds_handshake::{Direction, Observer};
use tiberius_tower::{AttemptFailure, Cause, EncryptionLevel, classify};
use tower::{Service, ServiceExt};

/// Causes a reset inside the handshake may have. `timeout` is not one: the
/// emulator resets right after the cut, so waiting is a bug.
const ALLOWED: [Cause; 3] = [
    Cause::TransientReset,
    Cause::TlsHandshakeRejected,
    Cause::ProtocolViolation,
];

/// The emulator signs its handshake with ECDSA P-256, whose DER signature is
/// 70 to 72 bytes long (69 or fewer when r or s starts with a zero byte,
/// about 1 in 128): the same server's handshake length varies by two or
/// three bytes from one connection to the next. Offsets within this distance
/// of the measured end may go either way; everything short of it must fail
/// and everything past it must connect.
const SIGNATURE_SLACK: u64 = 3;

/// Lanes of the socket sweep, each with its own emulator, run side by side.
const LANES: u64 = 4;

/// Bound on one connect of the sweep (its handshake bound is 3 s).
const CONNECT_BOUND: Duration = Duration::from_secs(20);

/// The emulator's fault rules for one lane: accept index 0 is the clean
/// measurement, index i >= 1 is cut at `offsets[i - 1]`. The first matching
/// rule wins, and `first:N` matches indices below N.
fn lane_config(setting: EncryptionSetting, offsets: &[u64]) -> tds_emulator::EmulatorConfig {
    let mut config =
        base_config(setting).fault(Fault::ResetAtServerByte(u64::MAX), Schedule::FirstN(1));
    for (i, offset) in offsets.iter().enumerate() {
        let upto = u32::try_from(i + 2).expect("few offsets");
        config = config.fault(Fault::ResetAtServerByte(*offset), Schedule::FirstN(upto));
    }
    config
}

/// One attempt, no retry, no upgrade, no probe: the sweep is about
/// classification, hangs and panics.
fn one_attempt(level: EncryptionLevel) -> tiberius_tower::ConnectPolicy {
    fast_policy().max_retries(0).max_attempts(1).ceiling(level)
}

/// How many bytes the server wrote in a recorded connection.
fn server_length(transcript: &[(Side, Vec<u8>)]) -> u64 {
    transcript
        .iter()
        .filter(|(side, _)| *side == Side::Server)
        .map(|(_, bytes)| bytes.len() as u64)
        .sum()
}

/// Connects once through a recording relay; returns the transcript.
async fn record_clean(server: &Server, level: EncryptionLevel) -> Vec<(Side, Vec<u8>)> {
    let (port, transcript, relay) = record_one_connection(server.emulator.local_addr()).await;
    let mut svc = service(one_attempt(level));
    let ready = svc.ready().await.expect("ready");
    let connected =
        tokio::time::timeout(CONNECT_BOUND, ready.call(server.request_via(port, level)))
            .await
            .expect("the clean connect finishes")
            .expect("the clean connect succeeds");
    drop(connected);
    let _ = tokio::time::timeout(CONNECT_BOUND, relay).await;
    transcript.lock().expect("transcript lock").clone()
}

/// One lane of the socket sweep: offsets `lane, lane + LANES, ...` up to
/// this emulator's measured end plus the slack. Returns the number of
/// offsets swept and the measured length.
async fn sweep_lane(setting: EncryptionSetting, level: EncryptionLevel, lane: u64) -> (u64, u64) {
    // Offsets are known only after the clean length is measured, and the
    // rules are fixed at start: give the lane every offset it could need
    // (handshakes here are well under 8 KiB) and stop early.
    let offsets: Vec<u64> = (0..8192)
        .skip(lane as usize)
        .step_by(LANES as usize)
        .collect();
    let server = Server::start(lane_config(setting, &offsets)).await;
    let clean = record_clean(&server, level).await;
    let length = server_length(&clean);
    assert!(length < 8192, "{setting}: handshake of {length} bytes");

    let mut swept = 0;
    for (i, &offset) in offsets.iter().enumerate() {
        if offset > length + SIGNATURE_SLACK {
            break;
        }
        let mut svc = service(one_attempt(level));
        let ready = svc.ready().await.expect("ready");
        let Ok(outcome) =
            tokio::time::timeout(CONNECT_BOUND, ready.call(server.request(level))).await
        else {
            panic!("{setting}/{level} cut at {offset}: no outcome (a hang)");
        };
        // The emulator saw this connect as accept index i + 1, cut at `offset`.
        let clients = server.emulator.clients();
        assert_eq!(
            clients.len(),
            i + 2,
            "{setting}/{level} cut at {offset}: one connection per offset"
        );
        match outcome {
            Ok(connected) => {
                assert_eq!(connected.attempts().len(), 1);
                assert!(
                    offset + SIGNATURE_SLACK >= length,
                    "{setting}/{level}: connected although cut at {offset} of {length}"
                );
            }
            Err(error) => {
                assert_eq!(
                    error.attempts().len(),
                    1,
                    "{setting}/{level} cut at {offset}: one attempt"
                );
                assert!(
                    ALLOWED.contains(&error.cause()),
                    "{setting}/{level} cut at {offset}: unexpected cause {}",
                    error.cause()
                );
                assert!(
                    offset < length + SIGNATURE_SLACK,
                    "{setting}/{level}: failed ({}) although cut at {offset}, past the end {length}",
                    error.cause()
                );
            }
        }
        swept += 1;
    }
    server.stop().await;
    (swept, length)
}

async fn sweep(setting: EncryptionSetting, level: EncryptionLevel) -> (u64, u64) {
    let lanes = (0..LANES).map(|lane| sweep_lane(setting, level, lane));
    let results = futures_util::future::join_all(lanes).await;
    let swept = results.iter().map(|(n, _)| n).sum();
    let shortest = results.iter().map(|(_, l)| *l).min().unwrap_or_default();
    (swept, shortest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_at_every_byte_of_the_tds7_tls_handshake() {
    let (swept, length) = sweep(EncryptionSetting::Force, EncryptionLevel::Required).await;
    // The PRELOGIN reply alone is 43 bytes; TLS and the login response follow.
    assert!(length > 43, "handshake of {length} bytes");
    assert!(swept > length, "{swept} offsets for {length} bytes");
    println!("tds7: {swept} offsets swept, handshake {length} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_at_every_byte_of_the_strict_handshake() {
    let (swept, length) = sweep(EncryptionSetting::StrictOnly, EncryptionLevel::Strict).await;
    assert!(length > 100, "longer than a ServerHello: {length} bytes");
    assert!(swept > length, "{swept} offsets for {length} bytes");
    println!("strict: {swept} offsets swept, handshake {length} bytes");
}

/// The cause `classify` gives a reset after the server's first `cut` bytes
/// of a recorded clean handshake. The client's bytes are fed up to what it
/// had sent when the reset arrived: everything before the cut, and its
/// answer to a server flight the cut left whole.
fn replay(transcript: &[(Side, Vec<u8>)], cut: u64) -> Cause {
    let mut observer = Observer::new();
    let mut served = 0u64;
    for (side, bytes) in transcript {
        match side {
            Side::Client => observer.feed(Direction::ClientToServer, bytes),
            Side::Server => {
                if served >= cut {
                    break;
                }
                let room = usize::try_from(cut - served).unwrap_or(usize::MAX);
                let take = bytes.get(..room.min(bytes.len())).unwrap_or(bytes);
                observer.feed(Direction::ServerToClient, take);
                served += take.len() as u64;
                if take.len() < bytes.len() {
                    // The client never saw the whole flight, so never answered it.
                    break;
                }
            }
        }
    }
    let reset = AttemptFailure::Tiberius(tiberius::error::Error::Io {
        kind: std::io::ErrorKind::ConnectionReset,
        message: "Connection reset by peer (os error 104)".to_owned(),
    });
    classify(observer.observation(), &reset)
}

async fn replay_every_offset(setting: EncryptionSetting, level: EncryptionLevel) -> Vec<Cause> {
    let server = Server::start(base_config(setting)).await;
    let transcript = record_clean(&server, level).await;
    server.stop().await;
    let length = server_length(&transcript);
    let started = std::time::Instant::now();
    let causes: Vec<Cause> = (0..length).map(|cut| replay(&transcript, cut)).collect();
    println!(
        "{setting}/{level}: replayed {length} offsets in {:?}",
        started.elapsed()
    );
    for (cut, cause) in causes.iter().enumerate() {
        assert!(
            ALLOWED.contains(cause),
            "{setting}/{level} replay cut at {cut} of {length}: {cause}"
        );
    }
    causes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_tds7_transcript_classifies_a_reset_at_every_offset() {
    let causes = replay_every_offset(EncryptionSetting::Force, EncryptionLevel::Required).await;
    // Nothing came back after the plaintext PRELOGIN: the ambiguous reset of
    // design §2.3, a transient reset until a probe says otherwise.
    assert_eq!(causes[0], Cause::TransientReset);
    // A partial PRELOGIN reply (8-byte header, 43 bytes in all) is still no reply.
    assert_eq!(causes[42], Cause::TransientReset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_strict_transcript_classifies_a_reset_at_every_offset() {
    let causes = replay_every_offset(EncryptionSetting::StrictOnly, EncryptionLevel::Strict).await;
    assert!(!causes.is_empty());
}
