//! The server's search (`ClientFrame::Search`): a pattern, a regular expression, gives the
//! words to look up in the store's full-text index (SQLite FTS5, all of them required: a word
//! that the pattern's text goes on after, as a whole word; the last of a run of text, as the
//! beginning of one), and every message found must then match the pattern itself. A pattern
//! without a word (`\d+`, an emoji) cannot use the index and is refused rather than read
//! through every stored message.

use chat_core::names::fold;
use chat_core::protocol::{MAX_SEARCH_PATTERN, MessageId};
use regex::{Regex, RegexBuilder};
use regex_syntax::hir::{Hir, HirKind};

/// The most words of a pattern looked up.
const MAX_WORDS: usize = 16;

/// A search, checked and compiled.
#[derive(Debug, Clone)]
pub struct Query {
    /// The pattern as the client sent it.
    pub pattern: String,
    /// The words looked up, all required, in lower case: each with whether it may be the
    /// beginning of a longer word (a prefix) or is a whole word.
    pub words: Vec<(String, bool)>,
    /// What every message found must match (case-insensitive unless the pattern has a
    /// capital letter, as in the clients' scrollback search).
    pub regex: Regex,
    /// Only messages with this id or a larger one.
    pub from_id: MessageId,
    /// Not the messages of this sender (a folded nickname).
    pub not_from: Option<String>,
    /// Only messages sent since the searcher's account exists, in rooms too (private ones
    /// always are).
    pub since_account: bool,
}

impl Query {
    /// Checks and compiles `pattern`, or says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Query, String> {
        if pattern.trim().is_empty() {
            return Err("a search needs a pattern".to_owned());
        }
        if pattern.len() > MAX_SEARCH_PATTERN {
            return Err(format!(
                "a search pattern is at most {MAX_SEARCH_PATTERN} bytes long; this one is {}",
                pattern.len()
            ));
        }
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(!pattern.chars().any(char::is_uppercase))
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        let hir = regex_syntax::Parser::new()
            .parse(pattern)
            .map_err(|e| invalid(&e.to_string()))?;
        let mut literals = Vec::new();
        required_literals(&hir, &mut literals);
        // A word that its literal continues with another character ends there: a whole word
        // of the message (looked up as it is); the last of a literal may go on (a prefix).
        let mut words: Vec<(String, bool)> = literals
            .iter()
            .flat_map(|l| {
                let parts = index_words(l);
                let goes_on = parts.last().is_some_and(|w| l.ends_with(w.as_str()));
                let last = parts.len().saturating_sub(1);
                parts
                    .into_iter()
                    .enumerate()
                    .map(move |(i, w)| (w.to_lowercase(), i == last && goes_on))
            })
            .collect();
        words.sort_unstable();
        words.dedup();
        words.truncate(MAX_WORDS);
        if words.is_empty() {
            return Err(
                "the server looks messages up by their words: the pattern needs one (letters or \
                 digits outside brackets and alternatives), as in coffee or cof+ee"
                    .to_owned(),
            );
        }
        Ok(Query {
            pattern: pattern.to_owned(),
            words,
            regex,
            from_id: 0,
            not_from: None,
            since_account: false,
        })
    }

    /// The messages by others that mention `nick` as a word (case-insensitively; letters,
    /// digits, `_` and `-` are a word's, as the clients highlight mentions), from message
    /// `from` on (`None`: since the searcher's account exists).
    pub fn mentioning(nick: &str, from: Option<MessageId>) -> Result<Query, String> {
        let words: Vec<(String, bool)> = index_words(nick)
            .into_iter()
            .take(MAX_WORDS)
            .map(|w| (w.to_lowercase(), false))
            .collect();
        if words.is_empty() {
            return Err(format!("{nick:?} has no word to look up"));
        }
        let edge = r"[^\p{Alphabetic}\p{N}_\-]";
        let pattern = format!("(?:^|{edge}){}(?:$|{edge})", regex::escape(nick));
        let regex = RegexBuilder::new(&pattern)
            .case_insensitive(true)
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Query {
            pattern,
            words,
            regex,
            from_id: from.unwrap_or(0),
            not_from: Some(fold(nick)),
            since_account: from.is_none(),
        })
    }
}

impl Query {
    /// The FTS5 query: every word required; a prefix as the indexed words that begin so, which
    /// `expand` gives (`None`: too many to list, looked up as a prefix, which FTS5 answers by
    /// merging all their lists whole before the first match comes out; an empty list: no
    /// indexed word begins so).
    pub fn fts(&self, mut expand: impl FnMut(&str) -> Option<Vec<String>>) -> String {
        let quoted = |w: &str| format!("\"{}\"", w.replace('"', "\"\""));
        self.words
            .iter()
            .map(
                |(w, prefix)| match (*prefix, (*prefix).then(|| expand(w)).flatten()) {
                    (false, _) => quoted(w),
                    (true, None) => format!("{}*", quoted(w)),
                    (true, Some(terms)) if terms.is_empty() => quoted(w),
                    (true, Some(terms)) => {
                        let each: Vec<String> = terms.iter().map(|t| quoted(t)).collect();
                        format!("({})", each.join(" OR "))
                    }
                },
            )
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// The words of `text` as the index keeps them: runs of letters, digits and private-use
/// characters (what SQLite's `unicode61` tokenizer keeps; combining marks, such as the vowel
/// signs of Devanagari or Thai, separate words there). A quoted run that the tokenizer cut in
/// two would be a phrase, which an index without positions cannot look up.
fn index_words(text: &str) -> Vec<String> {
    static WORD: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let word = WORD.get_or_init(|| Regex::new(r"[\p{L}\p{N}\p{Co}]+").expect("a valid regex"));
    word.find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// "not a valid pattern", with the last line of the parser's explanation.
fn invalid(why: &str) -> String {
    let last = why.lines().last().unwrap_or_default();
    format!(
        "not a valid pattern: {}",
        last.trim_start_matches("error: ")
    )
}

/// The literal runs of text every match of `hir` contains.
fn required_literals(hir: &Hir, out: &mut Vec<String>) {
    match hir.kind() {
        HirKind::Literal(lit) => out.push(String::from_utf8_lossy(&lit.0).into_owned()),
        HirKind::Concat(parts) => {
            for (i, part) in parts.iter().enumerate() {
                let mut inner = Vec::new();
                required_literals(part, &mut inner);
                // Text right after another part may continue a word (`caf(é)+`, `[cC]offee`):
                // its first word is not the beginning of one, unless a `\b` or `^` is between.
                if i > 0
                    && !matches!(parts[i - 1].kind(), HirKind::Look(_))
                    && let Some(first) = inner.first_mut()
                {
                    *first = first.trim_start_matches(char::is_alphanumeric).to_owned();
                }
                out.append(&mut inner);
            }
        }
        HirKind::Capture(c) => required_literals(&c.sub, out),
        HirKind::Repetition(r) if r.min > 0 => required_literals(&r.sub, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_of_a_pattern_are_looked_up_and_the_pattern_filters() {
        let q = Query::parse("coffee at (ten|eleven)").expect("valid");
        assert_eq!(q.fts(|_| None), r#""at" AND "coffee""#);
        assert!(q.regex.is_match("Coffee at ELEVEN?"));
        assert!(!q.regex.is_match("coffee at noon"));
        // A capital letter makes it case-sensitive, and words are looked up in lower case.
        let q = Query::parse("Café+").expect("valid");
        assert_eq!(q.fts(|_| None), r#""caf"*"#);
        assert!(!q.regex.is_match("café"));
        // Text after a class may be the middle of a word: not looked up.
        assert_eq!(
            Query::parse("[cC]offee at").expect("valid").fts(|_| None),
            r#""at"*"#
        );
        // Optional parts are not required.
        let words = |p: &str| Query::parse(p).expect("valid").fts(|_| None);
        assert_eq!(words("tea(pot)?"), r#""tea"*"#);
        assert_eq!(words("(tea)+"), r#""tea"*"#);
        // A prefix whose indexed words are few is looked up as those words.
        let q = Query::parse("tea with ju").expect("valid");
        let expand = |w: &str| match w {
            "ju" => Some(vec!["jug".to_owned(), "juice".to_owned()]),
            _ => None,
        };
        assert_eq!(q.fts(expand), r#"("jug" OR "juice") AND "tea" AND "with""#);
        assert_eq!(q.fts(|_| Some(Vec::new())), r#""ju" AND "tea" AND "with""#);
    }

    #[test]
    fn a_mention_is_the_nickname_as_a_word_by_someone_else() {
        let q = Query::mentioning("Zoë_2", Some(40)).expect("a nickname with words");
        assert_eq!(q.fts(|_| None), r#""zoë" AND "2""#);
        for text in ["zoë_2: hi", "hi ZOË_2!", "(zoë_2)", "zoë_2"] {
            assert!(q.regex.is_match(text), "{text}");
        }
        for text in ["zoë_23", "xzoë_2", "zoë_2-b", "zoë 2"] {
            assert!(!q.regex.is_match(text), "{text}");
        }
        assert_eq!((q.from_id, q.not_from.as_deref()), (40, Some("zoë_2")));
        assert!(Query::mentioning("__", None).is_err());
        // Combining vowel signs separate the index's words: each is looked up alone.
        let q = Query::mentioning("राम", None).expect("words");
        assert_eq!(q.fts(|_| None), r#""र" AND "म""#);
        assert!(q.since_account && q.regex.is_match("नमस्ते राम!"));
        let q = Query::parse("สวัสดี").expect("words");
        assert!(
            q.words.iter().all(|(w, _)| w.chars().count() <= 3),
            "{:?}",
            q.words
        );
    }

    #[test]
    fn patterns_without_words_or_too_long_or_invalid_are_refused_with_the_reason() {
        for (pattern, says) in [
            (r"\d+", "needs one"),
            ("🎉", "needs one"),
            ("tea|coffee", "needs one"),
            ("(unclosed", "not a valid pattern"),
            ("   ", "needs a pattern"),
        ] {
            let e = Query::parse(pattern).expect_err(pattern);
            assert!(e.contains(says), "{pattern}: {e}");
        }
        let long = "a".repeat(MAX_SEARCH_PATTERN + 1);
        assert!(Query::parse(&long).expect_err("long").contains("at most"));
        // A pattern whose compiled form would be huge is refused, not built.
        assert!(Query::parse("coffee\\w{1000}{1000}").is_err());
    }
}
