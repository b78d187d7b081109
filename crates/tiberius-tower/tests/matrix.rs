//! The full matrix (design §4): server encryption setting × client level ×
//! policy ceiling × fault, 5 × 4 × 2 × 11 = 440 cases against the emulator's
//! realistic defaults.
//!
//! Every expected outcome is a literal row below, written from the MS-TDS
//! encryption matrix (tds-handshake.md §3.2, MS-TDS 2.2.6.5), the emulator's
//! documented behaviour and the design's rules (design §2.2, §2.3); nothing
//! here re-runs decision logic. "What the server saw" is read from the
//! emulator's own client records with the MS-TDS byte mapping of
//! `common::level_of`.
//!
//! How to read a row:
//!
//! ```text
//! setting  level ceiling  outcome  | emulator saw | attempts
//! ```
//!
//! - levels: `N` NotSupported (offers 0x02), `O` Off (0x00), `R` Required
//!   (0x01/0x03), `S` Strict (the stream starts with a TLS ClientHello);
//! - outcome: `ok L` (connected at level L, SELECT 1 answered) or the cause's
//!   stable name;
//! - emulator saw: one letter per connection the emulator accepted, in order.
//!   `c` is the middleware's one plaintext PRELOGIN check after a silent
//!   TLS-first attempt: it offers ON (0x01) and never sends LOGIN7; it is not
//!   an attempt, so `attempts` does not count it;
//! - attempts: `ConnectError::attempts()` / `Connected::attempts()` length.
//!
//! The policy is `common::fast_policy()`: two retries (three attempts of one
//! kind at most), a 3 s handshake bound and a 3 s Strict probe bound.
//!
//! Facts the rows rest on:
//! - MS-TDS 2.2.6.5: client NOT_SUP + server ON → reply REQ, terminate
//!   (`encryption_required`, the policy upgrades to Required at once); client
//!   ON + server NOT_SUP → reply NOT_SUP, terminate; client OFF + server
//!   NOT_SUP: tiberius goes on with TLS anyway (tds-handshake.md §3.4) and
//!   fails; both are `encryption_unavailable`, never a downgrade.
//! - A server without TDS 8.0 (none, off, force) says nothing to a TLS-first
//!   client (SQL Server 2019, tds-handshake.md §5.4): after the probe bound
//!   the middleware sends one plaintext PRELOGIN (`c`); an answer makes it
//!   `strict_unsupported` (design §2.3), silence or a reset there means a
//!   stall, retried at Strict.
//! - Force Strict Encryption resets a plaintext PRELOGIN without a reply.
//!   A reset with no reply after a plaintext PRELOGIN triggers one Strict
//!   probe when the ceiling is Strict (design §2.3); the probe gets through
//!   when the server answers it with a ServerHello, and then Strict is the
//!   level from there on. A probe that does not get through is followed by a
//!   retry at the level held before it.
//! - A bare close right after the ClientHello is confirmed by one more
//!   attempt before it is reported as a TLS rejection (plan rule 3).
//! - Faults on a schedule `first:1` hit the emulator's first connection only
//!   (whatever that connection is); `always` hits every connection that
//!   reaches the fault's point, the plaintext check included. The strict-only
//!   refusal and the matrix termination come before any fault point.

mod common;

use std::time::{Duration, Instant};

use common::{Server, assert_levels_monotonic, base_config, fast_policy, select_one, service};
use futures_util::StreamExt;
use tds_emulator::{AlertFraming, EncryptionSetting, Fault, Schedule, StallPhase};
use tiberius_tower::EncryptionLevel;
use tower::{Service, ServiceExt};

/// No fault: what SQL Server does with each setting.
const NO_FAULT: &str = "
none               N S  ok N                    | N          | 1
none               N R  ok N                    | N          | 1
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N          | 1
off                N R  ok N                    | N          | 1
off                O S  ok O                    | O          | 1
off                O R  ok O                    | O          | 1
off                R S  ok R                    | R          | 1
off                R R  ok R                    | R          | 1
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  ok R                    | N R        | 2
force              N R  ok R                    | N R        | 2
force              O S  ok O                    | O          | 1
force              O R  ok O                    | O          | 1
force              R S  ok R                    | R          | 1
force              R R  ok R                    | R          | 1
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  ok S                    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  ok S                    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  ok S                    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  ok S                    | S          | 1
strict-only        S R  ok S                    | S          | 1
strict-and-legacy  N S  ok N                    | N          | 1
strict-and-legacy  N R  ok N                    | N          | 1
strict-and-legacy  O S  ok O                    | O          | 1
strict-and-legacy  O R  ok O                    | O          | 1
strict-and-legacy  R S  ok R                    | R          | 1
strict-and-legacy  R R  ok R                    | R          | 1
strict-and-legacy  S S  ok S                    | S          | 1
strict-and-legacy  S R  ok S                    | S          | 1
";

/// The first connection is closed (reset or FIN: both read as a close) after
/// its PRELOGIN, with no reply. With a Strict ceiling that is the strict-only
/// signature, so the policy probes Strict once: a server without TDS 8.0
/// stays silent to the probe and the next attempt returns to the pre-probe
/// level; a strict-and-legacy server lets the probe in. With a Required
/// ceiling it is a blip, retried at the same level. A Strict client meets
/// the fault inside TLS (strict servers) and retries.
const CLOSE_BEFORE_REPLY_ONCE: &str = "
none               N S  ok N                    | N S N      | 3
none               N R  ok N                    | N N        | 2
none               O S  encryption_unavailable  | O S O      | 3
none               O R  encryption_unavailable  | O O        | 2
none               R S  encryption_unavailable  | R S R      | 3
none               R R  encryption_unavailable  | R R        | 2
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N S N      | 3
off                N R  ok N                    | N N        | 2
off                O S  ok O                    | O S O      | 3
off                O R  ok O                    | O O        | 2
off                R S  ok R                    | R S R      | 3
off                R R  ok R                    | R R        | 2
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  ok R                    | N S N R    | 4
force              N R  ok R                    | N N R      | 3
force              O S  ok O                    | O S O      | 3
force              O R  ok O                    | O O        | 2
force              R S  ok R                    | R S R      | 3
force              R R  ok R                    | R R        | 2
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  ok S                    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  ok S                    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  ok S                    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  ok S                    | S S        | 2
strict-only        S R  ok S                    | S S        | 2
strict-and-legacy  N S  ok S                    | N S        | 2
strict-and-legacy  N R  ok N                    | N N        | 2
strict-and-legacy  O S  ok S                    | O S        | 2
strict-and-legacy  O R  ok O                    | O O        | 2
strict-and-legacy  R S  ok S                    | R S        | 2
strict-and-legacy  R R  ok R                    | R R        | 2
strict-and-legacy  S S  ok S                    | S S        | 2
strict-and-legacy  S R  ok S                    | S S        | 2
";

/// The first connection gets its PRELOGIN reply, then a reset. A reply came,
/// so there is no probe: one retry. Where the matrix terminates anyway
/// (none + R, force + N) the fault is never reached. A NOT_SUP reply to an
/// Off client is decisive on its own (tiberius goes on with TLS against a
/// server without it, tds-handshake.md §3.4), whatever happens after it.
const RESET_AFTER_REPLY_ONCE: &str = "
none               N S  ok N                    | N N        | 2
none               N R  ok N                    | N N        | 2
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N N        | 2
off                N R  ok N                    | N N        | 2
off                O S  ok O                    | O O        | 2
off                O R  ok O                    | O O        | 2
off                R S  ok R                    | R R        | 2
off                R R  ok R                    | R R        | 2
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  ok R                    | N R        | 2
force              N R  ok R                    | N R        | 2
force              O S  ok O                    | O O        | 2
force              O R  ok O                    | O O        | 2
force              R S  ok R                    | R R        | 2
force              R R  ok R                    | R R        | 2
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  ok S                    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  ok S                    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  ok S                    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  ok S                    | S S        | 2
strict-only        S R  ok S                    | S S        | 2
strict-and-legacy  N S  ok N                    | N N        | 2
strict-and-legacy  N R  ok N                    | N N        | 2
strict-and-legacy  O S  ok O                    | O O        | 2
strict-and-legacy  O R  ok O                    | O O        | 2
strict-and-legacy  R S  ok R                    | R R        | 2
strict-and-legacy  R R  ok R                    | R R        | 2
strict-and-legacy  S S  ok S                    | S S        | 2
strict-and-legacy  S R  ok S                    | S S        | 2
";

/// Every connection that sends a PRELOGIN is reset before the reply (inside
/// TLS for strict connections, the plaintext check included). One probe at
/// most, then retries until they run out. A probe that completes TLS got
/// through, so the retries stay at Strict. A Strict client to a server
/// without TDS 8.0 is silent, and so is its check (reset): a stall, retried
/// at Strict, each silent attempt checked again.
const RESET_BEFORE_REPLY_ALWAYS: &str = "
none               N S  transient_reset         | N S N N    | 4
none               N R  transient_reset         | N N N      | 3
none               O S  transient_reset         | O S O O    | 4
none               O R  transient_reset         | O O O      | 3
none               R S  transient_reset         | R S R R    | 4
none               R R  transient_reset         | R R R      | 3
none               S S  timeout                 | S c S c S c | 3
none               S R  timeout                 | S c S c S c | 3
off                N S  transient_reset         | N S N N    | 4
off                N R  transient_reset         | N N N      | 3
off                O S  transient_reset         | O S O O    | 4
off                O R  transient_reset         | O O O      | 3
off                R S  transient_reset         | R S R R    | 4
off                R R  transient_reset         | R R R      | 3
off                S S  timeout                 | S c S c S c | 3
off                S R  timeout                 | S c S c S c | 3
force              N S  transient_reset         | N S N N    | 4
force              N R  transient_reset         | N N N      | 3
force              O S  transient_reset         | O S O O    | 4
force              O R  transient_reset         | O O O      | 3
force              R S  transient_reset         | R S R R    | 4
force              R R  transient_reset         | R R R      | 3
force              S S  timeout                 | S c S c S c | 3
force              S R  timeout                 | S c S c S c | 3
strict-only        N S  transient_reset         | N S S S    | 4
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  transient_reset         | O S S S    | 4
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  transient_reset         | R S S S    | 4
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  transient_reset         | S S S      | 3
strict-only        S R  transient_reset         | S S S      | 3
strict-and-legacy  N S  transient_reset         | N S S S    | 4
strict-and-legacy  N R  transient_reset         | N N N      | 3
strict-and-legacy  O S  transient_reset         | O S S S    | 4
strict-and-legacy  O R  transient_reset         | O O O      | 3
strict-and-legacy  R S  transient_reset         | R S S S    | 4
strict-and-legacy  R R  transient_reset         | R R R      | 3
strict-and-legacy  S S  transient_reset         | S S S      | 3
strict-and-legacy  S R  transient_reset         | S S S      | 3
";

/// Every ClientHello is answered with a fatal alert (70 protocol_version,
/// wrapped in a 0x12 packet): deterministic, no retry. Connections without
/// TLS never meet it. A Strict probe answered with an alert got through the
/// pre-login (the server answered TLS-first with TLS), so a strict-only
/// server's reset was `strict_required` and the alert is the cause: two
/// attempts, no retry.
const ALERT_70_WRAPPED_ALWAYS: &str = "
none               N S  ok N                    | N          | 1
none               N R  ok N                    | N          | 1
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N          | 1
off                N R  ok N                    | N          | 1
off                O S  tls_version_mismatch    | O          | 1
off                O R  tls_version_mismatch    | O          | 1
off                R S  tls_version_mismatch    | R          | 1
off                R R  tls_version_mismatch    | R          | 1
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  tls_version_mismatch    | N R        | 2
force              N R  tls_version_mismatch    | N R        | 2
force              O S  tls_version_mismatch    | O          | 1
force              O R  tls_version_mismatch    | O          | 1
force              R S  tls_version_mismatch    | R          | 1
force              R R  tls_version_mismatch    | R          | 1
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  tls_version_mismatch    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  tls_version_mismatch    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  tls_version_mismatch    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  tls_version_mismatch    | S          | 1
strict-only        S R  tls_version_mismatch    | S          | 1
strict-and-legacy  N S  ok N                    | N          | 1
strict-and-legacy  N R  ok N                    | N          | 1
strict-and-legacy  O S  tls_version_mismatch    | O          | 1
strict-and-legacy  O R  tls_version_mismatch    | O          | 1
strict-and-legacy  R S  tls_version_mismatch    | R          | 1
strict-and-legacy  R R  tls_version_mismatch    | R          | 1
strict-and-legacy  S S  tls_version_mismatch    | S          | 1
strict-and-legacy  S R  tls_version_mismatch    | S          | 1
";

/// Every ClientHello is answered with a raw fatal alert 40
/// (handshake_failure): the same shape as alert 70, another cause.
const ALERT_40_RAW_ALWAYS: &str = "
none               N S  ok N                    | N          | 1
none               N R  ok N                    | N          | 1
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N          | 1
off                N R  ok N                    | N          | 1
off                O S  tls_handshake_rejected  | O          | 1
off                O R  tls_handshake_rejected  | O          | 1
off                R S  tls_handshake_rejected  | R          | 1
off                R R  tls_handshake_rejected  | R          | 1
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  tls_handshake_rejected  | N R        | 2
force              N R  tls_handshake_rejected  | N R        | 2
force              O S  tls_handshake_rejected  | O          | 1
force              O R  tls_handshake_rejected  | O          | 1
force              R S  tls_handshake_rejected  | R          | 1
force              R R  tls_handshake_rejected  | R          | 1
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  tls_handshake_rejected  | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  tls_handshake_rejected  | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  tls_handshake_rejected  | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  tls_handshake_rejected  | S          | 1
strict-only        S R  tls_handshake_rejected  | S          | 1
strict-and-legacy  N S  ok N                    | N          | 1
strict-and-legacy  N R  ok N                    | N          | 1
strict-and-legacy  O S  tls_handshake_rejected  | O          | 1
strict-and-legacy  O R  tls_handshake_rejected  | O          | 1
strict-and-legacy  R S  tls_handshake_rejected  | R          | 1
strict-and-legacy  R R  tls_handshake_rejected  | R          | 1
strict-and-legacy  S S  tls_handshake_rejected  | S          | 1
strict-and-legacy  S R  tls_handshake_rejected  | S          | 1
";

/// The first connection that sends a ClientHello on the first accept is
/// reset right after it: a bare close, confirmed by one more attempt, which
/// connects. Connections without TLS, the strict-only refusal and the matrix
/// termination on the first accept never reach the point.
const RESET_AFTER_CLIENT_HELLO_ONCE: &str = "
none               N S  ok N                    | N          | 1
none               N R  ok N                    | N          | 1
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N          | 1
off                N R  ok N                    | N          | 1
off                O S  ok O                    | O O        | 2
off                O R  ok O                    | O O        | 2
off                R S  ok R                    | R R        | 2
off                R R  ok R                    | R R        | 2
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  ok R                    | N R        | 2
force              N R  ok R                    | N R        | 2
force              O S  ok O                    | O O        | 2
force              O R  ok O                    | O O        | 2
force              R S  ok R                    | R R        | 2
force              R R  ok R                    | R R        | 2
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  ok S                    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  ok S                    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  ok S                    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  ok S                    | S S        | 2
strict-only        S R  ok S                    | S S        | 2
strict-and-legacy  N S  ok N                    | N          | 1
strict-and-legacy  N R  ok N                    | N          | 1
strict-and-legacy  O S  ok O                    | O O        | 2
strict-and-legacy  O R  ok O                    | O O        | 2
strict-and-legacy  R S  ok R                    | R R        | 2
strict-and-legacy  R R  ok R                    | R R        | 2
strict-and-legacy  S S  ok S                    | S S        | 2
strict-and-legacy  S R  ok S                    | S S        | 2
";

/// Every LOGIN7 is refused with 18456: deterministic once a login is sent.
/// A Strict probe that logs in (or is refused at login) got through.
const LOGIN_FAILED_ALWAYS: &str = "
none               N S  login_failed            | N          | 1
none               N R  login_failed            | N          | 1
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  login_failed            | N          | 1
off                N R  login_failed            | N          | 1
off                O S  login_failed            | O          | 1
off                O R  login_failed            | O          | 1
off                R S  login_failed            | R          | 1
off                R R  login_failed            | R          | 1
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  login_failed            | N R        | 2
force              N R  login_failed            | N R        | 2
force              O S  login_failed            | O          | 1
force              O R  login_failed            | O          | 1
force              R S  login_failed            | R          | 1
force              R R  login_failed            | R          | 1
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  login_failed            | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  login_failed            | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  login_failed            | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  login_failed            | S          | 1
strict-only        S R  login_failed            | S          | 1
strict-and-legacy  N S  login_failed            | N          | 1
strict-and-legacy  N R  login_failed            | N          | 1
strict-and-legacy  O S  login_failed            | O          | 1
strict-and-legacy  O R  login_failed            | O          | 1
strict-and-legacy  R S  login_failed            | R          | 1
strict-and-legacy  R R  login_failed            | R          | 1
strict-and-legacy  S S  login_failed            | S          | 1
strict-and-legacy  S R  login_failed            | S          | 1
";

/// The first connection's LOGIN7 is refused with 40613 (Azure: database not
/// currently available), a transient server error: one retry, which logs in.
const LOGIN_40613_ONCE: &str = "
none               N S  ok N                    | N N        | 2
none               N R  ok N                    | N N        | 2
none               O S  encryption_unavailable  | O          | 1
none               O R  encryption_unavailable  | O          | 1
none               R S  encryption_unavailable  | R          | 1
none               R R  encryption_unavailable  | R          | 1
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N N        | 2
off                N R  ok N                    | N N        | 2
off                O S  ok O                    | O O        | 2
off                O R  ok O                    | O O        | 2
off                R S  ok R                    | R R        | 2
off                R R  ok R                    | R R        | 2
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  ok R                    | N R        | 2
force              N R  ok R                    | N R        | 2
force              O S  ok O                    | O O        | 2
force              O R  ok O                    | O O        | 2
force              R S  ok R                    | R R        | 2
force              R R  ok R                    | R R        | 2
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  ok S                    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  ok S                    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  ok S                    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  ok S                    | S S        | 2
strict-only        S R  ok S                    | S S        | 2
strict-and-legacy  N S  ok N                    | N N        | 2
strict-and-legacy  N R  ok N                    | N N        | 2
strict-and-legacy  O S  ok O                    | O O        | 2
strict-and-legacy  O R  ok O                    | O O        | 2
strict-and-legacy  R S  ok R                    | R R        | 2
strict-and-legacy  R R  ok R                    | R R        | 2
strict-and-legacy  S S  ok S                    | S S        | 2
strict-and-legacy  S R  ok S                    | S S        | 2
";

/// The first connection's PRELOGIN gets no reply and the connection is
/// held: the 3 s handshake bound ends it as a timeout (not a reset, so no
/// probe), and one retry follows.
const STALL_PRELOGIN_ONCE: &str = "
none               N S  ok N                    | N N        | 2
none               N R  ok N                    | N N        | 2
none               O S  encryption_unavailable  | O O        | 2
none               O R  encryption_unavailable  | O O        | 2
none               R S  encryption_unavailable  | R R        | 2
none               R R  encryption_unavailable  | R R        | 2
none               S S  strict_unsupported      | S c        | 1
none               S R  strict_unsupported      | S c        | 1
off                N S  ok N                    | N N        | 2
off                N R  ok N                    | N N        | 2
off                O S  ok O                    | O O        | 2
off                O R  ok O                    | O O        | 2
off                R S  ok R                    | R R        | 2
off                R R  ok R                    | R R        | 2
off                S S  strict_unsupported      | S c        | 1
off                S R  strict_unsupported      | S c        | 1
force              N S  ok R                    | N N R      | 3
force              N R  ok R                    | N N R      | 3
force              O S  ok O                    | O O        | 2
force              O R  ok O                    | O O        | 2
force              R S  ok R                    | R R        | 2
force              R R  ok R                    | R R        | 2
force              S S  strict_unsupported      | S c        | 1
force              S R  strict_unsupported      | S c        | 1
strict-only        N S  ok S                    | N S        | 2
strict-only        N R  transient_reset         | N N N      | 3
strict-only        O S  ok S                    | O S        | 2
strict-only        O R  transient_reset         | O O O      | 3
strict-only        R S  ok S                    | R S        | 2
strict-only        R R  transient_reset         | R R R      | 3
strict-only        S S  ok S                    | S S        | 2
strict-only        S R  ok S                    | S S        | 2
strict-and-legacy  N S  ok N                    | N N        | 2
strict-and-legacy  N R  ok N                    | N N        | 2
strict-and-legacy  O S  ok O                    | O O        | 2
strict-and-legacy  O R  ok O                    | O O        | 2
strict-and-legacy  R S  ok R                    | R R        | 2
strict-and-legacy  R R  ok R                    | R R        | 2
strict-and-legacy  S S  ok S                    | S S        | 2
strict-and-legacy  S R  ok S                    | S S        | 2
";

/// The faults, each with its table. A reset and a FIN before the reply share
/// one table: the design reads both as the connection closing with no reply.
/// A fault's name, its emulator rule (none for the clean server) and its table.
type FaultTable = (&'static str, Option<(Fault, Schedule)>, &'static str);

fn faults() -> Vec<FaultTable> {
    let once = Schedule::FirstN(1);
    vec![
        ("none", None, NO_FAULT),
        (
            "reset-before-reply@first:1",
            Some((Fault::ResetBeforePreloginReply, once)),
            CLOSE_BEFORE_REPLY_ONCE,
        ),
        (
            "fin-before-reply@first:1",
            Some((Fault::FinBeforePreloginReply, once)),
            CLOSE_BEFORE_REPLY_ONCE,
        ),
        (
            "reset-after-reply@first:1",
            Some((Fault::ResetAfterPreloginReply, once)),
            RESET_AFTER_REPLY_ONCE,
        ),
        (
            "reset-before-reply@always",
            Some((Fault::ResetBeforePreloginReply, Schedule::Always)),
            RESET_BEFORE_REPLY_ALWAYS,
        ),
        (
            "alert-70-wrapped@always",
            Some((
                Fault::Alert {
                    description: 70,
                    framing: AlertFraming::Wrapped,
                },
                Schedule::Always,
            )),
            ALERT_70_WRAPPED_ALWAYS,
        ),
        (
            "alert-40-raw@always",
            Some((
                Fault::Alert {
                    description: 40,
                    framing: AlertFraming::Raw,
                },
                Schedule::Always,
            )),
            ALERT_40_RAW_ALWAYS,
        ),
        (
            "reset-after-client-hello@first:1",
            Some((Fault::ResetAfterClientHello, once)),
            RESET_AFTER_CLIENT_HELLO_ONCE,
        ),
        (
            "login-error-18456@always",
            Some((Fault::LoginError(18456), Schedule::Always)),
            LOGIN_FAILED_ALWAYS,
        ),
        (
            "login-error-40613@first:1",
            Some((Fault::LoginError(40613), once)),
            LOGIN_40613_ONCE,
        ),
        (
            "stall-prelogin@first:1",
            Some((Fault::Stall(StallPhase::Prelogin), once)),
            STALL_PRELOGIN_ONCE,
        ),
    ]
}

/// One connection the emulator accepted, as a row names it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Attempt(EncryptionLevel),
    /// The plaintext PRELOGIN check (offers ON, so the emulator reads Required).
    Check,
}

#[derive(Debug)]
struct Case {
    fault_name: &'static str,
    fault: Option<(Fault, Schedule)>,
    setting: EncryptionSetting,
    level: EncryptionLevel,
    ceiling: EncryptionLevel,
    /// `Ok(level)` or the cause's stable name.
    outcome: Result<EncryptionLevel, String>,
    seen: Vec<Seen>,
    attempts: usize,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{} {} ceiling {} fault {}",
            self.setting, self.level, self.ceiling, self.fault_name
        )
    }
}

fn letter(text: &str) -> EncryptionLevel {
    match text {
        "N" => EncryptionLevel::NotSupported,
        "O" => EncryptionLevel::Off,
        "R" => EncryptionLevel::Required,
        "S" => EncryptionLevel::Strict,
        other => panic!("unknown level letter {other:?}"),
    }
}

/// Reads one table into cases; a malformed row is a broken test.
fn parse(fault_name: &'static str, fault: Option<(Fault, Schedule)>, table: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let columns: Vec<&str> = line.split('|').map(str::trim).collect();
        let [head, seen, attempts] = columns.as_slice() else {
            panic!("{fault_name}: malformed row {line:?}");
        };
        let words: Vec<&str> = head.split_whitespace().collect();
        let outcome = match words.as_slice() {
            [_, _, _, "ok", level] => Ok(letter(level)),
            [_, _, _, cause] => Err((*cause).to_owned()),
            _ => panic!("{fault_name}: malformed row {line:?}"),
        };
        cases.push(Case {
            fault_name,
            fault,
            setting: words[0].parse().expect("a setting name"),
            level: letter(words[1]),
            ceiling: letter(words[2]),
            outcome,
            seen: seen
                .split_whitespace()
                .map(|s| match s {
                    "c" => Seen::Check,
                    level => Seen::Attempt(letter(level)),
                })
                .collect(),
            attempts: attempts.parse().expect("an attempt count"),
        });
    }
    cases
}

fn cases() -> Vec<Case> {
    faults()
        .into_iter()
        .flat_map(|(name, fault, table)| parse(name, fault, table))
        .collect()
}

/// Each case's wall-clock bound: the slowest row (three silent Strict
/// attempts of 3 s each, each checked) needs about 10 s.
const CASE_BOUND: Duration = Duration::from_secs(40);

async fn run(case: Case) -> Result<(), String> {
    let name = case.name();
    let mut config = base_config(case.setting);
    if let Some((fault, schedule)) = case.fault {
        config = config.fault(fault, schedule);
    }
    let server = Server::start(config).await;
    let mut svc = service(fast_policy().ceiling(case.ceiling));
    let request = server.request(case.level);
    let mut problems = Vec::new();

    let started = Instant::now();
    let result = tokio::time::timeout(CASE_BOUND, async {
        let ready = svc.ready().await.expect("always ready");
        ready.call(request).await
    })
    .await;
    let Ok(result) = result else {
        server.stop().await;
        return Err(format!("{name}: no outcome within {CASE_BOUND:?} (a hang)"));
    };
    let took = started.elapsed();

    let (records, outcome) = match result {
        Ok(mut connected) => {
            let level = connected.encryption();
            if select_one(connected.client_mut()).await != Some(1) {
                problems.push("SELECT 1 did not return 1".to_owned());
            }
            (connected.attempts().to_vec(), Ok(level))
        }
        Err(error) => {
            for text in [error.to_string(), format!("{error:?}")] {
                if text.contains("Password123!") {
                    problems.push("the password is in the error's text".to_owned());
                }
            }
            (
                error.attempts().to_vec(),
                Err(error.cause().as_str().to_owned()),
            )
        }
    };
    if outcome != case.outcome {
        problems.push(format!("outcome {outcome:?}, expected {:?}", case.outcome));
    }
    if records.len() != case.attempts {
        problems.push(format!(
            "{} attempts, expected {}",
            records.len(),
            case.attempts
        ));
    }

    // What the server saw, read from its own records.
    let saw = server.offered_levels();
    let expected_saw: Vec<Option<EncryptionLevel>> = case
        .seen
        .iter()
        .map(|s| {
            Some(match s {
                Seen::Attempt(level) => *level,
                Seen::Check => EncryptionLevel::Required,
            })
        })
        .collect();
    if saw != expected_saw {
        problems.push(format!(
            "the emulator saw {saw:?}, expected {expected_saw:?}"
        ));
    }
    // The attempts' own levels are the row's letters without the checks.
    let ours: Vec<EncryptionLevel> = records.iter().map(|r| r.encryption()).collect();
    let row_attempts: Vec<EncryptionLevel> = case
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Attempt(level) => Some(*level),
            Seen::Check => None,
        })
        .collect();
    if ours != row_attempts {
        problems.push(format!(
            "attempt records at {ours:?}, the row says {row_attempts:?}"
        ));
    }
    // Never below the configured level; only the attempt after a failed
    // Strict probe may go back down, to the pre-probe level.
    let probes: Vec<bool> = records.iter().map(|r| r.strict_probe()).collect();
    let check = std::panic::catch_unwind(|| {
        assert_levels_monotonic(&name, case.level, &ours, &probes);
    });
    if check.is_err() {
        problems.push(format!("levels {ours:?} (probes {probes:?}) drop"));
    }
    // Every attempt is bounded by the handshake bound (3 s) and the deadline.
    if took > Duration::from_secs(30) {
        problems.push(format!("took {took:?}"));
    }
    server.stop().await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("; ")))
    }
}

#[test]
fn every_table_has_each_setting_level_and_ceiling_once() {
    for (name, fault, table) in faults() {
        let mut keys: Vec<String> = parse(name, fault, table)
            .iter()
            .map(|c| format!("{} {} {}", c.setting, c.level, c.ceiling))
            .collect();
        assert_eq!(keys.len(), 40, "{name}");
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 40, "{name}: a row is repeated");
    }
    for case in cases() {
        let attempts = case.seen.iter().filter(|s| **s != Seen::Check).count();
        assert_eq!(attempts, case.attempts, "{}", case.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_of_settings_levels_ceilings_and_faults() {
    let cases = cases();
    let total = cases.len();
    assert_eq!(total, 440, "5 settings x 4 levels x 2 ceilings x 11 faults");
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(run)
        .buffer_unordered(16)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
