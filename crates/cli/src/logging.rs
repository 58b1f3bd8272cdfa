//! Structured logs — one JSON object per line by default, at LOG_LEVEL, to stderr — and, with
//! ENABLE_TRACING, every span (a call, its turns and their stages) exported over OTLP/HTTP (protobuf)
//! to OTEL_EXPORTER_OTLP_ENDPOINT.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use switchboard_core::config::{LogConfig, LogFormat, ObservabilityConfig};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context as LayerContext, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Spans exported: our own at info and above. Dependencies' spans (HTTP clients, SQL) stay out of
/// traces, and so does the exporter's own HTTP traffic.
const TRACE_FILTER: &str = "warn,switchboard=info";

/// Keeps the trace exporter alive; dropping it sends the spans not yet sent.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: some traces were not exported: {e}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, refines LOG_LEVEL per module.
pub(crate) fn init(
    log: LogConfig,
    observability: &ObservabilityConfig,
) -> anyhow::Result<Telemetry> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(log.level.as_str()))
        .and(NotAStoppedPass);
    let logs = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let provider = match (&observability.otlp_endpoint, observability.enable_tracing) {
        (Some(endpoint), true) => Some(otlp_provider(endpoint)?),
        _ => None,
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchboard"))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry { provider })
}

/// whisper.cpp's target in the logs (whisper-rs forwards its lines).
const WHISPER_LOG: &str = "whisper_rs::whisper_logging_hook";

/// Leaves out the line whisper.cpp logs as an error each time a partial pass is stopped early for a pass
/// a caller waits for (`whisper_full_with_state: failed to encode`, or `decode`): that is the design
/// working, several times a call. A pass that really fails still says so through our own error.
struct NotAStoppedPass;

impl<S> Filter<S> for NotAStoppedPass {
    fn enabled(&self, _: &Metadata<'_>, _: &LayerContext<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &LayerContext<'_, S>) -> bool {
        if event.metadata().target() != WHISPER_LOG {
            return true;
        }
        let mut message = MessageText(String::new());
        event.record(&mut message);
        !message.0.starts_with("whisper_full_with_state: failed to")
    }
}

/// An event's message, as text.
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

/// The exporter for `endpoint`, the collector's OTLP/HTTP base URL (`/v1/traces` is added as the
/// OpenTelemetry specification says for OTEL_EXPORTER_OTLP_ENDPOINT).
fn otlp_provider(endpoint: &url::Url) -> anyhow::Result<SdkTracerProvider> {
    let base = endpoint.as_str().trim_end_matches('/');
    let traces = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&traces)
        .build()
        .with_context(|| format!("setting up the OTLP exporter for {traces}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("switchboard")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    // Spans made through the OpenTelemetry API directly (a turn's stages) go to the same exporter.
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}
