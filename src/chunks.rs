//! The bulk chunks: item records packed about a thousand to a sled value (`L` keys,
//! FORMAT.md "Bulk loads").
//!
//! sled's cost is per key, in writing and in opening alike: a million 250-byte records take it
//! seconds to write and about 70 ms to open, where the same bytes in a thousand values take
//! half a second and open in a third of that. So a bulk load writes its new items as chunks,
//! and `compact` packs every item record into chunks. An `I` key (a record, or a tombstone
//! meaning deleted) shadows a chunk's record of the same id; chunks at or above `M chunked`
//! are what an uncommitted load left.

use std::collections::HashSet;

use crate::codec::{self, Kind, StoredItem};
use crate::error::Result;

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

/// Every item record of `tree` except the `I` records of the items in `keep`, ascending by
/// id, encoded as chunks (see [`bulk_chunks`]) and handed to `emit` as they fill. For
/// `compact`, after [`prune_chunks`], which leaves chunk records and `I` records disjoint (an
/// `I` record shadowing a chunk's would win here too, and tombstones are skipped). The items
/// in `keep` are those the dirty log names: open reads their records from their `I` keys, so
/// the caller copies those keys as they are. Returns how many records were packed.
pub(crate) fn pack(
    tree: &crate::durable::Db,
    keep: &HashSet<u32>,
    mut emit: impl FnMut([u8; 5], Vec<u8>) -> Result<()>,
) -> Result<u64> {
    let mut keyed = tree
        .scan_prefix(codec::record_prefix(Kind::Item))
        .map(|kv| -> Result<(u32, Option<StoredItem>)> {
            let (k, v) = kv?;
            let id = codec::record_key_id(&k)?;
            Ok((id, codec::decode_item_slot(&k, &v)?))
        })
        .filter(|r| !matches!(r, Ok((id, _)) if keep.contains(id)))
        .peekable();
    let mut chunked = tree
        .scan_prefix(codec::CHUNK_PREFIX)
        .map(|kv| -> Result<Vec<(u32, StoredItem)>> {
            let (k, v) = kv?;
            Ok(codec::decode_chunk(&k, &v)?.items)
        })
        .flat_map(|r| -> Box<dyn Iterator<Item = Result<(u32, StoredItem)>>> {
            match r {
                Ok(items) => Box::new(items.into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        })
        .peekable();
    let mut pending: Vec<(u32, StoredItem)> = Vec::with_capacity(codec::CHUNK_ITEMS);
    let mut packed = 0u64;
    let mut flush = |pending: &mut Vec<(u32, StoredItem)>| -> Result<()> {
        for (key, value) in bulk_chunks(pending)? {
            emit(key, value)?;
        }
        pending.clear();
        Ok(())
    };
    loop {
        // An unreadable record fails the packing (and the compaction) with its own error.
        if matches!(keyed.peek(), Some(Err(_))) {
            if let Some(Err(e)) = keyed.next() {
                return Err(e);
            }
        }
        if matches!(chunked.peek(), Some(Err(_))) {
            if let Some(Err(e)) = chunked.next() {
                return Err(e);
            }
        }
        let next_key = match keyed.peek() {
            Some(Ok((id, _))) => Some(*id),
            _ => None,
        };
        let next_chunk = match chunked.peek() {
            Some(Ok((id, _))) => Some(*id),
            _ => None,
        };
        let row = match (next_key, next_chunk) {
            (None, None) => break,
            // The `I` key is the newer of two records of one id; its chunk record goes.
            (Some(k), Some(c)) if k == c => {
                chunked.next();
                keyed.next()
            }
            (Some(k), Some(c)) if c < k => {
                chunked.next().map(|r| r.map(|(id, row)| (id, Some(row))))
            }
            (Some(_), _) => keyed.next(),
            (None, Some(_)) => chunked.next().map(|r| r.map(|(id, row)| (id, Some(row)))),
        };
        // A tombstone: deleted, nothing to pack.
        if let Some(Ok((id, Some(row)))) = row {
            pending.push((id, row));
            packed += 1;
            if pending.len() == codec::CHUNK_ITEMS {
                flush(&mut pending)?;
            }
        }
    }
    flush(&mut pending)?;
    Ok(packed)
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
        let tree = crate::durable::open_sled(dir.path(), &crate::config::Config::default())
            .expect("sled opens");
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
    #[test]
    fn packing_merges_keys_and_chunks_in_id_order_and_leaves_kept_items_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = crate::durable::open_sled(dir.path(), &crate::config::Config::default())
            .expect("sled opens");
        let all = rows(3_000, 10); // ids 100..3100
        let mut batch = crate::durable::Batch::default();
        // Even ids in chunks, odd ids as `I` keys; 101 is a tombstone shadowing nothing;
        // 103 is kept (the dirty log names it).
        let chunked: Vec<(u32, StoredItem)> =
            all.iter().filter(|(id, _)| id % 2 == 0).cloned().collect();
        for (k, v) in bulk_chunks(&chunked).expect("chunks") {
            batch.insert(k, v);
        }
        for (id, row) in all.iter().filter(|(id, _)| id % 2 == 1) {
            let key = codec::record_key(Kind::Item, *id);
            if *id == 101 {
                batch.insert(key, codec::ITEM_TOMBSTONE);
            } else {
                batch.insert(key, codec::encode(&key, row).expect("encodes"));
            }
        }
        tree.apply_batch(batch).expect("write");
        let keep: HashSet<u32> = [103].into_iter().collect();
        let mut back = Vec::new();
        let mut firsts = Vec::new();
        let packed = pack(&tree, &keep, |key, value| {
            let chunk = codec::decode_chunk(&key, &value)?;
            firsts.push(codec::record_key_id(&key)?);
            assert!(chunk.items.len() <= codec::CHUNK_ITEMS);
            back.extend(chunk.items);
            Ok(())
        })
        .expect("packs");
        let want: Vec<(u32, StoredItem)> = all
            .into_iter()
            .filter(|(id, _)| *id != 101 && *id != 103)
            .collect();
        assert_eq!(packed as usize, want.len());
        assert_eq!(
            back, want,
            "every record once, ascending, none of the kept or deleted"
        );
        assert!(firsts.windows(2).all(|w| w[0] < w[1]));
    }
}
