//! Runnable examples: see the `[[example]]` entries of this package. What several examples
//! share (where their data goes) and the OpenTelemetry one (run by a test against a real
//! collector) live here.

pub mod otel_exporter;

use micromegas_core::sink::Sink;
use micromegas_lake::sink::LakeSink;
use micromegas_lake::LakeOptions;
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use std::sync::Arc;

/// Where an example sends its data, from its command line: `--collector URL` (a running
/// `micromegas-collector`, `MICROMEGAS_AUTH_TOKEN` as the bearer token) or a lake URL
/// (default `./micromegas-lake`, written directly).
pub struct Destination {
    /// The sink to hand to the pipeline.
    pub sink: Arc<dyn Sink>,
    /// What to tell the user.
    pub description: String,
}

impl Destination {
    /// Parses `[--collector URL | LAKE]`; exits with a message on a bad argument.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Self {
        let args: Vec<String> = args.into_iter().collect();
        let result = match args.as_slice() {
            [flag, url] if flag == "--collector" => Self::collector(url),
            [flag] if flag == "--collector" => Self::collector("http://127.0.0.1:4317"),
            [] => Self::lake(micromegas_lake::DEFAULT_LAKE),
            [lake] if !lake.starts_with('-') => Self::lake(lake),
            _ => Err("usage: [--collector URL | LAKE]".to_owned()),
        };
        result.unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })
    }

    /// Sends to the collector at `url`.
    pub fn collector(url: &str) -> Result<Self, String> {
        let options = NetworkOptions {
            token: std::env::var("MICROMEGAS_AUTH_TOKEN").ok(),
            ..Default::default()
        };
        let sink = NetworkSink::connect(url, options).map_err(|e| e.to_string())?;
        Ok(Self {
            sink: Arc::new(sink),
            description: format!("the collector at {url}"),
        })
    }

    /// Writes into the lake at `url`.
    pub fn lake(url: &str) -> Result<Self, String> {
        let sink = LakeSink::open(url, LakeOptions::default())
            .map_err(|e| format!("cannot open the lake at {url}: {e}"))?;
        Ok(Self {
            sink: Arc::new(sink),
            description: format!(
                "the lake {url}; query it with: micromegas-sql --lake {url} \
                 -c \"SELECT level, msg FROM log_entries ORDER BY time DESC LIMIT 10\""
            ),
        })
    }

    /// Prints what was recorded and where it went; exits non-zero if anything was lost.
    pub fn report(&self, stats: &micromegas_core::Stats) {
        println!(
            "recorded {} events in {} blocks ({} bytes), dropped {}; sent to {}",
            stats.delivered_events,
            stats.delivered_blocks,
            stats.delivered_bytes,
            stats.total_dropped(),
            self.description
        );
        if stats.total_dropped() > 0 {
            eprintln!("some events were dropped: {stats:?}");
            std::process::exit(1);
        }
    }
}
