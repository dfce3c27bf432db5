//! Whole-store verification: `Store::verify_deep` (the CLI's `verify`), beside the quick
//! segment checksum of `Store::verify`.
//!
//! The quick check reads the segment file only, so a bit flip in sled's files went unseen
//! until an export tripped over it. The deep check reads every durable key (sled checks each
//! page's CRC as it reads) and decodes the records and the event log, then holds them
//! against what queries serve: each record against the snapshot (segment plus delta), each
//! user's logged events against their behaviour state, and the segment's store id against
//! the store's. Writes wait while it runs, so the two sides are one state.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::activity::log;
use crate::codec::{self, StoredUser};
use crate::durable::Db;
use crate::error::Result;
use crate::retention;
use crate::snapshot::Snapshot;

/// Problems listed one by one in a report; beyond this only the count grows.
const LISTED: usize = 20;

/// What `Store::verify_deep` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Segment generation checked.
    pub generation: u64,
    /// Durable keys read.
    pub keys: u64,
    /// Item and user records decoded and compared with what queries serve.
    pub records: u64,
    /// Logged events decoded and counted against the behaviour state.
    pub events: u64,
    /// Events taken out of the log by pruning ([`crate::Store::prune_event_log`]), counted
    /// with the logged ones against the behaviour state.
    pub pruned_events: u64,
    /// Bytes of sled's files on disk.
    pub db_bytes: u64,
    /// Bytes of the live keys and values. Far below `db_bytes`, the rest is space sled has
    /// not reclaimed, which may still hold the bytes of deleted records:
    /// `recostore compact` rewrites the files with the live keys only.
    pub live_bytes: u64,
    /// Damage found (at most 20 listed; `damaged` counts all). Empty: healthy.
    pub problems: Vec<String>,
    /// How many problems were found in all.
    pub damaged: u64,
    /// Findings that are not damage (an unbound segment of an older build, say).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing damaged was found.
    pub fn healthy(&self) -> bool {
        self.damaged == 0
    }

    fn problem(&mut self, what: String) {
        self.damaged += 1;
        if self.problems.len() < LISTED {
            self.problems.push(what);
        }
    }
}

/// Check the current generation's delta file, if it has one, against the snapshot `snap`
/// (which [`deep`] has checked against sled): every record it holds must be the snapshot's,
/// unless the snapshot holds a newer write of it. An unreadable file is a note, not damage:
/// the next open reads the dirty log instead.
pub(crate) fn delta_file(
    r: &mut VerifyReport,
    seg_dir: &Path,
    snap: &Snapshot,
    store_tag: u32,
    bounds: crate::delta::file::Bounds,
) {
    let saved = match crate::delta::file::read(seg_dir, &snap.segment, store_tag, bounds) {
        Ok(Some(saved)) => saved,
        Ok(None) => return,
        Err(e) => {
            r.notes.push(format!(
                "the delta file is unusable ({e}); the next open reads the delta from sled's \
                 dirty log instead, and `recostore rebuild --save-delta` writes it again"
            ));
            return;
        }
    };
    let live = &snap.delta;
    for (id, e) in saved.delta.items.iter() {
        match live.items.get(id) {
            Some(now) if now.seq > e.seq => {}
            Some(now) if now.seq == e.seq && now.row == e.row => {}
            _ => r.problem(format!(
                "delta file: item {id} at write {} is not what the store holds",
                e.seq
            )),
        }
    }
    for (id, e) in saved.delta.users.iter() {
        match live.users.get(id) {
            Some(now) if now.seq > e.seq => {}
            Some(now) if now.seq == e.seq && now.row == e.row => {}
            _ => r.problem(format!(
                "delta file: user {id} at write {} is not what the store holds",
                e.seq
            )),
        }
    }
    // Everything the store held as of the file's write must be in it.
    for (id, now) in live.items.iter().filter(|(_, e)| e.seq <= saved.seq) {
        if saved.delta.items.get(id).is_none_or(|e| e.seq != now.seq) {
            r.problem(format!(
                "delta file: item {id}'s write {} is missing from it",
                now.seq
            ));
        }
    }
    for (id, now) in live.users.iter().filter(|(_, e)| e.seq <= saved.seq) {
        if saved.delta.users.get(id).is_none_or(|e| e.seq != now.seq) {
            r.problem(format!(
                "delta file: user {id}'s write {} is missing from it",
                now.seq
            ));
        }
    }
}

/// The deep check of a store (see [`crate::Store::verify_deep`]) over its durable records
/// `tree` and the snapshot `snap`, with writes held off by the caller.
pub(crate) fn deep(store_tag: u32, tree: &Db, snap: &Snapshot) -> Result<VerifyReport> {
    let mut r = VerifyReport {
        db_bytes: tree.file_bytes(),
        ..VerifyReport::default()
    };
    let mut uncommitted = 0u64;
    {
        r.generation = snap.segment.generation();
        if let Err(e) = snap.segment.verify_checksum() {
            r.problem(format!("segment: {e}"));
        }
        match snap.segment.store_tag() {
            0 => r.notes.push(
                "the segment was written before stores had ids, so nothing binds it to \
                     this store; `recostore rebuild` writes a bound one"
                    .into(),
            ),
            t if t != store_tag => r.problem(format!(
                "the segment belongs to another store (id {t:08x}, this store {store_tag:08x})"
            )),
            _ => {}
        }
        let mut logged: HashMap<u32, u64> = HashMap::new();
        let (mut items, mut users) = (0u64, 0u64);
        // Chunks at or above it are a failed bulk load's, removed on the next open or load.
        let chunked = match tree.get(codec::META_CHUNKED)? {
            Some(v) => codec::decode_u32(codec::META_CHUNKED, Some(&v))?,
            None => 0,
        };
        // sled 0.34 can panic on a damaged page instead of returning an error: that is
        // damage found, not a failed check.
        let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for kv in tree.iter() {
                let (k, v) = match kv {
                    Ok(kv) => kv,
                    Err(e) => {
                        r.problem(format!(
                            "sled could not read past key {} of the durable store: {e}",
                            r.keys
                        ));
                        break;
                    }
                };
                r.keys += 1;
                r.live_bytes += (k.len() + v.len()) as u64;
                match k.first() {
                    Some(b'I') | Some(b'U') => {
                        r.records += 1;
                        let id = match codec::record_key_id(&k) {
                            Ok(id) => id,
                            Err(e) => {
                                r.problem(e.to_string());
                                continue;
                            }
                        };
                        let same = if k[0] == b'I' {
                            match codec::decode_item_slot(&k, &v) {
                                Ok(Some(rec)) => {
                                    items += 1;
                                    Ok(snap.stored_item(id).as_ref() == Some(&rec))
                                }
                                // A tombstone: the item is gone, so nothing may serve it.
                                Ok(None) => {
                                    r.records -= 1;
                                    Ok(snap.stored_item(id).is_none())
                                }
                                Err(e) => Err(e),
                            }
                        } else {
                            users += 1;
                            codec::decode::<StoredUser>(&k, &v)
                                .map(|rec| snap.stored_user(id).as_ref() == Some(&rec))
                        };
                        match same {
                            Ok(true) => {}
                            Ok(false) => r.problem(format!(
                                "{} record {id} differs from what queries serve (segment {}); \
                                     `recostore rebuild` writes the segment again from the records",
                                if k[0] == b'I' { "item" } else { "user" },
                                r.generation
                            )),
                            Err(e) => r.problem(e.to_string()),
                        }
                    }
                    Some(&p)
                        if p == codec::CHUNK_PREFIX[0]
                            && codec::record_key_id(&k).is_ok_and(|first| first >= chunked) =>
                    {
                        uncommitted += 1;
                    }
                    Some(&p) if p == codec::CHUNK_PREFIX[0] => match codec::decode_chunk(&k, &v) {
                        Ok(chunk) => {
                            r.records += chunk.items.len() as u64;
                            for (id, rec) in chunk.items {
                                // A later `I` key (record or tombstone) shadows the chunk's
                                // record; it is checked where the scan meets it.
                                match tree.get(codec::record_key(codec::Kind::Item, id)) {
                                    Ok(Some(_)) => r.records -= 1,
                                    Ok(None) => {
                                        items += 1;
                                        if snap.stored_item(id).as_ref() != Some(&rec) {
                                            r.problem(format!(
                                                "item record {id} (in a bulk chunk) differs \
                                                 from what queries serve (segment {}); \
                                                 `recostore rebuild` writes the segment again \
                                                 from the records",
                                                r.generation
                                            ));
                                        }
                                    }
                                    Err(e) => r.problem(e.to_string()),
                                }
                            }
                        }
                        Err(e) => r.problem(e.to_string()),
                    },
                    // What a user was shown: it must decode (its contents are behaviour state,
                    // which the journal may have moved past).
                    Some(&p) if p == crate::activity::checkpoint::EXPOSURE_PREFIX => {
                        if let Err(e) = codec::decode::<crate::activity::Exposure>(&k, &v) {
                            r.problem(e.to_string());
                        }
                    }
                    Some(b'T') if std::str::from_utf8(&v).is_err() => {
                        r.problem(format!("tag name under {k:?} is not UTF-8"));
                    }
                    Some(&p) if p == log::LOG_PREFIX[0] => match log::decode_entry(&k, &v) {
                        Ok((user, events)) => {
                            r.events += events.len() as u64;
                            *logged.entry(user).or_default() += events.len() as u64;
                        }
                        Err(e) => r.problem(e.to_string()),
                    },
                    Some(&p) if p == retention::PRUNED_PREFIX[0] => {
                        match retention::decode_entry(&k, &v) {
                            Ok((user, pruned)) => {
                                r.pruned_events += pruned.events;
                                *logged.entry(user).or_default() += pruned.events;
                            }
                            Err(e) => r.problem(e.to_string()),
                        }
                    }
                    _ => {}
                }
            }
        }));
        if let Err(panic) = scanned {
            r.problem(format!(
                "sled failed reading its files after key {}: {}",
                r.keys,
                crate::error::panic_text(&panic)
            ));
        }
        let served = (snap.live_items() as u64, snap.live_users() as u64);
        if served != (items, users) {
            r.problem(format!(
                "queries serve {} items and {} users, the durable records hold {items} and \
                     {users}; `recostore rebuild` writes the segment again from the records",
                served.0, served.1
            ));
        }
        let act = &snap.activity;
        for (&user, &n) in &logged {
            let state = act.user(user).map_or(0, |u| u.events);
            if state != n {
                r.problem(format!(
                    "user {} has {n} logged (and pruned) events but behaviour state counts \
                     {state}",
                    snap.user_name(user).unwrap_or_else(|| format!("#{user}"))
                ));
            }
        }
        if act.totals().events != r.events + r.pruned_events {
            r.problem(format!(
                "the event log holds {} events and {} were pruned from it, the behaviour \
                 totals count {}",
                r.events,
                r.pruned_events,
                act.totals().events
            ));
        }
    }
    if uncommitted > 0 {
        r.notes.push(format!(
            "{uncommitted} bulk chunks of a load that did not commit are still in sled; the \
             next open or bulk load removes them"
        ));
    }
    if r.pruned_events > 0 {
        r.notes.push(format!(
            "{} events older than the event log's retention have been pruned from it; the \
             behaviour state still counts them",
            r.pruned_events
        ));
    }
    let unused = snap.unused_tags().len();
    if unused > 0 {
        r.notes.push(format!(
            "{unused} tag names are used by no record and no profile (for example, tags only a \
             deleted user had); `recostore compact` removes them"
        ));
    }
    if r.db_bytes > 4 * r.live_bytes.max(1 << 20) {
        r.notes.push(format!(
            "sled's files take {} bytes for {} bytes of live data; the rest may hold \
                 deleted records until a reclaim (`recostore admin reclaim` while it serves, or \
                 `recostore compact`) rewrites them",
            r.db_bytes, r.live_bytes
        ));
    }
    Ok(r)
}
