//! The interactive prompt: statements end with `;`, backslash commands act at once.

use crate::output::Format;
use datafusion::execution::context::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

const HELP: &str = "\
Statements end with ';' and may span several lines.
  \\d           list tables
  \\d TABLE     describe a table
  \\q           quit (or Ctrl-D)
  \\?           this help";

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".micromegas_sql_history"))
}

/// Runs the prompt until `\q` or end of input.
pub async fn run(ctx: &SessionContext, format: Format, max_rows: usize) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!(
        "micromegas-sql {} — \\? for help, \\q to quit",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "sql> " } else { "...> " };
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut parts = trimmed.split_whitespace();
            let sql = match (parts.next(), parts.next()) {
                (Some("\\q"), _) => break,
                (Some("\\?") | Some("\\h"), _) => {
                    println!("{HELP}");
                    continue;
                }
                (Some("\\d"), None) => {
                    "SELECT table_name, table_type FROM information_schema.tables \
                     WHERE table_schema = 'public' ORDER BY table_name"
                        .to_owned()
                }
                (Some("\\d"), Some(table)) => describe_sql(ctx, table).await,
                _ => {
                    eprintln!("unknown command {trimmed}; \\? lists the commands");
                    continue;
                }
            };
            if let Err(e) = crate::run_script(ctx, &sql, format, max_rows).await {
                eprintln!("error: {}", crate::describe(&e));
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let sql = std::mem::take(&mut buffer);
            let _ = editor.add_history_entry(sql.trim());
            if let Err(e) = crate::run_script(ctx, &sql, format, max_rows).await {
                eprintln!("error: {}", crate::describe(&e));
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// The query describing `table`, or one that fails with a clear message if it does not exist.
async fn describe_sql(ctx: &SessionContext, table: &str) -> String {
    let table = table.trim_end_matches(';');
    if ctx.table_exist(table).unwrap_or(false) {
        format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = '{}' ORDER BY ordinal_position",
            table.replace('\'', "''")
        )
    } else {
        format!("SELECT * FROM \"{}\" LIMIT 0", table.replace('"', "\"\""))
    }
}
