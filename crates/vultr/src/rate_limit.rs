//! A client-side rate limit, so this process never sends more than the API allows.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::ApiKey;

/// The limiter of an API key at an endpoint, shared by every client of this process that
/// uses the same key, endpoint and rate: the API counts requests per key, not per client.
///
/// The registry holds a keyed hash of the API key (random per process), never the key.
pub(crate) fn shared_limiter(
    base_url: &str,
    key: &ApiKey,
    requests_per_second: f64,
) -> Arc<RateLimiter> {
    type Registry = Mutex<HashMap<(u64, u64), Arc<RateLimiter>>>;
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let hasher = HASHER.get_or_init(RandomState::new);
    let identity = hasher.hash_one((base_url, key.expose()));
    let mut registry = REGISTRY
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    registry
        .entry((identity, requests_per_second.to_bits()))
        .or_insert_with(|| Arc::new(RateLimiter::new(requests_per_second)))
        .clone()
}

/// Spaces requests at least `1 / rate` apart, across all tasks sharing the client.
///
/// Each caller reserves the next free slot under a short lock and then sleeps until that
/// slot outside the lock, so waiting callers are served in the order they arrived and never
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

    #[test]
    fn clients_of_one_key_share_a_limiter() {
        let a = shared_limiter("https://x/v2", &ApiKey::new("k1"), 30.0);
        let b = shared_limiter("https://x/v2", &ApiKey::new("k1"), 30.0);
        let other_key = shared_limiter("https://x/v2", &ApiKey::new("k2"), 30.0);
        let other_url = shared_limiter("https://y/v2", &ApiKey::new("k1"), 30.0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other_key));
        assert!(!Arc::ptr_eq(&a, &other_url));
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
