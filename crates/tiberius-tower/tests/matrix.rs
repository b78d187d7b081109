//! The full matrix (design §4): server encryption setting × client level ×
//! policy ceiling × fault. The expected outcome of every case is derived
//! from the MS-TDS encryption matrix (tds-handshake.md §3.2), the emulator's
//! documented behaviour, and the design's cause table and policy rules — a
//! model written from the specification, not a recording of the code.

mod common;

use std::time::{Duration, Instant};

use common::{
    Server, assert_levels_monotonic, base_config, connect, fast_policy, select_one, service,
};
use futures_util::StreamExt;
use tds_emulator::{AlertFraming, EncryptionSetting, Fault, Schedule, StallPhase};
use tiberius_tower::{Cause, EncryptionLevel};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Injected {
    None,
    ResetBeforeReplyOnce,
    FinBeforeReplyOnce,
    ResetAfterReplyOnce,
    ResetBeforeReplyAlways,
    Alert70WrappedAlways,
    Alert40RawAlways,
    ResetAfterClientHelloOnce,
    LoginFailedAlways,
    Login40613Once,
    StallPreloginOnce,
}

const FAULTS: [Injected; 11] = [
    Injected::None,
    Injected::ResetBeforeReplyOnce,
    Injected::FinBeforeReplyOnce,
    Injected::ResetAfterReplyOnce,
    Injected::ResetBeforeReplyAlways,
    Injected::Alert70WrappedAlways,
    Injected::Alert40RawAlways,
    Injected::ResetAfterClientHelloOnce,
    Injected::LoginFailedAlways,
    Injected::Login40613Once,
    Injected::StallPreloginOnce,
];

impl Injected {
    fn rule(self) -> Option<(Fault, Schedule)> {
        let once = Schedule::FirstN(1);
        Some(match self {
            Injected::None => return None,
            Injected::ResetBeforeReplyOnce => (Fault::ResetBeforePreloginReply, once),
            Injected::FinBeforeReplyOnce => (Fault::FinBeforePreloginReply, once),
            Injected::ResetAfterReplyOnce => (Fault::ResetAfterPreloginReply, once),
            Injected::ResetBeforeReplyAlways => (Fault::ResetBeforePreloginReply, Schedule::Always),
            Injected::Alert70WrappedAlways => (
                Fault::Alert {
                    description: 70,
                    framing: AlertFraming::Wrapped,
                },
                Schedule::Always,
            ),
            Injected::Alert40RawAlways => (
                Fault::Alert {
                    description: 40,
                    framing: AlertFraming::Raw,
                },
                Schedule::Always,
            ),
            Injected::ResetAfterClientHelloOnce => (Fault::ResetAfterClientHello, once),
            Injected::LoginFailedAlways => (Fault::LoginError(18456), Schedule::Always),
            Injected::Login40613Once => (Fault::LoginError(40613), once),
            Injected::StallPreloginOnce => (Fault::Stall(StallPhase::Prelogin), once),
        })
    }

    fn fires(self, connection: u32) -> bool {
        match self {
            Injected::None => false,
            Injected::ResetBeforeReplyAlways
            | Injected::Alert70WrappedAlways
            | Injected::Alert40RawAlways
            | Injected::LoginFailedAlways => true,
            _ => connection == 0,
        }
    }
}

/// What one attempt meets, per the emulator's documented behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Meets {
    LoggedIn,
    Fails {
        cause: Cause,
        /// A bare close right after the ClientHello: the policy confirms it once.
        bare_close: bool,
        /// Reset/EOF with no reply right after a plaintext PRELOGIN.
        no_reply: bool,
        /// The server answered with TLS (ServerHello) before failing.
        spoke_tls: bool,
    },
}

fn fails(cause: Cause) -> Meets {
    Meets::Fails {
        cause,
        bare_close: false,
        no_reply: false,
        spoke_tls: false,
    }
}

/// The server closed right after the client's ClientHello (or, to the
/// client, indistinguishably, right after the PRELOGIN reply).
fn bare_close() -> Meets {
    Meets::Fails {
        cause: Cause::TlsHandshakeRejected,
        bare_close: true,
        no_reply: false,
        spoke_tls: false,
    }
}

fn attempt(
    setting: EncryptionSetting,
    level: EncryptionLevel,
    fault: Injected,
    connection: u32,
) -> Meets {
    use EncryptionLevel::*;
    let fires = fault.fires(connection);
    let strict_server = matches!(
        setting,
        EncryptionSetting::StrictOnly | EncryptionSetting::StrictAndLegacy
    );

    if level == Strict {
        if !strict_server {
            // A TLS-first client to a server without TDS 8.0 (reset, §5.4).
            return bare_close();
        }
        if fires {
            match fault {
                // The observer reads alerts raw or wrapped (design §2.1).
                Injected::Alert70WrappedAlways => return fails(Cause::TlsVersionMismatch),
                Injected::Alert40RawAlways => return fails(Cause::TlsHandshakeRejected),
                Injected::ResetAfterClientHelloOnce => return bare_close(),
                _ => {}
            }
        }
        // TLS is up; the PRELOGIN travels inside it.
        let after_tls = |cause| Meets::Fails {
            cause,
            bare_close: false,
            no_reply: false,
            spoke_tls: true,
        };
        if fires {
            match fault {
                Injected::ResetBeforeReplyOnce
                | Injected::FinBeforeReplyOnce
                | Injected::ResetBeforeReplyAlways
                | Injected::ResetAfterReplyOnce => return after_tls(Cause::TransientReset),
                Injected::StallPreloginOnce => return after_tls(Cause::Timeout),
                Injected::LoginFailedAlways => return after_tls(Cause::LoginFailed),
                Injected::Login40613Once => return after_tls(Cause::ServerTransient),
                _ => {}
            }
        }
        return Meets::LoggedIn;
    }

    // TDS 7: plaintext PRELOGIN.
    if setting == EncryptionSetting::StrictOnly {
        return Meets::Fails {
            cause: Cause::TransientReset,
            bare_close: false,
            no_reply: true,
            spoke_tls: false,
        };
    }
    if fires {
        match fault {
            Injected::ResetBeforeReplyOnce
            | Injected::FinBeforeReplyOnce
            | Injected::ResetBeforeReplyAlways => {
                return Meets::Fails {
                    cause: Cause::TransientReset,
                    bare_close: false,
                    no_reply: true,
                    spoke_tls: false,
                };
            }
            Injected::StallPreloginOnce => return fails(Cause::Timeout),
            _ => {}
        }
    }
    // MS-TDS 2.2.6.5 matrix, as the emulator applies it.
    #[derive(PartialEq)]
    enum Column {
        Off,
        On,
        NotSup,
    }
    let column = match setting {
        EncryptionSetting::None => Column::NotSup,
        EncryptionSetting::Force => Column::On,
        _ => Column::Off,
    };
    match (level, &column) {
        // Client NOT_SUP, server ON: reply REQ, terminate.
        (NotSupported, Column::On) => return fails(Cause::EncryptionRequired),
        // Client REQ, server NOT_SUP: reply NOT_SUP, terminate; tiberius refuses.
        (Required, Column::NotSup) => return fails(Cause::EncryptionUnavailable),
        // Client OFF, server NOT_SUP: tiberius attempts TLS anyway (§3.4) and fails.
        (Off, Column::NotSup) => return fails(Cause::EncryptionUnavailable),
        _ => {}
    }
    let tls = !matches!((level, &column), (NotSupported, _) | (_, Column::NotSup));
    if fires && fault == Injected::ResetAfterReplyOnce {
        // With TLS next, tiberius has sent its ClientHello when it meets the reset.
        return if tls {
            bare_close()
        } else {
            fails(Cause::TransientReset)
        };
    }
    if tls && fires {
        match fault {
            Injected::Alert70WrappedAlways => return fails(Cause::TlsVersionMismatch),
            Injected::Alert40RawAlways => return fails(Cause::TlsHandshakeRejected),
            Injected::ResetAfterClientHelloOnce => return bare_close(),
            _ => {}
        }
    }
    let spoke_tls = tls;
    if fires {
        match fault {
            Injected::LoginFailedAlways => {
                return Meets::Fails {
                    cause: Cause::LoginFailed,
                    bare_close: false,
                    no_reply: false,
                    spoke_tls,
                };
            }
            Injected::Login40613Once => {
                return Meets::Fails {
                    cause: Cause::ServerTransient,
                    bare_close: false,
                    no_reply: false,
                    spoke_tls,
                };
            }
            _ => {}
        }
    }
    Meets::LoggedIn
}

#[derive(Debug, Clone, PartialEq)]
struct Expected {
    outcome: Result<EncryptionLevel, Cause>,
    levels: Vec<EncryptionLevel>,
}

/// The design's policy rules (design §2.2, §2.3) applied to the model server.
fn expected(
    setting: EncryptionSetting,
    configured: EncryptionLevel,
    ceiling: EncryptionLevel,
    fault: Injected,
) -> Expected {
    const MAX_RETRIES: usize = 2; // fast_policy()
    let mut level = configured;
    let mut levels = Vec::new();
    let mut retries = 0;
    let mut probed = false;
    let mut confirmed = false;
    let mut probing_from: Option<(EncryptionLevel, Cause)> = None;
    let mut connection = 0;
    loop {
        let this_level = probing_from.map_or(level, |_| EncryptionLevel::Strict);
        levels.push(this_level);
        let meets = attempt(setting, this_level, fault, connection);
        connection += 1;
        let (cause, bare, no_reply, spoke_tls) = match meets {
            Meets::LoggedIn => {
                return Expected {
                    outcome: Ok(this_level),
                    levels,
                };
            }
            Meets::Fails {
                cause,
                bare_close,
                no_reply,
                spoke_tls,
            } => (cause, bare_close, no_reply, spoke_tls),
        };
        let mut retry_cause = cause;
        if let Some((_, original)) = probing_from.take() {
            if spoke_tls {
                level = EncryptionLevel::Strict;
                if !cause.is_transient() {
                    return Expected {
                        outcome: Err(cause),
                        levels,
                    };
                }
            } else {
                retry_cause = original;
            }
        } else if cause == Cause::EncryptionRequired {
            if ceiling >= EncryptionLevel::Required && level < EncryptionLevel::Required {
                level = EncryptionLevel::Required;
                continue;
            }
            return Expected {
                outcome: Err(cause),
                levels,
            };
        } else if no_reply
            && !probed
            && level < EncryptionLevel::Strict
            && ceiling == EncryptionLevel::Strict
        {
            probed = true;
            probing_from = Some((level, cause));
            continue;
        } else if bare && !confirmed {
            // Confirmed by one more attempt (a retry) before stopping.
            confirmed = true;
        } else if !cause.is_transient() {
            return Expected {
                outcome: Err(cause),
                levels,
            };
        }
        if retries == MAX_RETRIES {
            return Expected {
                outcome: Err(retry_cause),
                levels,
            };
        }
        retries += 1;
    }
}

struct Case {
    setting: EncryptionSetting,
    level: EncryptionLevel,
    ceiling: EncryptionLevel,
    fault: Injected,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{}/{}/ceiling-{}/{:?}",
            self.setting, self.level, self.ceiling, self.fault
        )
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for setting in EncryptionSetting::ALL {
        for level in EncryptionLevel::LADDER {
            for ceiling in [EncryptionLevel::Strict, EncryptionLevel::Required] {
                for fault in FAULTS {
                    cases.push(Case {
                        setting,
                        level,
                        ceiling,
                        fault,
                    });
                }
            }
        }
    }
    cases
}

async fn run(case: Case) -> Result<(), String> {
    let name = case.name();
    let want = expected(case.setting, case.level, case.ceiling, case.fault);
    let mut config = base_config(case.setting);
    if let Some((fault, schedule)) = case.fault.rule() {
        config = config.fault(fault, schedule);
    }
    let server = Server::start(config).await;
    let mut svc = service(fast_policy().ceiling(case.ceiling));
    let started = Instant::now();
    let result = connect(&mut svc, server.request(case.level)).await;
    let took = started.elapsed();
    let mut problems = Vec::new();

    let (records, outcome) = match result {
        Ok(mut connected) => {
            let level = connected.encryption();
            if select_one(connected.client_mut()).await != Some(1) {
                problems.push("SELECT 1 did not return 1".to_owned());
            }
            (connected.attempts().to_vec(), Ok(level))
        }
        Err(error) => {
            let text = error.to_string();
            if text.contains("Password123!") {
                problems.push("password in Display".to_owned());
            }
            (error.attempts().to_vec(), Err(error.cause()))
        }
    };
    if outcome != want.outcome {
        problems.push(format!("outcome {outcome:?}, expected {:?}", want.outcome));
    }
    let ours: Vec<EncryptionLevel> = records.iter().map(|r| r.encryption()).collect();
    if ours != want.levels {
        problems.push(format!(
            "attempt levels {ours:?}, expected {:?}",
            want.levels
        ));
    }
    // What the server saw, not our bookkeeping.
    let seen: Vec<Option<EncryptionLevel>> = server.offered_levels();
    let seen_levels: Vec<EncryptionLevel> = seen.iter().flatten().copied().collect();
    if seen.len() != records.len() || seen_levels.len() != seen.len() {
        problems.push(format!(
            "emulator saw {seen:?} for {} attempts",
            records.len()
        ));
    } else {
        if seen_levels != ours {
            problems.push(format!(
                "emulator saw levels {seen_levels:?}, we recorded {ours:?}"
            ));
        }
        let probes: Vec<bool> = records.iter().map(|r| r.strict_probe()).collect();
        let check = std::panic::catch_unwind(|| {
            assert_levels_monotonic(&name, case.level, &seen_levels, &probes)
        });
        if check.is_err() {
            problems.push(format!(
                "levels not monotonic: {seen_levels:?} probes {probes:?}"
            ));
        }
    }
    if took > Duration::from_secs(30) {
        problems.push(format!("took {took:?}"));
    }
    server.stop().await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("; ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_of_settings_levels_ceilings_and_faults() {
    let cases = cases();
    let total = cases.len();
    assert!(total >= 400, "the matrix has {total} cases");
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(run)
        .buffer_unordered(16)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_model_agrees_with_the_design_examples() {
    use EncryptionLevel::*;
    // Force Encryption + NotSupported: two attempts, ends at Required.
    let e = expected(
        EncryptionSetting::Force,
        NotSupported,
        Strict,
        Injected::None,
    );
    assert_eq!(e.outcome, Ok(Required));
    assert_eq!(e.levels, vec![NotSupported, Required]);
    // Strict-only + Required: probe, two attempts.
    let e = expected(
        EncryptionSetting::StrictOnly,
        Required,
        Strict,
        Injected::None,
    );
    assert_eq!(e.levels, vec![Required, Strict]);
    // Strict-only with a Required ceiling: resets until retries run out.
    let e = expected(
        EncryptionSetting::StrictOnly,
        Required,
        Required,
        Injected::None,
    );
    assert_eq!(e.outcome, Err(Cause::TransientReset));
    assert_eq!(e.levels.len(), 3);
    // No encryption on the server: never downgrade.
    let e = expected(EncryptionSetting::None, Required, Strict, Injected::None);
    assert_eq!(e.outcome, Err(Cause::EncryptionUnavailable));
    assert_eq!(e.levels.len(), 1);
}
