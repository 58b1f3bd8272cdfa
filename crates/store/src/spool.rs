//! The node's spool: what a call could not write to the database before it ended (transcript lines, who
//! answered a placed call, the end, the synthesis), kept on disk in `DATA_DIR/spool` and written when the database is back.
//!
//! One file per call, written whole to a temporary name, synced, then renamed, so a crash leaves either
//! the old file or the new one. With `DATA_KEY_FILE` the file is sealed like the claims are (AES-256-GCM,
//! bound to the call), so callers' words are never readable on disk. Writing a spooled call again
//! stores nothing twice: lines are numbered (`store_turn` skips a number already stored), the end is
//! written only to a call not yet ended, and the synthesis replaces itself. The spool holds at most
//! [`MAX_BYTES`]; a call that does not fit is refused and its loss counted by the caller.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use switchboard_core::{CallId, Speaker};

use crate::calls::{TurnSource, millis, time};
use crate::{CallSummary, DataKeys, Database, StoreError};

/// Most bytes the spool may hold (about a million transcript lines).
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Longest one spooled call may take to write before the pass gives up until the next.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One transcript line as the session numbered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledLine {
    /// The line's number in its call, from 1.
    pub seq: i64,
    /// Who said it.
    pub speaker: Speaker,
    /// What was said (masked as the record is).
    pub text: String,
    /// When it began, ms since the epoch.
    started_ms: i64,
    /// When it ended, ms since the epoch.
    ended_ms: i64,
    /// The documents an answer was made from (absent from lines spooled by earlier builds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TurnSource>,
}

impl SpooledLine {
    /// A line said between `started` and `ended`.
    pub fn new(
        seq: i64,
        speaker: Speaker,
        text: String,
        started: SystemTime,
        ended: SystemTime,
    ) -> Self {
        Self {
            seq,
            speaker,
            text,
            started_ms: millis(started),
            ended_ms: millis(ended),
            sources: Vec::new(),
        }
    }

    /// The same line, answered from these passages.
    pub fn with_sources(mut self, sources: Vec<TurnSource>) -> Self {
        self.sources = sources;
        self
    }
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledEnd {
    at_ms: i64,
    /// The end reason, as `end_call` takes it.
    pub reason: String,
}

impl SpooledEnd {
    /// Ended at `at` for `reason`.
    pub fn new(at: SystemTime, reason: &str) -> Self {
        Self {
            at_ms: millis(at),
            reason: reason.to_owned(),
        }
    }
}

/// What one call still owes the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpooledCall {
    /// Transcript lines not stored, in order.
    pub lines: Vec<SpooledLine>,
    /// The end of the call, when it was not stored.
    pub end: Option<SpooledEnd>,
    /// The claim and synthesis, when they were not stored.
    pub summary: Option<CallSummary>,
    /// Who answered a call the agent placed (`human`, `machine`, `unknown`), when it was not stored
    /// (absent from calls spooled by earlier builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
}

impl SpooledCall {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
            && self.end.is_none()
            && self.summary.is_none()
            && self.answered_by.is_none()
    }

    /// `later` added: lines by number (a line already here is kept); the end, the synthesis and who
    /// answered replaced.
    fn merge(&mut self, later: SpooledCall) {
        for line in later.lines {
            if !self.lines.iter().any(|l| l.seq == line.seq) {
                self.lines.push(line);
            }
        }
        self.lines.sort_by_key(|l| l.seq);
        if later.end.is_some() {
            self.end = later.end;
        }
        if later.summary.is_some() {
            self.summary = later.summary;
        }
        if later.answered_by.is_some() {
            self.answered_by = later.answered_by;
        }
    }
}

/// What one pass over the spool wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Calls written in full (their files removed).
    pub calls: usize,
    /// Transcript lines among them.
    pub lines: usize,
    /// Calls still waiting (the database is away, or refused them).
    pub waiting: usize,
}

/// The spool directory and the keys that seal it.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    /// One pass or write at a time.
    busy: tokio::sync::Mutex<()>,
}

/// What a spool file is bound to when sealed.
fn bound_to(call: CallId) -> String {
    format!("spool:{call}")
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Spool {
        path: path.display().to_string(),
        source,
    }
}

impl Spool {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    fn file(&self, call: CallId) -> PathBuf {
        self.dir.join(format!("{call}.spool"))
    }

    /// The calls in the spool, by file.
    fn entries(&self) -> Result<Vec<(CallId, PathBuf, u64)>, StoreError> {
        let listing = match std::fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.dir)(e)),
        };
        let mut calls = Vec::new();
        for entry in listing.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "spool") {
                continue;
            }
            let Some(call) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            calls.push((call, path, size));
        }
        Ok(calls)
    }

    fn read(
        &self,
        keys: Option<&DataKeys>,
        call: CallId,
        path: &Path,
    ) -> Result<SpooledCall, StoreError> {
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        let plain = match keys {
            Some(keys) if bytes.starts_with(crate::sealed::PREFIX.as_bytes()) => keys
                .open_bytes(&bytes, &bound_to(call))
                .map_err(|e| crate::calls::corrupt("spooled call", e))?,
            _ => bytes,
        };
        serde_json::from_slice(&plain).map_err(|e| crate::calls::corrupt("spooled call", e))
    }

    fn write(
        &self,
        keys: Option<&DataKeys>,
        call: CallId,
        spooled: &SpooledCall,
    ) -> Result<(), StoreError> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let plain =
            serde_json::to_vec(spooled).map_err(|e| crate::calls::corrupt("spooled call", e))?;
        let bytes = match keys {
            Some(keys) => keys
                .seal_bytes(&plain, &bound_to(call))
                .map_err(|e| crate::calls::corrupt("spooled call", e))?,
            None => plain,
        };
        let path = self.file(call);
        let held: u64 = self
            .entries()?
            .iter()
            .filter(|(c, _, _)| *c != call)
            .map(|(_, _, size)| size)
            .sum();
        if held + bytes.len() as u64 > MAX_BYTES {
            return Err(StoreError::SpoolFull {
                dir: self.dir.display().to_string(),
                max_bytes: MAX_BYTES,
            });
        }
        let temporary = path.with_extension("part");
        let mut file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(&bytes).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
        Ok(())
    }
}

impl Database {
    /// This database, keeping what a call cannot write to it in `dir` until it can (see [`Database::spool_call`]).
    pub fn with_spool(mut self, dir: PathBuf) -> Self {
        self.spool = Some(Arc::new(Spool::new(dir)));
        self
    }

    /// Keeps what `call` could not write, to be written by [`Database::drain_spool`]; added to what the
    /// spool already holds for it. Fails when no spool is configured, the disk refuses, or the spool is
    /// full.
    pub async fn spool_call(&self, call: CallId, spooled: SpooledCall) -> Result<(), StoreError> {
        let Some(spool) = &self.spool else {
            return Err(StoreError::NoSpool);
        };
        if spooled.is_empty() {
            return Ok(());
        }
        let _busy = spool.busy.lock().await;
        let path = spool.file(call);
        let mut all = if path.exists() {
            spool.read(self.keys.as_deref(), call, &path)?
        } else {
            SpooledCall::default()
        };
        all.merge(spooled);
        spool.write(self.keys.as_deref(), call, &all)
    }

    /// How many calls wait in the spool.
    pub fn spooled_calls(&self) -> usize {
        self.spool
            .as_ref()
            .and_then(|s| s.entries().ok())
            .map_or(0, |e| e.len())
    }

    /// Writes every spooled call the database takes, in line order, and removes its file; a call the
    /// database cannot take yet stays for the next pass. A spooled call whose record was erased meanwhile
    /// is dropped.
    pub async fn drain_spool(&self) -> Result<Drained, StoreError> {
        let Some(spool) = &self.spool else {
            return Ok(Drained::default());
        };
        let _busy = spool.busy.lock().await;
        let mut drained = Drained::default();
        let entries = spool.entries()?;
        let total = entries.len();
        for (done, (call, path, _)) in entries.into_iter().enumerate() {
            let spooled = match spool.read(self.keys.as_deref(), call, &path) {
                Ok(spooled) => spooled,
                Err(e) => {
                    tracing::error!(%call, error = %e, "a spooled call cannot be read; it stays in the spool");
                    drained.waiting += 1;
                    continue;
                }
            };
            let written = tokio::time::timeout(WRITE_TIMEOUT, self.write_spooled(call, &spooled))
                .await
                .unwrap_or(Err(StoreError::Timeout {
                    operation: "writing a spooled call",
                }));
            match written {
                Ok(()) => {
                    std::fs::remove_file(&path).map_err(io_error(&path))?;
                    drained.calls += 1;
                    drained.lines += spooled.lines.len();
                }
                // The database is away: the calls after this one would fail the same way.
                Err(e) if e.is_retryable() => {
                    drained.waiting += total - done;
                    return Ok(drained);
                }
                Err(e) => match self.call(call).await {
                    Ok(None) => {
                        tracing::warn!(%call, "a spooled call's record was erased; its spooled lines are dropped");
                        std::fs::remove_file(&path).map_err(io_error(&path))?;
                    }
                    _ => {
                        tracing::error!(%call, error = %e, "the database refused a spooled call; it stays in the spool");
                        drained.waiting += 1;
                    }
                },
            }
        }
        Ok(drained)
    }

    async fn write_spooled(&self, call: CallId, spooled: &SpooledCall) -> Result<(), StoreError> {
        for line in &spooled.lines {
            self.store_turn_from(
                call,
                line.seq,
                line.speaker,
                &line.text,
                (time(line.started_ms), time(line.ended_ms)),
                &line.sources,
            )
            .await?;
        }
        if let Some(by) = &spooled.answered_by {
            self.set_answered_by(call, by).await?;
        }
        if let Some(end) = &spooled.end {
            self.end_call(call, time(end.at_ms), &end.reason).await?;
        }
        if let Some(summary) = &spooled.summary {
            self.save_summary(call, summary).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::CallDirection;
    use switchboard_core::config::DatabaseTarget;

    use super::*;
    use crate::NewCall;

    async fn database(dir: &Path, keys: bool) -> Database {
        let db = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.join("calls.db"),
        })
        .await
        .unwrap()
        .with_spool(dir.join("spool"));
        db.migrate().await.unwrap();
        if keys {
            let line = crate::new_key_line("k1").unwrap();
            db.with_data_keys(Arc::new(DataKeys::parse(&line).unwrap()))
        } else {
            db
        }
    }

    async fn insert(db: &Database, id: CallId) {
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

    fn line(seq: i64, text: &str) -> SpooledLine {
        let now = SystemTime::now();
        SpooledLine::new(seq, Speaker::Caller, text.to_owned(), now, now)
    }

    #[tokio::test]
    async fn a_spooled_call_waits_until_its_record_can_take_it_then_is_written_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path(), true).await;
        let call = CallId::new();
        // Line 1 reached the database during the call; 2 and 3 did not, then the end did not either.
        db.spool_call(
            call,
            SpooledCall {
                lines: vec![line(2, "it was a red Honda"), line(3, "goodbye")],
                ..SpooledCall::default()
            },
        )
        .await
        .unwrap();
        db.spool_call(
            call,
            SpooledCall {
                lines: vec![line(3, "goodbye")],
                end: Some(SpooledEnd::new(SystemTime::now(), "caller_hangup")),
                ..SpooledCall::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(db.spooled_calls(), 1);
        // Sealed on disk: the caller's words cannot be read from the file.
        let file = std::fs::read(dir.path().join("spool").join(format!("{call}.spool"))).unwrap();
        assert!(!String::from_utf8_lossy(&file).contains("Honda"));

        // The call has no record (erased while its lines waited): the database refuses the lines, and the
        // spooled call is dropped rather than kept for ever.
        let waiting = db.drain_spool().await.unwrap();
        assert_eq!(
            waiting,
            Drained {
                calls: 0,
                lines: 0,
                waiting: 0
            },
            "a call without a record is dropped as erased"
        );
        assert_eq!(db.spooled_calls(), 0);

        let call = CallId::new();
        insert(&db, call).await;
        db.store_turn(
            call,
            1,
            Speaker::Agent,
            "How can I help?",
            SystemTime::now(),
            SystemTime::now(),
        )
        .await
        .unwrap();
        db.spool_call(
            call,
            SpooledCall {
                lines: vec![
                    line(1, "How can I help?"),
                    line(2, "it was a red Honda"),
                    line(3, "Collisions are covered.").with_sources(vec![TurnSource {
                        document: "car-policy.md".into(),
                        passage: 2,
                    }]),
                ],
                end: Some(SpooledEnd::new(SystemTime::now(), "caller_hangup")),
                ..SpooledCall::default()
            },
        )
        .await
        .unwrap();
        // Who answered came later, and alone.
        db.spool_call(
            call,
            SpooledCall {
                answered_by: Some("machine".into()),
                ..SpooledCall::default()
            },
        )
        .await
        .unwrap();
        let drained = db.drain_spool().await.unwrap();
        assert_eq!(
            drained,
            Drained {
                calls: 1,
                lines: 3,
                waiting: 0
            }
        );
        assert_eq!(db.spooled_calls(), 0);
        let turns = db.turns(call).await.unwrap();
        let stored: Vec<(i64, &str)> = turns.iter().map(|t| (t.seq, t.text.as_str())).collect();
        assert_eq!(
            stored,
            vec![
                (1, "How can I help?"),
                (2, "it was a red Honda"),
                (3, "Collisions are covered.")
            ],
            "line 1, stored before, is not stored twice"
        );
        assert_eq!(turns[2].sources[0].document, "car-policy.md");
        let record = db.call(call).await.unwrap().unwrap();
        assert_eq!(record.end_reason.as_deref(), Some("caller_hangup"));
        assert_eq!(record.answered_by.as_deref(), Some("machine"));
    }

    #[tokio::test]
    async fn a_spool_that_cannot_reach_its_database_keeps_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path(), false).await;
        let calls = [CallId::new(), CallId::new()];
        for call in calls {
            insert(&db, call).await;
            db.spool_call(
                call,
                SpooledCall {
                    lines: vec![line(1, "hello")],
                    ..SpooledCall::default()
                },
            )
            .await
            .unwrap();
        }
        db.close().await;
        let drained = db.drain_spool().await.unwrap();
        assert_eq!(
            drained,
            Drained {
                calls: 0,
                lines: 0,
                waiting: 2
            }
        );
        assert_eq!(db.spooled_calls(), 2);
    }
}
