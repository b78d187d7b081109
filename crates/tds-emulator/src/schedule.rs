//! When a fault fires: deterministic schedules evaluated per accepted connection.
//!
//! A schedule is a pure function of the connection's accept index (0 for the first connection the
//! emulator accepts), so the same configuration gives the same faults on the same connections,
//! whatever the task scheduling. The probabilistic schedule hashes the seed and the index with
//! SplitMix64 instead of drawing from a shared generator for the same reason.

use std::fmt;
use std::str::FromStr;

/// When a fault rule applies.
///
/// Text form (see [`FromStr`]): `always`, `first:N`, `every:N`, `p:P` or `p:P:seed:S`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Every connection.
    Always,
    /// The first N connections the emulator accepts (indices `0..N`).
    FirstN(u32),
    /// Every Nth connection: the Nth, 2Nth, ... (1-based), i.e. indices `N-1, 2N-1, ...`.
    EveryNth(u32),
    /// Each connection independently with probability `p` (0.0..=1.0), decided by a
    /// deterministic hash of `seed` and the connection index.
    Probability {
        /// Probability in `0.0..=1.0`.
        p: f64,
        /// Seed of the deterministic pseudo-random decision.
        seed: u64,
    },
}

impl Schedule {
    /// Whether the rule applies to the connection with this 0-based accept index.
    pub fn fires(&self, connection_index: u64) -> bool {
        match *self {
            Schedule::Always => true,
            Schedule::FirstN(n) => connection_index < u64::from(n),
            Schedule::EveryNth(n) => {
                n != 0
                    && connection_index
                        .wrapping_add(1)
                        .is_multiple_of(u64::from(n))
            }
            Schedule::Probability { p, seed } => {
                unit_interval(splitmix64(seed ^ splitmix64(connection_index))) < p
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Always => f.write_str("always"),
            Schedule::FirstN(n) => write!(f, "first:{n}"),
            Schedule::EveryNth(n) => write!(f, "every:{n}"),
            Schedule::Probability { p, seed } => write!(f, "p:{p}:seed:{seed}"),
        }
    }
}

/// Why a schedule string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid schedule {input:?}: {reason} (expected always, first:N, every:N, p:P or p:P:seed:S)"
)]
pub struct ScheduleParseError {
    input: String,
    reason: &'static str,
}

/// Splits a rule's text `WHAT@SCHEDULE` into `WHAT` and its schedule; `WHAT` alone means
/// [`Schedule::Always`]. Shared by the fault and route rules.
pub(crate) fn split_rule(s: &str) -> Result<(&str, Schedule), ScheduleParseError> {
    match s.split_once('@') {
        Some((what, schedule)) => Ok((what, schedule.parse()?)),
        None => Ok((s, Schedule::Always)),
    }
}

impl FromStr for Schedule {
    type Err = ScheduleParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ScheduleParseError {
            input: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            ["always"] => Ok(Schedule::Always),
            ["first", n] => n
                .parse()
                .map(Schedule::FirstN)
                .map_err(|_| err("N must be a whole number")),
            ["every", n] => match n.parse::<u32>() {
                Ok(0) => Err(err("every:0 would never fire; N must be at least 1")),
                Ok(n) => Ok(Schedule::EveryNth(n)),
                Err(_) => Err(err("N must be a whole number")),
            },
            ["p", p] | ["p", p, "seed", _] => {
                let p: f64 = p.parse().map_err(|_| err("P must be a number"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(err("P must be between 0 and 1"));
                }
                let seed = match parts.get(3) {
                    Some(seed) => seed.parse().map_err(|_| err("S must be a whole number"))?,
                    None => 0,
                };
                Ok(Schedule::Probability { p, seed })
            }
            _ => Err(err("unknown form")),
        }
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of `x`.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a 64-bit value to `[0, 1)` using its top 53 bits.
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_every() {
        let first: Vec<bool> = (0..4).map(|i| Schedule::FirstN(2).fires(i)).collect();
        assert_eq!(first, [true, true, false, false]);
        let every: Vec<bool> = (0..6).map(|i| Schedule::EveryNth(3).fires(i)).collect();
        assert_eq!(every, [false, false, true, false, false, true]);
    }

    #[test]
    fn probability_is_deterministic_and_roughly_right() {
        let s = Schedule::Probability { p: 0.3, seed: 7 };
        let a: Vec<bool> = (0..1000).map(|i| s.fires(i)).collect();
        let b: Vec<bool> = (0..1000).map(|i| s.fires(i)).collect();
        assert_eq!(a, b);
        let hits = a.iter().filter(|f| **f).count();
        assert!((200..400).contains(&hits), "{hits}");
        assert!(!(0..100).any(|i| Schedule::Probability { p: 0.0, seed: 1 }.fires(i)));
        assert!((0..100).all(|i| Schedule::Probability { p: 1.0, seed: 1 }.fires(i)));
    }

    #[test]
    fn parses() {
        assert_eq!("always".parse(), Ok(Schedule::Always));
        assert_eq!("first:2".parse(), Ok(Schedule::FirstN(2)));
        assert_eq!("every:3".parse(), Ok(Schedule::EveryNth(3)));
        assert_eq!(
            "p:0.3:seed:7".parse(),
            Ok(Schedule::Probability { p: 0.3, seed: 7 })
        );
        assert!("every:0".parse::<Schedule>().is_err());
        assert!("p:1.5".parse::<Schedule>().is_err());
        assert!("sometimes".parse::<Schedule>().is_err());
    }
}
