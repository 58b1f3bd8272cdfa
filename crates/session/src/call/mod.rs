//! One call from connection to hang-up: the session loop that joins the transport, the audio front end,
//! the recogniser, the turn-taking state machine, the speaker and playout, and writes the record.
//!
//! Caller audio is processed inline (a 20 ms frame costs well under a millisecond); recognition passes,
//! the model and the voice run on other threads; the loop only routes events. Transcript lines go to the
//! recorder, which stores them off the loop and announces each once it is stored. At the end, the caller's
//! words in progress and the agent's speech being played are recorded too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchboard_agent::{CallContext, Conversation, Synthesis};
use switchboard_audio::{EchoOptions, FrontEnd, FrontEndOptions, InputFormat};
use switchboard_core::CallId;
use switchboard_store::Database;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::echo_tap::{Alignment, EchoTap};
use crate::engines::Engines;
use crate::latency::TurnLatency;
use crate::listener::{Listener, Recognised};
use crate::machine::{Action, AnsweredBy, EndReason, Event, SpeechId, TurnTaking};
use crate::media::{CallerAudio, CallerParts, CallerReceiver, Inbound, Outbound};
use crate::playout::{self, Played, Queued};
use crate::recorder::Recorder;
use crate::recording::CallRecording;
use crate::speaker::{self, SpeakerJob, Spoken, Voice};
use crate::speeches::Speeches;
use switchboard_core::config::Amd;

mod agent;
mod caller;
mod ending;

/// How often the session looks at its timers and the recogniser's partials.
const TICK: Duration = Duration::from_millis(50);
/// Agent audio that may wait in the playout queue (a long answer synthesised ahead of the clock): 60 s,
/// 480 KB of 16 kHz audio at most per call. The voice waits for room; a fixed phrase that finds the queue
/// full loses the frames that do not fit (counted).
const QUEUE_FRAMES: usize = 3_000;

// The call's other queues. Every part that reports to the session loop waits for room (nothing it says
// is dropped); the session loop never waits for room in a queue of its own parts, only for the transport
// and the store, so no two parts can block each other. The bounds are above what the turn machine can
// produce: one speech at a time is generated, and each is cancelled at most once.

/// Final transcripts from the listener's recognition passes: one per utterance, a handful in flight.
const RECOGNISED: usize = 16;
/// Replies and read-aheads for the speaker, one or two per caller turn; the speaker answers one at a time
/// and drops cancelled ones at once. A reply that finds no room fails as a reply the model could not give.
const JOBS: usize = 16;
/// The speaker's progress: a few messages per sentence of the answer being made.
const SPOKEN: usize = 64;
/// Playout's reports, two per speech.
const PLAYED: usize = 32;
/// Speeches to cut, one per speech at most; playout serves them before audio.
const CANCELS: usize = 16;

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
    /// The agent placed this call through the phone network: with AMD on, who answered is screened
    /// before the agent speaks.
    pub placed: bool,
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
        let CallerParts {
            audio,
            signals,
            marks,
        } = inbound.into_parts();
        let mut session = Session::start(setup, engines, db, out_tx, front, marks);
        let reason = session.run(audio, signals, hangup).await;
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
    recognised_rx: mpsc::Receiver<Recognised>,
    jobs_tx: Option<mpsc::Sender<SpeakerJob>>,
    spoken_rx: mpsc::Receiver<Spoken>,
    played_rx: mpsc::Receiver<Played>,
    cancel_tx: mpsc::Sender<SpeechId>,
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
        marks_rx: mpsc::Receiver<String>,
    ) -> Self {
        let now = Instant::now();
        let (recognised_tx, recognised_rx) = mpsc::channel(RECOGNISED);
        let (jobs_tx, jobs_rx) = mpsc::channel(JOBS);
        let (spoken_tx, spoken_rx) = mpsc::channel(SPOKEN);
        let (played_tx, played_rx) = mpsc::channel(PLAYED);
        let (cancel_tx, cancel_rx) = mpsc::channel(CANCELS);
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE_FRAMES);
        // The agent's audio as playout sends it, for the echo canceller on the caller's side.
        let tap = engines.echo_cancellation.then(EchoTap::default);
        let recording_tap =
            (engines.recording != switchboard_core::config::Recording::Off).then(EchoTap::default);
        let taps: Vec<EchoTap> = tap.iter().chain(recording_tap.iter()).cloned().collect();
        let playout_stop = CancellationToken::new();
        // The call's tasks and threads log inside its span, so every line carries the call id.
        let lines = playout::Lines {
            queue_rx,
            cancel_rx,
            marks_rx,
            out_tx: out_tx.clone(),
            played_tx,
        };
        let playout = tokio::spawn(
            playout::run(lines, setup.echoes_marks, taps, playout_stop.clone()).in_current_span(),
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
        let mut turns = TurnTaking::new(engines.turns, now);
        let mut listener = Listener::new(
            engines_for_listener,
            front,
            recognised_tx,
            tap.map(|tap| (tap, Alignment::new(setup.format))),
        );
        if setup.placed && engines.amd != Amd::Off {
            tracing::info!(amd = %engines.amd, "screening who answers before speaking");
            turns.screen_answer(engines.amd == Amd::LeaveMessage, now);
            listener.listen_for_tones();
        }
        Self {
            call_id: setup.call_id,
            turns,
            engines,
            recorder: Recorder::start(setup.call_id, db, out_tx.clone(), mask_stored_pii),
            out_tx,
            listener,
            format: setup.format,
            recognised_rx,
            jobs_tx: Some(jobs_tx),
            spoken_rx,
            played_rx,
            cancel_tx,
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
    async fn run(
        &mut self,
        audio: CallerAudio,
        mut signals: mpsc::Receiver<Inbound>,
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
                // Signals before anything else: a mark or a hang-up never waits behind audio.
                signal = signals.recv() => match signal {
                    // Which key is never logged: it may be part of a PIN.
                    Some(Inbound::Dtmf(key)) => Event::CallerKey(key),
                    // Audio and marks never come this way.
                    Some(Inbound::Audio(_) | Inbound::Mark(_)) => continue,
                    Some(Inbound::Hangup) | None => Event::Ended(EndReason::CallerHungUp),
                },
                // The speaker's word on a speech before playout's: the speaker tells its pieces and
                // outcome before it hands playout the speech's end, so a speech finished in playout
                // is recorded with all its words and sources.
                Some(spoken) = self.spoken_rx.recv() => match self.on_spoken(spoken).await {
                    Some(event) => event,
                    None => continue,
                },
                Some(played) = self.played_rx.recv() => match self.on_played(played).await {
                    Some(event) => event,
                    None => continue,
                },
                Some(recognised) = self.recognised_rx.recv() => match self.on_recognised(recognised) {
                    Some(event) => event,
                    None => continue,
                },
                Some(frame) = audio.next() => match self.on_audio(&frame) {
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

    /// Feeds one event to the machine and carries out its actions (and the events they cause); returns
    /// the end reason on hang-up.
    async fn handle(&mut self, event: Event) -> Option<EndReason> {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
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
                        keyed,
                    } => {
                        if keyed {
                            self.record_keys(&caller_text);
                        }
                        if !self.reply(speech, caller_text, continues, keyed) {
                            events.push_back(Event::ReplyFailed(speech));
                        }
                    }
                    Action::Cancel(speech) => {
                        self.speeches.cancel(speech);
                        if self.cancel_tx.try_send(speech).is_err() {
                            agent::overflow("cancels");
                        }
                    }
                    Action::AnsweredBy(by) => {
                        tracing::info!(answered_by = by.as_str(), "who answered the call");
                        metrics::counter!("switchboard_answered_by_total", "by" => by.as_str())
                            .increment(1);
                        self.recorder.answered_by(by);
                        // Only a message left on a machine still waits for its beep.
                        if by != AnsweredBy::Machine {
                            self.listener.stop_listening_for_tones();
                        }
                    }
                    // The hang-up goes out from `finish`, after the lines still in flight.
                    Action::Hangup(reason) => return Some(reason),
                }
            }
        }
        None
    }
}
