//! Shared by the integration tests: start the emulator in one line, probe it with a bound.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use tds_doctor::{ProbeOptions, Report, Target, probe};
use tds_emulator::{Emulator, EmulatorConfig};

/// Per-probe bound the tests use: a silent TLS-first probe costs 3 s, not 5, while a debug-build
/// TLS handshake on a loaded 2-core machine still fits with room to spare.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound for anything a test waits on beyond the doctor's own bounds (slow shared CI).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running emulator with its CA written to a file.
pub struct Running {
    pub emulator: Emulator,
    pub ca_path: PathBuf,
}

impl Running {
    pub fn port(&self) -> u16 {
        self.emulator.local_addr().port()
    }

    pub fn target(&self) -> Target {
        Target::new("127.0.0.1", self.port())
    }

    pub fn options(&self) -> ProbeOptions {
        ProbeOptions::new()
            .timeout(PROBE_TIMEOUT)
            .ca(Some(self.ca_path.clone()))
    }

    /// Probes the emulator with its CA; the whole probe is bounded by the documented worst case
    /// (6 probes × the per-probe bound) plus patience for a slow machine.
    pub async fn probe(&self) -> Report {
        bounded_probe(&self.target(), &self.options()).await
    }

    pub async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.ca_path);
        tokio::time::timeout(PATIENCE, self.emulator.shutdown())
            .await
            .expect("emulator shutdown did not finish");
    }
}

pub async fn bounded_probe(target: &Target, options: &ProbeOptions) -> Report {
    tokio::time::timeout(
        options.probe_timeout() * 6 + PATIENCE,
        probe(target, options),
    )
    .await
    .expect("the probe ended within its documented bound")
}

pub async fn start(config: EmulatorConfig) -> Running {
    let emulator = Emulator::start(config).await.expect("emulator starts");
    let ca_path = std::env::temp_dir().join(format!(
        "tds-doctor-test-ca-{}-{}.pem",
        std::process::id(),
        emulator.local_addr().port()
    ));
    emulator.write_ca_pem(&ca_path).expect("CA written");
    Running { emulator, ca_path }
}

/// The codes of the report's findings.
pub fn codes(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.code).collect()
}

/// The cause attached to a finding, by code.
pub fn cause_of(report: &Report, code: &str) -> Option<&'static str> {
    report
        .findings
        .iter()
        .find(|f| f.code == code)
        .and_then(|f| f.cause)
}
