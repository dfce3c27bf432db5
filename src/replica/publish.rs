//! A leader's publish: copy, upload what is new, commit the manifest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

use super::{block_on, file_checksum, newest, os_error, under};
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest, ManifestFile, MANIFEST_FORMAT};
use crate::store::Store;

/// Files above this are uploaded in parts of this size (S3 takes one put up to 5 GB, but a
/// part at a time keeps memory flat and lets a slow link make progress).
const PART_BYTES: usize = 16 << 20;

/// Requests (HEADs, uploads) in flight at once: enough to hide an object store's per-request
/// latency (tens of milliseconds on S3) behind the others, few enough to leave the link to
/// the app.
const REQUESTS_AT_ONCE: usize = 8;

/// A request of a publish, boxed so that requests of one kind can run side by side.
type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishReport {
    /// The generation committed.
    pub generation: u64,
    /// Files in it.
    pub files: usize,
    /// Their bytes: what a replica holds for this generation.
    pub bytes_total: u64,
    /// Objects uploaded by this publish (the others were already there).
    pub objects_uploaded: usize,
    /// Their bytes: what this publish sent.
    pub bytes_uploaded: u64,
    /// Seconds the walk took (pairs written, segment files linked): writes waited that long.
    pub copy_seconds: f64,
    /// Seconds the whole publish took.
    pub seconds: f64,
}

/// Removes the staging copy however the publish ends.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove a publish's staging copy; delete it by hand");
            }
        }
    }
}

/// Where the staging copy of a publish goes: a hidden directory beside the store (on its file
/// system, so segment files can be hard-linked, and outside it, so nothing in the store
/// directory is mistaken for the store's), unique to this process and moment.
fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.publish-{}-{nanos}", std::process::id()))
}

/// Remove what publishes killed part-way left beside the store: their staging copies, and
/// the unfinished backup directories the first format's publishes made (`..<name>.publish-`).
/// Any such directory is a leftover: the store is open in this process only (its lock), and
/// its publishes run one at a time.
fn clear_stale_staging(dir: &Path) {
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (ours, backups) = (format!(".{name}.publish-"), format!("..{name}.publish-"));
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&ours) || file.starts_with(&backups) {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a killed publish's staging copy")
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a killed publish's staging copy")
                }
            }
        }
    }
}

/// Every file under `root`, as `/`-separated relative paths in byte order.
fn files_under(root: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) -> Result<()> {
        let entries = std::fs::read_dir(at).map_err(|e| Error::io("listing", at, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", at, e))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("reading", &path, e))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .map_err(|_| {
                        Error::io(
                            "listing",
                            &path,
                            std::io::Error::other("a file outside the copy"),
                        )
                    })?
                    .to_str()
                    .ok_or_else(|| {
                        Error::io(
                            "publishing",
                            &path,
                            std::io::Error::other("a file name that is not UTF-8"),
                        )
                    })?
                    .replace(std::path::MAIN_SEPARATOR, "/");
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

/// How a publish treats its prefix.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Publish even if the prefix's newest generation came from another store, as its
    /// successor: a store rebuilt offline (`recostore build`) replacing the last build, or a
    /// new leader replacing one that is gone. Replicas switch to it like to any generation.
    /// Two leaders must still never publish to one prefix at once.
    pub take_over: bool,
}

/// See [`Store::publish`].
pub(crate) fn publish(
    store: &Store,
    to: &dyn ObjectStore,
    prefix: &ObjPath,
    opts: &PublishOptions,
) -> Result<PublishReport> {
    let started = Instant::now();
    let ours = format!("{:08x}", store.store_tag());
    let published_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));

    // Who holds the prefix, before any copying: a refusal should cost nothing.
    let before = block_on(newest(to, prefix))??;
    let generation = match &before {
        Some(m) if m.leader != ours && !opts.take_over => {
            return Err(Error::ForeignLeader {
                prefix: prefix.to_string(),
                generation: m.generation,
                leader: m.leader.clone(),
                ours,
            })
        }
        Some(m) => m.generation + 1,
        None => 1,
    };

    clear_stale_staging(store.dir());
    let staging = Staging(staging_dir(store.dir()));
    std::fs::create_dir(&staging.0).map_err(|e| Error::io("creating", &staging.0, e))?;
    let copied = Instant::now();
    let segment_generation = store.export_for_publish(&staging.0)?;
    let copy_seconds = copied.elapsed().as_secs_f64();

    let mut files = Vec::new();
    for rel in files_under(&staging.0)? {
        let path = staging.0.join(&rel);
        let (sum, size) = if rel.starts_with("segments/") {
            segment_checksum(&path)?
        } else {
            file_checksum(&path)?
        };
        files.push(ManifestFile {
            path: rel,
            object: manifest::object_name(sum, size),
            size,
            xxh3_128: format!("{sum:032x}"),
        });
    }
    let m = Manifest {
        format: MANIFEST_FORMAT.into(),
        generation,
        leader: ours,
        published_at_ms,
        segment_generation,
        files,
    };
    let body = m.encode()?;

    let (uploaded, bytes_uploaded) = block_on(async {
        use futures::StreamExt;
        // Which objects are missing: a HEAD per distinct object, several at once, so the
        // cost follows the generation's size, not the prefix's history. Content-addressed:
        // an object of the right size under its name holds these bytes (a replica checks
        // the checksum anyway). An object deleted from the store is uploaded again here.
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<&ManifestFile> =
            m.files.iter().filter(|f| seen.insert(&f.object)).collect();
        let mut heads: Vec<Pending<'_, Option<&ManifestFile>>> = Vec::new();
        for f in distinct {
            let at = under(prefix, &f.object);
            heads.push(Box::pin(async move {
                match to.head(&at).await {
                    Ok(meta) if meta.size == f.size => Ok(None),
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(Some(f)),
                    Err(e) => Err(os_error("looking up", &at, e)),
                }
            }));
        }
        let mut missing = Vec::new();
        let mut looked = futures::stream::iter(heads).buffer_unordered(REQUESTS_AT_ONCE);
        while let Some(found) = looked.next().await {
            if let Some(f) = found? {
                missing.push(f);
            }
        }
        drop(looked);
        let uploaded = (missing.len(), missing.iter().map(|f| f.size).sum::<u64>());
        let mut sends: Vec<Pending<'_, ()>> = Vec::with_capacity(missing.len());
        for f in missing {
            let (at, path) = (under(prefix, &f.object), staging.0.join(&f.path));
            sends.push(Box::pin(async move { upload(to, &at, &path).await }));
        }
        // Every upload runs to its end, failed or not, before the first failure is returned:
        // one dropped half-way would leave a multipart upload neither completed nor aborted.
        let mut first_error = None;
        let mut sent = futures::stream::iter(sends).buffer_unordered(REQUESTS_AT_ONCE);
        while let Some(result) = sent.next().await {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        drop(sent);
        if let Some(e) = first_error {
            return Err(e);
        }
        // Last, and only if no one committed this generation meanwhile.
        let at = under(prefix, &manifest::manifest_name(generation));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match to.put_opts(&at, PutPayload::from(body), opts).await {
            Ok(_) => Ok(uploaded),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(Error::PublishConflict {
                prefix: prefix.to_string(),
                generation,
            }),
            Err(e) => Err(os_error("committing", &at, e)),
        }
    })??;
    let report = PublishReport {
        generation,
        files: m.files.len(),
        bytes_total: m.total_bytes(),
        objects_uploaded: uploaded,
        bytes_uploaded,
        copy_seconds,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        generation,
        files = report.files,
        uploaded = report.objects_uploaded,
        bytes_uploaded,
        seconds = report.seconds,
        "published a generation"
    );
    Ok(report)
}

/// The checksum and size of a segment file linked into the staging directory, remembered by
/// its inode: a segment file is never written once made (a new one is a new file), so its
/// bytes are read once per process, not at every publish (840 MB at 1M items).
fn segment_checksum(path: &Path) -> Result<(u128, u64)> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    type Known = HashMap<(u64, u64, u64, i64, i64), u128>;
    static KNOWN: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
    let key = (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    );
    let lock = || KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sum) = lock().as_ref().and_then(|k| k.get(&key)) {
        return Ok((*sum, meta.size()));
    }
    let (sum, size) = file_checksum(path)?;
    let mut known = lock();
    let known = known.get_or_insert_with(HashMap::new);
    if known.len() >= 1024 {
        known.clear();
    }
    known.insert(key, sum);
    Ok((sum, size))
}

/// Upload the file at `path` to `at`: one put when small, parts otherwise. An upload that
/// fails part-way is aborted, and no manifest names it yet.
async fn upload(to: &dyn ObjectStore, at: &ObjPath, path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    if size <= PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading", path, e))?;
        to.put(at, PutPayload::from(bytes))
            .await
            .map_err(|e| os_error("uploading", at, e))?;
        return Ok(());
    }
    let mut parts = to
        .put_multipart(at)
        .await
        .map_err(|e| os_error("uploading", at, e))?;
    let sent = async {
        loop {
            let mut part = Vec::with_capacity(PART_BYTES);
            (&mut file)
                .take(PART_BYTES as u64)
                .read_to_end(&mut part)
                .map_err(|e| Error::io("reading", path, e))?;
            if part.is_empty() {
                break;
            }
            parts
                .put_part(PutPayload::from(part))
                .await
                .map_err(|e| os_error("uploading", at, e))?;
        }
        parts
            .complete()
            .await
            .map_err(|e| os_error("uploading", at, e))?;
        Ok::<(), Error>(())
    }
    .await;
    if sent.is_err() {
        // Best effort: an abandoned upload is invisible to readers either way.
        let _ = parts.abort().await;
    }
    sent
}
