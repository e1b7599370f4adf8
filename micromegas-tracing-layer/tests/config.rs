//! Configuration from the environment.

mod common;

use common::serial;
use micromegas_tracing_layer::{Builder, InitError};

#[test]
fn environment_variables_configure_the_pipeline() {
    let _s = serial();
    std::env::set_var("OTEL_SERVICE_NAME", "otel-name");
    std::env::set_var("MICROMEGAS_SINK", "null");
    let (_layer, guard) = Builder::default().from_env().unwrap().build().unwrap();
    assert_eq!(guard.process().unwrap().service_name, "otel-name");
    drop(guard);
    // MICROMEGAS_SERVICE_NAME wins over OTEL_SERVICE_NAME.
    std::env::set_var("MICROMEGAS_SERVICE_NAME", "mm-name");
    let (_layer, guard) = Builder::default().from_env().unwrap().build().unwrap();
    assert_eq!(guard.process().unwrap().service_name, "mm-name");
    drop(guard);
    std::env::set_var("MICROMEGAS_BUDGET_BYTES", "lots");
    let err = Builder::default().from_env().err().unwrap();
    assert!(matches!(
        err,
        InitError::Env {
            name: "MICROMEGAS_BUDGET_BYTES",
            ..
        }
    ));
    assert!(
        err.to_string().contains("expected a number of bytes"),
        "{err}"
    );
    std::env::remove_var("MICROMEGAS_BUDGET_BYTES");
    std::env::set_var("MICROMEGAS_METRICS_CARDINALITY_LIMIT", "0");
    let err = Builder::default().from_env().err().unwrap();
    assert!(
        err.to_string()
            .contains("MICROMEGAS_METRICS_CARDINALITY_LIMIT=\"0\" is invalid"),
        "{err}"
    );
    std::env::set_var("MICROMEGAS_METRICS_CARDINALITY_LIMIT", "2");
    let builder = Builder::default().from_env().unwrap();
    assert_eq!(builder.metrics_recorder().cardinality_limit(), 2);
    assert_eq!(
        Builder::default().metrics_recorder().cardinality_limit(),
        micromegas_tracing_layer::DEFAULT_CARDINALITY_LIMIT
    );
    for v in [
        "MICROMEGAS_METRICS_CARDINALITY_LIMIT",
        "OTEL_SERVICE_NAME",
        "MICROMEGAS_SINK",
        "MICROMEGAS_SERVICE_NAME",
        "MICROMEGAS_BUDGET_BYTES",
    ] {
        std::env::remove_var(v);
    }
}
