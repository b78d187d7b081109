//! [`ConnectionString`]: one ADO.NET string read into a request and the
//! policy settings it names.

use std::time::Duration;

use crate::policy::ConnectPolicy;

use super::browser::SqlBrowser;
use super::{ConnectRequest, RequestError, ado};

/// An ADO.NET connection string read into the [`ConnectRequest`] it
/// describes and the policy settings it names, so one string configures
/// both (a request does not carry a policy).
///
/// | keyword (SqlClient) | here |
/// |---|---|
/// | `Connect Timeout`, `Connection Timeout`, `Timeout` (s, ≥ 1) | the request's handshake timeout, and the policy's [`deadline`](ConnectPolicy::deadline): SqlClient's timeout bounds the whole open, retries included |
/// | `ConnectRetryCount` (0..=255) | the policy's [`max_retries`](ConnectPolicy::max_retries) |
/// | `ConnectRetryInterval` (s, 1..=60) | the policy's first and largest delay ([`min_delay`](ConnectPolicy::min_delay), [`max_delay`](ConnectPolicy::max_delay)): SqlClient waits the same interval between tries |
///
/// A keyword the string does not set leaves the policy's value alone.
/// `Debug` never prints credentials.
///
/// ```
/// use tiberius_tower::{ConnectPolicy, ConnectionString};
/// use std::time::Duration;
///
/// let s = ConnectionString::parse(
///     "Server=tcp:db.example.com,1433;User ID=app;Password=x;Connect Timeout=20;ConnectRetryCount=3;ConnectRetryInterval=2",
/// )?;
/// assert_eq!(s.connect_timeout(), Some(Duration::from_secs(20)));
/// assert_eq!(s.connect_retry_count(), Some(3));
/// let policy = s.apply_to(ConnectPolicy::new());
/// let request = s.into_request();
/// assert_eq!(request.handshake_timeout(), Duration::from_secs(20));
/// # let _ = policy;
/// # Ok::<(), tiberius_tower::RequestError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionString {
    request: ConnectRequest,
    connect_timeout: Option<Duration>,
    retry_count: Option<u32>,
    retry_interval: Option<Duration>,
}

impl ConnectionString {
    /// Reads `s`; see [`ConnectRequest::from_ado_string`] for the grammar
    /// and the errors.
    ///
    /// # Errors
    ///
    /// As [`ConnectRequest::from_ado_string`]; a named instance without its
    /// port (`host\instance`) is [`RequestError::NeedsBrowser`]: use
    /// [`resolve`](Self::resolve).
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let parsed = ado::parse(s)?;
        if parsed.browser_needed {
            return Err(RequestError::NeedsBrowser);
        }
        Ok(Self::from_parsed(parsed))
    }

    /// Reads `s` like [`parse`](Self::parse), and when it names an instance
    /// without a port (`Server=host\SQLEXPRESS`), asks SQL Browser on
    /// `host` which TCP port the instance listens on, as SqlClient does.
    /// `SqlBrowser::new()` asks UDP 1434 with a 1 s timeout and one
    /// retransmission.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse), and [`RequestError::Browser`] when SQL
    /// Browser does not answer for that instance (SQL Browser is silent
    /// about names it does not know) or answers without a TCP port.
    pub async fn resolve(s: &str, browser: &SqlBrowser) -> Result<Self, RequestError> {
        let parsed = ado::parse(s)?;
        let browser_needed = parsed.browser_needed;
        let mut this = Self::from_parsed(parsed);
        if browser_needed {
            let instance = this.request.instance.clone().unwrap_or_default();
            this.request.port = browser
                .resolve(&this.request.host, &instance)
                .await
                .map_err(RequestError::Browser)?;
        }
        Ok(this)
    }

    fn from_parsed(parsed: ado::Parsed) -> Self {
        let connect_timeout = parsed.connect_timeout;
        let retry_count = parsed.retry_count;
        let retry_interval = parsed.retry_interval;
        ConnectionString {
            request: ConnectRequest::from_parsed(parsed),
            connect_timeout,
            retry_count,
            retry_interval,
        }
    }

    /// The request the string describes.
    pub fn request(&self) -> &ConnectRequest {
        &self.request
    }

    /// The request the string describes.
    pub fn into_request(self) -> ConnectRequest {
        self.request
    }

    /// `Connect Timeout`, if set.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// `ConnectRetryCount`, if set.
    pub fn connect_retry_count(&self) -> Option<u32> {
        self.retry_count
    }

    /// `ConnectRetryInterval`, if set.
    pub fn connect_retry_interval(&self) -> Option<Duration> {
        self.retry_interval
    }

    /// `policy` with the settings this string names (see the table above).
    pub fn apply_to(&self, mut policy: ConnectPolicy) -> ConnectPolicy {
        if let Some(timeout) = self.connect_timeout {
            policy = policy.deadline(timeout);
        }
        if let Some(count) = self.retry_count {
            policy = policy.max_retries(count as usize);
        }
        if let Some(interval) = self.retry_interval {
            policy = policy.min_delay(interval).max_delay(interval);
        }
        policy
    }
}
