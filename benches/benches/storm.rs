//! Issue 12: a fleet-wide reconnect storm after a failover, simulated on
//! tokio's paused clock (no real sleeping, no sockets).
//!
//! `INSTANCES` application instances each lose a pool of `POOL` connections
//! at t = 0 and reconnect them at once. The server model:
//!
//! - for `t < down` the server is gone: every attempt is refused after
//!   1 ms (the RST to a SYN on a host whose listener is down);
//! - from `t = down` it accepts at most `capacity` handshakes per calendar
//!   second of simulated time (or `capacity * window` per window with
//!   `--window-ms`, to check that the figures do not hang on the calendar
//!   second); an accepted handshake logs in after 20 ms;
//! - an attempt over that capacity is reset 5 ms in, after LOGIN7 (the
//!   server took the connection and dropped it under load), which the layer
//!   classifies `transient_reset` (the run prints the causes it saw).
//!
//! Every attempt, refused or not, is counted at the server in the second it
//! starts. Four strategies, side by side:
//!
//! - `layer`: the real `Prelogin` with `ConnectPolicy::new()` (its budget,
//!   jitter, backoff, deadline and memory as shipped), one per instance (the
//!   budget and memory are per process), over a `tower::service_fn` that
//!   asks the server model and answers `Observed` or `AttemptError`; then
//!   three variants of it (`LAYER_POLICIES`), the last sized by an operator
//!   who knows the fleet: `RetryBudget::new(0, capacity / processes, 2)`,
//!   with `--share-for N` to size it for N processes when the fleet has
//!   `--instances` (an operator who counted wrong);
//! - `sqlclient`: `ConnectRetryCount = 1`, `ConnectRetryInterval = 10 s`:
//!   one attempt, one retry 10 s later, then the error;
//! - `efcore`: `EnableRetryOnFailure()` defaults (`SqlServerRetryingExecutionStrategy`:
//!   6 retries, max delay 30 s); delay before retry k (k = 0..5) is
//!   `(2^k - 1) * U(1, 1.1)` seconds, capped at 30 s
//!   (`ExecutionStrategy.GetNextDelay`);
//! - `bb8`: bb8 0.9's `add_connection` loop with its defaults
//!   (`retry_connection` true, `connection_timeout` 30 s): after a failure
//!   sleep `min(timeout / 2, max(200 ms, previous) * 2)` (0.4, 0.8, ...,
//!   15 s) and try again, unless 30 s have passed since the first attempt.
//!
//! A connection that a strategy gives up on stays down (no application
//! retry on top): the run counts it as given up.
//!
//! Printed per strategy and replication: peak attempts per second at the
//! server before and after it is back, total attempts, connections back,
//! given up, and the time the last one came back against the
//! capacity-limited ideal `down + INSTANCES * POOL / capacity`. Then, per
//! strategy, the goal of issue 12 over the replications (min / median /
//! max): peak once back within `MARGIN` of the capacity, and every
//! connection back within 1.2x the ideal. `--series` also prints attempts
//! and accepted handshakes per second to stderr.
//! Replications differ in their seeds (printed): the layer's jitter draws
//! from backon's own random seed, EF Core's random factor from the printed
//! seed.
//!
//! ```sh
//! cargo bench -p benches --bench storm [-- --down 10 --capacity 2000 --instances 1000 --replications 3 --window-ms 100 --share-for 800 --series]
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tds_handshake::PreloginSummary;
use tiberius_tower::{
    AttemptError, AttemptFailure, AttemptTimings, ConnectPolicy, ConnectRequest, Encryption,
    EncryptionLevel, Observation, Observed, Phase, Prelogin, RetryBudget,
};
use tokio::time::Instant;
use tower::{Service as _, ServiceExt};

/// Time to a refused TCP connect while the server is down.
const REFUSED_AFTER: Duration = Duration::from_millis(1);
/// Time to the reset of an attempt over capacity.
const RESET_AFTER: Duration = Duration::from_millis(5);
/// Time of an accepted handshake and login.
const HANDSHAKE: Duration = Duration::from_millis(20);
/// The goal's margin above the server's capacity: 10 %, the width of EF
/// Core's random factor and of the layer's steady allowance at the default
/// fleet (1,000 processes x 0.2/s against 2,000/s).
const MARGIN: f64 = 0.10;

/// One run's shape.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    instances: usize,
    pool: usize,
    capacity: u32,
    down: Duration,
    /// The server's capacity is granted per window of this length
    /// (`capacity * window` handshakes each): a calendar second by default.
    window: Duration,
    /// How many processes the fleet-share budget is sized for: `instances`
    /// unless `--share-for` says the operator counted wrong.
    share_for: usize,
}

impl Scenario {
    /// The fleet-share budget's steady retries per second and process: the
    /// server's capacity divided by the processes it was sized for.
    fn share(&self) -> f32 {
        self.capacity as f32 / self.share_for.max(1) as f32
    }

    fn connections(&self) -> usize {
        self.instances * self.pool
    }

    /// The capacity-limited ideal: the server back at `down`, then exactly
    /// `capacity` logins per second until every connection is back.
    fn ideal(&self) -> Duration {
        self.down + Duration::from_secs_f64(self.connections() as f64 / f64::from(self.capacity))
    }
}

/// What the server model answers an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Refused,
    Overloaded,
    Accepted,
}

/// The server: down until `up_at`, then `capacity` handshakes per second.
struct ServerModel {
    started: Instant,
    up_at: Instant,
    window: Duration,
    /// Handshakes accepted per window: `capacity * window`.
    per_window: u32,
    counts: Mutex<Counts>,
}

/// What the server has seen so far.
#[derive(Default)]
struct Counts {
    /// Attempts and accepted handshakes in each second, in order.
    seconds: Vec<(u32, u32)>,
    /// Accepted handshakes in the current window: (window index, count).
    current: (u128, u32),
}

impl ServerModel {
    fn new(scenario: &Scenario) -> Self {
        let started = Instant::now();
        ServerModel {
            started,
            up_at: started + scenario.down,
            window: scenario.window,
            per_window: (f64::from(scenario.capacity) * scenario.window.as_secs_f64()).round()
                as u32,
            counts: Mutex::default(),
        }
    }

    /// Counts an attempt in its second and answers it.
    fn knock(&self) -> Answer {
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        let second = usize::try_from(elapsed.as_secs()).unwrap_or(0);
        let window = elapsed.as_nanos() / self.window.as_nanos().max(1);
        let mut counts = self.counts.lock().expect("not poisoned");
        let Counts { seconds, current } = &mut *counts;
        if seconds.len() <= second {
            seconds.resize(second + 1, (0, 0));
        }
        let (attempts, accepted) = &mut seconds[second];
        *attempts += 1;
        if current.0 != window {
            *current = (window, 0);
        }
        if now < self.up_at {
            Answer::Refused
        } else if current.1 < self.per_window {
            current.1 += 1;
            *accepted += 1;
            Answer::Accepted
        } else {
            Answer::Overloaded
        }
    }

    /// One attempt as the client sees it: the answer, after its duration.
    async fn attempt(&self) -> Answer {
        let answer = self.knock();
        tokio::time::sleep(match answer {
            Answer::Refused => REFUSED_AFTER,
            Answer::Overloaded => RESET_AFTER,
            Answer::Accepted => HANDSHAKE,
        })
        .await;
        answer
    }

    /// Attempts and accepted handshakes per second, in order.
    fn series(&self) -> Vec<(u32, u32)> {
        self.counts.lock().expect("not poisoned").seconds.clone()
    }
}

/// A PRELOGIN summary with this ENCRYPTION byte.
fn summary(encryption: u8) -> PreloginSummary {
    PreloginSummary {
        encryption: Some(Encryption(encryption)),
        ..PreloginSummary::default()
    }
}

/// What the connector reports for an attempt the model answered with a
/// failure: a refused TCP connect, or a reset after LOGIN7.
fn failure(answer: Answer, level: EncryptionLevel) -> AttemptError {
    match answer {
        Answer::Refused => AttemptError::new(
            AttemptFailure::TcpConnect(std::io::ErrorKind::ConnectionRefused.into()),
            None,
            level,
            AttemptTimings::new(None, None),
        ),
        _ => AttemptError::new(
            AttemptFailure::Tiberius(tiberius::error::Error::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                message: "Connection reset by peer (os error 104)".into(),
            }),
            Some(Observation {
                phase: Phase::LoginSent,
                started_with_tls: Some(false),
                client_prelogin: Some(summary(0x00)),
                server_prelogin: Some(summary(0x00)),
                client_bytes: 1_200,
                server_bytes: 1_100,
                ..Observation::default()
            }),
            level,
            AttemptTimings::new(Some(Duration::from_millis(1)), Some(RESET_AFTER)),
        ),
    }
}

/// A layer policy's name and how to build it for a scenario.
type NamedPolicy = (&'static str, fn(&Scenario) -> ConnectPolicy);

/// The layer's policies simulated: the shipped defaults first, then
/// variants, each with the knobs it changes.
const LAYER_POLICIES: [NamedPolicy; 4] = [
    ("layer (defaults)", |_| ConnectPolicy::new()),
    // Half the steady allowance: a smaller overshoot, a longer tail.
    ("layer: refill 0.1/s", |_| {
        ConnectPolicy::new().budget(RetryBudget::new(1.0, 0.1, 10))
    }),
    // An outage longer than the default 30 s deadline needs a longer one.
    ("layer: 120 s deadline", |_| {
        ConnectPolicy::new().deadline(Duration::from_secs(120))
    }),
    // The operator knows the fleet and the server: each process's retries
    // are its share of the capacity, and logins pay for none (the deadline
    // as in the row above, so the 30 s outage is not ended by it).
    ("layer: fleet share, 120 s deadline", |scenario| {
        ConnectPolicy::new()
            .budget(RetryBudget::new(0.0, scenario.share(), 2))
            .deadline(Duration::from_secs(120))
    }),
];

/// The strategies compared.
#[derive(Debug, Clone, Copy)]
enum Strategy {
    /// The layer with `LAYER_POLICIES[i]`.
    Layer(usize),
    SqlClient,
    EfCore,
    Bb8,
}

impl Strategy {
    /// The shipped defaults, the other strategies, then every variant in
    /// `LAYER_POLICIES` (a policy added there is simulated without a second
    /// edit here).
    fn all() -> impl Iterator<Item = Strategy> {
        [
            Strategy::Layer(0),
            Strategy::SqlClient,
            Strategy::EfCore,
            Strategy::Bb8,
        ]
        .into_iter()
        .chain((1..LAYER_POLICIES.len()).map(Strategy::Layer))
    }

    fn name(self) -> &'static str {
        match self {
            Strategy::Layer(i) => LAYER_POLICIES[i].0,
            Strategy::SqlClient => "sqlclient (1 x 10 s)",
            Strategy::EfCore => "efcore (6, max 30 s)",
            Strategy::Bb8 => "bb8 (30 s timeout)",
        }
    }
}

/// A small xorshift generator: EF Core's random factor, reproducible from
/// the printed seed.
struct XorShift(u64);

impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How one connection ended: back at this time, or given up.
type Ending = Result<Duration, &'static str>;

async fn sqlclient(server: Arc<ServerModel>) -> Ending {
    if server.attempt().await == Answer::Accepted {
        return Ok(server.started.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    match server.attempt().await {
        Answer::Accepted => Ok(server.started.elapsed()),
        _ => Err("retry count reached"),
    }
}

async fn efcore(server: Arc<ServerModel>, mut random: XorShift) -> Ending {
    for retry in 0..=6u32 {
        if server.attempt().await == Answer::Accepted {
            return Ok(server.started.elapsed());
        }
        if retry == 6 {
            break;
        }
        let delta = (2f64.powi(retry as i32) - 1.0) * (1.0 + random.unit() * 0.1);
        tokio::time::sleep(Duration::from_secs_f64(delta.min(30.0))).await;
    }
    Err("retry limit exceeded")
}

async fn bb8(server: Arc<ServerModel>) -> Ending {
    let timeout = Duration::from_secs(30);
    let start = Instant::now();
    let mut delay = Duration::ZERO;
    loop {
        if server.attempt().await == Answer::Accepted {
            return Ok(server.started.elapsed());
        }
        if start.elapsed() > timeout {
            return Err("connection timeout");
        }
        delay = (delay.max(Duration::from_millis(200)) * 2).min(timeout / 2);
        tokio::time::sleep(delay).await;
    }
}

/// One replication's figures.
struct Figures {
    peak_down: u32,
    peak_up: u32,
    attempts: u64,
    back: usize,
    given_up: BTreeMap<&'static str, usize>,
    last_back: Option<Duration>,
    causes: BTreeMap<&'static str, usize>,
    /// Attempts and accepted handshakes in each second.
    series: Vec<(u32, u32)>,
}

/// Runs one strategy through one scenario on a fresh paused runtime.
fn simulate(strategy: Strategy, scenario: Scenario, seed: u64) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let server = Arc::new(ServerModel::new(&scenario));
        let causes: Arc<Mutex<BTreeMap<&'static str, usize>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut random = XorShift(seed | 1);
        for _ in 0..scenario.instances {
            // The layer's inner service for one instance: the server model
            // behind a `service_fn`, answering as the connector would.
            let layer = match strategy {
                Strategy::Layer(i) => Some(LAYER_POLICIES[i].1),
                _ => None,
            }
            .map(|policy| {
                let server = Arc::clone(&server);
                let inner = tower::service_fn(move |request: ConnectRequest| {
                    let server = Arc::clone(&server);
                    async move {
                        match server.attempt().await {
                            Answer::Accepted => Ok(Observed::new((), None)),
                            answer => Err(failure(answer, request.encryption())),
                        }
                    }
                });
                Prelogin::new(inner, policy(&scenario))
            });
            for _ in 0..scenario.pool {
                let server = Arc::clone(&server);
                match strategy {
                    Strategy::Layer(_) => {
                        let mut layer = layer.clone().expect("built above");
                        let causes = Arc::clone(&causes);
                        let request = ConnectRequest::builder()
                            .host("db.example")
                            .port(1433)
                            .encryption(EncryptionLevel::Required)
                            .build();
                        tasks.spawn(async move {
                            let outcome = layer
                                .ready()
                                .await
                                .expect("always ready")
                                .call(request)
                                .await;
                            let mut causes = causes.lock().expect("not poisoned");
                            match outcome {
                                Ok(connected) => {
                                    for attempt in connected.attempts() {
                                        if let Some(cause) = attempt.cause() {
                                            *causes.entry(cause.as_str()).or_default() += 1;
                                        }
                                    }
                                    Ok(server.started.elapsed())
                                }
                                Err(error) => {
                                    for attempt in error.attempts() {
                                        if let Some(cause) = attempt.cause() {
                                            *causes.entry(cause.as_str()).or_default() += 1;
                                        }
                                    }
                                    Err(error.stop_reason().as_str())
                                }
                            }
                        });
                    }
                    Strategy::SqlClient => {
                        tasks.spawn(sqlclient(server));
                    }
                    Strategy::EfCore => {
                        let stream = XorShift(random.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                        random.unit();
                        tasks.spawn(efcore(server, stream));
                    }
                    Strategy::Bb8 => {
                        tasks.spawn(bb8(server));
                    }
                }
            }
        }
        let mut back = 0;
        let mut last_back = Duration::ZERO;
        let mut given_up = BTreeMap::new();
        // Bounded: every strategy ends within its deadline or retry count;
        // the paused clock makes the bound simulated time, not real time.
        let bound = tokio::time::timeout(Duration::from_secs(3_600), async {
            while let Some(ending) = tasks.join_next().await {
                match ending.expect("no task panics") {
                    Ok(at) => {
                        back += 1;
                        last_back = last_back.max(at);
                    }
                    Err(why) => *given_up.entry(why).or_insert(0usize) += 1,
                }
            }
        })
        .await;
        assert!(
            bound.is_ok(),
            "the simulation ended within an hour of simulated time"
        );
        let series = server.series();
        let down_secs = usize::try_from(scenario.down.as_secs()).unwrap_or(usize::MAX);
        let peak = |range: &[(u32, u32)]| range.iter().map(|(n, _)| *n).max().unwrap_or(0);
        let split = down_secs.min(series.len());
        let causes = causes.lock().expect("not poisoned").clone();
        Figures {
            peak_down: peak(&series[..split]),
            peak_up: peak(&series[split..]),
            attempts: series.iter().map(|(n, _)| u64::from(*n)).sum(),
            back,
            given_up,
            last_back: (back == scenario.connections()).then_some(last_back),
            causes,
            series,
        }
    })
}

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

fn main() {
    let instances = arg("--instances").unwrap_or(1_000) as usize;
    let pool = arg("--pool").unwrap_or(20) as usize;
    let capacity = arg("--capacity").unwrap_or(2_000) as u32;
    let window = Duration::from_millis(arg("--window-ms").unwrap_or(1_000));
    let replications = arg("--replications").unwrap_or(3);
    let share_for = arg("--share-for").map_or(instances, |n| n as usize);
    let downs: Vec<u64> = match arg("--down") {
        Some(down) => vec![down],
        None => vec![5, 30],
    };
    let base_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED);

    for down in downs {
        let scenario = Scenario {
            instances,
            pool,
            capacity,
            down: Duration::from_secs(down),
            window,
            share_for,
        };
        println!(
            "storm: {instances} instances x {pool} connections = {}, server down {down} s, then {capacity} handshakes/s; ideal recovery {:.1} s",
            scenario.connections(),
            scenario.ideal().as_secs_f64()
        );
        println!(
            "| strategy | seed | peak attempts/s while down | peak attempts/s once back (x capacity) | total attempts (per connection) | back | given up | last back (x ideal) | causes of the layer's failed attempts |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        let mut summaries = Vec::new();
        for strategy in Strategy::all() {
            let mut peaks = Vec::new();
            let mut recoveries = Vec::new();
            for replication in 0..replications {
                let seed = base_seed.wrapping_add(replication.wrapping_mul(0x9E37_79B9));
                let figures = simulate(strategy, scenario, seed);
                peaks.push(f64::from(figures.peak_up) / f64::from(capacity));
                recoveries.push(
                    figures
                        .last_back
                        .map(|at| at.as_secs_f64() / scenario.ideal().as_secs_f64()),
                );
                let given_up: Vec<String> = figures
                    .given_up
                    .iter()
                    .map(|(why, n)| format!("{n} ({why})"))
                    .collect();
                let causes: Vec<String> = figures
                    .causes
                    .iter()
                    .map(|(cause, n)| format!("{cause} {n}"))
                    .collect();
                if std::env::args().any(|a| a == "--series") {
                    let seconds: Vec<String> = figures
                        .series
                        .iter()
                        .enumerate()
                        .map(|(second, (attempts, accepted))| {
                            format!("{second}:{attempts}/{accepted}")
                        })
                        .collect();
                    eprintln!(
                        "{} {seed:#x} attempts/accepted per second: {}",
                        strategy.name(),
                        seconds.join(" ")
                    );
                }
                println!(
                    "| {} | {seed:#x} | {} | {} ({:.2}) | {} ({:.2}) | {} | {} | {} | {} |",
                    strategy.name(),
                    figures.peak_down,
                    figures.peak_up,
                    f64::from(figures.peak_up) / f64::from(capacity),
                    figures.attempts,
                    figures.attempts as f64 / scenario.connections() as f64,
                    figures.back,
                    if given_up.is_empty() {
                        "0".to_owned()
                    } else {
                        given_up.join(", ")
                    },
                    match figures.last_back {
                        Some(at) => format!(
                            "{:.1} s ({:.2})",
                            at.as_secs_f64(),
                            at.as_secs_f64() / scenario.ideal().as_secs_f64()
                        ),
                        None => "not all back".to_owned(),
                    },
                    if causes.is_empty() {
                        "-".to_owned()
                    } else {
                        causes.join(", ")
                    },
                );
            }
            summaries.push(goal_line(strategy, &peaks, &recoveries));
        }
        println!();
        for line in summaries {
            println!("- {line}");
        }
        println!();
    }
}

/// The goal of issue 12, checked for one strategy over its replications:
/// the peak once the server is back within `MARGIN` of its capacity, and
/// every connection back within 1.2x the capacity-limited ideal.
fn goal_line(strategy: Strategy, peaks: &[f64], recoveries: &[Option<f64>]) -> String {
    let spread = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        match (values.first(), values.get(values.len() / 2), values.last()) {
            (Some(min), Some(median), Some(max)) => {
                format!("{min:.2} / {median:.2} / {max:.2}")
            }
            _ => "-".to_owned(),
        }
    };
    let peak_ok = peaks.iter().all(|&peak| peak <= 1.0 + MARGIN);
    let all_back = recoveries.iter().all(Option::is_some);
    let mut recovered: Vec<f64> = recoveries.iter().flatten().copied().collect();
    let recovery_ok = all_back && recovered.iter().all(|&r| r <= 1.2);
    let mut peaks = peaks.to_vec();
    format!(
        "{}: peak once back (x capacity, min / median / max) {}; last back (x ideal) {}; goal (peak <= {:.2}, every connection back within 1.2x): {}",
        strategy.name(),
        spread(&mut peaks),
        if all_back {
            spread(&mut recovered)
        } else {
            "not all back".to_owned()
        },
        1.0 + MARGIN,
        match (peak_ok, recovery_ok) {
            (true, true) => "met",
            (true, false) => "NOT MET (recovery)",
            (false, true) => "NOT MET (peak)",
            (false, false) => "NOT MET (peak and recovery)",
        }
    )
}
