//! The caller's keypad: keys gathered into one entry, which ends with `#`, a pause, or a full entry.

use std::time::{Duration, Instant};

/// Longest entry: a phone number with its country code fits with room to spare.
pub(super) const MAX_KEYS: usize = 32;

/// Keys typed so far and when the last came.
#[derive(Debug, Default)]
pub(super) struct Keypad {
    typed: String,
    last: Option<Instant>,
}

impl Keypad {
    /// Takes a key; returns the entry when this key ends it (`#`, or the entry is full). `*` erases what
    /// was typed, to start again; A-D are not digits and are ignored.
    pub(super) fn press(&mut self, key: char, now: Instant) -> Option<String> {
        self.last = Some(now);
        match key {
            '#' => self.take(),
            '*' => {
                self.typed.clear();
                None
            }
            '0'..='9' => {
                self.typed.push(key);
                (self.typed.len() >= MAX_KEYS)
                    .then(|| self.take())
                    .flatten()
            }
            _ => None,
        }
    }

    /// The entry, once `pause` has passed since its last key.
    pub(super) fn due(&mut self, now: Instant, pause: Duration) -> Option<String> {
        let last = self.last?;
        (now.saturating_duration_since(last) >= pause)
            .then(|| self.take())
            .flatten()
    }

    /// Whether the caller is typing (an entry is open).
    pub(super) fn typing(&self) -> bool {
        !self.typed.is_empty()
    }

    fn take(&mut self) -> Option<String> {
        self.last = None;
        let typed = std::mem::take(&mut self.typed);
        (!typed.is_empty()).then_some(typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_ends_with_the_hash_key_a_pause_or_when_full() {
        let t0 = Instant::now();
        let pause = Duration::from_secs(3);
        let mut keypad = Keypad::default();
        for key in "415".chars() {
            assert_eq!(keypad.press(key, t0), None);
        }
        assert!(keypad.typing());
        assert_eq!(keypad.press('#', t0).as_deref(), Some("415"));
        assert!(!keypad.typing());
        // `#` alone enters nothing.
        assert_eq!(keypad.press('#', t0), None);

        keypad.press('7', t0);
        assert_eq!(keypad.due(t0 + Duration::from_secs(2), pause), None);
        keypad.press('8', t0 + Duration::from_secs(2));
        assert_eq!(
            keypad.due(t0 + Duration::from_secs(4), pause),
            None,
            "the pause counts from the last key"
        );
        assert_eq!(
            keypad.due(t0 + Duration::from_secs(5), pause).as_deref(),
            Some("78")
        );
        assert_eq!(keypad.due(t0 + Duration::from_secs(9), pause), None);

        let full: String = std::iter::repeat_n('1', MAX_KEYS).collect();
        let mut ended = None;
        for key in full.chars() {
            ended = keypad.press(key, t0);
        }
        assert_eq!(ended, Some(full));
    }

    #[test]
    fn star_starts_the_entry_again_and_letters_are_ignored() {
        let t0 = Instant::now();
        let mut keypad = Keypad::default();
        for key in "12*9A8".chars() {
            assert_eq!(keypad.press(key, t0), None);
        }
        assert_eq!(keypad.press('#', t0).as_deref(), Some("98"));
    }
}
