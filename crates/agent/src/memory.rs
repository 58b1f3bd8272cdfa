//! What the agent remembers of the call, kept to a bounded prompt however long the call runs: the last
//! turns word for word, and a running summary of the older ones. The claim itself carries the facts
//! collected, so the summary only has to keep the thread of the conversation.

use std::collections::VecDeque;

use switchboard_llm::Message;

/// Characters of one folded turn kept in the summary.
const FOLDED_TURN_CHARS: usize = 160;
/// Characters the summary may grow to; the oldest part goes first.
const SUMMARY_CHARS: usize = 1200;

/// The conversation so far, bounded.
#[derive(Debug, Clone)]
pub struct Memory {
    recent: VecDeque<(String, String)>,
    summary: String,
    keep: usize,
    turns: usize,
}

impl Memory {
    /// Keeps `keep` exchanges (caller line and agent answer) verbatim.
    pub fn new(keep: usize) -> Self {
        Self {
            recent: VecDeque::new(),
            summary: String::new(),
            keep: keep.max(1),
            turns: 0,
        }
    }

    /// Records one exchange, folding the oldest into the summary when there are too many.
    pub fn push(&mut self, caller: &str, agent: &str) {
        self.turns += 1;
        self.recent.push_back((caller.to_owned(), agent.to_owned()));
        while self.recent.len() > self.keep {
            if let Some((caller, agent)) = self.recent.pop_front() {
                self.fold(&caller, &agent);
            }
        }
    }

    fn fold(&mut self, caller: &str, agent: &str) {
        let line = format!(
            "Caller: {} / You: {}\n",
            shorten(caller, FOLDED_TURN_CHARS),
            shorten(agent, FOLDED_TURN_CHARS)
        );
        self.summary.push_str(&line);
        while self.summary.chars().count() > SUMMARY_CHARS {
            match self.summary.find('\n') {
                Some(end) => {
                    self.summary.drain(..=end);
                }
                None => self.summary.clear(),
            }
        }
    }

    /// The older part of the call in brief (empty until turns have been folded).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Exchanges so far.
    pub fn turns(&self) -> usize {
        self.turns
    }

    /// The recent exchanges as chat messages, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        let mut out = Vec::with_capacity(self.recent.len() * 2);
        for (caller, agent) in &self.recent {
            out.push(Message::user(caller.clone()));
            out.push(Message::assistant(agent.clone()));
        }
        out
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_stays_bounded_over_a_long_call() {
        let mut memory = Memory::new(3);
        for i in 0..200 {
            memory.push(
                &format!("caller line {i} {}", "words ".repeat(50)),
                &format!("answer {i}"),
            );
        }
        assert_eq!(memory.turns(), 200);
        assert_eq!(memory.messages().len(), 6);
        assert_eq!(
            memory.messages()[0]
                .content
                .split(' ')
                .take(3)
                .collect::<Vec<_>>(),
            ["caller", "line", "197"]
        );
        assert!(memory.summary().chars().count() <= SUMMARY_CHARS);
        assert!(
            memory.summary().contains("caller line 196"),
            "{}",
            memory.summary()
        );
        assert!(!memory.summary().contains("caller line 5 "));
    }

    #[test]
    fn nothing_is_summarised_while_the_call_is_short() {
        let mut memory = Memory::new(4);
        memory.push("hello", "hi, how can I help?");
        assert_eq!(memory.summary(), "");
        assert_eq!(memory.messages().len(), 2);
    }
}
