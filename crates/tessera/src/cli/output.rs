//! Tables for people, JSON for scripts, and every write to standard output checked.
//!
//! `println!` panics when standard output cannot be written (a full disk, a closed pipe: Rust
//! ignores SIGPIPE, so a write to a pipe nobody reads fails with EPIPE instead of killing the
//! process). Every line the CLI prints goes through [`print`] instead, which hands the failure back
//! as a [`StdoutError`]: a closed pipe ends the command quietly with exit code 141, as SIGPIPE
//! would have, and any other failure with exit code 1 and one line on standard error (see
//! [`super::exit_code`]). Every value printed is passed through [`clean`] first.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use tessera_core::model::is_bidi_control;

/// The widest a table column gets, in characters; a longer cell is cut with an ellipsis.
pub const COLUMN_MAX: usize = 60;

/// Standard output could not be written.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl StdoutError {
    /// Whether the reader went away (EPIPE): not a failure anyone needs telling about.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

// No `source`: the message already names the I/O error.
impl std::error::Error for StdoutError {}

/// Prints `text` and a line break on standard output, flushed.
pub fn print(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).map_err(StdoutError)
}

/// `out!("...", args)`: one checked, flushed, [`clean`]ed line on standard output; `?` on its result.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::print(&$crate::cli::output::clean(&format!($($arg)*)))
    };
}
pub(crate) use out;

/// One line on standard error. If even that fails there is no one left to tell, so the failure is
/// ignored rather than panicking as `eprintln!` would.
pub fn note(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// `text` safe to print on a terminal: control characters (escape sequences, line breaks,
/// backspaces, C1 controls) and bidirectional overrides are shown escaped, as `\u{1b}`.
pub fn clean(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || is_bidi_control(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut cleaned = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            cleaned.extend(c.escape_unicode());
        } else {
            cleaned.push(c);
        }
    }
    Cow::Owned(cleaned)
}

/// `cell` cleaned and cut to at most `max` characters, the last one an ellipsis when cut.
fn fit(cell: &str, max: usize) -> String {
    let cleaned = clean(cell);
    if cleaned.chars().count() <= max {
        return cleaned.into_owned();
    }
    let mut cut: String = cleaned.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Prints rows as an aligned table with a header, or "(none)". Whatever the stored values, every
/// cell is cleaned and at most [`COLUMN_MAX`] characters wide.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<(), StdoutError> {
    if rows.is_empty() {
        return print("(none)");
    }
    let fitted = |cells: &[String]| -> Vec<String> { cells.iter().map(|c| fit(c, COLUMN_MAX)).collect() };
    let header: Vec<String> = fitted(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let rows: Vec<Vec<String>> = rows.iter().map(|r| fitted(r)).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            // Padding by hand: a format width above 65,535 panics.
            text.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
        }
        print(text.trim_end())
    };
    line(&header)?;
    for row in &rows {
        line(row)?;
    }
    Ok(())
}

/// A listing command's output: the items as JSON with `--json`, else a table of `row(item)` under
/// `header`.
pub fn listing<T: Serialize>(
    items: &[T],
    json: bool,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return self::json(&items);
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(header, &rows)?;
    Ok(())
}

/// Prints a value as pretty JSON (which escapes every control character below U+0020; DEL and
/// C1 controls, which JSON leaves raw, are escaped too).
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let text = text.replace('\u{7f}', "\\u007f");
    let text: String = text
        .chars()
        .map(|c| {
            if ('\u{80}'..='\u{9f}').contains(&c) || is_bidi_control(c) {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect();
    print(&text)?;
    Ok(())
}

/// A timestamp for tables: RFC 3339, seconds, UTC.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An optional timestamp for tables.
pub fn maybe_time(at: Option<DateTime<Utc>>, none: &str) -> String {
    at.map(time).unwrap_or_else(|| none.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cleaned_and_cut() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean("\u{1b}[31mred\n"), "\\u{1b}[31mred\\u{a}");
        let cut = fit(&"x".repeat(65_536), COLUMN_MAX);
        assert_eq!(cut.chars().count(), COLUMN_MAX);
        assert!(cut.ends_with('…'));
        assert_eq!(fit("short", COLUMN_MAX), "short");
    }
}
