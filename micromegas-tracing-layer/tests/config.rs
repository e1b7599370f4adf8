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
    std::env::remove_var("MICROMEGAS_METRICS_CARDINALITY_LIMIT");
    for v in ["MICROMEGAS_SERVICE_NAME", "OTEL_SERVICE_NAME"] {
        std::env::remove_var(v);
    }
    // OTEL_RESOURCE_ATTRIBUTES: service.name when no variable names the service, the other
    // attributes as process properties, values percent-decoded.
    std::env::set_var(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-resource, deployment.environment=prod,team=a%2Cb%20c",
    );
    let (_layer, guard) = Builder::default().from_env().unwrap().build().unwrap();
    let process = guard.process().unwrap().clone();
    drop(guard);
    assert_eq!(process.service_name, "from-resource");
    let property = |k: &str| {
        process
            .properties
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(property("deployment.environment").as_deref(), Some("prod"));
    assert_eq!(property("team").as_deref(), Some("a,b c"));
    assert_eq!(property("service.name"), None);
    std::env::set_var("OTEL_SERVICE_NAME", "otel-name");
    let (_layer, guard) = Builder::default().from_env().unwrap().build().unwrap();
    assert_eq!(guard.process().unwrap().service_name, "otel-name");
    drop(guard);
    // A value that cannot be read is ignored as a whole, as OpenTelemetry SDKs do.
    std::env::set_var("OTEL_RESOURCE_ATTRIBUTES", "team=ops,broken");
    let (_layer, guard) = Builder::default().from_env().unwrap().build().unwrap();
    assert!(guard
        .process()
        .unwrap()
        .properties
        .iter()
        .all(|(k, _)| k != "team"));
    drop(guard);
    for v in [
        "OTEL_RESOURCE_ATTRIBUTES",
        "MICROMEGAS_METRICS_CARDINALITY_LIMIT",
        "OTEL_SERVICE_NAME",
        "MICROMEGAS_SINK",
        "MICROMEGAS_SERVICE_NAME",
        "MICROMEGAS_BUDGET_BYTES",
    ] {
        std::env::remove_var(v);
    }
}
