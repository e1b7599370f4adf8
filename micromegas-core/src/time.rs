//! Timestamps: raw CPU ticks on the hot path, converted to wall time when read.
//!
//! On x86_64 a tick is one `rdtsc` read, on aarch64 one read of the virtual counter
//! (`cntvct_el0`); elsewhere it is nanoseconds of a monotonic clock. The tick frequency is
//! calibrated once at start ([`calibrate`]) and recorded in the process info, so readers can
//! convert ticks to wall time with [`ticks_to_unix_nanos`].

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Reads the CPU tick counter. This is the only clock read on the hot path.
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SAFETY: `rdtsc` has no preconditions on x86_64; it only reads the time-stamp counter.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    {
        let ticks: u64;
        // SAFETY: reading `cntvct_el0` is permitted at EL0 on every aarch64 OS we target and
        // has no side effect; the asm touches no memory and no other register.
        unsafe {
            core::arch::asm!("mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack));
        }
        ticks
    }
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        fallback_nanos()
    }
}

#[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn fallback_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A pair of readings of the tick counter and the wall clock taken at the same moment, and the
/// measured tick frequency. Recorded in the process info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    /// Ticks at `start_unix_nanos`.
    pub start_ticks: u64,
    /// Wall time, nanoseconds since the Unix epoch, at `start_ticks`.
    pub start_unix_nanos: i64,
    /// Ticks per second.
    pub ticks_per_second: u64,
}

/// Measures the tick frequency once per process (about 20 ms the first time) and returns a
/// fresh (ticks, wall time) anchor with it.
pub fn calibrate() -> Calibration {
    let ticks_per_second = ticks_per_second();
    let start_ticks = now();
    let start_unix_nanos = unix_nanos_now();
    Calibration {
        start_ticks,
        start_unix_nanos,
        ticks_per_second,
    }
}

/// The tick frequency, measured once per process (about 20 ms the first time; [`calibrate`]
/// does it when the pipeline starts).
pub(crate) fn ticks_per_second() -> u64 {
    static FREQ: OnceLock<u64> = OnceLock::new();
    *FREQ.get_or_init(measure_frequency)
}

fn unix_nanos_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn measure_frequency() -> u64 {
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        1_000_000_000
    }
    #[cfg(all(not(miri), any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let t0 = Instant::now();
        let c0 = now();
        while t0.elapsed() < std::time::Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let c1 = now();
        let elapsed = t0.elapsed();
        let ticks = c1.wrapping_sub(c0) as f64;
        let freq = ticks / elapsed.as_secs_f64();
        if freq.is_finite() && freq >= 1.0 {
            freq as u64
        } else {
            1_000_000_000
        }
    }
}

/// Converts raw ticks to nanoseconds since the Unix epoch using a process calibration.
pub fn ticks_to_unix_nanos(ticks: u64, calibration: &Calibration) -> i64 {
    let delta = ticks as i128 - calibration.start_ticks as i128;
    let freq = calibration.ticks_per_second.max(1) as i128;
    let nanos = delta * 1_000_000_000 / freq;
    (calibration.start_unix_nanos as i128 + nanos).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Converts a tick difference to nanoseconds.
pub fn ticks_to_nanos(ticks: u64, ticks_per_second: u64) -> u64 {
    ((ticks as u128 * 1_000_000_000) / ticks_per_second.max(1) as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_monotonic_and_calibrated() {
        let cal = calibrate();
        assert!(cal.ticks_per_second > 1_000_000, "{cal:?}");
        let a = now();
        std::thread::sleep(std::time::Duration::from_millis(10));
        let b = now();
        assert!(b > a);
        let ns = ticks_to_nanos(b - a, cal.ticks_per_second);
        assert!(ns >= 5_000_000, "10ms sleep measured as {ns} ns");
        let wall = ticks_to_unix_nanos(b, &cal);
        assert!(wall > cal.start_unix_nanos);
    }
}
