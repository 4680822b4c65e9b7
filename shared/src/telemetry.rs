//! Logging and trace context. Logs are structured: a short sentence plus fields
//! (`tenant`, `run`, `file`, `error`), as text or JSON on stderr.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::envelope::TraceContext;

/// Installs the global subscriber: `RUST_LOG` (or `default_filter`) picks what is shown,
/// `format` is `text` or `json`. Safe to call twice (the second call does nothing).
pub fn init(default_filter: &str, format: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BoxMakeWriter::new(std::io::stderr))
        .with_target(false);
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The trace context to put on an outgoing message: the W3C context of the current span
/// when an OpenTelemetry layer is installed, empty otherwise.
pub fn current_trace_context() -> TraceContext {
    TraceContext::default()
}
