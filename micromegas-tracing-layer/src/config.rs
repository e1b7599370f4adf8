//! Configuration: the builder and the one-call `init`.

use crate::{LogBridge, MicromegasLayer, MicromegasRecorder};
use micromegas_core::sink::{DirectorySink, NullSink, Sink};
use micromegas_core::{Guard, Options};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The core pipeline refused to start.
    #[error(transparent)]
    Core(#[from] micromegas_core::InitError),
    /// An environment variable has a value that cannot be used.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        /// Variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
    /// The sink could not be opened.
    #[error("cannot open the micromegas sink at {path}: {source}")]
    Sink {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A background thread (the system monitor) could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A global `tracing` subscriber, `log` logger or `metrics` recorder is already set.
    #[error(
        "a global {0} is already installed; use MicromegasLayer::builder() and compose it yourself"
    )]
    AlreadySet(&'static str),
}

#[cfg(feature = "network")]
fn network_sink(
    url: &str,
    token: Option<String>,
    ca_file: Option<String>,
) -> Result<Arc<dyn Sink>, InitError> {
    use crate::network::NetworkError;
    let ca_certificate = match ca_file {
        Some(path) => Some(std::fs::read(&path).map_err(|_| InitError::Env {
            name: "MICROMEGAS_TLS_CA",
            value: path,
            reason: "cannot read this CA certificate file (PEM)",
        })?),
        None => None,
    };
    let options = crate::network::NetworkOptions {
        token,
        ca_certificate,
        ..Default::default()
    };
    let sink = crate::network::NetworkSink::connect(url, options).map_err(|e| InitError::Env {
        name: "MICROMEGAS_SINK",
        value: url.to_string(),
        reason: match e {
            NetworkError::Token => "MICROMEGAS_AUTH_TOKEN cannot be sent as an HTTP header",
            NetworkError::Tls { .. } => {
                "TLS cannot be set up with this address and MICROMEGAS_TLS_CA (a PEM file)"
            }
            _ => "expected a collector address such as http://127.0.0.1:4317",
        },
    })?;
    Ok(Arc::new(sink))
}

#[cfg(not(feature = "network"))]
fn network_sink(
    url: &str,
    _token: Option<String>,
    _ca_file: Option<String>,
) -> Result<Arc<dyn Sink>, InitError> {
    Err(InitError::Env {
        name: "MICROMEGAS_SINK",
        value: url.to_string(),
        reason: "sending to a collector needs micromegas-tracing-layer's feature `network`",
    })
}

/// The attributes of an `OTEL_RESOURCE_ATTRIBUTES` value: `key=value` pairs separated by
/// commas, values percent-encoded (as W3C baggage values); or why it cannot be read.
fn resource_attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut attributes = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("'{pair}' has no key"));
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of '{key}' is not UTF-8 once percent-decoded"))?;
        attributes.push((key.to_owned(), value.into_owned()));
    }
    Ok(attributes)
}

/// Settings of the pipeline behind [`MicromegasLayer`].
#[derive(Clone, Default)]
pub struct Builder {
    options: Options,
    sink: Option<Arc<dyn Sink>>,
    system_monitor: Option<Duration>,
    cardinality_limit: Option<usize>,
}

impl Builder {
    /// `service.name` of the process.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.options = self.options.service_name(name);
        self
    }
    /// Adds a process property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options = self.options.property(key, value);
        self
    }
    /// Where blocks go (default: `./micromegas-blocks`, a [`DirectorySink`]).
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }
    /// Byte budget of blocks not yet accepted by the sink.
    pub fn budget_bytes(mut self, bytes: usize) -> Self {
        self.options = self.options.budget_bytes(bytes);
        self
    }
    /// Records the process's and the machine's health as metrics every `period` (see
    /// [`crate::system_monitor`]; feature `system-monitor`). Off unless asked, on in [`init`]
    /// (every 5 s); a zero period turns it off.
    #[cfg(feature = "system-monitor")]
    pub fn system_monitor(mut self, period: Duration) -> Self {
        self.system_monitor = Some(period);
        self
    }
    /// Longest time an event waits in an idle thread.
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.options = self.options.flush_period(period);
        self
    }
    /// Series per metric name and kind of the [`MicromegasRecorder`] that [`init`] installs
    /// (see [`MicromegasRecorder::with_cardinality_limit`]; default
    /// [`crate::DEFAULT_CARDINALITY_LIMIT`]).
    pub fn metrics_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }
    /// The metrics recorder these settings describe, to install with
    /// `metrics::set_global_recorder` (which [`init`] does).
    pub fn metrics_recorder(&self) -> MicromegasRecorder {
        let recorder = MicromegasRecorder::new();
        match self.cardinality_limit {
            Some(limit) => recorder.with_cardinality_limit(limit),
            None => recorder,
        }
    }
    /// Any other core option.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Applies `MICROMEGAS_SERVICE_NAME` (or `OTEL_SERVICE_NAME`, or `service.name` of
    /// `OTEL_RESOURCE_ATTRIBUTES`, whose other attributes become process properties; a value
    /// that cannot be read is ignored as a whole, with a message on stderr, as OpenTelemetry
    /// SDKs do), `MICROMEGAS_BUDGET_BYTES`,
    /// `MICROMEGAS_FLUSH_PERIOD_MS` and `MICROMEGAS_SINK`: `null`, a directory path, or (with
    /// the feature `network`) a collector's gRPC address such as `http://127.0.0.1:4317`, with
    /// `MICROMEGAS_AUTH_TOKEN` as its bearer token (`https://` for a collector serving TLS,
    /// with `MICROMEGAS_TLS_CA`, a PEM file, for a private CA); `MICROMEGAS_SYSTEM_MONITOR_MS`, the
    /// system monitor's period (0: off); and `MICROMEGAS_METRICS_CARDINALITY_LIMIT`, the
    /// series per metric name (see [`Builder::metrics_cardinality_limit`]).
    pub fn from_env(mut self) -> Result<Self, InitError> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let mut resource_service = None;
        if let Some(v) = var("OTEL_RESOURCE_ATTRIBUTES") {
            match resource_attributes(&v) {
                Ok(attributes) => {
                    for (key, value) in attributes {
                        if key == "service.name" {
                            resource_service = Some(value);
                        } else {
                            self = self.property(key, value);
                        }
                    }
                }
                Err(reason) => eprintln!(
                    "micromegas: OTEL_RESOURCE_ATTRIBUTES is ignored: {reason} (expected \
                     key1=value1,key2=value2, values percent-encoded)"
                ),
            }
        }
        if let Some(name) = var("MICROMEGAS_SERVICE_NAME")
            .or_else(|| var("OTEL_SERVICE_NAME"))
            .or(resource_service)
        {
            self = self.service_name(name);
        }
        if let Some(v) = var("MICROMEGAS_BUDGET_BYTES") {
            let bytes = v.parse().map_err(|_| InitError::Env {
                name: "MICROMEGAS_BUDGET_BYTES",
                value: v.clone(),
                reason: "expected a number of bytes",
            })?;
            self = self.budget_bytes(bytes);
        }
        if let Some(v) = var("MICROMEGAS_FLUSH_PERIOD_MS") {
            let ms = v.parse().map_err(|_| InitError::Env {
                name: "MICROMEGAS_FLUSH_PERIOD_MS",
                value: v.clone(),
                reason: "expected milliseconds",
            })?;
            self = self.flush_period(Duration::from_millis(ms));
        }
        #[cfg(feature = "system-monitor")]
        if let Some(v) = var("MICROMEGAS_SYSTEM_MONITOR_MS") {
            let ms = v.parse().map_err(|_| InitError::Env {
                name: "MICROMEGAS_SYSTEM_MONITOR_MS",
                value: v.clone(),
                reason: "expected milliseconds (0 turns the system monitor off)",
            })?;
            self = self.system_monitor(Duration::from_millis(ms));
        }
        if let Some(v) = var("MICROMEGAS_METRICS_CARDINALITY_LIMIT") {
            let limit = v.parse().ok().filter(|n| *n > 0).ok_or(InitError::Env {
                name: "MICROMEGAS_METRICS_CARDINALITY_LIMIT",
                value: v.clone(),
                reason: "expected a number of label sets per metric name, at least 1",
            })?;
            self = self.metrics_cardinality_limit(limit);
        }
        if let Some(v) = var("MICROMEGAS_SINK") {
            self.sink = Some(if v == "null" {
                Arc::new(NullSink)
            } else if v.starts_with("http://") || v.starts_with("https://") {
                network_sink(&v, var("MICROMEGAS_AUTH_TOKEN"), var("MICROMEGAS_TLS_CA"))?
            } else {
                Arc::new(
                    DirectorySink::new(&v).map_err(|source| InitError::Sink { path: v, source })?,
                )
            });
        }
        Ok(self)
    }

    /// Starts the pipeline and returns the layer with the guard that flushes on drop.
    pub fn build(self) -> Result<(MicromegasLayer, Guard), InitError> {
        let sink = match self.sink {
            Some(s) => s,
            None => Arc::new(DirectorySink::new("micromegas-blocks").map_err(|source| {
                InitError::Sink {
                    path: "micromegas-blocks".into(),
                    source,
                }
            })?),
        };
        let guard = micromegas_core::init(sink, self.options)?;
        #[cfg(feature = "system-monitor")]
        if let Some(period) = self.system_monitor.filter(|p| !p.is_zero()) {
            crate::system_monitor::start(period).map_err(|source| InitError::Thread {
                what: "system monitor",
                source,
            })?;
        }
        Ok((MicromegasLayer::new(), guard))
    }
}

/// One call for an application: configures the pipeline from the environment (see
/// [`Builder::from_env`]), installs a global `tracing` subscriber (registry + `RUST_LOG`-style
/// level filter, default `info`, + [`MicromegasLayer`]), the [`LogBridge`] and the
/// [`MicromegasRecorder`]. Keep the returned guard alive; dropping it flushes.
pub fn init() -> Result<Guard, InitError> {
    let builder = Builder::default().from_env()?;
    #[cfg(feature = "system-monitor")]
    let builder = match builder.system_monitor {
        None => builder.system_monitor(crate::system_monitor::DEFAULT_PERIOD),
        Some(_) => builder,
    };
    let recorder = builder.metrics_recorder();
    let (layer, guard) = builder.build()?;
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_core::LevelFilter>().ok())
        .unwrap_or(tracing_core::LevelFilter::INFO);
    use tracing_subscriber::Layer;
    tracing_subscriber::registry()
        .with(layer.with_filter(level))
        .try_init()
        .map_err(|_| InitError::AlreadySet("tracing subscriber"))?;
    let log_level = match level.into_level() {
        None => log::LevelFilter::Off,
        Some(l) if l == tracing_core::Level::ERROR => log::LevelFilter::Error,
        Some(l) if l == tracing_core::Level::WARN => log::LevelFilter::Warn,
        Some(l) if l == tracing_core::Level::INFO => log::LevelFilter::Info,
        Some(l) if l == tracing_core::Level::DEBUG => log::LevelFilter::Debug,
        Some(_) => log::LevelFilter::Trace,
    };
    LogBridge::install(log_level).map_err(|_| InitError::AlreadySet("log logger"))?;
    metrics::set_global_recorder(recorder)
        .map_err(|_| InitError::AlreadySet("metrics recorder"))?;
    Ok(guard)
}
