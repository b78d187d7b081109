//! Every timed design §3 goal as interleaved A/B rounds, one report.
//!
//! Each comparison runs `rounds` rounds; a round times a batch of A and a
//! batch of B back to back (B first on odd rounds), and its ratio is
//! `time(B) / time(A)`. Load on the machine hits both sides of a round
//! alike, so the per-round ratio is robust to the drift that makes
//! criterion's one-variant-after-the-other medians differ by several percent
//! from minute to minute. Printed per comparison: the median time per
//! operation of each side, the per-round ratios' min / median / max, and a
//! distribution-free 95 % confidence interval of the median ratio (order
//! statistics `n/2 -+ 0.98 sqrt(n)`). The verdict is "met" when the whole
//! interval is on the goal's side, "not met" when the whole interval is
//! past it, and "not shown" when it straddles the goal.
//!
//! Comparisons (emulator on its own one-worker runtime, client on a
//! current-thread runtime on this thread, as in the other benches):
//!
//! - `connect`: clean connect (emulator Off, client Off), layer with
//!   `ConnectPolicy::new()`, metrics off, no subscriber vs bare tiberius;
//! - `connect_telemetry`: the layer with telemetry on
//!   (`tracing-opentelemetry` into an SDK tracer provider with a discarding
//!   batch exporter, SDK metrics, the subscriber filtered at INFO as in
//!   production) vs bare tiberius;
//! - `telemetry_on_top`: the same layer with telemetry on vs off;
//! - `connect_all_events` (last, so its unfiltered subscriber never shares
//!   the process with the others): as `connect_telemetry` with no level
//!   filter, so tiberius's DEBUG and TRACE events become span events of the
//!   attempt span (a debugging setup), vs bare tiberius;
//! - `throughput`: `SELECT ROWS 2000 BYTES 4000` on a connected client,
//!   `Client<Compat<ObservedStream>>` vs `Client<Compat<TcpStream>>`; the
//!   ratio is throughput observed / bare = time(bare) / time(observed);
//! - `force_first`, `strict_first`: the first connect to a Force Encryption
//!   (client NotSupported) or strict-only (client Required) server, memory
//!   off, vs a clean connect at the level that works;
//! - `force_next`, `strict_next`: the next connect with the endpoint memory
//!   vs that clean connect.
//!
//! ```sh
//! cargo bench -p benches --bench report                 # everything
//! cargo bench -p benches --bench report -- --only connect --scale 2
//! cargo bench -p benches --bench report -- --profile telemetry 500   # for callgrind
//! cargo bench -p benches --bench report -- --only telemetry --top-first
//! ```
//!
//! `--top-first` swaps the two telemetry comparisons. Before either, one
//! traced connect registers every callsite a traced connect reaches while the
//! subscriber is current; `--no-warm-up` leaves it out, and then whichever
//! connect comes first decides, for the whole process, whether this crate's
//! spans (or tiberius's events) are on at all (tracing-core computes a
//! callsite's interest from the current thread's default while only one
//! `Dispatch` exists; see "Where telemetry's time goes" in
//! docs/performance.md).

mod common;

use std::time::Instant;

use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, ConnectRequest, EncryptionLevel};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

use common::telemetry::Telemetry;
use common::{
    Server, bare_connect, client_runtime, connect_checked, connect_through, layered, server_runtime,
};

/// Which side of the goal is good.
#[derive(Clone, Copy)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::AtMost(g) => format!("<= {g}"),
            Goal::AtLeast(g) => format!(">= {g}"),
        }
    }

    fn verdict(self, low: f64, high: f64) -> &'static str {
        let (good, bad) = match self {
            Goal::AtMost(g) => (high <= g, low > g),
            Goal::AtLeast(g) => (low >= g, high < g),
        };
        if good {
            "met"
        } else if bad {
            "NOT MET"
        } else {
            "not shown (interval straddles the goal)"
        }
    }
}

/// Per-round times of both sides (ns per operation) and their ratios.
struct Rounds {
    a: Vec<f64>,
    b: Vec<f64>,
    ratios: Vec<f64>,
}

/// Runs `rounds` rounds of `batch` operations of `a` and of `b`, in turn.
/// `invert` reports `time(A) / time(B)` instead (throughput).
fn interleave(
    rounds: usize,
    batch: usize,
    invert: bool,
    a: &mut dyn FnMut(),
    b: &mut dyn FnMut(),
) -> Rounds {
    let mut out = Rounds {
        a: Vec::with_capacity(rounds),
        b: Vec::with_capacity(rounds),
        ratios: Vec::with_capacity(rounds),
    };
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..batch {
            f();
        }
        started.elapsed().as_nanos() as f64 / batch as f64
    };
    for round in 0..rounds {
        let (ta, tb) = if round % 2 == 0 {
            let ta = time(a);
            (ta, time(b))
        } else {
            let tb = time(b);
            (time(a), tb)
        };
        out.a.push(ta);
        out.b.push(tb);
        out.ratios.push(if invert { ta / tb } else { tb / ta });
    }
    out
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let v = sorted(v.to_vec());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints one row of the report table.
fn row(name: &str, goal: Goal, rounds: &Rounds, batch: usize, a: &str, b: &str) {
    let n = rounds.ratios.len();
    let ratios = sorted(rounds.ratios.clone());
    let half = 0.98 * (n as f64).sqrt();
    let low = ((n as f64 / 2.0 - half).floor().max(0.0)) as usize;
    let high = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    println!(
        "| {name} | {b} / {a} | {} | {n} x {batch} | {:.3} ms / {:.3} ms | {:.4} / **{:.4}** / {:.4} | {:.4} - {:.4} | {} |",
        goal.describe(),
        median(&rounds.b) / 1e6,
        median(&rounds.a) / 1e6,
        ratios[0],
        median(&ratios),
        ratios[n - 1],
        ratios[low],
        ratios[high],
        goal.verdict(ratios[low], ratios[high]),
    );
}

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn bare(client: &Runtime, request: &ConnectRequest) {
    client.block_on(async {
        drop(bare_connect(request).await.expect("clean connect"));
    });
}

/// `--profile VARIANT N`: N connects of one variant and nothing else, for
/// `valgrind --tool=callgrind` (instruction counts, repeatable).
fn profile(variant: &str, count: usize) {
    let server_rt = server_runtime();
    let server = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "profile",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();
    match variant {
        "bare" => (0..count).for_each(|_| bare(&client, &request)),
        "layer" => {
            let mut svc = layered(ConnectPolicy::new());
            (0..count).for_each(|_| connect_through(&client, &mut svc, &request));
        }
        "telemetry" | "all_events" => {
            let telemetry = if variant == "telemetry" {
                Telemetry::new()
            } else {
                Telemetry::all_events()
            };
            let mut svc = telemetry.layered(ConnectPolicy::new());
            tracing::dispatcher::with_default(&telemetry.dispatch, || {
                (0..count).for_each(|_| connect_through(&client, &mut svc, &request));
            });
            telemetry.shutdown();
        }
        other => panic!("--profile takes bare, layer, telemetry or all_events, not {other}"),
    }
    server.stop(&server_rt);
    println!("profiled {count} connects of {variant}");
}

fn main() {
    if let Some(variant) = arg_value("--profile") {
        let count = std::env::args()
            .skip_while(|a| a != "--profile")
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(200);
        profile(&variant, count);
        return;
    }
    let scale: f64 = arg_value("--scale")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let only = arg_value("--only");
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| name.contains(o) || o.contains(name))
    };
    let rounds = |n: usize| ((n as f64 * scale).round() as usize).max(10);

    println!(
        "| comparison | ratio | goal | rounds x batch | median per op B / A | per-round ratio min / **median** / max | 95 % CI of the median | verdict |"
    );
    println!("|---|---|---|---|---|---|---|---|");

    let server_rt = server_runtime();
    let client = client_runtime();
    let off = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "report-off",
    );
    let request = off.request(EncryptionLevel::Off);

    // Telemetry off first: these rounds never see a subscriber exist.
    let mut plain = layered(ConnectPolicy::new());
    if wanted("connect") {
        let n = rounds(400);
        let r = interleave(n, 4, false, &mut || bare(&client, &request), &mut || {
            connect_through(&client, &mut plain, &request)
        });
        row("connect", Goal::AtMost(1.02), &r, 4, "bare", "layer");
    }

    if wanted("telemetry") {
        let no_warm_up = std::env::args().any(|a| a == "--no-warm-up");
        let telemetry = Telemetry::new();
        let mut traced = telemetry.traced(ConnectPolicy::new());
        // Without the warm-up, `--top-first` (whose first round starts with
        // the plain layer) measured telemetry with this crate's spans off,
        // and the default order ran tiberius's events off.
        if !no_warm_up {
            traced.warm_up(&client, &request);
        }
        let mut on = || traced.connect(&client, &request);
        // Each comparison: its name, its baseline's label, the baseline.
        let mut bare_side = || bare(&client, &request);
        let mut layer_side = || connect_through(&client, &mut plain, &request);
        let mut comparisons: [(&str, &str, &mut dyn FnMut()); 2] = [
            ("connect_telemetry", "bare", &mut bare_side),
            ("telemetry_on_top", "layer", &mut layer_side),
        ];
        // `--top-first` runs `telemetry_on_top` before `connect_telemetry`.
        if std::env::args().any(|a| a == "--top-first") {
            comparisons.reverse();
        }
        for (name, baseline, a) in comparisons {
            if wanted(name) {
                let r = interleave(rounds(400), 4, false, a, &mut on);
                row(
                    name,
                    Goal::AtMost(1.01),
                    &r,
                    4,
                    baseline,
                    "layer + telemetry",
                );
            }
        }
        drop(traced);
        telemetry.shutdown();
    }

    if wanted("throughput") {
        let mut bare_client = client
            .block_on(bare_connect(&request))
            .expect("bare connect");
        let mut observed = client
            .block_on(async { plain.ready().await?.call(request.clone()).await })
            .expect("layered connect")
            .into_client();
        let n = rounds(150);
        let r = interleave(
            n,
            1,
            true,
            &mut || {
                client.block_on(query(&mut bare_client));
            },
            &mut || {
                client.block_on(query(&mut observed));
            },
        );
        row(
            "throughput",
            Goal::AtLeast(0.99),
            &r,
            1,
            "bare",
            "observed (throughput, inverted)",
        );
    }
    off.stop(&server_rt);

    if wanted("force") || wanted("strict") {
        upgrades(&server_rt, &client, &wanted, &rounds);
    }

    if wanted("connect_all_events") {
        let off = Server::start(
            &server_rt,
            EmulatorConfig::new().encryption(EncryptionSetting::Off),
            "report-all-events",
        );
        let request = off.request(EncryptionLevel::Off);
        let telemetry = Telemetry::all_events();
        let mut traced = telemetry.traced(ConnectPolicy::new());
        // With `--only connect_all_events` the bare round would be the first
        // to reach every one of tiberius's callsites.
        traced.warm_up(&client, &request);
        let mut on = || traced.connect(&client, &request);
        let n = rounds(400);
        let r = interleave(n, 4, false, &mut || bare(&client, &request), &mut on);
        row(
            "connect_all_events",
            Goal::AtMost(1.02),
            &r,
            4,
            "bare",
            "layer + telemetry, no level filter",
        );
        drop(traced);
        telemetry.shutdown();
        off.stop(&server_rt);
    }
}

const ROWS: usize = 2_000;
const BYTES: usize = 4_000;

/// The sized query, its shape checked.
async fn query<S>(client: &mut tiberius::Client<S>) -> usize
where
    S: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin + Send,
{
    let rows = client
        .simple_query(format!("SELECT ROWS {ROWS} BYTES {BYTES}"))
        .await
        .expect("query")
        .into_first_result()
        .await
        .expect("rows");
    assert_eq!(rows.len(), ROWS);
    rows.len()
}

/// The upgrade and memory comparisons; each case's attempts and final level
/// are checked before it is timed.
fn upgrades(
    server_rt: &Runtime,
    client: &Runtime,
    wanted: &dyn Fn(&str) -> bool,
    rounds: &dyn Fn(usize) -> usize,
) {
    use EncryptionLevel::{NotSupported, Required, Strict};
    let force = Server::start(
        server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Force),
        "report-force",
    );
    let strict = Server::start(
        server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::StrictOnly),
        "report-strict",
    );
    let forgetful = || layered(ConnectPolicy::new().without_memory());
    for (server, family, start, works) in [
        (&force, "force", NotSupported, Required),
        (&strict, "strict", Required, Strict),
    ] {
        if !wanted(family) {
            continue;
        }
        let first_request = server.request(start);
        let clean_request = server.request(works);
        let mut first = forgetful();
        let mut clean = forgetful();
        let mut next = layered(ConnectPolicy::new());
        // The `next` service learns its floor here (its first connect upgrades).
        assert_eq!(
            connect_checked(client, &mut next, &first_request),
            (2, works),
            "{family}: the first connect upgrades"
        );
        assert_eq!(
            connect_checked(client, &mut first, &first_request),
            (2, works),
            "{family}_first"
        );
        assert_eq!(
            connect_checked(client, &mut clean, &clean_request),
            (1, works),
            "{family}_clean"
        );
        assert_eq!(
            connect_checked(client, &mut next, &first_request),
            (1, works),
            "{family}_next"
        );
        let mut clean_once = || {
            connect_checked(client, &mut clean, &clean_request);
        };
        let n = rounds(200);
        let r = interleave(n, 2, false, &mut clean_once, &mut || {
            connect_checked(client, &mut first, &first_request);
        });
        row(
            &format!("{family}_first"),
            Goal::AtMost(2.0),
            &r,
            2,
            "clean",
            "first",
        );
        let r = interleave(n, 2, false, &mut clean_once, &mut || {
            connect_checked(client, &mut next, &first_request);
        });
        row(
            &format!("{family}_next"),
            Goal::AtMost(1.02),
            &r,
            2,
            "clean",
            "next (memory)",
        );
    }
    force.stop(server_rt);
    strict.stop(server_rt);
}
