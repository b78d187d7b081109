//! `tds-doctor connect`: a real connect through tiberius-tower, with a live timeline of its
//! attempts, like `curl -v` for SQL Server.
//!
//! Every use of `tiberius_tower` in this crate is in this file. The timeline comes from the
//! middleware's own telemetry: a [`Timeline`] layer prints each `mssql.connect.attempt` span
//! when it closes, reading its fields by their documented names (`docs/telemetry.md`). The
//! connection string is parsed by the middleware and never printed: the spans carry host, port,
//! levels, phases and causes, never credentials.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tower::{Service, ServiceBuilder, ServiceExt};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where the timeline is written.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// Name of the middleware's per-attempt span.
const ATTEMPT_SPAN: &str = "mssql.connect.attempt";

/// How the connect ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOutcome {
    /// Logged in.
    pub connected: bool,
    /// Attempts made.
    pub attempts: usize,
    /// The middleware's cause name, on failure.
    pub cause: Option<String>,
    /// Why the middleware stopped, on failure.
    pub stop_reason: Option<String>,
    /// The summary line (the middleware's error text on failure).
    pub summary: String,
}

impl ConnectOutcome {
    /// The exit code: 0 connected, 3 nothing listening, 1 any other failure.
    pub fn exit_code(&self) -> u8 {
        match (self.connected, self.cause.as_deref()) {
            (true, _) => crate::EXIT_HEALTHY,
            (false, Some("connection_refused")) => crate::EXIT_UNREACHABLE,
            (false, _) => crate::EXIT_FINDINGS,
        }
    }
}

/// Connects once through `PreloginLayer` with the default policy. Install a subscriber with
/// a [`Timeline`] first to see the attempts as they end.
///
/// # Errors
///
/// The middleware's message when the connection string is unusable (it names the key, never
/// the value).
pub async fn connect(connection_string: &str) -> Result<ConnectOutcome, String> {
    let request = tiberius_tower::ConnectRequest::from_ado_string(connection_string)
        .map_err(|e| e.to_string())?;
    let mut service = ServiceBuilder::new()
        .layer(tiberius_tower::PreloginLayer::new(
            tiberius_tower::ConnectPolicy::new(),
        ))
        .service(tiberius_tower::Connector::new());
    let ready = service.ready().await.map_err(|e| e.to_string())?;
    Ok(match ready.call(request).await {
        Ok(connected) => {
            let attempts = connected.attempts().len();
            ConnectOutcome {
                connected: true,
                attempts,
                cause: None,
                stop_reason: None,
                summary: format!("connected after {attempts} attempt(s)"),
            }
        }
        Err(error) => ConnectOutcome {
            connected: false,
            attempts: error.attempts().len(),
            cause: Some(error.cause().as_str().to_owned()),
            stop_reason: Some(error.stop_reason().as_str().to_owned()),
            summary: error.to_string(),
        },
    })
}

/// A `tracing_subscriber` layer that writes one line per attempt span when it closes.
pub struct Timeline {
    sink: Sink,
    started: Instant,
}

impl Timeline {
    /// A timeline writing to `sink`; times are relative to now.
    pub fn new(sink: Sink) -> Self {
        Timeline {
            sink,
            started: Instant::now(),
        }
    }
}

impl fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline").finish_non_exhaustive()
    }
}

/// The fields of one attempt span, by name, as recorded so far.
struct Fields {
    values: Vec<(&'static str, String)>,
    opened: Instant,
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &'static str, value: String) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Timeline
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != ATTEMPT_SPAN {
            return;
        }
        let mut fields = Fields {
            values: Vec::new(),
            opened: Instant::now(),
        };
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(fields) = span.extensions_mut().remove::<Fields>() else {
            return;
        };
        let line = attempt_line(&fields, self.started);
        if let Ok(mut sink) = self.sink.lock() {
            let _ = writeln!(sink, "{line}");
            let _ = sink.flush();
        }
    }
}

fn attempt_line(f: &Fields, started: Instant) -> String {
    let get = |name| f.get(name).unwrap_or("-");
    let at = f.opened.saturating_duration_since(started).as_millis();
    let took = f.opened.elapsed().as_millis();
    let mut line = format!(
        "+{at:>6} ms  attempt {}  {}:{}  encryption={}  phase={}",
        get("mssql.attempt"),
        get("server.address"),
        get("server.port"),
        get("mssql.encryption"),
        get("mssql.phase"),
    );
    if let Some(delay) = f.get("mssql.backoff.delay_ms").filter(|d| *d != "0") {
        line.push_str(&format!("  after backoff {delay} ms"));
    }
    match f.get("mssql.prelogin.cause") {
        Some(cause) => {
            line.push_str(&format!("  cause={cause}"));
            if let Some(code) = f.get("db.response.status_code") {
                line.push_str(&format!(" ({code})"));
            }
            line.push_str(&format!("  decision={}", get("mssql.decision")));
            if let (Some(from), Some(to)) = (f.get("mssql.upgrade.from"), f.get("mssql.upgrade.to"))
            {
                line.push_str(&format!(" {from}->{to}"));
            }
        }
        None => line.push_str("  connected"),
    }
    line.push_str(&format!("  took {took} ms"));
    line
}
