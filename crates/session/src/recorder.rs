//! The call's record: every line of the transcript written to the database in order, off the call's
//! path, and announced only once it is stored; the post-call synthesis.
//!
//! The session numbers the lines itself, so a write retried after a lost answer can never store a line
//! twice (`Database::store_turn` is idempotent). A database that fails or hangs costs the record time,
//! not lines: each write is bounded by [`WRITE_TIMEOUT`] and retried with a growing pause until it
//! succeeds, while the call goes on and later lines wait behind it (at most [`BACKLOG`]; a line beyond
//! that waits in memory for the end of the call). When the call ends, the writer gets [`CLOSE_GRACE`] to
//! store what is still waiting; what it could not store, and an end or synthesis the database did not
//! take, go to the node's spool on disk (`Database::spool_call`), written when the database is back. A
//! line is lost only when the spool refuses it too (full, or the disk failing): that is logged and
//! counted (`switchboard_turns_lost_total`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use switchboard_agent::{Conversation, Synthesis, mask_pii, synthesis_from_record, synthesize};
use switchboard_core::{CallId, Speaker};
use switchboard_store::{CallSummary, Database, SpooledCall, SpooledEnd, SpooledLine, TurnSource};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::engines::Engines;
use crate::machine::AnsweredBy;
use crate::media::{Outbound, TranscriptLine};

/// Lines that may wait for the database (a call says a few hundred in an hour).
const BACKLOG: usize = 1_024;
/// Longest a single write may take before it is given up and retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause before a retry; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the writer may go on after the call ends to store what is still waiting, before the rest
/// goes to the spool.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
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
    /// For an answer from the company's documents: its passages.
    sources: Vec<TurnSource>,
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
    writer: Option<JoinHandle<()>>,
    /// Every line of the call, as recorded: the synthesis reads them, and what the database did not
    /// store goes to the spool from here.
    kept: Vec<Line>,
    /// The numbers of the lines the database has stored.
    stored: Arc<Mutex<BTreeSet<i64>>>,
    /// Store lines with personal data masked.
    mask: bool,
    /// [`CLOSE_GRACE`], shorter in tests.
    close_grace: Duration,
}

impl Recorder {
    /// Starts the writer of `call_id`'s lines; each is announced on `out_tx` once stored. With `mask`,
    /// lines are stored (and announced) with personal data masked.
    pub(crate) fn start(
        call_id: CallId,
        db: Database,
        out_tx: mpsc::Sender<Outbound>,
        mask: bool,
    ) -> Self {
        let (lines, rx) = mpsc::channel(BACKLOG);
        let stored = Arc::new(Mutex::new(BTreeSet::new()));
        let writer = tokio::spawn(
            write_lines(call_id, db.clone(), rx, out_tx, stored.clone()).in_current_span(),
        );
        Self {
            call_id,
            db,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            next_seq: 1,
            lines: Some(lines),
            writer: Some(writer),
            kept: Vec::new(),
            stored,
            mask,
            close_grace: CLOSE_GRACE,
        }
    }

    /// Queues a line for writing; never waits. A line beyond the backlog (the database has been away so
    /// long that it is full) waits for the end of the call, and the spool.
    pub(crate) fn record(
        &mut self,
        speaker: Speaker,
        text: &str,
        started: Instant,
        ended: Instant,
        sources: Vec<TurnSource>,
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
            sources,
        };
        self.next_seq += 1;
        self.kept.push(line.clone());
        let queued = self
            .lines
            .as_ref()
            .is_some_and(|lines| lines.try_send(Job::Write(line)).is_ok());
        if !queued {
            tracing::warn!(
                backlog = BACKLOG,
                "the database has not taken a line for too long: this one waits for the spool"
            );
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

    /// Waits for the writer to store what is still waiting (at most [`CLOSE_GRACE`]), then puts the
    /// lines it did not store in the spool; returns the lines lost (the spool refused them too).
    pub(crate) async fn close(&mut self) -> i64 {
        self.lines = None;
        if let Some(mut writer) = self.writer.take()
            && tokio::time::timeout(self.close_grace, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
            let _ = writer.await;
        }
        let unstored: Vec<SpooledLine> = {
            let stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
            self.kept
                .iter()
                .filter(|line| !stored.contains(&line.seq))
                .map(|line| {
                    SpooledLine::new(
                        line.seq,
                        line.speaker,
                        line.text.clone(),
                        line.started,
                        line.ended,
                    )
                    .with_sources(line.sources.clone())
                })
                .collect()
        };
        if unstored.is_empty() {
            return 0;
        }
        let count = unstored.len() as i64;
        let spooled = SpooledCall {
            lines: unstored,
            ..SpooledCall::default()
        };
        match self.db.spool_call(self.call_id, spooled).await {
            Ok(()) => {
                tracing::warn!(
                    lines = count,
                    "transcript lines the database did not take are in the spool until it does"
                );
                metrics::counter!("switchboard_turns_spooled_total").increment(count as u64);
                0
            }
            Err(e) => {
                tracing::error!(lost = count, error = %e, "transcript lines lost: neither the database nor the spool took them");
                metrics::counter!("switchboard_turns_lost_total").increment(count as u64);
                count
            }
        }
    }

    /// Stores who answered a call the agent placed, without holding the call; spooled when the
    /// database does not take it in time.
    pub(crate) fn answered_by(&self, by: AnsweredBy) {
        let (db, call_id) = (self.db.clone(), self.call_id);
        tokio::spawn(
            async move {
                let error = match tokio::time::timeout(
                    WRITE_TIMEOUT,
                    db.set_answered_by(call_id, by.as_str()),
                )
                .await
                {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
                };
                let spooled = SpooledCall {
                    answered_by: Some(by.as_str().to_owned()),
                    ..SpooledCall::default()
                };
                match db.spool_call(call_id, spooled).await {
                    Ok(()) => tracing::warn!(%error, "who answered waits in the spool"),
                    Err(e) => {
                        tracing::error!(%error, spool = %e, "who answered is not recorded")
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// Stores the end of the call, or spools it when the database does not take it in time.
    pub(crate) async fn end(&self, reason: &str) {
        let at = SystemTime::now();
        match tokio::time::timeout(WRITE_TIMEOUT, self.db.end_call(self.call_id, at, reason)).await
        {
            Ok(Ok(_)) => {}
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
                };
                let spooled = SpooledCall {
                    end: Some(SpooledEnd::new(at, reason)),
                    ..SpooledCall::default()
                };
                match self.db.spool_call(self.call_id, spooled).await {
                    Ok(()) => tracing::warn!(%error, "the end of the call waits in the spool"),
                    Err(e) => {
                        tracing::error!(%error, spool = %e, "the end of the call is not recorded")
                    }
                }
            }
        }
    }

    /// The post-call synthesis from the call's transcript, saved with the claim (or spooled when the
    /// database does not take it).
    pub(crate) async fn synthesize(
        &self,
        engines: &Engines,
        conversation: &Conversation,
        claim: &serde_json::Value,
    ) -> Option<Synthesis> {
        let transcript: Vec<(String, String)> = self
            .kept
            .iter()
            .map(|line| (line.speaker.as_str().to_owned(), line.text.clone()))
            .collect();
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
        let saved =
            tokio::time::timeout(WRITE_TIMEOUT, self.db.save_summary(self.call_id, &summary)).await;
        if !matches!(saved, Ok(Ok(()))) {
            let spooled = SpooledCall {
                summary: Some(summary),
                ..SpooledCall::default()
            };
            match self.db.spool_call(self.call_id, spooled).await {
                Ok(()) => tracing::warn!("the synthesis waits in the spool for the database"),
                Err(e) => tracing::error!(error = %e, "the synthesis is not stored"),
            }
        }
        Some(synthesis)
    }
}

/// Writes lines in order, each until it is stored, notes each in `stored`, and announces each once it
/// is.
async fn write_lines(
    call_id: CallId,
    db: Database,
    mut jobs: mpsc::Receiver<Job>,
    out_tx: mpsc::Sender<Outbound>,
    stored: Arc<Mutex<BTreeSet<i64>>>,
) {
    while let Some(job) = jobs.recv().await {
        let line = match job {
            Job::Write(line) => line,
            Job::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        store(&db, call_id, &line).await;
        stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(line.seq);
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
}

/// Stores one line, retrying until the database takes it.
async fn store(db: &Database, call_id: CallId, line: &Line) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u32;
    loop {
        let attempt = tokio::time::timeout(
            WRITE_TIMEOUT,
            db.store_turn_from(
                call_id,
                line.seq,
                line.speaker,
                &line.text,
                (line.started, line.ended),
                &line.sources,
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

    /// Records a line said now, from no documents.
    fn line(recorder: &mut Recorder, speaker: Speaker, text: &str) {
        let now = Instant::now();
        recorder.record(speaker, text, now, now, Vec::new());
    }

    use super::*;

    #[tokio::test]
    async fn lines_and_the_end_the_database_does_not_take_before_the_call_ends_wait_in_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path())
            .await
            .with_spool(dir.path().join("spool"));
        // The call's row is not there: no line can be stored while the call lasts.
        let call_id = CallId::new();
        let (out_tx, _out_rx) = mpsc::channel(16);
        let mut recorder = Recorder::start(call_id, db.clone(), out_tx, true);
        recorder.close_grace = Duration::from_millis(300);
        line(&mut recorder, Speaker::Agent, "Hello, how can I help?");
        line(
            &mut recorder,
            Speaker::Caller,
            "My card is 4111 1111 1111 1111.",
        );
        assert_eq!(recorder.close().await, 0, "nothing lost: spooled");
        assert_eq!(db.spooled_calls(), 1);
        // The record comes back; the node's next pass writes the lines, masked as the call stored them.
        insert_call(&db, call_id).await;
        let drained = db.drain_spool().await.unwrap();
        assert_eq!((drained.calls, drained.lines), (1, 2));
        let turns = db.turns(call_id).await.unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].text, "Hello, how can I help?");
        assert!(!turns[1].text.contains("4111 1111"), "{}", turns[1].text);
        recorder.end("caller_hangup").await;
        let call = db.call(call_id).await.unwrap().unwrap();
        assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
        assert_eq!(db.spooled_calls(), 0);
    }

    #[tokio::test]
    async fn who_answered_a_placed_call_waits_in_the_spool_while_the_database_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let db = sqlite(dir.path()).await.with_spool(spool.clone());
        let call_id = CallId::new();
        insert_call(&db, call_id).await;
        let (out_tx, _out_rx) = mpsc::channel(16);
        let recorder = Recorder::start(call_id, db.clone(), out_tx, true);
        db.close().await;
        recorder.answered_by(AnsweredBy::Machine);
        tokio::time::timeout(Duration::from_secs(10), async {
            while db.spooled_calls() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("spooled within the write timeout");
        // The database is back (the node reconnects): its next pass writes the verdict.
        let back = sqlite(dir.path()).await.with_spool(spool);
        let drained = back.drain_spool().await.unwrap();
        assert_eq!(drained.calls, 1);
        let call = back.call(call_id).await.unwrap().unwrap();
        assert_eq!(call.answered_by.as_deref(), Some("machine"));
    }

    /// A migrated SQLite database in `dir`.
    async fn sqlite(dir: &std::path::Path) -> Database {
        let db = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.join("calls.db"),
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        db
    }

    async fn insert_call(db: &Database, id: CallId) {
        db.insert_call(&NewCall {
            id,
            direction: CallDirection::Inbound,
            from_number: None,
            to_number: None,
            started_at: SystemTime::now(),
            status: "active",
            context: None,
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn lines_the_database_refuses_are_retried_until_stored_in_order_and_announced_after() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        // The call's row is not there yet: every write fails (foreign key) until it is.
        let call_id = CallId::new();
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let mut recorder = Recorder::start(call_id, db.clone(), out_tx, true);
        line(&mut recorder, Speaker::Agent, "Hello, how can I help?");
        line(&mut recorder, Speaker::Caller, "My car was hit.");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            out_rx.try_recv().is_err(),
            "nothing is announced before it is stored"
        );
        insert_call(&db, call_id).await;
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
