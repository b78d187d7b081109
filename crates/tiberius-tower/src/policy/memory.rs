//! Endpoint memory: what upgrades learned about each server, HSTS-style.
//!
//! Once a connect to `(host, port, instance)` needed Required or Strict, the
//! next connect starts there instead of paying the failed handshake again.
//! Like HSTS, an entry only raises the floor, expires after a TTL (so a
//! server that was reconfigured downwards is eventually met at the
//! configured level again), and the table is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::endpoint::EndpointKey;
use crate::level::EncryptionLevel;

/// Default time an entry is trusted: one hour.
///
/// A server's encryption posture changes with a maintenance window, not
/// between two connects; an hour saves the extra handshake on every connect
/// of a busy pool, and after it the configured level is tried again (which
/// costs one upgrade, not an outage, if nothing changed).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

/// Default number of endpoints remembered. Enough for any one application;
/// the bound only guards against a process that connects to endless hosts.
pub(crate) const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    level: EncryptionLevel,
    learned_at: Instant,
}

/// Per-endpoint encryption floors, shared by every clone of the service
/// (the policy holds it in an `Arc`).
///
/// Time is read from tokio's clock, so a test on paused time sees entries
/// expire without sleeping.
#[derive(Debug)]
pub struct EndpointMemory {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<EndpointKey, Entry>>,
}

impl EndpointMemory {
    /// A memory with the given TTL and capacity (a capacity of 0 remembers
    /// nothing). The default is one hour and 1,024 endpoints: a server's
    /// encryption posture changes with a maintenance window, not between two
    /// connects, and the bound only guards against a process that connects
    /// to endless hosts.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        EndpointMemory {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Pre-seeds a floor (e.g. from configuration or a previous run). Like
    /// what a connect learns, it never lowers an existing, unexpired floor.
    pub fn seed(&self, key: EndpointKey, level: EncryptionLevel) {
        self.learn(key, level);
    }

    /// The remembered floor for `key`, if one is alive.
    pub fn floor(&self, key: &EndpointKey) -> Option<EncryptionLevel> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(entry) if entry.learned_at.elapsed() < self.ttl => Some(entry.level),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Records that `key` needed at least `level`. Raises the floor or
    /// refreshes its TTL at the same level; never lowers an unexpired one.
    pub(crate) fn learn(&self, key: EndpointKey, level: EncryptionLevel) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let ttl = self.ttl;
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&key) {
            let alive = now.saturating_duration_since(entry.learned_at) < ttl;
            if alive && entry.level > level {
                return;
            }
            *entry = Entry {
                level,
                learned_at: now,
            };
            return;
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now.saturating_duration_since(e.learned_at) < ttl);
        }
        if entries.len() >= self.capacity {
            // Evict the oldest; O(n) but only on insert into a full table.
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.learned_at)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key,
            Entry {
                level,
                learned_at: now,
            },
        );
    }

    /// Forgets one endpoint.
    pub fn forget(&self, key: &EndpointKey) {
        self.lock().remove(key);
    }

    /// Number of entries held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for EndpointMemory {
    /// One hour, 1,024 endpoints.
    fn default() -> Self {
        EndpointMemory::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EncryptionLevel::*;

    fn key(h: &str) -> EndpointKey {
        EndpointKey::new(h, 1433, None)
    }

    #[test]
    fn only_raises() {
        let m = EndpointMemory::default();
        m.learn(key("a"), Required);
        m.learn(key("a"), Off);
        assert_eq!(m.floor(&key("a")), Some(Required));
        m.learn(key("A"), Strict);
        assert_eq!(m.floor(&key("a")), Some(Strict));
        assert_eq!(m.floor(&key("b")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_lives_exactly_its_ttl() {
        let m = EndpointMemory::new(Duration::from_secs(60), 8);
        m.learn(key("a"), Strict);
        tokio::time::advance(Duration::from_millis(59_999)).await;
        assert_eq!(m.floor(&key("a")), Some(Strict));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(m.floor(&key("a")), None);
        assert!(m.is_empty(), "an expired entry is dropped when read");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_floor_can_be_lowered_and_a_live_one_cannot() {
        let m = EndpointMemory::new(Duration::from_secs(60), 8);
        m.learn(key("a"), Strict);
        tokio::time::advance(Duration::from_secs(30)).await;
        m.learn(key("a"), Required);
        assert_eq!(m.floor(&key("a")), Some(Strict));
        tokio::time::advance(Duration::from_secs(31)).await;
        m.learn(key("a"), Required);
        assert_eq!(m.floor(&key("a")), Some(Required));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_drops_expired_entries_first_then_the_oldest() {
        let m = EndpointMemory::new(Duration::from_secs(60), 2);
        m.learn(key("a"), Strict);
        tokio::time::advance(Duration::from_secs(1)).await;
        m.learn(key("b"), Strict);
        tokio::time::advance(Duration::from_secs(1)).await;
        m.learn(key("c"), Strict);
        assert_eq!(m.len(), 2);
        assert_eq!(m.floor(&key("a")), None, "the oldest went");
        assert_eq!(m.floor(&key("b")), Some(Strict));
        assert_eq!(m.floor(&key("c")), Some(Strict));

        tokio::time::advance(Duration::from_secs(59)).await;
        // b has expired, c has one second left: d replaces b, not c.
        m.learn(key("d"), Required);
        assert_eq!(m.floor(&key("c")), Some(Strict));
        assert_eq!(m.floor(&key("d")), Some(Required));
    }

    #[test]
    fn zero_capacity_is_off() {
        let m = EndpointMemory::new(DEFAULT_TTL, 0);
        m.learn(key("a"), Strict);
        assert_eq!(m.floor(&key("a")), None);
    }

    #[test]
    fn instance_is_part_of_the_key() {
        let m = EndpointMemory::default();
        m.seed(EndpointKey::new("h", 1433, Some("X")), Strict);
        assert_eq!(
            m.floor(&EndpointKey::new("h", 1433, Some("x"))),
            Some(Strict)
        );
        assert_eq!(m.floor(&EndpointKey::new("h", 1433, None)), None);
    }
}
