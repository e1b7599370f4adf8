use super::{Sink, SinkError};
use crate::transit::batch::Batch;
use std::sync::Mutex;

/// Keeps every batch in memory, encoded as on the wire; for tests and for embedding.
#[derive(Debug, Default)]
pub struct MemorySink {
    batches: Mutex<Vec<Vec<u8>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded batches received so far.
    pub fn encoded_batches(&self) -> Vec<Vec<u8>> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The batches received so far, decoded back from their wire encoding.
    pub fn batches(&self) -> Vec<Batch> {
        self.encoded_batches()
            .iter()
            .filter_map(|b| Batch::decode(b).ok())
            .collect()
    }
}

impl Sink for MemorySink {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        let encoded = batch.encode();
        self.batches
            .lock()
            .map_err(|_| SinkError::Rejected("memory sink lock poisoned".into()))?
            .push(encoded);
        Ok(())
    }
}
