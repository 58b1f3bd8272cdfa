//! Incremental framing of streamed HTTP bodies: complete lines (Ollama's NDJSON) and server-sent events
//! (OpenAI's `data:` lines), from byte chunks cut anywhere, even inside a UTF-8 character.

/// Longest line accepted; a server streaming a longer one is broken or hostile.
const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    buffer: Vec<u8>,
}

impl Lines {
    /// Adds `bytes` and returns the lines they complete (without `\n` or `\r\n`).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(String::from_utf8(line).map_err(|_| "a line is not UTF-8".to_owned())?);
        }
        if self.buffer.len() > MAX_LINE {
            return Err(format!("a line is longer than {MAX_LINE} bytes"));
        }
        Ok(lines)
    }

    /// What is left when the body ends (a last line without a newline).
    pub(crate) fn finish(&mut self) -> Result<Option<String>, String> {
        let rest = std::mem::take(&mut self.buffer);
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        String::from_utf8(rest)
            .map(Some)
            .map_err(|_| "the last line is not UTF-8".to_owned())
    }
}

/// Collects the `data` of server-sent events from lines.
#[derive(Debug, Default)]
pub(crate) struct Events {
    data: Vec<String>,
}

impl Events {
    /// Takes one line; returns an event's data when the line ends it (a blank line).
    pub(crate) fn line(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            return (!self.data.is_empty()).then(|| std::mem::take(&mut self.data).join("\n"));
        }
        if let Some(value) = line.strip_prefix("data:") {
            self.data
                .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        }
        // `event:`, `id:`, `retry:` and `:` comments carry nothing we use.
        None
    }

    /// An event left open when the body ended.
    pub(crate) fn finish(&mut self) -> Option<String> {
        self.line("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_any_cut() {
        let body = "{\"a\":\"é\"}\r\n{\"b\":2}\n{\"c\":3}";
        for cut in 0..body.len() {
            let (one, two) = body.as_bytes().split_at(cut);
            let mut lines = Lines::default();
            let mut all = lines.push(one).unwrap();
            all.extend(lines.push(two).unwrap());
            all.extend(lines.finish().unwrap());
            assert_eq!(
                all,
                ["{\"a\":\"é\"}", "{\"b\":2}", "{\"c\":3}"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn events_join_data_lines_and_skip_comments() {
        let mut events = Events::default();
        let mut out = Vec::new();
        for line in [
            ": keep-alive",
            "",
            "event: message",
            "data: {\"x\":",
            "data: 1}",
            "",
            "data:[DONE]",
            "",
        ] {
            out.extend(events.line(line));
        }
        assert_eq!(out, ["{\"x\":\n1}", "[DONE]"]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut lines = Lines::default();
        assert!(lines.push(&vec![b'a'; MAX_LINE + 1]).is_err());
    }
}
