//! How a message's extras read, in both clients: the quoted start of the message a reply
//! answers, and the time an expiring message has left; and the pattern `/search` looks for.

/// Characters of the original kept in a reply's quote.
const QUOTE_CHARS: usize = 40;

/// The start of a message as a reply quotes it: `alice: the first words…`, on one line.
pub fn quote(from: &str, text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    let mut start: String = flat.chars().take(QUOTE_CHARS).collect();
    if flat.chars().count() > QUOTE_CHARS {
        // Cut at a space rather than inside a word, when there is one late enough.
        if let Some(space) = start.rfind(' ').filter(|&i| i >= start.len() / 2) {
            start.truncate(space);
        }
        start = start.trim_end().to_owned();
        start.push('…');
    }
    format!("{from}: {start}")
}

/// Time left, short: `29s`, `4m`, `2h`, `3d` (rounded down, but never `0s`).
pub fn time_left(secs: u64) -> String {
    match secs {
        0..60 => format!("{}s", secs.max(1)),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// The regular expression of `/search PATTERN`: case-insensitive unless the pattern has an
/// uppercase letter; an invalid one says why.
pub fn search_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(!pattern.chars().any(char::is_uppercase))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| match e {
            // The last line says what is wrong (the ones before draw the pattern).
            regex::Error::Syntax(why) => {
                let last = why.lines().last().unwrap_or_default();
                format!(
                    "not a valid pattern: {}",
                    last.trim_start_matches("error: ")
                )
            }
            other => format!("not a valid pattern: {other}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_one_short_line() {
        assert_eq!(quote("alice", "hi\nthere"), "alice: hi there");
        let long = "a fairly long message that goes on and on well past forty characters";
        assert_eq!(
            quote("bob", long),
            "bob: a fairly long message that goes on and…"
        );
    }

    #[test]
    fn search_is_case_insensitive_unless_the_pattern_has_capitals() {
        let re = search_regex("coffee").expect("valid");
        assert!(re.is_match("Coffee time"));
        let re = search_regex("Coffee").expect("valid");
        assert!(!re.is_match("coffee time"));
        assert!(re.is_match("Coffee time"));
        let bad = search_regex("(unclosed").expect_err("invalid");
        assert!(bad.starts_with("not a valid pattern"), "{bad}");
    }

    #[test]
    fn time_left_is_short() {
        assert_eq!(time_left(0), "1s");
        assert_eq!(time_left(29), "29s");
        assert_eq!(time_left(299), "4m");
        assert_eq!(time_left(7300), "2h");
        assert_eq!(time_left(3 * 86_400 + 5), "3d");
    }
}
