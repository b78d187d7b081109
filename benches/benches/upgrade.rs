//! Design §3: the first connect that hits `encryption_required` or
//! `strict_required` vs a clean connect at the right level (goal <= 2.0x),
//! and the next connect to the same endpoint, where the endpoint memory
//! holds the floor, vs a clean connect configured at that level (goal
//! <= 1.02x).
//!
//! Everything goes through `PreloginLayer` over `Connector` (metrics off, no
//! subscriber), one emulator per server setting:
//!
//! | id | server | client | memory | attempts |
//! |---|---|---|---|---|
//! | `force_first` | Force Encryption | NotSupported | off | 2: refused (REQ + reset), upgraded to Required |
//! | `force_clean` | Force Encryption | Required | off | 1 |
//! | `force_next` | Force Encryption | NotSupported | on, floor Required learned | 1, at Required |
//! | `strict_first` | strict-only | Required | off | 2: reset with no reply, Strict probe logs in |
//! | `strict_clean` | strict-only | Strict | off | 1 |
//! | `strict_next` | strict-only | Required | on, floor Strict learned | 1, at Strict |
//!
//! The attempt counts are asserted once before measuring.
//!
//! ```sh
//! cargo bench -p benches --bench upgrade -- --warm-up-time 1 --measurement-time 5
//! ```

mod common;

use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, Prelogin};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

use common::{Server, client_runtime, layered, print_ratio, server_runtime};

const GROUP: &str = "upgrade";

/// One connect; returns the attempts it took and the level it ended at.
fn connect(
    client: &Runtime,
    svc: &mut Prelogin<Connector>,
    request: &ConnectRequest,
) -> (usize, EncryptionLevel) {
    client.block_on(async {
        let connected = svc
            .ready()
            .await
            .expect("ready")
            .call(request.clone())
            .await
            .expect("connects");
        (connected.attempts().len(), connected.encryption())
    })
}

fn main() {
    let server_rt = server_runtime();
    let client = client_runtime();
    let force = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Force),
        "upgrade-force",
    );
    let strict = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::StrictOnly),
        "upgrade-strict",
    );

    struct Case {
        id: &'static str,
        svc: Prelogin<Connector>,
        request: ConnectRequest,
        attempts: usize,
        level: EncryptionLevel,
    }
    let case = |id, policy: ConnectPolicy, request, attempts, level| Case {
        id,
        svc: layered(policy),
        request,
        attempts,
        level,
    };
    let forgetful = || ConnectPolicy::new().without_memory();
    // `ConnectPolicy::new()` has its own endpoint memory; the `*_next` services
    // learn their floor in the check below, before measuring.
    use EncryptionLevel::{NotSupported, Required, Strict};
    let mut cases = [
        case(
            "force_first",
            forgetful(),
            force.request(NotSupported),
            2,
            Required,
        ),
        case(
            "force_clean",
            forgetful(),
            force.request(Required),
            1,
            Required,
        ),
        case(
            "force_next",
            ConnectPolicy::new(),
            force.request(NotSupported),
            1,
            Required,
        ),
        case(
            "strict_first",
            forgetful(),
            strict.request(Required),
            2,
            Strict,
        ),
        case(
            "strict_clean",
            forgetful(),
            strict.request(Strict),
            1,
            Strict,
        ),
        case(
            "strict_next",
            ConnectPolicy::new(),
            strict.request(Required),
            1,
            Strict,
        ),
    ];
    for case in &mut cases {
        if case.id.ends_with("_next") {
            // The first connect through this service upgrades and teaches the memory.
            let (attempts, _) = connect(&client, &mut case.svc, &case.request);
            assert_eq!(attempts, 2, "{}: first connect upgrades", case.id);
        }
        let outcome = connect(&client, &mut case.svc, &case.request);
        assert_eq!(outcome, (case.attempts, case.level), "{}", case.id);
    }

    let mut criterion = common::criterion();
    let mut group = criterion.benchmark_group(GROUP);
    group.sample_size(30);
    for case in &mut cases {
        let Case {
            id, svc, request, ..
        } = case;
        group.bench_function(*id, |b| b.iter(|| connect(&client, svc, request)));
    }
    group.finish();
    criterion.final_summary();

    // Control: every case once per round, in turn (order reversed on odd
    // rounds), so ordering and drift hit all cases alike.
    let control = common::median_ns(GROUP, "force_clean").map(|_| {
        const ROUNDS: usize = 100;
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); cases.len()];
        for round in 0..ROUNDS {
            for k in 0..cases.len() {
                let i = if round % 2 == 0 {
                    k
                } else {
                    cases.len() - 1 - k
                };
                let case = &mut cases[i];
                let started = std::time::Instant::now();
                connect(&client, &mut case.svc, &case.request);
                times[i].push(started.elapsed().as_nanos() as f64);
            }
        }
        let ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        let medians: Vec<f64> = times
            .into_iter()
            .map(|mut t| {
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect();
        (ids, medians)
    });
    drop(cases);
    force.stop(&server_rt);
    strict.stop(&server_rt);

    println!();
    print_ratio(GROUP, "force_first", "force_clean", "<= 2.0");
    print_ratio(GROUP, "strict_first", "strict_clean", "<= 2.0");
    print_ratio(GROUP, "force_next", "force_clean", "<= 1.02");
    print_ratio(GROUP, "strict_next", "strict_clean", "<= 1.02");
    if let Some((ids, medians)) = control {
        let median = |id: &str| medians[ids.iter().position(|i| *i == id).expect("case")];
        for (a, b) in [
            ("force_first", "force_clean"),
            ("strict_first", "strict_clean"),
            ("force_next", "force_clean"),
            ("strict_next", "strict_clean"),
        ] {
            println!(
                "{GROUP} (interleaved control, 100 rounds): median {a} {} / {b} {} = ratio {:.4}",
                common::human(median(a)),
                common::human(median(b)),
                median(a) / median(b)
            );
        }
    }
}
