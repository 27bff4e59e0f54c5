//! llama-bench's `-o sql` output, tokenized and read (never executed).

use super::*;

/// Reads `llama-bench -o sql` output: an optional `CREATE TABLE`, then `INSERT INTO … VALUES
/// (…);` statements, one test per row. Runs appended to one file (several `CREATE TABLE IF
/// NOT EXISTS`) are fine. Any other statement is an error.
pub fn parse_sql(input: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    check_size(input)?;
    let index = LineIndex::new(input);
    let mut parser = SqlParser {
        lexer: Lexer {
            src: input,
            pos: 0,
            index: &index,
        },
        peeked: None,
        tables: BTreeMap::new(),
    };
    let mut records = Vec::new();
    while let Some(tok) = parser.next_token()? {
        match tok.kind {
            TokKind::Semi => {}
            TokKind::Word(w) if w.eq_ignore_ascii_case("CREATE") => parser.create_table()?,
            TokKind::Word(w) if w.eq_ignore_ascii_case("INSERT") => parser.insert(&mut records)?,
            _ => {
                return Err(parser.unexpected(&tok, "`CREATE TABLE` or `INSERT INTO`"));
            }
        }
    }
    Ok(records)
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokKind<'a> {
    /// A bare word: keyword or identifier.
    Word(&'a str),
    /// A `"quoted"`, `` `quoted` `` or `[bracketed]` identifier, unescaped.
    QuotedIdent(String),
    /// A `'string'` literal, unescaped.
    Str(String),
    Number(&'a str),
    LParen,
    RParen,
    Comma,
    Semi,
    Minus,
    Plus,
}

#[derive(Debug, Clone)]
pub(super) struct Tok<'a> {
    pub(super) kind: TokKind<'a>,
    pub(super) offset: usize,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match &self.kind {
            TokKind::Word(w) => format!("`{}`", shorten(w)),
            TokKind::QuotedIdent(s) => format!("identifier `{}`", shorten(s)),
            TokKind::Str(s) => format!("string '{}'", shorten(s)),
            TokKind::Number(n) => format!("number {}", shorten(n)),
            TokKind::LParen => "`(`".into(),
            TokKind::RParen => "`)`".into(),
            TokKind::Comma => "`,`".into(),
            TokKind::Semi => "`;`".into(),
            TokKind::Minus => "`-`".into(),
            TokKind::Plus => "`+`".into(),
        }
    }
}

pub(super) fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

pub(super) struct Lexer<'a, 'i> {
    src: &'a str,
    pos: usize,
    index: &'i LineIndex,
}

impl<'a> Lexer<'a, '_> {
    fn error(&self, offset: usize, problem: impl Into<String>) -> LlamaBenchError {
        let (line, column) = self.index.position(offset);
        LlamaBenchError::Sql {
            line,
            column,
            problem: problem.into(),
        }
    }

    pub(super) fn next_token(&mut self) -> Result<Option<Tok<'a>>, LlamaBenchError> {
        let bytes = self.src.as_bytes();
        loop {
            while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            let rest = &self.src[self.pos..];
            if rest.starts_with("--") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => return Err(self.error(self.pos, "unterminated comment")),
                }
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(c) = self.src[start..].chars().next() else {
            return Ok(None);
        };
        let single = |kind| Some((kind, start + 1));
        let (kind, end) = match c {
            '(' => single(TokKind::LParen),
            ')' => single(TokKind::RParen),
            ',' => single(TokKind::Comma),
            ';' => single(TokKind::Semi),
            '-' => single(TokKind::Minus),
            '+' => single(TokKind::Plus),
            '\'' => self
                .quoted(start, '\'', '\'')
                .map(|(s, e)| (TokKind::Str(s), e)),
            '"' => self
                .quoted(start, '"', '"')
                .map(|(s, e)| (TokKind::QuotedIdent(s), e)),
            '`' => self
                .quoted(start, '`', '`')
                .map(|(s, e)| (TokKind::QuotedIdent(s), e)),
            '[' => self
                .quoted(start, '[', ']')
                .map(|(s, e)| (TokKind::QuotedIdent(s), e)),
            c if c.is_ascii_digit()
                || (c == '.' && rest_starts_with_digit(&self.src[start + 1..])) =>
            {
                let end = number_end(self.src, start);
                Some((TokKind::Number(&self.src[start..end]), end))
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = self.src[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                    .unwrap_or(self.src.len() - start);
                Some((TokKind::Word(&self.src[start..start + len]), start + len))
            }
            _ => None,
        }
        .ok_or_else(|| {
            if matches!(c, '\'' | '"' | '`' | '[') {
                self.error(start, "unterminated quoted literal")
            } else {
                self.error(start, format!("unexpected character {c:?}"))
            }
        })?;
        self.pos = end;
        Ok(Some(Tok {
            kind,
            offset: start,
        }))
    }

    /// The text between `open` at `start` and the matching `close`, a doubled `close`
    /// standing for one; `None` when the input ends first.
    fn quoted(&self, start: usize, open: char, close: char) -> Option<(String, usize)> {
        let mut out = String::new();
        let mut i = start + open.len_utf8();
        loop {
            let rel = self.src[i..].find(close)?;
            out.push_str(&self.src[i..i + rel]);
            i += rel + close.len_utf8();
            if close != ']' && self.src[i..].starts_with(close) {
                out.push(close);
                i += close.len_utf8();
            } else {
                return Some((out, i));
            }
        }
    }
}

pub(super) fn rest_starts_with_digit(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// The end of the numeric literal starting at `start`: digits, a fraction, an exponent.
pub(super) fn number_end(src: &str, start: usize) -> usize {
    let b = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        digits(&mut i);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = j;
            digits(&mut i);
        }
    }
    i
}

pub(super) struct SqlParser<'a, 'i> {
    lexer: Lexer<'a, 'i>,
    peeked: Option<Tok<'a>>,
    /// Declared column types by table and column, from `CREATE TABLE`.
    tables: BTreeMap<String, BTreeMap<String, Affinity>>,
}

impl<'a> SqlParser<'a, '_> {
    pub(super) fn next_token(&mut self) -> Result<Option<Tok<'a>>, LlamaBenchError> {
        match self.peeked.take() {
            Some(t) => Ok(Some(t)),
            None => self.lexer.next_token(),
        }
    }

    fn peek(&mut self) -> Result<Option<&Tok<'a>>, LlamaBenchError> {
        if self.peeked.is_none() {
            self.peeked = self.lexer.next_token()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn unexpected(&self, tok: &Tok<'_>, expected: &str) -> LlamaBenchError {
        self.lexer.error(
            tok.offset,
            format!("expected {expected}, found {}", tok.describe()),
        )
    }

    /// The next token, which must exist.
    fn need(&mut self, expected: &str) -> Result<Tok<'a>, LlamaBenchError> {
        match self.next_token()? {
            Some(t) => Ok(t),
            None => Err(self.lexer.error(
                self.lexer.src.len(),
                format!("expected {expected}, found the end of the input"),
            )),
        }
    }

    fn expect(&mut self, kind: TokKind<'_>, expected: &str) -> Result<Tok<'a>, LlamaBenchError> {
        let tok = self.need(expected)?;
        if tok.kind == kind {
            Ok(tok)
        } else {
            Err(self.unexpected(&tok, expected))
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), LlamaBenchError> {
        let expected = format!("`{word}`");
        let tok = self.need(&expected)?;
        match tok.kind {
            TokKind::Word(w) if w.eq_ignore_ascii_case(word) => Ok(()),
            _ => Err(self.unexpected(&tok, &expected)),
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, LlamaBenchError> {
        let tok = self.need(what)?;
        match tok.kind {
            TokKind::Word(w) => Ok(w.to_string()),
            TokKind::QuotedIdent(s) => Ok(s),
            _ => Err(self.unexpected(&tok, what)),
        }
    }

    /// `CREATE TABLE [IF NOT EXISTS] name (column type, …);`, after `CREATE`.
    fn create_table(&mut self) -> Result<(), LlamaBenchError> {
        self.keyword("TABLE")?;
        if matches!(self.peek()?, Some(Tok { kind: TokKind::Word(w), .. }) if w.eq_ignore_ascii_case("IF"))
        {
            self.next_token()?;
            self.keyword("NOT")?;
            self.keyword("EXISTS")?;
        }
        let table = self.ident("a table name")?;
        self.expect(TokKind::LParen, "`(`")?;
        let mut columns = BTreeMap::new();
        loop {
            let column = self.ident("a column name")?;
            // The declared type: the words up to the `,` or `)` that ends the column; a
            // parenthesized size like `VARCHAR(10)` is skipped.
            let mut declared = Vec::new();
            let mut depth = 0usize;
            let end = loop {
                let tok = self.need("`,` or `)`")?;
                match tok.kind {
                    TokKind::LParen => depth += 1,
                    TokKind::RParen if depth > 0 => depth -= 1,
                    TokKind::RParen | TokKind::Comma if depth == 0 => break tok.kind,
                    TokKind::Word(w) if depth == 0 => declared.push(w),
                    TokKind::Semi => return Err(self.unexpected(&tok, "`,` or `)`")),
                    _ => {}
                }
            };
            if columns.len() == MAX_FIELDS {
                return Err(self
                    .lexer
                    .error(self.lexer.pos, format!("more than {MAX_FIELDS} columns")));
            }
            columns.insert(column, Affinity::of(&declared.join(" ")));
            if end == TokKind::RParen {
                break;
            }
        }
        self.expect(TokKind::Semi, "`;`")?;
        self.tables.insert(table, columns);
        Ok(())
    }

    /// `INSERT INTO name (columns) VALUES (values), …;`, after `INSERT`.
    fn insert(&mut self, records: &mut Vec<LlamaBenchRecord>) -> Result<(), LlamaBenchError> {
        self.keyword("INTO")?;
        let table = self.ident("a table name")?;
        self.expect(TokKind::LParen, "`(`")?;
        let mut columns: Vec<(String, usize)> = Vec::new();
        loop {
            let end = self.lexer.src.len();
            let offset = self.peek()?.map_or(end, |t| t.offset);
            let column = self.ident("a column name")?;
            if columns.iter().any(|(c, _)| *c == column) {
                return Err(self
                    .lexer
                    .error(offset, format!("column `{}` named twice", shorten(&column))));
            }
            if columns.len() == MAX_FIELDS {
                return Err(self
                    .lexer
                    .error(offset, format!("more than {MAX_FIELDS} columns")));
            }
            columns.push((column, offset));
            let tok = self.need("`,` or `)`")?;
            match tok.kind {
                TokKind::Comma => {}
                TokKind::RParen => break,
                _ => return Err(self.unexpected(&tok, "`,` or `)`")),
            }
        }
        self.keyword("VALUES")?;
        let declared = self.tables.get(&table);
        let affinities: Vec<Affinity> = columns
            .iter()
            .map(|(c, _)| {
                declared
                    .and_then(|t| t.get(c))
                    .copied()
                    .unwrap_or(Affinity::Text)
            })
            .collect();
        loop {
            let open = self.expect(TokKind::LParen, "`(`")?;
            let row_line = self.lexer.index.line(open.offset);
            let mut fields = Fields::new(row_line);
            let mut n = 0;
            loop {
                let (value, offset) = self.value()?;
                if let (Some((name, _)), Some(affinity)) = (columns.get(n), affinities.get(n)) {
                    let line = self.lexer.index.line(offset);
                    fields.set(
                        name.clone().into(),
                        Field {
                            line,
                            value: Value::Sql(value, *affinity),
                        },
                    );
                }
                n += 1;
                let tok = self.need("`,` or `)`")?;
                match tok.kind {
                    TokKind::Comma => {}
                    TokKind::RParen => break,
                    _ => return Err(self.unexpected(&tok, "`,` or `)`")),
                }
            }
            if n != columns.len() {
                return Err(self.lexer.error(
                    open.offset,
                    format!("{n} values for {} columns", columns.len()),
                ));
            }
            if records.len() == MAX_RECORDS {
                return Err(LlamaBenchError::TooManyRecords {
                    line: row_line,
                    max: MAX_RECORDS,
                });
            }
            records.push(fields.into_record()?);
            let tok = self.need("`,` or `;`")?;
            match tok.kind {
                TokKind::Comma => {}
                TokKind::Semi => return Ok(()),
                _ => return Err(self.unexpected(&tok, "`,` or `;`")),
            }
        }
    }

    /// One literal in a `VALUES` list, and where it starts.
    fn value(&mut self) -> Result<(SqlValue, usize), LlamaBenchError> {
        let tok = self.need("a value")?;
        let value = match &tok.kind {
            TokKind::Str(s) => SqlValue::Text(s.clone()),
            TokKind::Number(n) => SqlValue::Number((*n).to_string()),
            TokKind::Minus | TokKind::Plus => {
                let num = self.need("a number")?;
                let TokKind::Number(n) = num.kind else {
                    return Err(self.unexpected(&num, "a number"));
                };
                let sign = if tok.kind == TokKind::Minus { "-" } else { "" };
                SqlValue::Number(format!("{sign}{n}"))
            }
            TokKind::Word(w) if w.eq_ignore_ascii_case("NULL") => SqlValue::Null,
            TokKind::Word(w) if w.eq_ignore_ascii_case("TRUE") => SqlValue::Number("1".into()),
            TokKind::Word(w) if w.eq_ignore_ascii_case("FALSE") => SqlValue::Number("0".into()),
            _ => return Err(self.unexpected(&tok, "a value (a 'string', a number or NULL)")),
        };
        Ok((value, tok.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_reads_escaped_strings_and_numbers() {
        let src = "'it''s' -- note\n 12.5e3 .5 \"col\"\"x\" [a b]";
        let idx = LineIndex::new(src);
        let mut lx = Lexer {
            src,
            pos: 0,
            index: &idx,
        };
        let mut kinds = Vec::new();
        while let Some(t) = lx.next_token().unwrap() {
            kinds.push(t.kind);
        }
        assert_eq!(
            kinds,
            vec![
                TokKind::Str("it's".into()),
                TokKind::Number("12.5e3"),
                TokKind::Number(".5"),
                TokKind::QuotedIdent("col\"x".into()),
                TokKind::QuotedIdent("a b".into()),
            ]
        );
    }
}
