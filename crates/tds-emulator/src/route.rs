//! Routing: answer a successful login with "reconnect over there" (MS-TDS 2.2.7.9, ENVCHANGE
//! type 20), as the Azure SQL gateway in redirect mode and Always On read-only routing do.
//!
//! A rule is `HOST:PORT[@SCHEDULE]` (schedule defaults to `always`; see [`Schedule`]); an IPv6
//! host is written in brackets: `[::1]:1433`. Routing is not a [`Fault`](crate::Fault): it is
//! what a healthy gateway does, and it carries an owned host name.
//!
//! The login response of a routed login is LOGINACK, then the routing ENVCHANGE (the spec
//! requires it after LOGINACK), then DONE; the server then closes, because the client must
//! reconnect to the alternate server. Only logins that would have succeeded are routed:
//! wrong credentials still get error 18456 from the gateway.

use std::fmt;
use std::str::FromStr;

use crate::schedule::{Schedule, ScheduleParseError};

/// Longest alternate server name accepted, in UTF-16 units. DNS names are at most 253
/// characters; the cap keeps the ENVCHANGE far below its u16 length limit.
pub const MAX_ROUTE_HOST: usize = 255;

/// Where a routed client is sent: the ENVCHANGE routing value (protocol 0 = TCP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    host: String,
    port: u16,
}

impl Route {
    /// A route to `host:port`. Rejects an empty host, a host longer than
    /// [`MAX_ROUTE_HOST`] UTF-16 units, and port 0 (MS-TDS 2.2.7.9: "A ProtocolProperty value
    /// of zero is not allowed when Protocol is TCP-IP").
    pub fn new(host: impl Into<String>, port: u16) -> Result<Route, RouteParseError> {
        let host = host.into();
        let reason = if host.is_empty() {
            Some("the host is empty")
        } else if host.encode_utf16().count() > MAX_ROUTE_HOST {
            Some("the host is longer than 255 UTF-16 units")
        } else if port == 0 {
            Some("port 0 is not allowed for TCP routing")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(RouteParseError::Route {
                input: format!("{host}:{port}"),
                reason,
            }),
            None => Ok(Route { host, port }),
        }
    }

    /// The alternate server's host name or address, as sent.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The alternate server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Route {
    type Err = RouteParseError;

    /// `HOST:PORT`, or `[IPV6]:PORT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| RouteParseError::Route {
            input: s.to_owned(),
            reason,
        };
        let (host, port) = s
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| err("expected HOST:PORT"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| err("an IPv6 host needs a closing bracket"))?,
            None if host.contains(':') => {
                return Err(err("write an IPv6 host in brackets: [::1]:PORT"));
            }
            None => host,
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| err("PORT must be a number 1-65535"))?;
        Route::new(host, port)
    }
}

/// A route with the schedule that decides which logins are routed.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    /// Where routed logins are sent.
    pub route: Route,
    /// Which connections (by accept index) are routed.
    pub schedule: Schedule,
}

impl RouteRule {
    /// A rule from its parts.
    pub fn new(route: Route, schedule: Schedule) -> Self {
        RouteRule { route, schedule }
    }
}

impl fmt::Display for RouteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.route, self.schedule)
    }
}

impl FromStr for RouteRule {
    type Err = RouteParseError;

    /// `HOST:PORT@SCHEDULE`, or `HOST:PORT` alone for `always`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (route, schedule) = crate::schedule::split_rule(s)?;
        Ok(RouteRule {
            route: route.parse()?,
            schedule,
        })
    }
}

/// Why a route or route rule was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteParseError {
    /// The `HOST:PORT` part is invalid.
    #[error("invalid route {input:?}: {reason}; expected HOST:PORT or [IPV6]:PORT, port 1-65535")]
    Route {
        /// The text that was rejected.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The part after `@` is not a valid schedule.
    #[error(transparent)]
    Schedule(#[from] ScheduleParseError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_through_text() {
        for text in ["127.0.0.1:1433", "node-2.example.net:11000", "[::1]:14330"] {
            let route: Route = text.parse().unwrap();
            assert_eq!(route.to_string(), text);
        }
        let route: Route = "[::1]:5".parse().unwrap();
        assert_eq!((route.host(), route.port()), ("::1", 5));
    }

    #[test]
    fn rejects_what_the_spec_or_the_encoder_cannot_carry() {
        for bad in [
            "",
            "host",
            ":1433",
            "host:0",
            "host:70000",
            "::1:1433",
            "[::1:1433",
        ] {
            assert!(bad.parse::<Route>().is_err(), "{bad:?} was accepted");
        }
        assert!(Route::new("h".repeat(MAX_ROUTE_HOST), 1).is_ok());
        assert!(Route::new("h".repeat(MAX_ROUTE_HOST + 1), 1).is_err());
    }

    #[test]
    fn rules_parse_with_schedules() {
        let rule: RouteRule = "localhost:1433@first:1".parse().unwrap();
        assert_eq!(rule.schedule, Schedule::FirstN(1));
        assert_eq!(rule.route, Route::new("localhost", 1433).unwrap());
        let rule: RouteRule = "localhost:1433".parse().unwrap();
        assert_eq!(rule.schedule, Schedule::Always);
        assert_eq!(rule.to_string(), "localhost:1433@always");
        assert!("localhost:1433@never".parse::<RouteRule>().is_err());
    }
}
