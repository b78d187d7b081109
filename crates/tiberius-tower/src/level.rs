//! [`EncryptionLevel`]: the ladder every decision of this crate moves along.

use std::fmt;

/// Encryption levels ordered by strength: `NotSupported < Off < Required < Strict`.
///
/// tiberius's own `EncryptionLevel` is ordered by wire value, not strength,
/// and has both `On` and `Required`; they behave the same in tiberius 0.13
/// (both fail on a server reply of OFF or NOT_SUP), so `On` maps to
/// [`EncryptionLevel::Required`] here and the ladder has four rungs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EncryptionLevel {
    /// No TLS at all (PRELOGIN ENCRYPTION = NOT_SUP).
    NotSupported,
    /// TLS for the login only, if the server has a certificate (ENCRYPTION = OFF).
    Off,
    /// TLS for everything, fail without it (ENCRYPTION = REQ).
    Required,
    /// TDS 8.0: TLS before the first TDS byte, ALPN `tds/8.0`.
    Strict,
}

impl EncryptionLevel {
    /// The ladder, weakest first.
    pub const LADDER: [EncryptionLevel; 4] = [
        EncryptionLevel::NotSupported,
        EncryptionLevel::Off,
        EncryptionLevel::Required,
        EncryptionLevel::Strict,
    ];

    /// The highest level an upgrade may reach by default: Strict when this
    /// crate's `tds80` feature is on, Required otherwise.
    pub const DEFAULT_CEILING: EncryptionLevel = if cfg!(feature = "tds80") {
        EncryptionLevel::Strict
    } else {
        EncryptionLevel::Required
    };

    /// A stable lowercase name: `not_supported`, `off`, `required`, `strict`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EncryptionLevel::NotSupported => "not_supported",
            EncryptionLevel::Off => "off",
            EncryptionLevel::Required => "required",
            EncryptionLevel::Strict => "strict",
        }
    }

    /// The tiberius level that realises this rung.
    pub(crate) const fn to_tiberius(self) -> tiberius::EncryptionLevel {
        match self {
            EncryptionLevel::NotSupported => tiberius::EncryptionLevel::NotSupported,
            EncryptionLevel::Off => tiberius::EncryptionLevel::Off,
            EncryptionLevel::Required => tiberius::EncryptionLevel::Required,
            EncryptionLevel::Strict => tiberius::EncryptionLevel::Strict,
        }
    }

    /// The next rung up (Strict stays Strict).
    pub(crate) const fn next_rung(self) -> EncryptionLevel {
        match self {
            EncryptionLevel::NotSupported => EncryptionLevel::Off,
            EncryptionLevel::Off => EncryptionLevel::Required,
            EncryptionLevel::Required | EncryptionLevel::Strict => EncryptionLevel::Strict,
        }
    }
}

impl From<tiberius::EncryptionLevel> for EncryptionLevel {
    fn from(level: tiberius::EncryptionLevel) -> Self {
        match level {
            tiberius::EncryptionLevel::NotSupported => EncryptionLevel::NotSupported,
            tiberius::EncryptionLevel::Off => EncryptionLevel::Off,
            tiberius::EncryptionLevel::On | tiberius::EncryptionLevel::Required => {
                EncryptionLevel::Required
            }
            tiberius::EncryptionLevel::Strict => EncryptionLevel::Strict,
        }
    }
}

impl fmt::Display for EncryptionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_is_ordered_by_strength() {
        assert!(EncryptionLevel::NotSupported < EncryptionLevel::Off);
        assert!(EncryptionLevel::Off < EncryptionLevel::Required);
        assert!(EncryptionLevel::Required < EncryptionLevel::Strict);
        assert_eq!(
            EncryptionLevel::from(tiberius::EncryptionLevel::On),
            EncryptionLevel::Required
        );
        for level in EncryptionLevel::LADDER {
            assert_eq!(EncryptionLevel::from(level.to_tiberius()), level);
        }
    }

    #[test]
    fn the_next_rung_is_one_step_up_and_strict_is_the_top() {
        use EncryptionLevel::*;
        assert_eq!(NotSupported.next_rung(), Off);
        assert_eq!(Off.next_rung(), Required);
        assert_eq!(Required.next_rung(), Strict);
        assert_eq!(Strict.next_rung(), Strict);
    }
}
