//! A store made of a published generation: how a new leader starts at a failover (from the
//! last generation the old one published), and how an engineer takes a copy of production.
//!
//! The newest generation under a prefix is downloaded and checked as a replica checks it,
//! its pair files are written into new sled files in key order, its segment files and plugin
//! modules are placed beside them, and the result is opened once as a store (and checked to
//! be the store the manifest names) before it is renamed into place. Until that rename the
//! target holds nothing, so an interrupted restore leaves nothing that could pass for a store.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::file_checksum;
use super::follow::{fetch_missing, newest_within, sync_dir, ReplicaSource};
use crate::error::{Error, Result};
use crate::store::Store;

/// What a restore made.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The store directory written.
    pub path: PathBuf,
    /// The generation it holds.
    pub generation: u64,
    /// The id of the store it is a copy of (8 hex digits): the leader that published it.
    pub store: String,
    /// Key-value pairs written into its records.
    pub pairs: u64,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// Seconds the whole restore took.
    pub seconds: f64,
}

/// Removes the work directory however the restore ends.
struct Work(PathBuf);

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn refused(to: &Path, kind: std::io::ErrorKind, why: &'static str) -> Error {
    Error::io("restoring to", to, std::io::Error::new(kind, why))
}

/// See [`Store::restore_published`].
pub(crate) fn restore(source: &ReplicaSource, to: &Path) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
        return Err(refused(
            to,
            std::io::ErrorKind::AlreadyExists,
            "the directory is not empty; give a new path so no store is overwritten",
        ));
    }
    let Some(m) = newest_within(source)? else {
        return Err(Error::NothingPublished {
            prefix: source.prefix.to_string(),
        });
    };
    let (Some(parent), Some(name)) = (to.parent(), to.file_name()) else {
        return Err(refused(
            to,
            std::io::ErrorKind::InvalidInput,
            "the path names no directory",
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let work = Work(parent.join(format!(
        ".{}.restore-{}-{nanos}",
        name.to_string_lossy(),
        std::process::id()
    )));
    let (objects, store_dir) = (work.0.join("objects"), work.0.join("store"));
    std::fs::create_dir_all(&objects).map_err(|e| Error::io("creating", &objects, e))?;
    std::fs::create_dir_all(&store_dir).map_err(|e| Error::io("creating", &store_dir, e))?;

    let downloaded = fetch_missing(&objects, source, &m)?;

    // The records first: the pair files, in key order, into new sled files.
    let mut pairs = 0u64;
    if m.files.iter().any(|f| m.is_pairs(f)) {
        let db = crate::durable::open_sled(&store_dir, &crate::config::Config::default())?;
        let mut batch = crate::durable::Batch::default();
        let (mut held, mut last): (usize, Option<Vec<u8>>) = (0, None);
        for f in m.files.iter().filter(|f| m.is_pairs(f)) {
            let from = objects.join(f.object.trim_start_matches("objects/"));
            let bytes = std::fs::read(&from).map_err(|e| Error::io("reading", &from, e))?;
            let (n, last_key) = crate::pairs::parse(&f.path, &bytes, last.as_deref(), |k, v| {
                held += k.len() + v.len();
                batch.insert(&bytes[k], bytes[v].to_vec());
                if held >= 4 << 20 {
                    held = 0;
                    db.apply_batch(std::mem::take(&mut batch))?;
                }
                Ok(())
            })?;
            last = Some(bytes[last_key].to_vec());
            pairs += n;
        }
        db.apply_batch(batch)?;
        db.flush()?;
    }
    // Then every other file at its path (sled's own files, in the first format).
    for f in m.files.iter().filter(|f| !m.is_pairs(f)) {
        let from = objects.join(f.object.trim_start_matches("objects/"));
        let dest = store_dir.join(&f.path);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        std::fs::rename(&from, &dest).map_err(|e| Error::io("placing", &dest, e))?;
        let (sum, size) = file_checksum(&dest)?;
        if size != f.size || format!("{sum:032x}") != f.xxh3_128 {
            return Err(Error::BadObject {
                location: dest.display().to_string(),
                reason: "the downloaded copy changed on this disk before it was placed".into(),
                remedy: "Check the disk, then run the restore again",
            });
        }
    }

    // Opened once: it must be a whole store, and the one the manifest names.
    let store = Store::open_existing(&store_dir)?;
    let tag = format!("{:08x}", store.store_tag());
    store.close()?;
    if tag != m.leader {
        return Err(Error::BadObject {
            location: crate::manifest::manifest_name(m.generation),
            reason: format!(
                "its records are store {tag}'s, and it says it was published by {}",
                crate::error::display_id(&m.leader)
            ),
            remedy: crate::manifest::BAD_MANIFEST,
        });
    }
    for sub in ["", "segments", crate::plugin::MODULES_DIR] {
        let d = store_dir.join(sub);
        if d.exists() {
            sync_dir(&d)?;
        }
    }
    // rename(2) replaces an empty directory and fails on a non-empty one.
    std::fs::rename(&store_dir, to).map_err(|e| Error::io("restoring to", to, e))?;
    sync_dir(parent)?;
    let report = RestoreReport {
        path: to.to_path_buf(),
        generation: m.generation,
        store: tag,
        pairs,
        bytes_downloaded: downloaded,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(generation = m.generation, pairs, path = %to.display(), "restored a published generation");
    Ok(report)
}
