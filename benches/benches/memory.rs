//! Issue 12, item 4: heap bytes held per open connection through the layer
//! against bare tiberius (goal <= 1.02x), and the endpoint memory's
//! footprint at 100,000 endpoints.
//!
//! A counting global allocator keeps, per thread, the bytes allocated minus
//! the bytes freed. The client runtime is current-thread on this thread, so
//! everything a client allocates is counted here, and nothing the emulator
//! (its own thread) allocates is. Bytes, not time: the figures are exact
//! for one run and repeat to within a few bytes (tokio's and rustls's
//! internal buffers are sized by what was read).
//!
//! - per connection: open `CONNECTIONS` clients and keep them; live bytes
//!   after minus before, divided by `CONNECTIONS`. `bare`:
//!   `Client<Compat<TcpStream>>`; `layer`: the `Connected<TdsClient>` the
//!   layer returns (client, observer, attempt history), `ConnectPolicy::new()`,
//!   metrics off. Repeated `REPEATS` times in turn; the medians are printed.
//! - endpoint memory: `EndpointMemory::new(1 h, 100_000)` seeded with
//!   100,000 distinct `EndpointKey`s (host `sql-NNNNNN.example.internal`,
//!   port 1433, no instance), live bytes after minus before, and the keys'
//!   own size is printed for scale.
//!
//! ```sh
//! cargo bench -p benches --bench memory
//! ```
// The counting allocator is an `unsafe impl GlobalAlloc`; it only forwards
// to `System` and counts.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, EncryptionLevel, EndpointKey, EndpointMemory};
use tower::{Service, ServiceExt};

use common::{Server, bare_connect, client_runtime, layered, server_runtime};

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // `try_with`: during thread teardown the slot may be gone; not counted then.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

/// Live heap bytes of this thread.
fn live() -> i64 {
    LIVE.with(Cell::get)
}

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counting touches only a thread-local integer.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 50;
const REPEATS: usize = 5;
const ENDPOINTS: usize = 100_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let server_rt = server_runtime();
    let server = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "memory",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();
    let mut svc = layered(ConnectPolicy::new());
    // Warm both paths once (lazily built statics, the memory's first entry).
    drop(
        client
            .block_on(bare_connect(&request))
            .expect("bare connect"),
    );
    drop(
        client
            .block_on(async { svc.ready().await?.call(request.clone()).await })
            .expect("layered connect"),
    );

    let mut bare = Vec::new();
    let mut layer = Vec::new();
    for _ in 0..REPEATS {
        let before = live();
        let held: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                client
                    .block_on(bare_connect(&request))
                    .expect("bare connect")
            })
            .collect();
        bare.push((live() - before) as f64 / CONNECTIONS as f64);
        drop(held);

        let before = live();
        let held: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                client
                    .block_on(async { svc.ready().await?.call(request.clone()).await })
                    .expect("layered connect")
            })
            .collect();
        layer.push((live() - before) as f64 / CONNECTIONS as f64);
        drop(held);
    }
    server.stop(&server_rt);
    let (bare_bytes, layer_bytes) = (median(bare.clone()), median(layer.clone()));
    println!(
        "memory per open connection ({CONNECTIONS} held, {REPEATS} repeats): bare {bare_bytes:.0} B, layer {layer_bytes:.0} B, ratio {:.4} (goal <= 1.02); bare min/max {:.0}/{:.0} B, layer min/max {:.0}/{:.0} B",
        layer_bytes / bare_bytes,
        bare.iter().copied().fold(f64::INFINITY, f64::min),
        bare.iter().copied().fold(0.0, f64::max),
        layer.iter().copied().fold(f64::INFINITY, f64::min),
        layer.iter().copied().fold(0.0, f64::max),
    );

    // The endpoint memory reads tokio's clock; give it a runtime.
    client.block_on(async {
        let keys: Vec<EndpointKey> = (0..ENDPOINTS)
            .map(|i| EndpointKey::new(&format!("sql-{i:06}.example.internal"), 1433, None))
            .collect();
        let before = live();
        let memory = EndpointMemory::new(Duration::from_secs(3_600), ENDPOINTS);
        for key in &keys {
            memory.seed(key.clone(), EncryptionLevel::Strict);
        }
        let bytes = live() - before;
        assert_eq!(memory.len(), ENDPOINTS, "every endpoint is remembered");
        println!(
            "endpoint memory: {ENDPOINTS} endpoints hold {bytes} B ({:.1} MiB, {:.0} B per endpoint, the key's host string {} B of it)",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / ENDPOINTS as f64,
            "sql-000000.example.internal".len()
        );
        drop(memory);
    });
}
