//! Backpressure: a budget of request bytes being written at once. A request that does not fit
//! is refused at once (gRPC UNAVAILABLE with `RetryInfo`, HTTP 503 with `Retry-After`) rather
//! than queued without bound; OTLP clients and the network sink retry it later.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Granularity of the budget.
const UNIT: usize = 1024;

/// How long refused clients are asked to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The in-flight byte budget shared by all servers of a collector.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    units: usize,
}

/// A request refused because the budget is spent.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the collector is writing {in_flight} bytes already, its budget is {budget} bytes \
     (--max-inflight-mib); retry in {}s",
    RETRY_AFTER.as_secs()
)]
pub struct Busy {
    /// Bytes being written now.
    pub in_flight: usize,
    /// The budget.
    pub budget: usize,
}

/// Holds its share of the budget until dropped.
#[derive(Debug)]
pub struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    /// A budget of `bytes` (at least one unit). A single request larger than the whole budget
    /// is admitted when nothing else is in flight.
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, u32::MAX as usize);
        Self {
            permits: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Takes `bytes` of the budget, or says the collector is busy.
    pub fn admit(&self, bytes: usize) -> Result<Admitted, Busy> {
        let want = bytes.div_ceil(UNIT).clamp(1, self.units) as u32;
        self.permits
            .clone()
            .try_acquire_many_owned(want)
            .map(Admitted)
            .map_err(|_| Busy {
                in_flight: self.in_flight_bytes(),
                budget: self.units * UNIT,
            })
    }

    /// Bytes admitted whose write has not ended.
    pub fn in_flight_bytes(&self) -> usize {
        (self.units - self.permits.available_permits()) * UNIT
    }

    /// Waits until no admitted write is left.
    pub async fn idle(&self) {
        // The semaphore is never closed; holding every unit means no write holds any.
        if let Ok(all) = self.permits.acquire_many(self.units as u32).await {
            drop(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_budget_and_frees_on_drop() {
        let a = Admission::new(10 * UNIT);
        let first = a.admit(6 * UNIT).expect("fits");
        assert_eq!(a.in_flight_bytes(), 6 * UNIT);
        let busy = a.admit(5 * UNIT).expect_err("over budget");
        assert_eq!(busy.budget, 10 * UNIT);
        drop(first);
        assert!(a.admit(5 * UNIT).is_ok());
        assert_eq!(a.in_flight_bytes(), 0);
        // larger than the whole budget: admitted alone
        assert!(a.admit(100 * UNIT).is_ok());
    }

    #[tokio::test]
    async fn idle_waits_for_every_admitted_write() {
        let a = Admission::new(10 * UNIT);
        a.idle().await;
        let held = a.admit(UNIT).expect("fits");
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        waiting.await.expect("idle once the write ends");
        assert_eq!(a.in_flight_bytes(), 0);
    }
}
