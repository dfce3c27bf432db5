//! The records of a replica's generation: the pairs of its pair files ([`crate::pairs`]), in
//! a persistent map whose keys and values point into the mapped files of the replica's cache.
//!
//! Built from the generation before where there is one: the pairs of files that generation
//! named and this one does not are taken out, those of files new to this one are put in, and
//! the rest is shared. So a switch reads and maps only the files that changed, however large
//! the store (the store's own open work comes on top). A first open, or a restart, reads
//! them all (a pass over mapped files, no copy).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::durable::memory::Pairs;
use crate::durable::Value;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestFile};

/// The pairs of one generation, and which file each came from.
#[derive(Clone)]
pub(super) struct PairSet {
    /// Every pair of the generation.
    pub(super) pairs: Pairs,
    /// By object name: the keys of that pair file, in order (never empty).
    files: HashMap<String, Arc<Vec<Value>>>,
}

/// A cached object that fails its checksum: removed, so the next fetch replaces it.
fn damaged(path: &Path) -> Error {
    let _ = std::fs::remove_file(path);
    Error::BadObject {
        location: path.display().to_string(),
        reason: "the cached copy differs from the manifest (damaged on this disk since it was \
                 verified)"
            .into(),
        remedy: "It is removed; the next poll fetches it again, and the replica serves its last \
                 verified generation meanwhile",
    }
}

impl PairSet {
    /// The pairs of `m`'s pair files, read from the verified cache `objects`, reusing
    /// `earlier` (the generation served now) where the files agree.
    pub(super) fn build(
        objects: &Path,
        m: &Manifest,
        earlier: Option<&PairSet>,
    ) -> Result<PairSet> {
        let wanted: Vec<&ManifestFile> = m.files.iter().filter(|f| m.is_pairs(f)).collect();
        if wanted.is_empty() {
            // Every store has pairs (its id, its counters): none would open as a new, empty
            // store and serve nothing.
            return Err(Error::BadObject {
                location: crate::manifest::manifest_name(m.generation),
                reason: "it names no pair file, so it holds no records".into(),
                remedy: crate::manifest::BAD_MANIFEST,
            });
        }
        let names: HashSet<&str> = wanted.iter().map(|f| f.object.as_str()).collect();
        let mut set = PairSet {
            pairs: earlier.map(|e| e.pairs.clone()).unwrap_or_default(),
            files: HashMap::new(),
        };
        if let Some(earlier) = earlier {
            for (name, keys) in &earlier.files {
                if names.contains(name.as_str()) {
                    set.files.insert(name.clone(), keys.clone());
                } else {
                    for k in keys.iter() {
                        set.pairs.remove(&**k);
                    }
                }
            }
        }
        // Every damaged file is found (and removed) before the first is reported, so one
        // fetch repairs them all.
        let mut damage = None;
        for f in &wanted {
            if set.files.contains_key(&f.object) {
                continue;
            }
            match set.load(objects, f)? {
                Ok(keys) => {
                    set.files.insert(f.object.clone(), Arc::new(keys));
                }
                Err(e) => {
                    damage.get_or_insert(e);
                }
            }
        }
        if let Some(e) = damage {
            return Err(e);
        }
        // Each file is in order; the files must be too, without overlap, or a key would be
        // served from whichever file came last.
        let mut before: Option<&Value> = None;
        for f in &wanted {
            let keys = set
                .files
                .get(&f.object)
                .map(|k| k.as_slice())
                .unwrap_or(&[]);
            if let (Some(b), Some(first)) = (before, keys.first()) {
                if b >= first {
                    return Err(Error::BadObject {
                        location: f.path.clone(),
                        reason: "pair files overlap or are out of key order".into(),
                        remedy: "The replica keeps serving its last verified generation. The \
                                 files passed their checksums, so the leader wrote them this way: \
                                 report it with the leader's version",
                    });
                }
            }
            before = keys.last().or(before);
        }
        Ok(set)
    }

    /// Map pair file `f` from the cache, check it against the manifest, and put its pairs in.
    /// Returns its keys, or (inside) the error of a cached copy that fails its checksum,
    /// which is removed.
    fn load(&mut self, objects: &Path, f: &ManifestFile) -> Result<Result<Vec<Value>>> {
        let path = objects.join(f.object.trim_start_matches("objects/"));
        let file = std::fs::File::open(&path).map_err(|e| Error::io("reading", &path, e))?;
        // SAFETY: a cached object is written under `.part`, verified and renamed, and never
        // opened for writing again (a download of the same name goes to a new `.part` file,
        // a new inode). It is unlinked once the current generation no longer names it, even
        // while a retired generation still maps it; on Unix an unlinked file's mapping stays
        // whole. Only another process writing into the replica's locked directory could
        // change the bytes under the mapping (or a failing disk, which faults the read with
        // SIGBUS as for segment files), which is outside the contract (FORMAT.md).
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("mapping", &path, e))?;
        let map = Arc::new(map);
        // Checked again here, not only at download: the cache may have been damaged on this
        // disk since.
        let sum = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&map));
        if map.len() as u64 != f.size || sum != f.xxh3_128 {
            return Ok(Err(damaged(&path)));
        }
        let mut keys = Vec::new();
        let mut pairs = std::mem::take(&mut self.pairs);
        let parsed = crate::pairs::parse(&f.path, &map, None, |k, v| {
            let (Some(k), Some(v)) = (Value::mapped(&map, k), Value::mapped(&map, v)) else {
                return Err(Error::BadObject {
                    location: f.path.clone(),
                    reason: "a pair outside the file".into(),
                    remedy: "report this as a bug",
                });
            };
            keys.push(k.clone());
            pairs.insert(k, v);
            Ok(())
        });
        self.pairs = pairs;
        parsed?;
        Ok(Ok(keys))
    }
}
