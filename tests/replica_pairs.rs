//! What a generation ships: the store's pairs as pair files cut where the keys say, so a small
//! change uploads a small part of the store, and a replica rebuilds exactly the leader's
//! records from them. Checked against the leader's own export, against manifests read here
//! with the test's own JSON and xxh3, and against pair files that lie.

#![cfg(feature = "replication")]

#[path = "common/published.rs"]
mod published;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use published::{local, plant_manifest, source};
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::{Ask, Error, Event, Item, Scenario, Store};

fn catalogue(n: usize, salt: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            Item::new(
                format!("sku-{i:06}"),
                (0..12).map(|t| (format!("tag-{:04}", (i * 31 + t * 7 + salt) % 2000), 1.0)),
            )
        })
        .collect()
}

/// A leader with a bulk-loaded catalogue, behaviour and one fold: several megabytes of pairs.
fn leader(dir: &Path, n: usize) -> Store {
    let store = Store::open(dir).expect("open leader");
    store.bulk_load_items(&catalogue(n, 0)).expect("bulk load");
    let events: Vec<Event> = (0..6_000u64)
        .map(|k| {
            let (user, item) = (
                format!("u{}", k % 300),
                format!("sku-{:06}", (k * 13) % n as u64),
            );
            match k % 4 {
                0 => Event::purchase(user, item, 1, 5.0, 10_000 + k),
                _ => Event::view(user, item, 10_000 + k),
            }
        })
        .collect();
    store.record_events(&events).expect("events");
    store.rebuild().expect("rebuild");
    store
}

/// A manifest's files, read here: (path, object, size).
fn manifest(published: &Path, generation: u64) -> Vec<(String, String, u64)> {
    let text = std::fs::read_to_string(
        published
            .join("shop/manifests")
            .join(format!("{generation:020}.json")),
    )
    .expect("manifest");
    let (body, sum) = text.trim_end().split_once('\n').expect("two lines");
    assert_eq!(
        sum,
        format!(
            "xxh3-128 {:032x}",
            xxhash_rust::xxh3::xxh3_128(body.as_bytes())
        )
    );
    let json: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(json["format"], "recostore-manifest/2");
    json["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_string(),
                f["object"].as_str().expect("object").to_string(),
                f["size"].as_u64().expect("size"),
            )
        })
        .collect()
}

/// Every file the store exports, by name, with its bytes: the records as the store reads them.
fn exported(store: &Store, to: &Path) -> Vec<(String, Vec<u8>)> {
    store.export_jsonl(to).expect("export");
    let mut files: Vec<_> = std::fs::read_dir(to)
        .expect("exported")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

fn answers(store: &Store) -> Vec<String> {
    [
        Ask::new(Scenario::Similar {
            item: "sku-000003".into(),
        }),
        Ask::new(Scenario::ForUser).user("u5"),
        Ask::new(Scenario::Trending),
    ]
    .iter()
    .map(|a| {
        format!(
            "{:?}",
            store.recommend(&a.clone().k(10)).expect("recommend")
        )
    })
    .collect()
}

#[test]
fn a_small_change_ships_a_small_part_and_the_replica_rebuilds_the_leaders_records() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"), 60_000);
    let published = tmp.path().join("published");
    let os = local(&published);
    let prefix = ObjPath::from("shop");
    let first = store.publish(&*os, &prefix).expect("publish");
    let one = manifest(&published, 1);
    let pair_files = one.iter().filter(|f| f.0.starts_with("pairs/")).count();
    assert!(
        pair_files >= 8,
        "{pair_files} pair files: too few for the test to mean anything"
    );
    assert!(
        !one.iter().any(|f| f.0.starts_with("db/")),
        "sled's own files are not shipped"
    );

    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    assert_eq!(
        exported(&replica.store(), &tmp.path().join("x-replica-1")),
        exported(&store, &tmp.path().join("x-leader-1"))
    );
    assert!(replica.store().verify_deep().expect("verify").healthy());

    // Nothing changed: nothing but the manifest goes up.
    let same = store.publish(&*os, &prefix).expect("publish unchanged");
    assert_eq!((same.objects_uploaded, same.bytes_uploaded), (0, 0));

    // One item re-tagged and a few events: a few pair files, never the store.
    store
        .upsert_items(&[Item::new("sku-000007", [("tag-new", 1.0)])])
        .expect("re-tag");
    store
        .record_events(&[Event::view("u1", "sku-000007", 20_000)])
        .expect("event");
    let third = store.publish(&*os, &prefix).expect("publish a change");
    let before: BTreeSet<String> = manifest(&published, 2).into_iter().map(|f| f.1).collect();
    let new: Vec<_> = manifest(&published, 3)
        .into_iter()
        .filter(|f| !before.contains(&f.1))
        .collect();
    let new_bytes: u64 = new.iter().map(|f| f.2).sum();
    assert_eq!(
        third.bytes_uploaded, new_bytes,
        "the report says what went up"
    );
    assert!(
        new.iter().all(|f| f.0.starts_with("pairs/")),
        "without a fold, segment files are shared: {new:?}"
    );
    assert!(
        new_bytes * 5 < first.bytes_total,
        "a change of one item shipped {new_bytes} of {} bytes: {new:?}",
        first.bytes_total
    );

    assert_eq!(replica.poll().expect("poll"), Some(3));
    assert_eq!(
        exported(&replica.store(), &tmp.path().join("x-replica-3")),
        exported(&store, &tmp.path().join("x-leader-3"))
    );
    assert_eq!(answers(&replica.store()), answers(&store));
    assert!(replica.store().verify_deep().expect("verify").healthy());
}

/// Put `bytes` up as an object, and return its manifest entry at `path`.
fn plant_object(published: &Path, path: &str, bytes: &[u8]) -> serde_json::Value {
    let sum = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes));
    let object = format!("objects/{sum}-{}", bytes.len());
    std::fs::write(published.join("shop").join(&object), bytes).expect("object");
    serde_json::json!({"path": path, "object": object, "size": bytes.len(), "xxh3_128": sum})
}

fn pair(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

#[test]
fn pair_files_that_pass_their_checksum_but_lie_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"), 2_000);
    let published = tmp.path().join("published");
    let os = local(&published);
    store
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish");
    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    let want = answers(&replica.store());

    let mut ascending = b"RSPAIRS1".to_vec();
    pair(&mut ascending, b"A", b"1");
    pair(&mut ascending, b"B", b"2");
    let mut descending = b"RSPAIRS1".to_vec();
    pair(&mut descending, b"B", b"2");
    pair(&mut descending, b"A", b"1");
    let mut overlong = b"RSPAIRS1".to_vec();
    overlong.extend_from_slice(&u32::MAX.to_le_bytes());
    overlong.extend_from_slice(b"key");
    let cases: Vec<(&str, Vec<serde_json::Value>)> = vec![
        (
            "no magic",
            vec![plant_object(
                &published,
                "pairs/00000000",
                b"not pairs at all",
            )],
        ),
        (
            "keys out of order",
            vec![plant_object(&published, "pairs/00000000", &descending)],
        ),
        (
            "a length past the end",
            vec![plant_object(&published, "pairs/00000000", &overlong)],
        ),
        (
            "files out of key order",
            vec![
                plant_object(&published, "pairs/00000000", &descending[..8 + 10]),
                plant_object(&published, "pairs/00000001", &ascending[..8 + 10]),
            ],
        ),
        (
            "only magic",
            vec![plant_object(&published, "pairs/00000000", b"RSPAIRS1")],
        ),
        // Whole and in order, but no store's records: it would open as a new, empty store.
        (
            "records of no store",
            vec![plant_object(&published, "pairs/00000000", &ascending)],
        ),
        ("no pair file at all", vec![]),
    ];
    for (why, files) in cases {
        let body = serde_json::json!({
            "format": "recostore-manifest/2", "generation": 2,
            "leader": format!("{:08x}", 0), "published_at_ms": 1, "segment_generation": 0,
            "files": files,
        });
        plant_manifest(&published, 2, &body.to_string());
        let err = replica.poll().expect_err(why);
        // Refused as a bad object, or (records no store of this version wrote) unreadable.
        assert!(
            matches!(err, Error::BadObject { .. } | Error::CorruptRecord { .. }),
            "{why}: {err:?}"
        );
        assert_eq!(replica.status().generation, 1, "{why}");
        assert_eq!(answers(&replica.store()), want, "{why}");
    }

    // A generation that failed to open is not left for a restart to take as whole: reopened
    // with the object store gone, the replica serves the last good generation, stale.
    drop(replica);
    std::fs::rename(&published, tmp.path().join("gone")).expect("take the store away");
    let replica = Store::open_replica(tmp.path().join("replica"), source(os))
        .expect("reopens on its last good generation");
    assert_eq!(replica.status().generation, 1);
    assert!(replica.status().stale);
    assert_eq!(answers(&replica.store()), want);
}

#[test]
fn a_pair_file_damaged_in_the_replicas_cache_is_fetched_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"), 20_000);
    let published = tmp.path().join("published");
    let os = local(&published);
    let prefix = ObjPath::from("shop");
    store.publish(&*os, &prefix).expect("publish");
    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    drop(replica);
    // Damage every cached pair file while no replica has it open (bit rot, a bad disk).
    let cache = tmp.path().join("replica");
    let cached: Vec<(PathBuf, Vec<u8>)> = manifest(&published, 1)
        .into_iter()
        .filter(|f| f.0.starts_with("pairs/"))
        .map(|f| {
            let p = cache.join(f.1);
            let good = std::fs::read(&p).expect("read");
            (p, good)
        })
        .collect();
    assert!(!cached.is_empty());
    for (p, good) in &cached {
        let mut bytes = good.clone();
        let at = bytes.len() - 1;
        bytes[at] ^= 1;
        std::fs::write(p, bytes).expect("write");
    }
    // The reopen notices, fetches again and serves the leader's records.
    let replica = Store::open_replica(tmp.path().join("replica"), source(os.clone()))
        .expect("a replica with a damaged cache reopens");
    assert_eq!(replica.status().generation, 1);
    assert_eq!(answers(&replica.store()), answers(&store));
    for (p, good) in &cached {
        assert_eq!(&std::fs::read(p).expect("fetched again"), good);
    }
    drop(replica);

    // Without the object store, the damage is reported, never served.
    for (p, _) in &cached {
        let mut bytes = std::fs::read(p).expect("read");
        bytes[9] ^= 1;
        std::fs::write(p, bytes).expect("write");
    }
    std::fs::rename(&published, tmp.path().join("gone")).expect("take the store away");
    let err = Store::open_replica(tmp.path().join("replica"), source(os))
        .expect_err("damaged and nowhere to fetch from");
    assert!(err.to_string().contains("damaged on this disk"), "{err}");
}

#[test]
fn a_generation_of_the_first_format_is_still_followed() {
    // What a leader of the first format published: a backup's files as they are, sled's
    // included, each under its checksum, and a `recostore-manifest/1` manifest.
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"), 2_000);
    let backup = tmp.path().join("backup");
    store.backup(&backup).expect("backup");
    let published = tmp.path().join("published");
    std::fs::create_dir_all(published.join("shop/objects")).expect("mkdir");
    let mut paths = Vec::new();
    let mut stack = vec![backup.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let files: Vec<serde_json::Value> = paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&backup)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            plant_object(&published, &rel, &std::fs::read(p).expect("read"))
        })
        .collect();
    let body = serde_json::json!({
        "format": "recostore-manifest/1", "generation": 1,
        "leader": "0000abcd", "published_at_ms": 1, "segment_generation": 1,
        "files": files,
    });
    plant_manifest(&published, 1, &body.to_string());
    let replica = Store::open_replica(tmp.path().join("replica"), source(local(&published)))
        .expect("a first-format generation opens");
    assert_eq!(answers(&replica.store()), answers(&store));
    assert_eq!(
        exported(&replica.store(), &tmp.path().join("x-replica")),
        exported(&store, &tmp.path().join("x-leader"))
    );
}
