//! Logs and traces. Logs are structured (a short sentence plus fields: `tenant`, `run`,
//! `file`, `error`), as text or JSON on stderr. Traces are OpenTelemetry: every process
//! records spans, each message carries its W3C trace context in the envelope, and a stage
//! continues the trace of the message it handles, so one sync run is one trace across the
//! fetcher, parser, differ and writer, whichever processes they run in. Spans are exported
//! by OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;
use crate::model::envelope::TraceContext;

/// Keeps the tracer provider alive; dropping it flushes spans still being exported.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Spans the trace layer records, whatever the log filter shows.
const TRACE_FILTER: &str = "roster=info,roster_shared=info,roster_fetcher=info,\
    roster_parser=info,roster_differ=info,roster_writer=info";

/// A tracer provider for `service`: exporting by OTLP/HTTP when configured, otherwise
/// only giving spans their ids (so trace context still flows through messages).
pub fn tracer_provider(service: &str) -> SdkTracerProvider {
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_owned())
            .build(),
    );
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|e| !e.is_empty()));
    if configured {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("{service}: not exporting traces: {e}"),
        }
    }
    builder.build()
}

/// Installs logging and tracing for the process `service`: `RUST_LOG` (or
/// `default_filter`) picks the logs shown, in `format`. Keep the returned value alive
/// until the process ends. A second call installs nothing.
pub fn init(service: &str, default_filter: &str, format: LogFormat) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(BoxMakeWriter::new(std::io::stderr))
        .with_target(false);
    let fmt = if format == LogFormat::Json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    let provider = tracer_provider(service);
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("roster"))
        .with_filter(EnvFilter::new(TRACE_FILTER));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces)
        .try_init();
    Telemetry { provider }
}

/// The trace context to put on an outgoing message: the W3C context of the current span
/// (empty when no trace is being recorded).
pub fn current_trace_context() -> TraceContext {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return TraceContext::default();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    TraceContext {
        traceparent: carrier.remove("traceparent"),
        tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
    }
}

/// Makes `span` continue the trace `trace` came from (no-op for an empty context).
pub fn continue_trace(span: &tracing::Span, trace: &TraceContext) {
    let Some(parent) = &trace.traceparent else {
        return;
    };
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), parent.clone());
    if let Some(state) = &trace.tracestate {
        carrier.insert("tracestate".to_owned(), state.clone());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_message_continues_the_trace_of_its_sender() {
        let provider = tracer_provider("test");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(
                current_trace_context(),
                TraceContext::default(),
                "no span, no context"
            );
            let sender = tracing::info_span!("fetch");
            let carried = sender.in_scope(current_trace_context);
            let parent = carried.traceparent.clone().expect("a traceparent");
            assert!(parent.starts_with("00-") && parent.len() == 55, "{parent}");

            let receiver = tracing::info_span!("parse");
            continue_trace(&receiver, &carried);
            let sender_trace = sender.context().span().span_context().trace_id();
            let receiver_trace = receiver.context().span().span_context().trace_id();
            assert_eq!(receiver_trace, sender_trace, "one run, one trace");

            let unrelated = tracing::info_span!("other");
            assert_ne!(
                unrelated.context().span().span_context().trace_id(),
                sender_trace
            );
        });
    }
}
