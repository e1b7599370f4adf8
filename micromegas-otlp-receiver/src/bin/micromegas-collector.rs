//! `micromegas-collector`: OTLP (gRPC, HTTP) and native blocks into a micromegas lake, kept
//! materialized.

use anyhow::Context;
use clap::Parser;
use micromegas_lake::maintenance::MaintenanceOptions;
use micromegas_lake::sink::LakeSink;
use micromegas_lake::{Lake, LakeError};
use micromegas_otlp_receiver::{Collector, CollectorOptions};
use micromegas_tracing_layer::MicromegasLayer;
use std::sync::Arc;
use std::time::Duration;
use tracing::instrument::WithSubscriber;

/// Every request allocates and frees many small values (the decoded protobuf) and a few large
/// buffers (Arrow columns, encoded objects); mimalloc serves that about a third faster than
/// glibc's allocator, whose large frees also return pages that the next request faults back in
/// (BENCHMARKS.md §5). It is built without transparent huge pages (the workspace enables
/// mimalloc's `no_thp`): buffers freed and allocated again a moment later would each fault in
/// and zero a 2 MiB page, which made materialization 1.6× slower. On a host whose THP setting
/// is `always` rather than `madvise`, `MIMALLOC_ALLOW_THP=0` turns them off for the process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The micromegas collector: receives OpenTelemetry traces, logs and metrics over OTLP (gRPC
/// and HTTP, protobuf or JSON) and native blocks (gRPC micromegas.ingest.v1.NativeIngest on
/// the gRPC address, or HTTP POST /v1/native), and writes them into
/// a lake (acknowledged only once durable), which it keeps materialized, compacted
/// and, if asked, trimmed to a retention age.
#[derive(Debug, Parser)]
#[command(name = "micromegas-collector", version, about, long_about)]
struct Args {
    #[command(flatten)]
    lake: micromegas_lake::cli::LakeArgs,

    /// Address of the OTLP/gRPC server.
    #[arg(long, env = "MICROMEGAS_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    grpc_addr: String,

    /// Address of the OTLP/HTTP server (also native blocks at /v1/native and /health).
    #[arg(long, env = "MICROMEGAS_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    http_addr: String,

    /// Largest request accepted, in MiB, after decompression.
    #[arg(long, env = "MICROMEGAS_MAX_MESSAGE_MIB", default_value_t = 64)]
    max_message_mib: usize,

    /// Require `Authorization: Bearer <token>` on ingest, with one of these tokens (repeat
    /// the flag, or separate with commas in the variable). Default: no authentication.
    #[arg(
        long = "auth-token",
        env = "MICROMEGAS_AUTH_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    auth_tokens: Vec<String>,

    /// Requests being written at once, in MiB, before new ones are refused with gRPC
    /// UNAVAILABLE + RetryInfo / HTTP 503 + Retry-After (clients retry them).
    #[arg(long, env = "MICROMEGAS_MAX_INFLIGHT_MIB", default_value_t = 256)]
    max_inflight_mib: usize,

    /// Longest wait for a request's data to be durable (e.g. 8s, 1m) before the request is
    /// refused as retryable (gRPC UNAVAILABLE / HTTP 503), as when the object store or the
    /// catalog is unreachable. Keep it below the clients' export timeout (10 s for
    /// OpenTelemetry SDKs and the network sink) so they hear why. The write goes on, keeping
    /// its share of --max-inflight-mib until it ends; a request sent again is stored once.
    /// A failed S3 request is not retried past this deadline either.
    #[arg(long, env = "MICROMEGAS_WRITE_TIMEOUT", default_value = "8s", value_parser = write_timeout)]
    write_timeout: Duration,

    /// Do not record the collector's own logs and metrics (requests, rows, bytes, refusals,
    /// in-flight bytes, and its CPU, memory, threads and files every 5 s) into the lake. By default they are written straight into the lake
    /// (never through the collector's own endpoints), as the process `micromegas-collector`.
    #[arg(long, env = "MICROMEGAS_NO_SELF_TELEMETRY")]
    no_self_telemetry: bool,

    /// How long to keep trying, at start, a PostgreSQL catalog (--catalog) that cannot be
    /// reached yet: a database started at the same time as the collector, or restarting
    /// (e.g. 30s, 2m; 0s to stop at the first try's error). Each try waits up to 10 s for a
    /// connection, and each failed one is logged. Wrong credentials or a missing database
    /// stop it at once.
    #[arg(long, env = "MICROMEGAS_CATALOG_WAIT", default_value = "30s",
          value_parser = micromegas_lake::retention::parse_age)]
    catalog_wait: Duration,

    #[command(flatten)]
    flightsql: micromegas_lake::cli::FlightSqlArgs,

    /// TLS of all three servers (gRPC, HTTP, FlightSQL).
    #[command(flatten)]
    tls: micromegas_lake::cli::TlsArgs,

    /// Do not serve FlightSQL. Without --query-token, FlightSQL accepts the --auth-token
    /// tokens (so setting ingest tokens never leaves queries open).
    #[arg(long, env = "MICROMEGAS_NO_FLIGHTSQL")]
    no_flightsql: bool,

    /// Delete data older than this age (e.g. 30d, 12h); default: keep everything.
    #[arg(long, env = "MICROMEGAS_RETENTION", value_parser = micromegas_lake::retention::parse_age)]
    retention: Option<Duration>,

    /// Delete raw payloads (what was received, as written) this long after they were written,
    /// once all they hold is materialized into Parquet (e.g. 0s, 1d); default: keep them.
    /// Queries read the Parquet partitions, so their results do not change; the blocks can no
    /// longer be materialized again. Checked every 5 min.
    #[arg(long, env = "MICROMEGAS_RAW_RETENTION", value_parser = micromegas_lake::retention::parse_age)]
    raw_retention: Option<Duration>,

    /// The most memory, in MiB, that compaction gives the rows it merges into one partition
    /// (past hours' partitions are merged every 5 min). A merge needs about this plus one
    /// partition's rows, whatever an hour holds; each merged partition holds about this much
    /// data (at least 1).
    #[arg(long, env = "MICROMEGAS_COMPACTION_MEMORY_MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    compaction_memory_mib: u32,

    /// How often the objects of the lake that no catalog row refers to (left by a process
    /// stopped between an object's write and its commit, or between a row's removal and its
    /// object's deletion) are looked for and deleted, starting at startup; `off` to never
    /// look. Each pass lists raw/, tables/ and views/ of the lake (one LIST request per 1000
    /// objects on S3).
    #[arg(long, env = "MICROMEGAS_ORPHAN_SCAN_PERIOD", default_value = "6h", value_parser = scan_period)]
    orphan_scan_period: ScanPeriod,

    /// How long an object must have been unreferenced, and unmodified, before a pass deletes
    /// it (at least 1m): longer than any write in progress and any running query.
    #[arg(long, env = "MICROMEGAS_ORPHAN_GRACE", default_value = "1h", value_parser = orphan_grace)]
    orphan_grace: Duration,
}

/// A period, or `off`.
#[derive(Debug, Clone, Copy)]
struct ScanPeriod(Option<Duration>);

fn scan_period(text: &str) -> Result<ScanPeriod, String> {
    if text.trim() == "off" {
        return Ok(ScanPeriod(None));
    }
    match micromegas_lake::retention::parse_age(text)? {
        Duration::ZERO => Err("the orphan scan period must be at least 1s, or off".into()),
        d => Ok(ScanPeriod(Some(d))),
    }
}

fn orphan_grace(text: &str) -> Result<Duration, String> {
    match micromegas_lake::retention::parse_age(text)? {
        d if d < Duration::from_secs(60) => Err(format!(
            "an orphan grace of {d:?} could delete the object of a write that has not \
             committed yet; give at least 1m"
        )),
        d => Ok(d),
    }
}

/// How long after the write deadline a stopping server may still wait for its connections.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// Waits for a stopping server until `deadline`; `Ok(false)` if it was still waiting for
/// connections then (it is stopped: its connections close).
async fn drain<E>(
    mut server: tokio::task::JoinHandle<Result<(), E>>,
    deadline: tokio::time::Instant,
    name: &str,
) -> anyhow::Result<bool>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(ended) => {
            ended
                .with_context(|| format!("{name} server task"))?
                .with_context(|| format!("{name} server failed"))?;
            Ok(true)
        }
        Err(_) => {
            server.abort();
            Ok(false)
        }
    }
}

fn write_timeout(text: &str) -> Result<Duration, String> {
    match micromegas_lake::retention::parse_age(text)? {
        Duration::ZERO => Err("the write timeout must be at least 1s".into()),
        d => Ok(d),
    }
}

/// Logs to stderr, and (unless disabled) the collector's own telemetry into `lake` through
/// MicromegasLayer. Our own modules log from INFO, dependencies from WARN; the lake's database
/// driver not at all, since its messages come from writing this very telemetry.
fn start_telemetry(lake: &Lake, enabled: bool) -> anyhow::Result<Option<micromegas_core::Guard>> {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("micromegas", LevelFilter::INFO)
        .with_target("sqlx", LevelFilter::OFF);
    macro_rules! stderr {
        () => {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
        };
    }
    if !enabled {
        tracing_subscriber::registry()
            .with(stderr!().with_filter(filter))
            .init();
        return Ok(None);
    }
    let sink = LakeSink::with_lake(lake.clone(), tokio::runtime::Handle::current());
    let (layer, guard) = MicromegasLayer::builder()
        .service_name("micromegas-collector")
        .sink(Arc::new(sink))
        .system_monitor(micromegas_tracing_layer::system_monitor::DEFAULT_PERIOD)
        .build()
        .context("cannot start the collector's own telemetry")?;
    tracing_subscriber::registry()
        .with(layer.with_filter(filter.clone()))
        .with(stderr!().with_filter(filter))
        .init();
    Ok(Some(guard))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let telemetry = runtime.block_on(run(args))?;
    // The last telemetry is flushed by the pipeline's flusher thread through the runtime,
    // which is still alive here (outside of it, so waiting on it is allowed).
    if let Some(guard) = telemetry {
        let stats = guard.shutdown();
        if stats.total_dropped() > 0 {
            eprintln!("micromegas-collector: some of its own telemetry was dropped: {stats:?}");
        }
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<Option<micromegas_core::Guard>> {
    let mut options = args.lake.options();
    // A request to the object store is not retried past the write deadline: its client has
    // been answered by then, and the write's budget is freed for the next requests.
    options.s3.retry_timeout = Some(args.write_timeout);
    options.catalog_wait = args.catalog_wait;
    // The logging of `start_telemetry` needs the lake: until it is open, warnings (a catalog
    // that cannot be reached yet) go to stderr.
    let opening = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let lake = Lake::open(&args.lake.lake, options)
        .with_subscriber(opening)
        .await
        .with_context(|| format!("cannot open the lake at {}", args.lake.lake))?;
    let telemetry = start_telemetry(&lake, !args.no_self_telemetry)?;
    let maintenance = lake.spawn_maintenance(
        MaintenanceOptions {
            retention: args.retention,
            raw_retention: args.raw_retention,
            compaction_memory: (args.compaction_memory_mib as usize) << 20,
            ..Default::default()
        },
        |e| match e {
            LakeError::Corrupt { .. } => tracing::error!(error = %e, "damaged raw data"),
            _ => tracing::warn!(error = %e, "maintenance failed; retried next period"),
        },
    );
    let garbage = args.orphan_scan_period.0.map(|period| {
        lake.spawn_garbage_collection(period, args.orphan_grace, |outcome| match outcome {
            Ok(r) if r.objects_deleted + r.staging_files_deleted > 0 => tracing::info!(
                listed = r.objects_listed,
                deleted = r.objects_deleted,
                bytes = r.bytes_deleted,
                staging_files = r.staging_files_deleted,
                waiting = r.waiting(),
                "deleted objects no catalog row referred to"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "orphan scan failed; retried next period"),
        })
    });
    let grpc_tls = args.tls.load(&[micromegas_lake::tls::ALPN_H2])?;
    let http_tls = args.tls.load(&[micromegas_lake::tls::ALPN_HTTP1])?;
    let grpc = tokio::net::TcpListener::bind(&args.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--grpc-addr)", args.grpc_addr))?;
    let http = tokio::net::TcpListener::bind(&args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--http-addr)", args.http_addr))?;
    let flightsql = if args.no_flightsql {
        None
    } else {
        let addr = &args.flightsql.flightsql_addr;
        Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--flightsql-addr)"))?,
        )
    };
    let tokens = micromegas_otlp_receiver::auth::Tokens::new(args.auth_tokens.clone());
    if tokens.is_open() {
        tracing::warn!("no --auth-token: ingest is open to anyone who can connect");
    }
    let collector = Collector::new(
        lake.clone(),
        CollectorOptions {
            max_message_bytes: args.max_message_mib << 20,
            max_inflight_bytes: args.max_inflight_mib << 20,
            tokens,
            write_timeout: args.write_timeout,
        },
    );
    let flightsql_addr = match &flightsql {
        Some(l) => l.local_addr()?.to_string(),
        None => "off".to_owned(),
    };
    eprintln!(
        "micromegas-collector: OTLP/gRPC and native blocks on {}, OTLP/HTTP on {}, \
         FlightSQL on {flightsql_addr}{}, lake {}",
        grpc.local_addr()?,
        http.local_addr()?,
        if grpc_tls.is_some() { ", TLS only" } else { "" },
        args.lake.lake
    );
    tracing::info!(
        grpc = %grpc.local_addr()?,
        http = %http.local_addr()?,
        flightsql = %flightsql_addr,
        lake = %args.lake.lake,
        "collector started"
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grpc_server = tokio::spawn(micromegas_otlp_receiver::grpc::serve(
        collector.clone(),
        grpc,
        grpc_tls.clone(),
        wait(stopping.clone()),
    ));
    let http_server = tokio::spawn(micromegas_otlp_receiver::http::serve(
        collector.clone(),
        http,
        http_tls,
        wait(stopping.clone()),
    ));
    let flightsql_server = flightsql.map(|listener| {
        let server = args.flightsql.server(lake.clone(), &args.auth_tokens);
        tokio::spawn(server.serve(listener, grpc_tls, wait(stopping)))
    });
    micromegas_lake::cli::shutdown_signal().await;
    let _ = stop.send(true);
    // Every request is answered within the write deadline; past it (and a margin), what still
    // holds a server is a connection that sends nothing, which must not keep the process up.
    let drained = tokio::time::Instant::now() + args.write_timeout + DRAIN_MARGIN;
    let mut answered = true;
    answered &= drain(grpc_server, drained, "gRPC").await?;
    answered &= drain(http_server, drained, "HTTP").await?;
    if let Some(server) = flightsql_server {
        answered &= drain(server, drained, "FlightSQL").await?;
    }
    if answered {
        tracing::info!("collector stopped; requests in flight were answered");
        eprintln!("micromegas-collector: stopping; requests in flight were answered");
    } else {
        tracing::warn!(
            "collector stopped; connections still open at the drain deadline were closed"
        );
        eprintln!(
            "micromegas-collector: stopping; connections still open at the drain deadline \
             (--write-timeout + {DRAIN_MARGIN:?}) were closed"
        );
    }
    // Writes of requests answered as timed out (or whose clients went away) may still run:
    // they are given as long again to end. Their clients were not acknowledged and still
    // hold the data, so what is left unfinished at the limit loses nothing acknowledged.
    let unfinished = collector.finish_writes(args.write_timeout).await;
    if unfinished > 0 {
        tracing::warn!(
            bytes = unfinished,
            "writes still running at exit were left; their requests were not acknowledged"
        );
        eprintln!(
            "micromegas-collector: {unfinished} bytes of unacknowledged writes were left running \
             at exit; their clients keep and resend them"
        );
    }
    if let Some(garbage) = garbage {
        garbage.stop().await;
    }
    maintenance.stop().await;
    Ok(telemetry)
}
