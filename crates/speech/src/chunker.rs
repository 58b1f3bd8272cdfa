//! Turns a stream of LLM tokens into pieces a TTS engine can speak as soon as each is complete.
//!
//! A piece ends at a sentence end (`.`, `!`, `?`, `…` followed by a space), except where that punctuation
//! belongs to an abbreviation ("Dr. Smith", "e.g. this"), an initial ("J. Smith") or sits inside a number,
//! e-mail address or URL (no space follows it there). The first piece of a reply may end early at a clause
//! boundary, so the caller hears the agent sooner; overlong text is split at the last space so no single
//! synthesis call grows without bound.

/// Chunking settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerOptions {
    /// The first piece may end at a comma, colon or semicolon once it has this many words (0: never).
    pub first_piece_min_words: usize,
    /// A piece longer than this many characters is cut at its last space.
    pub max_chars: usize,
}

impl Default for ChunkerOptions {
    fn default() -> Self {
        Self {
            first_piece_min_words: 4,
            max_chars: 220,
        }
    }
}

/// Words whose trailing period does not end a sentence (compared lower-cased, without the period).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "no", "nos", "vs", "etc", "e.g", "i.e",
    "approx", "inc", "ltd", "co", "corp", "dept", "est", "fig", "mt", "apt", "ave", "blvd", "rd",
    "a.m", "p.m", "u.s", "u.k", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "tel", "ext", "ref",
];

/// Splits a token stream into speakable pieces.
#[derive(Debug, Clone)]
pub struct SentenceChunker {
    options: ChunkerOptions,
    buffer: String,
    pieces_out: usize,
}

impl SentenceChunker {
    /// A chunker for one reply.
    pub fn new(options: ChunkerOptions) -> Self {
        Self {
            options,
            buffer: String::new(),
            pieces_out: 0,
        }
    }

    /// Adds a token; returns the pieces it completed, in order.
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.buffer.push_str(token);
        let mut pieces = Vec::new();
        while let Some(end) = self.next_boundary() {
            let piece: String = self.buffer.drain(..end).collect();
            let piece = piece.trim().to_owned();
            if !piece.is_empty() {
                self.pieces_out += 1;
                pieces.push(piece);
            }
        }
        pieces
    }

    /// Ends the reply: whatever is left is the last piece.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| {
            self.pieces_out += 1;
            rest.to_owned()
        })
    }

    /// Byte index just after the first complete piece in the buffer, if there is one.
    fn next_boundary(&self) -> Option<usize> {
        let text = &self.buffer;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut words = 0;
        for (i, &(at, c)) in chars.iter().enumerate() {
            let next = chars.get(i + 1).map(|&(_, n)| n);
            // A boundary needs to see what follows: a space. A token ending in "." waits for the next one.
            let followed_by_space = next.is_some_and(char::is_whitespace);
            if c.is_whitespace() && i > 0 && !chars[i - 1].1.is_whitespace() {
                words += 1;
            }
            if !followed_by_space {
                continue;
            }
            let end = at + c.len_utf8();
            match c {
                '!' | '?' | '…' => return Some(end),
                '.' if !self.is_abbreviation(&text[..at]) => return Some(end),
                ',' | ';' | ':'
                    if self.pieces_out == 0
                        && self.options.first_piece_min_words > 0
                        && words + 1 >= self.options.first_piece_min_words =>
                {
                    return Some(end);
                }
                _ => {}
            }
        }
        if text.len() > self.options.max_chars {
            let limit = (0..=self.options.max_chars)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            // Cut at the last space before the limit; failing that, just after the word that straddles it
            // (a long URL stays whole). Only a space-free run of four times the limit is cut mid-word.
            if let Some(i) = text[..limit].rfind(' ').filter(|&i| i > 0) {
                return Some(i);
            }
            if let Some(i) = text[limit..].find(' ') {
                return Some(limit + i);
            }
            // The space-free run straddling the limit (leading blanks are not a place to cut).
            let run_start = text[..limit]
                .rfind(char::is_whitespace)
                .map_or(0, |i| i + 1);
            if text.len() - run_start > 4 * self.options.max_chars {
                let first_char = text[run_start..].chars().next().map_or(1, char::len_utf8);
                return Some(limit.max(run_start + first_char));
            }
        }
        None
    }

    /// Whether the word before a period makes it an abbreviation or an initial rather than a sentence end.
    fn is_abbreviation(&self, before: &str) -> bool {
        let word = before
            .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
            .next()
            .unwrap_or("");
        let lower = word.to_lowercase();
        let single_initial = word.chars().count() == 1 && word.chars().all(|c| c.is_uppercase());
        single_initial || ABBREVIATIONS.contains(&lower.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds text in small, awkward tokens (as an LLM would) and collects every piece.
    fn chunk(text: &str, options: ChunkerOptions) -> Vec<String> {
        let mut c = SentenceChunker::new(options);
        let mut out = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for token in chars.chunks(3) {
            out.extend(c.push(&token.iter().collect::<String>()));
        }
        out.extend(c.finish());
        out
    }

    fn plain(text: &str) -> Vec<String> {
        chunk(
            text,
            ChunkerOptions {
                first_piece_min_words: 0,
                ..ChunkerOptions::default()
            },
        )
    }

    #[test]
    fn sentences_come_out_as_they_complete() {
        assert_eq!(
            plain("Thank you. Your claim is open! Anything else?"),
            vec!["Thank you.", "Your claim is open!", "Anything else?"]
        );
    }

    #[test]
    fn numbers_emails_and_urls_are_never_cut() {
        assert_eq!(
            plain(
                "The total is $4.50 today. Write to john.doe@example.com. Or see www.acme.co.uk/claims now."
            ),
            vec![
                "The total is $4.50 today.",
                "Write to john.doe@example.com.",
                "Or see www.acme.co.uk/claims now."
            ]
        );
        assert_eq!(
            plain("Your claim number is 4 4 7 2. Keep it."),
            vec!["Your claim number is 4 4 7 2.", "Keep it."]
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        assert_eq!(
            plain("Dr. Smith will call at 9 a.m. tomorrow. Thanks."),
            vec!["Dr. Smith will call at 9 a.m. tomorrow.", "Thanks."]
        );
        assert_eq!(
            plain("Ask for J. R. Jones, e.g. on Monday. Bye."),
            vec!["Ask for J. R. Jones, e.g. on Monday.", "Bye."]
        );
        assert_eq!(
            plain("Policy No. 12345 is active."),
            vec!["Policy No. 12345 is active."]
        );
    }

    #[test]
    fn the_first_piece_may_end_at_a_clause_to_speak_sooner() {
        let out = chunk(
            "Thanks for calling Acme Insurance, my name is Joe. How can I help?",
            ChunkerOptions::default(),
        );
        assert_eq!(
            out,
            vec![
                "Thanks for calling Acme Insurance,",
                "my name is Joe.",
                "How can I help?"
            ]
        );
        // Too short a clause is not worth a piece of its own.
        let out = chunk("Yes, I can. Done.", ChunkerOptions::default());
        assert_eq!(out, vec!["Yes, I can.", "Done."]);
    }

    #[test]
    fn overlong_text_is_cut_between_words() {
        let long = "word ".repeat(100);
        let out = plain(&long);
        assert!(out.len() > 1);
        assert!(
            out.iter().all(|p| p.len() <= 220 && !p.ends_with("wor")),
            "{out:?}"
        );
        assert_eq!(out.join(" ").split_whitespace().count(), 100);
    }

    #[test]
    fn nothing_is_lost_or_invented() {
        let text = "Hello there. I see, Mr. Brown, that your e-mail is a.b@c.de? Right! The fee is 3.5%… ok";
        let out = chunk(text, ChunkerOptions::default());
        assert_eq!(
            out.join(" ").split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_in_any_tokens_comes_out_whole(text in "[a-zA-Zé€ .,!?;:@$0-9…]{0,400}", size in 1usize..9) {
            let options = ChunkerOptions { max_chars: 40, ..ChunkerOptions::default() };
            // Words are kept whole unless one runs past four times the limit without a space.
            proptest::prop_assume!(text.split_whitespace().all(|w| w.len() <= 160));
            let mut c = SentenceChunker::new(options);
            let mut out = Vec::new();
            let chars: Vec<char> = text.chars().collect();
            for token in chars.chunks(size) {
                out.extend(c.push(&token.iter().collect::<String>()));
            }
            out.extend(c.finish());
            let words: Vec<&str> = out.iter().flat_map(|p| p.split_whitespace()).collect();
            proptest::prop_assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
            proptest::prop_assert!(out.iter().all(|p| !p.trim().is_empty()));
        }
    }
}
