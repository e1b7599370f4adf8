//! The native API of micromegas-core, no facade: span scopes, async spans that move between
//! threads, logs whose arguments are stored binary, and integer and float metrics with
//! properties. A small order service handles 12 orders.
//!
//! `cargo run --example native_api -- [--collector URL | LAKE]` (default `./micromegas-lake`)

use micromegas_core::{async_span, error, fmetric, imetric, info, span_scope, warn};
use micromegas_examples::Destination;
use std::time::Duration;

/// Synchronous work: a span from here to the end of the function.
fn price(order: u32) -> f64 {
    span_scope!("price");
    let amount = 10.0 + f64::from(order % 5) * 2.5;
    fmetric!("order.amount", "usd", amount, "currency" => "USD");
    amount
}

/// Async work: the span follows the future across `.await` and threads.
async fn reserve_stock(order: u32) -> bool {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let in_stock = order % 6 != 5;
    if !in_stock {
        warn!(target: "shop::stock", "order {} waits: item {} out of stock", order, order * 7);
    }
    in_stock
}

async fn handle(order: u32) {
    let amount = {
        span_scope!("validate");
        price(order)
    };
    let reserved = async_span!("reserve_stock", reserve_stock(order)).await;
    if order == 11 {
        error!(target: "shop::payments", "order {} failed: card declined ({} USD)", order, amount);
    } else {
        info!(target: "shop::orders", "order {} placed: {} USD, reserved {}", order, amount, reserved);
    }
    imetric!("orders.handled", "count", 1, "status" => if order == 11 { "failed" } else { "ok" });
}

fn main() {
    let destination = Destination::from_args(std::env::args().skip(1));
    let options = micromegas_core::Options::default()
        .service_name("native_api")
        .property("version", "1.4.2");
    let guard = micromegas_core::init(destination.sink.clone(), options)
        .expect("micromegas is initialized once per process");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let orders: Vec<_> = (0..12)
            .map(|order| tokio::spawn(async_span!("order", handle(order))))
            .collect();
        for o in orders {
            o.await.expect("order task");
        }
    });
    imetric!("orders.pending", "count", 0);
    destination.report(&guard.shutdown());
}
