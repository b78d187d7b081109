//! The observer allocates nothing: not in `Observer::new`, not per byte, not per
//! connection, whatever the peers send.
//!
//! Measured with a counting global allocator. That needs `unsafe impl GlobalAlloc`; the
//! library itself stays `#![forbid(unsafe_code)]`, and this test binary is the one place
//! where unsafe is allowed (see the crate's Cargo.toml for how the lint levels are set).
//!
//! Both the switch and the tally are per thread. Plain `cargo test` runs the tests of this
//! binary on parallel threads of one process; with one shared tally, an allocation made by
//! another test while this one measures would be added to this one's figure (a flake that
//! nextest, one process per test, hides). `other_threads_are_not_counted` pins that down.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Barrier;

use tds_handshake::{Direction, Observer};

/// Counts, per thread, the allocations a thread makes while it has counting switched on.
struct Counting;

thread_local! {
    // `const` initialisation and no destructor: reaching them never allocates and never
    // registers a destructor, so the allocator itself may use them.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: during thread teardown the slots may be gone; nothing is counted then.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get().saturating_add(1)));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees carry over; the only addition is a thread-local counter increment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as `GlobalAlloc::alloc`, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as `GlobalAlloc::alloc_zeroed`, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as `GlobalAlloc::realloc`, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as `GlobalAlloc::dealloc`, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with counting on for this thread and returns the allocations this thread
/// made meanwhile; other threads' allocations never reach the figure.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

/// A small deterministic generator, so the measured region needs no test framework.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn observer_never_allocates() {
    // Everything the measured region reads is prepared before it.
    let transcripts = common::all_transcripts();
    let mut rng = Lcg(0x5eed);
    let sizes: Vec<Vec<usize>> = (0..64)
        .map(|_| {
            (0..16)
                .map(|_| (rng.next() % 300) as usize)
                .chain([1])
                .collect()
        })
        .collect();
    let garbage: Vec<(bool, Vec<u8>)> = (0..2000)
        .map(|_| {
            let len = (rng.next() % 400) as usize;
            let bias = [0x12u8, 0x16, 0x04, 0x17, 0x15];
            let bytes = (0..len)
                .map(|i| {
                    if i == 0 {
                        bias[(rng.next() % 5) as usize]
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            (rng.next().is_multiple_of(2), bytes)
        })
        .collect();

    let mut observations = 0usize;
    let count = allocations_in(|| {
        for size in &sizes {
            for (_, steps) in &transcripts {
                let mut o = Observer::new();
                common::observe_chunked(&mut o, steps, size);
                observations +=
                    usize::from(o.observation().phase > tds_handshake::Phase::TcpConnected);
            }
        }
        for chunk in garbage.chunks(20) {
            let mut o = Observer::new();
            for (client, bytes) in chunk {
                if *client {
                    o.client_bytes(bytes);
                } else {
                    o.server_bytes(bytes);
                }
            }
            o.eof(Direction::ClientToServer);
            o.eof(Direction::ServerToClient);
            observations += usize::from(o.is_passive());
        }
    });
    println!(
        "allocations during {} observer runs (transcripts in random chunks + garbage): {count}",
        sizes.len() * transcripts.len() + garbage.len() / 20
    );
    assert!(observations > 0);
    assert_eq!(count, 0, "the observer must not allocate");
}

#[test]
fn the_counter_does_count() {
    let count = allocations_in(|| {
        let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(10));
        drop(v);
    });
    assert_eq!(count, 1);
}

/// Two threads measure at the same time and only one allocates: each gets its own figure.
/// With one tally shared by all threads the quiet thread would report the other's 1,000.
#[test]
fn other_threads_are_not_counted() {
    const BUSY: usize = 1000;
    // Both measured regions are open between `start` and `done`. Barriers are prepared
    // beforehand; waiting on one does not allocate (futex-based on Linux).
    let start = Barrier::new(2);
    let done = Barrier::new(2);
    let (quiet, busy) = std::thread::scope(|s| {
        let busy = s.spawn(|| {
            allocations_in(|| {
                start.wait();
                for _ in 0..BUSY {
                    drop(std::hint::black_box(Vec::<u8>::with_capacity(64)));
                }
                done.wait();
            })
        });
        let quiet = allocations_in(|| {
            start.wait();
            done.wait();
        });
        (quiet, busy.join().expect("the allocating thread finishes"))
    });
    assert_eq!(
        busy, BUSY,
        "the allocating thread counts its own allocations"
    );
    assert_eq!(quiet, 0, "the quiet thread sees none of the other's");
}
