//! Emoji shortcodes, as GitHub and Slack write them: `:tada:` becomes 🎉 when a message is
//! sent, and Tab completes a shortcode after a `:` and two letters. The table is gemoji's,
//! through the `emojis` crate. Classic emoticons (`:)`, `:-P`) are left as typed, and so is
//! anything between colons that is not a shortcode (`12:30:45`, `:not-one:`).

use std::borrow::Cow;

/// `text` with every known `:shortcode:` replaced by its emoji.
pub fn expand(text: &str) -> Cow<'_, str> {
    if !text.contains(':') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(start) = rest.find(':') {
        let after = &rest[start + 1..];
        let Some(len) = after.find(':') else {
            break;
        };
        let name = &after[..len];
        match shortcode(name) {
            Some(emoji) => {
                out.push_str(&rest[..start]);
                out.push_str(emoji);
                rest = &after[len + 1..];
                changed = true;
            }
            None => {
                // The second colon may open the next shortcode.
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The emoji of shortcode `name` (without colons), if it is one.
fn shortcode(name: &str) -> Option<&'static str> {
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'));
    plausible
        .then(|| emojis::get_by_shortcode(name))
        .flatten()
        .map(|e| e.as_str())
}

/// The shortcodes that start with `prefix` (at least two characters), as `:name:`, sorted,
/// at most `max` of them.
pub fn complete(prefix: &str, max: usize) -> Vec<String> {
    if prefix.chars().count() < 2 {
        return Vec::new();
    }
    let mut found: Vec<&'static str> = emojis::iter()
        .flat_map(|e| e.shortcodes())
        .filter(|s| s.starts_with(prefix))
        .collect();
    found.sort_unstable_by_key(|s| (s.len(), *s));
    found.dedup();
    found.truncate(max);
    found.into_iter().map(|s| format!(":{s}:")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_become_emoji_and_everything_else_stays() {
        assert_eq!(expand("shipped :tada: :rocket:"), "shipped 🎉 🚀");
        assert_eq!(expand(":+1: done"), "👍 done");
        for same in [
            "plain text",
            "see you at 12:30:45",
            "smile :) and :-P and :D",
            ":not-a-shortcode: stays",
            "a lone : colon",
            "::",
        ] {
            assert_eq!(expand(same), same);
            assert!(matches!(expand(same), Cow::Borrowed(_)), "{same}");
        }
        assert_eq!(expand("at 10:tada:"), "at 10🎉");
        assert_eq!(expand("x:y:tada:"), "x:y🎉");
    }

    #[test]
    fn completion_needs_two_letters_and_lists_the_shortest_first() {
        assert!(complete("t", 10).is_empty());
        let found = complete("ta", 50);
        assert!(found.contains(&":tada:".to_owned()), "{found:?}");
        assert!(found.iter().all(|s| s.starts_with(":ta")), "{found:?}");
        assert!(found.windows(2).all(|w| w[0].len() <= w[1].len()));
        assert_eq!(complete("rock", 2), [":rock:", ":rocket:"]);
    }
}
