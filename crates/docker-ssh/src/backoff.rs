//! The one place for retry delays: exponential backoff with jitter.

use std::time::Duration;

use rand::RngExt;

/// Growing delays between retries: `initial`, then ×1.6 each time up to `max`, each with
/// ±20 % jitter so many clients do not retry in lockstep.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial, max }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.mul_f64(1.6).min(self.max);
        let jitter: f64 = rand::rng().random_range(0.8..1.2);
        base.mul_f64(jitter).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_never_busy_loops() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(80)));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[11] >= Duration::from_millis(800), "{delays:?}");
        assert!(delays[0] <= Duration::from_millis(120), "{delays:?}");
    }
}
