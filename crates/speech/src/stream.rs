//! Streaming speech recognition on a batch recogniser: the caller's audio accumulates as it arrives, a
//! partial transcript of everything so far is computed in the background whenever enough new audio has
//! come in (and the previous pass is done), and the final transcript is computed at end of utterance.
//!
//! Whisper transcribes a buffer, not a stream, so this is how streaming is done with it: re-decoding the
//! growing utterance. A pass costs about the same whatever the utterance's length (the encoder always sees
//! 30 s), so partials are at most one pass in flight; a pass that already covers the whole utterance when
//! it ends is the final, with no second pass. Passes of all utterances go through one [`ComputeGate`]:
//! finals first, partials only on idle cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::whisper::{Segment, SttError, TranscribeOptions, Transcript, WhisperModel};
use switchboard_core::compute::{ComputeGate, Priority, Ticket};

/// Samples per second the recognisers take.
pub const STT_SAMPLE_RATE: u32 = 16_000;

/// A batch recogniser: all of an utterance's audio in, its transcript out.
pub trait Recognizer: Send + Sync + 'static {
    /// Transcribes 16 kHz mono audio.
    fn transcribe(&self, audio: &[f32]) -> Result<Transcript, SttError>;

    /// Transcribes like [`Recognizer::transcribe`], giving up with [`SttError::Stopped`] once `stop` is
    /// set (a partial whose cores a waited-for pass needs). A recogniser that cannot stop early runs
    /// to the end.
    fn transcribe_unless_stopped(
        &self,
        audio: &[f32],
        stop: Arc<AtomicBool>,
    ) -> Result<Transcript, SttError> {
        let _ = stop;
        self.transcribe(audio)
    }
}

/// Whisper with fixed options.
#[derive(Debug)]
pub struct WhisperRecognizer {
    model: Arc<WhisperModel>,
    options: TranscribeOptions,
}

impl WhisperRecognizer {
    /// `model` run with `options` for every pass.
    pub fn new(model: Arc<WhisperModel>, options: TranscribeOptions) -> Self {
        Self { model, options }
    }
}

impl Recognizer for WhisperRecognizer {
    fn transcribe(&self, audio: &[f32]) -> Result<Transcript, SttError> {
        self.model.transcribe(audio, &self.options)
    }

    fn transcribe_unless_stopped(
        &self,
        audio: &[f32],
        stop: Arc<AtomicBool>,
    ) -> Result<Transcript, SttError> {
        self.model
            .transcribe_unless_stopped(audio, &self.options, Some(stop))
    }
}

/// What the recogniser heard so far (partial) or in all (final).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hypothesis {
    /// The words.
    pub text: String,
    /// Mean token probability over the segments, weighted by their length, 0–1.
    pub confidence: f32,
    /// Whether this is the utterance's final transcript.
    pub is_final: bool,
    /// How much of the utterance's audio it covers.
    #[serde(serialize_with = "as_seconds")]
    pub audio: Duration,
    /// How long the pass that produced it took.
    #[serde(serialize_with = "as_seconds")]
    pub compute: Duration,
    /// Segments with timings relative to the start of the utterance.
    pub segments: Vec<Segment>,
    /// Language spoken, when known.
    pub language: Option<String>,
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Hypothesis {
    fn from_transcript(transcript: Transcript, samples: usize, is_final: bool) -> Self {
        let weight = |s: &Segment| (s.end - s.start).max(0.01) as f32;
        let total: f32 = transcript.segments.iter().map(weight).sum();
        let confidence = if total > 0.0 {
            transcript
                .segments
                .iter()
                .map(|s| s.confidence * weight(s))
                .sum::<f32>()
                / total
        } else {
            0.0
        };
        Self {
            text: transcript.text,
            confidence,
            is_final,
            audio: samples_to_duration(samples),
            compute: transcript.elapsed,
            segments: transcript.segments,
            language: transcript.language,
        }
    }
}

fn samples_to_duration(samples: usize) -> Duration {
    Duration::from_secs_f64(samples as f64 / f64::from(STT_SAMPLE_RATE))
}

/// Streaming speech to text: one stream per caller utterance.
pub trait SpeechToText: Send + Sync {
    /// A new, empty utterance.
    fn stream(&self) -> Box<dyn SpeechStream>;
}

/// One utterance being recognised.
pub trait SpeechStream: Send {
    /// Adds caller audio (16 kHz mono); returns at once, recognition runs elsewhere.
    fn push(&mut self, samples: &[f32]) -> Result<(), SttError>;
    /// The newest partial transcript finished since the last call, if any.
    fn poll_partial(&mut self) -> Option<Hypothesis>;
    /// End of utterance: the final transcript of all audio pushed. Blocks for up to one recognition pass
    /// (run it off an async runtime's worker threads).
    fn finish(&mut self) -> Result<Hypothesis, SttError>;
    /// Audio pushed so far.
    fn audio(&self) -> Duration;
    /// The caller just went quiet: the utterance may be over. Starts a pass over everything heard so far
    /// now (or as soon as the pass in flight is done), so that when the end of the turn is confirmed a
    /// moment later the final transcript is already computed or nearly so. Harmless if the caller goes
    /// on: the pass becomes one more partial.
    fn speech_paused(&mut self) {}
    /// The caller spoke again after [`speech_paused`](Self::speech_paused): a pass it queued that has not
    /// started is dropped (the next one covers more).
    fn speech_resumed(&mut self) {}
    /// During a pause: the transcript of everything said before it, once a pass over all of it is done
    /// (the one [`speech_paused`](Self::speech_paused) started, or a partial that already covered it).
    /// What the turn detector reads its cues from; never waits.
    fn transcript_to_pause(&mut self) -> Option<String> {
        None
    }
}

/// When partials are computed.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// New audio that makes another partial due.
    pub partial_interval: Duration,
    /// No partial before this much audio (a syllable transcribes to noise).
    pub min_partial_audio: Duration,
    /// A pass may serve as the final if it misses at most this much audio at the end (trailing
    /// silence the end-of-turn detector waited through). Zero: only a pass over all of it.
    pub final_reuse_tail: Duration,
    /// Passes that may run at once across all utterances (see [`ComputeGate::slots_for`]).
    pub concurrent_passes: usize,
    /// Stop running partials when a pass someone waits for is queued.
    pub preempt_partials: bool,
}

impl StreamOptions {
    /// Options for calls whose end of turn is declared after `end_of_turn_silence` of quiet: a pass
    /// started when the caller went quiet covers every word, so it may serve as the final.
    pub fn for_calls(partial_interval: Duration, end_of_turn_silence: Duration) -> Self {
        Self {
            partial_interval,
            // The VAD decides on 32 ms windows; allow two more than the silence itself.
            final_reuse_tail: end_of_turn_silence + Duration::from_millis(64),
            ..Self::default()
        }
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            partial_interval: Duration::from_millis(500),
            min_partial_audio: Duration::from_millis(300),
            final_reuse_tail: Duration::ZERO,
            concurrent_passes: 1,
            preempt_partials: true,
        }
    }
}

/// Streaming recognition on any [`Recognizer`].
#[derive(Debug)]
pub struct StreamingRecognizer<R> {
    recognizer: Arc<R>,
    options: StreamOptions,
    gate: Arc<ComputeGate>,
}

impl<R: Recognizer> StreamingRecognizer<R> {
    /// Streams on `recognizer`, its passes queued on a gate of its own.
    pub fn new(recognizer: Arc<R>, options: StreamOptions) -> Self {
        let gate = ComputeGate::new(options.concurrent_passes, options.preempt_partials);
        Self::with_gate(recognizer, options, gate)
    }

    /// Streams on `recognizer`, its passes queued on `gate` beside the node's other model work (its
    /// slots and preemption then come from the gate, not from `options`).
    pub fn with_gate(recognizer: Arc<R>, options: StreamOptions, gate: Arc<ComputeGate>) -> Self {
        Self {
            recognizer,
            options,
            gate,
        }
    }
}

impl<R: Recognizer> SpeechToText for StreamingRecognizer<R> {
    fn stream(&self) -> Box<dyn SpeechStream> {
        Box::new(Utterance {
            recognizer: self.recognizer.clone(),
            options: self.options,
            gate: self.gate.clone(),
            audio: Arc::new(Vec::new()),
            partial_from: 0,
            paused_at: None,
            pass: None,
            ready: None,
            latest: None,
        })
    }
}

/// Maximum audio in one utterance; pushing more is an error (a stuck end-of-turn detector, not a caller).
const MAX_UTTERANCE: Duration = crate::whisper::MAX_AUDIO;

struct Pass {
    samples: usize,
    result: mpsc::Receiver<Result<Transcript, SttError>>,
    /// Its place in the gate's queue, for a pass that had to queue.
    ticket: Option<Ticket>,
    /// Stops a pass started at a pause once the caller goes on (its words would only be a stale
    /// partial); `None` for a partial, which the gate stops when preempting.
    stop: Option<Arc<AtomicBool>>,
}

impl Drop for Pass {
    /// A pass nobody will read leaves the queue if it has not started; one that runs is left to end.
    fn drop(&mut self) {
        if let Some(ticket) = &self.ticket {
            ticket.withdraw();
        }
    }
}

struct Utterance<R> {
    recognizer: Arc<R>,
    options: StreamOptions,
    gate: Arc<ComputeGate>,
    /// Shared with a running pass, copied on write only while one runs.
    audio: Arc<Vec<f32>>,
    /// Audio length when the last partial pass started.
    partial_from: usize,
    /// Audio length when the caller went quiet, while they stay quiet.
    paused_at: Option<usize>,
    pass: Option<Pass>,
    /// A partial not yet handed out by `poll_partial`.
    ready: Option<Hypothesis>,
    /// The newest partial, handed out or not: the final when nothing was said after it.
    latest: Option<Hypothesis>,
}

/// Whether a caller waits for a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Urgency {
    /// A partial: run it only on a slot nothing else wants, else skip it.
    Partial,
    /// Started at a pause, likely the final: queue for the next slot.
    Paused,
}

impl<R: Recognizer> Utterance<R> {
    fn samples(d: Duration) -> usize {
        (d.as_secs_f64() * f64::from(STT_SAMPLE_RATE)) as usize
    }

    /// Starts a pass over all audio so far, replacing the one in flight (whose result is then unused;
    /// it still ends first, as it holds its slot). A partial that finds no free slot is not started.
    fn start_pass(&mut self, urgency: Urgency) {
        let (permit, ticket) = match urgency {
            Urgency::Partial => match self.gate.try_partial() {
                Some(permit) => (Some(permit), None),
                None => return,
            },
            Urgency::Paused => (None, Some(self.gate.enqueue(Priority::Paused))),
        };
        let (sender, result) = mpsc::sync_channel(1);
        let recognizer = self.recognizer.clone();
        let audio = self.audio.clone();
        let samples = audio.len();
        let queued = ticket.clone();
        let stop = (urgency == Urgency::Paused).then(|| Arc::new(AtomicBool::new(false)));
        let own_stop = stop.clone();
        let spawned = thread::Builder::new()
            .name("stt-pass".into())
            .spawn(move || {
                let Some(permit) = permit.or_else(|| queued.and_then(|t| t.wait())) else {
                    return; // withdrawn before it started
                };
                let transcript = match permit.stop_flag().or(own_stop) {
                    Some(stop) => recognizer.transcribe_unless_stopped(&audio, stop),
                    None => recognizer.transcribe(&audio),
                };
                let _ = sender.send(transcript);
            });
        match spawned {
            Ok(_) => {
                self.partial_from = samples;
                self.pass = Some(Pass {
                    samples,
                    result,
                    ticket,
                    stop,
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot start a partial transcription"),
        }
    }

    /// Collects a finished pass without waiting.
    fn collect(&mut self) {
        let Some(pass) = &self.pass else { return };
        match pass.result.try_recv() {
            Ok(Ok(transcript)) => {
                let hypothesis = Hypothesis::from_transcript(transcript, pass.samples, false);
                self.latest = Some(hypothesis.clone());
                self.ready = Some(hypothesis);
                self.pass = None;
            }
            // Stopped for a pass someone waits for: that pass covers more anyway.
            Ok(Err(SttError::Stopped)) => self.pass = None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "partial transcription failed");
                self.pass = None;
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => self.pass = None,
        }
    }
}

impl<R: Recognizer> SpeechStream for Utterance<R> {
    fn push(&mut self, samples: &[f32]) -> Result<(), SttError> {
        let total = self.audio.len() + samples.len();
        if total > Self::samples(MAX_UTTERANCE) {
            return Err(SttError::TooLong {
                seconds: total as f64 / f64::from(STT_SAMPLE_RATE),
                max: MAX_UTTERANCE.as_secs_f64(),
            });
        }
        Arc::make_mut(&mut self.audio).extend_from_slice(samples);
        self.collect();
        // No partial while the caller is quiet: the pass started at the pause covers every word, and
        // one over the silence after it would only keep the cores from the model answering them.
        let due = self.audio.len() - self.partial_from
            >= Self::samples(self.options.partial_interval)
            && self.audio.len() >= Self::samples(self.options.min_partial_audio)
            && self.paused_at.is_none();
        if due && self.pass.is_none() {
            self.start_pass(Urgency::Partial);
        }
        Ok(())
    }

    fn speech_paused(&mut self) {
        self.collect();
        self.paused_at = Some(self.audio.len());
        if self.audio.len() < Self::samples(self.options.min_partial_audio)
            || self.partial_from == self.audio.len()
        {
            return;
        }
        self.start_pass(Urgency::Paused);
    }

    fn speech_resumed(&mut self) {
        self.paused_at = None;
        // The pass started at the pause would be only a partial now, and a stale one: it leaves the
        // queue if it has not started, and stops if it runs, so that its slot goes to the next pass (a
        // caller pausing between digit groups starts one at every gap).
        self.collect();
        let Some(pass) = &self.pass else { return };
        let Some(stop) = &pass.stop else { return };
        if !pass.ticket.as_ref().is_some_and(Ticket::withdraw) {
            stop.store(true, Ordering::Relaxed);
        }
        self.pass = None;
    }

    fn transcript_to_pause(&mut self) -> Option<String> {
        self.collect();
        let paused_at = samples_to_duration(self.paused_at?);
        self.latest
            .as_ref()
            .filter(|latest| latest.audio >= paused_at)
            .map(|latest| latest.text.clone())
    }

    fn poll_partial(&mut self) -> Option<Hypothesis> {
        self.collect();
        self.ready.take()
    }

    fn finish(&mut self) -> Result<Hypothesis, SttError> {
        let total = self.audio.len();
        let tail = Self::samples(self.options.final_reuse_tail);
        // A pass that misses too much is dropped here: withdrawn if it still waits in line; if it runs,
        // it keeps its slot to the end, so the final pass below starts after it rather than sharing the
        // cores with it.
        // The pass started when the caller went quiet covers every word when they have not spoken
        // since (`paused_at` is cleared when they resume): what it misses is silence, however long the
        // end of the turn was held open.
        if let Some(pass) = self.pass.take()
            && (pass.samples + tail >= total || self.paused_at == Some(pass.samples))
        {
            if let Some(ticket) = &pass.ticket {
                ticket.promote();
            }
            if let Ok(Ok(transcript)) = pass.result.recv() {
                return Ok(Hypothesis::from_transcript(transcript, total, true));
            }
        }
        self.ready = None;
        if let Some(latest) = self.latest.take()
            && Self::samples(latest.audio) + tail >= total
        {
            return Ok(Hypothesis {
                is_final: true,
                audio: samples_to_duration(total),
                ..latest
            });
        }
        let _permit = self.gate.urgent();
        let started = Instant::now();
        let transcript = self.recognizer.transcribe(&self.audio)?;
        let mut hypothesis = Hypothesis::from_transcript(transcript, total, true);
        hypothesis.compute = started.elapsed();
        Ok(hypothesis)
    }

    fn audio(&self) -> Duration {
        samples_to_duration(self.audio.len())
    }
}

#[cfg(test)]
mod tests;
