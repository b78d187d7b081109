//! [`EndpointKey`]: which server a remembered floor belongs to.

/// What the memory is keyed by: host (case-insensitive), port, instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    host: String,
    port: u16,
    instance: Option<String>,
}

impl EndpointKey {
    /// A key; host and instance are compared case-insensitively, as DNS and
    /// SQL Server instance names are.
    pub fn new(host: &str, port: u16, instance: Option<&str>) -> Self {
        EndpointKey {
            host: host.to_ascii_lowercase(),
            port,
            instance: instance.map(str::to_ascii_lowercase),
        }
    }

    /// The host, lowercased.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance, lowercased.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
}
