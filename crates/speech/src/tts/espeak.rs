//! espeak-ng, run as the Debian package's command: phonemes for Piper and Kokoro, and speech itself when
//! every neural voice has failed. A process per sentence costs about 11 ms here, small beside the
//! synthesis it feeds, and keeps espeak's global, non-reentrant library state out of our process.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::TtsError;

/// Sample rate of espeak-ng's own speech.
pub const ESPEAK_SAMPLE_RATE: u32 = 22_050;

/// A clause of text and the punctuation that ended it (kept: Piper and Kokoro read it as prosody).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The words, without the closing punctuation.
    pub text: String,
    /// `,` `.` `;` `:` `!` `?`, if the clause had one.
    pub punctuation: Option<char>,
}

/// Splits text at punctuation that is followed by a space or the end, as espeak does: "4.5" and
/// "john.doe@example.com" stay whole.
pub fn split_clauses(text: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let ends = matches!(c, ',' | '.' | ';' | ':' | '!' | '?')
            && chars.peek().is_none_or(|next| next.is_whitespace());
        if ends {
            let words = current.trim();
            if has_words(words) {
                clauses.push(Clause {
                    text: words.to_owned(),
                    punctuation: Some(c),
                });
            }
            current.clear();
        } else if c.is_control() {
            current.push(' ');
        } else {
            current.push(c);
        }
    }
    let words = current.trim();
    if has_words(words) {
        clauses.push(Clause {
            text: words.to_owned(),
            punctuation: None,
        });
    }
    clauses
}

fn has_words(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

/// The espeak-ng command.
#[derive(Debug, Clone)]
pub struct Espeak {
    program: PathBuf,
}

impl Espeak {
    /// Finds `espeak-ng` on PATH (or at `ESPEAK_NG`), and checks it runs.
    pub fn locate() -> Result<Self, TtsError> {
        let program = std::env::var_os("ESPEAK_NG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("espeak-ng"));
        let status = Command::new(&program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Ok(Self { program }),
            _ => Err(TtsError::Load(format!(
                "espeak-ng (phonemes for every voice) cannot be run as `{}`; install it with `apt-get install espeak-ng` (`make run` does)",
                program.display()
            ))),
        }
    }

    /// The voices espeak-ng knows (`en-us`, `fr`, ...).
    pub fn voices(&self) -> Result<Vec<String>, TtsError> {
        let output = self.run(&["--voices"], None)?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .skip(1)
            .filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned))
            .collect())
    }

    /// IPA phonemes of each clause, in order. With `tie`, multi-letter phonemes are joined by `^`
    /// (`a^ɪ`), which Kokoro's phoneme set needs to tell diphthongs from vowel pairs.
    pub fn phonemize(
        &self,
        voice: &str,
        clauses: &[Clause],
        tie: bool,
    ) -> Result<Vec<String>, TtsError> {
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["-q", "--ipa", "-v", voice, "--stdin"];
        if tie {
            args.push("--tie=^");
        }
        // One clause per line, each with its punctuation, so espeak prints one line per clause.
        let input: String = clauses
            .iter()
            .map(|c| format!("{}{}\n", c.text, c.punctuation.unwrap_or('.')))
            .collect();
        let output = self.run(&args, Some(&input))?;
        let lines: Vec<String> = String::from_utf8_lossy(&output)
            .lines()
            .map(clean_phonemes)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.len() == clauses.len() {
            return Ok(lines);
        }
        // espeak split a clause further (or merged two): ask clause by clause.
        clauses
            .iter()
            .map(|clause| {
                let input = format!("{}{}\n", clause.text, clause.punctuation.unwrap_or('.'));
                let output = self.run(&args, Some(&input))?;
                Ok(String::from_utf8_lossy(&output)
                    .lines()
                    .map(clean_phonemes)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "))
            })
            .collect()
    }

    /// espeak-ng's own speech at [`ESPEAK_SAMPLE_RATE`], `rate` 1.0 being its normal 175 words a minute.
    pub fn speak(&self, voice: &str, text: &str, rate: f32) -> Result<Vec<f32>, TtsError> {
        let speed = format!("{}", (175.0 * rate).round() as i32);
        // Not `-q`: that silences the audio too.
        let output = self.run(
            &["--stdout", "-v", voice, "-s", &speed, "--stdin"],
            Some(text),
        )?;
        pcm16_of_streamed_wav(&output)
            .ok_or_else(|| TtsError::Inference("espeak-ng wrote no 16-bit mono WAV".into()))
    }

    fn run(&self, args: &[&str], input: Option<&str>) -> Result<Vec<u8>, TtsError> {
        let fail = |e: std::io::Error| {
            TtsError::Inference(format!("cannot run {}: {e}", self.program.display()))
        };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(fail)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).map_err(fail)?;
        }
        let output = child.wait_with_output().map_err(fail)?;
        if !output.status.success() {
            return Err(TtsError::Inference(format!(
                "espeak-ng {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(output.stdout)
    }
}

/// The samples of a WAV written to a pipe: espeak-ng cannot seek back to fill in the sizes, so the
/// header's lengths are placeholders and the data runs to the end of the output.
fn pcm16_of_streamed_wav(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.get(..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut mono16 = false;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let format = bytes.get(body..body + 16)?;
            let channels = u16::from_le_bytes([format[2], format[3]]);
            let bits = u16::from_le_bytes([format[14], format[15]]);
            mono16 = channels == 1 && bits == 16;
        } else if id == b"data" {
            if !mono16 {
                return None;
            }
            return Some(
                bytes[body..]
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
                    .collect(),
            );
        }
        at = body.checked_add(size)?.checked_add(size % 2)?;
    }
    None
}

/// Drops espeak's language-switch marks (`(fr)`, `(en)`) and stray whitespace.
fn clean_phonemes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_mark = false;
    for c in line.chars() {
        match c {
            '(' => in_mark = true,
            ')' => in_mark = false,
            _ if !in_mark => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_end_at_punctuation_followed_by_space() {
        let clauses =
            split_clauses("Hello, it costs 4.5 dollars; mail john.doe@example.com. Thanks");
        let texts: Vec<_> = clauses
            .iter()
            .map(|c| (c.text.as_str(), c.punctuation))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("Hello", Some(',')),
                ("it costs 4.5 dollars", Some(';')),
                ("mail john.doe@example.com", Some('.')),
                ("Thanks", None),
            ]
        );
    }

    #[test]
    fn empty_and_punctuation_only_text_has_no_clauses() {
        assert!(split_clauses("").is_empty());
        assert!(split_clauses(" ... ?! ").is_empty());
    }

    #[test]
    fn a_streamed_wav_is_read_to_its_end() {
        let mut wav = b"RIFF\xff\xff\xff\x7fWAVEfmt \x10\0\0\0\x01\0\x01\0\x22\x56\0\0\x44\xac\0\0\x02\0\x10\0data\xff\xff\xff\x7f".to_vec();
        wav.extend([0x00, 0x40, 0x00, 0xc0]);
        assert_eq!(pcm16_of_streamed_wav(&wav), Some(vec![0.5, -0.5]));
        assert_eq!(pcm16_of_streamed_wav(b"RIFF"), None);
        assert_eq!(pcm16_of_streamed_wav(b"not a wav at all"), None);
    }

    #[test]
    fn language_marks_are_removed() {
        assert_eq!(clean_phonemes(" (fr)bɔ̃ʒuʁ(en) wˈɜːld "), "bɔ̃ʒuʁ wˈɜːld");
    }
}
