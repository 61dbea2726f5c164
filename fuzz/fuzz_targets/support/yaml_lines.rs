//! Lines as the YAML parser (libyaml, under serde_yaml) counts them, for the targets that
//! check a syntax error's line: LF, CRLF and a lone CR each end a line (YAML 1.2 §5.4), and so
//! do NEL (U+0085), LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029), which libyaml
//! keeps from YAML 1.1 (found by fuzzing: an error on "line 6 of 4" was on the sixth line by
//! libyaml's count, two NELs in).

/// The number of lines of `text`, counted as libyaml does.
pub fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{85}', '\u{2028}', '\u{2029}'], "\n")
        .lines()
        .count()
}
