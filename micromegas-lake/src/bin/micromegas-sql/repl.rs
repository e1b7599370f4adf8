//! The interactive prompt: statements end with `;`, backslash commands act at once.

use crate::commands::Flow;
use crate::script::{self, Piece, Splitter};
use crate::Settings;
use datafusion::execution::context::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".micromegas_sql_history"))
}

/// Runs the prompt until `\q` or end of input.
pub async fn run(ctx: &SessionContext, settings: &mut Settings) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    if !settings.quiet {
        eprintln!(
            "micromegas-sql {} — \\? for help, \\q to quit",
            env!("CARGO_PKG_VERSION")
        );
    }
    let mut splitter = Splitter::default();
    loop {
        let prompt = if splitter.in_statement() {
            "...> "
        } else {
            "sql> "
        };
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                splitter.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let Some(piece) = splitter.line(&line) else {
            continue;
        };
        let entry = match &piece {
            Piece::Command(c) | Piece::Sql(c) => c.trim(),
        };
        let _ = editor.add_history_entry(entry);
        match script::run_piece(ctx, settings, &piece).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => break,
            Err(e) => eprintln!("error: {}", crate::describe(&e)),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
