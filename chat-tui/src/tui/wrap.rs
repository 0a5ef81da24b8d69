//! Word wrapping by display width: wide (CJK) characters and emoji take two columns, and a
//! grapheme cluster (an emoji with modifiers, a letter with combining marks) is never split.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Display width of `s` in terminal columns.
pub fn width(s: &str) -> usize {
    s.graphemes(true).map(grapheme_width).sum()
}

fn grapheme_width(g: &str) -> usize {
    if g == "\t" { 1 } else { g.width() }
}

/// Splits `text` into rows: the first at most `first` columns wide, the others at most `rest`.
/// Breaks after whitespace where possible, inside a word only when the word does not fit on a
/// row of its own. `\n` always breaks. Returns byte ranges into `text`, without the whitespace
/// at a soft break. A grapheme wider than the row gets a row of its own.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<std::ops::Range<usize>> {
    let first = first.max(1);
    let rest = rest.max(1);
    let mut rows = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            offset += 1; // the '\n'
        }
        wrap_line(line, offset, &mut rows, first, rest);
        offset += line.len();
    }
    rows
}

fn wrap_line(
    line: &str,
    base: usize,
    rows: &mut Vec<std::ops::Range<usize>>,
    first: usize,
    rest: usize,
) {
    let limit = |rows: &Vec<std::ops::Range<usize>>| if rows.is_empty() { first } else { rest };
    let mut start = 0; // start of the current row, in `line`
    let mut used = 0; // columns used on the current row
    // Where the current row could end at a space: (end of the row's text, start of the next).
    let mut soft: Option<(usize, usize, usize)> = None; // (end, next_start, width up to next)
    let mut prev_space = false;
    for (idx, g) in line.grapheme_indices(true) {
        let w = grapheme_width(g);
        let space = g.chars().all(char::is_whitespace);
        if !space && prev_space {
            // A word starts here: the row may break just before it.
            soft = Some((trim_end(line, start, idx), idx, used));
        }
        prev_space = space;
        if used + w <= limit(rows) || space {
            // Spaces never start a row of their own and may hang past the edge.
            used += w;
            continue;
        }
        match soft.take() {
            Some((end, next, before)) if end > start => {
                rows.push(base + start..base + end);
                start = next;
                used -= before;
                if used + w > limit(rows) && used > 0 {
                    // The word itself is longer than a row: break inside it.
                    rows.push(base + start..base + idx);
                    start = idx;
                    used = 0;
                }
            }
            _ if used > 0 => {
                rows.push(base + start..base + idx);
                start = idx;
                used = 0;
            }
            _ => {}
        }
        used += w;
    }
    rows.push(base + start..base + trim_end(line, start, line.len()));
}

/// `end` moved back over trailing whitespace, not before `start`.
fn trim_end(line: &str, start: usize, end: usize) -> usize {
    start + line[start..end].trim_end().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, first: usize, rest: usize) -> Vec<&str> {
        wrap(text, first, rest)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn short_text_is_one_row() {
        assert_eq!(rows("hello", 10, 10), ["hello"]);
        assert_eq!(rows("", 10, 10), [""]);
    }

    #[test]
    fn breaks_between_words() {
        assert_eq!(
            rows("the quick brown fox jumps", 10, 10),
            ["the quick", "brown fox", "jumps"]
        );
        assert_eq!(rows("aaa bbb ccc", 7, 3), ["aaa bbb", "ccc"]);
    }

    #[test]
    fn long_words_are_split() {
        assert_eq!(rows("abcdefghij", 4, 4), ["abcd", "efgh", "ij"]);
        assert_eq!(rows("hi abcdefghij", 4, 4), ["hi", "abcd", "efgh", "ij"]);
    }

    #[test]
    fn newlines_break() {
        assert_eq!(rows("one\ntwo three", 20, 20), ["one", "two three"]);
        assert_eq!(rows("a\n\nb", 20, 20), ["a", "", "b"]);
    }

    #[test]
    fn wide_characters_and_emoji_count_two_columns() {
        assert_eq!(width("日本"), 4);
        assert_eq!(width("👍🏽"), 2);
        assert_eq!(rows("日本語のテキスト", 6, 6), ["日本語", "のテキ", "スト"]);
        // Never splits a grapheme cluster, never exceeds the width.
        let text = "ok 👍🏽👍🏽👍🏽 👨‍👩‍👧 done";
        for r in rows(text, 5, 5) {
            assert!(width(r) <= 5, "{r:?}");
        }
        assert_eq!(
            rows(text, 5, 5).concat().replace(' ', ""),
            text.replace(' ', "")
        );
    }

    #[test]
    fn rows_never_exceed_the_width() {
        let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                    tempor incididunt ut labore et dolore magna aliqua";
        for w in 1..30 {
            let r = rows(text, w, w);
            for row in &r {
                assert!(width(row) <= w, "{w}: {row:?}");
            }
            let joined: String = r.concat();
            assert_eq!(joined.replace(' ', ""), text.replace(' ', ""), "{w}");
        }
    }
}
