//! Text that came from an input (a backing file name in a qcow2 header, a VMDK descriptor),
//! made safe to show on a terminal. A hostile image can put ESC sequences, NUL, carriage
//! returns or newlines in a name to repaint the operator's terminal or to split a one-line
//! error into a forged second line; Unicode bidirectional controls can make a name read
//! differently from what it is. Every such character is shown as a `\u{..}` escape (`\n`,
//! `\r`, `\t` as themselves escaped); everything else is kept, so ordinary names read as they are.

/// `s` with every control, format-control and bidirectional-override character escaped.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape`] of bytes that may not be UTF-8: invalid bytes are shown as `\x..`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        // Zero-width and bidirectional formatting characters (Trojan Source, CVE-2021-42574).
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_ordinary_names_kept() {
        assert_eq!(escape("base.qcow2"), "base.qcow2");
        assert_eq!(escape("straße/ü.img"), "straße/ü.img");
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape("x\0y\r"), "x\\u{0}y\\r");
        assert_eq!(escape("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_bytes(b"ok\xff\x1b"), "ok\\xff\\u{1b}");
        assert!(!escape("\u{7f}").contains('\u{7f}'));
    }
}
