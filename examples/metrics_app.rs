//! An app recording metrics through the `metrics` facade (counters, gauges, histograms with
//! labels): installing `MicromegasRecorder` captures them into micromegas.
//!
//! `cargo run --example metrics_app -- [--collector URL | LAKE]` (default `./micromegas-lake`)

use micromegas_examples::Destination;
use micromegas_tracing_layer::MicromegasRecorder;

fn main() {
    let destination = Destination::from_args(std::env::args().skip(1));
    let options = micromegas_core::Options::default().service_name("metrics_app");
    let guard = micromegas_core::init(destination.sink.clone(), options)
        .expect("micromegas is initialized once per process");
    MicromegasRecorder::install().expect("no other metrics recorder is installed");

    // A queue consumer: counts jobs by outcome, reports its backlog, times each job.
    let done = metrics::counter!("jobs.processed", "queue" => "emails", "outcome" => "ok");
    for job in 0..50u64 {
        if job % 10 == 9 {
            metrics::counter!("jobs.processed", "queue" => "emails", "outcome" => "error")
                .increment(1);
        } else {
            done.increment(1);
        }
        metrics::gauge!("queue.backlog", "queue" => "emails").set((50 - job - 1) as f64);
        metrics::histogram!("job.duration_ms", "queue" => "emails").record(1.0 + (job % 7) as f64);
    }
    destination.report(&guard.shutdown());
}
