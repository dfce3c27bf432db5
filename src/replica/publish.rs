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

/// Uploads in flight at once: enough to hide an object store's per-request latency (tens of
/// milliseconds on S3) behind the others, few enough to leave the link to the app.
const UPLOADS_AT_ONCE: usize = 8;

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
    /// Seconds the consistent copy took (writes waited that long).
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

/// Where the staging copy of a publish goes: a hidden directory beside the store (a backup may
/// not land inside the store it copies), unique to this process and moment.
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
/// the backups' own unfinished directories inside them. Any such directory is a leftover: the
/// store is open in this process only (its lock), and its publishes run one at a time.
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
        let (sum, size) = file_checksum(&path)?;
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
        // One listing instead of a HEAD per file. Content-addressed: an object of the right
        // size under its name holds these bytes (a replica checks the checksum anyway).
        let there = present(to, prefix).await?;
        let mut missing: Vec<&ManifestFile> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for f in &m.files {
            let at = under(prefix, &f.object);
            if there.get(at.as_ref()) != Some(&f.size) && seen.insert(&f.object) {
                missing.push(f);
            }
        }
        let uploaded = (missing.len(), missing.iter().map(|f| f.size).sum::<u64>());
        type Sending<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;
        let mut jobs: Vec<Sending<'_>> = Vec::with_capacity(missing.len());
        for f in missing {
            let (at, path) = (under(prefix, &f.object), staging.0.join(&f.path));
            jobs.push(Box::pin(async move { upload(to, &at, &path).await }));
        }
        let mut sends = futures::stream::iter(jobs).buffer_unordered(UPLOADS_AT_ONCE);
        while let Some(sent) = sends.next().await {
            sent?;
        }
        drop(sends);
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

/// The objects under `prefix/objects/` and their sizes, by location.
async fn present(
    to: &dyn ObjectStore,
    prefix: &ObjPath,
) -> Result<std::collections::HashMap<String, u64>> {
    use futures::StreamExt;
    let dir = under(prefix, "objects");
    let mut there = std::collections::HashMap::new();
    let mut listing = to.list(Some(&dir));
    while let Some(meta) = listing.next().await {
        match meta {
            Ok(meta) => {
                there.insert(meta.location.to_string(), meta.size);
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(os_error("listing", &dir, e)),
        }
    }
    Ok(there)
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
