//! Past one machine: a leader publishes generations of its store to object storage, and app
//! replicas follow them.
//!
//! The leader ([`crate::Store::publish`]) writes its state as of one instant, with writes
//! held (records, behaviour state, plugins, slots as pair files, FORMAT.md "Pair files"; the
//! segment files; the plugin modules), uploads each file under a name made of its checksum
//! and size, skipping those already there, and then commits a manifest naming every file with
//! a conditional put ([`Manifest`], FORMAT.md "Published generations"). A replica
//! ([`crate::Store::open_replica`]) polls the manifests, downloads the objects it lacks into a
//! cache, verifies each one's size and checksum, assembles the generation in a directory of
//! its own, opens it read-only on its pair files (mapped from the cache into a map shared with
//! the generation before, `pair_set`), and switches to it with one atomic swap: queries in
//! flight finish on the old generation, new ones run on the new.
//!
//! All object-store traffic goes through the `object_store` crate (S3, GCS, Azure, a local
//! directory, memory), whose futures run here on one private runtime of the process, entered
//! from a thread of their own (`block_on`), so the calls are plain blocking functions whether
//! or not the app runs a tokio runtime itself.
//!
//! What a generation costs: the pairs are walked whole (writes held meanwhile), but only pair
//! files whose bytes changed are uploaded, and a replica reads only those. Segment files are
//! shared between generations until the next fold, which ships them whole. bench/RESULTS.md
//! ("Replicas") has the figures.

mod follow;
mod pair_set;
mod publish;
mod publisher;
mod restore;

use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub use crate::manifest::{Manifest, ManifestFile, MANIFEST_FORMAT};
pub use follow::{Replica, ReplicaSource, ReplicaStatus};
/// The object-store crate this version is built against, so an app builds its `ObjectStore`
/// (credentials, endpoints, retries) with the same types.
pub use object_store;
pub(crate) use publish::publish;
pub use publish::{PublishOptions, PublishReport};
pub use publisher::{Publisher, PublisherStatus};
pub(crate) use restore::restore;
pub use restore::RestoreReport;

use crate::error::{Error, Result};
use crate::manifest;

/// The one runtime every object-store call of the process runs on. One, and never dropped:
/// an `ObjectStore` client keeps HTTP connections in a pool, and each connection's task lives
/// on the runtime that opened it. With a runtime per call (as before 2026-12-06), a call that
/// reused a connection the previous call had opened found its task gone with that runtime
/// ("runtime dropped the dispatch task"): two leaders publishing at once through one client
/// failed that way about one run in five.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            // Two workers drive the connections, so calls from several threads (a
            // publisher, a replica's poll, an app's own publish) make progress at once.
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("recostore-object-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Error::io(
                "starting the object-store runtime",
                "",
                std::io::Error::other(e.clone()),
            )
        })
}

/// Run `work` to completion on the process's object-store runtime ([`runtime`]), from a
/// thread of its own. A runtime cannot be entered from inside another one's worker, and an app
/// that embeds the store may well be running one; a thread of our own sidesteps both that and
/// any deadlock with the app's executor.
pub(crate) fn block_on<F>(work: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || Ok(rt.block_on(work)));
        handle.join().unwrap_or_else(|panic| {
            Err(Error::ObjectStore {
                action: "running",
                location: String::new(),
                source: crate::error::panic_text(&panic).into(),
            })
        })
    })
}

/// An object store and a prefix from an address: `s3://bucket/prefix` (S3 or an
/// S3-compatible server, configured by the `AWS_*` environment variables that
/// `object_store`'s `AmazonS3Builder` knows, `AWS_ENDPOINT` and `AWS_ALLOW_HTTP` among them),
/// `gs://bucket/prefix` (GCS, `GOOGLE_*`), `az://container/prefix` or
/// `abfs://container@account.dfs.core.windows.net/prefix` (Azure Blob Storage, `AZURE_*`),
/// `file:///abs/dir`, or `memory:///`. A plain path (`/srv/published`, `./pub`) is a local
/// directory, created if missing.
pub fn object_store_from_url(
    address: &str,
) -> Result<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)> {
    let refused = |reason: String| Error::BadAddress {
        address: address.to_string(),
        reason,
    };
    let url = match url::Url::parse(address) {
        Ok(url) => url,
        Err(_) => {
            // A path: make it a file URL over an absolute directory.
            let path = Path::new(address);
            std::fs::create_dir_all(path)
                .map_err(|e| Error::io("creating the publish directory", path, e))?;
            let abs = path
                .canonicalize()
                .map_err(|e| Error::io("resolving", path, e))?;
            url::Url::from_directory_path(&abs)
                .map_err(|()| refused(format!("{} is not a usable directory", abs.display())))?
        }
    };
    if url.scheme() == "file" {
        // `object_store` needs the directory to exist; a missing one is created, as a
        // publish to a new bucket prefix needs nothing first.
        if let Ok(path) = url.to_file_path() {
            std::fs::create_dir_all(&path)
                .map_err(|e| Error::io("creating the publish directory", &path, e))?;
        }
    }
    // Cloud stores take their settings from the environment, as their own tools do, each
    // builder reading the names it knows (`object_store`'s config keys, case aside):
    // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT (an S3-compatible
    // server), AWS_ALLOW_HTTP; GOOGLE_SERVICE_ACCOUNT (a key file), GOOGLE_BUCKET;
    // AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_USE_EMULATOR, …
    let settings = std::env::vars().filter(|(k, _)| {
        k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
    });
    let (store, prefix) = object_store::parse_url_opts(&url, settings).map_err(|e| {
        refused(format!(
            "not an object store this build can reach ({e}); use s3://bucket/prefix (settings from the AWS_* environment), gs://bucket/prefix (GOOGLE_*), az://container/prefix (AZURE_*), file:///dir, a path, or memory:///"
        ))
    })?;
    Ok((Arc::from(store), prefix))
}

/// The xxh3-128 and size of the file at `path`, read once in 1 MiB pieces.
pub(crate) fn file_checksum(path: &Path) -> Result<(u128, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            return Ok((h.digest128(), size));
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
}

/// `prefix/rest` as an object path.
pub(crate) fn under(prefix: &object_store::path::Path, rest: &str) -> object_store::path::Path {
    rest.split('/').fold(prefix.clone(), |p, part| p.join(part))
}

/// Wrap an object-store error.
pub(crate) fn os_error(
    action: &'static str,
    location: &object_store::path::Path,
    e: object_store::Error,
) -> Error {
    Error::ObjectStore {
        action,
        location: location.to_string(),
        source: Box::new(e),
    }
}

/// The newest generation under `prefix` and its manifest, checked (`None`: none yet).
pub(crate) async fn newest(
    store: &dyn object_store::ObjectStore,
    prefix: &object_store::path::Path,
) -> Result<Option<Manifest>> {
    use futures::StreamExt;
    let dir = under(prefix, "manifests");
    let mut listing = store.list(Some(&dir));
    let mut best: Option<u64> = None;
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| os_error("listing", &dir, e))?;
        if let Some(g) = meta.location.filename().and_then(manifest::generation_of) {
            best = best.max(Some(g));
        }
    }
    let Some(generation) = best else {
        return Ok(None);
    };
    let at = under(prefix, &manifest::manifest_name(generation));
    let bytes = object_store::ObjectStoreExt::get(store, &at)
        .await
        .map_err(|e| os_error("reading", &at, e))?
        .bytes()
        .await
        .map_err(|e| os_error("reading", &at, e))?;
    Manifest::decode(at.as_ref(), &bytes, generation).map(Some)
}

/// What a publish of a store would hold, in brief: two equal versions publish the same
/// records, behaviour, plugins and slots, so a periodic publisher skips the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreVersion {
    /// The newest write's sequence number (records and events).
    seq: u64,
    /// The segment generation (a fold changes the files, not the records).
    generation: u64,
    /// Each plugin's name, version, previous version and whether it is disabled.
    plugins: Vec<(String, u32, Option<u32>, bool)>,
    /// Each slot's routing, as text.
    slots: String,
}

impl StoreVersion {
    /// The version of `store` now.
    pub fn of(store: &crate::Store) -> StoreVersion {
        let snap = store.snapshot();
        let plugins = store.plugins();
        StoreVersion {
            seq: snap.seq,
            generation: snap.segment.generation(),
            plugins: plugins
                .list()
                .into_iter()
                .map(|p| (p.name, p.version, p.previous, p.disabled.is_some()))
                .collect(),
            slots: format!("{:?}", plugins.slots()),
        }
    }
}
