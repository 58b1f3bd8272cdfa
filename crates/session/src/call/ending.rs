//! The end of a call: its tasks stopped, what was still in flight recorded (the agent's speech being
//! played, as far as it was heard; the caller's words being transcribed) and announced, then the hang-up
//! sent, the record closed, the end and the synthesis written.

use std::time::Duration;

use super::{CallReport, Session};
use crate::machine::EndReason;
use crate::media::Outbound;
use crate::playout::Played;
use crate::speaker::Spoken;

/// How long a hung-up call waits for the final transcript of the caller's last words.
const LAST_WORDS_WAIT: Duration = Duration::from_secs(10);

/// What the speaker and playout reported while the call's end was stopping them.
#[derive(Default)]
struct Reports {
    spoken: Vec<Spoken>,
    played: Vec<Played>,
}

impl Session {
    /// Stops the call's tasks and records what was still in flight (the agent's speech being played, the
    /// caller's words being transcribed), then the end and the synthesis.
    pub(super) async fn finish(mut self, reason: EndReason) -> CallReport {
        self.speeches.cancel_all();
        self.jobs_tx = None;
        // Both parts wait for room to report, so their reports are taken while they stop.
        let mut reports = Reports::default();
        let conversation = match self.speaker.take() {
            Some(handle) => self.join(handle, &mut reports).await,
            None => None,
        };
        // Playout reports the speech it was playing as cut, then stops.
        self.playout_stop.cancel();
        if let Some(playout) = self.playout.take() {
            self.join(playout, &mut reports).await;
        }
        // Every piece the speaker made is known before what was heard of it is recorded.
        for spoken in reports.spoken {
            if let Spoken::Piece {
                speech,
                index,
                text,
            } = spoken
            {
                self.speeches.piece(speech, index, text);
            }
        }
        for played in reports.played {
            if let Played::Finished { speech, pieces, .. } = played {
                let _ = self.record_heard(speech, pieces);
            }
        }
        self.record_last_words().await;
        // The transcript's last lines go out before the hang-up (the speech cut by it too), and what the
        // echo canceller did.
        self.recorder.flush().await;
        let echo = self.listener.echo_report();
        if let Some(report) = &echo {
            let _ = self.out_tx.send(Outbound::Echo(report.clone())).await;
        }
        let _ = self
            .out_tx
            .send(Outbound::Hangup {
                reason: reason.clone(),
            })
            .await;
        // Playout has stopped: the recording has both sides to the end.
        if let Some(recording) = &mut self.recording {
            recording.finish().await;
        }
        if let Some(echo) = echo {
            if let Some(erle) = echo.erle_db {
                metrics::histogram!("switchboard_echo_erle_db").record(erle);
            }
            tracing::info!(
                erle_db = echo.erle_db,
                delay_ms = echo.delay_ms,
                longest_delay_ms = echo.longest_delay_ms,
                delay_moves = echo.delay_moves,
                no_echo = echo.no_echo,
                echo_ms = echo.echo_ms,
                realigned = echo.realigned,
                "echo cancellation"
            );
        }
        metrics::gauge!("switchboard_calls_active").decrement(1.0);
        metrics::counter!("switchboard_calls_total", "outcome" => reason.as_str()).increment(1);
        if self.dropped_audio > 0 {
            tracing::warn!(
                frames = self.dropped_audio,
                "agent audio dropped: playout queue full"
            );
        }
        let lost = self.recorder.close().await;
        self.recorder.end(reason.as_str()).await;
        tracing::info!(
            reason = reason.as_str(),
            turns = self.turns.turns(),
            lost_lines = lost,
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
            latencies: self.speeches.take_latencies(),
            claim,
            synthesis,
        }
    }

    /// Waits for one of the call's tasks to stop, taking the speaker's and playout's reports meanwhile.
    async fn join<T>(
        &mut self,
        handle: tokio::task::JoinHandle<T>,
        reports: &mut Reports,
    ) -> Option<T> {
        tokio::pin!(handle);
        let joined = loop {
            tokio::select! {
                joined = &mut handle => break joined.ok(),
                Some(spoken) = self.spoken_rx.recv() => reports.spoken.push(spoken),
                Some(played) = self.played_rx.recv() => reports.played.push(played),
            }
        };
        while let Ok(spoken) = self.spoken_rx.try_recv() {
            reports.spoken.push(spoken);
        }
        while let Ok(played) = self.played_rx.try_recv() {
            reports.played.push(played);
        }
        joined
    }

    /// The caller's words when the call ended: the utterance in progress is transcribed, and every
    /// transcript still on its way is waited for (at most [`LAST_WORDS_WAIT`]) and recorded.
    async fn record_last_words(&mut self) {
        self.listener.finish_in_progress();
        let deadline = tokio::time::Instant::now() + LAST_WORDS_WAIT;
        while self.listener.transcribing() > 0 {
            let Ok(Some(recognised)) =
                tokio::time::timeout_at(deadline, self.recognised_rx.recv()).await
            else {
                tracing::warn!("the caller's last words were not transcribed in time");
                return;
            };
            self.listener.took_transcript();
            if let Ok(text) = &recognised.text {
                self.record_caller(text.trim(), &recognised);
            }
        }
    }
}
