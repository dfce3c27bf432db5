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
//! | `I`    | item id (u32 BE)              | `VERSION ++ bincode(StoredItem)`               |
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

/// Format version of the sled layout described above.
pub(crate) const STORE_FORMAT: u32 = 4;

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
