//! The input line ([`InputLine`]): the text being typed, the lines sent before (Up and Down
//! bring them back), nickname completion (Tab), and the masking of a password typed after
//! `/register` or `/password`. Where the line is scrolled to is worked out here, after every
//! change, so that drawing it only reads.

use chat_core::names::fold;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::Widget;
use ratatui_textarea::{CursorMove, DataCursor, TextArea};

/// Lines kept in the input history.
const HISTORY: usize = 200;

/// The input line: its text, its history, a completion in progress, and what is drawn.
#[derive(Debug)]
pub struct InputLine {
    /// The text being typed.
    area: TextArea<'static>,
    /// Lines sent, oldest first (not those that carry a password).
    history: Vec<String>,
    /// The line of the history shown (Up, Down); `None` while editing a new one.
    history_pos: Option<usize>,
    /// What was being typed when Up first brought back an older line.
    draft: String,
    /// Nickname completion in progress (repeated Tab cycles through the candidates).
    completion: Option<Completion>,
    /// What is drawn while a password is typed: the same line with the password as bullets.
    /// Kept from one change to the next, so that it scrolls on from where it was.
    masked: Option<TextArea<'static>>,
}

/// Nickname completion in progress.
#[derive(Debug, Clone)]
struct Completion {
    candidates: Vec<String>,
    index: usize,
    /// Characters inserted by the last completion (removed before inserting the next).
    inserted: usize,
}

impl Default for InputLine {
    fn default() -> Self {
        InputLine {
            area: input_area(""),
            history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            completion: None,
            masked: None,
        }
    }
}

impl InputLine {
    /// The text, its lines joined with `\n`.
    pub fn text(&self) -> String {
        self.area.lines().join("\n")
    }

    /// The lines of the text (the input line grows with them).
    pub fn lines(&self) -> &[String] {
        self.area.lines()
    }

    /// Nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.area.is_empty()
    }

    /// The cursor is on the first line (Up recalls the history from there).
    pub fn on_first_line(&self) -> bool {
        self.area.cursor().0 == 0
    }

    /// The cursor is on the last line (Down goes forward in the history from there).
    pub fn on_last_line(&self) -> bool {
        self.area.cursor().0 + 1 >= self.area.lines().len()
    }

    /// Replaces the text (the cursor goes to its end).
    pub fn set(&mut self, text: &str) {
        self.area = input_area(text);
    }

    /// A key that edits the text. The keys readline gives every shell (and weechat and irssi
    /// follow) do what they do there: Ctrl-W deletes the word before the cursor, Ctrl-U the
    /// line up to the cursor, Ctrl-K the rest of it (Ctrl-Y puts back what was deleted),
    /// Ctrl-A and Ctrl-E go to its start and end, Alt-B and Alt-F move by words, Alt-Backspace
    /// deletes a word by word characters, Ctrl-_ undoes. Other keys are the text area's own.
    pub fn edit(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let on_line_start = self.area.cursor().1 == 0;
        match key.code {
            KeyCode::Char('w') if ctrl => self.rub_out_word(),
            KeyCode::Backspace | KeyCode::Char('h') if alt => {
                self.area.delete_word();
            }
            // At the start of the line there is nothing before the cursor to delete.
            KeyCode::Char('u') if ctrl && on_line_start => {}
            KeyCode::Char('u') if ctrl => {
                self.area.delete_line_by_head();
            }
            KeyCode::Char('k') if ctrl => {
                self.area.delete_line_by_end();
            }
            KeyCode::Char('a') if ctrl => self.area.move_cursor(CursorMove::Head),
            KeyCode::Char('e') if ctrl => self.area.move_cursor(CursorMove::End),
            KeyCode::Char('b') if alt => self.word_back(),
            KeyCode::Char('f') if alt => self.word_forward(),
            // Ctrl-_ (which terminals also send for Ctrl-/ and Ctrl-7): readline's undo.
            KeyCode::Char('_' | '/' | '7') if ctrl => {
                self.area.undo();
            }
            _ => {
                self.area.input(key);
            }
        }
    }

    /// Alt-B: to the start of the word before the cursor (letters and digits make words).
    fn word_back(&mut self) {
        let DataCursor(row, col) = self.area.cursor();
        let before: Vec<char> = self.area.lines()[row].chars().take(col).collect();
        let gap = before.iter().rev().take_while(|c| !word_char(**c)).count();
        let word = before[..col - gap]
            .iter()
            .rev()
            .take_while(|c| word_char(**c))
            .count();
        for _ in 0..(gap + word).max(1) {
            self.area.move_cursor(CursorMove::Back);
        }
    }

    /// Alt-F: to the end of the word after the cursor.
    fn word_forward(&mut self) {
        let DataCursor(row, col) = self.area.cursor();
        let after: Vec<char> = self.area.lines()[row].chars().skip(col).collect();
        let gap = after.iter().take_while(|c| !word_char(**c)).count();
        let word = after[gap..].iter().take_while(|c| word_char(**c)).count();
        for _ in 0..(gap + word).max(1) {
            self.area.move_cursor(CursorMove::Forward);
        }
    }

    /// Ctrl-W: deletes the word before the cursor and the blanks after it, words being
    /// separated by blanks only (as in a shell: `hi-there` goes in one press). At the start of
    /// a line, it joins the line to the one before.
    fn rub_out_word(&mut self) {
        let DataCursor(row, col) = self.area.cursor();
        if col == 0 {
            self.area.delete_char();
            return;
        }
        let before: Vec<char> = self.area.lines()[row].chars().take(col).collect();
        let blanks = before
            .iter()
            .rev()
            .take_while(|c| c.is_whitespace())
            .count();
        let word = before[..col - blanks]
            .iter()
            .rev()
            .take_while(|c| !c.is_whitespace())
            .count();
        for _ in 0..blanks + word {
            self.area.move_cursor(CursorMove::Back);
        }
        self.area.delete_str(blanks + word);
    }

    /// Starts a new line in the text (Alt-Enter).
    pub fn new_line(&mut self) {
        self.area.insert_newline();
    }

    /// Inserts pasted text at the cursor, newlines included.
    pub fn paste(&mut self, text: &str) {
        self.completion = None;
        self.area.insert_str(text);
    }

    /// How the cursor shows (it shows only where the keyboard is).
    pub fn set_cursor_style(&mut self, style: Style) {
        self.area.set_cursor_style(style);
    }

    /// Keeps `text`, just sent, for Up to bring back (unless it carries a password or repeats
    /// the last line), and leaves the history.
    pub fn remember(&mut self, text: &str) {
        if !password_command(text) && self.history.last().map(String::as_str) != Some(text) {
            self.history.push(text.to_owned());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        self.history_pos = None;
        self.draft.clear();
    }

    /// Up: the line sent before the one shown (the text being typed is kept as the draft).
    pub fn history_back(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let pos = match self.history_pos {
            None => {
                self.draft = self.text();
                self.history.len() - 1
            }
            Some(p) => p.saturating_sub(1),
        };
        self.history_pos = Some(pos);
        let text = self.history[pos].clone();
        self.set(&text);
    }

    /// Down: the line sent after the one shown, then the draft again.
    pub fn history_forward(&mut self) {
        let Some(pos) = self.history_pos else {
            return;
        };
        if pos + 1 < self.history.len() {
            self.history_pos = Some(pos + 1);
            let text = self.history[pos + 1].clone();
            self.set(&text);
        } else {
            self.history_pos = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(&draft);
        }
    }

    /// Ends a completion in progress (any key but Tab does).
    pub fn cancel_completion(&mut self) {
        self.completion = None;
    }

    /// Completes the word before the cursor with the next of `names` that starts with it (not
    /// `me`), in alphabetical order; a name that starts the line gets `": "`. Tab again cycles
    /// through the others. False when there is no word to complete.
    pub fn complete(&mut self, names: impl IntoIterator<Item = String>, me: &str) -> bool {
        if let Some(c) = &mut self.completion {
            for _ in 0..c.inserted {
                self.area.delete_char();
            }
            c.index = (c.index + 1) % c.candidates.len();
            let text = c.candidates[c.index].clone();
            c.inserted = text.chars().count();
            self.area.insert_str(text);
            return true;
        }
        let DataCursor(row, col) = self.area.cursor();
        let line: Vec<char> = self.area.lines()[row].chars().collect();
        let start = line[..col]
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(0, |i| i + 1);
        let word: String = line[start..col].iter().collect();
        if word.is_empty() {
            return false;
        }
        let prefix = fold(&word);
        let me = fold(me);
        let mut candidates: Vec<String> = names
            .into_iter()
            .filter(|n| {
                let f = fold(n);
                f.starts_with(&prefix) && f != me
            })
            .collect();
        candidates.sort_by_key(|n| fold(n));
        candidates.dedup_by_key(|n| fold(n));
        if candidates.is_empty() {
            return true; // nothing to complete, but Tab was meant for the word
        }
        let suffix = if row == 0 && start == 0 { ": " } else { " " };
        let candidates: Vec<String> = candidates.into_iter().map(|n| n + suffix).collect();
        self.start_completion(col - start, candidates);
        true
    }

    /// Replaces the `typed` characters before the cursor with the first of `candidates`
    /// (not empty), which Tab then cycles through.
    fn start_completion(&mut self, typed: usize, candidates: Vec<String>) {
        for _ in 0..typed {
            self.area.delete_char();
        }
        let text = candidates[0].clone();
        self.completion = Some(Completion {
            inserted: text.chars().count(),
            candidates,
            index: 0,
        });
        self.area.insert_str(text);
    }

    /// Completes the emoji shortcode before the cursor (`:ta` → `:tada:`, Tab again for the
    /// next match). `None` when the word before the cursor is not a `:` and two letters or
    /// more.
    pub fn complete_emoji(&mut self) -> Option<bool> {
        let DataCursor(row, col) = self.area.cursor();
        let line: Vec<char> = self.area.lines()[row].chars().collect();
        let start = line[..col]
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(0, |i| i + 1);
        let word: String = line[start..col].iter().collect();
        let prefix = word.strip_prefix(':')?;
        if prefix.chars().count() < 2 || prefix.contains(':') {
            return None;
        }
        let candidates = crate::emoji::complete(prefix, 50);
        if !candidates.is_empty() {
            self.start_completion(col - start, candidates);
        }
        Some(true)
    }

    /// Completes the path typed after `/file NICK ` (up to the cursor) with the names in its
    /// folder that start with what is typed (a folder gets a `/`); Tab again cycles through
    /// them. `None` when the line is not a `/file` command with its path being typed.
    pub fn complete_path(&mut self) -> Option<bool> {
        if self.completion.is_some() {
            return Some(self.complete(Vec::new(), ""));
        }
        let DataCursor(row, col) = self.area.cursor();
        if row != 0 {
            return None;
        }
        let before: String = self.area.lines()[0].chars().take(col).collect();
        let rest = before.strip_prefix("/file ")?.trim_start();
        let (_nick, typed) = rest.split_once(char::is_whitespace)?;
        let typed = typed.trim_start();
        let (dir, start) = match typed.rfind('/') {
            Some(i) => (&typed[..=i], &typed[i + 1..]),
            None => ("", typed),
        };
        let folder = if dir.is_empty() {
            std::path::PathBuf::from(".")
        } else {
            crate::command::expand_home(dir)
        };
        let mut candidates: Vec<String> = std::fs::read_dir(folder)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                // Hidden files only when a dot is typed.
                let shown =
                    name.starts_with(start) && (start.starts_with('.') || !name.starts_with('.'));
                let slash = if e.path().is_dir() { "/" } else { "" };
                shown.then(|| format!("{dir}{name}{slash}"))
            })
            .collect();
        candidates.sort();
        if candidates.is_empty() {
            return Some(true);
        }
        self.start_completion(typed.chars().count(), candidates);
        Some(true)
    }

    /// Works out what is drawn in `area` and where it is scrolled to, as drawing it there would
    /// (the text area records its scroll position only while it is rendered, so it is rendered
    /// here, off screen). Once a password command and a space are typed, what is drawn is a copy
    /// in which the command still shows and every character after it is a bullet, with the
    /// cursor in the same place (the text area itself can only mask all of its text or none).
    pub fn lay_out(&mut self, area: Rect) {
        if !hides_password(&self.text()) {
            self.masked = None;
            render_off_screen(&self.area, area);
            return;
        }
        let mut view = TextArea::new(mask_password(self.area.lines()));
        view.set_style(self.area.style());
        view.set_cursor_style(self.area.cursor_style());
        view.set_cursor_line_style(self.area.cursor_line_style());
        // Scrolled on from where the copy drawn before was, so the bullets stay put under a
        // cursor that moves over what is shown.
        let (rows, cols) = self.masked.as_ref().map_or((0, 0), TextArea::scroll_offset);
        view.scroll((
            i16::try_from(rows).unwrap_or(i16::MAX),
            i16::try_from(cols).unwrap_or(i16::MAX),
        ));
        let DataCursor(row, col) = self.area.cursor();
        view.move_cursor(CursorMove::Jump(
            u16::try_from(row).unwrap_or(u16::MAX),
            u16::try_from(col).unwrap_or(u16::MAX),
        ));
        render_off_screen(&view, area);
        self.masked = Some(view);
    }

    /// What to draw, as laid out by [`InputLine::lay_out`]: a copy, so that drawing it changes
    /// nothing here.
    pub fn view(&self) -> TextArea<'static> {
        self.masked.as_ref().unwrap_or(&self.area).clone()
    }
}

/// A character words are made of, for Alt-B and Alt-F (as in readline).
fn word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Renders `text` into a scratch buffer the size of `area`: the text area scrolls to its
/// cursor and records where, as it does when drawn.
pub(super) fn render_off_screen(text: &TextArea<'_>, area: Rect) {
    text.render(area, &mut Buffer::empty(area));
}

/// Whether `line` is a command whose argument is a password (`/register`, `/password`).
fn password_command(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    ["/register", "/password", "/passwd"]
        .iter()
        .any(|p| first.eq_ignore_ascii_case(p))
}

/// Whether the input line must hide what is typed: a password command followed by a space
/// or a new line (what follows is the password either way).
fn hides_password(line: &str) -> bool {
    password_command(line) && line.trim_start().contains(char::is_whitespace)
}

/// The lines of a password command with everything after the command word and the spaces
/// that follow it replaced by bullets, one per character.
fn mask_password(lines: &[String]) -> Vec<String> {
    let bullets = |text: &str| "•".repeat(text.chars().count());
    let Some((first, rest)) = lines.split_first() else {
        return Vec::new();
    };
    let word_start = first.len() - first.trim_start().len();
    let word_end = first[word_start..]
        .find(char::is_whitespace)
        .map_or(first.len(), |i| word_start + i);
    let after = &first[word_end..];
    let shown = word_end + (after.len() - after.trim_start().len());
    std::iter::once(format!("{}{}", &first[..shown], bullets(&first[shown..])))
        .chain(rest.iter().map(|line| bullets(line)))
        .collect()
}

/// A text area for the input line holding `text`, the cursor at its end.
fn input_area(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(text.split('\n').map(str::to_owned).collect());
    t.set_cursor_line_style(Style::default());
    t.set_placeholder_style(Style::default().add_modifier(Modifier::DIM));
    t.set_placeholder_text("type a message, /help for commands");
    t.move_cursor(CursorMove::Bottom);
    t.move_cursor(CursorMove::End);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(lines: &[&str]) -> Vec<String> {
        mask_password(&lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>())
    }

    fn typed(text: &str) -> InputLine {
        let mut input = InputLine::default();
        input.paste(text);
        input
    }

    fn press(input: &mut InputLine, code: KeyCode) {
        input.edit(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    /// The first row of what is drawn in a `width`-column line.
    fn drawn(input: &mut InputLine, width: u16) -> String {
        let area = Rect::new(0, 0, width, 1);
        input.lay_out(area);
        let mut buffer = Buffer::empty(area);
        input.view().render(area, &mut buffer);
        (0..width)
            .map(|x| buffer[(x, 0)].symbol().to_owned())
            .collect()
    }

    #[test]
    fn a_password_command_keeps_its_word_and_hides_the_rest() {
        assert_eq!(masked(&["/register s3cret"]), ["/register ••••••"]);
        assert_eq!(masked(&["  /password  old new"]), ["  /password  •••••••"]);
        assert_eq!(masked(&["/passwd"]), ["/passwd"]);
        assert_eq!(masked(&["/register", "s3cret"]), ["/register", "••••••"]);
        // One bullet per character, whatever its width.
        assert_eq!(masked(&["/register 秘密é"]), ["/register •••"]);
    }

    #[test]
    fn up_and_down_walk_the_history_and_come_back_to_the_draft() {
        let mut input = InputLine::default();
        for line in ["first", "second", "second"] {
            input.remember(line);
        }
        input.set("draft");
        input.history_back();
        assert_eq!(input.text(), "second", "a repeated line is kept once");
        input.history_back();
        assert_eq!(input.text(), "first");
        input.history_back();
        assert_eq!(input.text(), "first", "stops at the oldest");
        input.history_forward();
        assert_eq!(input.text(), "second");
        input.history_forward();
        assert_eq!(input.text(), "draft");
        input.history_forward();
        assert_eq!(input.text(), "draft", "nothing newer than the draft");
    }

    #[test]
    fn the_history_keeps_no_password_and_no_more_than_its_size() {
        let mut input = InputLine::default();
        input.remember("/register s3cret");
        input.remember("/PASSWORD new-one");
        input.history_back();
        assert_eq!(input.text(), "", "nothing to recall");
        for i in 0..HISTORY + 5 {
            input.remember(&format!("line {i}"));
        }
        for _ in 0..HISTORY + 5 {
            input.history_back();
        }
        assert_eq!(input.text(), "line 5", "the oldest lines went");
    }

    #[test]
    fn tab_completes_an_emoji_shortcode_after_a_colon_and_two_letters() {
        let mut input = InputLine::default();
        input.area.insert_str("ship it :rocke");
        assert_eq!(input.complete_emoji(), Some(true));
        assert_eq!(input.text(), "ship it :rocket:");
        let mut short = InputLine::default();
        short.area.insert_str("ship it :r");
        assert_eq!(short.complete_emoji(), None);
        let mut nick = InputLine::default();
        nick.area.insert_str("bo");
        assert_eq!(nick.complete_emoji(), None);
    }

    #[test]
    fn tab_completes_a_path_after_file_and_cycles_through_the_matches() {
        let dir = tempfile::tempdir().expect("dir");
        for name in ["report.pdf", "report-old.pdf", ".hidden"] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        std::fs::create_dir(dir.path().join("reports")).expect("dir");
        let typed = format!("/file bob {}/rep", dir.path().display());
        let mut input = InputLine::default();
        input.area.insert_str(&typed);
        assert_eq!(input.complete_path(), Some(true));
        let base = dir.path().display().to_string();
        assert_eq!(input.text(), format!("/file bob {base}/report-old.pdf"));
        assert_eq!(input.complete_path(), Some(true));
        assert_eq!(input.text(), format!("/file bob {base}/report.pdf"));
        assert_eq!(input.complete_path(), Some(true));
        assert_eq!(input.text(), format!("/file bob {base}/reports/"));
        // Not a path being typed: nickname completion applies.
        let mut other = InputLine::default();
        other.area.insert_str("/file bo");
        assert_eq!(other.complete_path(), None);
        let mut other = InputLine::default();
        other.area.insert_str("hello rep");
        assert_eq!(other.complete_path(), None);
    }

    #[test]
    fn tab_completes_a_nickname_and_cycles_through_the_others() {
        let roster = names(&["alice", "bob", "Bobby", "BOB"]);
        let mut input = typed("bo");
        assert!(input.complete(roster.clone(), "alice"));
        assert_eq!(input.text(), "bob: ", "the start of the line gets a colon");
        assert!(input.complete(roster.clone(), "alice"));
        assert_eq!(
            input.text(),
            "Bobby: ",
            "the same name twice is one candidate"
        );
        assert!(input.complete(roster.clone(), "alice"));
        assert_eq!(input.text(), "bob: ", "and round again");
        input.cancel_completion();
        input.paste("and a");
        assert!(input.complete(roster.clone(), "alice"));
        assert_eq!(input.text(), "bob: and a", "our own name is not offered");
        input.paste(" ");
        assert!(
            !input.complete(roster.clone(), "alice"),
            "no word to complete"
        );
        input.paste("al");
        input.cancel_completion();
        assert!(input.complete(names(&["alice"]), "bob"));
        assert_eq!(input.text(), "bob: and a alice ", "elsewhere, a space");
    }

    #[test]
    fn a_password_is_drawn_as_bullets_that_stay_put_as_the_cursor_moves() {
        let mut input = typed("/register");
        assert_eq!(drawn(&mut input, 20).trim_end(), "/register");
        input.paste(" s3cret");
        assert_eq!(drawn(&mut input, 20).trim_end(), "/register ••••••");
        assert_eq!(
            input.text(),
            "/register s3cret",
            "only the drawing hides it"
        );
        // Wider than the line, it scrolls to the cursor, and moving back over what shows does
        // not scroll it again.
        input.paste(&"x".repeat(30));
        let end = drawn(&mut input, 20);
        assert!(!end.contains("/register"), "{end}");
        for _ in 0..5 {
            press(&mut input, KeyCode::Left);
        }
        assert_eq!(drawn(&mut input, 20), end);
        press(&mut input, KeyCode::Home);
        assert!(drawn(&mut input, 20).starts_with("/register •••"));
        // Emptied, the line is drawn as typed again.
        input.set("hello");
        assert_eq!(drawn(&mut input, 20).trim_end(), "hello");
    }
}
