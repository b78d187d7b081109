//! Property tests: encode→decode round trips, and no panic on arbitrary input.

mod common;

use proptest::prelude::*;
use tds_handshake::{
    ClientHelloFacts, Direction, Encryption, MessageReassembler, Observer, PacketType, Prelogin,
    PreloginView, ServerHelloFacts, Side, ThreadId, Version,
};

/// Cases for every property in this file.
const CASES: u32 = 256;

fn any_packet_type() -> impl Strategy<Value = PacketType> {
    prop::sample::select(vec![
        PacketType::SqlBatch,
        PacketType::Rpc,
        PacketType::TabularResult,
        PacketType::Login7,
        PacketType::PreLogin,
        PacketType::Attention,
    ])
}

fn any_prelogin(side: Side) -> impl Strategy<Value = Prelogin> {
    // Client instance names are NUL-terminated on the wire, so they cannot contain NUL.
    let instance = match side {
        Side::Client => prop::collection::vec(1u8..=255, 0..20).boxed(),
        Side::Server => prop::collection::vec(any::<u8>(), 0..4).boxed(),
    };
    let version = (any::<u8>(), any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
        |(major, minor, build, sub_build)| Version {
            major,
            minor,
            build,
            sub_build,
        },
    );
    let thread = prop_oneof![Just(ThreadId::Empty), any::<u32>().prop_map(ThreadId::Id)];
    (
        version,
        prop::option::of(any::<u8>().prop_map(Encryption)),
        prop::option::of(instance),
        prop::option::of(thread),
        prop::option::of(any::<u8>()),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        prop::option::of(any::<u8>()),
        prop::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(
                version,
                encryption,
                instance,
                thread_id,
                mars,
                trace_id,
                fed_auth_required,
                nonce,
            )| {
                Prelogin {
                    version,
                    encryption,
                    instance,
                    thread_id,
                    mars,
                    trace_id,
                    fed_auth_required,
                    nonce,
                }
            },
        )
}

/// One write in an arbitrary interleaving of both directions.
fn any_write() -> impl Strategy<Value = (bool, Vec<u8>)> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 0..200))
}

/// Bytes that look like TDS or TLS often enough to get past the first checks.
fn plausible_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![
            0x00u8, 0x01, 0x02, 0x03, 0x04, 0x10, 0x12, 0x14, 0x15, 0x16, 0x17, 0xFF
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn client_prelogin_round_trips(p in any_prelogin(Side::Client)) {
        let bytes = p.encode(Side::Client);
        prop_assert_eq!(Prelogin::decode(&bytes, Side::Client).unwrap(), p);
    }

    #[test]
    fn server_prelogin_round_trips(p in any_prelogin(Side::Server)) {
        let bytes = p.encode(Side::Server);
        prop_assert_eq!(Prelogin::decode(&bytes, Side::Server).unwrap(), p);
    }

    #[test]
    fn messages_round_trip_through_packets_in_any_chunking(
        packet_type in any_packet_type(),
        payload in prop::collection::vec(any::<u8>(), 0..3000),
        max_packet in 9usize..5000,
        chunk in 1usize..700,
    ) {
        let mut wire = Vec::new();
        tds_handshake::encode_message(packet_type, 7, &payload, max_packet, &mut wire);
        let mut r = MessageReassembler::new(4096);
        for part in wire.chunks(chunk) {
            r.push(part).unwrap();
        }
        let m = r.next_message().unwrap().unwrap();
        prop_assert_eq!(m.packet_type, packet_type.as_u8());
        prop_assert_eq!(m.packets, payload.len().div_ceil(max_packet - 8).max(1));
        prop_assert_eq!(m.payload, payload);
        prop_assert!(r.next_message().is_none());
        prop_assert!(r.is_idle());
    }

    #[test]
    fn prelogin_decoder_never_panics(bytes in prop::collection::vec(plausible_byte(), 0..300)) {
        let _ = PreloginView::parse(&bytes, Side::Client);
        let _ = PreloginView::parse(&bytes, Side::Server);
    }

    #[test]
    fn hello_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = ClientHelloFacts::parse(&bytes);
        let _ = ServerHelloFacts::parse(&bytes);
    }

    #[test]
    fn reassembler_never_panics_and_stays_bounded(
        bytes in prop::collection::vec(plausible_byte(), 0..2000),
    ) {
        let mut r = MessageReassembler::new(512);
        let _ = r.push(&bytes);
        while let Some(Ok(m)) = r.next_message() {
            prop_assert!(m.payload.len() <= 512);
        }
    }

    /// Arbitrary bytes in both directions, interleaved, never panic, and byte counts add up.
    #[test]
    fn observer_never_panics_on_garbage(writes in prop::collection::vec(any_write(), 0..20)) {
        let mut o = Observer::new();
        let (mut c, mut s) = (0u64, 0u64);
        for (client, bytes) in &writes {
            if *client {
                o.client_bytes(bytes);
                c += bytes.len() as u64;
            } else {
                o.server_bytes(bytes);
                s += bytes.len() as u64;
            }
        }
        o.eof(Direction::ServerToClient);
        prop_assert_eq!(o.observation().client_bytes, c);
        prop_assert_eq!(o.observation().server_bytes, s);
    }

    /// A valid opening followed by garbage (deeper states) never panics either.
    #[test]
    fn observer_never_panics_after_a_valid_opening(
        which in 0usize..6,
        keep in 0usize..4000,
        writes in prop::collection::vec((any::<bool>(), prop::collection::vec(plausible_byte(), 0..300)), 0..12),
    ) {
        let (_, steps) = common::all_transcripts().swap_remove(which);
        let mut o = Observer::new();
        let mut budget = keep;
        for step in &steps {
            if let common::Step::Client(b) | common::Step::Server(b) = step {
                let n = b.len().min(budget);
                budget -= n;
                let dir = if matches!(step, common::Step::Client(_)) {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                o.feed(dir, &b[..n]);
            }
        }
        for (client, bytes) in &writes {
            if *client { o.client_bytes(bytes) } else { o.server_bytes(bytes) }
        }
        o.eof(Direction::ClientToServer);
        o.eof(Direction::ServerToClient);
        prop_assert!(o.is_passive());
    }
}
