//! Received text made safe to show in a terminal: control characters and bidirectional
//! overrides become `�`, so nothing a peer sends can drive or disguise the terminal. Both
//! clients show received text through these.

/// Makes text received from elsewhere safe to print on one terminal line.
pub fn sanitize_line(s: &str) -> String {
    clean(s, false)
}

/// Makes received text safe to show in a terminal, keeping its newlines and tabs.
pub fn sanitize_text(s: &str) -> String {
    clean(s, true)
}

/// Replaces control characters (newlines too unless `multiline`; tabs are kept) and
/// bidirectional overrides and isolates with U+FFFD.
fn clean(s: &str, multiline: bool) -> String {
    s.chars()
        .map(|c| {
            let allowed = c == '\t' || (multiline && c == '\n');
            let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if (c.is_control() && !allowed) || bidi {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}
