//! The one place that decides whether a failed request is tried again, and when.
//!
//! Pauses come from [`vps_primitives::Backoff`], the toolkit's one retry schedule; this
//! module adds what is Hetzner's: which answers mean "not acted, try again" (429, 503,
//! `conflict`, `locked`), which mean "may have acted" for a request that is not repeated,
//! and how long the `RateLimit-*` headers ask to wait.

use std::time::Duration;

use tokio::time::Instant;
use vps_primitives::{Backoff, Delays};

/// Whether a request may be sent twice without harm.
///
/// `GET`, `PUT` and `DELETE` are idempotent. A `POST` (create a server, an image, a key,
/// a firewall; an action) is repeated only when the API certainly did not act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotency {
    Idempotent,
    NotIdempotent,
}

/// How one attempt failed, as far as retrying is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AttemptFailure {
    /// The API answered with this HTTP status and (if the body had one) error code.
    Status { status: u16, code: Option<String> },
    /// No connection could be established: the request was never sent.
    Connect,
    /// The request may have been sent, then the connection failed or timed out.
    AfterSend,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The API did not act; try again after a pause (counts against `max_retries`).
    Retry,
    /// The resource is locked by a running action; wait and try again until the lock
    /// timeout (does not count against `max_retries`).
    WaitForLock,
    /// Give up. `may_have_acted`: the request may have been carried out.
    Stop { may_have_acted: bool },
}

impl AttemptFailure {
    fn code(&self) -> Option<&str> {
        match self {
            AttemptFailure::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// The verdict for one failure of a request of this idempotency.
pub(crate) fn classify(failure: &AttemptFailure, idempotency: Idempotency) -> Verdict {
    let repeatable = idempotency == Idempotency::Idempotent;
    // An answer carrying one of these codes says the API turned the request away.
    match failure.code() {
        Some("locked" | "resource_locked") => return Verdict::WaitForLock,
        Some("rate_limit_exceeded" | "conflict") => return Verdict::Retry,
        _ => {}
    }
    match failure {
        AttemptFailure::Status { status: 429, .. } => Verdict::Retry,
        // Overloaded or in maintenance: turned away, like a 429.
        AttemptFailure::Status { status: 503, .. } => Verdict::Retry,
        AttemptFailure::Status { status, .. } if (500..600).contains(status) => {
            if repeatable {
                Verdict::Retry
            } else {
                Verdict::Stop {
                    may_have_acted: true,
                }
            }
        }
        AttemptFailure::Status { .. } => Verdict::Stop {
            may_have_acted: false,
        },
        AttemptFailure::Connect => Verdict::Retry,
        AttemptFailure::AfterSend if repeatable => Verdict::Retry,
        AttemptFailure::AfterSend => Verdict::Stop {
            may_have_acted: true,
        },
    }
}

/// The `RateLimit-*` headers of an answer (DOCS "Rate Limiting"): requests per hour,
/// requests left, and the UNIX time at which the limit is fully recovered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RateLimit {
    pub(crate) limit: Option<u64>,
    pub(crate) remaining: Option<u64>,
    pub(crate) reset_unix: Option<u64>,
    /// `Retry-After` in seconds, should the API ever send it (not documented).
    pub(crate) retry_after: Option<u64>,
}

impl RateLimit {
    /// How long to wait before the next request after a 429.
    ///
    /// The API regains one request every `3600 / limit` seconds (one per second at the
    /// default 3600 per hour), so waiting until `RateLimit-Reset` (full recovery) would be
    /// far too long: the wait is the time to regain one request, or until the reset if
    /// that comes sooner; a `Retry-After` wins if present. At most `max`.
    pub(crate) fn wait(&self, now_unix: f64, max: Duration) -> Option<Duration> {
        let wait = if let Some(after) = self.retry_after {
            Duration::from_secs(after)
        } else {
            let limit = self.limit.filter(|l| *l > 0)?;
            let regain = Duration::from_secs_f64(3600.0 / limit as f64);
            match self.reset_unix {
                Some(reset) => {
                    let until_reset = (reset as f64 - now_unix).max(0.0);
                    regain.min(Duration::from_secs_f64(until_reset))
                }
                None => regain,
            }
        };
        Some(wait.min(max))
    }
}

/// The retry state of one logical request: pauses from the shared [`Backoff`], the
/// retries left, and the deadline of waiting for a lock.
pub(crate) struct Retrier {
    delays: Delays,
    retries_left: u32,
    lock_timeout: Duration,
    lock_deadline: Option<Instant>,
    rate_limit_max_wait: Duration,
}

impl Retrier {
    pub(crate) fn new(
        backoff: Backoff,
        max_retries: u32,
        lock_timeout: Duration,
        rate_limit_max_wait: Duration,
    ) -> Self {
        Self {
            delays: backoff.delays(),
            retries_left: max_retries,
            lock_timeout,
            lock_deadline: None,
            rate_limit_max_wait,
        }
    }

    /// The pause before the next attempt, or `None` when this verdict ends the request
    /// (retries or lock time used up, or a verdict of [`Verdict::Stop`]).
    pub(crate) fn pause(&mut self, verdict: Verdict, rate_limit: &RateLimit) -> Option<Duration> {
        match verdict {
            Verdict::Stop { .. } => None,
            Verdict::WaitForLock => {
                let deadline = *self
                    .lock_deadline
                    .get_or_insert_with(|| Instant::now() + self.lock_timeout);
                let remaining = deadline.saturating_duration_since(Instant::now());
                self.delays.next_within(remaining)
            }
            Verdict::Retry => {
                if self.retries_left == 0 {
                    return None;
                }
                self.retries_left -= 1;
                let backoff = self.delays.next().unwrap_or_default();
                let now_unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                Some(match rate_limit.wait(now_unix, self.rate_limit_max_wait) {
                    Some(wait) => wait.max(backoff),
                    None => backoff,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str) -> AttemptFailure {
        AttemptFailure::Status {
            status,
            code: (!code.is_empty()).then(|| code.to_owned()),
        }
    }

    #[test]
    fn what_is_retried_and_what_may_have_acted() {
        use Idempotency::*;
        let stop = |may_have_acted| Verdict::Stop { may_have_acted };
        let table = [
            (
                status(429, "rate_limit_exceeded"),
                NotIdempotent,
                Verdict::Retry,
            ),
            (status(429, ""), NotIdempotent, Verdict::Retry),
            (status(503, "unavailable"), NotIdempotent, Verdict::Retry),
            (status(409, "conflict"), NotIdempotent, Verdict::Retry),
            (status(423, "locked"), NotIdempotent, Verdict::WaitForLock),
            (status(423, "locked"), Idempotent, Verdict::WaitForLock),
            // 423 is also used for `protected`: not a lock, not retried.
            (status(423, "protected"), Idempotent, stop(false)),
            (status(409, "uniqueness_error"), NotIdempotent, stop(false)),
            (status(500, "server_error"), NotIdempotent, stop(true)),
            (status(502, ""), NotIdempotent, stop(true)),
            (status(504, "timeout"), NotIdempotent, stop(true)),
            (status(500, "server_error"), Idempotent, Verdict::Retry),
            (status(502, ""), Idempotent, Verdict::Retry),
            (status(404, "not_found"), Idempotent, stop(false)),
            (status(422, "invalid_input"), NotIdempotent, stop(false)),
            (status(401, "unauthorized"), Idempotent, stop(false)),
            (status(307, ""), NotIdempotent, stop(false)),
            (AttemptFailure::Connect, NotIdempotent, Verdict::Retry),
            (AttemptFailure::AfterSend, NotIdempotent, stop(true)),
            (AttemptFailure::AfterSend, Idempotent, Verdict::Retry),
        ];
        for (failure, idempotency, want) in table {
            assert_eq!(
                classify(&failure, idempotency),
                want,
                "{failure:?} {idempotency:?}"
            );
        }
    }

    #[test]
    fn a_429_waits_to_regain_one_request_not_for_the_full_reset() {
        let now = 1_000_000.0;
        let max = Duration::from_secs(60);
        // 3600 per hour, fully recovered in 20 minutes: one request is back in 1 s.
        let rl = RateLimit {
            limit: Some(3600),
            remaining: Some(0),
            reset_unix: Some(1_001_200),
            retry_after: None,
        };
        assert_eq!(rl.wait(now, max), Some(Duration::from_secs(1)));
        // 7200 per hour: half a second.
        let rl = RateLimit {
            limit: Some(7200),
            ..rl
        };
        assert_eq!(rl.wait(now, max), Some(Duration::from_millis(500)));
        // A reset sooner than that wins; one in the past means no wait.
        let soon = RateLimit {
            limit: Some(60),
            reset_unix: Some(1_000_002),
            ..rl
        };
        assert_eq!(soon.wait(now, max), Some(Duration::from_secs(2)));
        let past = RateLimit {
            reset_unix: Some(999_000),
            ..soon
        };
        assert_eq!(past.wait(now, max), Some(Duration::ZERO));
        // Retry-After, if ever sent, wins and is capped.
        let after = RateLimit {
            retry_after: Some(3600),
            ..rl
        };
        assert_eq!(after.wait(now, max), Some(max));
        // No headers: no opinion, the backoff alone applies.
        assert_eq!(RateLimit::default().wait(now, max), None);
    }

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(10), Duration::from_millis(40))
    }

    #[test]
    fn retries_run_out_and_stops_stop() {
        let mut r = Retrier::new(fast(), 2, Duration::from_secs(1), Duration::from_secs(1));
        let none = RateLimit::default();
        assert_eq!(
            r.pause(Verdict::Retry, &none),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            r.pause(Verdict::Retry, &none),
            Some(Duration::from_millis(20))
        );
        assert_eq!(r.pause(Verdict::Retry, &none), None);
        let mut r = Retrier::new(fast(), 2, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(
            r.pause(
                Verdict::Stop {
                    may_have_acted: false
                },
                &none
            ),
            None
        );
    }

    #[test]
    fn the_rate_limit_wait_is_never_shortened_by_the_backoff() {
        let mut r = Retrier::new(fast(), 3, Duration::from_secs(1), Duration::from_secs(5));
        let rl = RateLimit {
            retry_after: Some(2),
            ..RateLimit::default()
        };
        assert_eq!(r.pause(Verdict::Retry, &rl), Some(Duration::from_secs(2)));
        let zero = RateLimit {
            retry_after: Some(0),
            ..RateLimit::default()
        };
        assert_eq!(
            r.pause(Verdict::Retry, &zero),
            Some(Duration::from_millis(20))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lock_waits_do_not_use_up_retries_but_end_at_the_lock_deadline() {
        let none = RateLimit::default();
        let mut r = Retrier::new(fast(), 0, Duration::from_millis(100), Duration::ZERO);
        assert_eq!(r.pause(Verdict::Retry, &none), None, "no retries at all");
        let mut waited = Duration::ZERO;
        let mut waits = 0;
        while let Some(pause) = r.pause(Verdict::WaitForLock, &none) {
            tokio::time::sleep(pause).await;
            waited += pause;
            waits += 1;
        }
        assert_eq!(waited, Duration::from_millis(100));
        assert!(waits >= 3, "{waits}");
    }
}
