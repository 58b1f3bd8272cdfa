//! The agent's side of the session: fixed phrases queued from the cache, turns handed to the speaker, and
//! the speaker's and playout's reports turned into latencies, the machine's events and the record of what
//! the caller heard.

use std::time::Instant;

use switchboard_agent::Action as ToolAction;
use switchboard_core::Speaker;
use switchboard_store::TurnSource;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::Session;
use crate::latency::{ModelUse, TurnLatency};
use crate::machine::{EndReason, Event, SpeechId};
use crate::media::Outbound;
use crate::playout::{Played, Queued};
use crate::speaker::{ReplyJob, SpeakerJob, Spoken};
use crate::voice_out::VoiceEncoder;

impl Session {
    /// Queues a fixed phrase's audio from the cache (synthesised now only if the cache lost it).
    pub(super) async fn say(&mut self, speech: SpeechId, text: String) {
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
        // The end marker must arrive even if the queue was full, or the machine would wait forever; the
        // session does not wait for playout's room, so a full queue gets it from a task of its own.
        if let Err(mpsc::error::TrySendError::Full(end)) =
            self.queue_tx.try_send(Queued::End(speech))
        {
            let queue = self.queue_tx.clone();
            tokio::spawn(async move { queue.send(end).await }.in_current_span());
        }
    }

    /// Hands a turn to the speaker; false when it could not be (the reply failed).
    pub(super) fn reply(
        &mut self,
        speech: SpeechId,
        caller_text: String,
        continues: bool,
        keyed: bool,
    ) -> bool {
        let cancel = self.speeches.answer(speech);
        let preface = std::mem::take(&mut self.recording_stopped_unsaid)
            .then(|| "Understood: this call is no longer recorded.".to_owned());
        let queued = self.to_speaker(SpeakerJob::Reply(ReplyJob {
            speech,
            caller_text,
            continues,
            keyed,
            cancel,
            preface,
        }));
        if !queued {
            self.speeches.generated(speech);
        }
        queued
    }

    /// Hands the speaker a job, without waiting; false when there was no room (counted).
    pub(super) fn to_speaker(&self, job: SpeakerJob) -> bool {
        let Some(jobs) = &self.jobs_tx else {
            return false;
        };
        let queued = jobs.try_send(job).is_ok();
        if !queued {
            overflow("speaker jobs");
        }
        queued
    }

    /// The speaker's progress: timing for the latency, the pieces' words, the answer's outcome.
    pub(super) async fn on_spoken(&mut self, spoken: Spoken) -> Option<Event> {
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
            Spoken::Sources { speech, passages } => {
                self.speeches.cite(speech, sources_of(&passages));
                None
            }
            Spoken::Done { speech, outcome } => {
                self.speeches.generated(speech);
                // Told already when the answer was made from the documents before it began; a model's
                // own search (by its tool) is known only now.
                if !outcome.citations.is_empty() {
                    self.speeches.cite(speech, sources_of(&outcome.citations));
                }
                self.listener.expect_spelling(outcome.spelled_answer);
                let model = ModelUse {
                    wait: outcome.model_wait.as_secs_f64(),
                    generated: outcome.generated,
                };
                let latency = self.speeches.settled(speech, Some(model));
                report(&self.out_tx, latency).await;
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
                let latency = self.speeches.settled(speech, None);
                report(&self.out_tx, latency).await;
                tracing::error!(%reason, "no answer for the caller's turn");
                metrics::counter!("switchboard_errors_total", "kind" => "reply").increment(1);
                Some(Event::ReplyFailed(speech))
            }
        }
    }

    /// Playout's report: latency at first audio; at the end, the words actually heard are stored.
    pub(super) async fn on_played(&mut self, played: Played) -> Option<Event> {
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
                // An answer cut off before the speaker settled it is settled here.
                let latency = self.speeches.settled(speech, None);
                report(&self.out_tx, latency).await;
                let heard = self.record_heard(speech, pieces);
                if interrupted {
                    // The conversation learns how much of its answer was heard (its question, or not).
                    self.to_speaker(SpeakerJob::Cut {
                        speech,
                        heard: heard.unwrap_or_default(),
                    });
                }
                Some(Event::SpeechFinished(speech))
            }
        }
    }

    /// Playout's last word on a speech: what the caller heard of it goes to the record, and is returned.
    pub(super) fn record_heard(&mut self, speech: SpeechId, pieces: u32) -> Option<String> {
        let heard = self.speeches.finished(speech, pieces)?;
        self.recorder.record(
            Speaker::Agent,
            &heard.text,
            heard.started,
            Instant::now(),
            heard.sources,
        );
        Some(heard.text)
    }
}

/// Where passages of the company's documents come from, as a turn's record names them.
fn sources_of(passages: &[switchboard_agent::Passage]) -> Vec<TurnSource> {
    passages
        .iter()
        .map(|passage| TurnSource {
            document: passage.document.clone(),
            passage: passage.index,
        })
        .collect()
}

/// A queue of the call's own parts was full, which the turn machine's rules should make impossible.
pub(super) fn overflow(queue: &'static str) {
    tracing::error!(queue, "a queue of the call is full; its message is dropped");
    metrics::counter!("switchboard_errors_total", "kind" => "queue_full").increment(1);
}

/// Sends a turn's latency, once complete, to the transport. (A free function: a borrow of the whole
/// session held across the send would make the call's future need a `Sync` session.)
async fn report(out_tx: &mpsc::Sender<Outbound>, latency: Option<TurnLatency>) {
    if let Some(latency) = latency {
        let _ = out_tx.send(Outbound::Latency(latency)).await;
    }
}
