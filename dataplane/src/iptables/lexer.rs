//! Splits one line of `iptables-save` / `iptables-restore` text into words.
//!
//! ```text
//!   -A X -m comment --comment "a \"b\"" -j ACCEPT
//!   -> ["-A", "X", "-m", "comment", "--comment", "a \"b\"" (value: a "b"), "-j", "ACCEPT"]
//! ```
//! Words are separated by spaces or tabs. Double quotes group a word that contains spaces; a
//! backslash escapes the next character (as iptables-restore does). Single quotes are ordinary
//! characters (iptables-restore does not treat them specially). Each word keeps its raw text so
//! unknown options can be printed back byte for byte.

use std::borrow::Cow;

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word<'a> {
    /// The word exactly as written, quotes and escapes included.
    pub raw: &'a str,
    /// The word with quotes and escapes removed.
    pub value: Cow<'a, str>,
    /// Whether any part of the word was quoted (a quoted word is never an option).
    pub quoted: bool,
    /// Byte offset of the word in its line.
    pub offset: usize,
}

impl Word<'_> {
    /// Whether the word is an option name (`-x` or `--xyz`, not quoted, not a bare `-`).
    pub(crate) fn is_option(&self) -> bool {
        !self.quoted && self.raw.len() > 1 && self.raw.starts_with('-') && {
            let c = self.raw.as_bytes()[1];
            !c.is_ascii_digit()
        }
    }
}

/// A line the lexer cannot split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    /// Byte offset of the opening quote.
    pub offset: usize,
}

/// Splits `line` into words.
pub(crate) fn words(line: &str) -> Result<Vec<Word<'_>>, LexError> {
    let mut out = Vec::with_capacity(16);
    words_into(line, &mut out)?;
    Ok(out)
}

/// Splits `line` into words, appending to `out` (so one buffer serves every line of a dump).
pub(crate) fn words_into<'a>(line: &'a str, out: &mut Vec<Word<'a>>) -> Result<(), LexError> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        // Fast path: a word without quotes or escapes.
        while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'"' | b'\\') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b' ' || bytes[i] == b'\t' {
            let raw = &line[start..i];
            out.push(Word {
                raw,
                value: Cow::Borrowed(raw),
                quoted: false,
                offset: start,
            });
            continue;
        }
        let mut quoted = false;
        let mut in_quote = false;
        let mut quote_start = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !in_quote && (b == b' ' || b == b'\t') {
                break;
            }
            if b == b'"' {
                quoted = true;
                if !in_quote {
                    quote_start = i;
                }
                in_quote = !in_quote;
                i += 1;
            } else if b == b'\\' && i + 1 < bytes.len() {
                i += 2;
            } else {
                i += 1;
            }
        }
        if in_quote {
            return Err(LexError {
                offset: quote_start,
            });
        }
        // A backslash may precede a multi-byte character: step to a char boundary.
        while i < bytes.len() && !line.is_char_boundary(i) {
            i += 1;
        }
        let raw = &line[start..i];
        out.push(Word {
            raw,
            value: Cow::Owned(unquote(raw)),
            quoted,
            offset: start,
        });
    }
    Ok(())
}

fn unquote(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {}
            '\\' => match chars.next() {
                Some(n) => s.push(n),
                None => s.push('\\'),
            },
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_unquotes() {
        let w = words(r#"-A X -m comment --comment "a \"b\" \\c" -j  ACCEPT"#).unwrap();
        let vals: Vec<&str> = w.iter().map(|w| w.value.as_ref()).collect();
        assert_eq!(
            vals,
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                r#"a "b" \c"#,
                "-j",
                "ACCEPT"
            ]
        );
        assert_eq!(w[5].raw, r#""a \"b\" \\c""#);
        assert!(w[5].quoted && !w[5].is_option());
        assert!(w[4].is_option() && !w[1].is_option());
        assert!(words(r#"-A X "open"#).is_err());
        assert_eq!(words("").unwrap(), vec![]);
        assert_eq!(words("'a b'").unwrap().len(), 2);
        let w = words("--comment \"\"").unwrap();
        assert_eq!(w[1].value, "");
        assert!(words("x \\é").is_ok());
    }
}
