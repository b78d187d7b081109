#![forbid(unsafe_code)]
//! `tds-emulator`: run the SQL Server handshake emulator from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tds_emulator::{
    BrowserInstance, BrowserResponder, CertificateFlaw, CertificateSource, Emulator,
    EmulatorConfig, EncryptionSetting, FaultRule, RouteRule, ServerVersion, Termination,
    TlsFirstResponse, TlsProtocol,
};

/// A SQL Server handshake emulator that misbehaves on purpose.
///
/// It answers PRELOGIN per the MS-TDS encryption matrix, runs TLS inside TDS 7 PRELOGIN packets
/// or TDS 8.0 strict TLS (ALPN tds/8.0), accepts LOGIN7, answers `SELECT 1` and
/// `SELECT ROWS <n> BYTES <m>` (n rows of one m-byte VARBINARY column), and injects faults.
/// It prints the address it listens on and the path of the CA certificate clients should trust,
/// then runs until Ctrl-C.
#[derive(Debug, Parser)]
#[command(
    name = "tds-emulator",
    version,
    after_long_help = FAULT_HELP,
    after_help = "Run with --help for the fault syntax and examples."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:14330", value_name = "ADDR")]
    listen: SocketAddr,

    /// Server encryption setting: none (no TLS at all, the matrix's NOT_SUP column), off (SQL
    /// Server's default: TLS available), force (Force Encryption), strict-only (Force Strict
    /// Encryption: TDS 8.0 only, a plaintext PRELOGIN gets a reset), strict-and-legacy (TDS 8.0
    /// and TDS 7 on one port, decided on the first byte).
    #[arg(long, default_value = "off", value_name = "SETTING")]
    encryption: EncryptionSetting,

    /// TLS versions offered in TDS 7 (TLS wrapped in PRELOGIN packets), comma-separated: 1.2,
    /// 1.3. SQL Server offers only 1.2 there.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1.2",
        value_name = "VERSIONS"
    )]
    tds7_tls: Vec<TlsProtocol>,

    /// TLS versions offered in TDS 8.0 strict mode, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1.2,1.3",
        value_name = "VERSIONS"
    )]
    strict_tls: Vec<TlsProtocol>,

    /// Product version reported in PRELOGIN and LOGINACK (MAJOR.MINOR.BUILD).
    #[arg(
        long = "server-version",
        default_value = "16.0.4220",
        value_name = "VERSION"
    )]
    server_version: ServerVersion,

    /// SQL login accepted.
    #[arg(long, default_value = "sa")]
    user: String,

    /// Password of --user.
    #[arg(long, default_value = "Password123!")]
    password: String,

    /// Another database that logins may open (repeatable); master is always accepted, others
    /// get error 4060.
    #[arg(long = "database", value_name = "NAME")]
    databases: Vec<String>,

    /// Server name in INFO and ERROR tokens.
    #[arg(long, default_value = "EMU")]
    server_name: String,

    /// What a server without TDS 8.0 (none, off, force) does with a TLS-first client: hang (as
    /// SQL Server 2019: the client times out), close or reset.
    #[arg(long, default_value = "hang", value_name = "RESPONSE")]
    tls_first: TlsFirstResponse,

    /// How a connection the encryption matrix terminates ends after the PRELOGIN reply: reset
    /// (RST, what the 10054 reports show) or fin (an orderly close).
    #[arg(long, default_value = "reset", value_name = "HOW")]
    terminate: Termination,

    /// Certificate chain PEM (leaf first) instead of a generated one; needs --key.
    #[arg(long, requires = "key", value_name = "PATH")]
    cert: Option<PathBuf>,

    /// Private key PEM of --cert.
    #[arg(long, requires = "cert", value_name = "PATH")]
    key: Option<PathBuf>,

    /// Generate the certificate with a flaw validating clients reject: expired or wrong-name
    /// (the leaf names wrong-host.invalid). The CA stays the one to trust.
    #[arg(long, conflicts_with = "cert", value_name = "FLAW")]
    certificate_flaw: Option<CertificateFlaw>,

    /// CA PEM to export with --cert (default: the last certificate of --cert).
    #[arg(long, requires = "cert", value_name = "PATH")]
    ca: Option<PathBuf>,

    /// Where to write the CA certificate clients should trust (default:
    /// <temp dir>/tds-emulator-ca-<port>.pem).
    #[arg(long, value_name = "PATH")]
    ca_out: Option<PathBuf>,

    /// A fault rule, FAULT[@SCHEDULE] (repeatable; for a given point the first matching rule
    /// wins). See below.
    #[arg(long = "fault", value_name = "RULE")]
    faults: Vec<FaultRule>,

    /// Act as a gateway: answer logins with an ENVCHANGE routing token to HOST:PORT
    /// ([IPV6]:PORT for IPv6), on the connections SCHEDULE picks (default always), then close.
    #[arg(long, value_name = "HOST:PORT[@SCHEDULE]")]
    route: Option<RouteRule>,

    /// Also answer SQL Browser (SSRP) requests on the UDP address ADDR for the instance NAME,
    /// announcing the TDS listener's port (SQL Browser itself uses UDP 1434).
    #[arg(long, value_name = "NAME@ADDR", value_parser = parse_browser)]
    browser: Option<(String, SocketAddr)>,
}

fn parse_browser(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('@')
        .ok_or_else(|| "expected NAME@ADDR, e.g. SQLEXPRESS@127.0.0.1:1434".to_owned())?;
    let addr = addr
        .parse()
        .map_err(|e| format!("`{addr}` is not a socket address: {e}"))?;
    if name.is_empty() || name.len() > 32 {
        return Err("the instance name must have 1 to 32 bytes".to_owned());
    }
    Ok((name.to_owned(), addr))
}

const FAULT_HELP: &str = "\
FAULTS (--fault FAULT[@SCHEDULE], schedule defaults to always):
  reset-before-prelogin-reply   read the PRELOGIN, reset (RST) without a reply
  fin-before-prelogin-reply     read the PRELOGIN, close (FIN) without a reply
  garbage-reply                 answer the PRELOGIN with non-TDS bytes, then close
  truncated-reply               send half of the PRELOGIN reply, then close
  reset-after-prelogin-reply    send the PRELOGIN reply, then reset
  reset-after-client-hello      read the ClientHello, then reset
  reset-at-byte:N               stop the server's output after N bytes, then reset
  alert:D[:raw|:wrapped]        answer the ClientHello with fatal TLS alert D (0-255;
                                40 handshake_failure, 70 protocol_version, 71
                                insufficient_security), raw or in a 0x12 packet; then close
  old-server-hello[:1.0|:1.1]   answer the ClientHello with a TLS 1.0 (default) or 1.1
                                ServerHello, as an unpatched SQL Server 2008-2014; read the
                                client's alert (70 from TLS 1.2+ clients), then close
  stall:PHASE                   go silent at prelogin, tls, login or query
  wrong-packet-type             send TDS 7 TLS handshake packets as type 0x04
  nonzero-threadid              send a PRELOGIN reply with a non-empty THREADID (debug
                                builds of tiberius 0.13 panic on it)
  login-error:N                 reject LOGIN7 with error N (18456 class 14, 4060 class 11,
                                40613 class 17, others class 14), then close
  close-after-login             log in, then close (FIN)
  reset-after-login             log in, then reset

SCHEDULES:
  always          every connection
  first:N         the first N connections
  every:N         every Nth connection (the Nth, 2Nth, ...)
  p:P[:seed:S]    each connection with probability P, deterministic for seed S (default 0)

EXAMPLES:
  tds-emulator --encryption force --fault reset-before-prelogin-reply@first:2
  tds-emulator --fault alert:40:wrapped@every:3 --fault login-error:18456@always
  tds-emulator --encryption strict-and-legacy --fault stall:tls@p:0.3:seed:7
  tds-emulator --listen 127.0.0.1:14331 --route 127.0.0.1:14330@first:1
  tds-emulator --browser SQLEXPRESS@127.0.0.1:14340";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let certificate = match (args.cert, args.key) {
        (Some(chain), Some(key)) => CertificateSource::Pem {
            chain,
            key,
            ca: args.ca,
        },
        _ => CertificateSource::Generated,
    };
    let mut config = EmulatorConfig::new()
        .listen(args.listen)
        .encryption(args.encryption)
        .tds7_tls_versions(&args.tds7_tls)
        .strict_tls_versions(&args.strict_tls)
        .version(args.server_version)
        .credentials(args.user, args.password)
        .server_name(args.server_name.clone())
        .tls_first_response(args.tls_first)
        .matrix_termination(args.terminate)
        .certificate(certificate);
    for database in args.databases {
        config = config.database(database);
    }
    if let Some(flaw) = args.certificate_flaw {
        config = config.certificate_flaw(flaw);
    }
    for rule in args.faults {
        config = config.fault_rule(rule);
    }
    if let Some(rule) = args.route {
        config = config.route_rule(rule);
    }
    let emulator = match Emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("tds-emulator: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let addr = emulator.local_addr();
    let ca_out = args.ca_out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tds-emulator-ca-{}.pem", addr.port()))
    });
    if let Err(error) = emulator.write_ca_pem(&ca_out) {
        eprintln!("tds-emulator: cannot write {}: {error}", ca_out.display());
        emulator.shutdown().await;
        return ExitCode::FAILURE;
    }
    let _browser = match args.browser {
        None => None,
        Some((name, browser_addr)) => {
            let instances = vec![BrowserInstance::new(name.clone(), addr.port())];
            match BrowserResponder::start(browser_addr, &args.server_name, instances).await {
                Ok(browser) => {
                    println!(
                        "SQL Browser on {} (UDP): instance {name} -> tcp {}",
                        browser.local_addr(),
                        addr.port()
                    );
                    Some(browser)
                }
                Err(error) => {
                    eprintln!("tds-emulator: cannot start SQL Browser on {browser_addr}: {error}");
                    emulator.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    println!("listening on {addr}");
    println!("CA certificate: {}", ca_out.display());
    println!("encryption: {}", emulator.config().encryption_setting());
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("tds-emulator: cannot wait for Ctrl-C: {error}");
    }
    let stats = emulator.stats();
    emulator.shutdown().await;
    println!(
        "stopped: {} accepted, {} logged in, {} routed, {} faults injected",
        stats.accepted,
        stats.logged_in,
        stats.routed,
        stats.faults_total()
    );
    ExitCode::SUCCESS
}
