//! `/metrics` in the Prometheus text format. The recorder is process-wide (the `metrics` facade has one),
//! so it is installed once and shared by every server in the process (tests start several).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

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

/// The `/metrics` handler.
pub(crate) async fn render() -> impl IntoResponse {
    metrics::counter!("switchboard_llm_fallbacks_total")
        .absolute(switchboard_llm::total_fallbacks());
    let body = handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
