//! Voice-to-voice latency of a turn — from the end of the caller's speech to the first byte of the
//! agent's answer sent — and its parts, measured where each happens and exported as metrics.

use std::time::Instant;

use serde::Serialize;

/// Moments of one turn, filled in as the turn progresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnClock {
    /// The caller's last speech sample arrived (estimated from the VAD's sample position).
    pub speech_ended: Option<Instant>,
    /// The VAD declared the end of speech (after its minimum silence).
    pub end_detected: Option<Instant>,
    /// The final transcript was ready.
    pub transcribed: Option<Instant>,
    /// The agent's first sentence was ready for the voice.
    pub first_sentence: Option<Instant>,
    /// The voice's first audio chunk was ready.
    pub first_chunk: Option<Instant>,
    /// The first audio frame was handed to the transport.
    pub first_audio: Option<Instant>,
    /// The turn's latency has been reported (it is reported once, when every moment is known).
    pub reported: bool,
    /// The answer was drafted at the caller's pause, before the end of the turn was confirmed.
    pub read_ahead: bool,
    /// What the answer asked of the language model, once the answer is settled: generated to its end
    /// (`Some`), or cut off, failed or never begun (`None` inside `Some`).
    pub model: Option<Option<ModelUse>>,
}

/// What one answer asked of the language model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelUse {
    /// Seconds the reading of the turn waited on the model (an intent label, an extraction); zero when
    /// it was not asked.
    pub wait: f64,
    /// The answer's words were written by the model.
    pub generated: bool,
}

/// A finished turn's latency, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TurnLatency {
    /// Caller turn number, from 1.
    pub turn: u32,
    /// End of caller speech to first agent audio sent.
    pub voice_to_voice: f64,
    /// End of speech to end of turn declared (the VAD's silence wait).
    pub end_of_turn: f64,
    /// End of turn to final transcript.
    pub stt: f64,
    /// Final transcript to the agent's first sentence (understanding plus first tokens).
    pub llm_first_sentence: f64,
    /// First sentence to its first audio chunk.
    pub tts_first_chunk: f64,
    /// First chunk to first frame sent (queueing and the 20 ms clock).
    pub transport: f64,
    /// The answer was drafted at the caller's pause, while the end of the turn was being confirmed.
    pub read_ahead: bool,
    /// Seconds the reading of the turn waited on the language model (zero when it was not asked);
    /// `None` when the answer was cut off before it was settled.
    pub model_wait: Option<f64>,
    /// The answer's words were written by the language model (not said from fixed words).
    pub generated: bool,
}

impl TurnClock {
    /// The latency, when every moment was seen in order and the answer is settled.
    pub fn latency(&self, turn: u32) -> Option<TurnLatency> {
        let model = self.model?;
        let span = |a: Option<Instant>, b: Option<Instant>| -> Option<f64> {
            Some(b?.saturating_duration_since(a?).as_secs_f64())
        };
        Some(TurnLatency {
            turn,
            voice_to_voice: span(self.speech_ended, self.first_audio)?,
            end_of_turn: span(self.speech_ended, self.end_detected)?,
            stt: span(self.end_detected, self.transcribed)?,
            llm_first_sentence: span(self.transcribed, self.first_sentence)?,
            tts_first_chunk: span(self.first_sentence, self.first_chunk)?,
            transport: span(self.first_chunk, self.first_audio)?,
            read_ahead: self.read_ahead,
            model_wait: model.map(|m| m.wait),
            generated: model.is_some_and(|m| m.generated),
        })
    }
}

impl TurnLatency {
    /// The answer waited on the language model, or was written by it.
    pub fn needed_model(&self) -> bool {
        self.generated || self.model_wait.is_some_and(|w| w > 0.0)
    }

    /// Records the turn in the process's metrics.
    pub fn record(&self) {
        metrics::histogram!("switchboard_turn_voice_to_voice_seconds").record(self.voice_to_voice);
        for (part, seconds) in [
            ("end_of_turn", self.end_of_turn),
            ("stt", self.stt),
            ("llm_first_sentence", self.llm_first_sentence),
            ("tts_first_chunk", self.tts_first_chunk),
            ("transport", self.transport),
        ] {
            metrics::histogram!("switchboard_turn_part_seconds", "part" => part).record(seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parts_add_up_to_the_whole() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let clock = TurnClock {
            speech_ended: at(0),
            end_detected: at(320),
            transcribed: at(700),
            first_sentence: at(1_000),
            first_chunk: at(1_150),
            first_audio: at(1_170),
            reported: false,
            read_ahead: false,
            model: None,
        };
        assert!(clock.latency(1).is_none(), "the answer is not settled yet");
        let clock = TurnClock {
            model: Some(Some(ModelUse {
                wait: 0.4,
                generated: false,
            })),
            ..clock
        };
        let l = clock.latency(1).unwrap();
        assert!(l.needed_model());
        assert_eq!(l.model_wait, Some(0.4));
        let sum = l.end_of_turn + l.stt + l.llm_first_sentence + l.tts_first_chunk + l.transport;
        assert!((sum - l.voice_to_voice).abs() < 1e-9);
        assert!((l.voice_to_voice - 1.17).abs() < 1e-9);
        assert!(TurnClock::default().latency(1).is_none());
    }
}
