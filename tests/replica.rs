//! A leader publishes to object storage (a local directory through `object_store`), replicas
//! follow: they answer as the leader did when it published, switch generations atomically,
//! refuse writes, and keep their last verified generation through corrupted, truncated or
//! unreachable objects; two leaders on one prefix never both win.

#![cfg(feature = "replication")]

use std::path::Path;
use std::sync::Arc;

#[path = "common/published.rs"]
mod published;
#[path = "common/slow.rs"]
mod slow;

use published::{local, plant_manifest, source};
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::replica::object_store::ObjectStore;
use recostore::{Ask, Error, Event, Item, Replica, Scenario, Store};

fn items(n: usize, salt: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            Item::new(
                format!("item-{i}"),
                [
                    (format!("t:{}", (i + salt) % 37), 1.0),
                    (format!("c:{}", i % 11), 0.5),
                    (format!("b:{}", (i * 7 + salt) % 5), 0.25),
                ],
            )
        })
        .collect()
}

fn events(users: usize, n: u64, items: usize) -> Vec<Event> {
    (0..n)
        .map(|k| {
            let user = format!("user-{}", k as usize % users);
            let item = format!("item-{}", (k as usize * 13) % items);
            if k % 5 == 0 {
                Event::purchase(user, item, 1, 9.5, 1_000 + k)
            } else {
                Event::view(user, item, 1_000 + k)
            }
        })
        .collect()
}

/// A store with items, users' events and one fold.
fn leader(dir: &Path) -> Store {
    let store = Store::open(dir).expect("open leader");
    store.upsert_items(&items(400, 0)).expect("items");
    store
        .record_events(&events(40, 4_000, 400))
        .expect("events");
    store.rebuild().expect("rebuild");
    store
}

/// What the tests compare a replica with its leader on: several scenarios' answers.
fn answers(store: &Store) -> Vec<String> {
    let asks = [
        Ask::new(Scenario::Similar {
            item: "item-3".into(),
        })
        .k(8),
        Ask::new(Scenario::ForUser).user("user-5").k(8),
        Ask::new(Scenario::Together {
            item: "item-13".into(),
        })
        .k(8),
        Ask::new(Scenario::Trending).k(8),
    ];
    asks.iter()
        .map(|a| {
            let got = store.recommend(a).expect("recommend");
            got.iter()
                .map(|r| format!("{}:{:.6}", r.id, r.score))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Every object file under the published directory.
fn objects(published: &Path) -> Vec<std::path::PathBuf> {
    let dir = published.join("shop").join("objects");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("objects")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_replica_answers_as_its_leader_and_follows_the_next_generation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let os = local(&tmp.path().join("published"));
    let prefix = ObjPath::from("shop");

    let first = store.publish(&*os, &prefix).expect("publish");
    assert_eq!(first.generation, 1);
    assert_eq!(first.objects_uploaded, first.files);
    assert_eq!(first.bytes_uploaded, first.bytes_total);
    let want_1 = answers(&store);

    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("open replica");
    assert_eq!(replica.status().generation, 1);
    assert_eq!(answers(&replica.store()), want_1);
    assert_eq!(replica.store().stats().items, store.stats().items);
    assert_eq!(replica.store().stats().events, store.stats().events);

    // Writes on the replica are refused, by type, and change nothing.
    let r = replica.store();
    let refused = [
        r.upsert_items(&items(1, 9)).err(),
        r.record_events(&events(1, 1, 400)).err(),
        r.delete_item("item-1").err(),
        r.rebuild().err(),
    ];
    for e in refused {
        assert!(
            matches!(e, Some(Error::ReadOnlyReplica { .. })),
            "a write on a replica: {e:?}"
        );
    }
    assert_eq!(answers(&replica.store()), want_1);

    // A second publish with nothing folded: the segment is already there, so fewer bytes go.
    store.upsert_items(&items(40, 3)).expect("re-tag 40 items");
    store
        .record_events(&events(40, 500, 400))
        .expect("more events");
    let before = replica.view();
    let second = store.publish(&*os, &prefix).expect("publish again");
    assert_eq!(second.generation, 2);
    assert!(
        second.bytes_uploaded < second.bytes_total,
        "the unchanged segment is not sent again: {second:?}"
    );
    let want_2 = answers(&store);
    assert_ne!(want_1, want_2, "the writes must change an answer");

    let served = replica.store().latency_stats().count;
    assert!(served > 0);
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(
        replica.store().latency_stats().count,
        served,
        "the query figures carry on across a switch"
    );
    assert_eq!(answers(&replica.store()), want_2);
    let st = replica.status();
    assert_eq!((st.generation, st.behind, st.stale), (2, 0, false));
    assert!(st.last_poll_ok_ms.is_some());
    // A view taken before the switch still answers from generation 1.
    let old = before
        .recommend(&Ask::new(Scenario::ForUser).user("user-5").k(8))
        .expect("old view");
    assert_eq!(
        old.iter()
            .map(|r| format!("{}:{:.6}", r.id, r.score))
            .collect::<Vec<_>>()
            .join(","),
        want_1[1]
    );
    assert_eq!(replica.poll().expect("poll"), None, "nothing newer");

    // A reopened replica serves the newest generation; the old one's files are gone.
    drop((replica, before));
    let replica = Store::open_replica(tmp.path().join("replica"), source(os)).expect("reopen");
    assert_eq!(replica.status().generation, 2);
    assert_eq!(answers(&replica.store()), want_2);
    let gens: Vec<_> = std::fs::read_dir(tmp.path().join("replica").join("gens"))
        .expect("gens")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(gens, vec!["2".to_string()]);
}

#[test]
fn a_background_poll_follows_without_being_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let os = local(&tmp.path().join("published"));
    let prefix = ObjPath::from("shop");
    store.publish(&*os, &prefix).expect("publish");
    let mut src = source(os.clone());
    src.poll_every = Some(std::time::Duration::from_millis(20));
    let replica = Store::open_replica(tmp.path().join("replica"), src).expect("replica");
    store.upsert_items(&items(10, 5)).expect("write");
    store.publish(&*os, &prefix).expect("publish");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while replica.status().generation < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "never followed: {:?}",
            replica.status()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(answers(&replica.store()), answers(&store));
}

/// Publish a second generation whose new objects are damaged by `damage`; the replica must
/// refuse it and keep generation 1, and recover once the damaged objects are removed and the
/// leader publishes again.
fn refuses_damaged(damage: impl Fn(&Path)) {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let published = tmp.path().join("published");
    let os = local(&published);
    let prefix = ObjPath::from("shop");
    store.publish(&*os, &prefix).expect("publish");
    let old: std::collections::HashSet<_> = objects(&published).into_iter().collect();
    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    let want_1 = answers(&replica.store());

    store.upsert_items(&items(30, 7)).expect("write");
    store.rebuild().expect("fold, so the segment is new too");
    store.publish(&*os, &prefix).expect("publish");
    let new: Vec<_> = objects(&published)
        .into_iter()
        .filter(|p| !old.contains(p))
        .collect();
    assert!(!new.is_empty());
    for p in &new {
        damage(p);
    }
    let err = replica
        .poll()
        .expect_err("a damaged generation must be refused");
    assert!(matches!(err, Error::BadObject { .. }), "{err}");
    let st = replica.status();
    assert_eq!((st.generation, st.stale), (1, true), "{st:?}");
    assert!(st
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("verification"));
    assert_eq!(answers(&replica.store()), want_1);

    // The operator removes the damaged objects; the leader's next publish uploads them again.
    for p in &new {
        std::fs::remove_file(p).expect("remove damaged object");
    }
    store.publish(&*os, &prefix).expect("publish again");
    assert_eq!(replica.poll().expect("poll"), Some(3));
    assert_eq!(answers(&replica.store()), answers(&store));
    assert!(!replica.status().stale);
}

#[test]
fn a_corrupted_object_is_refused_and_the_last_good_generation_serves() {
    refuses_damaged(|p| {
        let mut bytes = std::fs::read(p).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(p, bytes).expect("write");
    });
}

#[test]
fn a_truncated_object_is_refused_and_the_last_good_generation_serves() {
    refuses_damaged(|p| {
        let len = std::fs::metadata(p).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open");
        f.set_len(len / 2).expect("truncate");
    });
}

#[test]
fn an_unreachable_store_leaves_the_replica_serving_and_stale_until_it_returns() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let published = tmp.path().join("published");
    let os = local(&published);
    let prefix = ObjPath::from("shop");
    store.publish(&*os, &prefix).expect("publish");
    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    let want = answers(&replica.store());

    // The prefix's manifests become unreadable: a file where the directory was.
    let manifests = published.join("shop").join("manifests");
    let aside = tmp.path().join("manifests-aside");
    std::fs::rename(&manifests, &aside).expect("move aside");
    std::fs::write(&manifests, b"not a directory").expect("plant a file");
    assert!(replica.poll().is_err());
    let st = replica.status();
    assert!(st.stale && st.last_error.is_some(), "{st:?}");
    assert_eq!(answers(&replica.store()), want);

    // A replica opened now serves what its directory verified before, stale.
    drop(replica);
    let replica = Store::open_replica(tmp.path().join("replica"), source(os.clone()))
        .expect("open while unreachable");
    assert!(replica.status().stale);
    assert_eq!(answers(&replica.store()), want);

    // The store returns with a new generation: caught up, no longer stale.
    std::fs::remove_file(&manifests).expect("remove the file");
    std::fs::rename(&aside, &manifests).expect("put back");
    store.upsert_items(&items(5, 1)).expect("write");
    store.publish(&*os, &prefix).expect("publish");
    assert_eq!(replica.poll().expect("poll"), Some(2));
    let st = replica.status();
    assert!(!st.stale && st.last_error.is_none(), "{st:?}");
    assert_eq!(answers(&replica.store()), answers(&store));
}

#[test]
fn two_leaders_on_one_prefix_never_both_win() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = leader(&tmp.path().join("a"));
    let b = leader(&tmp.path().join("b"));
    let os = local(&tmp.path().join("published"));
    let prefix = ObjPath::from("shop");
    // At once: both see an empty prefix, both try to commit generation 1.
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.publish(&*os, &prefix));
        let tb = s.spawn(|| b.publish(&*os, &prefix));
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "a: {ra:?}\nb: {rb:?}");
    let lost = if ra.is_ok() { &rb } else { &ra };
    assert!(
        matches!(
            lost,
            Err(Error::PublishConflict { generation: 1, .. } | Error::ForeignLeader { .. })
        ),
        "{lost:?}"
    );
    let (winner, loser) = if ra.is_ok() { (&a, &b) } else { (&b, &a) };
    // Later, the loser is refused before it copies anything; the winner goes on.
    let err = loser.publish(&*os, &prefix).expect_err("foreign prefix");
    assert!(
        matches!(err, Error::ForeignLeader { generation: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("another prefix"), "{err}");
    assert_eq!(winner.publish(&*os, &prefix).expect("winner").generation, 2);
    let replica = Store::open_replica(tmp.path().join("replica"), source(os)).expect("replica");
    assert_eq!(answers(&replica.store()), answers(winner));
}

#[test]
fn a_replica_of_nothing_says_what_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let os = local(&tmp.path().join("published"));
    let err = Store::open_replica(tmp.path().join("replica"), source(os)).expect_err("empty");
    assert!(matches!(err, Error::NothingPublished { .. }), "{err}");
    assert!(
        err.to_string().contains("publish from the leader first"),
        "{err}"
    );
}

#[test]
fn one_directory_serves_one_replica() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let os = local(&tmp.path().join("published"));
    store
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish");
    let _first: Replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("first");
    let err = Store::open_replica(tmp.path().join("replica"), source(os)).expect_err("second");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}

#[test]
fn a_hostile_manifest_writes_nothing_outside_the_replica_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let published = tmp.path().join("published");
    let os = local(&published);
    store
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish");
    let replica =
        Store::open_replica(tmp.path().join("replica"), source(os.clone())).expect("replica");
    let want = answers(&replica.store());
    let victim = tmp.path().join("victim");

    // An object whose checksum and size are right, so only the path is wrong.
    let payload = b"overwritten";
    let sum = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(payload));
    let object = format!("objects/{sum}-{}", payload.len());
    std::fs::write(published.join("shop").join(&object), payload).expect("object");
    let hostile = |path: &str| {
        serde_json::json!({
            "format": "recostore-manifest/1", "generation": 2, "leader": "00000000",
            "published_at_ms": 1, "segment_generation": 1,
            "files": [{"path": path, "object": object, "size": payload.len(), "xxh3_128": sum}]
        })
        .to_string()
    };
    // From `replica/gens/2.partial/`, three levels up is the test directory.
    let escape = "../../../victim".to_string();
    for path in [
        escape.as_str(),
        victim.to_str().expect("utf-8"),
        "a/../../x",
    ] {
        plant_manifest(&published, 2, &hostile(path));
        let err = replica.poll().expect_err("a hostile manifest is refused");
        assert!(matches!(err, Error::BadObject { .. }), "{path}: {err}");
        assert!(
            !victim.exists(),
            "{path}: a file was written outside the replica"
        );
        assert_eq!(replica.status().generation, 1);
        assert_eq!(answers(&replica.store()), want);
    }
    // A manifest that says it is another generation than its name, or one of a newer format.
    plant_manifest(
        &published,
        2,
        &hostile("db").replace("\"generation\":2", "\"generation\":9"),
    );
    assert!(matches!(replica.poll(), Err(Error::BadObject { .. })));
    plant_manifest(
        &published,
        2,
        &hostile("db").replace("recostore-manifest/1", "recostore-manifest/3"),
    );
    let err = replica.poll().expect_err("newer format");
    assert!(err.to_string().contains("Upgrade recostore"), "{err}");
    assert_eq!(answers(&replica.store()), want);

    // The leader cannot publish past a manifest it cannot read, and says how to go on.
    let err = store
        .publish(&*os, &ObjPath::from("shop"))
        .expect_err("a damaged newest manifest");
    assert!(err.to_string().contains("delete that manifest"), "{err}");
    std::fs::remove_file(
        published
            .join("shop")
            .join("manifests")
            .join(format!("{:020}.json", 2)),
    )
    .expect("the operator deletes it");
    assert_eq!(
        store
            .publish(&*os, &ObjPath::from("shop"))
            .expect("publish")
            .generation,
        2
    );
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(answers(&replica.store()), answers(&store));
}

#[test]
fn status_answers_while_a_slow_download_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let os = local(&tmp.path().join("published"));
    store
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish");
    // Every download takes 200 ms: the next generation's several new objects take a second or
    // more to fetch.
    let slow: Arc<dyn ObjectStore> = Arc::new(slow::Slow {
        inner: os.clone(),
        delay: std::time::Duration::from_millis(200),
    });
    let replica = Store::open_replica(tmp.path().join("replica"), source(slow)).expect("replica");
    store.upsert_items(&items(30, 4)).expect("write");
    store.rebuild().expect("fold: a new segment to fetch");
    store
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish");
    std::thread::scope(|s| {
        let polling = s.spawn(|| replica.poll());
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Were `status` to wait for the poll, only the first call would return before the
        // poll ends; answered at once, it returns many times while the download runs.
        let mut during = 0;
        while !polling.is_finished() {
            let st = replica.status();
            if polling.is_finished() {
                break;
            }
            // The old generation until the swap near the poll's end, then the new one.
            assert!(matches!(st.generation, 1 | 2), "{st:?}");
            answers(&replica.store());
            during += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            during >= 5,
            "status answered {during} times during the poll"
        );
        assert_eq!(polling.join().expect("poll thread").expect("poll"), Some(2));
    });
    assert_eq!(answers(&replica.store()), answers(&store));
}

#[test]
fn the_background_publisher_publishes_changes_and_skips_quiet_rounds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let os = local(&tmp.path().join("published"));
    let publisher = store
        .start_publisher(
            os.clone(),
            ObjPath::from("shop"),
            std::time::Duration::from_millis(30),
            recostore::PublishOptions::default(),
        )
        .expect("start");
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    wait_for("a first generation", &|| publisher.status().published >= 1);
    wait_for("quiet rounds skipped", &|| publisher.status().skipped >= 3);
    assert_eq!(
        publisher.status().published,
        1,
        "nothing changed: nothing published"
    );
    let replica = Store::open_replica(tmp.path().join("replica"), source(os)).expect("replica");
    store.upsert_items(&items(10, 6)).expect("write");
    wait_for("the write published", &|| publisher.status().published >= 2);
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(answers(&replica.store()), answers(&store));
    let st = publisher.stop();
    assert_eq!((st.published, st.failed), (2, 0), "{st:?}");
    assert_eq!(st.last.expect("a report").generation, 2);
}
