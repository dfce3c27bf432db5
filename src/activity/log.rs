//! The durable event log, and the journal that lets event batches skip writing state.
//!
//! **The log** keeps every event for good: evaluation, export, a user's history and deletion
//! read it. It is written as one sled key per user per write call, a *chunk*:
//!
//! | key | value |
//! |---|---|
//! | `E` user (u32 BE) seq (u64 BE) | `VERSION ++ bincode(Vec<Logged>)`, the user's events of one call in arrival order; `seq` is the first one's |
//! | `E` user (u32 BE) ts (u64 BE) seq (u64 BE) | `VERSION ++ bincode(StoredEvent)`: one event, as store format 1 wrote it (still read) |
//!
//! A batch of 10,000 events from a shop's traffic touches about 1,100 users, so chunks cut the
//! sled keys an event batch writes about ninefold, and sled's cost is per key. A user's
//! history is still one prefix scan; it is sorted by (time, seq) after decoding, because two
//! chunks of one user may interleave in time.
//!
//! **The journal** names the chunks of each event batch written since the behaviour state was
//! last checkpointed (see [`super::checkpoint`]):
//!
//! | key | value |
//! |---|---|
//! | `J` first event seq of the batch (u64 BE) | `VERSION ++ bincode(Vec<(u32 user, u64 chunk seq)>)` |
//!
//! It lands in the same sled batch as the chunks, so after a crash the journal names exactly
//! the event batches whose effect on the state was not yet written; open replays them.

use std::collections::HashMap;

use crate::durable::{Batch, Value};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;
use crate::event::StoredEvent;

/// Prefix of every event-log key.
pub(crate) const LOG_PREFIX: &[u8] = b"E";
/// Prefix of every journal key.
pub(crate) const JOURNAL_PREFIX: &[u8] = b"J";

/// One event in a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Logged {
    /// Arrival order, store-wide (`Totals::event_seq`).
    pub seq: u64,
    /// Event time.
    pub ts: u64,
    /// The event.
    pub event: StoredEvent,
}

/// The key of user `user`'s chunk whose first event has sequence number `seq`.
pub(crate) fn chunk_key(user: u32, seq: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = LOG_PREFIX[0];
    k[1..5].copy_from_slice(&user.to_be_bytes());
    k[5..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The log prefix of one user.
pub(crate) fn user_prefix(user: u32) -> [u8; 5] {
    let mut k = [LOG_PREFIX[0], 0, 0, 0, 0];
    k[1..].copy_from_slice(&user.to_be_bytes());
    k
}

fn journal_key(seq: u64) -> [u8; 9] {
    let mut k = [JOURNAL_PREFIX[0], 0, 0, 0, 0, 0, 0, 0, 0];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The user of a log key and the smallest sequence number its entry can hold, from the key
/// alone (so readers can skip entries without decoding them).
pub(crate) fn parse_key(k: &[u8]) -> Result<(u32, u64)> {
    let user = codec::decode_u32(k, k.get(1..5))?;
    let seq = match k.len() {
        13 => codec::decode_u64(k, &k[5..13])?,
        21 => codec::decode_u64(k, &k[13..21])?,
        _ => {
            return Err(codec::corrupt(
                k,
                "event-log key is neither 13 nor 21 bytes",
            ))
        }
    };
    Ok((user, seq))
}

/// The user and the events of one log entry: a chunk, or a format-1 single event.
pub(crate) fn decode_entry(k: &[u8], v: &[u8]) -> Result<(u32, Vec<Logged>)> {
    let (user, seq) = parse_key(k)?;
    if k.len() == 21 {
        let ts = codec::decode_u64(k, &k[5..13])?;
        let event: StoredEvent = codec::decode(k, v)?;
        return Ok((user, vec![Logged { seq, ts, event }]));
    }
    let events: Vec<Logged> = codec::decode(k, v)?;
    if events.first().is_none_or(|e| e.seq != seq) {
        return Err(codec::corrupt(
            k,
            "chunk is empty or does not start at its key's seq",
        ));
    }
    Ok((user, events))
}

/// Sort one user's events into history order (time, then arrival), each event once: a
/// prune running during the read writes a chunk again under a later key, which a scan can
/// meet twice ([`crate::retention`]).
pub(crate) fn sort_history(events: &mut Vec<Logged>) {
    events.sort_by_key(|e| (e.ts, e.seq));
    events.dedup_by_key(|e| e.seq);
}

/// User `user`'s events in history order, and the keys they live under. Entries that can only
/// hold events newer than `max_seq` are skipped without decoding; events newer than it are
/// left out.
pub(crate) fn user_log(
    tree: &crate::durable::Db,
    user: u32,
    max_seq: u64,
) -> Result<(Vec<Logged>, Vec<Value>)> {
    let mut events = Vec::new();
    let mut keys = Vec::new();
    for kv in tree.scan_prefix(user_prefix(user)) {
        let (k, v) = kv?;
        let (_, first) = parse_key(&k)?;
        if first > max_seq {
            continue;
        }
        let (_, chunk) = decode_entry(&k, &v)?;
        events.extend(chunk.into_iter().filter(|e| e.seq <= max_seq));
        keys.push(k);
    }
    sort_history(&mut events);
    Ok((events, keys))
}

/// The events of one write call, grouped into per-user chunks.
#[derive(Debug, Default)]
pub(crate) struct LogBatch {
    by_user: HashMap<u32, Vec<Logged>>,
    first_seq: Option<u64>,
    events: usize,
}

impl LogBatch {
    /// Add an event of `user` (in arrival order).
    pub fn push(&mut self, user: u32, logged: Logged) {
        self.first_seq.get_or_insert(logged.seq);
        self.events += 1;
        self.by_user.entry(user).or_default().push(logged);
    }

    /// Events added.
    pub fn len(&self) -> usize {
        self.events
    }

    /// Write the chunks into `batch`, plus, if `journal`, the journal entry naming them.
    /// Returns the journal entry's sequence number, if one was written.
    pub fn write(self, batch: &mut Batch, journal: bool) -> Result<Option<u64>> {
        let Some(first) = self.first_seq else {
            return Ok(None);
        };
        let mut chunks = Vec::with_capacity(self.by_user.len());
        for (user, events) in self.by_user {
            let seq = events.first().map_or(first, |e| e.seq);
            let key = chunk_key(user, seq);
            batch.insert(key, codec::encode(&key, &events)?);
            chunks.push((user, seq));
        }
        if !journal {
            return Ok(None);
        }
        chunks.sort_unstable();
        let key = journal_key(first);
        batch.insert(key, codec::encode(&key, &chunks)?);
        Ok(Some(first))
    }
}

/// What the journal holds: every named event with its user, in arrival order, and the
/// sequence numbers of the entries.
pub(crate) type Journal = (Vec<(u32, Logged)>, Vec<u64>);

/// Remove journal entry `seq` (its batch's effect is now in the checkpointed state).
pub(crate) fn remove_journal(batch: &mut Batch, seq: u64) {
    batch.remove(journal_key(seq));
}

/// Every event named by the journal, in arrival order, and the journal's entries. A named
/// chunk that is gone (its user was deleted, which checkpoints first, so this cannot happen
/// in a store only recostore wrote) is skipped with a warning: its events are in neither the
/// log nor the state, which still agree.
pub(crate) fn read_journal(tree: &crate::durable::Db) -> Result<Journal> {
    let mut events = Vec::new();
    let mut entries = Vec::new();
    for kv in tree.scan_prefix(JOURNAL_PREFIX) {
        let (k, v) = kv?;
        entries.push(codec::decode_u64(&k, k.get(1..).unwrap_or_default())?);
        let chunks: Vec<(u32, u64)> = codec::decode(&k, &v)?;
        for (user, seq) in chunks {
            let ck = chunk_key(user, seq);
            match tree.get(ck)? {
                Some(v) => {
                    let (_, chunk) = decode_entry(&ck, &v)?;
                    events.extend(chunk.into_iter().map(|e| (user, e)));
                }
                None => tracing::warn!(user, seq, "journal names a missing event chunk; skipped"),
            }
        }
    }
    events.sort_by_key(|(_, e)| e.seq);
    Ok((events, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StoredKind;

    fn ev(item: u32) -> StoredEvent {
        StoredEvent {
            item: Some(item),
            kind: StoredKind::View,
            session: None,
        }
    }

    #[test]
    fn chunks_and_format_1_keys_read_back_in_history_order() {
        let tree = crate::durable::memory();
        let mut log = LogBatch::default();
        for (seq, ts) in [(5, 300), (6, 100), (7, 200)] {
            log.push(
                9,
                Logged {
                    seq,
                    ts,
                    event: ev(seq as u32),
                },
            );
        }
        log.push(
            4,
            Logged {
                seq: 8,
                ts: 50,
                event: ev(1),
            },
        );
        let mut batch = Batch::default();
        assert_eq!(log.write(&mut batch, true).expect("encode"), Some(5));
        // A format-1 entry of user 9: key E user ts seq, value one StoredEvent.
        let mut old = [0u8; 21];
        old[0] = b'E';
        old[1..5].copy_from_slice(&9u32.to_be_bytes());
        old[5..13].copy_from_slice(&150u64.to_be_bytes());
        old[13..].copy_from_slice(&2u64.to_be_bytes());
        batch.insert(&old[..], codec::encode(&old, &ev(2)).unwrap());
        tree.apply_batch(batch).unwrap();

        let (events, keys) = user_log(&tree, 9, u64::MAX).unwrap();
        let order: Vec<(u64, u64)> = events.iter().map(|e| (e.ts, e.seq)).collect();
        assert_eq!(order, [(100, 6), (150, 2), (200, 7), (300, 5)]);
        assert_eq!(keys.len(), 2);
        // Entries newer than max_seq are left out; so are their events.
        let (events, _) = user_log(&tree, 9, 5).unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 5]);

        let (journal, entries) = read_journal(&tree).unwrap();
        assert_eq!(entries, [5]);
        let seqs: Vec<(u32, u64)> = journal.iter().map(|(u, e)| (*u, e.seq)).collect();
        assert_eq!(seqs, [(9, 5), (9, 6), (9, 7), (4, 8)]);
    }

    #[test]
    fn damaged_keys_and_chunks_are_errors() {
        assert!(parse_key(b"E\0\0\0\x01\0").is_err());
        let k = chunk_key(1, 7);
        let wrong_start = codec::encode(
            &k,
            &vec![Logged {
                seq: 8,
                ts: 0,
                event: ev(0),
            }],
        )
        .unwrap();
        assert!(decode_entry(&k, &wrong_start).is_err());
        let empty = codec::encode(&k, &Vec::<Logged>::new()).unwrap();
        assert!(decode_entry(&k, &empty).is_err());
    }
}
