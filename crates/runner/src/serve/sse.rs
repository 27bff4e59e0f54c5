//! Server-sent events, as servers stream completions: `data: {…}` lines, events ended by a
//! blank line, `data: [DONE]` at the end (OpenAI), comments (`: …`) and other fields
//! ignored. Bytes arrive in arbitrary chunks; an event that grows past a bound without
//! ending is an error, not unbounded memory. Each byte is scanned once however the
//! stream is cut, and consumed events leave the buffer in one move per chunk: the work is
//! linear in the stream, never quadratic.

/// One event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// The `data:` lines of an event, joined by `\n`.
    Data(String),
    /// `data: [DONE]`.
    Done,
    /// An `error:` field (llama-server sends errors in a stream this way).
    Error(String),
}

/// A stream that is not SSE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("malformed event stream: an event grew past {0} bytes without ending")]
    TooLong(usize),
    #[error("malformed event stream: not UTF-8 text")]
    NotText,
}

/// Incremental parser.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for an event's end.
    scanned: usize,
    max_event_bytes: usize,
}

impl SseParser {
    pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

    pub fn new() -> SseParser {
        Self::with_limit(Self::DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_limit(max_event_bytes: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            max_event_bytes,
        }
    }

    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        // Where the next event starts, and where its end is searched from: where the last
        // push stopped, less the 3 bytes a `\r\n\r\n` cut by the chunk boundary began in.
        let mut start = 0;
        let mut from = self.scanned.saturating_sub(3);
        let mut result = Ok(());
        while let Some((end, sep)) = event_end(&self.buf, from) {
            let text = std::str::from_utf8(&self.buf[start..end]).map_err(|_| SseError::NotText);
            start = end + sep;
            from = start;
            match text {
                Ok(text) => out.extend(parse_event(text)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        result?;
        if self.buf.len() > self.max_event_bytes {
            return Err(SseError::TooLong(self.max_event_bytes));
        }
        Ok(out)
    }

    /// The end of the stream: an unterminated last event still counts.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let raw = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let text = std::str::from_utf8(&raw).map_err(|_| SseError::NotText)?;
        Ok(parse_event(text))
    }
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the first event in `buf` that ends at or after `from` ends, and how long its
/// blank-line separator is.
fn event_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn parse_event(text: &str) -> Option<SseEvent> {
    let mut data: Vec<&str> = Vec::new();
    let mut error: Option<&str> = None;
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => data.push(value),
            "error" => error = Some(value),
            _ => {}
        }
    }
    if let Some(e) = error {
        return Some(SseEvent::Error(e.to_string()));
    }
    if data.is_empty() {
        return None;
    }
    let joined = data.join("\n");
    if joined.trim() == "[DONE]" {
        Some(SseEvent::Done)
    } else {
        Some(SseEvent::Data(joined))
    }
}

/// Newline-delimited JSON (Ollama streams one object per line), read with the same
/// bound on a line that never ends. Lines come out as [`SseEvent::Data`].
#[derive(Debug)]
pub struct NdjsonParser {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max_line_bytes: usize,
}

impl NdjsonParser {
    pub fn new() -> NdjsonParser {
        NdjsonParser {
            buf: Vec::new(),
            scanned: 0,
            max_line_bytes: SseParser::DEFAULT_MAX_EVENT_BYTES,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        let mut result = Ok(());
        while let Some(end) = self.buf[from..].iter().position(|b| *b == b'\n') {
            let end = from + end;
            let line = std::str::from_utf8(&self.buf[start..end]).map_err(|_| SseError::NotText);
            start = end + 1;
            from = start;
            match line.map(str::trim) {
                Ok("") => {}
                Ok(text) => out.push(SseEvent::Data(text.to_string())),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        result?;
        if self.buf.len() > self.max_line_bytes {
            return Err(SseError::TooLong(self.max_line_bytes));
        }
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let raw = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| SseError::NotText)?
            .trim();
        Ok((!text.is_empty()).then(|| SseEvent::Data(text.to_string())))
    }
}

impl Default for NdjsonParser {
    fn default() -> Self {
        Self::new()
    }
}

/// The framing a server streams in.
#[derive(Debug)]
pub enum StreamParser {
    Sse(SseParser),
    Ndjson(NdjsonParser),
}

impl StreamParser {
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        match self {
            Self::Sse(p) => p.push(chunk),
            Self::Ndjson(p) => p.push(chunk),
        }
    }

    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        match self {
            Self::Sse(p) => p.finish(),
            Self::Ndjson(p) => p.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ndjson_lines_across_chunks() {
        let mut p = NdjsonParser::new();
        assert_eq!(
            p.push(b"{\"a\":1}\n{\"b\"").unwrap(),
            vec![SseEvent::Data("{\"a\":1}".into())]
        );
        assert_eq!(
            p.push(b":2}\r\n\n").unwrap(),
            vec![SseEvent::Data("{\"b\":2}".into())]
        );
        p.push(b"{\"c\":3}").unwrap();
        assert_eq!(
            p.finish().unwrap(),
            Some(SseEvent::Data("{\"c\":3}".into()))
        );
    }

    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: {\"a\"").unwrap(), vec![]);
        assert_eq!(
            p.push(b":1}\n\n: keep-alive\n\ndata: x\r\n\r\ndata: [DONE]\n\n")
                .unwrap(),
            vec![
                SseEvent::Data("{\"a\":1}".into()),
                SseEvent::Data("x".into()),
                SseEvent::Done
            ]
        );
        assert_eq!(p.finish().unwrap(), None);
    }

    #[test]
    fn multi_line_data_and_error_fields() {
        let mut p = SseParser::new();
        let ev = p
            .push(b"event: x\ndata: 1\ndata: 2\n\nerror: {\"code\":500}\n\n")
            .unwrap();
        assert_eq!(
            ev,
            vec![
                SseEvent::Data("1\n2".into()),
                SseEvent::Error("{\"code\":500}".into())
            ]
        );
        p.push(b"data: tail").unwrap();
        assert_eq!(p.finish().unwrap(), Some(SseEvent::Data("tail".into())));
    }

    #[test]
    fn an_endless_event_is_an_error() {
        let mut p = SseParser::with_limit(64);
        assert!(p.push(&[b'x'; 32]).unwrap().is_empty());
        assert_eq!(p.push(&[b'x'; 40]), Err(SseError::TooLong(64)));
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: \xff\xfe\n\n"), Err(SseError::NotText));
    }
}
