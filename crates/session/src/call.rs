//! One call from connection to hang-up: the session loop that joins the transport, the audio front end,
//! the recogniser, the turn-taking state machine, the speaker and playout, and writes the record.
//!
//! Caller audio is processed inline (a 20 ms frame costs well under a millisecond); recognition passes,
//! the model and the voice run on other threads; the loop only routes events and persists turns. A turn is
//! committed to the database before its transcript event is sent.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use switchboard_agent::{
    Action as ToolAction, CallContext, Conversation, Synthesis, synthesis_from_record, synthesize,
};
use switchboard_audio::pcm::to_f32;
use switchboard_audio::vad::VadEvent;
use switchboard_audio::{FrontEnd, FrontEndOptions, InputFormat};
use switchboard_core::{CallId, Speaker};
use switchboard_speech::SpeechStream;
use switchboard_store::{CallSummary, Database};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::engines::Engines;
use crate::latency::{TurnClock, TurnLatency};
use crate::machine::{Action, EndReason, Event, SpeechId, TurnTaking};
use crate::media::{Inbound, Outbound, TranscriptLine};
use crate::playout::{self, Played, Queued};
use crate::speaker::{self, ReplyJob, SpeakerJob, Spoken, Voice};
use crate::turn_cues;
use crate::voice_out::VoiceEncoder;

/// How often the session looks at its timers and the recogniser's partials.
const TICK: Duration = Duration::from_millis(50);
/// Audio kept from before the VAD's speech start, so the recogniser hears the first syllable whole.
const PREROLL: Duration = Duration::from_millis(300);
/// Agent audio that may wait in the playout queue (a long answer synthesised ahead of the clock).
const QUEUE_FRAMES: usize = 3_000;
/// Recogniser sample rate.
const HZ: u64 = 16_000;

/// What a call starts with.
#[derive(Debug, Clone)]
pub struct CallSetup {
    /// Its id (already recorded in the database).
    pub call_id: CallId,
    /// The transport's audio format, both ways.
    pub format: InputFormat,
    /// The caller's number and history, for the agent.
    pub context: CallContext,
    /// The transport's peer echoes each mark once it has played the audio before it (Twilio does): what
    /// the caller heard is then taken from the echoes, not from our clock.
    pub echoes_marks: bool,
}

/// Why a call could not start.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The audio chain could not be built for this format.
    #[error("cannot process {format:?} audio: {source}")]
    Audio {
        /// The format asked for.
        format: InputFormat,
        /// Why.
        source: switchboard_audio::AudioError,
    },
}

/// What a finished call leaves for its runner.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    /// Which call.
    pub call_id: CallId,
    /// Why it ended.
    pub end_reason: String,
    /// Caller turns.
    pub turns: u32,
    /// Per answered turn.
    pub latencies: Vec<TurnLatency>,
    /// The claim as filled.
    pub claim: serde_json::Value,
    /// The post-call synthesis, when the model produced one.
    pub synthesis: Option<Synthesis>,
}

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
struct Recognised {
    text: Result<String, String>,
    started: Instant,
    clock: TurnClock,
}

/// Runs a call until it ends; then records the end and writes the synthesis. Never panics on bad input:
/// malformed audio is logged and dropped, and the call goes on.
pub async fn run_call(
    setup: CallSetup,
    engines: Arc<Engines>,
    db: Database,
    inbound_rx: mpsc::Receiver<Inbound>,
    out_tx: mpsc::Sender<Outbound>,
    hangup: CancellationToken,
) -> Result<CallReport, CallError> {
    let front = FrontEnd::new(
        FrontEndOptions {
            input: setup.format,
            // The transports we carry cancel echo on the caller's side (browsers, phones); the reference
            // path is for SIP lines without it.
            echo: None,
            noise_suppression: engines.noise_suppression,
            agc: Some(Default::default()),
            vad: engines.vad,
        },
        engines.vad_engine(),
    )
    .map_err(|source| CallError::Audio {
        format: setup.format,
        source,
    })?;
    let span = tracing::info_span!("call", call_id = %setup.call_id);
    let call = async move {
        tracing::info!(format = ?setup.format, "call connected");
        let mut session = Session::start(setup, engines, db, out_tx, front);
        let reason = session.run(inbound_rx, hangup).await;
        session.finish(reason).await
    };
    Ok(call.instrument(span).await)
}

/// Where a call's record goes. Kept apart from the session so that storing a turn borrows only this
/// (shareable) part while the session's audio state stays with its task.
struct Recorder {
    call_id: CallId,
    db: Database,
    started: Instant,
    started_wall: SystemTime,
}

/// The state of a running call besides the turn-taking machine.
struct Session {
    call_id: CallId,
    engines: Arc<Engines>,
    recorder: Recorder,
    out_tx: mpsc::Sender<Outbound>,
    front: FrontEnd,
    format: InputFormat,
    turns: TurnTaking,
    utterance: Option<Utterance>,
    preroll: VecDeque<(u64, Vec<f32>)>,
    recognised_tx: mpsc::UnboundedSender<Recognised>,
    recognised_rx: mpsc::UnboundedReceiver<Recognised>,
    jobs_tx: Option<mpsc::UnboundedSender<SpeakerJob>>,
    spoken_rx: mpsc::UnboundedReceiver<Spoken>,
    played_rx: mpsc::UnboundedReceiver<Played>,
    cancel_tx: mpsc::UnboundedSender<SpeechId>,
    /// The far side's mark echoes, to playout (when the transport's peer sends them).
    echo_tx: Option<mpsc::UnboundedSender<String>>,
    queue_tx: mpsc::Sender<Queued>,
    speaker: Option<tokio::task::JoinHandle<Conversation>>,
    playout_stop: CancellationToken,
    cancels: HashMap<SpeechId, CancellationToken>,
    pieces: HashMap<SpeechId, Vec<String>>,
    speech_started: HashMap<SpeechId, Instant>,
    clocks: HashMap<SpeechId, (u32, TurnClock)>,
    pending_clock: Option<TurnClock>,
    latencies: Vec<TurnLatency>,
    answered: u32,
    dropped_audio: u64,
}

impl Session {
    fn start(
        setup: CallSetup,
        engines: Arc<Engines>,
        db: Database,
        out_tx: mpsc::Sender<Outbound>,
        front: FrontEnd,
    ) -> Self {
        let now = Instant::now();
        let (recognised_tx, recognised_rx) = mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (spoken_tx, spoken_rx) = mpsc::unbounded_channel();
        let (played_tx, played_rx) = mpsc::unbounded_channel();
        let (cancel_tx, cancel_rx) = mpsc::unbounded_channel();
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE_FRAMES);
        let (echo_tx, echo_rx) = if setup.echoes_marks {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let playout_stop = CancellationToken::new();
        // The call's tasks and threads log inside its span, so every line carries the call id.
        tokio::spawn(
            playout::run(
                queue_rx,
                cancel_rx,
                out_tx.clone(),
                played_tx,
                echo_rx,
                playout_stop.clone(),
            )
            .in_current_span(),
        );
        let mut conversation = Conversation::new(
            engines.model.clone(),
            engines.knowledge.clone(),
            engines.agent.clone(),
            setup.context,
            engines.native_tools,
        );
        // The greeting is played from the phrase cache; the conversation still knows it was said.
        conversation.greeting();
        let voice = Voice {
            tts: engines.tts.clone(),
            phrases: engines.phrases.clone(),
            format: setup.format,
            queue_tx: queue_tx.clone(),
        };
        let speaker =
            tokio::spawn(speaker::run(conversation, voice, jobs_rx, spoken_tx).in_current_span());
        metrics::gauge!("switchboard_calls_active").increment(1.0);
        Self {
            call_id: setup.call_id,
            turns: TurnTaking::new(engines.turns, now),
            engines,
            recorder: Recorder {
                call_id: setup.call_id,
                db,
                started: now,
                started_wall: SystemTime::now(),
            },
            out_tx,
            front,
            format: setup.format,
            utterance: None,
            preroll: VecDeque::new(),
            recognised_tx,
            recognised_rx,
            jobs_tx: Some(jobs_tx),
            spoken_rx,
            played_rx,
            cancel_tx,
            echo_tx,
            queue_tx,
            speaker: Some(speaker),
            playout_stop,
            cancels: HashMap::new(),
            pieces: HashMap::new(),
            speech_started: HashMap::new(),
            clocks: HashMap::new(),
            pending_clock: None,
            latencies: Vec::new(),
            answered: 0,
            dropped_audio: 0,
        }
    }

    /// The session loop; returns why the call ended.
    async fn run(
        &mut self,
        mut inbound_rx: mpsc::Receiver<Inbound>,
        hangup: CancellationToken,
    ) -> EndReason {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(reason) = self.handle(Event::Connected).await {
            return reason;
        }
        loop {
            let event = tokio::select! {
                biased;
                () = hangup.cancelled() => Event::Ended(EndReason::EndedByApi),
                Some(played) = self.played_rx.recv() => match self.on_played(played).await {
                    Some(event) => event,
                    None => continue,
                },
                Some(spoken) = self.spoken_rx.recv() => match self.on_spoken(spoken).await {
                    Some(event) => event,
                    None => continue,
                },
                Some(recognised) = self.recognised_rx.recv() => match self.on_recognised(recognised).await {
                    Some(event) => event,
                    None => continue,
                },
                inbound = inbound_rx.recv() => match inbound {
                    Some(Inbound::Audio(bytes)) => {
                        match self.on_audio(&bytes) {
                            Some(event) => event,
                            None => continue,
                        }
                    }
                    Some(Inbound::Dtmf(digit)) => {
                        tracing::info!(%digit, "caller pressed a key");
                        continue;
                    }
                    Some(Inbound::Mark(name)) => {
                        match &self.echo_tx {
                            Some(echoes) => { let _ = echoes.send(name); }
                            None => tracing::debug!(%name, "the far side played up to a mark"),
                        }
                        continue;
                    }
                    Some(Inbound::Hangup) | None => Event::Ended(EndReason::CallerHungUp),
                },
                _ = ticker.tick() => {
                    self.poll_partial().await;
                    Event::Tick
                }
            };
            if let Some(reason) = self.handle(event).await {
                return reason;
            }
        }
    }

    /// Feeds one event to the machine and carries out its actions; returns the end reason on hang-up.
    async fn handle(&mut self, event: Event) -> Option<EndReason> {
        {
            for action in self.turns.on_event(event, Instant::now()) {
                match action {
                    Action::Say { speech, phrase } => {
                        let text = self.engines.phrase_book.text(phrase).to_owned();
                        self.say(speech, text).await;
                    }
                    Action::Reply {
                        speech,
                        caller_text,
                    } => self.reply(speech, caller_text),
                    Action::Cancel(speech) => {
                        if let Some(token) = self.cancels.remove(&speech) {
                            token.cancel();
                        }
                        let _ = self.cancel_tx.send(speech);
                    }
                    Action::Hangup(reason) => {
                        let _ = self
                            .out_tx
                            .send(Outbound::Hangup {
                                reason: reason.as_str().to_owned(),
                            })
                            .await;
                        return Some(reason);
                    }
                }
            }
        }
        None
    }

    /// Queues a fixed phrase's audio from the cache (synthesised now only if the cache lost it).
    async fn say(&mut self, speech: SpeechId, text: String) {
        let tts = self.engines.tts.clone();
        let phrase = match self.engines.phrases.cached(tts.as_ref(), &text) {
            Some(phrase) => Ok(phrase),
            None => {
                let phrases = self.engines.phrases.clone();
                let words = text.clone();
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    let _call = span.enter();
                    phrases.get(tts.as_ref(), &words).map(|(p, _)| p)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            }
        };
        self.pieces.insert(speech, vec![text]);
        self.speech_started.insert(speech, Instant::now());
        let frames = phrase.and_then(|p| {
            let mut encoder =
                VoiceEncoder::new(p.sample_rate, self.format).map_err(|e| e.to_string())?;
            let mut frames = encoder.push(&p.samples).map_err(|e| e.to_string())?;
            frames.extend(encoder.finish().map_err(|e| e.to_string())?);
            Ok(frames)
        });
        match frames {
            Ok(frames) => {
                for bytes in frames {
                    let frame = Queued::Frame {
                        speech,
                        piece: 0,
                        bytes,
                    };
                    if self.queue_tx.try_send(frame).is_err() {
                        self.dropped_audio += 1;
                    }
                }
            }
            Err(reason) => {
                tracing::error!(%reason, "cannot play a fixed phrase");
                metrics::counter!("switchboard_errors_total", "kind" => "tts").increment(1);
            }
        }
        // The end marker must arrive even if the queue was full, or the machine would wait forever.
        let _ = self.queue_tx.send(Queued::End(speech)).await;
    }

    fn reply(&mut self, speech: SpeechId, caller_text: String) {
        let cancel = CancellationToken::new();
        self.cancels.insert(speech, cancel.clone());
        self.speech_started.insert(speech, Instant::now());
        if let Some(clock) = self.pending_clock.take() {
            self.answered += 1;
            self.clocks.insert(speech, (self.answered, clock));
        }
        self.to_speaker(SpeakerJob::Reply(ReplyJob {
            speech,
            caller_text,
            cancel,
        }));
    }

    fn to_speaker(&self, job: SpeakerJob) {
        if let Some(jobs) = &self.jobs_tx {
            let _ = jobs.send(job);
        }
    }

    /// Runs caller audio through the front end; returns a VAD change for the machine.
    fn on_audio(&mut self, bytes: &[u8]) -> Option<Event> {
        if let Err(e) = self.front.push_payload(bytes) {
            tracing::warn!(error = %e, len = bytes.len(), "dropping malformed caller audio");
            metrics::counter!("switchboard_errors_total", "kind" => "bad_audio").increment(1);
            return None;
        }
        let mut change = None;
        loop {
            let now = Instant::now();
            let (start, samples, vad) = match self.front.next_frame() {
                Ok(Some(frame)) => (
                    frame.start,
                    frame
                        .samples
                        .iter()
                        .map(|&s| to_f32(s))
                        .collect::<Vec<f32>>(),
                    frame.event,
                ),
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
                    let mut stream = self.engines.stt.stream();
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
                self.to_speaker(SpeakerJob::DropReadAhead);
            }
            self.read_ahead();
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
        change
    }

    /// During a pause long enough (see `Engines::read_ahead_after`), once what the caller said before it
    /// is transcribed, has the speaker answer those words on a draft while the end of the turn is
    /// confirmed (spoken only if the turn ends on them).
    fn read_ahead(&mut self) {
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
        self.to_speaker(SpeakerJob::ReadAhead(words.to_owned()));
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
    fn end_utterance(&self, utterance: Utterance, at: u64, heard_to: u64, now: Instant) {
        let trailing = Duration::from_secs_f64(heard_to.saturating_sub(at) as f64 / HZ as f64);
        let clock = TurnClock {
            speech_ended: Some(now.checked_sub(trailing).unwrap_or(now)),
            end_detected: Some(now),
            ..TurnClock::default()
        };
        self.finish_utterance(utterance, clock);
    }

    /// Final recognition of an utterance on the blocking pool; the result comes back as an event.
    fn finish_utterance(&self, mut utterance: Utterance, clock: TurnClock) {
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
            let _ = tx.send(Recognised {
                text,
                started: utterance.started,
                clock,
            });
        });
    }

    async fn poll_partial(&mut self) {
        let Some(partial) = self
            .utterance
            .as_mut()
            .and_then(|u| u.stream.poll_partial())
        else {
            return;
        };
        let text = partial.text.trim().to_owned();
        if !text.is_empty() {
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

    /// Persists the caller's words, then tells the transport, then the machine.
    async fn on_recognised(&mut self, recognised: Recognised) -> Option<Event> {
        if let (Some(detected), Some(done)) =
            (recognised.clock.end_detected, recognised.clock.transcribed)
        {
            metrics::histogram!("switchboard_stt_seconds")
                .record(done.saturating_duration_since(detected).as_secs_f64());
        }
        let text = match recognised.text {
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
        if !text.chars().any(char::is_alphanumeric) {
            return Some(Event::CallerTranscribed { text });
        }
        let ended = recognised.clock.speech_ended.unwrap_or_else(Instant::now);
        let seq = self
            .recorder
            .persist(Speaker::Caller, &text, recognised.started, ended)
            .await;
        let _ = self
            .out_tx
            .send(Outbound::Transcript(TranscriptLine {
                speaker: Speaker::Caller,
                text: text.clone(),
                is_final: true,
                seq,
            }))
            .await;
        self.pending_clock = Some(recognised.clock);
        Some(Event::CallerTranscribed { text })
    }

    /// The speaker's progress: timing for the latency, the pieces' words, the answer's outcome.
    async fn on_spoken(&mut self, spoken: Spoken) -> Option<Event> {
        match spoken {
            Spoken::FirstSentence {
                speech,
                at,
                read_ahead,
            } => {
                if let Some((_, clock)) = self.clocks.get_mut(&speech) {
                    clock.first_sentence = Some(at);
                    clock.read_ahead = read_ahead;
                }
                let started = self.speech_started.get(&speech).copied().unwrap_or(at);
                metrics::histogram!("switchboard_llm_first_sentence_seconds")
                    .record(at.saturating_duration_since(started).as_secs_f64());
                self.report_latency(speech).await;
                None
            }
            Spoken::FirstChunk { speech, at } => {
                if let Some((_, clock)) = self.clocks.get_mut(&speech) {
                    clock.first_chunk = Some(at);
                    if let Some(sentence) = clock.first_sentence {
                        metrics::histogram!("switchboard_tts_first_chunk_seconds")
                            .record(at.saturating_duration_since(sentence).as_secs_f64());
                    }
                }
                self.report_latency(speech).await;
                None
            }
            Spoken::Piece {
                speech,
                index,
                text,
            } => {
                let pieces = self.pieces.entry(speech).or_default();
                if pieces.len() == index as usize {
                    pieces.push(text);
                }
                None
            }
            Spoken::Done { speech, outcome } => {
                self.cancels.remove(&speech);
                if let Some(error) = &outcome.llm_error {
                    tracing::warn!(%error, "the model failed during the turn; the agent recovered");
                    metrics::counter!("switchboard_errors_total", "kind" => "llm").increment(1);
                }
                outcome.actions.iter().find_map(|action| match action {
                    ToolAction::EndCall { reason } => Some(Event::AgentWantsToEnd(
                        EndReason::AgentEnded(reason.clone()),
                    )),
                    ToolAction::TransferToHuman { reason } => Some(Event::AgentWantsToEnd(
                        EndReason::Transferred(reason.clone()),
                    )),
                    _ => None,
                })
            }
            Spoken::Failed { speech, reason } => {
                self.cancels.remove(&speech);
                tracing::error!(%reason, "no answer for the caller's turn");
                metrics::counter!("switchboard_errors_total", "kind" => "reply").increment(1);
                Some(Event::ReplyFailed(speech))
            }
        }
    }

    /// Reports a turn's latency once every moment of it is known. The speaker's reports (first sentence,
    /// first chunk) and playout's (first audio) come on separate channels, and with a cached phrase the
    /// first audio can be reported before the speaker's moments are seen: whichever comes last reports.
    async fn report_latency(&mut self, speech: SpeechId) {
        let Some((turn, clock)) = self.clocks.get_mut(&speech) else {
            return;
        };
        if clock.reported {
            return;
        }
        let Some(latency) = clock.latency(*turn) else {
            return;
        };
        clock.reported = true;
        latency.record();
        crate::trace::export_turn(clock, &latency);
        self.latencies.push(latency);
        let _ = self.out_tx.send(Outbound::Latency(latency)).await;
    }

    /// Playout's report: latency at first audio; at the end, the words actually heard are stored.
    async fn on_played(&mut self, played: Played) -> Option<Event> {
        match played {
            Played::Audible { speech, at } => {
                if let Some((_, clock)) = self.clocks.get_mut(&speech) {
                    clock.first_audio = Some(at);
                }
                self.report_latency(speech).await;
                Some(Event::SpeechAudible(speech))
            }
            Played::Finished {
                speech,
                pieces,
                interrupted,
            } => {
                self.clocks.remove(&speech);
                let said = self.pieces.remove(&speech).unwrap_or_default();
                let heard: Vec<String> = said.into_iter().take(pieces as usize).collect();
                if interrupted {
                    metrics::counter!("switchboard_barge_ins_total").increment(1);
                }
                if !heard.is_empty() {
                    let text = heard.join(" ");
                    let started = self
                        .speech_started
                        .remove(&speech)
                        .unwrap_or_else(Instant::now);
                    let seq = self
                        .recorder
                        .persist(Speaker::Agent, &text, started, Instant::now())
                        .await;
                    let _ = self
                        .out_tx
                        .send(Outbound::Transcript(TranscriptLine {
                            speaker: Speaker::Agent,
                            text,
                            is_final: true,
                            seq,
                        }))
                        .await;
                }
                Some(Event::SpeechFinished(speech))
            }
        }
    }

    /// Stops the call's tasks, records the end and writes the synthesis.
    async fn finish(mut self, reason: EndReason) -> CallReport {
        for token in self.cancels.values() {
            token.cancel();
        }
        self.jobs_tx = None;
        // Let playout flush what was sent before the hang-up, then stop the clock.
        self.playout_stop.cancel();
        let conversation = match self.speaker.take() {
            Some(handle) => handle.await.ok(),
            None => None,
        };
        metrics::gauge!("switchboard_calls_active").decrement(1.0);
        metrics::counter!("switchboard_calls_total", "outcome" => reason.as_str()).increment(1);
        if self.dropped_audio > 0 {
            tracing::warn!(
                frames = self.dropped_audio,
                "agent audio dropped: playout queue full"
            );
        }
        if let Err(e) = self
            .recorder
            .db
            .end_call(self.call_id, SystemTime::now(), reason.as_str())
            .await
        {
            tracing::error!(error = %e, "cannot record the end of the call");
        }
        tracing::info!(
            reason = reason.as_str(),
            turns = self.turns.turns(),
            "call ended"
        );
        let claim = conversation
            .as_ref()
            .map(|c| serde_json::to_value(&c.claim().values).unwrap_or_default())
            .unwrap_or_default();
        let synthesis = match &conversation {
            Some(conversation) => {
                self.recorder
                    .synthesize(&self.engines, conversation, &claim)
                    .await
            }
            None => None,
        };
        CallReport {
            call_id: self.call_id,
            end_reason: reason.as_str().to_owned(),
            turns: self.turns.turns(),
            latencies: self.latencies,
            claim,
            synthesis,
        }
    }
}

impl Recorder {
    /// Commits a turn; `None` (logged and counted) when the database refused it.
    async fn persist(
        &self,
        speaker: Speaker,
        text: &str,
        started: Instant,
        ended: Instant,
    ) -> Option<i64> {
        let wall = |at: Instant| self.started_wall + at.saturating_duration_since(self.started);
        match self
            .db
            .append_turn(self.call_id, speaker, text, wall(started), wall(ended))
            .await
        {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::error!(error = %e, "cannot store a turn; it is not acknowledged");
                metrics::counter!("switchboard_errors_total", "kind" => "store").increment(1);
                None
            }
        }
    }

    /// The post-call synthesis from the stored transcript, saved with the claim.
    async fn synthesize(
        &self,
        engines: &Engines,
        conversation: &Conversation,
        claim: &serde_json::Value,
    ) -> Option<Synthesis> {
        let transcript: Vec<(String, String)> = match self.db.turns(self.call_id).await {
            Ok(turns) => turns
                .into_iter()
                .map(|t| (t.speaker.as_str().to_owned(), t.text))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the transcript for the synthesis");
                return None;
            }
        };
        // A caller who said nothing leaves nothing for the model to read: the record says it all, and the
        // model stays free for live calls.
        let caller_spoke = transcript
            .iter()
            .any(|(speaker, _)| speaker == Speaker::Caller.as_str());
        let synthesis = if !caller_spoke {
            synthesis_from_record(
                conversation.claim(),
                &engines.agent.claim_schema,
                conversation.actions(),
            )
        } else {
            match synthesize(
                engines.model.as_ref(),
                &transcript,
                conversation.claim(),
                &engines.agent.claim_schema,
                conversation.actions(),
            )
            .await
            {
                Ok(synthesis) => synthesis,
                Err(e) => {
                    // The claim must be stored either way: the record writes the synthesis instead.
                    tracing::error!(error = %e, "the post-call synthesis failed; writing it from the record");
                    metrics::counter!("switchboard_errors_total", "kind" => "synthesis")
                        .increment(1);
                    synthesis_from_record(
                        conversation.claim(),
                        &engines.agent.claim_schema,
                        conversation.actions(),
                    )
                }
            }
        };
        let summary = CallSummary {
            claim: claim.to_string(),
            short_summary: synthesis.short_summary.clone(),
            long_summary: synthesis.long_summary.clone(),
            satisfaction: i64::from(synthesis.satisfaction),
            improvement: synthesis.improvement.clone(),
            next_action: serde_json::to_value(synthesis.next_action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        if let Err(e) = self.db.save_summary(self.call_id, &summary).await {
            tracing::error!(error = %e, "cannot store the synthesis");
        }
        Some(synthesis)
    }
}
