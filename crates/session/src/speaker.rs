//! The agent's side of a turn: the conversation answers the caller's words, its text is cut into
//! sentences as it streams, each sentence is spoken (from the phrase cache when it is a fixed sentence,
//! else by the voice) on a blocking thread while the model goes on, and the audio is queued for playout.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_agent::{Conversation, TurnOutcome};
use switchboard_audio::InputFormat;
use switchboard_speech::tts::{AudioChunk, PhraseCache, TextToSpeech, resample_for_file};
use switchboard_speech::{ChunkerOptions, SentenceChunker};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::machine::SpeechId;
use crate::playout::Queued;
use crate::voice_out::VoiceEncoder;

/// Silence between two sentences of an answer.
const SENTENCE_PAUSE: Duration = Duration::from_millis(150);

/// A turn for the speaker.
#[derive(Debug)]
pub(crate) struct ReplyJob {
    pub speech: SpeechId,
    pub caller_text: String,
    pub cancel: CancellationToken,
}

/// What the speaker tells the session.
#[derive(Debug)]
pub(crate) enum Spoken {
    /// The answer's first sentence is ready for the voice.
    FirstSentence { speech: SpeechId, at: Instant },
    /// The voice produced the answer's first audio.
    FirstChunk { speech: SpeechId, at: Instant },
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

/// Answers each job in turn until the jobs end; returns the conversation for the post-call synthesis.
pub(crate) async fn run(
    mut conversation: Conversation,
    voice: Voice,
    mut jobs_rx: mpsc::UnboundedReceiver<ReplyJob>,
    spoken_tx: mpsc::UnboundedSender<Spoken>,
) -> Conversation {
    while let Some(job) = jobs_rx.recv().await {
        if job.cancel.is_cancelled() {
            let _ = voice.queue_tx.send(Queued::End(job.speech)).await;
            continue;
        }
        let span = tracing::info_span!("agent_reply");
        reply(&mut conversation, &voice, job, &spoken_tx)
            .instrument(span)
            .await;
    }
    conversation
}

async fn reply(
    conversation: &mut Conversation,
    voice: &Voice,
    job: ReplyJob,
    spoken_tx: &mpsc::UnboundedSender<Spoken>,
) {
    let speech = job.speech;
    let (sentence_tx, sentence_rx) = std::sync::mpsc::channel::<String>();
    let synthesis = {
        let voice = voice.clone();
        let cancel = job.cancel.clone();
        let spoken_tx = spoken_tx.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _call = span.enter();
            speak_sentences(&voice, speech, sentence_rx, &cancel, &spoken_tx)
        })
    };

    let mut chunker = SentenceChunker::new(ChunkerOptions::default());
    let mut first = true;
    let mut forward = |sentences: Vec<String>| {
        for sentence in sentences {
            if !sentence.chars().any(char::is_alphanumeric) {
                continue;
            }
            if first {
                first = false;
                let _ = spoken_tx.send(Spoken::FirstSentence {
                    speech,
                    at: Instant::now(),
                });
            }
            let _ = sentence_tx.send(sentence);
        }
    };
    let outcome = {
        let mut on_text = |text: &str| forward(chunker.push(text));
        tokio::select! {
            outcome = conversation.respond(&job.caller_text, &mut on_text) => Some(outcome),
            // Dropping the answer stops the model; the caller moved on.
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
    let _ = voice.queue_tx.send(Queued::End(speech)).await;
    match (outcome, synthesized) {
        (Some(outcome), Ok(pieces)) if pieces > 0 || job.cancel.is_cancelled() => {
            let _ = spoken_tx.send(Spoken::Done {
                speech,
                outcome: Box::new(outcome),
            });
        }
        (Some(outcome), Ok(_)) => {
            let _ = spoken_tx.send(Spoken::Failed {
                speech,
                reason: outcome
                    .llm_error
                    .unwrap_or_else(|| "the answer had no words".into()),
            });
        }
        (_, Err(reason)) => {
            let _ = spoken_tx.send(Spoken::Failed { speech, reason });
        }
        (None, Ok(_)) => {}
    }
}

/// Speaks each sentence as it arrives; returns how many were spoken.
fn speak_sentences(
    voice: &Voice,
    speech: SpeechId,
    sentences: std::sync::mpsc::Receiver<String>,
    cancel: &CancellationToken,
    spoken_tx: &mpsc::UnboundedSender<Spoken>,
) -> Result<u32, String> {
    let rate = voice.tts.info().sample_rate;
    let mut encoder = VoiceEncoder::new(rate, voice.format).map_err(|e| e.to_string())?;
    let mut index = 0u32;
    let mut first_chunk = true;
    while let Ok(sentence) = sentences.recv() {
        if cancel.is_cancelled() {
            break;
        }
        let _ = spoken_tx.send(Spoken::Piece {
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
                let _ = spoken_tx.send(Spoken::FirstChunk {
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
