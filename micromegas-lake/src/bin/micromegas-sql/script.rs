//! Scripts (`-c`, `-f`, `\i`) and the prompt read the same text: SQL statements ending with
//! `;`, and backslash commands on lines of their own between statements.

use crate::commands::{self, Flow};
use crate::Settings;
use datafusion::execution::context::SessionContext;

/// What a script or the prompt asks for next.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A backslash command line, trimmed (`\d spans`).
    Command(String),
    /// One or more SQL statements.
    Sql(String),
}

/// Splits text, line by line, into backslash commands and SQL. A line starting with `\` is a
/// command when no statement is being written; SQL is given when a line ends with `;`.
#[derive(Debug, Default)]
pub struct Splitter {
    buffer: String,
}

impl Splitter {
    /// Whether a statement is being written (the prompt shows a continuation prompt).
    pub fn in_statement(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Takes one line; gives what it completes.
    pub fn line(&mut self, line: &str) -> Option<Piece> {
        let trimmed = line.trim();
        if self.buffer.is_empty() {
            if trimmed.starts_with('\\') {
                return Some(Piece::Command(trimmed.to_owned()));
            }
            if trimmed.is_empty() {
                return None;
            }
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        trimmed.ends_with(';').then(|| self.take())
    }

    /// The statement left unfinished at the end of the text (no `;`), if any.
    pub fn finish(&mut self) -> Option<Piece> {
        (!self.buffer.trim().is_empty()).then(|| self.take())
    }

    /// Forgets the statement being written (Ctrl-C at the prompt).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }

    fn take(&mut self) -> Piece {
        Piece::Sql(std::mem::take(&mut self.buffer))
    }
}

/// The pieces of a whole text, in order.
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut splitter = Splitter::default();
    let mut out: Vec<Piece> = text.lines().filter_map(|l| splitter.line(l)).collect();
    out.extend(splitter.finish());
    out
}

/// Runs a piece: its statements, or its command.
pub async fn run_piece(
    ctx: &SessionContext,
    settings: &mut Settings,
    piece: &Piece,
) -> anyhow::Result<Flow> {
    match piece {
        Piece::Sql(sql) => {
            crate::run_script(ctx, sql, settings).await?;
            Ok(Flow::Continue)
        }
        // Boxed: `\i` runs a text, which may hold commands.
        Piece::Command(line) => Box::pin(commands::command(ctx, settings, line)).await,
    }
}

/// Runs a text's statements and commands in order; stops at the first error, or at `\q`
/// (then gives [`Flow::Quit`]).
pub async fn run_text(
    ctx: &SessionContext,
    settings: &mut Settings,
    text: &str,
) -> anyhow::Result<Flow> {
    let pieces = pieces(text);
    if pieces.is_empty() {
        anyhow::bail!("no SQL statement given");
    }
    for piece in &pieces {
        if let Flow::Quit = run_piece(ctx, settings, piece).await? {
            return Ok(Flow::Quit);
        }
    }
    Ok(Flow::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(s: &str) -> Piece {
        Piece::Sql(s.to_owned())
    }
    fn cmd(s: &str) -> Piece {
        Piece::Command(s.to_owned())
    }

    #[test]
    fn commands_stand_between_statements() {
        let text = "SELECT 1;\n  \\d spans  \nSELECT\n '\\not a command';\n\n\\q\nSELECT 2";
        assert_eq!(
            pieces(text),
            [
                sql("SELECT 1;\n"),
                cmd("\\d spans"),
                sql("SELECT\n '\\not a command';\n"),
                cmd("\\q"),
                sql("SELECT 2\n"),
            ]
        );
    }

    #[test]
    fn a_statement_without_semicolon_takes_the_lines_after_it() {
        assert_eq!(
            pieces("SELECT 1\n\\d\n"),
            [sql("SELECT 1\n\\d\n")],
            "a backslash line inside a statement is part of it"
        );
        assert_eq!(pieces("SELECT 1; SELECT 2"), [sql("SELECT 1; SELECT 2\n")]);
        assert!(pieces(" \n\n").is_empty());
    }
}
