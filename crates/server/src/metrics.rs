//! `/metrics` in the Prometheus text format. The recorder is process-wide (the `metrics` facade has one),
//! so it is installed once and shared by every server in the process (tests start several).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// MAX_CONCURRENT_CALLS of this node's call registry, shown as `switchboard_calls_max` (set before the
/// recorder may exist, so kept here and written at each scrape).
pub(crate) static CALLS_MAX: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Latency buckets in seconds, dense where voice-to-voice lives (0.2–2 s).
const SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
];

/// The process's recorder, installed on first use; `None` when another recorder was installed first.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    start_at_zero();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    metrics::describe_gauge!("switchboard_calls_active", "Calls connected now.");
    metrics::describe_gauge!(
        "switchboard_calls_max",
        "Calls this node may carry at once (MAX_CONCURRENT_CALLS)."
    );
    metrics::describe_counter!(
        "switchboard_calls_lost_total",
        "Calls of a node whose lease lapsed, ended here as node_lost."
    );
    metrics::describe_counter!("switchboard_calls_total", "Finished calls by outcome.");
    metrics::describe_histogram!(
        "switchboard_turn_voice_to_voice_seconds",
        "End of caller speech to the first agent audio sent."
    );
    metrics::describe_histogram!(
        "switchboard_turn_part_seconds",
        "Voice-to-voice latency by part."
    );
    metrics::describe_histogram!(
        "switchboard_stt_seconds",
        "Final recognition after end of turn."
    );
    metrics::describe_histogram!(
        "switchboard_llm_first_sentence_seconds",
        "Caller words to the agent's first sentence."
    );
    metrics::describe_histogram!(
        "switchboard_tts_first_chunk_seconds",
        "A first sentence to its first audio."
    );
    metrics::describe_counter!(
        "switchboard_turn_ends_total",
        "Caller turns by what ended them: the full VAD silence, or a shorter one after a finished sentence."
    );
    metrics::describe_counter!(
        "switchboard_read_ahead_total",
        "Answers drafted at the caller's pause: used (the turn ended on those words), discarded (the caller went on, or the final words differed); none counts turns answered without a draft."
    );
    metrics::describe_counter!("switchboard_errors_total", "Errors by kind.");
    metrics::describe_counter!(
        "switchboard_barge_ins_total",
        "Agent speech cut by the caller."
    );
    metrics::describe_counter!(
        "switchboard_llm_fallbacks_total",
        "Answers served by the fallback model."
    );
}

/// The series the shipped alert rules and dashboard read (`deploy/`), present from start-up: a rule over
/// a series that does not exist yet (no call refused so far) has no value and never fires.
fn start_at_zero() {
    for counter in [
        "switchboard_calls_total",
        "switchboard_calls_refused_total",
        "switchboard_calls_lost_total",
        "switchboard_caller_audio_dropped_total",
        "switchboard_llm_fallbacks_total",
        "switchboard_errors_total",
    ] {
        metrics::counter!(counter).absolute(0);
    }
    for gauge in ["switchboard_calls_active", "switchboard_spooled_calls"] {
        metrics::gauge!(gauge).set(0.0);
    }
    // Registered: present (empty) before the first turn.
    for histogram in [
        "switchboard_turn_voice_to_voice_seconds",
        "switchboard_turn_part_seconds",
        "switchboard_stt_seconds",
        "switchboard_llm_first_sentence_seconds",
        "switchboard_tts_first_chunk_seconds",
    ] {
        let _ = metrics::histogram!(histogram);
    }
}

/// The `/metrics` handler.
pub(crate) async fn render() -> impl IntoResponse {
    metrics::counter!("switchboard_llm_fallbacks_total")
        .absolute(switchboard_llm::total_fallbacks());
    metrics::gauge!("switchboard_calls_max").set(f64::from(
        CALLS_MAX.load(std::sync::atomic::Ordering::Relaxed),
    ));
    let body = handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
