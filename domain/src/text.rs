//! Text for terminals. Values that came from clients (a device id, a user agent, a name) are
//! printed by the command-line tools; raw, an escape sequence in them would drive the reader's
//! terminal (change its title, clear the screen, hide or forge lines). [`escape_control`] is the
//! one function every text output passes such values through.
use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as is: control characters (C0 including newline and
/// tab, DEL, C1), and the invisible formatting characters that reorder or hide text (bidi
/// embeddings, overrides and isolates, zero-width characters, the byte-order mark).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every control or invisible formatting character written as a Rust-style escape
/// (`\u{1b}`), and backslashes doubled so that an escape typed by a client cannot pass for one
/// made here. Borrowed when there is nothing to escape.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_plain_text_is_borrowed_unchanged() {
        let s = "Mozilla/5.0 (X11; Linux) — appareil n°3 🦊";
        assert!(matches!(escape_control(s), Cow::Borrowed(_)));
        assert_eq!(escape_control(s), s);
    }

    #[test]
    fn test_terminal_escape_sequences_are_escaped() {
        let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
        let out = escape_control(evil);
        assert_eq!(out, "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J");
        assert!(!out.chars().any(char::is_control), "{out:?}");
    }

    #[test]
    fn test_newlines_tabs_del_and_c1_are_escaped() {
        assert_eq!(
            escape_control("a\nb\r\tc\u{7f}\u{9b}"),
            "a\\u{a}b\\u{d}\\u{9}c\\u{7f}\\u{9b}"
        );
    }

    #[test]
    fn test_bidi_and_invisible_characters_are_escaped() {
        assert_eq!(
            escape_control("abc\u{202e}fed\u{2066}\u{200b}\u{feff}"),
            "abc\\u{202e}fed\\u{2066}\\u{200b}\\u{feff}"
        );
    }

    #[test]
    fn test_a_typed_escape_cannot_pass_for_a_real_one() {
        // A client typing the six characters `\u{1b}` is told apart from a real ESC.
        assert_eq!(escape_control("\\u{1b}"), "\\\\u{1b}");
        assert_ne!(escape_control("\\u{1b}"), escape_control("\u{1b}"));
    }
}
