//! [`Timestamp`]: a UTC instant written as upstream (pydantic v2) writes datetimes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A UTC instant with microsecond precision, as stored in host records.
///
/// Written like pydantic v2 writes an aware UTC datetime: `2026-05-11T12:00:00.123456Z`
/// (the fraction is left out when it is zero). Read from any RFC 3339 text (`Z` or an
/// offset such as `+00:00`, normalised to UTC) and, like Python's `fromisoformat`, from a
/// text without offset, taken as UTC. Sub-microsecond digits are dropped, so a value
/// survives a write and a read unchanged.
///
/// ```
/// use host_store::Timestamp;
/// let t: Timestamp = "2026-05-11T14:00:00.5+02:00".parse()?;
/// assert_eq!(t.to_string(), "2026-05-11T12:00:00.500000Z");
/// # Ok::<(), host_store::InvalidTimestamp>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A text that is not an ISO-8601 / RFC 3339 date and time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp {value:?}: expected an ISO-8601 date and time such as 2026-05-11T12:00:00.123456Z"
)]
pub struct InvalidTimestamp {
    /// The rejected text (at most 64 characters of it).
    pub value: String,
}

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Converts any instant to UTC, truncated to microseconds.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        let micros = at.microsecond();
        // Replacing the sub-second part with whole microseconds cannot fail.
        Self(at.replace_microsecond(micros).unwrap_or(at))
    }

    /// The instant as a `time` value (UTC).
    pub fn datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// This instant moved by `delta` (truncated to microseconds).
    pub fn checked_add(&self, delta: Duration) -> Option<Self> {
        self.0.checked_add(delta).map(Self::from_datetime)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        if t.microsecond() != 0 {
            write!(f, ".{:06}", t.microsecond())?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(at) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Self::from_datetime(at));
        }
        // Python's isoformat() of a naive datetime: no offset, taken as UTC.
        OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| InvalidTimestamp {
                value: s.chars().take(64).collect(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
