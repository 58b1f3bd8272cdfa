//! The marks playout puts on the wire after each piece and each speech, and what the far side's echoes of
//! them confirm was heard.

use std::collections::BTreeMap;

use super::ECHO_GRACE;
use crate::machine::SpeechId;

/// The mark sent after piece `piece` of `speech`.
pub(crate) fn piece_mark(speech: SpeechId, piece: u32) -> String {
    format!("speech-{}.{piece}", speech.0)
}

/// The mark sent after the whole of `speech`.
pub(crate) fn end_mark(speech: SpeechId) -> String {
    format!("speech-{}", speech.0)
}

/// What an echoed mark confirms: the speech, and the pieces played (`None`: all of them).
pub(super) fn parse_mark(name: &str) -> Option<(SpeechId, Option<u32>)> {
    let rest = name.strip_prefix("speech-")?;
    match rest.split_once('.') {
        Some((speech, piece)) => Some((
            SpeechId(speech.parse().ok()?),
            Some(piece.parse::<u32>().ok()?.checked_add(1)?),
        )),
        None => Some((SpeechId(rest.parse().ok()?), None)),
    }
}

/// The pieces a cut speech counts as heard: those the far side confirmed, and the one it was playing.
pub(super) fn heard_when_cut(sent: u32, confirmed: u32) -> u32 {
    sent.min(confirmed.saturating_add(1))
}

/// A speech sent in full whose end the far side has not confirmed yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unconfirmed {
    pub(super) pieces: u32,
    /// On tokio's clock, which tests can pause.
    pub(super) sent_at: tokio::time::Instant,
}

/// What the far side's mark echoes have confirmed.
#[derive(Debug, Default)]
pub(super) struct Echoes {
    /// Pieces confirmed per speech.
    confirmed: BTreeMap<SpeechId, u32>,
    pub(super) unconfirmed: BTreeMap<SpeechId, Unconfirmed>,
}

impl Echoes {
    pub(super) fn confirmed(&self, speech: SpeechId) -> u32 {
        self.confirmed.get(&speech).copied().unwrap_or(0)
    }

    /// Records an echo; returns the speech it completes, with its pieces.
    pub(super) fn echoed(&mut self, name: &str) -> Option<(SpeechId, u32)> {
        let Some((speech, pieces)) = parse_mark(name) else {
            tracing::debug!(%name, "ignoring an echo of a mark we did not send");
            return None;
        };
        let confirmed = self.confirmed.entry(speech).or_insert(0);
        *confirmed = (*confirmed).max(pieces.unwrap_or(u32::MAX));
        let pieces = self.unconfirmed.get(&speech)?.pieces;
        if *confirmed < pieces {
            return None;
        }
        self.unconfirmed.remove(&speech);
        Some((speech, pieces))
    }

    /// Whether a fully sent speech has waited for its echo longer than [`ECHO_GRACE`].
    pub(super) fn overdue(&self, now: tokio::time::Instant) -> bool {
        self.unconfirmed
            .values()
            .any(|u| now.saturating_duration_since(u.sent_at) >= ECHO_GRACE)
    }

    /// Forgets speeches older than `floor`.
    pub(super) fn trim(&mut self, floor: SpeechId) {
        self.confirmed = self.confirmed.split_off(&floor);
    }
}
