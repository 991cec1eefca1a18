//! Simulated time: microseconds since the start of a run. Nothing in the simulator reads a
//! real clock; every delay is drawn from the run's seeded RNG, so a seed fixes every timing.

use std::fmt;

/// A point in simulated time, in microseconds since the run started.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    /// The time `delay_us` microseconds after `self` (saturating).
    pub fn after_us(self, delay_us: u64) -> SimTime {
        SimTime(self.0.saturating_add(delay_us))
    }

    /// Microseconds from `earlier` to `self` (0 when `earlier` is later).
    pub fn since_us(self, earlier: SimTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for SimTime {
    /// Seconds with microsecond precision, e.g. `12.000345s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Traces and reports print times; the format must stay exact and unambiguous.
    #[test]
    fn sim_time_displays_seconds_with_microseconds() {
        assert_eq!(SimTime(12_000_345).to_string(), "12.000345s");
        assert_eq!(SimTime(5).after_us(10).since_us(SimTime(3)), 12);
        assert_eq!(SimTime(3).since_us(SimTime(5)), 0);
    }
}
