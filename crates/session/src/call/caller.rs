//! The caller's side of the session: their audio through the listener (and the recording), their words
//! shown as they are recognised, and each final transcript recorded and handed to the machine.

use std::time::Instant;

use switchboard_core::Speaker;

use super::Session;
use crate::listener::Recognised;
use crate::machine::Event;
use crate::media::{CallerFrame, Outbound, TranscriptLine};
use crate::recording;

impl Session {
    /// Runs caller audio through the listener; returns a change for the machine.
    pub(super) fn on_audio(&mut self, frame: &CallerFrame) -> Option<Event> {
        if let Some(recording) = &self.recording {
            recording.caller(&frame.bytes);
        }
        let mut jobs = Vec::new();
        let event = self.listener.push(&frame.bytes, frame.arrived, &mut jobs);
        for job in jobs {
            let _ = self.to_speaker(job);
        }
        event
    }

    /// Shows the caller's words as they are recognised.
    pub(super) async fn poll_partial(&mut self) {
        if let Some(text) = self.listener.poll_partial() {
            let _ = self
                .out_tx
                .send(Outbound::Transcript(TranscriptLine {
                    speaker: Speaker::Caller,
                    text,
                    is_final: false,
                    seq: None,
                }))
                .await;
        }
    }

    /// Records the caller's words (announced once stored), then tells the machine.
    pub(super) fn on_recognised(&mut self, recognised: Recognised) -> Option<Event> {
        self.listener.took_transcript();
        if let (Some(detected), Some(done)) =
            (recognised.clock.end_detected, recognised.clock.transcribed)
        {
            metrics::histogram!("switchboard_stt_seconds")
                .record(done.saturating_duration_since(detected).as_secs_f64());
        }
        let text = match &recognised.text {
            Ok(text) => text.trim().to_owned(),
            Err(reason) => {
                tracing::error!(%reason, "final recognition failed");
                metrics::counter!("switchboard_errors_total", "kind" => "stt").increment(1);
                // No words: the machine stops waiting for them.
                return Some(Event::CallerTranscribed {
                    text: String::new(),
                });
            }
        };
        if self.record_caller(&text, &recognised) {
            self.speeches.turn_transcribed(recognised.clock);
        }
        if self.engines.recording == switchboard_core::config::Recording::Announce
            && let Some(recording) = &mut self.recording
            && !recording.declined()
            && recording::declines(&text)
        {
            recording.decline();
            self.recording_stopped_unsaid = true;
        }
        Some(Event::CallerTranscribed { text })
    }

    /// Records an entry the caller typed on the keypad, as a line of theirs.
    pub(super) fn record_keys(&mut self, keys: &str) {
        let now = Instant::now();
        self.recorder.record(
            Speaker::Caller,
            &format!("(typed on the keypad) {keys}"),
            now,
            now,
            Vec::new(),
        );
    }

    /// Records the caller's words of a final transcript, when there are any; false for none.
    pub(super) fn record_caller(&mut self, text: &str, recognised: &Recognised) -> bool {
        if !text.chars().any(char::is_alphanumeric) {
            return false;
        }
        let ended = recognised.clock.speech_ended.unwrap_or_else(Instant::now);
        self.recorder
            .record(Speaker::Caller, text, recognised.started, ended, Vec::new());
        true
    }
}
