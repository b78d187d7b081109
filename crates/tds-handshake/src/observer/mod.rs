//! The handshake [`Observer`]: a passive tap fed the bytes of each direction as they move.
//!
//! It keeps the furthest [`Phase`] and an [`Observation`], allocates nothing (not in
//! [`Observer::new`], not per byte) and holds a fixed amount of memory whatever the peers
//! send. Once the login is inside TLS (or answered) it stops parsing and only counts bytes.

mod direction;
mod login_scan;
mod observation;
mod records;
mod state;

pub use observation::{
    Direction, Observation, ObservedAlert, ParseStop, ParseStopReason, Phase, PreloginSummary,
    TlsFraming,
};
pub use state::CAPTURE_LIMIT;

use state::{DirState, Shared};

/// A sans-IO observer of one connection's handshake.
///
/// Call [`client_bytes`](Self::client_bytes) from `poll_write` with the bytes the socket
/// accepted, and [`server_bytes`](Self::server_bytes) from `poll_read` with the bytes that
/// were filled in; chunking does not matter. Its size is under 5 KB, all inline, and never grows.
#[derive(Debug, Clone)]
pub struct Observer {
    client: DirState,
    server: DirState,
    shared: Shared,
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer {
    /// A fresh observer in [`Phase::TcpConnected`]. Does not allocate.
    pub fn new() -> Observer {
        Observer {
            client: DirState::new(Direction::ClientToServer),
            server: DirState::new(Direction::ServerToClient),
            shared: Shared::default(),
        }
    }

    /// Bytes the client wrote (that actually moved).
    pub fn client_bytes(&mut self, bytes: &[u8]) {
        self.feed(Direction::ClientToServer, bytes);
    }

    /// Bytes the client read (that actually moved).
    pub fn server_bytes(&mut self, bytes: &[u8]) {
        self.feed(Direction::ServerToClient, bytes);
    }

    /// Bytes that moved in `direction`.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8]) {
        let n = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let obs = &mut self.shared.obs;
        match direction {
            Direction::ClientToServer => obs.client_bytes = obs.client_bytes.saturating_add(n),
            Direction::ServerToClient => obs.server_bytes = obs.server_bytes.saturating_add(n),
        }
        let (st, shared) = self.split(direction);
        direction::feed(st, shared, bytes);
    }

    /// An orderly close (EOF) seen in `direction`. A close in the middle of a packet or
    /// record is recorded as [`ParseStopReason::TruncatedAtEof`].
    pub fn eof(&mut self, direction: Direction) {
        match direction {
            Direction::ClientToServer => self.shared.obs.client_eof = true,
            Direction::ServerToClient => self.shared.obs.server_eof = true,
        }
        let (st, shared) = self.split(direction);
        direction::eof(st, shared);
    }

    /// The caller knows the login succeeded (e.g. the driver returned a client).
    pub fn mark_logged_in(&mut self) {
        self.shared.advance(Phase::LoggedIn);
        self.client.passive = true;
        self.server.passive = true;
    }

    /// True once the observer stopped parsing both directions and only counts bytes.
    pub fn is_passive(&self) -> bool {
        self.client.passive && self.server.passive
    }

    /// The furthest phase reached.
    pub fn phase(&self) -> Phase {
        self.shared.obs.phase
    }

    /// What was seen so far.
    pub fn observation(&self) -> &Observation {
        &self.shared.obs
    }

    /// Consumes the observer, keeping what it saw.
    pub fn into_observation(self) -> Observation {
        self.shared.obs
    }

    fn split(&mut self, direction: Direction) -> (&mut DirState, &mut Shared) {
        match direction {
            Direction::ClientToServer => (&mut self.client, &mut self.shared),
            Direction::ServerToClient => (&mut self.server, &mut self.shared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_fixed_and_small() {
        // Two capture buffers dominate; everything else is a few hundred bytes.
        let size = size_of::<Observer>();
        assert!(size < 2 * CAPTURE_LIMIT + 1024, "Observer is {size} bytes");
        assert!(size_of::<Observation>() < 256);
    }
}
