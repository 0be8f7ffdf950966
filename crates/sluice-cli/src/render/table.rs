//! Aligned tables fitted to the terminal.

use std::io::IsTerminal;

/// How a table may give way on a narrow terminal.
#[derive(Clone, Copy, Default)]
pub struct Fit<'a> {
    /// Columns never wrapped (ids, times); columns of numbers never are either.
    pub whole: &'a [usize],
    /// Columns that may be left out, first ones first, when wrapping is not enough.
    pub droppable: &'a [usize],
}

/// A plain table with a header row, columns padded to their widest cell, fitted to the
/// terminal (see [`table_fit`]).
pub fn table(header: &[&str], rows: &[Vec<String>], fit: Fit<'_>) -> String {
    table_fit(header, rows, fit, terminal_width())
}

/// The width output must fit: `$COLUMNS` when set, else the terminal's width when standard
/// output is a terminal, else none (a pipe or file gets every line whole).
pub fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(columns);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_columns()
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn terminal_columns() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only fills the winsize struct passed by pointer, which lives on this
    // stack frame for the whole call.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(not(unix))]
fn terminal_columns() -> Option<usize> {
    None
}

/// Narrowest a wrapped column gets.
const MIN_WRAPPED: usize = 10;

/// A table whose columns are padded to their widest cell. When it is wider than `width`, the
/// widest columns of text are wrapped onto several lines; if that is not enough, the columns
/// `fit` allows are left out (a last line names them). Columns of numbers and the columns in
/// `fit.whole` are never wrapped, so no number or id is ever cut; numbers are right-aligned.
pub fn table_fit(
    header: &[&str],
    rows: &[Vec<String>],
    fit: Fit<'_>,
    width: Option<usize>,
) -> String {
    let count = |s: &str| s.chars().count();
    let numeric = |i: usize| {
        let mut any = false;
        let all = rows.iter().all(|r| {
            r.get(i).is_none_or(|c| {
                let c = c.trim_start_matches(['+', '-']);
                any |= !c.is_empty();
                c.chars().all(|ch| ch.is_ascii_digit() || ch == '.')
            })
        });
        all && any
    };
    let right: Vec<usize> = (0..header.len()).filter(|i| numeric(*i)).collect();
    let keep: Vec<usize> = right.iter().chain(fit.whole).copied().collect();
    let mut widths: Vec<usize> = header.iter().map(|h| count(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(count(cell));
            }
        }
    }
    let mut shown: Vec<usize> = (0..header.len()).collect();
    let mut hidden: Vec<&str> = Vec::new();
    if let Some(limit) = width {
        let total = |w: &[usize], shown: &[usize]| {
            shown.iter().map(|i| w[*i]).sum::<usize>() + 2 * shown.len().saturating_sub(1)
        };
        let mut droppable = fit.droppable.iter();
        while total(&widths, &shown) > limit {
            // Narrow the widest text column that can still give way, else leave one out.
            let widest = shown
                .iter()
                .copied()
                .filter(|i| !keep.contains(i))
                .filter(|i| widths[*i] > MIN_WRAPPED.max(count(header[*i])))
                .max_by_key(|i| widths[*i]);
            if let Some(i) = widest {
                widths[i] -= 1;
            } else if let Some(drop) = droppable.next() {
                shown.retain(|i| i != drop);
                hidden.push(header[*drop]);
            } else {
                break;
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let wrapped: Vec<Vec<String>> = shown
            .iter()
            .map(|i| wrap(cells.get(*i).copied().unwrap_or(""), widths[*i]))
            .collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for l in 0..height {
            let text = wrapped
                .iter()
                .zip(&shown)
                .map(|(lines, i)| {
                    let cell = lines.get(l).map(String::as_str).unwrap_or("");
                    if right.contains(i) {
                        format!("{cell:>width$}", width = widths[*i])
                    } else {
                        format!("{cell:<width$}", width = widths[*i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ");
            out.push_str(text.trim_end());
            out.push('\n');
        }
    };
    line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(rule.iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    if !hidden.is_empty() {
        out.push_str(&format!(
            "(hidden to fit: {}; --json shows all)\n",
            hidden.join(", ")
        ));
    }
    out
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        let used = current.chars().count();
        if used > 0 && used + 1 + word.len() <= width {
            current.push(' ');
            current.extend(word.iter());
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut current));
        }
        while word.len() > width {
            lines.push(word.drain(..width).collect());
        }
        current.extend(word.iter());
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_table_wraps_text_and_keeps_numbers_whole() {
        let rows = vec![vec![
            "1234567890123456789".to_string(),
            "a long message that does not fit on one line of a narrow terminal".to_string(),
            "42".to_string(),
        ]];
        let text = table_fit(
            &["SNAPSHOT", "MESSAGE", "ROWS"],
            &rows,
            Fit::default(),
            Some(50),
        );
        assert!(text.lines().all(|l| l.chars().count() <= 50), "{text}");
        assert!(text.contains("1234567890123456789"), "{text}");
        let words: Vec<&str> = text.split_whitespace().collect();
        for w in ["a", "long", "message", "narrow", "terminal"] {
            assert!(words.contains(&w), "{w} lost: {text}");
        }
        let unlimited = table_fit(
            &["SNAPSHOT", "MESSAGE", "ROWS"],
            &rows,
            Fit::default(),
            None,
        );
        assert_eq!(unlimited.lines().count(), 3, "{unlimited}");
    }
}
