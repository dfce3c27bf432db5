//! A store made of a published generation (`Store::restore_published`, `recostore
//! restore`): the failover path. The restored store holds exactly the leader's records (its
//! export equals the leader's), takes over publishing to the same prefix, and replicas follow
//! it; a non-empty target is refused, and a replica's own generation directory is refused as
//! a store with a pointer to the restore.
#![cfg(feature = "replication")]

#[path = "common/published.rs"]
mod published;

use std::path::Path;
use std::process::Command;

use published::{local, source};
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::{Ask, Error, Event, Item, Scenario, Store};

fn leader(dir: &Path) -> Store {
    let store = Store::open(dir).expect("open leader");
    let items: Vec<Item> = (0..3_000)
        .map(|i| {
            Item::new(
                format!("sku-{i}"),
                (0..6).map(|t| (format!("tag-{}", (i * 7 + t * 13) % 400), 1.0)),
            )
        })
        .collect();
    store.bulk_load_items(&items).expect("bulk load");
    let events: Vec<Event> = (0..4_000u64)
        .map(|k| {
            let (u, i) = (format!("u{}", k % 50), format!("sku-{}", (k * 17) % 3_000));
            if k % 3 == 0 {
                Event::purchase(u, i, 1, 3.0, 5_000 + k)
            } else {
                Event::view(u, i, 5_000 + k)
            }
        })
        .collect();
    store.record_events(&events).expect("events");
    store.rebuild().expect("fold");
    // Writes after the fold too: they live in the delta and the dirty log.
    store
        .upsert_items(&[Item::new("sku-1", [("tag-late", 1.0)])])
        .expect("late write");
    store
}

fn exported(store: &Store, to: &Path) -> Vec<(String, Vec<u8>)> {
    store.export_jsonl(to).expect("export");
    let mut files: Vec<_> = std::fs::read_dir(to)
        .expect("exported")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    files.sort();
    files
}

fn answers(store: &Store) -> Vec<String> {
    [
        Ask::new(Scenario::Similar {
            item: "sku-1".into(),
        }),
        Ask::new(Scenario::ForUser).user("u7"),
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
fn a_restored_store_is_the_leader_and_publishes_on_where_it_stopped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let old = leader(&tmp.path().join("old"));
    let os = local(&tmp.path().join("published"));
    let prefix = ObjPath::from("shop");
    old.publish(&*os, &prefix).expect("publish");
    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    let want_export = exported(&old, &tmp.path().join("x-old"));
    let want = answers(&old);
    old.close().expect("the old leader is gone");

    // A replica's generation directory is not a store, and says what to run instead.
    let gen_dir = tmp.path().join("replica/gens/1");
    let Err(err) = Store::open(&gen_dir) else {
        panic!("a replica's generation opened as a store");
    };
    assert!(matches!(err, Error::ReplicaGeneration { .. }), "{err}");
    assert!(err.to_string().contains("recostore restore"), "{err}");

    let report =
        Store::restore_published(&source(os.clone()), tmp.path().join("new")).expect("restore");
    assert_eq!(report.generation, 1);
    let new = Store::open(tmp.path().join("new")).expect("open the restored store");
    assert_eq!(exported(&new, &tmp.path().join("x-new")), want_export);
    assert_eq!(answers(&new), want);
    assert!(new.verify_deep().expect("verify").healthy());

    // The new leader writes and publishes to the same prefix; the replica follows it.
    new.upsert_items(&[Item::new("sku-new", [("tag-1", 1.0)])])
        .expect("a write on the new leader");
    let second = new
        .publish(&*os, &prefix)
        .expect("publish as the successor");
    assert_eq!(second.generation, 2);
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(answers(&replica.store()), answers(&new));
    assert!(replica.view().get_item("sku-new").is_some());
}

#[test]
fn a_restore_refuses_a_directory_that_is_not_empty_and_the_cli_restores() {
    let tmp = tempfile::tempdir().expect("tmp");
    let old = leader(&tmp.path().join("old"));
    let published = tmp.path().join("published");
    let os = local(&published);
    old.publish(&*os, &ObjPath::from("shop")).expect("publish");
    let want = answers(&old);

    let occupied = tmp.path().join("occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("keep.txt"), b"mine").expect("write");
    let err = Store::restore_published(&source(os.clone()), &occupied).expect_err("not empty");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(occupied.join("keep.txt")).expect("kept"),
        b"mine"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_recostore"))
        .arg("restore")
        .arg(format!("file://{}/shop", published.display()))
        .arg("--dir")
        .arg(tmp.path().join("cli"))
        .arg("--json")
        .output()
        .expect("run recostore restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["generation"], 1, "{report}");
    let restored = Store::open(tmp.path().join("cli")).expect("open");
    assert_eq!(answers(&restored), want);
    // Nothing of the restore's work is left beside it.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
