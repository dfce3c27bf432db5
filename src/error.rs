//! The one error type of the library.
//!
//! Every message says what went wrong *and* what the caller can do next, because the people who
//! read these are app developers at 3 a.m. and operators on the admin socket, not the authors.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in recostore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record handed to a write call failed validation; nothing of the call was stored.
    #[error("invalid {what} `{id}`: {reason}. Nothing from this call was stored; fix the record and retry")]
    InvalidRecord {
        /// `"item"` or `"user"`.
        what: &'static str,
        /// The caller's id (possibly truncated for display).
        id: String,
        /// Why it was rejected.
        reason: String,
    },

    /// An event handed to `record_events` failed validation or names an unknown item; nothing
    /// of the batch was stored.
    #[error("event {index} (user `{user}`): {reason}. Nothing from this batch was stored; fix or drop that event and retry")]
    InvalidEvent {
        /// Position of the event in the batch (0-based).
        index: usize,
        /// The event's user id (possibly truncated for display).
        user: String,
        /// Why it was rejected.
        reason: String,
    },

    /// [`crate::Store::open_existing`] found no store in the directory; nothing was created.
    #[error("no store at {dir}: it does not exist or holds no recostore store, and nothing was created there. Check the directory; opening it for writing (Store::open, an import) creates a new store")]
    NoStore {
        /// The directory asked for.
        dir: PathBuf,
    },

    /// The store directory is already opened by another process (or another `Store` here).
    #[error("store at {dir} is locked by another process or handle; close that handle or process first, or open another directory")]
    Locked {
        /// The store directory.
        dir: PathBuf,
    },

    /// The durable layer under the store failed (an I/O error, or damage it found).
    #[error("durable storage failed: {source}. The store may need to be reopened; if it persists, restore from a backup")]
    Durable {
        /// What the durable layer reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A value to be stored is over the size one stored value may have (so it could not be
    /// read back); nothing from the call was written.
    #[error("the value for key {key} would take {bytes} bytes, over the {limit}-byte limit of one stored value. Nothing from this call was stored; split the batch (fewer events of one user per call) and retry")]
    ValueTooLarge {
        /// The key (lossy UTF-8, at most 80 bytes).
        key: String,
        /// Encoded size, as far as encoding got.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// A value read back from the durable records could not be decoded.
    #[error("stored record under key {key} is unreadable: {reason}. The store was written by an incompatible version or is damaged")]
    CorruptRecord {
        /// Printable form of the key.
        key: String,
        /// Decoder message.
        reason: String,
    },

    /// A segment file failed validation and automatic repair is off.
    #[error("segment {path} is damaged: {reason}. Reopen with Config::repair_segments = true (the default) to rebuild it from the durable records")]
    CorruptSegment {
        /// The offending file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// The store on disk was written by a newer or unknown format.
    #[error("store at {dir} has format version {found}, this build reads versions up to {expected}; use a matching recostore version")]
    IncompatibleStore {
        /// The store directory.
        dir: PathBuf,
        /// Version on disk.
        found: u32,
        /// Newest version this build reads.
        expected: u32,
    },

    /// The durable layer could not read its own files: they are damaged.
    #[error("the durable store in {dir} is damaged ({reason}); restore it from a backup. Nothing was written")]
    DamagedDatabase {
        /// The store directory.
        dir: PathBuf,
        /// What the durable layer reported.
        reason: String,
    },

    /// The directory is a backup that was interrupted before it was complete.
    #[error("{dir} is an interrupted backup, not a store: it may hold only part of the data. Delete it and run the backup again")]
    IncompleteBackup {
        /// The directory.
        dir: PathBuf,
    },

    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing, e.g. `"writing segment"`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A query asked for something that cannot be answered as posed.
    #[error("invalid query: {reason}. Fix the query and retry")]
    InvalidQuery {
        /// What is wrong with it.
        reason: String,
    },

    /// A namespace cannot be opened or used as asked (a bad name, an unknown one, a quota
    /// that cannot work, an operation namespaces do not support).
    #[error("namespace `{name}`: {reason}")]
    Namespace {
        /// The name asked for (shortened if long).
        name: String,
        /// What is wrong, and what to do instead.
        reason: String,
    },

    /// A write was refused because it would take a namespace past one of its quotas
    /// ([`crate::Quota`]); nothing of it was stored.
    #[error("namespace `{namespace}` is at its {quota} quota of {limit}: {detail}")]
    QuotaExceeded {
        /// The namespace (`default` for the store's own).
        namespace: String,
        /// Which quota: `max_records` or `events_per_sec`.
        quota: &'static str,
        /// The quota's value.
        limit: u64,
        /// What happened and what to do.
        detail: String,
    },

    /// An id space is exhausted (more than `u32::MAX - 1` items, users or tags).
    #[error(
        "too many {0}: the dense id space (u32) is exhausted; shard the catalogue across stores"
    )]
    IdSpaceExhausted(&'static str),

    /// A bulk load would update more items the store already holds than one atomic sled batch
    /// carries well; nothing of the call was stored.
    #[error(
        "this bulk load updates {updates} items the store already holds, more than the {limit} one atomic batch takes (sled's batches grow slow and large past that); nothing was stored. Bulk-load the new items and write the existing ones with upsert_items in batches, as `recostore import jsonl` does"
    )]
    BulkLoadTooManyUpdates {
        /// Items in the call that the store already holds.
        updates: usize,
        /// [`crate::Config::bulk_load_max_updates`].
        limit: usize,
    },

    /// An import or input file had a bad row and the import was strict
    /// ([`crate::import::ImportOptions::strict`]).
    #[error(
        "{source_name} line {line}: {reason} (a strict import aborts on the first bad row and stores nothing; import without strict to skip and count bad rows)"
    )]
    BadInput {
        /// File name or `"stdin"`.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong with the row.
        reason: String,
    },

    /// The thing asked for does not exist.
    #[error("no {what} with id `{id}` in this store; check the id (ids are case-sensitive)")]
    NotFound {
        /// `"item"` or `"user"`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A plugin failed a load check (size, imports, exports, ABI version, init or the smoke
    /// run); nothing was published.
    #[error("plugin `{name}` was not loaded: {reason}. Whatever served before keeps serving; fix the module (see plugins/ABI.md) and load it again")]
    PluginRejected {
        /// The plugin name.
        name: String,
        /// The check that failed.
        reason: String,
    },

    /// A plugin, slot or version asked for does not exist.
    #[error("no {what} `{name}`: {hint}")]
    PluginNotFound {
        /// `"plugin"`, `"slot"` or `"previous version of"`.
        what: &'static str,
        /// The name asked for.
        name: String,
        /// What to do instead.
        hint: &'static str,
    },

    /// A plugin operation cannot be done as asked (a bad name, unloading a plugin a slot
    /// routes to, a slot with no weight).
    #[error("plugin operation refused: {reason}")]
    PluginRefused {
        /// Why, and what to do instead.
        reason: String,
    },

    /// A replica was asked to change what it serves. Its records, events and plugins are the
    /// leader's, as of the last generation it verified.
    #[error("the store at {dir} is a replica and is read-only: write to the leader, which publishes to the replicas (Store::publish, `recostore serve --publish`)")]
    ReadOnlyReplica {
        /// The replica's directory.
        dir: PathBuf,
    },

    /// Talking to the object store failed (a publish, or a replica's poll or download).
    #[error("object store: {action} `{location}` failed: {source}. Check the address, the credentials and the network, then retry: a manifest never names a file that is not whole, so a retry is safe")]
    ObjectStore {
        /// What we were doing, e.g. `"uploading"`.
        action: &'static str,
        /// The object (or prefix) involved.
        location: String,
        /// What the object store reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// Another publisher committed the generation this publish was committing: two leaders
    /// wrote to one prefix at once, and the other won.
    #[error("publish to `{prefix}` lost: generation {generation} was committed by another publisher at the same moment. Only one leader may publish to a prefix; stop the other one, or give each leader its own prefix")]
    PublishConflict {
        /// The prefix published to.
        prefix: String,
        /// The generation both tried to commit.
        generation: u64,
    },

    /// The prefix's newest generation was published by another store.
    #[error("publish to `{prefix}` refused: its newest generation ({generation}) was published by store {leader}, and this is store {ours}. Replicas following that prefix would switch between two stores. Publish to another prefix, or, if that store is gone for good, take over from it (PublishOptions::take_over, `recostore publish --take-over`)")]
    ForeignLeader {
        /// The prefix published to.
        prefix: String,
        /// The newest generation there.
        generation: u64,
        /// The id of the store that published it.
        leader: String,
        /// This store's id.
        ours: String,
    },

    /// A manifest or a downloaded object failed its checks (size, checksum, format). Nothing
    /// that failed is used: a replica keeps serving the generation it last verified.
    #[error("{location} failed verification: {reason}. {remedy}")]
    BadObject {
        /// The object.
        location: String,
        /// What was wrong.
        reason: String,
        /// What happens now, and what repairs it.
        remedy: &'static str,
    },

    /// An object store address could not be used.
    #[error("object store address `{address}`: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong, and what would work.
        reason: String,
    },

    /// A directory a replica assembled a generation in was opened as a store. Its records
    /// are not in it (a replica serves them from its cache of pair files).
    #[error("{dir} is a generation a replica assembled, not a store: its records are in the replica's cache. To make a store of a published generation (a new leader, at a failover), run `recostore restore URL --dir NEW_DIR` (Store::restore_published)")]
    ReplicaGeneration {
        /// The directory.
        dir: PathBuf,
    },

    /// A replica was opened on a prefix that holds no generation yet.
    #[error("nothing is published under `{prefix}` yet: publish from the leader first (Store::publish, `recostore publish --dir D URL`), then open the replica")]
    NothingPublished {
        /// The prefix asked for.
        prefix: String,
    },
}

impl Error {
    /// Wrap an `io::Error` with the action and path, so the message names the file.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, id: &str, reason: impl Into<String>) -> Self {
        Error::InvalidRecord {
            what,
            id: display_id(id),
            reason: reason.into(),
        }
    }
}

/// Shorten an id for error messages so a 1 MiB garbage id does not flood a log line.
pub(crate) fn display_id(id: &str) -> String {
    const SHOW: usize = 64;
    if id.len() <= SHOW {
        return id.to_string();
    }
    let mut end = SHOW;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &id[..end], id.len())
}

/// The message of a caught panic.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
