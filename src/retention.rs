//! How long the event log keeps events, and taking older ones out of it.
//!
//! The event log ([`crate::activity::log`]) grows with every event: 277 MiB of live data after
//! 3.1 million events in `bench/soak.rs`, growing for as long as the shop sells. Nothing a
//! query answers reads it: behaviour state (derived tags, counters, baskets, co-occurrence) is
//! derived from each event as it arrives and kept on its own. The log serves a user's history
//! ([`crate::Store::user_events`]), export, evaluation, deletion and de-duplicated runs. With
//! [`crate::Config::event_log_retention_secs`] set, events older than that much *store time*
//! (the newest event time, as decay uses) leave the log; what they did to behaviour state
//! stays.
//!
//! **Exact by event.** An event leaves when its time is before the horizon (`latest_ts −
//! keep`); a chunk holding events on both sides is written again with the newer ones only,
//! under the key of its first kept event (keys name a chunk's first sequence number). Chunks
//! of batches still in the journal (not yet checkpointed) are left alone, because open
//! replays them: their events leave at a later prune.
//!
//! **What was taken out is counted**, per user, so the log and the behaviour state still
//! reconcile (`verify`: events logged plus events pruned equal the events the state counts)
//! and deleting a user subtracts all their events from the totals:
//!
//! | key | value |
//! |---|---|
//! | `H` user id (u32 BE) | `VERSION ++ bincode(Pruned)`: events taken out of this user's log, and the newest time among them |
//!
//! A de-duplicated run ([`crate::Store::record_events_once`]) cannot tell an event at or
//! before a user's pruned time from one it already recorded, so it skips those.
//!
//! **When.** The write path checks at most every [`CHECK_EVERY_SECS`] seconds, and prunes
//! (on a thread of its own) once the horizon has moved a sixteenth of the window past the
//! last prune: each prune reads the whole log once, so this bounds that cost to at most about
//! sixteen reads per window. Writes wait only while each group of [`KEYS_PER_WRITE`] keys is
//! taken out (0.27 s in all for the 9,849 entries of a ninety-day prune of Online Retail in
//! `tests/event_log_retention.rs`, with writes and reads going on).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::activity::log::{self, Logged};
use crate::codec;
use crate::durable::{Batch, Db, Value};
use crate::error::Result;

/// Prefix of the per-user counts of pruned events.
pub(crate) const PRUNED_PREFIX: &[u8] = b"H";

/// How often, at most, a write checks whether a prune is due.
pub const CHECK_EVERY_SECS: u64 = 60;

/// Log keys taken out per hold of the writer: writes wait for one group at a time.
pub const KEYS_PER_WRITE: usize = 4_096;

/// What a prune of the event log did ([`crate::Store::prune_event_log`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PruneReport {
    /// Events with a time before this (seconds since the epoch) left the log.
    pub horizon: u64,
    /// Events taken out of the log.
    pub events: u64,
    /// Log entries removed or written again with their newer events only.
    pub chunks: u64,
    /// Users whose log lost events.
    pub users: u64,
    /// Log entries with older events that were left because their batch is still in the
    /// journal (the next prune after a checkpoint takes them).
    pub journaled_chunks: u64,
    /// Log entries read.
    pub chunks_read: u64,
    /// How long the prune took, in seconds; queries and writes went on meanwhile.
    pub seconds: f64,
    /// How long writes waited in all, in seconds: one short hold per group of keys.
    pub writes_held_seconds: f64,
}

/// What has been taken out of one user's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pruned {
    /// Events taken out, over all prunes.
    pub events: u64,
    /// The newest time among them.
    pub through_ts: u64,
}

/// The key of user `user`'s count of pruned events.
pub(crate) fn pruned_key(user: u32) -> [u8; 5] {
    let mut k = [PRUNED_PREFIX[0], 0, 0, 0, 0];
    k[1..].copy_from_slice(&user.to_be_bytes());
    k
}

/// What has been taken out of user `user`'s log (zero if nothing).
pub(crate) fn pruned(tree: &Db, user: u32) -> Result<Pruned> {
    let k = pruned_key(user);
    match tree.get(k)? {
        Some(v) => codec::decode(&k, &v),
        None => Ok(Pruned::default()),
    }
}

/// Decode one `H` entry: its user and count.
pub(crate) fn decode_entry(k: &[u8], v: &[u8]) -> Result<(u32, Pruned)> {
    let user = codec::decode_u32(k, k.get(1..))?;
    Ok((user, codec::decode(k, v)?))
}

/// The horizon a window of `keep` seconds sets at store clock `latest_ts`: events before it
/// leave the log.
pub(crate) fn horizon(latest_ts: u64, keep: u64) -> u64 {
    latest_ts.saturating_sub(keep)
}

/// Read the whole log once and hand the keys of the entries holding an event older than
/// `horizon` to `group`, at most [`KEYS_PER_WRITE`] at a time, in key order, so memory stays
/// bounded by one group whatever the log's size. The scan goes on while `group` takes entries
/// out: an entry written again under a later key is met again, holding newer events only,
/// and skipped; one a user deletion removed is found gone by [`take_out`].
pub(crate) fn in_groups(
    tree: &Db,
    horizon: u64,
    report: &mut PruneReport,
    mut group: impl FnMut(&[Value], &mut PruneReport) -> Result<()>,
) -> Result<()> {
    let mut keys = Vec::with_capacity(KEYS_PER_WRITE);
    for kv in tree.scan_prefix(log::LOG_PREFIX) {
        let (k, v) = kv?;
        report.chunks_read += 1;
        let (_, events) = log::decode_entry(&k, &v)?;
        if events.iter().any(|e| e.ts < horizon) {
            keys.push(k);
            if keys.len() == KEYS_PER_WRITE {
                group(&keys, report)?;
                keys.clear();
            }
        }
    }
    if !keys.is_empty() {
        group(&keys, report)?;
    }
    Ok(())
}

/// The sequence number below which no log entry is named by the journal (`u64::MAX` when the
/// journal is empty). Journal keys are the first sequence number of their batch, and a
/// batch's entries start at or after it.
pub(crate) fn journal_floor(tree: &Db) -> Result<u64> {
    match tree.scan_prefix(log::JOURNAL_PREFIX).next() {
        Some(kv) => {
            let (k, _) = kv?;
            codec::decode_u64(&k, k.get(1..).unwrap_or_default())
        }
        None => Ok(u64::MAX),
    }
}

/// Stage into `batch` the removal of the events older than `horizon` from the entries under
/// `keys` (re-read now: an entry gone since [`in_groups`] read it is skipped, and one named
/// by the journal, at or above `floor`, is left), and the new per-user counts. The caller
/// holds the writer, so nothing else changes these keys until the batch is applied.
pub(crate) fn take_out(
    tree: &Db,
    keys: &[Value],
    horizon: u64,
    floor: u64,
    batch: &mut Batch,
    report: &mut PruneReport,
) -> Result<()> {
    let mut by_user: BTreeMap<u32, Pruned> = BTreeMap::new();
    for k in keys {
        let (_, first) = log::parse_key(k)?;
        if first >= floor {
            report.journaled_chunks += 1;
            continue;
        }
        let Some(v) = tree.get(k)? else {
            continue;
        };
        let (user, events) = log::decode_entry(k, &v)?;
        let (old, kept): (Vec<Logged>, Vec<Logged>) =
            events.into_iter().partition(|e| e.ts < horizon);
        let Some(newest) = old.iter().map(|e| e.ts).max() else {
            continue;
        };
        batch.remove(k);
        if let Some(head) = kept.first() {
            let key = log::chunk_key(user, head.seq);
            batch.insert(key, codec::encode(&key, &kept)?);
        }
        report.chunks += 1;
        report.events += old.len() as u64;
        let p = by_user.entry(user).or_default();
        p.events += old.len() as u64;
        p.through_ts = p.through_ts.max(newest);
    }
    for (user, add) in by_user {
        let was = pruned(tree, user)?;
        let now = Pruned {
            events: was.events + add.events,
            through_ts: was.through_ts.max(add.through_ts),
        };
        let key = pruned_key(user);
        batch.insert(key, codec::encode(&key, &now)?);
        if was.events == 0 {
            report.users += 1;
        }
    }
    Ok(())
}

/// `Pacer::checked` before the first check.
const NEVER: u64 = u64::MAX;

/// When to prune: the horizon of the last prune, and the time of the last check.
#[derive(Debug)]
pub(crate) struct Pacer {
    started: Instant,
    /// Horizon of the last prune (0: none yet).
    last_horizon: AtomicU64,
    /// Seconds since `started` of the last check.
    checked: AtomicU64,
}

impl Pacer {
    /// A pacer with no prune behind it: the first write after open checks (a store opened
    /// with a retention over an old log prunes it straight away).
    pub(crate) fn new() -> Pacer {
        Pacer {
            started: Instant::now(),
            last_horizon: AtomicU64::new(0),
            checked: AtomicU64::new(NEVER),
        }
    }

    /// Whether a prune is due for a window of `keep` seconds at store clock `latest_ts`:
    /// a check is due (it is claimed, so of several writers one checks) and the horizon has
    /// moved a sixteenth of the window since the last prune.
    pub(crate) fn due(&self, latest_ts: u64, keep: u64) -> bool {
        let h = horizon(latest_ts, keep);
        if h <= self
            .last_horizon
            .load(Ordering::Relaxed)
            .saturating_add(keep / 16)
        {
            return false;
        }
        let now = self.started.elapsed().as_secs();
        let last = self.checked.load(Ordering::Relaxed);
        (last == NEVER || now >= last + CHECK_EVERY_SECS)
            && self
                .checked
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// A prune up to `horizon` finished.
    pub(crate) fn pruned(&self, horizon: u64) {
        self.last_horizon.fetch_max(horizon, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{StoredEvent, StoredKind};

    fn logged(seq: u64, ts: u64) -> Logged {
        Logged {
            seq,
            ts,
            event: StoredEvent {
                kind: StoredKind::View,
                item: Some(1),
                session: None,
            },
        }
    }

    fn put(tree: &Db, user: u32, events: &[Logged]) {
        let k = log::chunk_key(user, events[0].seq);
        tree.insert(k, codec::encode(&k, &events.to_vec()).unwrap())
            .unwrap();
    }

    fn older_than(tree: &Db, horizon: u64, r: &mut PruneReport) -> Vec<Value> {
        let mut keys = Vec::new();
        in_groups(tree, horizon, r, |g, _| {
            keys.extend_from_slice(g);
            Ok(())
        })
        .unwrap();
        keys
    }

    #[test]
    fn groups_are_taken_out_while_the_scan_goes_on() {
        let tree = crate::durable::memory();
        let n = KEYS_PER_WRITE as u64 * 2 + 10;
        for seq in 0..n {
            // Every entry straddles the horizon: each is written again under a later key,
            // which the scan then meets holding newer events only.
            put(
                &tree,
                (seq % 7) as u32,
                &[logged(seq * 2, 1), logged(seq * 2 + 1, 9)],
            );
        }
        let mut r = PruneReport::default();
        let mut groups = 0;
        in_groups(&tree, 5, &mut r, |keys, r| {
            groups += 1;
            let mut batch = Batch::default();
            take_out(&tree, keys, 5, u64::MAX, &mut batch, r)?;
            tree.apply_batch(batch)
        })
        .unwrap();
        assert_eq!(groups, 3);
        assert_eq!((r.events, r.chunks), (n, n));
        let kept: usize = (0..7).map(|u| log_of(&tree, u).len()).sum();
        assert_eq!(kept as u64, n);
        let counted: u64 = (0..7).map(|u| pruned(&tree, u).unwrap().events).sum();
        assert_eq!(counted, n);
    }

    fn log_of(tree: &Db, user: u32) -> Vec<(u64, u64)> {
        let (events, _) = log::user_log(tree, user, u64::MAX).unwrap();
        events.iter().map(|e| (e.seq, e.ts)).collect()
    }

    #[test]
    fn takes_out_exactly_the_older_events_and_counts_them() {
        let tree = crate::durable::memory();
        put(&tree, 1, &[logged(1, 10), logged(2, 50), logged(3, 20)]);
        put(&tree, 1, &[logged(7, 5)]);
        put(&tree, 2, &[logged(4, 100)]);
        put(&tree, 3, &[logged(5, 30), logged(6, 31)]);
        let mut r = PruneReport::default();
        let keys = older_than(&tree, 31, &mut r);
        assert_eq!(r.chunks_read, 4);
        assert_eq!(keys.len(), 3, "user 2's entry holds nothing older");
        let mut batch = Batch::default();
        take_out(&tree, &keys, 31, u64::MAX, &mut batch, &mut r).unwrap();
        tree.apply_batch(batch).unwrap();
        assert_eq!(log_of(&tree, 1), vec![(2, 50)]);
        assert_eq!(log_of(&tree, 2), vec![(4, 100)]);
        assert_eq!(log_of(&tree, 3), vec![(6, 31)]);
        assert_eq!((r.events, r.chunks, r.users), (4, 3, 2));
        assert_eq!(
            pruned(&tree, 1).unwrap(),
            Pruned {
                events: 3,
                through_ts: 20
            }
        );
        assert_eq!(pruned(&tree, 2).unwrap(), Pruned::default());
        // A second prune adds to the counts.
        let mut r = PruneReport::default();
        let keys = older_than(&tree, 51, &mut r);
        let mut batch = Batch::default();
        take_out(&tree, &keys, 51, u64::MAX, &mut batch, &mut r).unwrap();
        tree.apply_batch(batch).unwrap();
        assert!(log_of(&tree, 1).is_empty());
        assert_eq!(
            pruned(&tree, 1).unwrap(),
            Pruned {
                events: 4,
                through_ts: 50
            }
        );
        assert_eq!(r.users, 0, "user 1 and 3 had been pruned before");
    }

    #[test]
    fn leaves_journaled_and_vanished_entries() {
        let tree = crate::durable::memory();
        put(&tree, 1, &[logged(1, 10)]);
        put(&tree, 1, &[logged(9, 10)]);
        let mut r = PruneReport::default();
        let keys = older_than(&tree, 100, &mut r);
        tree.remove(log::chunk_key(1, 1)).unwrap();
        let mut batch = Batch::default();
        take_out(&tree, &keys, 100, 9, &mut batch, &mut r).unwrap();
        tree.apply_batch(batch).unwrap();
        assert_eq!(log_of(&tree, 1), vec![(9, 10)]);
        assert_eq!((r.events, r.journaled_chunks), (0, 1));
        assert_eq!(pruned(&tree, 1).unwrap(), Pruned::default());
    }

    #[test]
    fn journal_floor_is_the_oldest_entry() {
        let tree = crate::durable::memory();
        assert_eq!(journal_floor(&tree).unwrap(), u64::MAX);
        tree.insert([b'J', 0, 0, 0, 0, 0, 0, 0, 9], vec![1])
            .unwrap();
        tree.insert([b'J', 0, 0, 0, 0, 0, 0, 0, 4], vec![1])
            .unwrap();
        assert_eq!(journal_floor(&tree).unwrap(), 4);
    }

    #[test]
    fn paces_by_a_sixteenth_of_the_window() {
        let p = Pacer {
            started: Instant::now() - std::time::Duration::from_secs(10 * CHECK_EVERY_SECS),
            last_horizon: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        };
        // A clock inside the first window sets no horizon yet.
        assert!(!p.due(1_000, 1_600));
        assert!(p.due(10_000, 1_600));
        p.pruned(horizon(10_000, 1_600));
        assert!(!p.due(10_100, 1_600), "moved less than 100 s");
        // Moved enough, but checked in this period already.
        assert!(!p.due(20_000, 1_600));
        // A window of u64::MAX never prunes.
        let p = Pacer::new();
        assert!(!p.due(u64::MAX, u64::MAX));
        // A fresh pacer checks at once, then waits its period.
        assert!(p.due(10_000, 1_600));
        p.pruned(horizon(10_000, 1_600));
        assert!(!p.due(20_000, 1_600));
    }
}
