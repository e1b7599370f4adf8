//! Helpers shared by the collector's integration tests.

use micromegas_lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use micromegas_lake::Lake;

/// Runs `sql` on the lake; rows as `|`-separated text (NULL as empty).
pub async fn rows(lake: &Lake, sql: &str) -> Vec<String> {
    let ctx = lake.session().await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for b in &batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = f.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// Tests that start the process-wide micromegas pipeline take turns.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
