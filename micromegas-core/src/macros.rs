//! Native instrumentation macros.

/// Records a span from here to the end of the enclosing block.
///
/// ```
/// fn work() {
///     micromegas_core::span_scope!("work");
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! span_scope {
    ($name:expr) => {
        let __micromegas_scope = {
            static META: $crate::metadata::SpanMetadata =
                $crate::metadata::SpanMetadata::new($name, module_path!(), file!(), line!());
            $crate::spans::ScopeGuard::new(&META)
        };
    };
}

/// Wraps a future so that it is recorded as an async span named `$name`; the span may begin
/// and end on different threads.
///
/// ```
/// # async fn fetch() -> u32 { 1 }
/// # async fn demo() {
/// let n = micromegas_core::async_span!("fetch", fetch()).await;
/// # }
/// ```
#[macro_export]
macro_rules! async_span {
    ($name:expr, $future:expr) => {{
        static META: $crate::metadata::SpanMetadata =
            $crate::metadata::SpanMetadata::new($name, module_path!(), file!(), line!());
        $crate::spans::InstrumentedFuture::new($future, &META)
    }};
}

/// Records a log entry at a level. The format string is stored once per block; the arguments
/// are stored binary (integers, floats, bools, strings) or, for other types, as their
/// `Display` text, and the message is formatted when read. Placeholders are positional `{}`
/// (format specs such as `{:?}` are checked at compile time and rendered as `{}`).
///
/// ```
/// use micromegas_core::metadata::Level;
/// micromegas_core::log!(Level::Warn, "disk {} at {}%", "/dev/sda", 93);
/// micromegas_core::log!(target: "storage", Level::Info, "mounted");
/// ```
#[macro_export]
macro_rules! log {
    (target: $target:expr, $lvl:expr, $fmt:literal $(,)?) => {{
        static META: $crate::metadata::LogMetadata =
            $crate::metadata::LogMetadata::new($lvl, $target, $fmt, file!(), line!());
        if $crate::metadata::level_enabled($lvl) {
            $crate::events::log_static(&META);
            if $crate::metadata::Level::is_error($lvl) {
                $crate::events::scope_error();
            }
        }
    }};
    (target: $target:expr, $lvl:expr, $fmt:literal, $($arg:expr),+ $(,)?) => {{
        static META: $crate::metadata::LogMetadata =
            $crate::metadata::LogMetadata::new($lvl, $target, $fmt, file!(), line!());
        if $crate::metadata::level_enabled($lvl) {
            $crate::events::log_args(&META, |__w| {
                #[allow(unused_imports)]
                use $crate::events::{EncodeArg as _, EncodeArgDisplay as _};
                $( (&$crate::events::ArgWrap(&$arg)).encode_arg(None, __w); )+
            });
            if $crate::metadata::Level::is_error($lvl) {
                $crate::events::scope_error();
            }
        }
        if false {
            let _ = ::std::format_args!($fmt, $($arg),+);
        }
    }};
    ($lvl:expr, $($rest:tt)+) => {
        $crate::log!(target: module_path!(), $lvl, $($rest)+)
    };
}

/// [`log!`] at `Fatal`.
#[macro_export]
macro_rules! fatal {
    (target: $target:expr, $($rest:tt)+) => { $crate::log!(target: $target, $crate::metadata::Level::Fatal, $($rest)+) };
    ($($rest:tt)+) => { $crate::log!($crate::metadata::Level::Fatal, $($rest)+) };
}
/// [`log!`] at `Error`.
#[macro_export]
macro_rules! error {
    (target: $target:expr, $($rest:tt)+) => { $crate::log!(target: $target, $crate::metadata::Level::Error, $($rest)+) };
    ($($rest:tt)+) => { $crate::log!($crate::metadata::Level::Error, $($rest)+) };
}
/// [`log!`] at `Warn`.
#[macro_export]
macro_rules! warn {
    (target: $target:expr, $($rest:tt)+) => { $crate::log!(target: $target, $crate::metadata::Level::Warn, $($rest)+) };
    ($($rest:tt)+) => { $crate::log!($crate::metadata::Level::Warn, $($rest)+) };
}
/// [`log!`] at `Info`.
#[macro_export]
macro_rules! info {
    (target: $target:expr, $($rest:tt)+) => { $crate::log!(target: $target, $crate::metadata::Level::Info, $($rest)+) };
    ($($rest:tt)+) => { $crate::log!($crate::metadata::Level::Info, $($rest)+) };
}
/// [`log!`] at `Debug`.
#[macro_export]
macro_rules! debug {
    (target: $target:expr, $($rest:tt)+) => { $crate::log!(target: $target, $crate::metadata::Level::Debug, $($rest)+) };
    ($($rest:tt)+) => { $crate::log!($crate::metadata::Level::Debug, $($rest)+) };
}
/// [`log!`] at `Trace`.
#[macro_export]
macro_rules! trace {
    (target: $target:expr, $($rest:tt)+) => { $crate::log!(target: $target, $crate::metadata::Level::Trace, $($rest)+) };
    ($($rest:tt)+) => { $crate::log!($crate::metadata::Level::Trace, $($rest)+) };
}

/// Records an integer metric: `imetric!(name, unit, value)`, optionally followed by
/// `"key" => value` properties.
///
/// ```
/// micromegas_core::imetric!("queue.depth", "count", 12);
/// micromegas_core::imetric!("request.bytes", "bytes", 512, "route" => "/api", "status" => 200);
/// ```
#[macro_export]
macro_rules! imetric {
    ($name:expr, $unit:expr, $value:expr $(,)?) => {{
        static META: $crate::metadata::MetricMetadata =
            $crate::metadata::MetricMetadata::new($name, $unit, module_path!(), file!(), line!());
        $crate::events::int_metric(&META, ($value) as u64);
    }};
    ($name:expr, $unit:expr, $value:expr, $($key:literal => $prop:expr),+ $(,)?) => {{
        static META: $crate::metadata::MetricMetadata =
            $crate::metadata::MetricMetadata::new($name, $unit, module_path!(), file!(), line!());
        $crate::events::int_metric_props(&META, ($value) as u64, |__w| {
            #[allow(unused_imports)]
            use $crate::events::{EncodeArg as _, EncodeArgDisplay as _};
            $( (&$crate::events::ArgWrap(&$prop)).encode_arg(Some($key), __w); )+
        });
    }};
}

/// Records a float metric: `fmetric!(name, unit, value)`, optionally followed by
/// `"key" => value` properties.
///
/// ```
/// micromegas_core::fmetric!("cpu.load", "ratio", 0.42);
/// ```
#[macro_export]
macro_rules! fmetric {
    ($name:expr, $unit:expr, $value:expr $(,)?) => {{
        static META: $crate::metadata::MetricMetadata =
            $crate::metadata::MetricMetadata::new($name, $unit, module_path!(), file!(), line!());
        $crate::events::float_metric(&META, ($value) as f64);
    }};
    ($name:expr, $unit:expr, $value:expr, $($key:literal => $prop:expr),+ $(,)?) => {{
        static META: $crate::metadata::MetricMetadata =
            $crate::metadata::MetricMetadata::new($name, $unit, module_path!(), file!(), line!());
        $crate::events::float_metric_props(&META, ($value) as f64, |__w| {
            #[allow(unused_imports)]
            use $crate::events::{EncodeArg as _, EncodeArgDisplay as _};
            $( (&$crate::events::ArgWrap(&$prop)).encode_arg(Some($key), __w); )+
        });
    }};
}
