//! `micromegas-sql`: SQL on a micromegas lake, one-shot (`-c`, `-f`) or interactive.

mod commands;
mod output;
mod progress;
mod repl;
mod script;

use anyhow::Context;
use clap::{Parser, Subcommand};
use datafusion::execution::context::SessionContext;
use datafusion::sql::parser::DFParser;
use micromegas_lake::{Lake, ViewTable};
use output::Format;
use std::io::Write;
use std::process::ExitCode;

/// Queries and materialization allocate and free many large buffers (Arrow columns, Parquet
/// pages); mimalloc serves them faster than glibc's allocator, whose large frees return pages
/// that the next batch faults back in (BENCHMARKS.md §5). Built without transparent huge pages,
/// as in the collector.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SQL on a micromegas lake: logs, metrics and traces as tables.
///
/// Tables: processes, streams, blocks, partitions, log_entries, measures, spans,
/// span_intervals (each time a span of the tracing layer was entered on a thread: busy time).
/// Functions: property_get(properties, key), histogram_quantile(q, properties) (an aggregate:
/// quantiles of OTLP histograms), and every DataFusion function.
/// Queries on log_entries, measures, spans and span_intervals first materialize the raw data
/// they need (filter on `time`, `start_time`/`end_time` for spans, `begin_time`/`end_time`
/// for span_intervals, to read only that range).
///
/// It opens a lake that exists (made by micromegas-collector or the Rust API): a directory
/// without a catalog, or a PostgreSQL catalog without a lake, is an error, never a new lake.
#[derive(Debug, Parser)]
#[command(name = "micromegas-sql", version, about, long_about)]
struct Args {
    #[command(flatten)]
    lake: micromegas_lake::cli::LakeArgs,

    /// Run these SQL statements (separated by `;`) and backslash commands (`\d spans`, on a
    /// line of their own), then exit. May be given several times: run in order.
    #[arg(short = 'c', long = "command", conflicts_with = "file")]
    command: Vec<String>,

    /// Run the SQL statements and backslash commands of this file, then exit. May be given
    /// several times: run in order.
    #[arg(short = 'f', long = "file")]
    file: Vec<std::path::PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "MICROMEGAS_SQL_FORMAT")]
    format: Format,

    /// Serve the lake over FlightSQL (for Grafana, ADBC, pyarrow) until interrupted, instead
    /// of running SQL here.
    #[arg(long, conflicts_with_all = ["command", "file"])]
    serve: bool,

    #[command(flatten)]
    flightsql: micromegas_lake::cli::FlightSqlArgs,

    #[command(flatten)]
    tls: micromegas_lake::cli::TlsArgs,

    /// Print at most this many rows per statement (0 or inf: all). Default: all for -c and
    /// -f, 40 interactively.
    #[arg(long, alias = "maxrows", value_parser = parse_max_rows)]
    max_rows: Option<usize>,

    /// At the prompt, print no banner and no row count and time after each statement.
    #[arg(short, long)]
    quiet: bool,

    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Materialize every pending raw block into Parquet partitions, then exit.
    Materialize,
    /// Delete data (raw payloads, partitions, catalog rows) older than an age, and/or raw
    /// payloads already materialized into Parquet, then exit.
    Retention {
        /// Delete everything about data older than this age, such as 30d, 12h, 90m (units s,
        /// m, h, d, w).
        #[arg(long, value_parser = micromegas_lake::retention::parse_age,
              required_unless_present = "raw_older_than")]
        older_than: Option<std::time::Duration>,
        /// Delete the raw payloads written longer ago than this age (0s: all) whose blocks are
        /// all materialized; query results do not change, the blocks cannot be materialized
        /// again.
        #[arg(long, value_parser = micromegas_lake::retention::parse_age)]
        raw_older_than: Option<std::time::Duration>,
    },
    /// Delete the objects under the lake's raw/, tables/ and views/ that no catalog row has
    /// referred to for a grace period (left by a process stopped between writing an object
    /// and committing its row, or between removing a row and deleting its object), then exit.
    /// A pass deletes what an earlier pass (or a collector's) saw unreferenced at least the
    /// grace ago, and notes what it sees unreferenced now for the next pass.
    CollectGarbage {
        /// How long an object must have been unreferenced, and unmodified, before it is
        /// deleted: longer than any write in progress and any running query (default 1h).
        /// 0s deletes every unreferenced object now: only while nothing writes to the lake.
        #[arg(long, default_value = "1h", value_parser = micromegas_lake::retention::parse_age)]
        grace: std::time::Duration,
    },
    /// Print the number of catalog rows of each table, then exit.
    Stats,
    /// Give the space freed in the catalog by retention back to the file system (SQLite's
    /// `VACUUM`; the embedded lake keeps small raw objects in its catalog), then exit. Writers
    /// wait meanwhile: best run while the collector is stopped.
    Vacuum,
    /// SQL-defined views (incremental data reduction): create, list, drop, refresh.
    #[command(subcommand)]
    View(ViewAction),
    /// Write the spans of one process or one trace (and the logs of their threads) to a
    /// Perfetto trace file; open it in the Perfetto UI (ui.perfetto.dev).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["process", "trace"])))]
    ExportPerfetto {
        /// The process (UUID, from `SELECT process_id FROM processes`).
        #[arg(long)]
        process: Option<String>,
        /// The trace (32 hex digits, from `SELECT trace_id FROM spans`).
        #[arg(long)]
        trace: Option<String>,
        /// Only spans ending at or after this time (RFC 3339, e.g. 2026-11-28T10:00:00Z).
        #[arg(long, value_parser = parse_time)]
        begin: Option<i64>,
        /// Only spans starting before this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        end: Option<i64>,
        /// The file to write (.pftrace).
        #[arg(short = 'o', long)]
        output: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ViewAction {
    /// Define a view: a query over one materialized table (log_entries, measures, spans,
    /// span_intervals) grouped by a time bucket
    /// named `time`, e.g. "SELECT date_bin(INTERVAL '1 minute', time) AS time, service_name,
    /// COUNT(*) AS errors FROM log_entries WHERE severity_number >= 17 GROUP BY 1, 2".
    Create {
        /// The view's table name.
        name: String,
        /// Its query.
        #[arg(long)]
        sql: String,
    },
    /// List the views (built-in and defined) with their queries.
    List,
    /// Remove a defined view and its data.
    Drop {
        /// The view's name.
        name: String,
    },
    /// Bring every view up to date now.
    Refresh,
}

/// An RFC 3339 time as ns since the Unix epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{e}: expected RFC 3339 such as 2026-11-28T10:00:00Z"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| "time out of range".to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once.
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !text.contains(&s) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s);
        }
    }
    text
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A reader: a mistyped path is an error, not a new empty lake.
    let lake = Lake::open(&args.lake.lake, args.lake.options().existing_only())
        .await
        .with_context(|| format!("cannot open the lake at {}", args.lake.lake))?;
    match &args.action {
        Some(Action::Materialize) => {
            for table in ViewTable::runs() {
                let mut line = progress::Progress::new();
                let r = lake
                    .materialize_observed(table, None, |r| {
                        line.show(|| {
                            format!(
                                "materializing {}: {} blocks, {} rows, {} partitions",
                                table.name(),
                                r.blocks,
                                r.rows,
                                r.partitions
                            )
                        })
                    })
                    .await;
                line.clear();
                let r = r?;
                eprintln!(
                    "{}: {} blocks, {} rows, {} partitions",
                    table.name(),
                    r.blocks,
                    r.rows,
                    r.partitions
                );
                for (block, reason) in &r.unreadable {
                    eprintln!("warning: block {block} could not be read: {reason}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::Retention {
            older_than,
            raw_older_than,
        }) => {
            if let Some(age) = older_than {
                let mut line = progress::Progress::new();
                let cutoff = micromegas_lake::retention::cutoff(*age);
                let r = lake
                    .expire_before_observed(cutoff, |r| {
                        line.show(|| format!("retention: {} objects deleted", r.objects_deleted))
                    })
                    .await;
                line.clear();
                eprintln!("deleted {} objects", r?.objects_deleted);
            }
            if let Some(age) = raw_older_than {
                let mut line = progress::Progress::new();
                let r = lake
                    .drop_materialized_raw_observed(*age, |r| {
                        line.show(|| {
                            format!("raw retention: {} objects deleted", r.objects_deleted)
                        })
                    })
                    .await;
                line.clear();
                eprintln!("deleted {} materialized raw objects", r?.objects_deleted);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::CollectGarbage { grace }) => {
            let mut line = progress::Progress::new();
            let r = lake
                .collect_garbage_observed(*grace, |r| {
                    line.show(|| {
                        format!(
                            "garbage collection: {} objects listed, {} deleted",
                            r.objects_listed, r.objects_deleted
                        )
                    })
                })
                .await;
            line.clear();
            let r = r?;
            eprintln!(
                "{} objects listed, {} unreferenced: {} deleted ({} bytes), {} kept until \
                 unreferenced for {:?}; {} staging files deleted",
                r.objects_listed,
                r.unreferenced,
                r.objects_deleted,
                r.bytes_deleted,
                r.waiting(),
                grace,
                r.staging_files_deleted
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::View(action)) => {
            match action {
                ViewAction::Create { name, sql } => {
                    let v = lake.create_view(name, sql).await?;
                    eprintln!("created view {} over {}", v.name, v.base.name());
                }
                ViewAction::List => {
                    for v in lake.views().await? {
                        let kind = if v.builtin { "built-in" } else { "defined" };
                        println!("{}\t{kind}\t{}\t{}", v.name, v.base.name(), v.sql);
                    }
                }
                ViewAction::Drop { name } => {
                    lake.drop_view(name).await?;
                    eprintln!("dropped view {name}");
                }
                ViewAction::Refresh => {
                    let r = lake.refresh_views(None).await?;
                    eprintln!("{} hours computed, {} rows", r.hours_computed, r.rows);
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::Vacuum) => {
            lake.catalog().vacuum().await?;
            eprintln!("catalog vacuumed");
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::Stats) => {
            for (table, n) in lake.catalog().counts().await? {
                println!("{table}\t{n}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::ExportPerfetto {
            process,
            trace,
            begin,
            end,
            output,
        }) => {
            let selection = micromegas_lake::perfetto::Selection {
                process_id: process.clone(),
                trace_id: trace.clone(),
                begin_ns: *begin,
                end_ns: *end,
            };
            let file = std::fs::File::create(output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let mut file = std::io::BufWriter::new(file);
            let mut line = progress::Progress::new();
            let r = micromegas_lake::perfetto::export_observed(&lake, &selection, &mut file, |r| {
                line.show(|| {
                    format!(
                        "exporting: {} spans, {} logs, {} tracks, {} bytes written",
                        r.slices, r.instants, r.tracks, r.bytes
                    )
                })
            })
            .await;
            line.clear();
            let r = r?;
            eprintln!(
                "{}: {} slices, {} log instants, {} tracks, {} bytes",
                output.display(),
                r.slices,
                r.instants,
                r.tracks,
                r.bytes
            );
            if r.slices == 0 && r.instants == 0 {
                eprintln!("warning: nothing matched; the file holds no event");
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    if args.serve {
        serve(lake, &args.flightsql, &args.tls).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = lake.session().await?;
    let mut scripts = args.command.clone();
    for f in &args.file {
        scripts.push(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read SQL file {}", f.display()))?,
        );
    }
    if scripts.is_empty() {
        let mut settings = Settings {
            format: args.format,
            max_rows: args.max_rows.unwrap_or(40),
            quiet: args.quiet,
            interactive: true,
        };
        repl::run(&ctx, &mut settings).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut settings = Settings {
        format: args.format,
        max_rows: args.max_rows.unwrap_or(0),
        quiet: true,
        interactive: false,
    };
    for text in &scripts {
        if let commands::Flow::Quit = script::run_text(&ctx, &mut settings, text).await? {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves FlightSQL until SIGINT or SIGTERM.
async fn serve(
    lake: Lake,
    args: &micromegas_lake::cli::FlightSqlArgs,
    tls: &micromegas_lake::cli::TlsArgs,
) -> anyhow::Result<()> {
    let tls_config = tls.load(&[micromegas_lake::tls::ALPN_H2])?;
    let listener = tokio::net::TcpListener::bind(&args.flightsql_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--flightsql-addr)",
                args.flightsql_addr
            )
        })?;
    if args.query_tokens.is_empty() {
        eprintln!("warning: no --query-token: anyone who can connect can query the lake");
    }
    eprintln!(
        "micromegas-sql: FlightSQL on {}://{} (Ctrl-C to stop)",
        if tls_config.is_some() {
            "grpc+tls"
        } else {
            "grpc"
        },
        listener.local_addr()?
    );
    args.server(lake, &[])
        .serve(
            listener,
            tls_config,
            micromegas_lake::cli::shutdown_signal(),
        )
        .await
        .context("FlightSQL server failed")
}

/// `--max-rows`: a count, or `inf` (also `all`) for every row, as 0.
fn parse_max_rows(s: &str) -> Result<usize, String> {
    match s {
        "inf" | "all" => Ok(0),
        n => n
            .parse()
            .map_err(|_| format!("'{n}' is not a number of rows; give one, or inf for all")),
    }
}

/// How statements are run and their results printed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Output format.
    pub format: Format,
    /// Rows printed per statement at most (0: all).
    pub max_rows: usize,
    /// No row count and time after each statement.
    pub quiet: bool,
    /// At the prompt (changes how the row limit is said to be lifted).
    pub interactive: bool,
}

/// Runs every SQL statement of `sql` in order; stops at the first error.
pub async fn run_script(
    ctx: &SessionContext,
    sql: &str,
    settings: &Settings,
) -> anyhow::Result<()> {
    let statements = DFParser::parse_sql(sql).context("SQL syntax")?;
    if statements.is_empty() {
        anyhow::bail!("no SQL statement given");
    }
    let (format, max_rows) = (settings.format, settings.max_rows);
    for statement in statements {
        let started = std::time::Instant::now();
        let plan = ctx.state().statement_to_plan(statement).await?;
        let mut df = ctx.execute_logical_plan(plan).await?;
        if max_rows > 0 {
            df = df.limit(0, Some(max_rows + 1))?;
        }
        let schema = df.schema().as_arrow().clone();
        let mut batches = df.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let truncated = max_rows > 0 && rows > max_rows;
        if truncated {
            batches = truncate(batches, max_rows);
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        output::print(&mut out, format, &schema, &batches)?;
        out.flush()?;
        if truncated {
            let lift = if settings.interactive {
                "\\pset maxrows inf"
            } else {
                "--max-rows inf"
            };
            eprintln!("(showing the first {max_rows} rows; {lift} shows all)");
        }
        if !settings.quiet {
            let shown = if truncated { max_rows } else { rows };
            eprintln!(
                "{shown} row{} in {:.3} s",
                if shown == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn truncate(batches: Vec<arrow::array::RecordBatch>, max: usize) -> Vec<arrow::array::RecordBatch> {
    let mut left = max;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        out.push(b.slice(0, n));
        left -= n;
    }
    out
}
