#![forbid(unsafe_code)]
//! `tds-doctor`: explains a SQL Server pre-login 10054 and says what to change.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tds_doctor::connect::{self, Timeline};
use tds_doctor::{
    ClientLevel, ClientSettings, ClientTrust, EXIT_UNREACHABLE, EXIT_USAGE, ProbeOptions, Target,
    explain, probe, render,
};
use tracing_subscriber::layer::SubscriberExt;

const EXIT_CODES: &str = "\
Exit codes:
  0  healthy: no warning or problem (connect: connected; explain: the client connects)
  1  findings: at least one warning or problem (connect: the connect failed; explain: the
     client fails)
  2  usage: bad command line or connection string
  3  unreachable: no TCP connection to the server

Bounds: each probe (TCP connect included) ends within --timeout (default 5 s). A full probe
makes at most 6 probes (30 s by default); a refused address ends after the first, a server that
accepts TCP but never answers after 2 (10 s by default).";

/// Explains a SQL Server pre-login handshake failure (error 10054) and says what to change.
///
/// `probe` asks the server, without credentials, how it answers each PRELOGIN encryption offer,
/// TDS 8.0 strict (TLS first, ALPN tds/8.0), TLS 1.2 and TLS 1.3 inside TDS 7, and shows its
/// certificate. `explain` says what one client's settings will hit. `connect` runs a real
/// connect through tiberius-tower and prints each attempt as it ends.
#[derive(Debug, Parser)]
#[command(name = "tds-doctor", version, after_help = EXIT_CODES)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe a server's pre-login posture: encryption, TDS 8.0, TLS versions, certificate.
    #[command(after_help = EXIT_CODES)]
    Probe {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the report as JSON (schema in docs/doctor.md).
        #[arg(long)]
        json: bool,
    },
    /// Say what a client with these settings will hit against the server, and the fix.
    #[command(after_help = EXIT_CODES)]
    Explain {
        #[command(flatten)]
        server: ServerArgs,
        /// The client's ADO connection string; only Server, Encrypt, TrustServerCertificate and
        /// TrustServerCertificateCA are read, nothing is printed. `-` reads it from stdin.
        #[arg(long, value_name = "STRING", conflicts_with = "encrypt")]
        connection_string: Option<String>,
        /// The client's Encrypt setting instead: DANGER_PLAINTEXT, false, true, strict.
        #[arg(long, value_name = "VALUE")]
        encrypt: Option<String>,
        /// With --encrypt: the client trusts any certificate.
        #[arg(long)]
        trust_server_certificate: bool,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect through tiberius-tower and print each attempt as it ends (credentials never
    /// printed).
    #[command(after_help = EXIT_CODES)]
    Connect {
        /// ADO connection string (`-` reads it from stdin, which keeps the password out of the
        /// process list).
        connection_string: String,
    },
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The server: HOST, HOST,PORT, HOST:PORT or HOST\INSTANCE,PORT (port 1433 by default).
    target: String,
    /// Instance name to send in PRELOGIN.
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// A PEM file of CA certificates to validate the server certificate against (besides the
    /// system roots).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Bound of each probe, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    timeout: f64,
}

impl ServerArgs {
    fn resolve(&self) -> Result<(Target, ProbeOptions), String> {
        let target = Target::parse(&self.target)
            .map_err(|e| format!("target: {e}"))?
            .with_instance(self.instance.clone());
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 600.0) {
            return Err("--timeout: expected seconds between 0 and 600".to_owned());
        }
        let options = ProbeOptions::new()
            .timeout(Duration::from_secs_f64(self.timeout))
            .ca(self.ca.clone());
        Ok((target, options))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tds-doctor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(args.command));
    ExitCode::from(code)
}

fn usage(message: &str) -> u8 {
    eprintln!("tds-doctor: {message}");
    EXIT_USAGE
}

async fn run(command: Command) -> u8 {
    match command {
        Command::Probe { server, json } => {
            let (target, options) = match server.resolve() {
                Ok(resolved) => resolved,
                Err(message) => return usage(&message),
            };
            let report = probe(&target, &options).await;
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => eprintln!("tds-doctor: {error}"),
                }
            } else {
                print!("{}", render::report(&report));
            }
            report.exit_code()
        }
        Command::Explain {
            server,
            connection_string,
            encrypt,
            trust_server_certificate,
            json,
        } => {
            let (target, options) = match server.resolve() {
                Ok(resolved) => resolved,
                Err(message) => return usage(&message),
            };
            let settings = match (connection_string, encrypt) {
                (Some(text), _) => {
                    let text = match read_secret(text) {
                        Ok(text) => text,
                        Err(message) => return usage(&message),
                    };
                    match ClientSettings::from_ado_string(&text) {
                        Ok(settings) => settings,
                        Err(message) => return usage(&message),
                    }
                }
                (None, value) => {
                    let Some(level) = ClientLevel::from_encrypt(value.as_deref()) else {
                        return usage(
                            "--encrypt: expected DANGER_PLAINTEXT, false, true or strict",
                        );
                    };
                    let trust = match (trust_server_certificate, &server.ca) {
                        (true, _) => ClientTrust::TrustAll,
                        (false, Some(ca)) => ClientTrust::CaFile(ca.clone()),
                        (false, None) => ClientTrust::SystemRoots,
                    };
                    ClientSettings {
                        level,
                        trust,
                        host: None,
                    }
                }
            };
            let report = probe(&target, &options).await;
            let verdict = explain(&report, &settings);
            if json {
                match serde_json::to_string_pretty(&verdict) {
                    Ok(text) => println!("{text}"),
                    Err(error) => eprintln!("tds-doctor: {error}"),
                }
            } else {
                print!("{}", render::verdict(&verdict));
            }
            if report.unreachable() {
                EXIT_UNREACHABLE
            } else if verdict.connects {
                0
            } else {
                1
            }
        }
        Command::Connect { connection_string } => {
            let text = match read_secret(connection_string) {
                Ok(text) => text,
                Err(message) => return usage(&message),
            };
            let sink: connect::Sink = Arc::new(Mutex::new(std::io::stdout()));
            let subscriber = tracing_subscriber::registry().with(Timeline::new(sink));
            let _guard = tracing::subscriber::set_default(subscriber);
            match connect::connect(&text).await {
                Ok(outcome) => {
                    println!("{}", outcome.summary);
                    let _ = std::io::stdout().flush();
                    outcome.exit_code()
                }
                Err(message) => usage(&format!("connection string: {message}")),
            }
        }
    }
}

/// The connection string itself, or the first line of stdin for `-`.
fn read_secret(text: String) -> Result<String, String> {
    if text != "-" {
        return Ok(text);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the connection string from stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
