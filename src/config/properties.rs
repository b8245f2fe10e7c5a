//! A `.properties` reader with `java.util.Properties.load` rules (spec/properties.md §1.1),
//! applied to bytes. It owns syntax only: which keys mean what is `broker.rs` / `namesrv.rs`.
//!
//! Rules, as upstream:
//! - lines end at `\n`, `\r` or `\r\n`; leading blanks (space, tab, form feed) are skipped;
//! - a line whose first non-blank char is `#` or `!` is a comment (and never continues);
//! - the key ends at the first unescaped `=`, `:` or blank; then blanks, at most one `=`/`:`,
//!   and blanks are skipped; the rest of the line is the value, **trailing blanks included**;
//! - a line ending in an odd number of backslashes continues on the next line, whose leading
//!   blanks are dropped;
//! - escapes: `\t \n \r \f`, `\uXXXX` (exactly four hex digits, else an error), and `\` + any
//!   other char is that char;
//! - duplicate keys: the last one wins.
//!
//! Decoding, deliberately unlike upstream: Java reads the file as ISO-8859-1 (byte = char), so
//! raw UTF-8 in a value turns into mojibake. Real files are written in UTF-8 (the seed install's
//! comments are Chinese), so each logical line that is valid UTF-8 is decoded as UTF-8; a line
//! that is not falls back to ISO-8859-1, exactly as Java would read it. Comment lines are skipped
//! before decoding, whatever their bytes. A UTF-8 byte-order mark at the start of the file is
//! dropped (Java would make it part of the first key).
//!
//! Runs once at start-up, before any shard exists, so `std::fs` is fine here.

use std::path::Path;

use super::error::ConfigError;

/// One `key=value` pair, with the 1-based line on which its logical line starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// The entries of one properties file, in file order, one per distinct key (the last
/// occurrence of a key wins and carries its line number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<Entry>,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

impl Properties {
    /// Parses bytes; errors name the file as `<input>`.
    pub fn parse(bytes: &[u8]) -> Result<Properties, ConfigError> {
        Self::parse_named(bytes, Path::new("<input>"))
    }

    /// Parses bytes; `file` is only used to name the source in errors.
    pub fn parse_named(bytes: &[u8], file: &Path) -> Result<Properties, ConfigError> {
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        let mut props = Properties::default();
        let mut lines = PhysicalLines::new(bytes);
        while let Some((raw, line)) = lines.next() {
            let first = skip_blanks(raw);
            match first.first() {
                None | Some(b'#') | Some(b'!') => continue,
                Some(_) => {}
            }
            let logical = join_continuations(first, &mut lines);
            let text = decode(&logical);
            let (key, value) = split_key_value(&text, file, line)?;
            props.insert(Entry { key, value, line });
        }
        Ok(props)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Properties, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_named(&bytes, path)
    }

    /// Builds properties from pairs (line numbers count from 1); handy for tests and callers
    /// that assemble a configuration in code.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Properties {
        let mut props = Properties::default();
        for (i, (key, value)) in pairs.into_iter().enumerate() {
            props.insert(Entry {
                key: key.to_owned(),
                value: value.to_owned(),
                line: i + 1,
            });
        }
        props
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// The entry of `key` (value and line), if present.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sets `key` as if the file said so (`mqbroker --set key=value`): replaces the file's
    /// value (keeping its position) or appends. Its line is 0: messages name the command line.
    pub fn set(&mut self, key: &str, value: &str) {
        self.insert(Entry {
            key: key.to_owned(),
            value: value.to_owned(),
            line: 0,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Last one wins: a repeated key takes the new value and line, keeping its first position.
    fn insert(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.key == entry.key) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }
}

/// Splits bytes into physical lines at `\n`, `\r` or `\r\n`, numbering them from 1.
struct PhysicalLines<'a> {
    rest: &'a [u8],
    line: usize,
    done: bool,
}

impl<'a> PhysicalLines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        PhysicalLines {
            rest: bytes,
            line: 0,
            done: bytes.is_empty(),
        }
    }

    fn next(&mut self) -> Option<(&'a [u8], usize)> {
        if self.done {
            return None;
        }
        self.line += 1;
        let rest = self.rest;
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(end) => {
                let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                self.rest = &rest[end + skip..];
                self.done = self.rest.is_empty();
                Some((&rest[..end], self.line))
            }
            None => {
                self.done = true;
                Some((rest, self.line))
            }
        }
    }
}

fn is_blank_byte(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == 0x0C
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{0C}'
}

fn skip_blanks(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| !is_blank_byte(b))
        .unwrap_or(line.len());
    &line[start..]
}

fn ends_with_odd_backslashes(line: &[u8]) -> bool {
    line.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// Glues continuation lines onto `first`: while the logical line ends in an odd number of
/// backslashes, drop that backslash and append the next physical line minus its leading blanks.
/// At end of input the dangling backslash is just dropped (as Java does).
fn join_continuations(first: &[u8], lines: &mut PhysicalLines<'_>) -> Vec<u8> {
    let mut logical = first.to_vec();
    while ends_with_odd_backslashes(&logical) {
        logical.pop();
        match lines.next() {
            Some((next, _)) => logical.extend_from_slice(skip_blanks(next)),
            None => break,
        }
    }
    logical
}

/// UTF-8 when valid, else ISO-8859-1 (see the module doc).
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn split_key_value(text: &str, file: &Path, line: usize) -> Result<(String, String), ConfigError> {
    let chars: Vec<char> = text.chars().collect();
    let mut key_end = chars.len();
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if !escaped && (c == '=' || c == ':') {
            (key_end, value_start, has_separator) = (i, i + 1, true);
            break;
        }
        if !escaped && is_blank(c) {
            (key_end, value_start) = (i, i + 1);
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    while let Some(&c) = chars.get(value_start) {
        if is_blank(c) {
            value_start += 1;
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            value_start += 1;
        } else {
            break;
        }
    }
    let key = unescape(&chars[..key_end], file, line)?;
    let value = unescape(&chars[value_start..], file, line)?;
    Ok((key, value))
}

/// Resolves `\t \n \r \f \uXXXX` and `\x` = `x`. UTF-16 surrogate pairs written as two `\u`
/// escapes are combined; a lone surrogate cannot live in a Rust string and is an error.
fn unescape(chars: &[char], file: &Path, line: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            continue;
        }
        // A trailing lone backslash was already consumed as a continuation; ignore one here.
        let Some(&next) = chars.get(i) else { break };
        i += 1;
        match next {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{0C}'),
            'u' => {
                let (ch, used) = unicode_escape(&chars[i..], file, line)?;
                out.push(ch);
                i += used;
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Decodes the text after a `\u`: four hex digits, plus a second `\uXXXX` for a surrogate pair.
/// Returns the char and how many chars were consumed.
fn unicode_escape(rest: &[char], file: &Path, line: usize) -> Result<(char, usize), ConfigError> {
    let bad = |reason: String| ConfigError::BadEscape {
        file: file.to_path_buf(),
        line,
        reason,
    };
    let high = hex4(rest).ok_or_else(|| bad(format!("\\u{} is not \\uXXXX", preview(rest))))?;
    if let Some(c) = char::from_u32(high) {
        return Ok((c, 4));
    }
    if !(0xD800..0xDC00).contains(&high) {
        return Err(bad(format!("\\u{high:04X} is a lone low surrogate")));
    }
    let low = match rest.get(4..6) {
        Some(['\\', 'u']) => hex4(&rest[6..]),
        _ => None,
    };
    match low {
        Some(low) if (0xDC00..0xE000).contains(&low) => {
            let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            let c = char::from_u32(code)
                .ok_or_else(|| bad(format!("\\u{high:04X}\\u{low:04X} is not a character")))?;
            Ok((c, 10))
        }
        _ => Err(bad(format!(
            "\\u{high:04X} is a high surrogate without its low half"
        ))),
    }
}

fn hex4(chars: &[char]) -> Option<u32> {
    let digits = chars.get(..4)?;
    digits
        .iter()
        .try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
}

fn preview(chars: &[char]) -> String {
    chars.iter().take(4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Properties {
        Properties::parse(text.as_bytes()).unwrap()
    }

    fn pairs(props: &Properties) -> Vec<(&str, &str)> {
        props
            .entries()
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn separators_equal_colon_and_blank_are_equivalent() {
        let p = parse("a=b\nc:d\ne f\ng = h\ni : j\nk \t l\nm=\nn\n");
        assert_eq!(
            pairs(&p),
            [
                ("a", "b"),
                ("c", "d"),
                ("e", "f"),
                ("g", "h"),
                ("i", "j"),
                ("k", "l"),
                ("m", ""),
                ("n", "")
            ]
        );
    }

    #[test]
    fn only_one_separator_is_skipped() {
        let p = parse("a==b\nc :=d\ne = =f\n");
        assert_eq!(pairs(&p), [("a", "=b"), ("c", "=d"), ("e", "=f")]);
    }

    #[test]
    fn trailing_whitespace_is_kept_and_leading_skipped() {
        let p = parse("   brokerRole=SLAVE \n\t listenPort = 10911\t\n");
        assert_eq!(p.get("brokerRole"), Some("SLAVE "));
        assert_eq!(p.get("listenPort"), Some("10911\t"));
    }

    #[test]
    fn comments_with_hash_and_bang_are_skipped_and_inline_comments_are_values() {
        let p = parse("# c1\n  ! c2\n!x=y\ndeleteWhen=04 # 4am\n");
        assert_eq!(pairs(&p), [("deleteWhen", "04 # 4am")]);
    }

    #[test]
    fn comment_lines_do_not_continue() {
        let p = parse("# comment \\\na=b\n");
        assert_eq!(pairs(&p), [("a", "b")]);
    }

    #[test]
    fn comments_with_any_bytes_are_skipped() {
        let mut bytes = b"#\xff\xfe\x80 not utf-8\n".to_vec();
        bytes.extend_from_slice("#中文注释\nk=v\n".as_bytes());
        let p = Properties::parse(&bytes).unwrap();
        assert_eq!(pairs(&p), [("k", "v")]);
    }

    #[test]
    fn continuation_lines_join_and_drop_leading_blanks() {
        let p = parse("list=a,\\\n    b,\\\n\tc\nnext=1\n");
        assert_eq!(pairs(&p), [("list", "a,b,c"), ("next", "1")]);
        assert_eq!(p.entry("next").unwrap().line, 4);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let p = parse("path=C:\\\\\nnext=1\n");
        assert_eq!(pairs(&p), [("path", "C:\\"), ("next", "1")]);
    }

    #[test]
    fn continuation_line_starting_with_hash_is_value_text() {
        let p = parse("a=x\\\n  #y\n");
        assert_eq!(pairs(&p), [("a", "x#y")]);
    }

    #[test]
    fn continuation_into_an_empty_line_ends_the_entry() {
        let p = parse("a=b\\\n\nc=d\n");
        assert_eq!(pairs(&p), [("a", "b"), ("c", "d")]);
    }

    #[test]
    fn dangling_backslash_at_end_of_input_is_dropped() {
        let p = parse("a=b\\");
        assert_eq!(pairs(&p), [("a", "b")]);
    }

    #[test]
    fn escapes_are_resolved_in_keys_and_values() {
        let p = parse("a\\=b\\ c=1\\t2\\n3\\r4\\f5\\u0041\\\\\\:\\#\\q\n");
        assert_eq!(pairs(&p), [("a=b c", "1\t2\n3\r4\u{0C}5A\\:#q")]);
    }

    #[test]
    fn windows_paths_lose_single_backslashes_as_in_java() {
        let p = parse("dir=C:\\data\\store\n");
        assert_eq!(p.get("dir"), Some("C:datastore"));
    }

    #[test]
    fn unicode_escapes_and_surrogate_pairs() {
        let p = parse("k=\\u4E2D\\u6587 \\uD83D\\uDE00\n");
        assert_eq!(p.get("k"), Some("中文 😀"));
    }

    #[test]
    fn malformed_unicode_escape_names_file_and_line() {
        let err = Properties::parse_named(b"a=1\n\nb=\\u12G4\n", Path::new("conf/x.properties"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("conf/x.properties:3: malformed escape"),
            "{msg}"
        );
        assert!(msg.contains("\\u12G4"), "{msg}");
    }

    #[test]
    fn short_unicode_escape_at_end_is_an_error() {
        let err = Properties::parse(b"b=\\u12").unwrap_err();
        assert!(
            matches!(err, ConfigError::BadEscape { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn lone_surrogates_are_errors() {
        assert!(Properties::parse(b"b=\\uD83D").is_err());
        assert!(Properties::parse(b"b=\\uDE00").is_err());
        assert!(Properties::parse(b"b=\\uD83Dx").is_err());
    }

    #[test]
    fn crlf_and_lone_cr_end_lines() {
        let p = parse("a=1\r\nb=2\rc=3\r\n\r\nd=4");
        assert_eq!(pairs(&p), [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        assert_eq!(p.entry("d").unwrap().line, 5);
    }

    #[test]
    fn duplicate_keys_last_wins_with_its_line() {
        let p = parse("a=1\nb=2\na=3\n");
        assert_eq!(pairs(&p), [("a", "3"), ("b", "2")]);
        assert_eq!(p.entry("a").unwrap().line, 3);
    }

    #[test]
    fn utf8_values_are_taken_as_utf8() {
        let p = parse("brokerName=中文\n");
        assert_eq!(p.get("brokerName"), Some("中文"));
    }

    #[test]
    fn non_utf8_values_fall_back_to_latin1() {
        let p = Properties::parse(b"name=caf\xe9\n").unwrap();
        assert_eq!(p.get("name"), Some("caf\u{e9}"));
    }

    #[test]
    fn bom_is_dropped() {
        let p = Properties::parse(b"\xEF\xBB\xBFbrokerId=1\n").unwrap();
        assert_eq!(p.get("brokerId"), Some("1"));
    }

    #[test]
    fn blank_lines_and_empty_input() {
        assert!(parse("").is_empty());
        assert!(parse("\n \n\t\n").is_empty());
    }

    #[test]
    fn line_numbers_point_at_the_start_of_the_logical_line() {
        let p = parse("# c\n\nk=a\\\n b\nz=1\n");
        assert_eq!(p.entry("k").unwrap().line, 3);
        assert_eq!(p.entry("z").unwrap().line, 5);
    }

    #[test]
    fn load_reports_missing_file_with_its_path() {
        let err = Properties::load(Path::new("/nonexistent/dir/x.properties")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/x.properties"));
    }
}
