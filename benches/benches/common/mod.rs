//! Setup shared by the design §3 comparison benches: an emulator on its own
//! runtime thread, requests, the bare-tiberius baseline, and criterion's
//! medians read back after a group ran.
//!
//! Each bench target compiles this module on its own and uses a subset.
#![allow(dead_code)]

pub(crate) mod telemetry;

use std::path::PathBuf;
use std::time::Duration;

use tds_emulator::{Emulator, EmulatorConfig};
use tiberius_tower::{
    ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, Prelogin, PreloginLayer,
};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tower::{Service, ServiceBuilder, ServiceExt};

/// The login the emulator accepts by default.
pub(crate) const USER: &str = "sa";
/// Its password.
pub(crate) const PASSWORD: &str = "Password123!";

/// tiberius over a plain `TcpStream`: the baseline.
pub(crate) type BareClient = tiberius::Client<Compat<TcpStream>>;

/// The emulator's runtime: one worker thread, so the client (on the bench
/// thread) and the server each have one of the machine's two cores.
pub(crate) fn server_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime")
}

/// The client's runtime: current-thread, driven by the bench thread.
pub(crate) fn client_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

/// A running emulator and the file holding its CA certificate.
pub(crate) struct Server {
    emulator: Option<Emulator>,
    ca: PathBuf,
}

impl Server {
    /// Starts an emulator with `config` on `runtime`; `tag` names its CA file.
    pub(crate) fn start(runtime: &Runtime, config: EmulatorConfig, tag: &str) -> Server {
        let emulator = runtime
            .block_on(Emulator::start(config))
            .expect("emulator starts");
        let ca = std::env::temp_dir().join(format!("bench-{tag}-{}.pem", std::process::id()));
        emulator.write_ca_pem(&ca).expect("CA written");
        Server {
            emulator: Some(emulator),
            ca,
        }
    }

    /// The emulator.
    pub(crate) fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("running")
    }

    /// A request for this server at `level`, trusting its CA.
    pub(crate) fn request(&self, level: EncryptionLevel) -> ConnectRequest {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(self.emulator().local_addr().port())
            .database("master")
            .authentication(tiberius::AuthMethod::sql_server(USER, PASSWORD))
            .encryption(level)
            .trust_cert_ca(&self.ca)
            .build()
    }

    /// Closes every connection and removes the CA file.
    pub(crate) fn stop(mut self, runtime: &Runtime) {
        if let Some(emulator) = self.emulator.take() {
            runtime.block_on(emulator.shutdown());
        }
        let _ = std::fs::remove_file(&self.ca);
    }
}

/// The layer over `Connector`, metrics off and no subscriber installed:
/// what is measured is the layer (observer, classification, policy), not
/// telemetry (the `telemetry` bench measures that).
pub(crate) fn layered(policy: ConnectPolicy) -> Prelogin<Connector> {
    ServiceBuilder::new()
        .layer(PreloginLayer::new(policy).without_metrics())
        .service(Connector::new())
}

/// One connect of `request` through `svc` on `client`; the client is
/// dropped at once (what is measured is the connect).
pub(crate) fn connect_through(
    client: &Runtime,
    svc: &mut Prelogin<Connector>,
    request: &ConnectRequest,
) {
    connect_checked(client, svc, request);
}

/// [`connect_through`], returning the attempts the connect took and its
/// final level, for the cases that check them.
pub(crate) fn connect_checked(
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

/// Bare tiberius with the request's own `tiberius::Config` (the same host,
/// port, level, trust, credentials and database): `TcpStream::connect`,
/// TCP_NODELAY as the `Connector` sets it, then `Client::connect`.
pub(crate) async fn bare_connect(request: &ConnectRequest) -> tiberius::Result<BareClient> {
    let config = request.tiberius_config();
    let tcp = TcpStream::connect((request.host(), request.port())).await?;
    tcp.set_nodelay(true)?;
    tiberius::Client::connect(config, tcp.compat_write()).await
}

/// Bytes the server sends during a clean connect of `request` (PRELOGIN
/// reply, TLS flights, login response), counted by an observer on a bare
/// tiberius connect.
pub(crate) async fn server_bytes_of_clean_connect(request: &ConnectRequest) -> u64 {
    use tower::Service;
    let observed = Connector::new()
        .call(request.clone())
        .await
        .expect("clean connect");
    // tiberius reads nothing past the login response before a query.
    observed
        .observation()
        .map(|observation| observation.server_bytes)
        .expect("the connector reports what it observed")
}

/// Where criterion writes its reports (`target/criterion`, or `$CRITERION_HOME`).
pub(crate) fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/criterion"))
        })
}

/// A criterion configured like the `telemetry` bench, from the command line.
pub(crate) fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .output_directory(&criterion_home())
        .configure_from_args()
}

/// The median (ns) criterion estimated for `group/id`, if this run produced one.
pub(crate) fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let json = std::fs::read_to_string(path).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

/// Prints both medians of `group` and `numerator / denominator`, with the
/// goal, or says that this run produced no estimates (test mode, a filter).
pub(crate) fn print_ratio(group: &str, numerator: &str, denominator: &str, goal: &str) {
    match (median_ns(group, numerator), median_ns(group, denominator)) {
        (Some(n), Some(d)) => println!(
            "{group}: median {numerator} {} / {denominator} {} = ratio {:.4}  (goal {goal})",
            human(n),
            human(d),
            n / d
        ),
        _ => println!("{group}: no criterion estimates for {numerator}/{denominator} in this run"),
    }
}

/// A duration in ns, as ms (or s) with enough digits.
pub(crate) fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}

/// A generous bound on any single connect in these benches, so a wedged
/// run fails loudly instead of hanging.
pub(crate) const BOUND: Duration = Duration::from_secs(60);

/// A control for criterion's ordering (criterion runs one variant after the
/// other): runs each routine once per round, in turn, `rounds` times, and
/// returns each routine's median time in ns.
pub(crate) fn interleaved<const N: usize>(
    rounds: usize,
    routines: [&mut dyn FnMut(); N],
) -> [f64; N] {
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for k in 0..N {
            // Alternate which routine goes first, so neither always follows the other.
            let i = if round % 2 == 0 { k } else { N - 1 - k };
            let started = std::time::Instant::now();
            (routines[i])();
            times[i].push(started.elapsed().as_nanos() as f64);
        }
    }
    times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    })
}
