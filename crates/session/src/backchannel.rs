//! Backchannels: the little words a listener says to show they are following ("mhm", "okay", "right").
//! Said over the agent, they are not a turn and must not interrupt it.

/// Words that, alone or together, are a backchannel.
const BACKCHANNELS: &[&str] = &[
    "mhm", "mm", "hmm", "hm", "uh-huh", "uhhuh", "uh", "huh", "ok", "okay", "yeah", "yep", "yes",
    "right", "sure", "alright", "i see", "got it", "aha", "ah", "oh",
];

/// Whether `text` is only backchannel words (at most three), punctuation aside.
pub fn is_backchannel(text: &str) -> bool {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    if words.is_empty() || words.len() > 3 {
        return false;
    }
    let mut rest = words.as_slice();
    while !rest.is_empty() {
        let two =
            rest.len() >= 2 && BACKCHANNELS.contains(&format!("{} {}", rest[0], rest[1]).as_str());
        if two {
            rest = &rest[2..];
        } else if BACKCHANNELS.contains(&rest[0]) {
            rest = &rest[1..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_noises_are_backchannels_and_content_is_not() {
        for yes in [
            "Mhm.",
            "okay",
            "Yeah, right.",
            "I see.",
            "uh-huh",
            "Okay okay.",
        ] {
            assert!(is_backchannel(yes), "{yes}");
        }
        for no in [
            "",
            "No.",
            "Stop.",
            "Okay, my policy number is 12",
            "wait",
            "yes yes yes yes",
        ] {
            assert!(!is_backchannel(no), "{no}");
        }
    }
}
