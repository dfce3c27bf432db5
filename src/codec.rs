//! How records are laid out in sled: key prefixes and versioned bincode values.
//!
//! Everything lives in **one** sled tree so that a write touching a record, its name mapping,
//! new tag names, the id counters and the dirty log is a single atomic `apply_batch`
//! (sled batches are atomic per tree only). Keys by prefix (FORMAT.md has every field; the
//! constants are here and in the modules named):
//!
//! | prefix | key rest                      | value                                          |
//! |--------|-------------------------------|------------------------------------------------|
//! | `M`    | meta name (ASCII)             | u32/u64 BE; `M activity`: `VERSION ++ bincode(Totals)` (`activity::checkpoint`) |
//! | `I`    | item id (u32 BE)              | `VERSION ++ bincode(StoredItem)`, or the 1-byte tombstone `0x00` |
//! | `L`    | first item id (u32 BE)        | `VERSION ++ bincode(StoredChunk)`: items of a bulk load (`Store::bulk_load_items`) |
//! | `U`    | user id (u32 BE)              | `VERSION ++ bincode(StoredUser)`               |
//! | `T`    | tag id (u32 BE)               | tag name (UTF-8)                               |
//! | `D`    | kind byte + id (BE)           | seq (u64 BE) of the last write                 |
//! | `E`    | user id + first event seq     | the event log: a chunk of one user's events (`activity::log`) |
//! | `H`    | user id                       | events pruned from the user's log (`retention`) |
//! | `J`    | first event seq               | journal entry of a batch not yet checkpointed (`activity::log`) |
//! | `A`    | user id                       | `UserState` (`activity::checkpoint`)           |
//! | `B`    | item id                       | `ItemStats` (`activity::checkpoint`)           |
//! | `K`    | `b`/`v` + chunk number (u64)  | a chunk of 256 baskets or sessions (`activity::baskets`) |
//! | `P`    | `v`/`p`/`s` + name            | plugins and slots (`plugin::persist`)          |
//!
//! There is deliberately no name → id index in sled: it would cost a key per record on the
//! write path and is never needed, because the names are inside the records and the segment's
//! hash dictionaries (rebuilt from them) serve every look-up.
//!
//! Big-endian ids make sled's byte order equal numeric order, so prefix scans come out sorted.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version byte in front of every bincode value, so a future layout can be told apart.
const VALUE_VERSION: u8 = 1;

/// Meta key: on-disk format version of the store as a whole.
pub(crate) const META_FORMAT: &[u8] = b"Mformat";
/// Meta key: generation number of the current segment.
pub(crate) const META_GENERATION: &[u8] = b"Mgeneration";
/// The store's id (u32 BE, non-zero), fixed on first open; segments carry it in their footer.
pub(crate) const META_STORE_ID: &[u8] = b"Mstore_id";
/// Meta keys for the dense-id and sequence counters.
pub(crate) const META_NEXT_ITEM: &[u8] = b"Mnext_item";
pub(crate) const META_NEXT_USER: &[u8] = b"Mnext_user";
pub(crate) const META_NEXT_TAG: &[u8] = b"Mnext_tag";
pub(crate) const META_SEQ: &[u8] = b"Mseq";

/// Meta key: item ids below this may have their record in a bulk chunk (`L` keys); absent (0)
/// in a store that never had a bulk load.
pub(crate) const META_CHUNKED: &[u8] = b"Mchunked";

/// Format version of the sled layout described above, as a fresh store gets it.
pub(crate) const STORE_FORMAT: u32 = 4;
/// The same layout once a bulk load has written `L` chunks and `I` tombstones, which older
/// binaries would misread: the bulk load raises the mark to this, so they refuse the store.
pub(crate) const CHUNKED_FORMAT: u32 = 5;
/// The layout once a store holds a named namespace (keys starting with 0x00, FORMAT.md
/// "Namespaces"), raised on the store's own mark when the first one is created: older
/// binaries would keep those keys in a compaction but drop the namespaces' plugin files.
pub(crate) const NAMESPACED_FORMAT: u32 = 6;

/// The format mark to write for a change that needs at least `to`: never lower than the
/// mark the store has (a bulk load into a store with namespaces keeps 6).
pub(crate) fn raised_format(tree: &crate::durable::Db, to: u32) -> crate::error::Result<[u8; 4]> {
    let now = match tree.get(META_FORMAT)? {
        Some(v) => decode_u32(META_FORMAT, Some(&v))?,
        None => 0,
    };
    Ok(now.max(to).to_be_bytes())
}

/// What an `I` key holds for an item deleted while a bulk chunk still holds an older record
/// of it: the key's presence shadows the chunk, and this value says "no record". Stores with
/// no chunks remove the key instead.
pub(crate) const ITEM_TOMBSTONE: &[u8] = &[0];

/// Items a bulk load writes per `L` key, at most (fewer when they would pass
/// [`CHUNK_MAX_BYTES`]). sled writes a few large values far faster than many small keys, and
/// opens no slower: its open time follows its files' bytes, not its keys.
pub(crate) const CHUNK_ITEMS: usize = 1024;
/// Encoded bytes a chunk stops growing at, well under the largest value the store reads.
pub(crate) const CHUNK_MAX_BYTES: usize = 4 << 20;

/// Items of one bulk load with consecutive fresh ids, ascending, under `L` + the first id.
/// An `I` key of the same id, written later, takes precedence over the chunk's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredChunk {
    /// `(item id, record)`, ids ascending.
    pub items: Vec<(u32, StoredItem)>,
}

/// A [`StoredChunk`] to encode without copying its rows (the same bytes).
#[derive(Serialize)]
pub(crate) struct ChunkRef<'a> {
    /// As [`StoredChunk::items`].
    pub items: &'a [(u32, StoredItem)],
}

/// Key prefix of bulk chunks. Not `C`: formats 2 and 3 kept co-occurrence lists under `C`,
/// and a store is repaired from sled before its upgrade removes them.
pub(crate) const CHUNK_PREFIX: &[u8] = b"L";

/// Key of the bulk chunk whose first item is `first`.
pub(crate) fn chunk_key(first: u32) -> [u8; 5] {
    let mut k = [CHUNK_PREFIX[0], 0, 0, 0, 0];
    k[1..].copy_from_slice(&first.to_be_bytes());
    k
}

/// Decode a bulk chunk, checking what readers rely on: it is not empty, its first id is the
/// one in its key, and its ids ascend.
pub(crate) fn decode_chunk(key: &[u8], value: &[u8]) -> Result<StoredChunk> {
    let first = record_key_id(key)?;
    let chunk: StoredChunk = decode(key, value)?;
    if chunk.items.first().map(|(id, _)| *id) != Some(first) {
        return Err(corrupt(
            key,
            "bulk chunk does not start with the item its key names",
        ));
    }
    if chunk.items.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(corrupt(key, "bulk chunk ids do not ascend"));
    }
    Ok(chunk)
}

/// Decode the value under an item's `I` key: its record, or `None` for a tombstone.
pub(crate) fn decode_item_slot(key: &[u8], value: &[u8]) -> Result<Option<StoredItem>> {
    if value == ITEM_TOMBSTONE {
        return Ok(None);
    }
    decode(key, value).map(Some)
}

/// Which record family a key or dirty-log entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Item,
    User,
}

impl Kind {
    fn record_prefix(self) -> u8 {
        match self {
            Kind::Item => b'I',
            Kind::User => b'U',
        }
    }
}

/// An item as stored in sled and held in the delta: tags by dense id, sorted by tag id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredItem {
    /// The caller's id.
    pub name: String,
    /// `(tag id, weight)`, sorted by tag id, weights > 0.
    pub tags: Vec<(u32, f32)>,
    /// See [`crate::Item::title`].
    pub title: String,
    /// See [`crate::Item::category`].
    pub category: String,
    /// See [`crate::Item::price`].
    pub price: f32,
    /// See [`crate::Item::stock`].
    pub stock: u32,
    /// See [`crate::Item::members_only`].
    pub members_only: bool,
    /// See [`crate::Item::created_at`].
    pub created_at: u64,
}

/// A user as stored in sled and held in the delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredUser {
    /// The caller's id.
    pub name: String,
    /// `(tag id, weight)`, sorted by tag id, weights > 0.
    pub tags: Vec<(u32, f32)>,
    /// Dense item ids, newest last.
    pub recent: Vec<u32>,
}

pub(crate) fn record_key(kind: Kind, id: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = kind.record_prefix();
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn record_prefix(kind: Kind) -> [u8; 1] {
    [kind.record_prefix()]
}

pub(crate) fn tag_key(id: u32) -> [u8; 5] {
    let mut k = [b'T', 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn dirty_key(kind: Kind, id: u32) -> [u8; 6] {
    let mut k = [b'D', kind.record_prefix(), 0, 0, 0, 0];
    k[2..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Parse a dirty-log key back into its kind and id.
pub(crate) fn parse_dirty_key(key: &[u8]) -> Result<(Kind, u32)> {
    let kind = match key.get(1) {
        Some(b'I') => Kind::Item,
        Some(b'U') => Kind::User,
        _ => return Err(corrupt(key, "unknown dirty-log kind")),
    };
    Ok((kind, decode_u32(key, key.get(2..))?))
}

/// Decode a record key's id.
pub(crate) fn record_key_id(key: &[u8]) -> Result<u32> {
    decode_u32(key, key.get(1..))
}

pub(crate) fn decode_u32(key: &[u8], v: Option<&[u8]>) -> Result<u32> {
    v.and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| corrupt(key, "expected a 4-byte big-endian id"))
}

pub(crate) fn decode_u64(key: &[u8], v: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(key, "expected an 8-byte big-endian counter"))
}

pub(crate) fn corrupt(key: &[u8], reason: &str) -> Error {
    Error::CorruptRecord {
        key: String::from_utf8_lossy(&key[..key.len().min(80)]).into_owned(),
        reason: reason.to_string(),
    }
}

/// Largest value we will encode or decode. A corrupt length prefix must fail, not allocate gigabytes.
const MAX_VALUE_BYTES: usize = 64 << 20;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_VALUE_BYTES>()
}

/// Encode the value to be stored under `key`: a version byte then bincode. Refuses a value
/// that [`decode`] would refuse to read back (over `MAX_VALUE_BYTES`), so the store never
/// writes what it cannot read.
pub fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>> {
    let mut out = vec![VALUE_VERSION];
    let written = bincode::serde::encode_into_std_write(value, &mut out, bincode_config());
    let too_large = |bytes: usize| Error::ValueTooLarge {
        key: String::from_utf8_lossy(&key[..key.len().min(80)]).into_owned(),
        bytes,
        limit: MAX_VALUE_BYTES,
    };
    match written {
        Ok(n) if n <= MAX_VALUE_BYTES => Ok(out),
        Ok(n) => Err(too_large(n)),
        // Plain structs of strings, numbers and vectors fail to encode only by size.
        Err(_) => Err(too_large(out.len().saturating_sub(1))),
    }
}

/// Decode a value written by [`encode`]. Never panics on arbitrary bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => {
            let (v, used) = bincode::serde::decode_from_slice(rest, bincode_config())
                .map_err(|e| corrupt(key, &e.to_string()))?;
            if used != rest.len() {
                return Err(corrupt(key, "trailing bytes after the record"));
            }
            Ok(v)
        }
        Some((v, _)) => Err(corrupt(key, &format!("unknown value version {v}"))),
        None => Err(corrupt(key, "empty value")),
    }
}
