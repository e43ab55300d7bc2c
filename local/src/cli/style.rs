//! How the human output of `dofs` looks: tables that fit the terminal
//! (`comfy-table`), and colour for the words that say how things went, only
//! where a person sees it.
//!
//! Colour is decided once per command by [`colour_on`], with `anstream`'s
//! rules: never when `NO_COLOR` is set to anything non-empty
//! (<https://no-color.org>) or stdout is not a terminal (unless
//! `CLICOLOR_FORCE` asks for it). Tables are as wide as the terminal when
//! stdout is one, and unbounded when piped, so `dofs orders | grep FAILED`
//! still gets one whole line per order.

use anstyle::{AnsiColor, Style};
use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width};

/// Whether this command's stdout gets colour.
pub fn colour_on() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Whether stderr gets colour (the error line of a failed command).
pub fn stderr_colour_on() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// What a word says about how things went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Failed, alarming, an error: red.
    Bad,
    /// Done and well: green.
    Good,
    /// Waiting or unknown, worth a look: yellow.
    Warn,
}

impl Tone {
    /// The tone of a status or state word (any case), if it has one.
    pub fn of(word: &str) -> Option<Tone> {
        match word.trim().to_ascii_uppercase().as_str() {
            "FAILED" | "REJECTED" | "ALARM" | "ERROR" | "TIMED_OUT" | "ABORTED" => Some(Tone::Bad),
            "FULFILLED" | "OK" | "SUCCEEDED" => Some(Tone::Good),
            "PENDING" | "INSUFFICIENT_DATA" | "WARN" | "WARNING" => Some(Tone::Warn),
            _ => None,
        }
    }

    fn ansi(self) -> AnsiColor {
        match self {
            Tone::Bad => AnsiColor::Red,
            Tone::Good => AnsiColor::Green,
            Tone::Warn => AnsiColor::Yellow,
        }
    }

    fn table_colour(self) -> comfy_table::Color {
        match self {
            // The terminal's own red, green and yellow, as [`paint`] writes
            // them (crossterm's `Red` is the bright one).
            Tone::Bad => comfy_table::Color::DarkRed,
            Tone::Good => comfy_table::Color::DarkGreen,
            Tone::Warn => comfy_table::Color::DarkYellow,
        }
    }
}

/// `text` in the colour of `tone` when `colour` is on, else as it is.
pub fn paint(text: &str, tone: Option<Tone>, colour: bool) -> String {
    match tone {
        Some(tone) if colour => {
            let style = Style::new().fg_color(Some(tone.ansi().into()));
            format!("{style}{text}{style:#}")
        }
        _ => text.to_owned(),
    }
}

/// A status word painted in its own tone.
pub fn status(word: &str, colour: bool) -> String {
    paint(word, Tone::of(word), colour)
}

/// The narrowest a wrapped prose column gets (its padding included).
const PROSE_MIN_WIDTH: u16 = 24;

/// A borderless table with `headers`, fitted to the terminal's width when
/// stdout is one (by wrapping its prose columns). `colour` says whether [`Grid::status`] cells are coloured.
pub struct Grid {
    table: Table,
    colour: bool,
}

impl Grid {
    pub fn new(headers: &[&str], colour: bool) -> Self {
        let mut table = Table::new();
        table
            .load_style(comfy_table::presets::NOTHING)
            // comfy-table takes the width from the terminal only when stdout
            // is one; piped, the table is as wide as its content.
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(headers.iter().map(Cell::new));
        if table.width() == Some(0) {
            // A terminal that does not know its size (a pty nobody sized,
            // as under `script`) says 0 columns: fitting that would wrap
            // every cell to one character, so the table is not fitted.
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
        // Flush left, two spaces between columns (as the columns were
        // before they were tables). Ids, states, numbers and times are
        // never broken (a wrapped id cannot be copied, a wrapped time is
        // unreadable); only the prose columns named by `wrapping` give way
        // to fit the terminal.
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
        if colour {
            // Colour was asked for (a terminal, or CLICOLOR_FORCE): styles
            // are written even where comfy-table sees no terminal.
            table.enforce_styling();
            // Only the word, not the padding after it: a selection copied
            // from the terminal carries no coloured blanks.
            table.style_text_only();
        }
        Self { table, colour }
    }

    /// Right-aligns the numeric column `index`.
    pub fn numeric(mut self, index: usize) -> Self {
        if let Some(column) = self.table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
        self
    }

    /// Column `index` is prose, wrapped to fit the terminal, but never
    /// narrower than [`PROSE_MIN_WIDTH`]: a terminal too narrow for the
    /// rest wraps the lines itself, which reads better than a column of
    /// single letters.
    pub fn wrapping(mut self, index: usize) -> Self {
        if let Some(column) = self.table.column_mut(index) {
            column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
                PROSE_MIN_WIDTH,
            )));
        }
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) -> &mut Self {
        self.table.add_row(cells);
        self
    }

    /// A cell of plain text.
    pub fn text(text: impl ToString) -> Cell {
        Cell::new(text)
    }

    /// A status cell, coloured by its tone when colour is on. comfy-table
    /// pads before it styles, so the column stays aligned.
    pub fn status(&self, word: &str) -> Cell {
        let cell = Cell::new(word);
        match Tone::of(word) {
            Some(tone) if self.colour => cell.fg(tone.table_colour()),
            _ => cell,
        }
    }

    /// The table's lines, without trailing blanks, each ending in a line
    /// feed.
    pub fn render(&self) -> String {
        let mut text = self.table.trim_fmt();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_status_words_when_colour_is_on() {
        assert_eq!(status("FAILED", true), "\u{1b}[31mFAILED\u{1b}[0m");
        assert_eq!(status("FULFILLED", true), "\u{1b}[32mFULFILLED\u{1b}[0m");
        assert_eq!(
            status("INSUFFICIENT_DATA", true),
            "\u{1b}[33mINSUFFICIENT_DATA\u{1b}[0m"
        );
        assert_eq!(status("RECEIVED", true), "RECEIVED");
        assert_eq!(status("FAILED", false), "FAILED");
    }

    #[test]
    fn tones_follow_the_word() {
        assert_eq!(Tone::of("alarm"), Some(Tone::Bad));
        assert_eq!(Tone::of("OK"), Some(Tone::Good));
        assert_eq!(Tone::of("PENDING"), Some(Tone::Warn));
        assert_eq!(Tone::of("VALIDATED"), None);
    }

    #[test]
    fn a_coloured_table_keeps_its_columns_aligned() {
        let table = |colour: bool| {
            let mut grid = Grid::new(&["ALARM", "STATE", "SINCE"], colour);
            for (name, state) in [("dlq", "ALARM"), ("errors", "INSUFFICIENT_DATA")] {
                let cells = vec![Grid::text(name), grid.status(state), Grid::text("now")];
                grid.row(cells);
            }
            grid.render()
        };
        let coloured = table(true);
        assert!(coloured.contains("\u{1b}["), "{coloured:?}");
        let plain = table(false);
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        // Without its escapes the coloured table is the plain one: the
        // padding was computed on the text alone.
        let stripped: String = anstream::adapter::strip_str(&coloured).to_string();
        assert_eq!(stripped, plain);
        let since: Vec<usize> = plain
            .lines()
            .map(|l| l.find("SINCE").or(l.find("now")).unwrap())
            .collect();
        assert!(since.windows(2).all(|w| w[0] == w[1]), "{plain}");
    }
}
