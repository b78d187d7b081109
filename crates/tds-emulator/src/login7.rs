//! LOGIN7 (MS-TDS 2.2.6.4): the fields the emulator needs, parsed with bounds checks only.

use std::fmt;

/// Largest LOGIN7 message accepted (MS-TDS: a LOGIN7 must be under 128 KB).
pub const MAX_LOGIN7: usize = 128 * 1024;

/// Size of the LOGIN7 fixed part up to and including cbSSPILong (TDS 7.2+).
const FIXED_LEN: usize = 94;

/// TDS 8.0 as sent in LOGIN7.TDSVersion by strict clients (SqlClient, JDBC, go).
pub const TDS_8_0: u32 = 0x0800_0000;
/// TDS 7.1 (0x71000000; 7.1 Rev 1 is 0x71000001), the first version a server may route,
/// and only with ReadOnlyIntent.
pub const TDS_7_1: u32 = 0x7100_0000;
/// TDS 7.4, the highest TDS 7 version.
pub const TDS_7_4: u32 = 0x7400_0004;

/// What a client sent in LOGIN7. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login7 {
    /// TDSVersion as a number (0x74000004 = 7.4, 0x08000000 = 8.0).
    pub tds_version: u32,
    /// Requested packet size (0 = server default).
    pub packet_size: u32,
    /// Client process id.
    pub client_pid: u32,
    /// OptionFlags2 (0x80 = integrated security).
    pub option_flags2: u8,
    /// TypeFlags (0x20 = ReadOnlyIntent).
    pub type_flags: u8,
    /// Client host name.
    pub host_name: String,
    /// SQL login name.
    pub user: String,
    password: String,
    /// Application name.
    pub app_name: String,
    /// Server name the client used.
    pub server_name: String,
    /// Client interface library name.
    pub library_name: String,
    /// Initial language.
    pub language: String,
    /// Initial database (empty = the login's default).
    pub database: String,
}

impl Login7 {
    /// The de-obfuscated password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether the client asked for integrated (SSPI) authentication.
    pub fn integrated_security(&self) -> bool {
        self.option_flags2 & 0x80 != 0
    }

    /// Whether the client declared a read-only workload (TypeFlags fReadOnlyIntent), which
    /// lets a server route a TDS 7.1-7.3 client (MS-TDS 2.2.7.9).
    pub fn read_only_intent(&self) -> bool {
        self.type_flags & 0x20 != 0
    }

    /// Whether the client can follow an ENVCHANGE routing token: MS-TDS 2.2.7.9 allows it for
    /// TDS 7.4 and later, and for TDS 7.1-7.3 only with ReadOnlyIntent.
    pub fn accepts_routing(&self) -> bool {
        self.tds_version == TDS_8_0
            || self.tds_version >= TDS_7_4
            || (self.tds_version >= TDS_7_1 && self.read_only_intent())
    }

    /// Parses a LOGIN7 payload (after the packet headers). Never panics; rejects payloads over
    /// [`MAX_LOGIN7`] and any string that points outside the payload.
    pub fn parse(payload: &[u8]) -> Result<Login7, Login7Error> {
        if payload.len() > MAX_LOGIN7 {
            return Err(Login7Error::TooLong(payload.len()));
        }
        if payload.len() < FIXED_LEN {
            return Err(Login7Error::TooShort(payload.len()));
        }
        let u32_at = |off: usize| {
            u32::from_le_bytes([
                payload[off],
                payload[off + 1],
                payload[off + 2],
                payload[off + 3],
            ])
        };
        let string_at = |field: &'static str, off: usize, obfuscated: bool| {
            let start = usize::from(u16::from_le_bytes([payload[off], payload[off + 1]]));
            let chars = usize::from(u16::from_le_bytes([payload[off + 2], payload[off + 3]]));
            let end = start + chars * 2;
            let bytes = payload
                .get(start..end)
                .ok_or(Login7Error::OutOfBounds { field })?;
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| {
                    let (lo, hi) = if obfuscated {
                        (deobfuscate(pair[0]), deobfuscate(pair[1]))
                    } else {
                        (pair[0], pair[1])
                    };
                    u16::from_le_bytes([lo, hi])
                })
                .collect();
            Ok(String::from_utf16_lossy(&units))
        };
        Ok(Login7 {
            tds_version: u32_at(4),
            packet_size: u32_at(8),
            client_pid: u32_at(16),
            option_flags2: payload[25],
            type_flags: payload[26],
            host_name: string_at("HostName", 36, false)?,
            user: string_at("UserName", 40, false)?,
            password: string_at("Password", 44, true)?,
            app_name: string_at("AppName", 48, false)?,
            server_name: string_at("ServerName", 52, false)?,
            library_name: string_at("CltIntName", 60, false)?,
            language: string_at("Language", 64, false)?,
            database: string_at("Database", 68, false)?,
        })
    }
}

impl fmt::Debug for Login7 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login7")
            .field("tds_version", &format_args!("{:#010x}", self.tds_version))
            .field("packet_size", &self.packet_size)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("app_name", &self.app_name)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// MS-TDS 2.2.6.4: the client swaps the nibbles of each byte and XORs it with 0xA5.
fn deobfuscate(byte: u8) -> u8 {
    (byte ^ 0xA5).rotate_left(4)
}

/// Why a LOGIN7 payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Login7Error {
    /// Shorter than the fixed part.
    #[error("LOGIN7 of {0} bytes is shorter than its 94-byte fixed part")]
    TooShort(usize),
    /// Over the 128 KB limit.
    #[error("LOGIN7 of {0} bytes exceeds the 128 KB limit")]
    TooLong(usize),
    /// A string's offset and length point outside the payload.
    #[error("LOGIN7 field {field} points outside the message")]
    OutOfBounds {
        /// The field name from MS-TDS.
        field: &'static str,
    },
}

/// The TDS version the server acknowledges in LOGINACK (MS-TDS 2.2.7.14; tds-handshake.md §5.3):
/// 8.0 echoes 8.0; a 7.x request is echoed, capped at 7.4; anything else gets 7.4.
pub fn loginack_version(requested: u32) -> u32 {
    if requested == TDS_8_0 {
        TDS_8_0
    } else if (0x7000_0000..=TDS_7_4).contains(&requested) {
        requested
    } else {
        TDS_7_4
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn obfuscate(byte: u8) -> u8 {
        byte.rotate_left(4) ^ 0xA5
    }

    /// Builds a LOGIN7 payload like a TDS 7.4 client would (test helper).
    pub(crate) fn build(user: &str, password: &str, database: &str, tds_version: u32) -> Vec<u8> {
        let mut fixed = vec![0u8; FIXED_LEN];
        fixed[4..8].copy_from_slice(&tds_version.to_le_bytes());
        fixed[8..12].copy_from_slice(&4096u32.to_le_bytes());
        let mut data = Vec::new();
        let fields: [(usize, &str, bool); 5] = [
            (36, "host", false),
            (40, user, false),
            (44, password, true),
            (48, "app", false),
            (68, database, false),
        ];
        for (off, text, obfuscated) in fields {
            let start = (FIXED_LEN + data.len()) as u16;
            let units: Vec<u16> = text.encode_utf16().collect();
            fixed[off..off + 2].copy_from_slice(&start.to_le_bytes());
            fixed[off + 2..off + 4].copy_from_slice(&(units.len() as u16).to_le_bytes());
            for unit in units {
                for b in unit.to_le_bytes() {
                    data.push(if obfuscated { obfuscate(b) } else { b });
                }
            }
        }
        let total = (FIXED_LEN + data.len()) as u32;
        fixed[0..4].copy_from_slice(&total.to_le_bytes());
        fixed.extend(data);
        fixed
    }

    #[test]
    fn parses_and_deobfuscates() {
        let payload = build("sa", "Password123!", "master", TDS_7_4);
        let login = Login7::parse(&payload).unwrap();
        assert_eq!(login.user, "sa");
        assert_eq!(login.password(), "Password123!");
        assert_eq!(login.database, "master");
        assert_eq!(login.app_name, "app");
        assert_eq!(login.tds_version, TDS_7_4);
        assert_eq!(login.packet_size, 4096);
        assert!(!format!("{login:?}").contains("Password123!"));
    }

    #[test]
    fn rejects_bad_offsets_without_panicking() {
        let mut payload = build("sa", "pw", "master", TDS_7_4);
        payload[40] = 0xFF;
        payload[41] = 0xFF;
        assert_eq!(
            Login7::parse(&payload),
            Err(Login7Error::OutOfBounds { field: "UserName" })
        );
        assert!(Login7::parse(&payload[..50]).is_err());
        for len in 0..payload.len() {
            let _ = Login7::parse(&payload[..len]);
        }
        assert!(Login7::parse(&vec![0; MAX_LOGIN7 + 1]).is_err());
    }

    #[test]
    fn routing_needs_tds_7_4_or_read_only_intent() {
        let login = |version: u32, type_flags: u8| {
            let mut payload = build("sa", "pw", "master", version);
            payload[26] = type_flags;
            Login7::parse(&payload).unwrap()
        };
        assert!(login(TDS_7_4, 0).accepts_routing());
        assert!(login(TDS_8_0, 0).accepts_routing());
        assert!(!login(0x7300_000B, 0).accepts_routing());
        assert!(login(0x7300_000B, 0x20).accepts_routing());
        assert!(login(TDS_7_1, 0x20).accepts_routing());
        assert!(!login(0x7000_0000, 0x20).accepts_routing());
    }

    /// Every string the parser returns is decoded from the input: at most one UTF-16 unit per
    /// two input bytes (lossy decoding replaces units, it never adds any).
    fn assert_bounded(payload: &[u8], login: &Login7) {
        assert!(payload.len() <= MAX_LOGIN7);
        for field in [
            &login.host_name,
            &login.user,
            &login.password,
            &login.app_name,
            &login.server_name,
            &login.library_name,
            &login.language,
            &login.database,
        ] {
            assert!(field.encode_utf16().count() * 2 <= payload.len());
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use super::{assert_bounded, build};

        /// One change to a valid LOGIN7: the ways a hostile or broken peer can differ.
        #[derive(Debug, Clone)]
        enum Mutation {
            /// Overwrite the byte at this index (modulo the length).
            Set(usize, u8),
            /// Overwrite an offset/length pair of the fixed part (36..94) with this value.
            Pointer(usize, u16),
            /// Cut the message at this length (modulo the length + 1).
            Truncate(usize),
            /// Append these bytes.
            Extend(Vec<u8>),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            prop_oneof![
                (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
                (0usize..29, any::<u16>()).prop_map(|(i, v)| Mutation::Pointer(36 + 2 * i, v)),
                any::<usize>().prop_map(Mutation::Truncate),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Extend),
            ]
        }

        fn apply(payload: &mut Vec<u8>, mutation: &Mutation) {
            match mutation {
                Mutation::Set(i, b) if !payload.is_empty() => {
                    let at = i % payload.len();
                    payload[at] = *b;
                }
                Mutation::Set(..) => {}
                Mutation::Pointer(at, value) => {
                    if let Some(slot) = payload.get_mut(*at..*at + 2) {
                        slot.copy_from_slice(&value.to_le_bytes());
                    }
                }
                Mutation::Truncate(len) => payload.truncate(len % (payload.len() + 1)),
                Mutation::Extend(bytes) => payload.extend_from_slice(bytes),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(login) = Login7::parse(&payload) {
                    assert_bounded(&payload, &login);
                }
            }

            #[test]
            fn mutated_logins_never_panic(
                user in "[a-zA-Z0-9_é€]{0,40}",
                password in "\\PC{0,40}",
                database in "[a-z]{0,30}",
                mutations in proptest::collection::vec(mutation(), 0..8),
            ) {
                let mut payload = build(&user, &password, &database, TDS_7_4);
                let valid = Login7::parse(&payload).expect("the unmutated LOGIN7 parses");
                prop_assert_eq!(&valid.user, &user);
                prop_assert_eq!(valid.password(), password.as_str());
                prop_assert_eq!(&valid.database, &database);
                for mutation in &mutations {
                    apply(&mut payload, mutation);
                }
                if let Ok(login) = Login7::parse(&payload) {
                    assert_bounded(&payload, &login);
                }
            }
        }
    }

    #[test]
    fn loginack_version_rules() {
        assert_eq!(loginack_version(TDS_8_0), TDS_8_0);
        assert_eq!(loginack_version(TDS_7_4), TDS_7_4);
        assert_eq!(loginack_version(0x730B_0003), 0x730B_0003);
        assert_eq!(loginack_version(0x7500_0000), TDS_7_4);
        assert_eq!(loginack_version(0), TDS_7_4);
    }
}
