//! A progress line on stderr for long operations (materializing, exporting, retention):
//! redrawn in place at most ten times a second, shown only on a terminal unless
//! `MICROMEGAS_PROGRESS=always` (`never` hides it everywhere).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The line being redrawn.
pub struct Progress {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line, on if stderr is a terminal (or as `MICROMEGAS_PROGRESS` says).
    pub fn new() -> Self {
        let enabled = match std::env::var("MICROMEGAS_PROGRESS").as_deref() {
            Ok("always") => true,
            Ok("never") => false,
            _ => std::io::stderr().is_terminal(),
        };
        Self {
            enabled,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// Redraws the line with `text` (built only when it is drawn).
    pub fn show(&mut self, text: impl FnOnce() -> String) {
        if !self.enabled
            || self
                .drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{} ({elapsed:.1} s)", text());
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }

    /// Erases the line, so that the final report takes its place.
    pub fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
