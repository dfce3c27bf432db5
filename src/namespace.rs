//! Several shops in one store: namespace names, the quotas a namespace runs under, and the
//! pacing of its event stream.
//!
//! A namespace is a whole store of its own (records, events, behaviour state, plugins, slots,
//! figures) whose sled keys carry the namespace's prefix (`durable::Db::namespace`) and whose
//! files live under `<dir>/ns/<name>/`. What the namespaces share is the process, sled's
//! files and the code; `Store::namespace` (in `store/namespace.rs`) opens one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest namespace name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// The directory, under a store's directory, that holds each namespace's files.
pub(crate) const DIR: &str = "ns";

/// How errors and figures name the namespace of the store opened (it has no name).
pub(crate) const DEFAULT: &str = "default";

/// Smallest plugin memory quota: one WebAssembly page.
const MIN_PLUGIN_MEMORY: usize = 64 << 10;

/// What a namespace may hold and do. Every limit is off (`None`) by default; see
/// [`crate::Config::quota`] and [`crate::Config::namespaces`] for where quotas are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    /// Most records, items and users together, the namespace may hold. A write that would
    /// take the count past it is refused whole with [`Error::QuotaExceeded`]; updates and
    /// deletions of records it holds always pass. Users that events create count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Most events per second [`crate::Store::record_events`] accepts, with bursts of up to
    /// one second's worth: a call that finds too few left is refused whole with
    /// [`Error::QuotaExceeded`], which says how long to wait. Imports wait instead of failing.
    /// Impressions the store records of its own answers do not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_sec: Option<u32>,
    /// Most linear memory one plugin instance of the namespace may grow to, in bytes: lowers
    /// [`crate::PluginLimits::memory_bytes`] for this namespace (never raises it). At least
    /// 64 KiB, one WebAssembly page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_memory_bytes: Option<usize>,
}

impl Quota {
    /// Set [`Quota::max_records`].
    pub fn max_records(mut self, n: u64) -> Self {
        self.max_records = Some(n);
        self
    }

    /// Set [`Quota::events_per_sec`].
    pub fn events_per_sec(mut self, n: u32) -> Self {
        self.events_per_sec = Some(n);
        self
    }

    /// Set [`Quota::plugin_memory_bytes`].
    pub fn plugin_memory_bytes(mut self, bytes: usize) -> Self {
        self.plugin_memory_bytes = Some(bytes);
        self
    }

    /// `Err` naming the first unusable limit.
    pub(crate) fn validate(&self, namespace: &str) -> Result<()> {
        let bad = |reason: String| Error::Namespace {
            name: namespace.to_string(),
            reason,
        };
        if self.events_per_sec == Some(0) {
            return Err(bad(
                "a quota of 0 events per second refuses every event; leave events_per_sec unset for no limit".into(),
            ));
        }
        if let Some(b) = self.plugin_memory_bytes {
            if b < MIN_PLUGIN_MEMORY {
                return Err(bad(format!(
                    "a plugin memory quota of {b} bytes is below one WebAssembly page ({MIN_PLUGIN_MEMORY} bytes); no plugin could run"
                )));
            }
        }
        Ok(())
    }
}

/// `Ok` when `name` can name a namespace: 1 to [`MAX_NAME_BYTES`] bytes of lowercase ASCII
/// letters, digits, `-` and `_`, starting with a letter or digit. The name is a directory name
/// and a key prefix, so nothing else is let in (no `/`, no `..`, no zero byte), and no capital
/// letters: on a file system that ignores case, `Shop` and `shop` would share a directory.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Error::Namespace {
        name: crate::error::display_id(name),
        reason: format!(
            "{reason}; a namespace name is 1 to {MAX_NAME_BYTES} lowercase ASCII letters, digits, `-` and `_`, starting with a letter or digit"
        ),
    }
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad("the name is too long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(bad("the name holds a character other than those allowed"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("the name starts with `-` or `_`"));
    }
    Ok(())
}

/// The events-per-second quota: a token bucket holding at most one second's worth.
#[derive(Debug)]
pub(crate) struct Pace {
    namespace: String,
    /// The quota, events per second (also the burst).
    per_sec: u32,
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Pace {
    /// The pacing of `quota`, if it limits events.
    pub(crate) fn new(namespace: &str, quota: &Quota) -> Option<Pace> {
        let per_sec = quota.events_per_sec?;
        let rate = f64::from(per_sec);
        Some(Pace {
            namespace: namespace.to_string(),
            per_sec,
            rate,
            state: Mutex::new((rate, Instant::now())),
        })
    }

    /// The events one call may carry at most: the burst.
    pub(crate) fn burst(&self) -> usize {
        self.per_sec as usize
    }

    /// Take `n` events' worth, or say how long until there is that much.
    fn take(&self, n: usize, now: Instant) -> std::result::Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let tokens =
            (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        #[allow(
            clippy::cast_precision_loss,
            reason = "event counts are far below 2^52"
        )]
        let want = n as f64;
        if want <= tokens {
            *s = (tokens - want, now);
            Ok(())
        } else {
            *s = (tokens, now);
            Err(Duration::from_secs_f64((want - tokens) / self.rate))
        }
    }

    /// Admit a call of `n` events now, or refuse it with what to do.
    pub(crate) fn admit(&self, n: usize) -> Result<()> {
        if n > self.burst() {
            return Err(self.exceeded(format!(
                "a call of {n} events is more than one second's worth; send at most {} events per call",
                self.burst()
            )));
        }
        self.take(n, Instant::now()).map_err(|wait| {
            self.exceeded(format!(
                "nothing was recorded; retry in {} ms, or raise the quota",
                wait.as_millis().max(1)
            ))
        })
    }

    /// Give back what [`Pace::admit`] took for a call that then stored nothing.
    pub(crate) fn refund(&self, n: usize) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        #[allow(
            clippy::cast_precision_loss,
            reason = "event counts are far below 2^52"
        )]
        let n = n as f64;
        s.0 = (s.0 + n).min(self.rate);
    }

    /// Wait until `n` events (at most [`Pace::burst`]) may go, then take them: how imports
    /// keep to the quota instead of failing.
    pub(crate) fn wait(&self, n: usize) {
        let n = n.min(self.burst());
        while let Err(wait) = self.take(n, Instant::now()) {
            std::thread::sleep(wait);
        }
    }

    fn exceeded(&self, detail: String) -> Error {
        Error::QuotaExceeded {
            namespace: self.namespace.clone(),
            quota: "events_per_sec",
            limit: u64::from(self.per_sec),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_directory_or_the_prefix_are_refused() {
        for bad in [
            "", ".", "..", "a/b", "../x", "a\0b", "-a", "_a", "a b", "é", "a.b", "Shop",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name(&"a".repeat(MAX_NAME_BYTES + 1)).is_err());
        for good in ["shop-a", "a", "a_1", "0", &"z".repeat(MAX_NAME_BYTES)] {
            validate_name(good).expect(good);
        }
    }

    #[test]
    fn the_bucket_holds_one_second_and_refills_at_the_rate() {
        let p = Pace::new("s", &Quota::default().events_per_sec(100)).expect("pace");
        let t0 = Instant::now();
        assert!(p.take(100, t0).is_ok(), "a full second's burst");
        let wait = p.take(1, t0).expect_err("empty");
        assert!(
            wait <= Duration::from_millis(10) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Half a second later, fifty have come back, and no more than a second's worth ever.
        assert!(p.take(50, t0 + Duration::from_millis(500)).is_ok());
        assert!(p.take(1, t0 + Duration::from_millis(500)).is_err());
        assert!(p.take(100, t0 + Duration::from_secs(60)).is_ok());
        assert!(p.take(1, t0 + Duration::from_secs(60)).is_err());
        assert!(p.admit(101).is_err(), "more than the burst can never pass");
    }
}
