//! The on-disk layout of a segment: rkyv-archived columns followed by a fixed footer.
//!
//! See `FORMAT.md` at the repository root for the byte-by-byte description. Everything here is
//! columnar (a handful of long vectors rather than one struct per record) because rkyv's
//! validation cost is per *object*, so a columnar archive validates in microseconds whatever
//! its size, and scans touch only the columns they need.

use rkyv::{Archive, Deserialize, Serialize};

/// Magic bytes at the start of the footer.
pub const MAGIC: [u8; 8] = *b"RECOSEG\0";
/// Version of the footer + archive layout. Bump on any change to the types below.
pub const FORMAT_VERSION: u32 = 3;
/// Size of the fixed footer in bytes.
pub const FOOTER_LEN: usize = 48;
/// Postings per block of the inverted index. Each block records its last item id and the
/// largest weights in it, which is what the pruned top-k needs to skip work.
pub const BLOCK_LEN: usize = 128;
/// Marks an empty slot in a [`Dictionary`] hash table, and "no id" in columns.
pub const NONE: u32 = u32::MAX;

/// Describes the archived types. Its hash goes in the footer, so a build whose types differ
/// refuses a file instead of misreading it. Edit it together with the types.
pub const SCHEMA: &str = "recostore-segment v3: \
Segment{generation:u64,max_seq:u64,created_at:u64,tags:Dictionary,items:ItemTable,users:UserTable}; \
Dictionary{offsets:[u64],bytes:[u8],slots:[u32]}; \
Forward{offsets:[u64],tag_ids:[u32],weights:[f32],norms:[f32]}; \
Postings{offsets:[u64],items:[u32],weights:[f32],block_offsets:[u64],block_first:[u32],block_last:[u32],block_max:[f32],block_max_cos:[f32],column_of:[u32],column_scale:[f32],column_len:u64,columns:[u8]}; \
IdLists{offsets:[u64],ids:[u32]}; \
ItemTable{names:Dictionary,live:[u64],live_count:u64,forward:Forward,postings:Postings,titles:Dictionary,category:[u32],categories:Dictionary,category_items:IdLists,price:[f32],stock:[u32],members_only:[u64],created_at:[u64]}; \
UserTable{names:Dictionary,live:[u64],forward:Forward,recent_offsets:[u64],recent:[u32]}";

/// xxh3 of [`SCHEMA`].
pub fn schema_hash() -> u64 {
    xxhash_rust::xxh3::xxh3_64(SCHEMA.as_bytes())
}

/// Root of the archive.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct SegmentData {
    /// Generation number; the file is `segments/<generation>.seg`.
    pub generation: u64,
    /// Highest write sequence number folded into this segment. Dirty-log entries at or below it
    /// are already here.
    pub max_seq: u64,
    /// When it was built (seconds since the epoch).
    pub created_at: u64,
    /// Tag names by tag id.
    pub tags: Dictionary,
    /// Items by dense item id.
    pub items: ItemTable,
    /// Users by dense user id.
    pub users: UserTable,
}

/// Strings by dense id (`offsets[id]..offsets[id+1]` into `bytes`) plus an open-addressing hash
/// table for the reverse look-up. `slots.len()` is a power of two (or zero); each slot holds an
/// id or [`NONE`]; probing is linear from `xxh3(name) & (len-1)`.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct Dictionary {
    /// `len + 1` offsets into `bytes`.
    pub offsets: Vec<u64>,
    /// Concatenated UTF-8 strings.
    pub bytes: Vec<u8>,
    /// Hash table of ids; empty when the dictionary is not meant for reverse look-ups.
    pub slots: Vec<u32>,
}

/// Sparse row vectors in CSR form: row `r` is `offsets[r]..offsets[r+1]` into `tag_ids` and
/// `weights`, sorted by tag id. `norms[r]` is the row's L2 norm.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct Forward {
    /// `rows + 1` offsets.
    pub offsets: Vec<u64>,
    /// Tag ids, sorted within each row.
    pub tag_ids: Vec<u32>,
    /// Weights, parallel to `tag_ids`.
    pub weights: Vec<f32>,
    /// L2 norm of each row.
    pub norms: Vec<f32>,
}

/// The tag → item inverted index. List `t` is `offsets[t]..offsets[t+1]` into `items` and
/// `weights`, sorted by item id. It is cut into blocks of [`BLOCK_LEN`] postings (the last one
/// shorter); the blocks of list `t` are `block_offsets[t]..block_offsets[t+1]` in the `block_*`
/// columns, and block `b` of a list covers postings `b*BLOCK_LEN..` from the list's start.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct Postings {
    /// `tags + 1` offsets into `items`/`weights`.
    pub offsets: Vec<u64>,
    /// Item ids, ascending within each list.
    pub items: Vec<u32>,
    /// The item's raw weight for the tag.
    pub weights: Vec<f32>,
    /// `tags + 1` offsets into the block columns.
    pub block_offsets: Vec<u64>,
    /// First (smallest) item id in each block. Kept beside `block_last` so bounding a window
    /// reads only the block columns, never the postings of a list summed from its column.
    pub block_first: Vec<u32>,
    /// Last (largest) item id in each block.
    pub block_last: Vec<u32>,
    /// Largest raw weight in each block (bounds dot product and Jaccard).
    pub block_max: Vec<f32>,
    /// Largest `weight / L2 norm of the item` in each block (bounds cosine).
    pub block_max_cos: Vec<f32>,
    /// Per tag: which dense column holds its weights quantised, or [`NONE`]. Only lists that
    /// cover at least 1/[`COLUMN_DENSITY`] of the item slots get one.
    pub column_of: Vec<u32>,
    /// Per column: the step of its quantised weights. `q · scale ≥ weight` for every posting
    /// (rounded up), so a sum of quantised weights bounds the exact sum from above.
    pub column_scale: Vec<f32>,
    /// Bytes per column: the item slot count when the segment was built.
    pub column_len: u64,
    /// Columns back to back, `column_len` bytes each: byte `i` is item `i`'s weight in steps of
    /// the column's scale, rounded up, or 0 if the item lacks the tag.
    pub columns: Vec<u8>,
}

/// A list covering at least `1 / COLUMN_DENSITY` of the item slots also gets a dense column of
/// one byte per item: summing it is a vectorised pass over a window instead of a scatter per
/// posting, and probing it is one byte instead of a seek. At 1/16 a column is at most twice
/// the size of the list's 8-byte postings; at 1M Zipf items 1/8, 1/16 and 1/32 measured
/// within noise of each other (about 1.4–1.6 ms p50), with 1/16 reading half the postings
/// of 1/8 for 18 more columns (18 MB).
pub const COLUMN_DENSITY: usize = 16;

/// Lists of ids by a small key (here: items by category id), CSR-style.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct IdLists {
    /// `keys + 1` offsets into `ids`.
    pub offsets: Vec<u64>,
    /// Ids, ascending within each list.
    pub ids: Vec<u32>,
}

/// All item columns, indexed by dense item id. Ids of deleted items keep their slot (empty row,
/// live bit clear), so ids never need remapping.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct ItemTable {
    /// Item ids (the caller's strings), with a reverse hash table.
    pub names: Dictionary,
    /// Bitset: bit `id` set if the item exists.
    pub live: Vec<u64>,
    /// Number of set bits in `live` (the `N` of IDF weighting).
    pub live_count: u64,
    /// Item × tag matrix.
    pub forward: Forward,
    /// Tag × item inverted index of the same weights.
    pub postings: Postings,
    /// Titles by item id (no hash table).
    pub titles: Dictionary,
    /// Category id per item, into `categories`.
    pub category: Vec<u32>,
    /// Distinct category paths, with a reverse hash table (filters look categories up by name).
    pub categories: Dictionary,
    /// Live items of each category id (for filters that leave few candidates).
    pub category_items: IdLists,
    /// Price per item.
    pub price: Vec<f32>,
    /// Stock per item.
    pub stock: Vec<u32>,
    /// Bitset of members-only items.
    pub members_only: Vec<u64>,
    /// Creation time per item.
    pub created_at: Vec<u64>,
}

/// All user columns, indexed by dense user id.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct UserTable {
    /// User ids with a reverse hash table.
    pub names: Dictionary,
    /// Bitset: bit `id` set if the user exists.
    pub live: Vec<u64>,
    /// User × tag matrix.
    pub forward: Forward,
    /// `users + 1` offsets into `recent`.
    pub recent_offsets: Vec<u64>,
    /// Recent item ids, newest last within each user.
    pub recent: Vec<u32>,
}

/// The fixed 48-byte trailer of a segment file. All integers little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Must equal [`FORMAT_VERSION`].
    pub version: u32,
    /// Must equal [`schema_hash`].
    pub schema_hash: u64,
    /// Bytes of archive before the footer.
    pub payload_len: u64,
    /// xxh3-64 of the payload.
    pub payload_xxh3: u64,
    /// The store this file belongs to: a random non-zero number fixed when the store is
    /// created (0 in files written before stores had one). A segment copied in from another
    /// store, even with the right generation, is refused by it.
    pub store: u32,
}

impl Footer {
    /// Serialise under `magic`, appending the footer's own checksum.
    pub fn to_bytes(self, magic: [u8; 8]) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&magic);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.store.to_le_bytes());
        b[16..24].copy_from_slice(&self.schema_hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.payload_xxh3.to_le_bytes());
        let own = xxhash_rust::xxh3::xxh3_64(&b[0..40]);
        b[40..48].copy_from_slice(&own.to_le_bytes());
        b
    }

    /// Parse and check `magic` and the footer's own checksum. Version and schema are checked
    /// by the caller, which knows the file name for the error.
    pub fn parse(b: &[u8], magic: [u8; 8]) -> Result<Footer, String> {
        let b: &[u8; FOOTER_LEN] = b
            .try_into()
            .map_err(|_| "footer is not 48 bytes".to_string())?;
        if b[0..8] != magic {
            return Err(format!(
                "wrong magic: expected {:?}, this is some other file",
                String::from_utf8_lossy(&magic).trim_end_matches('\0')
            ));
        }
        let le64 = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[r]);
            u64::from_le_bytes(a)
        };
        if xxhash_rust::xxh3::xxh3_64(&b[0..40]) != le64(40..48) {
            return Err("footer checksum mismatch".into());
        }
        let le32 = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[r]);
            u32::from_le_bytes(a)
        };
        Ok(Footer {
            version: le32(8..12),
            store: le32(12..16),
            schema_hash: le64(16..24),
            payload_len: le64(24..32),
            payload_xxh3: le64(32..40),
        })
    }
}
