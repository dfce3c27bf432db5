//! Publishing and following killed with SIGKILL at random moments: a manifest never names an
//! object that is missing or not whole, the next publish completes, and a replica killed while
//! it downloads opens afterwards on a whole generation, never a half-fetched one.
//!
//! Each runs twice: on a directory, and on a real S3-compatible server (moto). The checks read
//! what was published with their own code: the manifest's JSON with serde_json and each
//! object's checksum with xxhash directly, not through the library.

#![cfg(feature = "replication")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
#[path = "common/moto.rs"]
mod moto;
#[path = "common/slow.rs"]
mod slow;

use rand::{Rng, SeedableRng};
use recostore::replica::object_store::local::LocalFileSystem;
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::replica::object_store::ObjectStore;
use recostore::{Event, Item, ReplicaSource, Store};

fn items(n: usize, salt: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            Item::new(
                format!("item-{i}"),
                [
                    (format!("t:{}", (i + salt) % 97), 1.0),
                    (format!("c:{}", i % 13), 0.5),
                ],
            )
            .title(format!("a title long enough to take some room, number {i}"))
        })
        .collect()
}

fn build_leader(dir: &Path) {
    let store = Store::open(dir).expect("open");
    store.upsert_items(&items(3_000, 0)).expect("items");
    let events: Vec<Event> = (0..20_000u64)
        .map(|n| {
            Event::view(
                format!("user-{}", n % 300),
                format!("item-{}", n * 7 % 3_000),
                1_000 + n,
            )
        })
        .collect();
    store.record_events(&events).expect("events");
    store.rebuild().expect("rebuild");
}

/// The object store a test publishes to, named so a child process can reach it too:
/// `dir:<path>` or `s3:<port>` (bucket `shop` on a moto server).
fn target(name: &str) -> Arc<dyn ObjectStore> {
    match name.split_once(':') {
        Some(("dir", path)) => {
            std::fs::create_dir_all(path).expect("mkdir");
            Arc::new(LocalFileSystem::new_with_prefix(path).expect("local object store"))
        }
        Some(("s3", port)) => moto::s3(port.parse().expect("port"), "shop"),
        _ => panic!("unknown target {name}"),
    }
}

/// A fresh target of `kind` for one test, and the server behind it (kept alive by the test).
fn fresh(kind: &str, tmp: &Path) -> (String, Option<moto::Moto>) {
    match kind {
        "dir" => (format!("dir:{}", tmp.join("published").display()), None),
        _ => {
            let server = moto::Moto::start();
            server.create_bucket("shop");
            (format!("s3:{}", server.port), Some(server))
        }
    }
}

/// A source over `store` under `shop`, polled only when asked.
fn follow(store: Arc<dyn ObjectStore>) -> ReplicaSource {
    let mut source = ReplicaSource::new(store, ObjPath::from("shop"));
    source.poll_every = None;
    source
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
}

/// Every manifest under `shop/manifests`, checked with the test's own reading: the checksum
/// line, and every named object present with its size and xxh3-128. Returns the generations.
fn check_published(os: &dyn ObjectStore) -> Vec<u64> {
    use futures::TryStreamExt;
    use recostore::replica::object_store::ObjectStoreExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let get = |at: &str| -> Option<Vec<u8>> {
        rt.block_on(async { os.get(&ObjPath::from(at)).await?.bytes().await })
            .ok()
            .map(|b| b.to_vec())
    };
    let listed = rt
        .block_on(
            os.list(Some(&ObjPath::from("shop/manifests")))
                .try_collect::<Vec<_>>(),
        )
        .expect("list manifests");
    let mut gens = Vec::new();
    for meta in listed {
        let name = meta.location.to_string();
        if !name.ends_with(".json") {
            // A directory's staging files for a put in flight are not manifests.
            continue;
        }
        let text = String::from_utf8(get(&name).expect("manifest")).expect("utf-8");
        let (body, sum) = text
            .trim_end_matches('\n')
            .split_once('\n')
            .unwrap_or_else(|| panic!("{name}: not two lines: {text:?}"));
        assert_eq!(
            sum,
            format!(
                "xxh3-128 {:032x}",
                xxhash_rust::xxh3::xxh3_128(body.as_bytes())
            ),
            "{name}: a partial manifest is visible"
        );
        let m: serde_json::Value = serde_json::from_str(body).expect("manifest json");
        for f in m["files"].as_array().expect("files") {
            let object = format!("shop/{}", f["object"].as_str().expect("object"));
            let bytes =
                get(&object).unwrap_or_else(|| panic!("{name} names {object}, which is missing"));
            assert_eq!(
                bytes.len() as u64,
                f["size"].as_u64().expect("size"),
                "{name}: {f}"
            );
            assert_eq!(
                format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)),
                f["xxh3_128"].as_str().expect("sum"),
                "{name}: {f}"
            );
        }
        gens.push(m["generation"].as_u64().expect("generation"));
    }
    gens.sort_unstable();
    gens
}

/// Child: publish `RECOSTORE_PUB_SRC` to `RECOSTORE_PUB_OUT` over and over, with a write and a
/// fold between publishes so every generation uploads new objects.
#[test]
#[ignore = "entry point of the child process of `a_leader_killed_mid_publish_never_commits_a_partial_generation`"]
fn child_publisher() {
    let (Ok(src), Ok(out)) = (
        std::env::var("RECOSTORE_PUB_SRC"),
        std::env::var("RECOSTORE_PUB_OUT"),
    ) else {
        return;
    };
    let store = Store::open(&src).expect("child opens the leader");
    let os = target(&out);
    for round in 0usize.. {
        let report = store
            .publish(&*os, &ObjPath::from("shop"))
            .expect("publish");
        println!("ack {}", report.generation);
        store.upsert_items(&items(200, round + 1)).expect("write");
        if round.is_multiple_of(2) {
            store.rebuild().expect("fold");
        }
    }
}

#[test]
fn a_leader_killed_mid_publish_never_commits_a_partial_generation() {
    killed_publishers("dir");
}

#[test]
fn a_leader_killed_mid_publish_to_s3_never_commits_a_partial_generation() {
    killed_publishers("s3");
}

fn killed_publishers(kind: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("leader");
    build_leader(&src);
    let (published, _server) = fresh(kind, tmp.path());
    let os = target(&published);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut round = 0;
    let mut acked_max = 0;
    while Instant::now() < deadline || round < 4 {
        let envs = [
            ("RECOSTORE_PUB_SRC", src.display().to_string()),
            ("RECOSTORE_PUB_OUT", published.clone()),
        ];
        let wait = Duration::from_millis(rng.gen_range(30..1_200));
        let acked = common::run_child_and_kill("child_publisher", &envs, wait);
        let gens = check_published(&*os);
        for g in &acked {
            assert!(
                gens.contains(g),
                "round {round}: acknowledged generation {g} is not there: {gens:?}"
            );
        }
        acked_max = acked_max.max(acked.last().copied().unwrap_or(0));
        round += 1;
    }
    // The next publish completes, and a replica opens on the newest generation.
    let store = Store::open(&src).expect("leader reopens");
    let last = store
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish after the kills");
    assert!(last.generation > acked_max);
    let gens = check_published(&*os);
    assert_eq!(gens.last(), Some(&last.generation));
    // The killed publishes' staging copies are gone: only the store and what the test made.
    let mut beside: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    beside.retain(|n| n != "published");
    assert_eq!(beside, ["leader"], "leftovers beside the store");
    let want = store.similar_items("item-5", 10).expect("leader answers");
    let replica = Store::open_replica(tmp.path().join("replica"), follow(os)).expect("replica");
    assert_eq!(replica.status().generation, last.generation);
    assert_eq!(
        replica
            .store()
            .similar_items("item-5", 10)
            .expect("replica answers"),
        want
    );
    eprintln!(
        "{kind}: {round} publishers killed; {} generations committed",
        gens.len()
    );
}

/// Child: open a replica of `RECOSTORE_REP_PUB` in `RECOSTORE_REP_DIR` and say so.
#[test]
#[ignore = "entry point of the child process of `a_replica_killed_mid_download_resumes_and_serves_only_whole_generations`"]
fn child_follower() {
    let (Ok(published), Ok(dir)) = (
        std::env::var("RECOSTORE_REP_PUB"),
        std::env::var("RECOSTORE_REP_DIR"),
    ) else {
        return;
    };
    // Downloads slowed to about 40 ms an object, so that most kills land mid-download.
    let slow = slow::Slow {
        inner: target(&published),
        delay: Duration::from_millis(40),
    };
    let replica = Store::open_replica(&dir, follow(Arc::new(slow))).expect("child replica");
    println!("ack {}", replica.status().generation);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_replica_killed_mid_download_resumes_and_serves_only_whole_generations() {
    killed_replicas("dir");
}

#[test]
fn a_replica_killed_mid_download_from_s3_resumes_and_serves_only_whole_generations() {
    killed_replicas("s3");
}

fn killed_replicas(kind: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("leader");
    build_leader(&src);
    let (published, _server) = fresh(kind, tmp.path());
    let os = target(&published);
    let store = Store::open(&src).expect("leader");
    // What each generation answers, from the leader as it published it.
    let mut answers = std::collections::HashMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut round = 0usize;
    let (mut resumed, mut whole) = (0, 0);
    while Instant::now() < deadline || round < 4 {
        // A new generation every other round, so a resumed replica sometimes has a newer
        // one to fetch than the one it was killed fetching.
        if round.is_multiple_of(2) {
            store.upsert_items(&items(300, round + 1)).expect("write");
            store.rebuild().expect("fold");
            let g = store
                .publish(&*os, &ObjPath::from("shop"))
                .expect("publish")
                .generation;
            answers.insert(g, store.similar_items("item-5", 10).expect("answers"));
        }
        // Two rounds in a row share a replica directory: the second resumes the first's.
        let dir: PathBuf = tmp.path().join(format!("replica-{}", round / 2));
        let envs = [
            ("RECOSTORE_REP_PUB", published.clone()),
            ("RECOSTORE_REP_DIR", dir.display().to_string()),
        ];
        let wait = Duration::from_millis(rng.gen_range(20..900));
        let acked = common::run_child_and_kill("child_follower", &envs, wait);
        if acked.is_empty() {
            resumed += 1;
        }
        let replica = Store::open_replica(&dir, follow(os.clone()))
            .expect("a killed replica's directory opens");
        let g = replica.status().generation;
        assert_eq!(
            replica
                .store()
                .similar_items("item-5", 10)
                .expect("answers"),
            answers[&g],
            "round {round}: generation {g} does not answer as the leader did"
        );
        whole += 1;
        round += 1;
    }
    eprintln!(
        "{kind}: {round} replicas killed ({resumed} before they had opened); {whole} reopened whole"
    );
}
