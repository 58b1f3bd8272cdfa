//! The agent's side of a turn: the conversation answers the caller's words, its text is cut into
//! sentences as it streams, each sentence is spoken (from the phrase cache when it is a fixed sentence,
//! else by the voice) on a blocking thread while the model goes on, and the audio is queued for playout.
//! A turn can be answered ahead, at the caller's pause, on a draft of the conversation; its words are
//! spoken only once the turn ends with the same words (`ReadAhead`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_agent::{Conversation, Passage, TurnOutcome};
use switchboard_audio::InputFormat;
use switchboard_speech::tts::{AudioChunk, PhraseCache, TextToSpeech, resample_for_file};
use switchboard_speech::{ChunkerOptions, SentenceChunker};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::machine::SpeechId;
use crate::playout::Queued;
use crate::voice_out::VoiceEncoder;

/// Silence between two sentences of an answer.
const SENTENCE_PAUSE: Duration = Duration::from_millis(150);

/// Work for the speaker, in the order the session asks for it.
#[derive(Debug)]
pub(crate) enum SpeakerJob {
    /// The caller went quiet after saying these words: answer them now on a draft of the conversation,
    /// while the end of the turn is being confirmed, and hold the answer's words until it is.
    ReadAhead(String),
    /// The caller went on after the pause: the words read ahead are not the turn.
    DropReadAhead,
    /// Answer a turn.
    Reply(ReplyJob),
    /// The caller cut this speech off, having heard these words of it (none: nothing).
    Cut { speech: SpeechId, heard: String },
}

/// A turn for the speaker.
#[derive(Debug)]
pub(crate) struct ReplyJob {
    pub speech: SpeechId,
    pub caller_text: String,
    /// `caller_text` takes on the previous turn, whose answer was cancelled: the conversation goes
    /// back to before that turn and answers the whole as one.
    pub continues: bool,
    /// `caller_text` is digits typed on the keypad.
    pub keyed: bool,
    pub cancel: CancellationToken,
    /// Said before the answer, in the agent's voice (that the recording stopped, as the caller asked).
    pub preface: Option<String>,
}

/// What the speaker tells the session.
#[derive(Debug)]
pub(crate) enum Spoken {
    /// The answer's first sentence is ready for the voice; `read_ahead` when the turn was read before
    /// its end was confirmed.
    FirstSentence {
        speech: SpeechId,
        at: Instant,
        read_ahead: bool,
    },
    /// The voice produced the answer's first audio.
    FirstChunk { speech: SpeechId, at: Instant },
    /// The answer is made from these passages of the company's documents (told before its first
    /// piece).
    Sources {
        speech: SpeechId,
        passages: Vec<Passage>,
    },
    /// Piece `index` of the answer says `text`.
    Piece {
        speech: SpeechId,
        index: u32,
        text: String,
    },
    /// The answer is generated and queued (or was cancelled part way).
    Done {
        speech: SpeechId,
        outcome: Box<TurnOutcome>,
    },
    /// Nothing could be said.
    Failed { speech: SpeechId, reason: String },
}

/// The voice, its cache and where audio goes: what sentence synthesis needs.
#[derive(Clone)]
pub(crate) struct Voice {
    pub tts: Arc<dyn TextToSpeech>,
    pub phrases: Arc<PhraseCache>,
    pub format: InputFormat,
    pub queue_tx: mpsc::Sender<Queued>,
}

/// A turn answered ahead, at the caller's pause, on a draft of the conversation: the model's work (the
/// reading of the words, and the answer when it is generated) starts before the end of the turn is
/// confirmed. Its words wait in `text_rx` until the turn is confirmed with the same words; dropping it
/// stops it (and with it the model). The words' queue is the one queue of the call left unbounded: it lives
/// inside the speaker, is filled from the model's callback (which cannot wait), and holds at most one
/// answer's text (the model's token limit).
struct ReadAhead {
    words: String,
    text_rx: mpsc::UnboundedReceiver<Drafted>,
    task: AbortOnDropHandle<(Conversation, TurnOutcome)>,
}

/// What a draft made, in order: the passages its answer is made from, and its text.
enum Drafted {
    Sources(Vec<Passage>),
    Text(String),
}

impl ReadAhead {
    fn start(conversation: &Conversation, words: String) -> Self {
        let mut draft = conversation.clone();
        let (text_tx, text_rx) = mpsc::unbounded_channel();
        let turn = words.clone();
        let answer = async move {
            let sources_tx = text_tx.clone();
            let outcome = draft
                .respond_citing(
                    &turn,
                    &mut |text: &str| {
                        let _ = text_tx.send(Drafted::Text(text.to_owned()));
                    },
                    &mut |passages: &[Passage]| {
                        let _ = sources_tx.send(Drafted::Sources(passages.to_vec()));
                    },
                )
                .await;
            (draft, outcome)
        };
        Self {
            words,
            text_rx,
            task: AbortOnDropHandle::new(tokio::spawn(answer.in_current_span())),
        }
    }

    /// Dropped unused: the caller went on, or the turn's words came out different.
    fn discard(self) {
        metrics::counter!("switchboard_read_ahead_total", "result" => "discarded").increment(1);
    }

    /// The turn is confirmed with these words: its text, as generated, then the draft that answered.
    /// If the draft's task failed (a panic), what it had said already, so as not to say it twice.
    async fn commit(
        mut self,
        on_text: &mut (dyn FnMut(&str) + Send),
        on_sources: &mut (dyn FnMut(&[Passage]) + Send),
    ) -> Result<(Conversation, TurnOutcome), String> {
        let mut said = String::new();
        while let Some(drafted) = self.text_rx.recv().await {
            match drafted {
                Drafted::Text(text) => {
                    said.push_str(&text);
                    on_text(&text);
                }
                Drafted::Sources(passages) => on_sources(&passages),
            }
        }
        self.task.await.map_err(|error| {
            tracing::error!(%error, "the turn answered ahead failed");
            said
        })
    }
}

/// Answers each job in turn until the jobs end; returns the conversation for the post-call synthesis.
pub(crate) async fn run(
    mut conversation: Conversation,
    voice: Voice,
    mut jobs_rx: mpsc::Receiver<SpeakerJob>,
    spoken_tx: mpsc::Sender<Spoken>,
) -> Conversation {
    let mut ahead: Option<ReadAhead> = None;
    // The conversation before the last turn answered, for a turn that takes it on.
    let mut before_last: Option<Conversation> = None;
    // The last answer made on the conversation: a cut tells it only about that one (not a phrase).
    let mut last_answer: Option<SpeechId> = None;
    while let Some(job) = jobs_rx.recv().await {
        let job = match job {
            SpeakerJob::ReadAhead(words) => {
                if ahead.as_ref().is_none_or(|a| a.words != words) {
                    if let Some(stale) = ahead.take() {
                        stale.discard();
                    }
                    // Drafted from the conversation as it is now: every answer before is done.
                    ahead = Some(ReadAhead::start(&conversation, words));
                }
                continue;
            }
            SpeakerJob::DropReadAhead => {
                if let Some(stale) = ahead.take() {
                    stale.discard();
                }
                continue;
            }
            SpeakerJob::Cut { speech, heard } => {
                if last_answer == Some(speech) {
                    conversation.answer_cut(&heard);
                    // A draft read on the conversation as it was would answer as if the question had
                    // been heard.
                    if let Some(stale) = ahead.take() {
                        stale.discard();
                    }
                }
                continue;
            }
            SpeakerJob::Reply(job) => job,
        };
        let ahead = match ahead.take() {
            // A draft reads the words on the conversation as it is; a turn taking on the last one
            // is answered on the conversation from before it.
            Some(draft) if draft.words == job.caller_text && !job.continues && !job.keyed => {
                Some(draft)
            }
            Some(other) => {
                other.discard();
                None
            }
            None => None,
        };
        if job.cancel.is_cancelled() {
            if let Some(unused) = ahead {
                unused.discard();
            }
            let _ = voice.queue_tx.send(Queued::End(job.speech)).await;
            // Never answered, so not in the conversation: a turn taking it on starts from here.
            before_last = Some(conversation.clone());
            continue;
        }
        if job.continues
            && let Some(before) = before_last.take()
        {
            conversation = before;
        }
        before_last = Some(conversation.clone());
        last_answer = Some(job.speech);
        let span = tracing::info_span!("agent_reply");
        reply(&mut conversation, &voice, job, ahead, &spoken_tx)
            .instrument(span)
            .await;
    }
    conversation
}

async fn reply(
    conversation: &mut Conversation,
    voice: &Voice,
    job: ReplyJob,
    ahead: Option<ReadAhead>,
    spoken_tx: &mpsc::Sender<Spoken>,
) {
    let speech = job.speech;
    // Sentences as the model completes them, with when, as many as the answer has; before them, the
    // passages the answer is made from.
    let (sentence_tx, sentence_rx) = std::sync::mpsc::channel::<ForVoice>();
    let synthesis = {
        let voice = voice.clone();
        let cancel = job.cancel.clone();
        let spoken_tx = spoken_tx.clone();
        let span = tracing::Span::current();
        let read_ahead = ahead.is_some();
        tokio::task::spawn_blocking(move || {
            let _call = span.enter();
            let out = Said {
                speech,
                read_ahead,
                spoken_tx,
            };
            speak_sentences(&voice, &out, sentence_rx, &cancel)
        })
    };

    let mut chunker = SentenceChunker::new(ChunkerOptions::default());
    let forward = |sentences: Vec<String>| {
        for sentence in sentences {
            if !sentence.chars().any(char::is_alphanumeric) {
                continue;
            }
            let _ = sentence_tx.send(ForVoice::Sentence(sentence, Instant::now()));
        }
    };
    let cite = |passages: &[Passage]| {
        let _ = sentence_tx.send(ForVoice::Sources(passages.to_vec()));
    };
    if let Some(preface) = &job.preface {
        forward(chunker.push(&format!("{preface} ")));
    }
    let outcome = {
        let mut on_text = |text: &str| forward(chunker.push(text));
        let mut on_sources = cite;
        let respond = async {
            if job.keyed {
                return conversation
                    .respond_keys(&job.caller_text, &mut on_text)
                    .await;
            }
            let Some(ahead) = ahead else {
                metrics::counter!("switchboard_read_ahead_total", "result" => "none").increment(1);
                return conversation
                    .respond_citing(&job.caller_text, &mut on_text, &mut on_sources)
                    .await;
            };
            metrics::counter!("switchboard_read_ahead_total", "result" => "used").increment(1);
            match ahead.commit(&mut on_text, &mut on_sources).await {
                Ok((draft, outcome)) => {
                    *conversation = draft;
                    outcome
                }
                // Nothing said yet: the turn is answered afresh.
                Err(said) if said.trim().is_empty() => {
                    conversation
                        .respond_citing(&job.caller_text, &mut on_text, &mut on_sources)
                        .await
                }
                Err(said) => TurnOutcome {
                    reply: said.trim().to_owned(),
                    llm_error: Some("the answer drafted at the pause failed part way".into()),
                    ..TurnOutcome::default()
                },
            }
        };
        tokio::select! {
            outcome = respond => Some(outcome),
            // Dropping the answer stops the model (a draft's too); the caller moved on.
            () = job.cancel.cancelled() => None,
        }
    };
    if outcome.is_some() {
        forward(chunker.finish().into_iter().collect());
    }
    drop(sentence_tx);
    let synthesized = match synthesis.await {
        Ok(result) => result,
        Err(e) => Err(format!("the voice thread failed: {e}")),
    };
    // The speech's outcome (its sources, the pieces' words) goes to the call before playout hears of
    // its end: the call reads its own queue first, so what the caller heard is recorded with them.
    match (outcome, synthesized) {
        (Some(outcome), Ok(pieces)) if pieces > 0 || job.cancel.is_cancelled() => {
            let _ = spoken_tx
                .send(Spoken::Done {
                    speech,
                    outcome: Box::new(outcome),
                })
                .await;
        }
        (Some(outcome), Ok(_)) => {
            let reason = outcome
                .llm_error
                .unwrap_or_else(|| "the answer had no words".into());
            let _ = spoken_tx.send(Spoken::Failed { speech, reason }).await;
        }
        (_, Err(reason)) => {
            let _ = spoken_tx.send(Spoken::Failed { speech, reason }).await;
        }
        (None, Ok(_)) => {}
    }
    let _ = voice.queue_tx.send(Queued::End(speech)).await;
}

/// Where a speech's progress goes, from the voice's thread (which waits for room).
struct Said {
    speech: SpeechId,
    /// The turn was read before its end was confirmed.
    read_ahead: bool,
    spoken_tx: mpsc::Sender<Spoken>,
}

impl Said {
    fn tell(&self, spoken: Spoken) {
        let _ = self.spoken_tx.blocking_send(spoken);
    }
}

/// What the voice's thread is handed for a speech.
enum ForVoice {
    /// The passages the answer is made from: passed on to the session before any piece.
    Sources(Vec<Passage>),
    /// A sentence to speak, and when it was complete.
    Sentence(String, Instant),
}

/// Speaks each sentence as it arrives; returns how many were spoken.
fn speak_sentences(
    voice: &Voice,
    out: &Said,
    sentences: std::sync::mpsc::Receiver<ForVoice>,
    cancel: &CancellationToken,
) -> Result<u32, String> {
    let speech = out.speech;
    let rate = voice.tts.info().sample_rate;
    let mut encoder = VoiceEncoder::new(rate, voice.format).map_err(|e| e.to_string())?;
    let mut index = 0u32;
    let mut first_chunk = true;
    while let Ok(next) = sentences.recv() {
        let (sentence, at) = match next {
            ForVoice::Sources(passages) => {
                out.tell(Spoken::Sources { speech, passages });
                continue;
            }
            ForVoice::Sentence(sentence, at) => (sentence, at),
        };
        if index == 0 {
            out.tell(Spoken::FirstSentence {
                speech,
                at,
                read_ahead: out.read_ahead,
            });
        }
        if cancel.is_cancelled() {
            break;
        }
        out.tell(Spoken::Piece {
            speech,
            index,
            text: sentence.clone(),
        });
        let mut failed = None;
        let mut emit = |samples: &[f32]| -> ControlFlow<()> {
            if cancel.is_cancelled() {
                return ControlFlow::Break(());
            }
            if first_chunk {
                first_chunk = false;
                out.tell(Spoken::FirstChunk {
                    speech,
                    at: Instant::now(),
                });
            }
            match encoder.push(samples) {
                Ok(frames) => queue(voice, speech, index, frames),
                Err(e) => {
                    failed = Some(e.to_string());
                    ControlFlow::Break(())
                }
            }
        };
        if index > 0 {
            let pause = vec![0.0; (SENTENCE_PAUSE.as_secs_f64() * f64::from(rate)) as usize];
            if emit(&pause).is_break() {
                break;
            }
        }
        if let Some(phrase) = voice.phrases.cached(voice.tts.as_ref(), &sentence) {
            let _ = emit(&phrase.samples);
        } else {
            let _stage = tracing::info_span!("tts_sentence", piece = index).entered();
            let result = voice.tts.synthesize(&sentence, &mut |chunk: AudioChunk| {
                if chunk.sample_rate == rate {
                    emit(&chunk.samples)
                } else {
                    emit(&resample_for_file(&chunk.samples, chunk.sample_rate, rate))
                }
            });
            if let Err(e) = result {
                tracing::warn!(error = %e, "the voice could not speak a sentence; skipping it");
                metrics::counter!("switchboard_errors_total", "kind" => "tts").increment(1);
            }
        }
        if let Some(reason) = failed {
            return Err(reason);
        }
        index += 1;
    }
    if !cancel.is_cancelled() && index > 0 {
        let frames = encoder.finish().map_err(|e| e.to_string())?;
        let _ = queue(voice, speech, index - 1, frames);
    }
    Ok(index)
}

fn queue(voice: &Voice, speech: SpeechId, piece: u32, frames: Vec<Vec<u8>>) -> ControlFlow<()> {
    for bytes in frames {
        let frame = Queued::Frame {
            speech,
            piece,
            bytes,
        };
        if voice.queue_tx.blocking_send(frame).is_err() {
            return ControlFlow::Break(());
        }
    }
    ControlFlow::Continue(())
}
