//! `Store::export_jsonl`: the store's items, users and events as the JSON lines
//! `recostore import jsonl` reads, so export → import into an empty store → export gives the
//! same files.
//!
//! Items and users come from one snapshot. Events come from the log, up to the last event
//! recorded when that snapshot was taken, so writes during the export are left out whole. The
//! one exception: a user deleted during the export loses their events from it. Events are
//! written in time order (ties: user, then arrival), the order that replays them as they
//! happened.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::activity::log;
use crate::behaviour::public_event;
use crate::durable::Db;
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::import::jsonl::{JsonEvent, JsonItem, JsonUser};
use crate::snapshot::Snapshot;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// The directory holding `items.jsonl`, `users.jsonl` and `events.jsonl`.
    pub dir: PathBuf,
    /// Items written.
    pub items: u64,
    /// Users written.
    pub users: u64,
    /// Events written.
    pub events: u64,
    /// Events pruned from the log before the export ([`crate::Store::prune_event_log`]): the
    /// behaviour state counts them, `events.jsonl` cannot hold them.
    pub pruned_events: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Writes `name` in `dir` through a temporary file, renamed into place when complete, so a
/// failed export never leaves a half file under the final name.
struct Out {
    tmp: PathBuf,
    path: PathBuf,
    w: BufWriter<std::fs::File>,
}

impl Out {
    fn create(dir: &Path, name: &str) -> Result<Out> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        // A leftover (or planted) entry under the temporary name is removed, not written
        // through: removing a symlink removes the link, and `create_new` (O_EXCL) refuses to
        // follow one that reappears in between.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing stale temporary file", &tmp, e)),
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        Ok(Out {
            tmp,
            path,
            w: BufWriter::with_capacity(1 << 16, f),
        })
    }

    fn line<T: Serialize>(&mut self, v: &T) -> Result<()> {
        serde_json::to_writer(&mut self.w, v)
            .map_err(|e| Error::io("writing", &self.tmp, std::io::Error::other(e)))?;
        self.w
            .write_all(b"\n")
            .map_err(|e| Error::io("writing", &self.tmp, e))
    }

    fn finish(mut self) -> Result<()> {
        self.w
            .flush()
            .map_err(|e| Error::io("writing", &self.tmp, e))?;
        self.w
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io("syncing", &self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io("renaming", &self.path, e))
    }
}

impl Drop for Out {
    /// An export that failed part-way leaves no temporary file behind (after `finish` the
    /// name is gone and this does nothing).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Write `snap`'s items and users, and the events of `tree`'s log that `snap` holds, into
/// `dir` (see [`crate::Store::export_jsonl`]).
pub(crate) fn export_jsonl(snap: &Snapshot, tree: &Db, dir: &Path) -> Result<ExportSummary> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let last_event = snap.activity.totals().event_seq;

    let mut out = Out::create(dir, "items.jsonl")?;
    let mut items = 0;
    for id in 0..snap.item_id_bound() {
        if let Some(item) = snap.item_name(id).and_then(|n| snap.item(&n)) {
            out.line(&JsonItem::from(&item))?;
            items += 1;
        }
    }
    out.finish()?;

    let mut out = Out::create(dir, "users.jsonl")?;
    let mut users = 0;
    for id in 0..snap.user_id_bound() {
        if let Some(user) = snap.user_name(id).and_then(|n| snap.user(&n)) {
            out.line(&JsonUser::from(&user))?;
            users += 1;
        }
    }
    out.finish()?;

    // Sorted by (time, user, arrival). The log is chunked per user and write call, so the
    // events are decoded into memory first (about 60 bytes each).
    let mut all: Vec<(u64, u32, u64, StoredEvent)> = Vec::new();
    for kv in tree.scan_prefix(log::LOG_PREFIX) {
        let (k, v) = kv?;
        let (user, first) = log::parse_key(&k)?;
        if first > last_event {
            continue;
        }
        let (_, chunk) = log::decode_entry(&k, &v)?;
        all.extend(
            chunk
                .into_iter()
                .filter(|l| l.seq <= last_event)
                .map(|l| (l.ts, user, l.seq, l.event)),
        );
    }
    all.sort_unstable_by_key(|e| (e.0, e.1, e.2));
    // A prune running meanwhile writes a chunk again under a later key, which this scan can
    // meet twice; sequence numbers are unique, and the copies end up side by side.
    all.dedup_by_key(|e| e.2);
    let mut pruned_events = 0;
    for kv in tree.scan_prefix(crate::retention::PRUNED_PREFIX) {
        let (k, v) = kv?;
        pruned_events += crate::retention::decode_entry(&k, &v)?.1.events;
    }
    let mut out = Out::create(dir, "events.jsonl")?;
    let mut events = 0;
    for (ts, user, _, stored) in all {
        let Some(name) = snap.user_name(user) else {
            continue; // deleted during the export
        };
        out.line(&JsonEvent::from(&public_event(snap, &name, ts, stored)))?;
        events += 1;
    }
    out.finish()?;
    let summary = ExportSummary {
        dir: dir.to_path_buf(),
        items,
        users,
        events,
        pruned_events,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(dir = %dir.display(), items, users, events, "exported");
    Ok(summary)
}
