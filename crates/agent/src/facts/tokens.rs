//! Words of a caller's line as the readers need them: the word as written (capitals are evidence of a
//! name), lower-cased, and whether a comma or a sentence end follows it.

/// What follows a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Nothing: the sentence goes on.
    None,
    /// A comma, semicolon or colon.
    Comma,
    /// A full stop, question or exclamation mark.
    Sentence,
}

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// As written, without the punctuation around it.
    pub raw: String,
    /// Lower case.
    pub lower: String,
    /// What follows it.
    pub stop: Stop,
}

impl Token {
    /// Whether it starts with a capital letter.
    pub(crate) fn capitalised(&self) -> bool {
        self.raw.chars().next().is_some_and(char::is_uppercase)
    }

    /// Whether it holds a digit.
    pub(crate) fn has_digit(&self) -> bool {
        self.raw.chars().any(|c| c.is_ascii_digit())
    }
}

/// The words of `text`. Punctuation inside a word is kept ("O'Brien", "AB-48213", "a.b@c.com"); at its
/// ends it is dropped and recorded as the word's stop.
pub(crate) fn tokens(text: &str) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::new();
    for chunk in text.split_whitespace() {
        let trailing: String = chunk
            .chars()
            .rev()
            .take_while(|c| !c.is_alphanumeric())
            .collect();
        let stop = if trailing.contains(['.', '!', '?', '…', '。', '？', '！']) {
            Stop::Sentence
        } else if trailing.contains([',', ';', ':', '—']) {
            Stop::Comma
        } else {
            Stop::None
        };
        let raw = chunk.trim_matches(|c: char| !c.is_alphanumeric());
        if raw.is_empty() {
            // A lone dash or full stop: it still separates what is around it.
            if let Some(last) = out.last_mut()
                && stop != Stop::None
                && last.stop == Stop::None
            {
                last.stop = stop;
            }
            continue;
        }
        out.push(Token {
            raw: raw.to_owned(),
            lower: raw.to_lowercase(),
            stop,
        });
    }
    out
}

/// `tokens` joined back into text, with the commas between them.
pub(crate) fn join(tokens: &[Token]) -> String {
    let mut text = String::new();
    for (i, token) in tokens.iter().enumerate() {
        text.push_str(&token.raw);
        if token.stop == Stop::Comma && i + 1 < tokens.len() {
            text.push(',');
        }
        if i + 1 < tokens.len() {
            text.push(' ');
        }
    }
    text
}

/// Words a caller puts before an answer that are not part of it.
pub(crate) const LEAD_INS: &[&str] = &[
    "sure", "yes", "yeah", "yep", "ok", "okay", "right", "well", "so", "um", "uh", "er", "erm",
    "hmm", "hi", "hello", "hey", "oh", "ah", "it's", "its", "it", "is", "that's", "thats", "that",
    "i", "think", "let", "me", "see", "look", "please", "and", "just", "was",
];

/// `tokens` without the lead-ins at their start.
pub(crate) fn without_lead_ins(tokens: &[Token]) -> &[Token] {
    let start = tokens
        .iter()
        .position(|t| !LEAD_INS.contains(&t.lower.as_str()))
        .unwrap_or(tokens.len());
    &tokens[start..]
}

/// The sentences of `tokens`, each ending at a sentence stop.
pub(crate) fn sentences(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, token) in tokens.iter().enumerate() {
        if token.stop == Stop::Sentence {
            out.push(&tokens[start..=i]);
            start = i + 1;
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_inner_punctuation_and_record_their_stops() {
        let t = tokens("Kevin O'Brien, policy AB-48213. Thanks!");
        let raw: Vec<&str> = t.iter().map(|t| t.raw.as_str()).collect();
        assert_eq!(raw, ["Kevin", "O'Brien", "policy", "AB-48213", "Thanks"]);
        let stops: Vec<Stop> = t.iter().map(|t| t.stop).collect();
        assert_eq!(
            stops,
            [
                Stop::None,
                Stop::Comma,
                Stop::None,
                Stop::Sentence,
                Stop::Sentence
            ]
        );
        assert_eq!(join(&t[..3]), "Kevin O'Brien, policy");
        assert_eq!(sentences(&t).len(), 2);
        assert_eq!(without_lead_ins(&tokens("Sure, it's Ana."))[0].raw, "Ana");
    }
}
