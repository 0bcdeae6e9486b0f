//! The toolkit's one retry-delay schedule: exponential backoff with optional jitter.
//!
//! Every crate that retries or polls (SSH connects and channel opens, waits for sshd, the
//! state container, Vultr API requests, waits for a provider's instance, the conformance
//! suite) takes its pauses from a [`Backoff`]. This module only computes durations; the
//! caller sleeps (with tokio) and decides what is worth another attempt.

use std::time::Duration;

/// Growing pauses between attempts: `initial`, then `factor` times the previous one, at
/// most `max`; each pause is then shortened by a random share of up to `jitter` of it, so
/// that many clients started together do not retry in lockstep.
///
/// Pause number `n` (0 for the pause before the second attempt) lies in
/// `[base(n) × (1 − jitter), base(n)]` with `base(n) = min(max, initial × factorⁿ)`, so
/// `max` is a true ceiling. `jitter` 0 gives fixed pauses; 0.5 is "equal jitter".
///
/// ```
/// use std::time::Duration;
/// use vps_primitives::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
/// let pauses: Vec<_> = b.delays().take(4).collect();
/// assert_eq!(pauses, [100, 200, 300, 300].map(Duration::from_millis));
///
/// // With jitter, each pause is somewhere in the lower part of its range.
/// let b = b.with_jitter(0.5);
/// assert_eq!(b.delay_for(1, 0.0), Duration::from_millis(200));
/// assert_eq!(b.delay_for(1, 1.0), Duration::from_millis(100));
/// assert!(b.delays().take(20).all(|d| d >= Duration::from_millis(50) && d <= Duration::from_millis(300)));
/// ```
///
/// A wait with a deadline asks for pauses with [`Delays::next_within`]:
///
/// ```
/// use std::time::Duration;
/// use vps_primitives::Backoff;
///
/// let mut delays = Backoff::new(Duration::from_secs(2), Duration::from_secs(5)).delays();
/// assert_eq!(delays.next_within(Duration::from_secs(10)), Some(Duration::from_secs(2)));
/// // Never past the deadline; nothing once it has passed.
/// assert_eq!(delays.next_within(Duration::from_secs(1)), Some(Duration::from_secs(1)));
/// assert_eq!(delays.next_within(Duration::ZERO), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first pause.
    pub initial: Duration,
    /// The longest pause.
    pub max: Duration,
    /// How much each pause grows over the previous one; values below 1 (or not finite)
    /// count as 1.
    pub factor: f64,
    /// The largest share (0 to 1) by which a pause is randomly shortened; values outside
    /// count as the nearest bound, NaN as 0.
    pub jitter: f64,
}

impl Backoff {
    /// Pauses from `initial` doubling up to `max`, without jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2.0,
            jitter: 0.0,
        }
    }

    /// The same with another growth factor.
    pub const fn with_factor(self, factor: f64) -> Self {
        Self { factor, ..self }
    }

    /// The same with another jitter share.
    pub const fn with_jitter(self, jitter: f64) -> Self {
        Self { jitter, ..self }
    }

    /// Pause number `retry` before jitter: `min(max, initial × factor^retry)`.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * factor.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Pause number `retry`, shortened by `random` (0 to 1, clamped) times the jitter
    /// share. Deterministic: [`Delays`] passes a uniform random number.
    pub fn delay_for(&self, retry: u32, random: f64) -> Duration {
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        self.base_delay(retry).mul_f64(1.0 - jitter * random)
    }

    /// The endless sequence of pauses, with fresh random jitter for each.
    pub fn delays(&self) -> Delays {
        Delays {
            backoff: *self,
            handed_out: 0,
        }
    }
}

/// The pauses of one retry loop, from [`Backoff::delays`]. An endless iterator.
#[derive(Clone, Debug)]
pub struct Delays {
    backoff: Backoff,
    handed_out: u32,
}

impl Delays {
    /// How many pauses were handed out so far (the number of retries).
    pub fn retries(&self) -> u32 {
        self.handed_out
    }

    /// The next pause (what [`Iterator::next`] yields, without the `Option`).
    pub fn next_delay(&mut self) -> Duration {
        let pause = self
            .backoff
            .delay_for(self.handed_out, rand::random::<f64>());
        self.handed_out = self.handed_out.saturating_add(1);
        pause
    }

    /// The next pause, cut to `remaining` (the time left before the caller's deadline);
    /// `None` when no time is left. A loop that attempts, then sleeps this pause, attempts
    /// once more exactly at its deadline and never sleeps past it.
    pub fn next_within(&mut self, remaining: Duration) -> Option<Duration> {
        if remaining.is_zero() {
            return None;
        }
        Some(self.next_delay().min(remaining))
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_by_the_factor_up_to_the_cap() {
        let b = Backoff::new(ms(100), ms(500));
        let base: Vec<_> = (0..5).map(|n| b.base_delay(n)).collect();
        assert_eq!(base, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        let b = b.with_factor(1.5);
        assert_eq!(b.base_delay(1), ms(150));
        assert_eq!(b.base_delay(2), ms(225));
    }

    #[test]
    fn huge_retry_counts_and_odd_factors_stay_in_range() {
        let b = Backoff::new(ms(100), Duration::from_secs(8));
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(8));
        assert_eq!(b.with_factor(f64::INFINITY).base_delay(3), ms(100));
        assert_eq!(b.with_factor(f64::NAN).base_delay(3), ms(100));
        assert_eq!(b.with_factor(0.5).base_delay(3), ms(100));
        // An initial pause above the cap is cut to the cap.
        assert_eq!(Backoff::new(ms(900), ms(300)).base_delay(0), ms(300));
        assert_eq!(Backoff::new(Duration::MAX, ms(300)).base_delay(2), ms(300));
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_its_share() {
        let b = Backoff::new(ms(100), ms(500)).with_jitter(0.5);
        assert_eq!(b.delay_for(0, 0.0), ms(100));
        assert_eq!(b.delay_for(0, 1.0), ms(50));
        assert_eq!(b.delay_for(3, 0.5), ms(375));
        // Out-of-range inputs are clamped, never panic.
        assert_eq!(b.delay_for(0, 7.0), ms(50));
        assert_eq!(b.delay_for(0, f64::NAN), ms(100));
        assert_eq!(b.with_jitter(3.0).delay_for(0, 1.0), Duration::ZERO);
        assert_eq!(b.with_jitter(f64::NAN).delay_for(0, 1.0), ms(100));
        for (n, pause) in b.delays().take(50).enumerate() {
            let base = b.base_delay(n as u32);
            assert!(
                pause <= base && pause >= base / 2,
                "{n}: {pause:?} of {base:?}"
            );
        }
    }

    #[test]
    fn jittered_pauses_differ() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).with_jitter(0.2);
        let pauses: Vec<_> = b.delays().take(20).collect();
        assert!(pauses.windows(2).any(|w| w[0] != w[1]), "{pauses:?}");
    }

    #[test]
    fn next_within_respects_the_deadline_and_counts_retries() {
        let mut d = Backoff::new(ms(100), ms(1000)).delays();
        assert_eq!(d.retries(), 0);
        assert_eq!(d.next_within(Duration::from_secs(9)), Some(ms(100)));
        assert_eq!(d.next_within(ms(150)), Some(ms(150)));
        assert_eq!(d.next_within(Duration::ZERO), None);
        assert_eq!(d.retries(), 2);
        // The schedule went on growing underneath: the next pause is the third.
        assert_eq!(d.next_delay(), ms(400));
        assert_eq!(d.next(), Some(ms(800)));
    }
}
