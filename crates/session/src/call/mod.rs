//! One call from connection to hang-up: the session loop that joins the transport, the audio front end,
//! the recogniser, the turn-taking state machine, the speaker and playout, and writes the record.
//!
//! Caller audio is processed inline (a 20 ms frame costs well under a millisecond); recognition passes,
//! the model and the voice run on other threads; the loop only routes events. Transcript lines go to the
//! recorder, which stores them off the loop and announces each once it is stored. At the end, the caller's
//! words in progress and the agent's speech being played are recorded too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchboard_agent::{Action as ToolAction, CallContext, Conversation, Synthesis};
use switchboard_audio::{EchoOptions, FrontEnd, FrontEndOptions, InputFormat};
use switchboard_core::{CallId, Speaker};
use switchboard_store::Database;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::echo_tap::{Alignment, EchoTap};
use crate::engines::Engines;
use crate::latency::TurnLatency;
use crate::listener::{Listener, Recognised};
use crate::machine::{Action, EndReason, Event, SpeechId, TurnTaking};
use crate::media::{CallerReceiver, Inbound, Outbound};
use crate::playout::{self, Played, Queued};
use crate::recorder::Recorder;
use crate::recording::CallRecording;
use crate::speaker::{self, ReplyJob, SpeakerJob, Spoken, Voice};
use crate::speeches::Speeches;
use crate::voice_out::VoiceEncoder;

mod caller;
mod ending;

/// How often the session looks at its timers and the recogniser's partials.
const TICK: Duration = Duration::from_millis(50);
/// Agent audio that may wait in the playout queue (a long answer synthesised ahead of the clock).
const QUEUE_FRAMES: usize = 3_000;

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

/// Runs a call until it ends; then records the end and writes the synthesis. Never panics on bad input:
/// malformed audio is logged and dropped, and the call goes on.
pub async fn run_call(
    setup: CallSetup,
    engines: Arc<Engines>,
    db: Database,
    inbound: CallerReceiver,
    out_tx: mpsc::Sender<Outbound>,
    hangup: CancellationToken,
) -> Result<CallReport, CallError> {
    let front = FrontEnd::new(
        FrontEndOptions {
            input: setup.format,
            // A live echo path is the network both ways, the far side's jitter buffer and the line, on
            // top of the reference trailing the caller's audio by a frame or more: search up to 600 ms.
            echo: engines.echo_cancellation.then_some(EchoOptions {
                max_delay_blocks: 60,
                ..EchoOptions::default()
            }),
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
        let reason = session.run(inbound, hangup).await;
        session.finish(reason).await
    };
    Ok(call.instrument(span).await)
}

/// The state of a running call besides the turn-taking machine.
struct Session {
    call_id: CallId,
    engines: Arc<Engines>,
    recorder: Recorder,
    out_tx: mpsc::Sender<Outbound>,
    listener: Listener,
    format: InputFormat,
    turns: TurnTaking,
    recognised_rx: mpsc::UnboundedReceiver<Recognised>,
    jobs_tx: Option<mpsc::UnboundedSender<SpeakerJob>>,
    spoken_rx: mpsc::UnboundedReceiver<Spoken>,
    played_rx: mpsc::UnboundedReceiver<Played>,
    cancel_tx: mpsc::UnboundedSender<SpeechId>,
    /// The far side's mark echoes, to playout (when the transport's peer sends them).
    echo_tx: Option<mpsc::UnboundedSender<String>>,
    queue_tx: mpsc::Sender<Queued>,
    speaker: Option<tokio::task::JoinHandle<Conversation>>,
    playout: Option<tokio::task::JoinHandle<()>>,
    playout_stop: CancellationToken,
    speeches: Speeches,
    dropped_audio: u64,
    /// Both sides of the call, stored sealed (RECORDING).
    recording: Option<CallRecording>,
    /// The next answer first says that the recording stopped.
    recording_stopped_unsaid: bool,
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
        // The agent's audio as playout sends it, for the echo canceller on the caller's side.
        let tap = engines.echo_cancellation.then(EchoTap::default);
        let recording_tap =
            (engines.recording != switchboard_core::config::Recording::Off).then(EchoTap::default);
        let taps: Vec<EchoTap> = tap.iter().chain(recording_tap.iter()).cloned().collect();
        let playout_stop = CancellationToken::new();
        // The call's tasks and threads log inside its span, so every line carries the call id.
        let playout = tokio::spawn(
            playout::run(
                queue_rx,
                cancel_rx,
                out_tx.clone(),
                played_tx,
                echo_rx,
                taps,
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
        let engines_for_listener = engines.clone();
        let mask_stored_pii = engines.mask_stored_pii;
        let recording = recording_tap
            .map(|agent| CallRecording::start(setup.call_id, db.clone(), setup.format, agent));
        Self {
            call_id: setup.call_id,
            turns: TurnTaking::new(engines.turns, now),
            engines,
            recorder: Recorder::start(setup.call_id, db, out_tx.clone(), mask_stored_pii),
            out_tx,
            listener: Listener::new(
                engines_for_listener,
                front,
                recognised_tx,
                tap.map(|tap| (tap, Alignment::new(setup.format))),
            ),
            format: setup.format,
            recognised_rx,
            jobs_tx: Some(jobs_tx),
            spoken_rx,
            played_rx,
            cancel_tx,
            echo_tx,
            queue_tx,
            speaker: Some(speaker),
            playout: Some(playout),
            playout_stop,
            speeches: Speeches::default(),
            dropped_audio: 0,
            recording,
            recording_stopped_unsaid: false,
        }
    }

    /// The session loop; returns why the call ended.
    async fn run(&mut self, inbound: CallerReceiver, hangup: CancellationToken) -> EndReason {
        let (audio, mut signals) = inbound.into_parts();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(reason) = self.handle(Event::Connected).await {
            return reason;
        }
        loop {
            let event = tokio::select! {
                biased;
                () = hangup.cancelled() => Event::Ended(EndReason::EndedByApi),
                // Signals before anything else: a mark or a hang-up never waits behind audio.
                signal = signals.recv() => match signal {
                    Some(Inbound::Dtmf(_)) => {
                        tracing::info!("caller pressed a key");
                        continue;
                    }
                    Some(Inbound::Mark(name)) => {
                        match &self.echo_tx {
                            Some(echoes) => { let _ = echoes.send(name); }
                            None => tracing::debug!(%name, "the far side played up to a mark"),
                        }
                        continue;
                    }
                    // Audio never comes this way.
                    Some(Inbound::Audio(_)) => continue,
                    Some(Inbound::Hangup) | None => Event::Ended(EndReason::CallerHungUp),
                },
                Some(played) = self.played_rx.recv() => match self.on_played(played).await {
                    Some(event) => event,
                    None => continue,
                },
                Some(spoken) = self.spoken_rx.recv() => match self.on_spoken(spoken).await {
                    Some(event) => event,
                    None => continue,
                },
                Some(recognised) = self.recognised_rx.recv() => match self.on_recognised(recognised) {
                    Some(event) => event,
                    None => continue,
                },
                Some(bytes) = audio.next() => match self.on_audio(&bytes) {
                    Some(event) => event,
                    None => continue,
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
                        continues,
                    } => self.reply(speech, caller_text, continues),
                    Action::Cancel(speech) => {
                        self.speeches.cancel(speech);
                        let _ = self.cancel_tx.send(speech);
                    }
                    Action::Hangup(reason) => {
                        // The transcript's last lines go out before the hang-up, and what the echo
                        // canceller did.
                        self.recorder.flush().await;
                        if let Some(report) = self.listener.echo_report() {
                            let _ = self.out_tx.send(Outbound::Echo(report)).await;
                        }
                        let _ = self
                            .out_tx
                            .send(Outbound::Hangup {
                                reason: reason.clone(),
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
        self.speeches.phrase(speech, text);
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

    fn reply(&mut self, speech: SpeechId, caller_text: String, continues: bool) {
        let cancel = self.speeches.answer(speech);
        let preface = std::mem::take(&mut self.recording_stopped_unsaid)
            .then(|| "Understood: this call is no longer recorded.".to_owned());
        self.to_speaker(SpeakerJob::Reply(ReplyJob {
            speech,
            caller_text,
            continues,
            cancel,
            preface,
        }));
    }

    fn to_speaker(&self, job: SpeakerJob) {
        if let Some(jobs) = &self.jobs_tx {
            let _ = jobs.send(job);
        }
    }

    /// The speaker's progress: timing for the latency, the pieces' words, the answer's outcome.
    async fn on_spoken(&mut self, spoken: Spoken) -> Option<Event> {
        match spoken {
            Spoken::FirstSentence {
                speech,
                at,
                read_ahead,
            } => {
                let latency = self.speeches.first_sentence(speech, at, read_ahead);
                report(&self.out_tx, latency).await;
                None
            }
            Spoken::FirstChunk { speech, at } => {
                let latency = self.speeches.first_chunk(speech, at);
                report(&self.out_tx, latency).await;
                None
            }
            Spoken::Piece {
                speech,
                index,
                text,
            } => {
                self.speeches.piece(speech, index, text);
                None
            }
            Spoken::Done { speech, outcome } => {
                self.speeches.generated(speech);
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
                self.speeches.generated(speech);
                tracing::error!(%reason, "no answer for the caller's turn");
                metrics::counter!("switchboard_errors_total", "kind" => "reply").increment(1);
                Some(Event::ReplyFailed(speech))
            }
        }
    }

    /// Playout's report: latency at first audio; at the end, the words actually heard are stored.
    async fn on_played(&mut self, played: Played) -> Option<Event> {
        match played {
            Played::Audible { speech, at } => {
                let latency = self.speeches.audible(speech, at);
                report(&self.out_tx, latency).await;
                Some(Event::SpeechAudible(speech))
            }
            Played::Finished {
                speech,
                pieces,
                interrupted,
            } => {
                if interrupted {
                    metrics::counter!("switchboard_barge_ins_total").increment(1);
                }
                self.record_heard(speech, pieces);
                Some(Event::SpeechFinished(speech))
            }
        }
    }

    /// Playout's last word on a speech: what the caller heard of it goes to the record.
    fn record_heard(&mut self, speech: SpeechId, pieces: u32) {
        if let Some((text, started)) = self.speeches.finished(speech, pieces) {
            self.recorder
                .record(Speaker::Agent, &text, started, Instant::now());
        }
    }
}

/// Sends a turn's latency, once complete, to the transport. (A free function: a borrow of the whole
/// session held across the send would make the call's future need a `Sync` session.)
async fn report(out_tx: &mpsc::Sender<Outbound>, latency: Option<TurnLatency>) {
    if let Some(latency) = latency {
        let _ = out_tx.send(Outbound::Latency(latency)).await;
    }
}
