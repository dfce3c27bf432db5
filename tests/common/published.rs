//! What the replication tests share: a local directory as the object store, a replica source
//! that polls only when asked, and a planted manifest (the format written out here, not with
//! the crate's encoder, so the tests check the crate against their own reading of FORMAT.md).

// Each test binary that includes this uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use recostore::replica::object_store::local::LocalFileSystem;
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::replica::object_store::ObjectStore;
use recostore::ReplicaSource;

/// A directory as an object store, created if missing.
pub fn local(dir: &Path) -> Arc<dyn ObjectStore> {
    std::fs::create_dir_all(dir).expect("mkdir");
    Arc::new(LocalFileSystem::new_with_prefix(dir).expect("local object store"))
}

/// The prefix `shop` of `store`, polled only when the test asks.
pub fn source(store: Arc<dyn ObjectStore>) -> ReplicaSource {
    let mut source = ReplicaSource::new(store, ObjPath::from("shop"));
    source.poll_every = None;
    source
}

/// Write `body` as manifest `generation` under `published/shop`, with its checksum line.
pub fn plant_manifest(published: &Path, generation: u64, body: &str) {
    let dir = published.join("shop").join("manifests");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let sum = xxhash_rust::xxh3::xxh3_128(body.as_bytes());
    std::fs::write(
        dir.join(format!("{generation:020}.json")),
        format!("{body}\nxxh3-128 {sum:032x}\n"),
    )
    .expect("plant");
}

/// Run a future on a runtime of the test's own.
pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The locations of every object under `prefix`.
pub fn list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let p = ObjPath::from(prefix);
    block(async {
        use futures::TryStreamExt;
        store.list(Some(&p)).try_collect::<Vec<_>>().await
    })
    .expect("list")
    .into_iter()
    .map(|m| m.location.to_string())
    .collect()
}
