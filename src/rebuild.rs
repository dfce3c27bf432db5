//! Making segments: from a snapshot (the normal fold of the delta) or from sled (first open,
//! or repair of a damaged segment), and loading the dirty log back into a delta on open.

use std::sync::Arc;

use std::path::Path;

use crate::codec::{self, Kind, StoredItem, StoredUser};
use crate::config::{Config, SegmentVerify};
use crate::delta::Delta;
use crate::error::Result;
use crate::segment::{self, Neighbours, Segment, SegmentBuilder, SegmentData};
use crate::snapshot::Snapshot;

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fold `snap` (segment + delta) into the columns of generation `generation`, leaving the
/// names of the tags in `dropped` out of the dictionary (their ids stay handed out, as empty
/// slots; a normal rebuild drops none).
pub(crate) fn from_snapshot_dropping(
    snap: &Snapshot,
    generation: u64,
    dropped: &std::collections::HashSet<u32>,
) -> SegmentData {
    from_snapshot_with(snap, generation, snap.seq, dropped, &[])
}

/// [`from_snapshot_dropping`] with `overlay` (rows ascending by id) taking the place of the
/// snapshot's row of the same id, and ids past the snapshot's: a bulk load's rows, folded
/// in the same pass. `max_seq` is the newest write the result holds.
pub(crate) fn from_snapshot_with(
    snap: &Snapshot,
    generation: u64,
    max_seq: u64,
    dropped: &std::collections::HashSet<u32>,
    overlay: &[(u32, StoredItem)],
) -> SegmentData {
    let mut b = SegmentBuilder::new();
    let bound = snap.tag_id_bound();
    for t in (0..bound).filter(|t| !dropped.contains(t)) {
        b.push_tag(t, snap.tag_name(t).unwrap_or(""));
    }
    b.pad_tags(bound);
    let items = overlay
        .last()
        .map_or(0, |(id, _)| id + 1)
        .max(snap.item_id_bound());
    let mut over = overlay.iter().peekable();
    for id in 0..items {
        match over.next_if(|(o, _)| *o == id) {
            Some((_, row)) => b.push_item(id, Some(row)),
            None => b.push_item(id, snap.stored_item(id).as_ref()),
        }
    }
    for id in 0..snap.user_id_bound() {
        b.push_user(id, snap.stored_user(id).as_ref());
    }
    b.finish(generation, max_seq, now_secs())
}

/// Write `data` as a segment file of store `store`, map it, and compute and attach its
/// neighbour lists.
pub(crate) fn publish(
    seg_dir: &Path,
    data: &SegmentData,
    config: &Config,
    store: u32,
) -> Result<Segment> {
    let path = segment::file::write(seg_dir, data, store)?;
    let seg = Segment::open(&path, SegmentVerify::Structure)?;
    let live = crate::narrow::usize_from(seg.data().items.live_count.to_native());
    if config.neighbours == 0 || live == 0 {
        return Ok(seg);
    }
    if live > config.neighbour_item_limit {
        tracing::info!(
            live,
            limit = config.neighbour_item_limit,
            "segment above Config::neighbour_item_limit: no neighbour lists; item queries use the pruned engine"
        );
        return Ok(seg);
    }
    let started = std::time::Instant::now();
    let lists = crate::search::build_neighbours(
        &seg,
        config.neighbours,
        config.resolved_build_threads(),
        config.progress.as_ref(),
    );
    let path = segment::neighbours::write(seg_dir, &lists, store)?;
    drop(lists);
    let n = Neighbours::open(&path, seg.generation(), SegmentVerify::Structure)?;
    tracing::info!(
        generation = seg.generation(),
        per_item = config.neighbours,
        seconds = started.elapsed().as_secs_f64(),
        "neighbour lists built"
    );
    Ok(seg.with_neighbours(n))
}

/// Attach the existing neighbour file of `seg`, if there is a valid one. Its absence only
/// costs speed (item queries search instead), so problems are logged, not returned.
pub(crate) fn attach_neighbours(seg: Segment, seg_dir: &Path, config: &Config) -> Segment {
    let path = seg_dir.join(segment::neighbours::file_name(seg.generation()));
    if !path.exists() {
        let live = crate::narrow::usize_from(seg.data().items.live_count.to_native());
        if config.neighbours > 0 && live > 0 && live <= config.neighbour_item_limit {
            tracing::warn!(path = %path.display(), "no neighbour lists for this segment; item queries will search until the next rebuild");
        }
        return seg;
    }
    match Neighbours::open(&path, seg.generation(), config.segment_verify) {
        Ok(n) if n.store_tag() != seg.store_tag() => {
            tracing::warn!(path = %path.display(), "ignoring neighbour lists that belong to another store; item queries will search until the next rebuild");
            seg
        }
        Ok(n) => seg.with_neighbours(n),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring unusable neighbour lists; item queries will search until the next rebuild");
            seg
        }
    }
}

/// Build generation `generation` straight from the durable records in sled.
pub(crate) fn from_sled(
    tree: &crate::durable::Db,
    generation: u64,
    max_seq: u64,
) -> Result<SegmentData> {
    let mut b = SegmentBuilder::new();
    for kv in tree.scan_prefix(b"T") {
        let (k, v) = kv?;
        let id = codec::record_key_id(&k)?;
        b.push_tag(id, &String::from_utf8_lossy(&v));
    }
    // Two ascending streams: the bulk chunks and the `I` keys; an `I` key (a record or a
    // tombstone) is newer than a chunk's record of the same id.
    let mut keys = tree
        .scan_prefix(codec::record_prefix(Kind::Item))
        .map(|kv| -> Result<(u32, Option<StoredItem>)> {
            let (k, v) = kv?;
            Ok((codec::record_key_id(&k)?, codec::decode_item_slot(&k, &v)?))
        })
        .peekable();
    let mut take_keys_below = |bound: u32, b: &mut SegmentBuilder| -> Result<()> {
        while let Some(next) = keys.next_if(|kv| kv.as_ref().map_or(true, |(id, _)| *id < bound)) {
            let (id, row) = next?;
            b.push_item(id, row.as_ref());
        }
        Ok(())
    };
    for kv in tree.scan_prefix(codec::CHUNK_PREFIX) {
        let (k, v) = kv?;
        for (id, row) in codec::decode_chunk(&k, &v)?.items {
            take_keys_below(id.saturating_add(1), &mut b)?;
            // Unless an `I` key of this id was just pushed.
            if b.item_slots() <= id as usize {
                b.push_item(id, Some(&row));
            }
        }
    }
    take_keys_below(u32::MAX, &mut b)?;
    if let Some(last) = keys.next() {
        let (id, row) = last?;
        b.push_item(id, row.as_ref());
    }
    for kv in tree.scan_prefix(codec::record_prefix(Kind::User)) {
        let (k, v) = kv?;
        let row: StoredUser = codec::decode(&k, &v)?;
        b.push_user(codec::record_key_id(&k)?, Some(&row));
    }
    Ok(b.finish(generation, max_seq, now_secs()))
}

/// Rebuild the delta of writes that reached sled after the segment was built: every dirty-log
/// entry newer than `max_seq`, plus tag names the segment lacks.
pub(crate) fn delta_from_dirty_log(
    tree: &crate::durable::Db,
    snap_seg: &crate::segment::Segment,
) -> Result<Delta> {
    let max_seq = snap_seg.data().max_seq.to_native();
    replay_dirty_log(tree, snap_seg, Delta::default(), max_seq)
}

/// Apply to `d` (the delta of `snap_seg` as of write `after`: empty at the segment's own
/// `max_seq`, or read back from a delta file) every dirty-log entry newer than `after`, and
/// add the tag names the segment lacks.
pub(crate) fn replay_dirty_log(
    tree: &crate::durable::Db,
    snap_seg: &crate::segment::Segment,
    mut d: Delta,
    after: u64,
) -> Result<Delta> {
    let seg = snap_seg.data();
    for kv in tree.scan_prefix(b"D") {
        let (k, v) = kv?;
        let seq = codec::decode_u64(&k, &v)?;
        if seq <= after {
            continue;
        }
        let (kind, id) = codec::parse_dirty_key(&k)?;
        let key = codec::record_key(kind, id);
        let value = tree.get(key)?;
        match kind {
            Kind::Item => {
                let row = match value {
                    Some(v) => codec::decode_item_slot(&key, &v)?,
                    None => None,
                };
                if let Some(r) = &row {
                    if seg.items.names.lookup(&r.name) != Some(id) {
                        d.item_names.insert(Arc::from(r.name.as_str()), id);
                    }
                }
                d.put_item(id, seq, row.map(Arc::new), &seg.items);
            }
            Kind::User => {
                let row = value
                    .map(|v| codec::decode::<StoredUser>(&key, &v))
                    .transpose()?;
                if let Some(r) = &row {
                    if seg.users.names.lookup(&r.name) != Some(id) {
                        d.user_names.insert(Arc::from(r.name.as_str()), id);
                    }
                }
                d.put_user(id, seq, row.map(Arc::new));
            }
        }
    }
    let seg_tags = crate::narrow::u32_from(seg.tags.len());
    for kv in tree.range(codec::tag_key(seg_tags), codec::tag_key(u32::MAX)) {
        let (k, v) = kv?;
        let id = codec::record_key_id(&k)?;
        let name: Arc<str> = Arc::from(String::from_utf8_lossy(&v).as_ref());
        d.tags.insert(name.clone(), id);
        d.tag_names.insert(id, name);
    }
    Ok(d)
}

/// Delete dirty-log entries already folded into a segment built at `max_seq`.
///
/// Runs after the new generation is recorded, without the writer lock: such entries are
/// already ignored on open, so removing them is only housekeeping. Each removal is a
/// compare-and-swap against the value we read, so an entry a writer has just refreshed with a
/// newer sequence number is left alone.
pub(crate) fn clean_dirty_log(tree: &crate::durable::Db, max_seq: u64) -> Result<usize> {
    let mut n = 0;
    for kv in tree.scan_prefix(b"D") {
        let (k, v) = kv?;
        if codec::decode_u64(&k, &v)? <= max_seq && tree.compare_and_swap(&k, Some(&v), None)? {
            n += 1;
        }
    }
    Ok(n)
}
