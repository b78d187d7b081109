//! TDS token encoders for the server's replies (MS-TDS 2.2.7): the login response, login
//! errors, and results for `SELECT 1` and sized result sets. Payloads only; packet framing is
//! done by the session with `tds_handshake::encode_message`.

use crate::config::ServerVersion;
use crate::login7::{TDS_7_4, TDS_8_0};
use crate::route::Route;

/// First TDS version whose DONE row counts are 64-bit and whose INFO/ERROR line numbers are
/// 32-bit (MS-TDS 2.2.7.6 and 2.2.7.10: "ULONGLONG/LONG for TDS 7.2 and later").
const TDS_7_2: u32 = 0x7200_0000;

/// The token dialect a session speaks, from the TDS version of its LOGIN7: the field sizes
/// that changed between TDS versions. A TDS 7.1 client (SQL Server 2000 drivers, FreeTDS
/// `tds version = 7.1`) reads 4-byte DONE row counts, 2-byte line numbers and 2-byte column
/// user types; 7.2 and later, and 8.0, read 8, 4 and 4 bytes. The default is TDS 7.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dialect {
    tds_version: u32,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect::for_tds_version(TDS_7_4)
    }
}

impl Dialect {
    /// The dialect of a client that sent this TDSVersion in LOGIN7.
    pub fn for_tds_version(tds_version: u32) -> Self {
        Dialect { tds_version }
    }

    /// The TDSVersion the dialect was made from.
    pub fn tds_version(self) -> u32 {
        self.tds_version
    }

    /// Whether DONE row counts are u64, INFO/ERROR line numbers u32 and COLMETADATA user
    /// types u32 (TDS 7.2+, and 8.0 whose number 0x08000000 sorts below the 7.x values).
    pub fn wide_counts(self) -> bool {
        self.tds_version == TDS_8_0 || self.tds_version >= TDS_7_2
    }
}

const LOGINACK: u8 = 0xAD;
const ENVCHANGE: u8 = 0xE3;
const INFO: u8 = 0xAB;
const ERROR: u8 = 0xAA;
const DONE: u8 = 0xFD;
const DONEPROC: u8 = 0xFE;
const DONEINPROC: u8 = 0xFF;
const COLMETADATA: u8 = 0x81;
const ROW: u8 = 0xD1;
const RETURNSTATUS: u8 = 0x79;

/// DONE status: more results follow.
pub const DONE_MORE: u16 = 0x01;
/// DONE status: an error occurred.
pub const DONE_ERROR: u16 = 0x02;
/// DONE status: the row count is valid.
pub const DONE_COUNT: u16 = 0x10;
/// DONE status: acknowledges an attention.
pub const DONE_ATTN: u16 = 0x20;
const CURCMD_SELECT: u16 = 0xC1;
const CURCMD_EXECUTE: u16 = 0xE0;

/// SQL_Latin1_General_CP1_CI_AS as sent in the collation ENVCHANGE (MS-TDS §4.4 sample).
const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];
/// Column type BIGVARBINARY; the sized result uses it with this maximum length.
const BIGVARBINARY: u8 = 0xA5;
/// Largest value of one BIGVARBINARY column (non-MAX).
pub const MAX_CELL_BYTES: usize = 8000;

fn utf16(out: &mut Vec<u8>, text: &str) {
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
}

/// ENVCHANGE type of a routing redirect (MS-TDS 2.2.7.9, introduced in TDS 7.4).
pub const ENVCHANGE_ROUTING: u8 = 20;
/// Routing protocol 0: TCP, with the port as ProtocolProperty.
const ROUTING_PROTOCOL_TCP: u8 = 0;

/// At most `max` UTF-16 units of `text`, never ending in half a surrogate pair.
fn utf16_units(text: &str, max: usize) -> Vec<u16> {
    let mut units: Vec<u16> = text.encode_utf16().take(max).collect();
    if units.len() == max && units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
        units.pop();
    }
    units
}

/// B_VARCHAR: u8 character count + UTF-16LE (truncated at 255 characters).
fn b_varchar(out: &mut Vec<u8>, text: &str) {
    let units = utf16_units(text, usize::from(u8::MAX));
    out.push(u8::try_from(units.len()).unwrap_or(u8::MAX));
    for unit in units {
        out.extend_from_slice(&unit.to_le_bytes());
    }
}

/// US_VARCHAR: u16 character count + UTF-16LE (truncated at `max` ≤ 65535 characters).
fn us_varchar(out: &mut Vec<u8>, text: &str, max: usize) {
    let units = utf16_units(text, max.min(usize::from(u16::MAX)));
    out.extend_from_slice(&u16::try_from(units.len()).unwrap_or(u16::MAX).to_le_bytes());
    for unit in units {
        out.extend_from_slice(&unit.to_le_bytes());
    }
}

/// Longest INFO/ERROR message text sent, in UTF-16 units. The token's u16 length must cover
/// the text plus the server name (up to 510 bytes) and the fixed fields; texts embed names a
/// client chose (the user of a failed login), which LOGIN7 allows up to ~64 Ki characters.
const MAX_MESSAGE_UNITS: usize = 4000;

/// Writes `token`, a u16 length placeholder, the body from `body`, then patches the length.
fn with_length(out: &mut Vec<u8>, token: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(token);
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    body(out);
    let len = u16::try_from(out.len() - at - 2).unwrap_or(u16::MAX);
    out[at..at + 2].copy_from_slice(&len.to_le_bytes());
}

fn env_change_strings(out: &mut Vec<u8>, kind: u8, new: &str, old: &str) {
    with_length(out, ENVCHANGE, |out| {
        out.push(kind);
        b_varchar(out, new);
        b_varchar(out, old);
    });
}

/// An INFO (class < 10) or ERROR token.
#[derive(Debug, Clone)]
pub struct ServerMessage<'a> {
    /// Message number.
    pub number: u32,
    /// State.
    pub state: u8,
    /// Class (severity).
    pub class: u8,
    /// Text.
    pub text: &'a str,
    /// Server name.
    pub server: &'a str,
}

fn server_message(out: &mut Vec<u8>, token: u8, message: &ServerMessage<'_>, dialect: Dialect) {
    with_length(out, token, |out| {
        out.extend_from_slice(&message.number.to_le_bytes());
        out.push(message.state);
        out.push(message.class);
        us_varchar(out, message.text, MAX_MESSAGE_UNITS);
        b_varchar(out, message.server);
        b_varchar(out, "");
        // LineNumber: u32 from TDS 7.2, u16 before.
        if dialect.wide_counts() {
            out.extend_from_slice(&1u32.to_le_bytes());
        } else {
            out.extend_from_slice(&1u16.to_le_bytes());
        }
    });
}

/// A DONE, DONEPROC or DONEINPROC token: the row count is u64 from TDS 7.2, u32 before (a
/// count over u32::MAX saturates; no emulated result is that large).
fn done_token(
    out: &mut Vec<u8>,
    token: u8,
    status: u16,
    cur_cmd: u16,
    rows: u64,
    dialect: Dialect,
) {
    out.push(token);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&cur_cmd.to_le_bytes());
    if dialect.wide_counts() {
        out.extend_from_slice(&rows.to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(rows).unwrap_or(u32::MAX).to_le_bytes());
    }
}

/// What goes into a successful login response.
#[derive(Debug, Clone)]
pub struct LoginResponse<'a> {
    /// The database the session is in.
    pub database: &'a str,
    /// The server name in INFO tokens.
    pub server: &'a str,
    /// TDS version acknowledged in LOGINACK (see [`crate::login7::loginack_version`]).
    pub tds_version: u32,
    /// Product version in LOGINACK.
    pub version: ServerVersion,
    /// Negotiated packet size.
    pub packet_size: u32,
}

/// The login response in the order of a real SQL Server (tds-handshake.md §6.2): ENVCHANGE
/// database, INFO 5701, ENVCHANGE collation, ENVCHANGE language, INFO 5703, LOGINACK, ENVCHANGE
/// packet size, DONE.
///
/// Field sizes follow the dialect of [`LoginResponse::tds_version`] ([`Dialect`]).
pub fn login_response(login: &LoginResponse<'_>) -> Vec<u8> {
    let dialect = Dialect::for_tds_version(login.tds_version);
    let mut out = Vec::with_capacity(512);
    env_change_strings(&mut out, 1, login.database, "master");
    let text = format!("Changed database context to '{}'.", login.database);
    server_message(
        &mut out,
        INFO,
        &ServerMessage {
            number: 5701,
            state: 2,
            class: 0,
            text: &text,
            server: login.server,
        },
        dialect,
    );
    with_length(&mut out, ENVCHANGE, |out| {
        out.push(7);
        out.push(COLLATION.len() as u8);
        out.extend_from_slice(&COLLATION);
        out.push(0);
    });
    env_change_strings(&mut out, 2, "us_english", "");
    server_message(
        &mut out,
        INFO,
        &ServerMessage {
            number: 5703,
            state: 1,
            class: 0,
            text: "Changed language setting to us_english.",
            server: login.server,
        },
        dialect,
    );
    login_ack(&mut out, login);
    let size = login.packet_size.to_string();
    env_change_strings(&mut out, 4, &size, "4096");
    done_token(&mut out, DONE, 0, 0, 0, dialect);
    out
}

fn login_ack(out: &mut Vec<u8>, login: &LoginResponse<'_>) {
    with_length(out, LOGINACK, |out| {
        out.push(1); // interface: T-SQL
        out.extend_from_slice(&login.tds_version.to_be_bytes());
        // ProgName "Microsoft SQL Server" + 2 NULs, as real servers send (count 0x16).
        out.push(22);
        utf16(out, "Microsoft SQL Server\0\0");
        out.push(login.version.major);
        out.push(login.version.minor);
        out.extend_from_slice(&login.version.build.to_be_bytes());
    });
}

/// A gateway's login response that sends the client elsewhere: LOGINACK, ENVCHANGE routing,
/// DONE. MS-TDS 2.2.7.9: the routing ENVCHANGE MUST come after LOGINACK. Its new value is
/// RoutingDataValueLength (u16), Protocol (u8, 0 = TCP), ProtocolProperty (u16, the port) and
/// AlternateServer (US_VARCHAR); its old value is two zero bytes.
pub fn routing_response(login: &LoginResponse<'_>, route: &Route) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + 2 * route.host().len());
    login_ack(&mut out, login);
    with_length(&mut out, ENVCHANGE, |out| {
        out.push(ENVCHANGE_ROUTING);
        let mut value = vec![ROUTING_PROTOCOL_TCP];
        value.extend_from_slice(&route.port().to_le_bytes());
        // Route::new caps the host at 255 UTF-16 units, so nothing is truncated here and the
        // value length fits a u16.
        us_varchar(&mut value, route.host(), usize::from(u16::MAX));
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(&value);
        out.extend_from_slice(&[0, 0]);
    });
    done_token(
        &mut out,
        DONE,
        0,
        0,
        0,
        Dialect::for_tds_version(login.tds_version),
    );
    out
}

/// Class and text of the login errors the emulator knows by number; others get class 14 and a
/// generic text.
pub fn login_error_text(number: u32, user: &str, database: &str, server: &str) -> (u8, String) {
    match number {
        18456 => (14, format!("Login failed for user '{user}'.")),
        4060 => (
            11,
            format!(
                "Cannot open database \"{database}\" requested by the login. The login failed."
            ),
        ),
        40613 => (
            17,
            format!(
                "Database '{database}' on server '{server}' is not currently available. Please \
                 retry the connection later. If the problem persists, contact customer support, \
                 and provide them the session tracing ID of '00000000-0000-0000-0000-000000000000'."
            ),
        ),
        _ => (14, format!("Login failed with error {number} (emulated).")),
    }
}

/// ERROR + DONE(error): the answer to a rejected LOGIN7 (the server then closes), in the
/// TDS 7.4 dialect.
pub fn login_error(number: u32, class: u8, text: &str, server: &str) -> Vec<u8> {
    login_error_in(Dialect::default(), number, class, text, server)
}

/// [`login_error`] in the given dialect.
pub fn login_error_in(
    dialect: Dialect,
    number: u32,
    class: u8,
    text: &str,
    server: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    server_message(
        &mut out,
        ERROR,
        &ServerMessage {
            number,
            state: 1,
            class,
            text,
            server,
        },
        dialect,
    );
    done_token(&mut out, DONE, DONE_ERROR, 0, 0, dialect);
    out
}

/// How a request arrived, which shapes the end of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// SQL batch (0x01): the reply ends with DONE.
    Batch,
    /// RPC (0x03): the reply ends with DONEINPROC, RETURNSTATUS, DONEPROC.
    Rpc,
}

/// The reply to `SELECT 1` (tds-handshake.md §6.4, both shapes verified with tiberius).
pub fn select_one(kind: RequestKind) -> Vec<u8> {
    select_one_in(kind, Dialect::default())
}

/// [`select_one`] in the given dialect.
pub fn select_one_in(kind: RequestKind, dialect: Dialect) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match kind {
        RequestKind::Batch => {
            // One INT4 column without a name, one row, DONE COUNT.
            column_header(&mut out, 0, dialect);
            out.extend_from_slice(&[0x38, 0]);
            out.extend_from_slice(&[ROW, 1, 0, 0, 0]);
            done_token(&mut out, DONE, DONE_COUNT, CURCMD_SELECT, 1, dialect);
        }
        RequestKind::Rpc => {
            // One nullable INTN(4) column, one row, then the procedure epilogue.
            column_header(&mut out, NULLABLE, dialect);
            out.extend_from_slice(&[0x26, 4, 0]);
            out.extend_from_slice(&[ROW, 4, 1, 0, 0, 0]);
            rpc_epilogue(&mut out, 1, dialect);
        }
    }
    out
}

/// Column flag: the column is nullable.
const NULLABLE: u16 = 0x0001;

/// COLMETADATA for one column, up to its type byte: count 1, UserType (u32 from TDS 7.2, u16
/// before: MS-TDS 2.2.7.4), Flags.
fn column_header(out: &mut Vec<u8>, flags: u16, dialect: Dialect) {
    out.extend_from_slice(&[COLMETADATA, 1, 0]);
    if dialect.wide_counts() {
        out.extend_from_slice(&0u32.to_le_bytes());
    } else {
        out.extend_from_slice(&0u16.to_le_bytes());
    }
    out.extend_from_slice(&flags.to_le_bytes());
}

fn rpc_epilogue(out: &mut Vec<u8>, rows: u64, dialect: Dialect) {
    done_token(
        out,
        DONEINPROC,
        DONE_MORE | DONE_COUNT,
        CURCMD_SELECT,
        rows,
        dialect,
    );
    out.push(RETURNSTATUS);
    out.extend_from_slice(&0i32.to_le_bytes());
    done_token(out, DONEPROC, 0, CURCMD_EXECUTE, 0, dialect);
}

/// A result set of `rows` rows, each one BIGVARBINARY column named `payload` holding
/// `bytes` bytes (clamped to [`MAX_CELL_BYTES`]); the byte values cycle through 0..=250.
pub fn sized_rows(kind: RequestKind, rows: u64, bytes: usize) -> Vec<u8> {
    sized_rows_in(kind, rows, bytes, Dialect::default())
}

/// [`sized_rows`] in the given dialect.
pub fn sized_rows_in(kind: RequestKind, rows: u64, bytes: usize, dialect: Dialect) -> Vec<u8> {
    let bytes = bytes.min(MAX_CELL_BYTES);
    let capacity = usize::try_from(rows)
        .unwrap_or(usize::MAX)
        .saturating_mul(bytes + 3)
        .saturating_add(64)
        .min(64 << 20);
    let mut out = Vec::with_capacity(capacity);
    column_header(&mut out, NULLABLE, dialect);
    out.push(BIGVARBINARY);
    out.extend_from_slice(&(MAX_CELL_BYTES as u16).to_le_bytes());
    b_varchar(&mut out, "payload");
    let cell: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    for _ in 0..rows {
        out.push(ROW);
        out.extend_from_slice(&(bytes as u16).to_le_bytes());
        out.extend_from_slice(&cell);
    }
    match kind {
        RequestKind::Batch => done_token(&mut out, DONE, DONE_COUNT, CURCMD_SELECT, rows, dialect),
        RequestKind::Rpc => rpc_epilogue(&mut out, rows, dialect),
    }
    out
}

/// The reply to a request the emulator does not interpret: no rows.
pub fn empty_result(kind: RequestKind) -> Vec<u8> {
    empty_result_in(kind, Dialect::default())
}

/// [`empty_result`] in the given dialect.
pub fn empty_result_in(kind: RequestKind, dialect: Dialect) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match kind {
        RequestKind::Batch => done_token(&mut out, DONE, 0, 0, 0, dialect),
        RequestKind::Rpc => {
            out.push(RETURNSTATUS);
            out.extend_from_slice(&0i32.to_le_bytes());
            done_token(&mut out, DONEPROC, 0, CURCMD_EXECUTE, 0, dialect);
        }
    }
    out
}

/// The reply to a transaction-manager request (0x0E): DONE, plus the begin-transaction
/// ENVCHANGE when the request was TM_BEGIN_XACT (5), so clients get a transaction descriptor.
pub fn transaction_reply(request_type: Option<u16>, descriptor: u64) -> Vec<u8> {
    transaction_reply_in(request_type, descriptor, Dialect::default())
}

/// [`transaction_reply`] in the given dialect.
pub fn transaction_reply_in(
    request_type: Option<u16>,
    descriptor: u64,
    dialect: Dialect,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match request_type {
        Some(5) => with_length(&mut out, ENVCHANGE, |out| {
            out.push(8);
            out.push(8);
            out.extend_from_slice(&descriptor.to_le_bytes());
            out.push(0);
        }),
        Some(kind @ (7 | 8)) => with_length(&mut out, ENVCHANGE, |out| {
            out.push(if kind == 7 { 9 } else { 10 });
            out.push(0);
            out.push(8);
            out.extend_from_slice(&descriptor.to_le_bytes());
        }),
        _ => {}
    }
    done_token(&mut out, DONE, 0, 0, 0, dialect);
    out
}

/// DONE with the attention bit: the acknowledgement of a cancel.
pub fn attention_ack() -> Vec<u8> {
    attention_ack_in(Dialect::default())
}

/// [`attention_ack`] in the given dialect.
pub fn attention_ack_in(dialect: Dialect) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    done_token(&mut out, DONE, DONE_ATTN, 0, 0, dialect);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_one_matches_verified_bytes() {
        assert_eq!(
            select_one(RequestKind::Batch),
            [
                0x81, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, 0xD1, 0x01, 0x00,
                0x00, 0x00, 0xFD, 0x10, 0x00, 0xC1, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        let rpc = select_one(RequestKind::Rpc);
        assert_eq!(rpc.len(), 0x39 - 8);
        assert_eq!(
            &rpc[..18],
            &[
                0x81, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x26, 0x04, 0x00, 0xD1, 0x04,
                0x01, 0x00, 0x00, 0x00
            ]
        );
        assert_eq!(&rpc[18..21], &[0xFF, 0x11, 0x00]);
    }

    #[test]
    fn login_error_matches_v10() {
        let (class, text) = login_error_text(18456, "sa", "master", "EMU");
        let bytes = login_error(18456, class, &text, "EMU");
        // V10: aa 4a 00 18 48 00 00 01 0e 1b 00 ...
        assert_eq!(
            &bytes[..11],
            &[0xAA, 0x4A, 0x00, 0x18, 0x48, 0, 0, 1, 0x0E, 0x1B, 0]
        );
        assert_eq!(bytes.len(), 0x62 - 8);
        assert_eq!(&bytes[bytes.len() - 13..bytes.len() - 9], &[0xFD, 2, 0, 0]);
    }

    #[test]
    fn loginack_has_real_length() {
        let bytes = login_response(&LoginResponse {
            database: "master",
            server: "EMU",
            tds_version: 0x7400_0004,
            version: ServerVersion::default(),
            packet_size: 4096,
        });
        let at = bytes.iter().position(|b| *b == LOGINACK).unwrap();
        assert_eq!(
            &bytes[at..at + 8],
            &[0xAD, 0x36, 0x00, 0x01, 0x74, 0x00, 0x00, 0x04]
        );
        assert_eq!(
            &bytes[bytes.len() - 13..],
            &[0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn routing_response_layout() {
        let route = Route::new("node", 0x1234).unwrap();
        let bytes = routing_response(
            &LoginResponse {
                database: "master",
                server: "EMU",
                tds_version: 0x7400_0004,
                version: ServerVersion::default(),
                packet_size: 4096,
            },
            &route,
        );
        assert_eq!(bytes[0], LOGINACK);
        let ack_len = usize::from(u16::from_le_bytes([bytes[1], bytes[2]]));
        let env = &bytes[3 + ack_len..];
        // Value: protocol 0, port LE, US_VARCHAR "node" = 1 + 2 + 2 + 8 = 13 bytes.
        let expected = [
            0xE3, 0x12, 0x00, // ENVCHANGE, length 18 = type 1 + value length 2 + 13 + old 2
            20,   // routing
            13, 0, // RoutingDataValueLength
            0, // TCP
            0x34, 0x12, // port
            4, 0, b'n', 0, b'o', 0, b'd', 0, b'e', 0, // AlternateServer
            0, 0, // old value
        ];
        assert_eq!(&env[..expected.len()], &expected);
        assert_eq!(
            &env[expected.len()..],
            &[0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    /// Walks a token stream of ERROR/INFO/ENVCHANGE/LOGINACK (u16 length) and DONE tokens,
    /// checking every declared length against the bytes present.
    fn assert_well_framed(mut bytes: &[u8]) {
        while let Some((&token, rest)) = bytes.split_first() {
            let len = match token {
                DONE | DONEPROC | DONEINPROC => 12,
                ERROR | INFO | ENVCHANGE | LOGINACK => {
                    2 + usize::from(u16::from_le_bytes([rest[0], rest[1]]))
                }
                other => panic!("unexpected token 0x{other:02x}"),
            };
            assert!(
                len <= rest.len(),
                "token 0x{token:02x} claims {len} of {}",
                rest.len()
            );
            bytes = &rest[len..];
        }
    }

    #[test]
    fn login_error_for_a_huge_user_name_stays_well_framed() {
        // LOGIN7 allows user names of tens of thousands of characters; the error text quotes
        // it, and the ERROR token's u16 length used to saturate, corrupting the stream.
        let user = "é".repeat(40_000);
        let (class, text) = login_error_text(18456, &user, "master", "EMU");
        let bytes = login_error(18456, class, &text, "EMU");
        assert_well_framed(&bytes);
        let text_units = usize::from(u16::from_le_bytes([bytes[9], bytes[10]]));
        assert_eq!(text_units, MAX_MESSAGE_UNITS);
        // A cut never leaves half a surrogate pair.
        let odd = format!("x{}", "😀".repeat(MAX_MESSAGE_UNITS));
        let bytes = login_error(18456, 14, &odd, &odd);
        assert_well_framed(&bytes);
        let count = usize::from(u16::from_le_bytes([bytes[9], bytes[10]]));
        assert_eq!(
            count,
            MAX_MESSAGE_UNITS - 1,
            "the split pair is dropped whole"
        );
        let units: Vec<u16> = bytes[11..11 + 2 * count]
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        assert!(String::from_utf16(&units).is_ok());
        assert_well_framed(&login_response(&LoginResponse {
            database: &"d".repeat(1000),
            server: &"s".repeat(1000),
            tds_version: 0x7400_0004,
            version: ServerVersion::default(),
            packet_size: 4096,
        }));
    }

    #[test]
    fn sized_rows_shape() {
        let bytes = sized_rows(RequestKind::Batch, 3, 10);
        assert_eq!(bytes.len(), 10 + 2 + 15 + 3 * 13 + 13);
    }
}
