//! The PRELOGIN ENCRYPTION byte and the server's negotiation matrix (MS-TDS 2.2.6.5).

use core::fmt;

/// The ENCRYPTION option value, kept raw so non-spec values sent by real clients survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Encryption(pub u8);

impl Encryption {
    /// ENCRYPT_OFF: encryption available but only the login is encrypted.
    pub const OFF: Self = Self(0x00);
    /// ENCRYPT_ON: encryption available and wanted.
    pub const ON: Self = Self(0x01);
    /// ENCRYPT_NOT_SUP: no encryption available.
    pub const NOT_SUP: Self = Self(0x02);
    /// ENCRYPT_REQ: encryption required.
    pub const REQ: Self = Self(0x03);
    /// What go-mssqldb sends in strict mode ("encryptStrict"); not a spec value.
    pub const STRICT_GO: Self = Self(0x04);
    /// ENCRYPT_CLIENT_CERT bit, combined with OFF, ON or REQ (SQL Server on Linux only).
    pub const CLIENT_CERT: u8 = 0x80;

    /// True when the CLIENT_CERT bit is set.
    pub fn client_cert(self) -> bool {
        self.0 & Self::CLIENT_CERT != 0
    }

    /// The value without the CLIENT_CERT bit.
    pub fn base(self) -> Encryption {
        Encryption(self.0 & !Self::CLIENT_CERT)
    }

    /// True for `0x00..=0x04`, with or without the CLIENT_CERT bit.
    pub fn is_known(self) -> bool {
        self.base().0 <= Self::STRICT_GO.0
    }

    /// Stable snake_case name, e.g. `"req"` or `"client_cert|on"`.
    pub fn name(self) -> &'static str {
        let cert = self.client_cert();
        match (self.base(), cert) {
            (Self::OFF, false) => "off",
            (Self::ON, false) => "on",
            (Self::NOT_SUP, false) => "not_sup",
            (Self::REQ, false) => "req",
            (Self::STRICT_GO, false) => "strict",
            (Self::OFF, true) => "client_cert|off",
            (Self::ON, true) => "client_cert|on",
            (Self::NOT_SUP, true) => "client_cert|not_sup",
            (Self::REQ, true) => "client_cert|req",
            (Self::STRICT_GO, true) => "client_cert|strict",
            _ => "unknown",
        }
    }
}

impl From<u8> for Encryption {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.0)
    }
}

/// The server-side setting: the columns of the MS-TDS 2.2.6.5 matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerEncryption {
    /// The default: a certificate is available, encryption is not forced.
    Off,
    /// "Force Encryption = Yes".
    On,
    /// No TLS at all (never real SQL Server 2005+, but proxies do it).
    NotSup,
}

/// What the server replies and whether it closes the connection after replying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Negotiation {
    /// The ENCRYPTION value of the PRELOGIN reply.
    pub reply: Encryption,
    /// True when the server sends the reply and then terminates the connection.
    pub terminate: bool,
}

impl Negotiation {
    const fn keep(reply: Encryption) -> Self {
        Self {
            reply,
            terminate: false,
        }
    }

    const fn close(reply: Encryption) -> Self {
        Self {
            reply,
            terminate: true,
        }
    }
}

/// The server's reply for a client value, per the MS-TDS 2.2.6.5 matrix
/// (tds-handshake.md §3.2).
///
/// Values outside the spec (go-mssqldb's strict `0x04`, the reserved `0x20`, anything
/// else) are treated like ENCRYPT_ON: the client evidently wants encryption, and
/// answering as for ON never downgrades it. The reply never carries the CLIENT_CERT bit.
pub fn negotiate(client: Encryption, server: ServerEncryption) -> Negotiation {
    use ServerEncryption as S;
    let cert = client.client_cert();
    match (client.base(), cert, server) {
        // CLIENT_CERT|NOT_SUP is contradictory: always REQ and terminate.
        (Encryption::NOT_SUP, true, _) => Negotiation::close(Encryption::REQ),
        (Encryption::OFF, _, S::Off) => Negotiation::keep(Encryption::OFF),
        (Encryption::OFF, _, S::On) => Negotiation::keep(Encryption::REQ),
        // Plain OFF against NOT_SUP continues unencrypted; with a client certificate the
        // login cannot happen without TLS, so the server terminates.
        (Encryption::OFF, cert, S::NotSup) => Negotiation {
            reply: Encryption::NOT_SUP,
            terminate: cert,
        },
        (Encryption::NOT_SUP, false, S::Off) => Negotiation::keep(Encryption::NOT_SUP),
        (Encryption::NOT_SUP, false, S::On) => Negotiation::close(Encryption::REQ),
        (Encryption::NOT_SUP, false, S::NotSup) => Negotiation::keep(Encryption::NOT_SUP),
        // ON, REQ and every unknown value: encryption wanted.
        (_, _, S::Off | S::On) => Negotiation::keep(Encryption::ON),
        (_, _, S::NotSup) => Negotiation::close(Encryption::NOT_SUP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_matches_ms_tds_2_2_6_5() {
        use ServerEncryption::{NotSup, Off, On};
        let e = Encryption;
        // (client, [(server, reply, terminate)])
        type Cell = (ServerEncryption, u8, bool);
        let rows: [(u8, [Cell; 3]); 8] = [
            (
                0x00,
                [(Off, 0x00, false), (On, 0x03, false), (NotSup, 0x02, false)],
            ),
            (
                0x01,
                [(Off, 0x01, false), (On, 0x01, false), (NotSup, 0x02, true)],
            ),
            (
                0x02,
                [(Off, 0x02, false), (On, 0x03, true), (NotSup, 0x02, false)],
            ),
            (
                0x03,
                [(Off, 0x01, false), (On, 0x01, false), (NotSup, 0x02, true)],
            ),
            (
                0x80,
                [(Off, 0x00, false), (On, 0x03, false), (NotSup, 0x02, true)],
            ),
            (
                0x81,
                [(Off, 0x01, false), (On, 0x01, false), (NotSup, 0x02, true)],
            ),
            (
                0x82,
                [(Off, 0x03, true), (On, 0x03, true), (NotSup, 0x03, true)],
            ),
            (
                0x83,
                [(Off, 0x01, false), (On, 0x01, false), (NotSup, 0x02, true)],
            ),
        ];
        for (client, cells) in rows {
            for (server, reply, terminate) in cells {
                assert_eq!(
                    negotiate(e(client), server),
                    Negotiation {
                        reply: e(reply),
                        terminate
                    },
                    "client 0x{client:02x} server {server:?}"
                );
            }
        }
    }

    #[test]
    fn go_strict_value_is_treated_like_on() {
        assert_eq!(
            negotiate(Encryption::STRICT_GO, ServerEncryption::On).reply,
            Encryption::ON
        );
        assert!(negotiate(Encryption::STRICT_GO, ServerEncryption::NotSup).terminate);
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(Encryption::REQ.name(), "req");
        assert_eq!(Encryption(0x81).name(), "client_cert|on");
        assert_eq!(Encryption(0x20).name(), "unknown");
        assert!(Encryption(0x84).is_known());
        assert!(!Encryption(0x05).is_known());
        assert_eq!(Encryption(0x83).base(), Encryption::REQ);
    }
}
