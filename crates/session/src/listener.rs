//! The caller's side of a call: their audio through the front end (decoding, AGC, noise suppression,
//! VAD), each utterance streamed to the recogniser from a little before the VAD heard it start, and the
//! end of their turn: after the VAD's silence, held longer while what they said sounds unfinished, or
//! ended early on a finished sentence. While they pause, the words so far may go to the speaker to be
//! answered on a draft. Final transcripts come back on a channel, as the session's events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_audio::FrontEnd;
use switchboard_audio::pcm::to_f32;
use switchboard_audio::vad::VadEvent;
use switchboard_speech::SpeechStream;
use tokio::sync::mpsc;

use crate::echo_tap::{Alignment, EchoTap, ReferenceStep};
use crate::engines::Engines;
use crate::latency::TurnClock;
use crate::machine::Event;
use crate::media::EchoReport;
use crate::speaker::SpeakerJob;
use crate::turn_cues;

/// Audio kept from before the VAD's speech start, so the recogniser hears the first syllable whole.
const PREROLL: Duration = Duration::from_millis(300);
/// Recogniser sample rate.
const HZ: u64 = 16_000;

/// A caller utterance being recognised.
struct Utterance {
    stream: Box<dyn SpeechStream>,
    started: Instant,
    /// The VAD saw the caller go quiet (and the stream was told).
    paused: bool,
    /// The words of this pause given to the speaker to read ahead, if any.
    read_ahead: Option<String>,
}

/// The result of a final recognition pass.
pub(crate) struct Recognised {
    /// The words, or why there are none.
    pub(crate) text: Result<String, String>,
    /// When the caller began the utterance.
    pub(crate) started: Instant,
    /// The turn's latency clock so far.
    pub(crate) clock: TurnClock,
}

/// The caller's audio, their utterance in progress and the transcripts on their way.
pub(crate) struct Listener {
    engines: Arc<Engines>,
    front: FrontEnd,
    utterance: Option<Utterance>,
    preroll: VecDeque<(u64, Vec<f32>)>,
    recognised_tx: mpsc::Sender<Recognised>,
    /// Final recognitions started and not yet reported.
    transcribing: usize,
    /// The agent's audio as sent, and how it lines up with the caller's (when echo cancellation is on).
    echo: Option<(EchoTap, Alignment)>,
    /// The agent asked for something spelled or read digit by digit: the caller's next utterances go
    /// to the spelling recogniser, when there is one.
    spelled: bool,
    /// A tone on the line (an answering machine's beep) not yet told to the machine.
    tone_heard: Option<switchboard_audio::Tone>,
}

impl Listener {
    /// Listens through `front`; final transcripts go to `recognised_tx`.
    /// `echo` is the tap playout fills, for a front end that cancels echo.
    pub(crate) fn new(
        engines: Arc<Engines>,
        front: FrontEnd,
        recognised_tx: mpsc::Sender<Recognised>,
        echo: Option<(EchoTap, Alignment)>,
    ) -> Self {
        Self {
            engines,
            front,
            utterance: None,
            preroll: VecDeque::new(),
            recognised_tx,
            transcribing: 0,
            echo,
            spelled: false,
            tone_heard: None,
        }
    }

    /// Reports steady tones on the line from now on, as [`Event::LineTone`] (answering-machine
    /// detection listens for the beep).
    pub(crate) fn listen_for_tones(&mut self) {
        self.front.listen_for_tones();
    }

    /// Stops reporting tones: the answer was screened and nothing waits for a beep.
    pub(crate) fn stop_listening_for_tones(&mut self) {
        self.front.stop_listening_for_tones();
        self.tone_heard = None;
    }

    /// Whether the caller's next utterances answer a question for something spelled or read digit by
    /// digit (a name, a policy or phone number, an e-mail address).
    pub(crate) fn expect_spelling(&mut self, spelled: bool) {
        self.spelled = spelled;
    }

    /// The agent's audio sent up to the moment a caller payload arrived goes into the echo canceller's
    /// reference, in step with the caller's audio. When the two had to be lined up again, the canceller
    /// searches for the echo's delay afresh.
    fn feed_reference(&mut self, payload_bytes: usize, arrived: tokio::time::Instant) {
        let Some((tap, alignment)) = &mut self.echo else {
            return;
        };
        let realigned = alignment.realigned();
        let steps = alignment.before_payload(tap.take_until(arrived), payload_bytes);
        if alignment.realigned() > realigned {
            self.front.restart_echo_delay_search();
        }
        for step in steps {
            let fed = match step {
                ReferenceStep::Frame(frame) => self.front.push_reference_payload(&frame),
                ReferenceStep::Silence(samples) => self.front.push_reference_silence(samples),
            };
            if let Err(e) = fed {
                tracing::warn!(error = %e, "agent audio could not be used as the echo reference");
                metrics::counter!("switchboard_errors_total", "kind" => "echo_reference")
                    .increment(1);
            }
        }
    }

    /// What the echo canceller did on this call, when it is on.
    pub(crate) fn echo_report(&self) -> Option<EchoReport> {
        let stats = self.front.echo_stats()?;
        Some(EchoReport {
            erle_db: stats.erle_db().map(|db| (db * 10.0).round() / 10.0),
            delay_ms: (stats.delay_samples as u64 * 1_000 / HZ) as u32,
            longest_delay_ms: (stats.longest_delay_samples as u64 * 1_000 / HZ) as u32,
            delay_moves: stats.delay_moves,
            no_echo: stats.no_echo,
            echo_ms: stats.echo_blocks * 10,
            realigned: self.echo.as_ref().map_or(0, |(_, a)| a.realigned()),
        })
    }

    /// Runs caller audio (which reached the call at `arrived`) through the front end; returns a VAD
    /// change for the machine.
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        arrived: tokio::time::Instant,
        jobs: &mut Vec<SpeakerJob>,
    ) -> Option<Event> {
        self.feed_reference(bytes.len(), arrived);
        if let Err(e) = self.front.push_payload(bytes) {
            tracing::warn!(error = %e, len = bytes.len(), "dropping malformed caller audio");
            metrics::counter!("switchboard_errors_total", "kind" => "bad_audio").increment(1);
            return None;
        }
        let mut change = None;
        loop {
            let now = Instant::now();
            let (start, samples, vad) = match self.front.next_frame() {
                Ok(Some(frame)) => {
                    if frame.tone.is_some() {
                        self.tone_heard = frame.tone;
                    }
                    (
                        frame.start,
                        frame
                            .samples
                            .iter()
                            .map(|&s| to_f32(s))
                            .collect::<Vec<f32>>(),
                        frame.event,
                    )
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "caller audio frame failed");
                    metrics::counter!("switchboard_errors_total", "kind" => "front_end")
                        .increment(1);
                    continue;
                }
            };
            let end = start + samples.len() as u64;
            match vad {
                Some(VadEvent::SpeechStarted { at }) => {
                    let stt = match &self.engines.stt_spelling {
                        Some(spelling) if self.spelled => spelling,
                        _ => &self.engines.stt,
                    };
                    let mut stream = stt.stream();
                    let from = at.saturating_sub(PREROLL.as_millis() as u64 * HZ / 1_000);
                    for (frame_start, frame) in &self.preroll {
                        if *frame_start + frame.len() as u64 > from {
                            let _ = stream.push(frame);
                        }
                    }
                    let lead = Duration::from_secs_f64((end - at) as f64 / HZ as f64);
                    self.utterance = Some(Utterance {
                        stream,
                        started: now.checked_sub(lead).unwrap_or(now),
                        paused: false,
                        read_ahead: None,
                    });
                    change = Some(Event::CallerSpeechStarted);
                }
                Some(VadEvent::SpeechEnded { at, .. }) => {
                    if let Some(mut utterance) = self.utterance.take() {
                        let _ = utterance.stream.push(&samples);
                        metrics::counter!("switchboard_turn_ends_total", "by" => "silence")
                            .increment(1);
                        self.end_utterance(utterance, at, end, now);
                    }
                    change = Some(Event::CallerSpeechEnded);
                }
                None => {}
            }
            let pausing = self.front.pausing();
            let mut went_on = false;
            if let Some(utterance) = &mut self.utterance {
                // The caller just went quiet: transcribe what was said while the end of the turn is
                // being confirmed.
                if pausing && !utterance.paused && self.engines.early_final {
                    utterance.stream.speech_paused();
                } else if !pausing && utterance.paused {
                    utterance.stream.speech_resumed();
                    went_on = utterance.read_ahead.take().is_some();
                }
                utterance.paused = pausing;
            }
            if went_on {
                jobs.push(SpeakerJob::DropReadAhead);
            }
            self.read_ahead(jobs);
            self.hold_unfinished();
            if let Some(utterance) = &mut self.utterance
                && let Err(e) = utterance.stream.push(&samples)
            {
                // An utterance past the recogniser's limit: a stuck detector, not a caller.
                tracing::warn!(error = %e, "utterance too long; cutting it here");
                if let Some(utterance) = self.utterance.take() {
                    self.finish_utterance(utterance, TurnClock::default());
                }
            }
            if self.cue_ends_turn()
                && let Some(VadEvent::SpeechEnded { at, .. }) = self.front.end_speech_now()
                && let Some(utterance) = self.utterance.take()
            {
                tracing::debug!(
                    "the caller finished a sentence: end of turn before the full silence"
                );
                metrics::counter!("switchboard_turn_ends_total", "by" => "cue").increment(1);
                self.end_utterance(utterance, at, end, now);
                change = Some(Event::CallerSpeechEnded);
            }
            self.preroll.push_back((start, samples));
            // The VAD reports a start some frames after it: keep twice the pre-roll.
            while self.preroll.len() > (2 * PREROLL.as_millis() / 20) as usize {
                self.preroll.pop_front();
            }
        }
        // A tone goes to the machine with the next payload that brings no voice change (a beep ends
        // long before the VAD's end of it).
        if change.is_none()
            && let Some(tone) = self.tone_heard.take()
        {
            tracing::info!(
                hz = tone.hz,
                ms = tone.duration.as_millis() as u64,
                "a tone ended on the line"
            );
            change = Some(Event::LineTone);
        }
        change
    }

    /// During a pause long enough (see `Engines::read_ahead_after`), once what the caller said before it
    /// is transcribed, has the speaker answer those words on a draft while the end of the turn is
    /// confirmed (spoken only if the turn ends on them).
    fn read_ahead(&mut self, jobs: &mut Vec<SpeakerJob>) {
        let Some(after) = self.engines.read_ahead_after else {
            return;
        };
        if self.front.quiet_for().is_none_or(|quiet| quiet < after) {
            return;
        }
        let Some(utterance) = &mut self.utterance else {
            return;
        };
        if !utterance.paused || utterance.read_ahead.is_some() {
            return;
        }
        let Some(text) = utterance.stream.transcript_to_pause() else {
            return;
        };
        let words = text.trim();
        if !words.chars().any(char::is_alphanumeric) {
            return;
        }
        utterance.read_ahead = Some(words.to_owned());
        jobs.push(SpeakerJob::ReadAhead(words.to_owned()));
    }

    /// During a pause, holds the end of the turn while what the caller said before it is still being
    /// transcribed, or sounds unfinished ("my number is", a trailing "and", a digit group): the pause
    /// then lasts VAD_HOLD_SILENCE_MS rather than VAD_MIN_SILENCE_MS. Waiting for that transcript costs
    /// the answer nothing: the turn's final recognition is the same pass.
    fn hold_unfinished(&mut self) {
        let Some(hold) = self.engines.hold_silence else {
            return;
        };
        let Some(utterance) = &mut self.utterance else {
            return;
        };
        if !utterance.paused {
            return;
        }
        let holding = match utterance.stream.transcript_to_pause() {
            None => true,
            Some(text) => turn_cues::sounds_unfinished(&text),
        };
        if holding {
            self.front.hold_pause(hold);
        } else {
            self.front.hold_pause(Duration::ZERO);
        }
    }

    /// Whether the turn can end now on a transcript cue: the caller has been quiet for VAD_CUE_SILENCE_MS
    /// and what they said before going quiet, already transcribed, reads as a finished sentence.
    fn cue_ends_turn(&mut self) -> bool {
        let Some(cue_silence) = self.engines.cue_silence else {
            return false;
        };
        let Some(utterance) = &mut self.utterance else {
            return false;
        };
        if !utterance.paused
            || self
                .front
                .quiet_for()
                .is_none_or(|quiet| quiet < cue_silence)
        {
            return false;
        }
        utterance
            .stream
            .transcript_to_pause()
            .is_some_and(|text| turn_cues::sounds_finished(&text))
    }

    /// The caller's speech ended at sample `at`, as heard up to sample `heard_to` at `now`: the final
    /// recognition starts, timed from the true end of speech.
    fn end_utterance(&mut self, utterance: Utterance, at: u64, heard_to: u64, now: Instant) {
        let trailing = Duration::from_secs_f64(heard_to.saturating_sub(at) as f64 / HZ as f64);
        let clock = TurnClock {
            speech_ended: Some(now.checked_sub(trailing).unwrap_or(now)),
            end_detected: Some(now),
            ..TurnClock::default()
        };
        self.finish_utterance(utterance, clock);
    }

    /// Final recognition of an utterance on the blocking pool; the result comes back as an event.
    fn finish_utterance(&mut self, mut utterance: Utterance, clock: TurnClock) {
        self.transcribing += 1;
        let tx = self.recognised_tx.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _call = span.enter();
            let _stage = tracing::info_span!("stt_final").entered();
            let text = utterance
                .stream
                .finish()
                .map(|h| h.text)
                .map_err(|e| e.to_string());
            let mut clock = clock;
            clock.transcribed = Some(Instant::now());
            // The session takes transcripts as they come; this pass waits for room if it must.
            let _ = tx.blocking_send(Recognised {
                text,
                started: utterance.started,
                clock,
            });
        });
    }

    /// A new partial transcript of the utterance in progress, if any.
    pub(crate) fn poll_partial(&mut self) -> Option<String> {
        let partial = self.utterance.as_mut()?.stream.poll_partial()?;
        let text = partial.text.trim().to_owned();
        (!text.is_empty()).then_some(text)
    }

    /// A final transcript came back.
    pub(crate) fn took_transcript(&mut self) {
        self.transcribing = self.transcribing.saturating_sub(1);
    }

    /// Final transcripts started and not back yet.
    pub(crate) fn transcribing(&self) -> usize {
        self.transcribing
    }

    /// The call is over: the caller's words in progress are transcribed like a finished turn.
    pub(crate) fn finish_in_progress(&mut self) {
        if let Some(utterance) = self.utterance.take() {
            self.finish_utterance(utterance, TurnClock::default());
        }
    }
}
