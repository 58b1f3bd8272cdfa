//! What the session knows of each thing the agent says, one record per speech from the moment it is
//! asked for until playout reports its end: how to stop its generation, the words of its pieces as the
//! speaker made them (what was heard is a prefix of them), and, for an answer to a caller turn, the
//! turn's latency clock, reported once every moment of it is known.

use std::collections::HashMap;
use std::time::Instant;

use switchboard_store::TurnSource;
use tokio_util::sync::CancellationToken;

use crate::latency::{ModelUse, TurnClock, TurnLatency};
use crate::machine::SpeechId;

/// One speech.
struct Speech {
    /// When it was asked for.
    started: Instant,
    /// Stops its generation (an answer being written).
    cancel: Option<CancellationToken>,
    /// Its pieces' words, in order.
    pieces: Vec<String>,
    /// For an answer to a caller turn: the turn's number and its latency clock.
    clock: Option<(u32, TurnClock)>,
    /// For an answer from the company's documents: the passages it was made from.
    sources: Vec<TurnSource>,
}

/// What the caller heard of a speech.
#[derive(Debug)]
pub(crate) struct Heard {
    /// Its words, as far as they were played.
    pub(crate) text: String,
    /// When it was asked for.
    pub(crate) started: Instant,
    /// The passages of the company's documents it was made from.
    pub(crate) sources: Vec<TurnSource>,
}

/// The call's speeches in flight and the latencies of its answered turns.
#[derive(Default)]
pub(crate) struct Speeches {
    records: HashMap<SpeechId, Speech>,
    /// The clock of the caller turn whose answer is asked for next.
    pending_clock: Option<TurnClock>,
    answered: u32,
    latencies: Vec<TurnLatency>,
}

impl Speeches {
    /// A fixed phrase with these words is about to play.
    pub(crate) fn phrase(&mut self, speech: SpeechId, text: String) {
        self.records.insert(
            speech,
            Speech {
                started: Instant::now(),
                cancel: None,
                pieces: vec![text],
                clock: None,
                sources: Vec::new(),
            },
        );
    }

    /// A caller turn was transcribed: its answer, asked for next, carries this clock.
    pub(crate) fn turn_transcribed(&mut self, clock: TurnClock) {
        self.pending_clock = Some(clock);
    }

    /// An answer is asked for; the token stops its generation.
    pub(crate) fn answer(&mut self, speech: SpeechId) -> CancellationToken {
        let cancel = CancellationToken::new();
        let clock = self.pending_clock.take().map(|clock| {
            self.answered += 1;
            (self.answered, clock)
        });
        self.records.insert(
            speech,
            Speech {
                started: Instant::now(),
                cancel: Some(cancel.clone()),
                pieces: Vec::new(),
                clock,
                sources: Vec::new(),
            },
        );
        cancel
    }

    /// Stops a speech's generation, if it is still being generated.
    pub(crate) fn cancel(&mut self, speech: SpeechId) {
        if let Some(token) = self.records.get_mut(&speech).and_then(|s| s.cancel.take()) {
            token.cancel();
        }
    }

    /// Stops every generation (the call is over).
    pub(crate) fn cancel_all(&mut self) {
        for token in self.records.values_mut().filter_map(|s| s.cancel.take()) {
            token.cancel();
        }
    }

    /// The speaker has nothing more to make for a speech.
    pub(crate) fn generated(&mut self, speech: SpeechId) {
        if let Some(record) = self.records.get_mut(&speech) {
            record.cancel = None;
        }
    }

    /// The answer is settled: generated to its end with what it asked of the model (`Some`), or failed
    /// or cut off (`None`); the turn's latency if now complete. A second word on it changes nothing.
    pub(crate) fn settled(
        &mut self,
        speech: SpeechId,
        model: Option<ModelUse>,
    ) -> Option<TurnLatency> {
        let (_, clock) = self.clock(speech)?;
        if clock.model.is_none() {
            clock.model = Some(model);
        }
        self.latency(speech)
    }

    /// The answer was made from these passages of the company's documents.
    pub(crate) fn cite(&mut self, speech: SpeechId, sources: Vec<TurnSource>) {
        if let Some(record) = self.records.get_mut(&speech) {
            record.sources = sources;
        }
    }

    /// The speaker made piece `index` of a speech.
    pub(crate) fn piece(&mut self, speech: SpeechId, index: u32, text: String) {
        if let Some(record) = self.records.get_mut(&speech)
            && record.pieces.len() == index as usize
        {
            record.pieces.push(text);
        }
    }

    /// The answer's first sentence was ready at `at`; the turn's latency if now complete.
    pub(crate) fn first_sentence(
        &mut self,
        speech: SpeechId,
        at: Instant,
        read_ahead: bool,
    ) -> Option<TurnLatency> {
        let record = self.records.get_mut(&speech);
        let started = record.as_ref().map_or(at, |r| r.started);
        metrics::histogram!("switchboard_llm_first_sentence_seconds")
            .record(at.saturating_duration_since(started).as_secs_f64());
        let (_, clock) = record.and_then(|r| r.clock.as_mut())?;
        clock.first_sentence = Some(at);
        clock.read_ahead = read_ahead;
        self.latency(speech)
    }

    /// The answer's first audio was synthesised at `at`; the turn's latency if now complete.
    pub(crate) fn first_chunk(&mut self, speech: SpeechId, at: Instant) -> Option<TurnLatency> {
        let (_, clock) = self.clock(speech)?;
        clock.first_chunk = Some(at);
        if let Some(sentence) = clock.first_sentence {
            metrics::histogram!("switchboard_tts_first_chunk_seconds")
                .record(at.saturating_duration_since(sentence).as_secs_f64());
        }
        self.latency(speech)
    }

    /// The speech's first audio went out at `at`; the turn's latency if now complete.
    pub(crate) fn audible(&mut self, speech: SpeechId, at: Instant) -> Option<TurnLatency> {
        let (_, clock) = self.clock(speech)?;
        clock.first_audio = Some(at);
        self.latency(speech)
    }

    /// Playout's last word on a speech: what the caller heard of it (its first `pieces` pieces), when it
    /// was asked for and the passages it was made from; `None` when nothing of it was heard. An answer
    /// not yet settled is settled as cut off first (see `settled`).
    pub(crate) fn finished(&mut self, speech: SpeechId, pieces: u32) -> Option<Heard> {
        self.settled(speech, None);
        let record = self.records.remove(&speech)?;
        let heard: Vec<String> = record.pieces.into_iter().take(pieces as usize).collect();
        (!heard.is_empty()).then(|| Heard {
            text: heard.join(" "),
            started: record.started,
            sources: record.sources,
        })
    }

    /// The latencies reported so far, one per answered turn.
    pub(crate) fn take_latencies(&mut self) -> Vec<TurnLatency> {
        std::mem::take(&mut self.latencies)
    }

    fn clock(&mut self, speech: SpeechId) -> Option<&mut (u32, TurnClock)> {
        self.records.get_mut(&speech).and_then(|r| r.clock.as_mut())
    }

    /// A turn's latency once every moment of it is known, once. The speaker's moments (first sentence,
    /// first chunk, the settled answer) and playout's (first audio) come on separate channels, and with a
    /// cached phrase the first audio can come before the speaker's moments: whichever comes last
    /// completes it.
    fn latency(&mut self, speech: SpeechId) -> Option<TurnLatency> {
        let (turn, clock) = self.clock(speech)?;
        if clock.reported {
            return None;
        }
        let latency = clock.latency(*turn)?;
        clock.reported = true;
        latency.record();
        crate::trace::export_turn(clock, &latency);
        self.latencies.push(latency);
        Some(latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_from_the_documents_keeps_its_passages_as_far_as_it_was_heard() {
        let mut speeches = Speeches::default();
        let answer = SpeechId(2);
        speeches.answer(answer);
        speeches.piece(answer, 0, "Water damage is covered.".into());
        speeches.piece(answer, 1, "Up to ten thousand dollars.".into());
        let source = TurnSource {
            document: "home-policy.md".into(),
            passage: 3,
        };
        speeches.cite(answer, vec![source.clone()]);
        // The caller cut in after the first sentence.
        let heard = speeches.finished(answer, 1).unwrap();
        assert_eq!(heard.text, "Water damage is covered.");
        assert_eq!(heard.sources, vec![source]);

        let phrase = SpeechId(3);
        speeches.phrase(phrase, "One moment please.".into());
        assert!(speeches.finished(phrase, 1).unwrap().sources.is_empty());
        // Nothing heard, nothing recorded.
        speeches.answer(SpeechId(4));
        speeches.cite(
            SpeechId(4),
            vec![TurnSource {
                document: "x.md".into(),
                passage: 0,
            }],
        );
        assert!(speeches.finished(SpeechId(4), 0).is_none());
    }
}
