//! Opening the catalog's connection pool, waiting for a PostgreSQL server that does not answer
//! yet (started at the same time as the collector, or restarting).

use super::{redact, Backend};
use crate::error::{LakeError, Result};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::time::{Duration, Instant};

/// The first pause before trying again; each pause doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Opens the pool. Errors that say the server cannot be reached now are tried again until
/// `wait` has passed, each with a warning; any other error, or the last one, is returned.
pub(super) async fn open_pool(
    options: AnyPoolOptions,
    url: &str,
    backend: Backend,
    wait: Duration,
) -> Result<AnyPool> {
    let started = Instant::now();
    let deadline = started + wait;
    let mut pause = FIRST_PAUSE;
    let mut tries = 1u32;
    loop {
        let error = match options.clone().connect(url).await {
            Ok(pool) => return Ok(pool),
            Err(e) => e,
        };
        let retry = backend == Backend::Postgres && is_unreachable(&error);
        if !retry || Instant::now() + pause > deadline {
            let waited = if tries > 1 {
                let secs = started.elapsed().as_secs_f64();
                format!(" (tried {tries} times over {secs:.1} s)")
            } else {
                String::new()
            };
            return Err(LakeError::Config(format!(
                "cannot open catalog {}: {error}{waited}",
                redact(url)
            )));
        }
        tracing::warn!(
            catalog = %redact(url),
            error = %error,
            retry_in_ms = pause.as_millis() as u64,
            "the catalog cannot be reached yet; trying again"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
        tries += 1;
    }
}

/// Whether `error` says the server cannot be reached now, as opposed to refusing us: no
/// connection (refused, reset, timed out), or a server starting up or shutting down
/// (SQLSTATE class 57P: `cannot_connect_now`, `admin_shutdown`, ...).
fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|c| c.starts_with("57P")),
        _ => false,
    }
}
