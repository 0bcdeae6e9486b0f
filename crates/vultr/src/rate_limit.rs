//! A client-side rate limit, so one client never sends more than the API allows.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests at least `1 / rate` apart, across all tasks sharing the client.
///
/// Each caller reserves the next free slot under a short lock and then sleeps until it
/// outside the lock, so waiting callers are served in the order they arrived and never
/// busy-wait. Any window of one second holds at most `rate + 1` requests.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter for `requests_per_second` (positive and finite; checked by the config).
    pub(crate) fn new(requests_per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / requests_per_second),
            next_free: Mutex::new(None),
        }
    }

    /// Waits until this caller may send one request.
    pub(crate) async fn acquire(&self) {
        let slot = {
            // A poisoned lock only means another task panicked while holding a time
            // stamp; the stamp itself is still usable.
            let mut next_free = self
                .next_free
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let now = Instant::now();
            let slot = match *next_free {
                Some(free) if free > now => free,
                _ => now,
            };
            *next_free = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // The first goes at once, the next four 100 ms apart each.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_budget() {
        let limiter = std::sync::Arc::new(RateLimiter::new(30.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..31)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task finished");
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(999) && elapsed <= Duration::from_millis(1001),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_does_not_delay() {
        let limiter = RateLimiter::new(1.0);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
