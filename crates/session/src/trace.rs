//! A turn's latency as OpenTelemetry spans under the call's span: one `turn` span from the end of the
//! caller's speech to the first agent audio sent, with a child per stage (end-of-turn wait, STT final,
//! LLM first sentence, TTS first chunk, transport). The stages are measured at the moments they happen
//! (see [`TurnClock`]) and exported once the turn's first audio is out, with those moments as start and
//! end times, so a trace shows the same figures as the metrics and the call report.
//!
//! Nothing is exported unless the binary installed an OpenTelemetry layer (ENABLE_TRACING): without it
//! the call's span has no OpenTelemetry context and this returns at once.

use std::time::{Instant, SystemTime};

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer};
use opentelemetry::{KeyValue, global};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::latency::{TurnClock, TurnLatency};

/// Exports `latency`'s turn under the current call span.
pub(crate) fn export_turn(clock: &TurnClock, latency: &TurnLatency) {
    let call = tracing::Span::current().context();
    if !call.span().span_context().is_valid() {
        return;
    }
    let (
        Some(speech_ended),
        Some(end_detected),
        Some(transcribed),
        Some(first_sentence),
        Some(first_chunk),
        Some(first_audio),
    ) = (
        clock.speech_ended,
        clock.end_detected,
        clock.transcribed,
        clock.first_sentence,
        clock.first_chunk,
        clock.first_audio,
    )
    else {
        return;
    };
    // Instants have no calendar time: place them relative to one reading of both clocks.
    let (now, now_wall) = (Instant::now(), SystemTime::now());
    let wall = |at: Instant| {
        now_wall
            .checked_sub(now.saturating_duration_since(at))
            .unwrap_or(now_wall)
    };
    let tracer = global::tracer("switchboard-session");
    let turn = tracer
        .span_builder("turn")
        .with_start_time(wall(speech_ended))
        .with_attributes([
            KeyValue::new("turn", i64::from(latency.turn)),
            KeyValue::new("voice_to_voice_ms", latency.voice_to_voice * 1e3),
        ])
        .start_with_context(&tracer, &call);
    let turn_end = wall(first_audio);
    let turn_context = call.with_span(turn);
    for (stage, from, to) in [
        ("end_of_turn", speech_ended, end_detected),
        ("stt_final", end_detected, transcribed),
        ("llm_first_sentence", transcribed, first_sentence),
        ("tts_first_chunk", first_sentence, first_chunk),
        ("transport", first_chunk, first_audio),
    ] {
        let mut span = tracer
            .span_builder(stage)
            .with_start_time(wall(from))
            .with_attributes([KeyValue::new(
                "duration_ms",
                to.saturating_duration_since(from).as_secs_f64() * 1e3,
            )])
            .start_with_context(&tracer, &turn_context);
        span.end_with_timestamp(wall(to));
    }
    turn_context.span().end_with_timestamp(turn_end);
}
