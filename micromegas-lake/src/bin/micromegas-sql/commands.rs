//! The backslash commands of the prompt and of scripts. They are datafusion-cli's, so habits
//! carry over.

use crate::output::Format;
use crate::Settings;
use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use clap::ValueEnum;
use datafusion::execution::context::SessionContext;

const HELP: &str = "\
Statements end with ';' and may span several lines. Commands stand on lines of their own,
between statements (also in -c, -f and \\i scripts).
  \\d               list tables
  \\d TABLE         describe a table
  \\h               list functions
  \\h FUNCTION      describe a function
  \\i FILE          run the statements and commands of a file
  \\pset            show the settings
  \\pset format F   table, csv, tsv, json or ndjson
  \\pset maxrows N  rows printed per statement at most (inf: all)
  \\quiet [on|off]  no row count and time after each statement
  \\q               quit (or Ctrl-D)
  \\?               this help";

/// What comes after a backslash command.
pub enum Flow {
    Continue,
    Quit,
}

/// Runs one backslash command.
pub async fn command(
    ctx: &SessionContext,
    settings: &mut Settings,
    line: &str,
) -> anyhow::Result<Flow> {
    let (name, arg) = match line.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim().trim_end_matches(';').trim()),
        None => (line, ""),
    };
    match (name, arg) {
        ("\\q", _) => return Ok(Flow::Quit),
        ("\\?", _) => println!("{HELP}"),
        ("\\d", "") => {
            let sql = "SELECT table_name, table_type FROM information_schema.tables \
                       WHERE table_schema = 'public' ORDER BY table_name";
            crate::run_script(ctx, sql, settings).await?;
        }
        ("\\d", table) => crate::run_script(ctx, &describe_sql(ctx, table), settings).await?,
        ("\\h", "") => list_functions(ctx).await?,
        ("\\h", function) => describe_function(ctx, function).await?,
        ("\\i", "") => anyhow::bail!("\\i needs a file: \\i FILE"),
        ("\\i", file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read SQL file {file}"))?;
            // Its statements and commands; a `\q` there ends everything, as in psql.
            return crate::script::run_text(ctx, settings, &text).await;
        }
        ("\\pset", arg) => pset(settings, arg)?,
        ("\\quiet", arg) => {
            settings.quiet = match arg {
                "" => !settings.quiet,
                "on" | "true" => true,
                "off" | "false" => false,
                other => anyhow::bail!("\\quiet takes on or off, not '{other}'"),
            };
            println!("quiet: {}", if settings.quiet { "on" } else { "off" });
        }
        _ => anyhow::bail!("unknown command {line}; \\? lists the commands"),
    }
    Ok(Flow::Continue)
}

/// `\pset`, `\pset format F`, `\pset maxrows N`.
fn pset(settings: &mut Settings, arg: &str) -> anyhow::Result<()> {
    let mut words = arg.split_whitespace();
    match (words.next(), words.next()) {
        (None, _) => {}
        (Some("format"), Some(f)) => {
            settings.format = Format::from_str(f, true).map_err(|_| {
                anyhow::anyhow!("unknown format '{f}'; use table, csv, tsv, json or ndjson")
            })?;
        }
        (Some("maxrows"), Some(n)) => {
            settings.max_rows = crate::parse_max_rows(n).map_err(anyhow::Error::msg)?
        }
        _ => anyhow::bail!("\\pset takes format F or maxrows N, not '{arg}'"),
    }
    let format = settings.format.to_possible_value();
    let format = format.as_ref().map_or("?", |v| v.get_name());
    let max_rows = match settings.max_rows {
        0 => "inf".to_owned(),
        n => n.to_string(),
    };
    println!("format {format}, maxrows {max_rows}");
    Ok(())
}

/// The query describing `table`, or one that fails with a clear message if it does not exist.
fn describe_sql(ctx: &SessionContext, table: &str) -> String {
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

/// The rows of a query, all columns as text ("" for NULL).
async fn text_rows(ctx: &SessionContext, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let batches: Vec<RecordBatch> = ctx.sql(sql).await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8))
            .collect::<Result<_, _>>()?;
        for row in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        if c.is_null(row) {
                            String::new()
                        } else {
                            c.value(row).to_owned()
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// `\h`: the names of all functions, wrapped.
async fn list_functions(ctx: &SessionContext) -> anyhow::Result<()> {
    let rows = text_rows(
        ctx,
        "SELECT DISTINCT routine_name FROM information_schema.routines ORDER BY 1",
    )
    .await?;
    let mut line = String::new();
    for name in rows.iter().filter_map(|r| r.first()) {
        if !line.is_empty() && line.len() + 1 + name.len() > 96 {
            println!("{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(name);
    }
    if !line.is_empty() {
        println!("{line}");
    }
    println!("(\\h FUNCTION describes one)");
    Ok(())
}

/// `\h FUNCTION`: its kind, description and syntax.
async fn describe_function(ctx: &SessionContext, name: &str) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT DISTINCT function_type, description, syntax_example \
         FROM information_schema.routines WHERE routine_name = '{}'",
        name.to_lowercase().replace('\'', "''")
    );
    let rows = text_rows(ctx, &sql).await?;
    if rows.is_empty() {
        anyhow::bail!("no function named {name}; \\h lists them");
    }
    for row in rows {
        if let [kind, description, syntax] = row.as_slice() {
            println!("{name} ({} function)", kind.to_lowercase());
            if !description.is_empty() {
                println!("  {description}");
            }
            if !syntax.is_empty() {
                println!("  syntax: {syntax}");
            }
        }
    }
    Ok(())
}
