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

/// Encode a bulk load's fresh rows (ascending, consecutive ids) as `L` chunks: at most
/// [`codec::CHUNK_ITEMS`] rows each, fewer where that would pass [`codec::CHUNK_MAX_BYTES`].
pub(crate) fn bulk_chunks(rows: &[(u32, StoredItem)]) -> Result<Vec<([u8; 5], Vec<u8>)>> {
    let mut out = Vec::with_capacity(rows.len().div_ceil(codec::CHUNK_ITEMS));
    let mut rest = rows;
    while let Some(&(first, _)) = rest.first() {
        let key = codec::chunk_key(first);
        let mut take = rest.len().min(codec::CHUNK_ITEMS);
        loop {
            let encoded = codec::encode(
                &key,
                &codec::ChunkRef {
                    items: &rest[..take],
                },
            );
            match encoded {
                // Past the soft bound, or past the largest value the store reads (records
                // can be large under a raised `Config::max_tags_per_record`): fewer rows.
                Ok(value) if value.len() > codec::CHUNK_MAX_BYTES && take > 1 => {}
                Err(crate::error::Error::ValueTooLarge { .. }) if take > 1 => {}
                Ok(value) => {
                    out.push((key, value));
                    break;
                }
                Err(e) => return Err(e),
            }
            take = take.div_ceil(2);
        }
        rest = &rest[take..];
    }
    Ok(out)
}

/// Remove what a bulk load writes ahead of its commit (see `Inner::bulk_load_items`): the
/// chunks at or above `chunked` (the committed bound, `M chunked`) and the `T` keys at or
/// above `next_tag` (every committed tag name has an id below the committed counter, which
/// each write's batch persists with the names it adds). Such keys are what a load that
/// crashed or failed left. Run on open and before each bulk load, under the writer, so they
/// are gone before a later commit could cover them. Returns how many keys went.
pub(crate) fn remove_uncommitted_load(
    tree: &crate::durable::Db,
    chunked: u32,
    next_tag: u32,
) -> Result<usize> {
    let mut batch = crate::durable::Batch::default();
    let mut n = 0;
    let ranges = [
        (codec::chunk_key(chunked), codec::chunk_key(u32::MAX)),
        (codec::tag_key(next_tag), codec::tag_key(u32::MAX)),
    ];
    for (from, to) in ranges {
        for kv in tree.range(from, to) {
            let (k, _) = kv?;
            batch.remove(k);
            n += 1;
        }
    }
    if n > 0 {
        tree.apply_batch(batch)?;
        tree.flush()?;
        tracing::warn!(
            keys = n,
            "removed the chunks and tag names of a bulk load that did not commit (a crash or a failed load)"
        );
    }
    Ok(n)
}

/// Drop from the bulk chunks every record that an `I` key shadows (a later write of the item,
/// or its deletion), then the tombstones, which no chunk needs after that. For `compact`, so
/// that sled keeps no record of a deleted or replaced item. Each chunk is rewritten (under the
/// key of its first remaining item, or removed when none remains) in its own batch; a crash
/// between batches leaves shadowed records or unneeded tombstones, both harmless. The caller
/// holds the writer. Returns (records dropped, tombstones removed).
pub(crate) fn prune_chunks(tree: &crate::durable::Db) -> Result<(u64, u64)> {
    let mut dropped = 0u64;
    let chunks: Vec<(Vec<u8>, Vec<u8>)> = tree
        .scan_prefix(codec::CHUNK_PREFIX)
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_>>()?;
    for (k, v) in chunks {
        let chunk = codec::decode_chunk(&k, &v)?;
        let before = chunk.items.len();
        let mut kept = Vec::with_capacity(before);
        for (id, row) in chunk.items {
            if tree.get(codec::record_key(Kind::Item, id))?.is_none() {
                kept.push((id, row));
            }
        }
        if kept.len() == before {
            continue;
        }
        dropped += (before - kept.len()) as u64;
        let mut batch = crate::durable::Batch::default();
        batch.remove(&k);
        if let Some(&(first, _)) = kept.first() {
            let key = codec::chunk_key(first);
            batch.insert(key, codec::encode(&key, &codec::ChunkRef { items: &kept })?);
        }
        tree.apply_batch(batch)?;
    }
    let mut batch = crate::durable::Batch::default();
    let mut tombstones = 0u64;
    for kv in tree.scan_prefix(codec::record_prefix(Kind::Item)) {
        let (k, v) = kv?;
        if v.as_ref() == codec::ITEM_TOMBSTONE {
            batch.remove(&k);
            tombstones += 1;
        }
    }
    if tombstones > 0 {
        tree.apply_batch(batch)?;
    }
    tree.flush()?;
    Ok((dropped, tombstones))
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
    let seg = snap_seg.data();
    let max_seq = seg.max_seq.to_native();
    let mut d = Delta::default();
    for kv in tree.scan_prefix(b"D") {
        let (k, v) = kv?;
        let seq = codec::decode_u64(&k, &v)?;
        if seq <= max_seq {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u32, title_bytes: usize) -> Vec<(u32, StoredItem)> {
        (0..n)
            .map(|i| {
                (
                    100 + i,
                    StoredItem {
                        name: format!("i{i}"),
                        tags: vec![(i % 7, 1.0)],
                        title: "x".repeat(title_bytes),
                        category: String::new(),
                        price: 1.0,
                        stock: 1,
                        members_only: false,
                        created_at: 0,
                    },
                )
            })
            .collect()
    }

    /// Every row comes back once, in order, from chunks that each decode and start at their
    /// key's id.
    fn round_trip(rows: &[(u32, StoredItem)]) -> Vec<usize> {
        let chunks = bulk_chunks(rows).expect("chunks");
        let mut back = Vec::new();
        let mut sizes = Vec::new();
        for (key, value) in &chunks {
            let chunk = codec::decode_chunk(key, value).expect("a chunk decodes");
            sizes.push(value.len());
            back.extend(chunk.items);
        }
        assert_eq!(back, rows);
        sizes
    }

    #[test]
    fn chunks_hold_at_most_1024_rows_and_stop_at_their_byte_bound() {
        let small = rows(2_500, 10);
        let sizes = round_trip(&small);
        assert_eq!(sizes.len(), 3, "1,024 + 1,024 + 452 rows");
        // 1,024 rows of 10 KB titles pass the 4 MiB soft bound: fewer rows per chunk.
        let sizes = round_trip(&rows(1_024, 10_000));
        assert!(sizes.len() > 1);
        assert!(
            sizes.iter().all(|&s| s <= codec::CHUNK_MAX_BYTES),
            "{sizes:?}"
        );
    }

    #[test]
    fn rows_past_the_hard_value_limit_are_split_not_refused() {
        // 1,024 rows of 100 KB encode past the 64 MiB a value may hold (a raised
        // `Config::max_tags_per_record` makes records this large).
        let sizes = round_trip(&rows(1_024, 100_000));
        assert!(
            sizes.iter().all(|&s| s <= codec::CHUNK_MAX_BYTES),
            "{sizes:?}"
        );
        // One row alone past the soft bound is written as it is.
        let sizes = round_trip(&rows(1, 5_000_000));
        assert_eq!(sizes.len(), 1);
    }

    #[test]
    fn an_uncommitted_load_leaves_neither_chunks_nor_tag_names_and_committed_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = crate::durable::open_sled(dir.path(), &Config::default()).expect("sled opens");
        let mut batch = crate::durable::Batch::default();
        for id in [0u32, 1_024, 2_048, 3_072] {
            batch.insert(codec::chunk_key(id), b"chunk".to_vec());
        }
        for id in [0u32, 1, 2, 3, 4] {
            batch.insert(codec::tag_key(id), format!("t{id}").into_bytes());
        }
        // An item record between the ranges, which must stay.
        batch.insert(codec::record_key(Kind::Item, 5), b"item".to_vec());
        tree.apply_batch(batch).expect("write");
        // Committed: chunks below 2,048 and tag ids below 3.
        assert_eq!(
            remove_uncommitted_load(&tree, 2_048, 3).expect("removes"),
            4
        );
        let left = |prefix: &[u8]| {
            tree.scan_prefix(prefix)
                .map(|kv| kv.map(|(k, _)| codec::record_key_id(&k).expect("an id")))
                .collect::<Result<Vec<u32>>>()
                .expect("scan")
        };
        assert_eq!(left(codec::CHUNK_PREFIX), vec![0, 1_024]);
        assert_eq!(left(b"T"), vec![0, 1, 2]);
        assert_eq!(left(b"I"), vec![5]);
        // Nothing left to remove: a second call is a no-op.
        assert_eq!(remove_uncommitted_load(&tree, 2_048, 3).expect("no-op"), 0);
    }
}
