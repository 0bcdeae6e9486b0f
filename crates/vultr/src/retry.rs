//! The one place that decides whether a failed request is tried again, and when.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngExt;
use vps_primitives::Backoff;

use crate::VultrConfig;

/// Whether a request may be sent twice without harm.
///
/// `GET` and `DELETE` are idempotent. A `POST` (create an instance, upload a key) is
/// retried only when the API certainly did not act on it: a 429 or 503 answer, or a
/// connection that was never established. A `POST` that failed after it was sent (a
/// dropped connection, a timeout, a 500) is not repeated, because a second instance
/// would be ordered and billed; the caller sees
/// [`VpsClientError::OutcomeUnknown`](vps_client::VpsClientError::OutcomeUnknown)
/// instead (see [`RetryPolicy::may_have_acted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Safe to repeat.
    Idempotent,
    /// Repeat only when the API did not act on it.
    NotIdempotent,
}

/// How one attempt failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptFailure {
    /// The API answered with this HTTP status.
    Status(u16),
    /// No connection could be established: the request was never sent.
    Connect,
    /// The request may have been sent, then the connection failed or timed out.
    AfterSend,
}

/// Backoff and retry limits, from [`VultrConfig`].
#[derive(Clone, Debug)]
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: u32,
    /// Doubling from `retry_initial_backoff_secs` up to `retry_max_backoff_secs`, with
    /// "equal jitter" (the upper half of each pause is random), so concurrent clients
    /// spread out but never retry at once.
    pub(crate) backoff: Backoff,
    pub(crate) max_retry_after: Duration,
}

impl RetryPolicy {
    pub(crate) fn from_config(config: &VultrConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            backoff: Backoff::new(
                Duration::from_secs_f64(config.retry_initial_backoff_secs),
                Duration::from_secs_f64(config.retry_max_backoff_secs),
            )
            .with_jitter(0.5),
            max_retry_after: Duration::from_secs_f64(config.retry_after_max_secs),
        }
    }

    /// Whether a failure of this kind may pass if the request is sent again.
    pub(crate) fn is_retryable(failure: AttemptFailure, idempotency: Idempotency) -> bool {
        match failure {
            // Rate limited (429; older API docs say 503) or overloaded: not acted upon.
            AttemptFailure::Status(429 | 503) | AttemptFailure::Connect => true,
            AttemptFailure::Status(status) if (500..600).contains(&status) => {
                idempotency == Idempotency::Idempotent
            }
            AttemptFailure::Status(_) => false,
            AttemptFailure::AfterSend => idempotency == Idempotency::Idempotent,
        }
    }

    /// Whether the API may have carried out a request that failed this way: it was sent
    /// and then the connection failed, or the API answered with a server error other than
    /// 503 (which, like 429, says the request was turned away). A request of this kind
    /// that is not repeated has an unknown outcome.
    pub(crate) fn may_have_acted(failure: AttemptFailure) -> bool {
        match failure {
            AttemptFailure::AfterSend => true,
            AttemptFailure::Status(503) => false,
            AttemptFailure::Status(status) => (500..600).contains(&status),
            AttemptFailure::Connect => false,
        }
    }

    /// The delay before retry number `retry` (0 for the first retry), or `None` when the
    /// retries are used up. A `Retry-After` from the API is honoured (cut to
    /// `max_retry_after`) and never shortened by the backoff.
    pub(crate) fn delay_before_retry(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let backoff = self.backoff.delay_for(retry, rand::rng().random::<f64>());
        Some(match retry_after {
            Some(after) => after.min(self.max_retry_after).max(backoff),
            None => backoff,
        })
    }
}

/// Reads a `Retry-After` header value: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`). A date in the past means no wait. Anything else is
/// ignored (`None`), and the backoff applies.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_imf_fixdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses the preferred HTTP date format of RFC 9110, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_imf_fixdate(value: &str) -> Option<SystemTime> {
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let mut hms = time.split(':');
    let hour: u64 = hms.next()?.parse().ok()?;
    let minute: u64 = hms.next()?.parse().ok()?;
    let second: u64 = hms.next()?.parse().ok()?;
    if hms.next().is_some() || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_config(&VultrConfig {
            max_retries: 3,
            retry_initial_backoff_secs: 0.1,
            retry_max_backoff_secs: 0.5,
            retry_after_max_secs: 10.0,
            ..VultrConfig::default()
        })
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let b = policy().backoff;
        assert_eq!(b.delay_for(0, 1.0), Duration::from_millis(50));
        assert_eq!(b.delay_for(0, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay_for(1, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay_for(2, 0.0), Duration::from_millis(400));
        assert_eq!(b.delay_for(3, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay_for(3, 1.0), Duration::from_millis(250));
        assert_eq!(b.delay_for(40, 0.5), Duration::from_millis(375));
    }

    #[test]
    fn retries_run_out_after_max_retries() {
        let p = policy();
        assert!(p.delay_before_retry(2, None).is_some());
        assert_eq!(p.delay_before_retry(3, None), None);
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = policy();
        let d = p.delay_before_retry(0, Some(Duration::from_secs(2)));
        assert_eq!(d, Some(Duration::from_secs(2)));
        let d = p.delay_before_retry(0, Some(Duration::from_secs(3600)));
        assert_eq!(d, Some(Duration::from_secs(10)));
        // A zero Retry-After does not shorten the backoff.
        let d = p
            .delay_before_retry(0, Some(Duration::ZERO))
            .unwrap_or_default();
        assert!(d >= Duration::from_millis(50), "{d:?}");
    }

    #[test]
    fn what_is_retried() {
        use AttemptFailure::*;
        use Idempotency::*;
        let table = [
            (Status(429), NotIdempotent, true),
            (Status(503), NotIdempotent, true),
            (Connect, NotIdempotent, true),
            (Status(500), NotIdempotent, false),
            (AfterSend, NotIdempotent, false),
            (Status(500), Idempotent, true),
            (Status(502), Idempotent, true),
            (AfterSend, Idempotent, true),
            (Status(400), Idempotent, false),
            (Status(401), Idempotent, false),
            (Status(404), Idempotent, false),
            (Status(422), Idempotent, false),
        ];
        for (failure, idem, want) in table {
            assert_eq!(
                RetryPolicy::is_retryable(failure, idem),
                want,
                "{failure:?} {idem:?}"
            );
        }
    }

    #[test]
    fn what_may_have_acted() {
        use AttemptFailure::*;
        let table = [
            (AfterSend, true),
            (Status(500), true),
            (Status(502), true),
            (Status(504), true),
            (Status(503), false),
            (Status(429), false),
            (Status(400), false),
            (Status(404), false),
            (Connect, false),
        ];
        for (failure, want) in table {
            assert_eq!(RetryPolicy::may_have_acted(failure), want, "{failure:?}");
        }
        // A POST is never repeated after a failure that may have acted; every other
        // failure of a POST is either retried or a definite answer.
        for (failure, _) in table {
            if RetryPolicy::may_have_acted(failure) {
                assert!(!RetryPolicy::is_retryable(
                    failure,
                    Idempotency::NotIdempotent
                ));
            }
        }
    }

    #[test]
    fn retry_after_header_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 UTC", now),
            None
        );
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 30), 20_787);
    }
}
