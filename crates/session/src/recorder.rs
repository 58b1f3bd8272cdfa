//! The call's record: every line of the transcript written to the database in order, off the call's
//! path, and announced only once it is stored; the post-call synthesis.
//!
//! The session numbers the lines itself, so a write retried after a lost answer can never store a line
//! twice (`Database::store_turn` is idempotent). A database that fails or hangs costs the record time,
//! not lines: each write is bounded by [`WRITE_TIMEOUT`] and retried with a growing pause until it
//! succeeds, while the call goes on and later lines wait behind it (at most [`BACKLOG`]). When the call
//! ends, the writer gets [`CLOSE_GRACE`] to store what is still waiting; a line lost after that is
//! logged and counted (`switchboard_turns_lost_total`).

use std::time::{Duration, Instant, SystemTime};

use switchboard_agent::{Conversation, Synthesis, mask_pii, synthesis_from_record, synthesize};
use switchboard_core::{CallId, Speaker};
use switchboard_store::{CallSummary, Database};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::engines::Engines;
use crate::media::{Outbound, TranscriptLine};

/// Lines that may wait for the database (a call says a few hundred in an hour).
const BACKLOG: usize = 1_024;
/// Longest a single write may take before it is given up and retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause before a retry; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the writer may go on after the call ends to store what is still waiting.
const CLOSE_GRACE: Duration = Duration::from_secs(30);
/// How long the hang-up waits for the lines before it to be stored and announced.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// What the writer is asked to do, in order.
#[derive(Debug)]
enum Job {
    Write(Line),
    /// Tell when every line before this one is stored and announced.
    Flush(oneshot::Sender<()>),
}

/// One line of the transcript, numbered by the session.
#[derive(Debug, Clone)]
struct Line {
    seq: i64,
    speaker: Speaker,
    text: String,
    started: SystemTime,
    ended: SystemTime,
}

/// The session's handle on its record.
#[derive(Debug)]
pub(crate) struct Recorder {
    call_id: CallId,
    db: Database,
    started: Instant,
    started_wall: SystemTime,
    next_seq: i64,
    /// `None` once closed.
    lines: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<i64>>,
    /// Lines refused because the backlog was full.
    refused: i64,
    /// Store lines with personal data masked.
    mask: bool,
}

impl Recorder {
    /// The database the record is written to.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Starts the writer of `call_id`'s lines; each is announced on `out_tx` once stored. With `mask`,
    /// lines are stored (and announced) with personal data masked.
    pub(crate) fn start(
        call_id: CallId,
        db: Database,
        out_tx: mpsc::Sender<Outbound>,
        mask: bool,
    ) -> Self {
        let (lines, rx) = mpsc::channel(BACKLOG);
        let writer = tokio::spawn(write_lines(call_id, db.clone(), rx, out_tx).in_current_span());
        Self {
            call_id,
            db,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            next_seq: 1,
            lines: Some(lines),
            writer: Some(writer),
            refused: 0,
            mask,
        }
    }

    /// Queues a line for writing; never waits. A line refused (the database has been away so long that
    /// the backlog is full) is logged and counted.
    pub(crate) fn record(
        &mut self,
        speaker: Speaker,
        text: &str,
        started: Instant,
        ended: Instant,
    ) {
        let wall = |at: Instant| self.started_wall + at.saturating_duration_since(self.started);
        let line = Line {
            seq: self.next_seq,
            speaker,
            text: if self.mask {
                mask_pii(text).into_owned()
            } else {
                text.to_owned()
            },
            started: wall(started),
            ended: wall(ended),
        };
        match self
            .lines
            .as_ref()
            .map(|lines| lines.try_send(Job::Write(line)))
        {
            Some(Ok(())) => self.next_seq += 1,
            _ => {
                self.refused += 1;
                tracing::error!(
                    backlog = BACKLOG,
                    "a transcript line is lost: the database has not taken a line for too long"
                );
                metrics::counter!("switchboard_turns_lost_total").increment(1);
            }
        }
    }

    /// Waits (at most [`FLUSH_WAIT`]) until every line recorded so far is stored and announced, so that
    /// what comes next on the transport (the hang-up) follows them.
    pub(crate) async fn flush(&self) {
        let Some(lines) = &self.lines else { return };
        let (done, stored) = oneshot::channel();
        let flushed = async {
            if lines.send(Job::Flush(done)).await.is_ok() {
                let _ = stored.await;
            }
        };
        if tokio::time::timeout(FLUSH_WAIT, flushed).await.is_err() {
            tracing::warn!(
                "the hang-up goes out before transcript lines the database has not taken yet"
            );
        }
    }

    /// Waits for the writer to store what is still waiting (at most [`CLOSE_GRACE`]); returns the
    /// lines lost.
    pub(crate) async fn close(&mut self) -> i64 {
        self.lines = None;
        let Some(mut writer) = self.writer.take() else {
            return 0;
        };
        let stored = match tokio::time::timeout(CLOSE_GRACE, &mut writer).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the transcript writer failed");
                0
            }
            Err(_) => {
                writer.abort();
                0
            }
        };
        let unstored = self.next_seq - 1 - stored;
        if unstored > 0 {
            tracing::error!(
                lost = unstored,
                grace_s = CLOSE_GRACE.as_secs(),
                "transcript lines not stored by the end of the call"
            );
            metrics::counter!("switchboard_turns_lost_total").increment(unstored as u64);
        }
        unstored + self.refused
    }

    /// The post-call synthesis from the stored transcript, saved with the claim. Call after
    /// [`Recorder::close`] (it reads the lines back).
    pub(crate) async fn synthesize(
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
        let from_record = || {
            synthesis_from_record(
                conversation.claim(),
                &engines.agent.claim_schema,
                conversation.actions(),
            )
        };
        let synthesis = if !caller_spoke {
            from_record()
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
                    from_record()
                }
            }
        };
        // The model saw the claim as well as the transcript: its prose is masked like the lines.
        let prose = |text: &str| {
            if self.mask {
                mask_pii(text).into_owned()
            } else {
                text.to_owned()
            }
        };
        let summary = CallSummary {
            claim: claim.to_string(),
            short_summary: prose(&synthesis.short_summary),
            long_summary: prose(&synthesis.long_summary),
            satisfaction: i64::from(synthesis.satisfaction),
            improvement: prose(&synthesis.improvement),
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

/// Writes lines in order, each until it is stored, and announces each once it is; returns how many
/// were stored.
async fn write_lines(
    call_id: CallId,
    db: Database,
    mut jobs: mpsc::Receiver<Job>,
    out_tx: mpsc::Sender<Outbound>,
) -> i64 {
    let mut stored = 0;
    while let Some(job) = jobs.recv().await {
        let line = match job {
            Job::Write(line) => line,
            Job::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        store(&db, call_id, &line).await;
        stored += 1;
        // The transport may be gone already (a line stored after the hang-up): nobody to tell.
        let _ = out_tx
            .send(Outbound::Transcript(TranscriptLine {
                speaker: line.speaker,
                text: line.text,
                is_final: true,
                seq: Some(line.seq),
            }))
            .await;
    }
    stored
}

/// Stores one line, retrying until the database takes it.
async fn store(db: &Database, call_id: CallId, line: &Line) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u32;
    loop {
        let attempt = tokio::time::timeout(
            WRITE_TIMEOUT,
            db.store_turn(
                call_id,
                line.seq,
                line.speaker,
                &line.text,
                line.started,
                line.ended,
            ),
        )
        .await;
        let error = match attempt {
            Ok(Ok(_)) => {
                if failures > 0 {
                    tracing::info!(
                        seq = line.seq,
                        failures,
                        "transcript line stored after retries"
                    );
                }
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
        };
        failures += 1;
        metrics::counter!("switchboard_errors_total", "kind" => "store").increment(1);
        // Said once loudly, then quietly while it lasts.
        if failures == 1 {
            tracing::error!(seq = line.seq, %error, "cannot store a transcript line; retrying until the database takes it");
        } else {
            tracing::debug!(seq = line.seq, failures, %error, "transcript line still not stored");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::CallDirection;
    use switchboard_core::config::DatabaseTarget;
    use switchboard_store::NewCall;

    use super::*;

    #[tokio::test]
    async fn lines_the_database_refuses_are_retried_until_stored_in_order_and_announced_after() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.path().join("calls.db"),
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        // The call's row is not there yet: every write fails (foreign key) until it is.
        let call_id = CallId::new();
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let mut recorder = Recorder::start(call_id, db.clone(), out_tx, true);
        let now = Instant::now();
        recorder.record(Speaker::Agent, "Hello, how can I help?", now, now);
        recorder.record(Speaker::Caller, "My car was hit.", now, now);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            out_rx.try_recv().is_err(),
            "nothing is announced before it is stored"
        );
        db.insert_call(&NewCall {
            id: call_id,
            direction: CallDirection::Inbound,
            from_number: None,
            to_number: None,
            started_at: SystemTime::now(),
            status: "active",
            context: None,
        })
        .await
        .unwrap();
        recorder.flush().await;
        let announced: Vec<Option<i64>> = std::iter::from_fn(|| match out_rx.try_recv() {
            Ok(Outbound::Transcript(line)) => Some(line.seq),
            _ => None,
        })
        .collect();
        assert_eq!(announced, vec![Some(1), Some(2)]);
        assert_eq!(recorder.close().await, 0, "nothing lost");
        let turns = db.turns(call_id).await.unwrap();
        let stored: Vec<(i64, &str)> = turns.iter().map(|t| (t.seq, t.text.as_str())).collect();
        assert_eq!(
            stored,
            vec![(1, "Hello, how can I help?"), (2, "My car was hit.")]
        );
    }
}
