//! Leader and replica through a real S3-compatible server (moto, started per test): publish
//! and follow, the conditional put that lets exactly one of two leaders win, objects damaged
//! in the bucket refused, and an outage (a proxy whose link is cut) survived stale and caught
//! up from.
#![cfg(feature = "replication")]

#[path = "common/moto.rs"]
mod moto;
#[path = "common/published.rs"]
mod published;

use std::sync::Arc;

use published::{block, list};
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::replica::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use recostore::{Ask, Error, Event, Item, ReplicaSource, Scenario, Store};

fn items(n: usize, salt: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            Item::new(
                format!("item-{i}"),
                [
                    (format!("t:{}", (i + salt) % 37), 1.0),
                    (format!("c:{}", i % 11), 0.5),
                ],
            )
        })
        .collect()
}

fn leader(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).expect("open leader");
    store.upsert_items(&items(300, 0)).expect("items");
    let events: Vec<Event> = (0..3_000u64)
        .map(|k| {
            Event::view(
                format!("user-{}", k % 30),
                format!("item-{}", k * 13 % 300),
                1_000 + k,
            )
        })
        .collect();
    store.record_events(&events).expect("events");
    store.rebuild().expect("rebuild");
    store
}

fn answers(store: &Store) -> Vec<String> {
    [
        Ask::new(Scenario::Similar {
            item: "item-3".into(),
        }),
        Ask::new(Scenario::ForUser).user("user-5"),
        Ask::new(Scenario::Trending),
    ]
    .iter()
    .map(|a| {
        store
            .recommend(&a.clone().k(8))
            .expect("recommend")
            .iter()
            .map(|r| format!("{}:{:.6}", r.id, r.score))
            .collect::<Vec<_>>()
            .join(",")
    })
    .collect()
}

fn follow(store: Arc<dyn ObjectStore>) -> ReplicaSource {
    let mut source = ReplicaSource::new(store, ObjPath::from("live"));
    source.poll_every = None;
    source.poll_timeout = std::time::Duration::from_secs(5);
    source
}

#[test]
fn a_replica_follows_a_leader_through_s3() {
    let server = moto::Moto::start();
    server.create_bucket("shop");
    let s3 = moto::s3(server.port, "shop");
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let prefix = ObjPath::from("live");
    let first = store.publish(&*s3, &prefix).expect("publish to S3");
    assert_eq!(first.generation, 1);
    let replica =
        Store::open_replica(tmp.path().join("replica"), follow(s3.clone())).expect("replica");
    assert_eq!(answers(&replica.store()), answers(&store));

    store.upsert_items(&items(20, 5)).expect("write");
    let second = store.publish(&*s3, &prefix).expect("publish again");
    assert!(second.bytes_uploaded < second.bytes_total, "{second:?}");
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(answers(&replica.store()), answers(&store));
    let err = replica
        .store()
        .upsert_items(&items(1, 1))
        .expect_err("read-only");
    assert!(matches!(err, Error::ReadOnlyReplica { .. }), "{err}");
}

#[test]
fn two_leaders_racing_on_s3_never_both_win() {
    let server = moto::Moto::start();
    server.create_bucket("shop");
    let s3 = moto::s3(server.port, "shop");
    let tmp = tempfile::tempdir().expect("tmp");
    let a = leader(&tmp.path().join("a"));
    let b = leader(&tmp.path().join("b"));
    let prefix = ObjPath::from("live");
    // The server honours the conditional put the manifests rely on: a second create of one
    // name fails (if it did not, two leaders could both commit a generation).
    let probe = ObjPath::from("probe/once");
    let create = || {
        let opts = recostore::replica::object_store::PutOptions {
            mode: recostore::replica::object_store::PutMode::Create,
            ..Default::default()
        };
        block(async { s3.put_opts(&probe, PutPayload::from(vec![1u8]), opts).await })
    };
    assert!(create().is_ok());
    assert!(
        matches!(
            create(),
            Err(recostore::replica::object_store::Error::AlreadyExists { .. })
        ),
        "the S3 server ignored If-None-Match"
    );
    for round in 0..3 {
        // Each round both see the same newest generation and race for the next name; the
        // conditional put lets one through. From round 1 on the prefix is the winner's, so the
        // loser is refused before it uploads.
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.publish(&*s3, &prefix));
            let tb = s.spawn(|| b.publish(&*s3, &prefix));
            (ta.join().expect("a"), tb.join().expect("b"))
        });
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert!(wins <= 1 || round > 0, "round {round}: a {ra:?}, b {rb:?}");
        if round == 0 {
            assert_eq!(wins, 1, "a {ra:?}, b {rb:?}");
        }
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        Error::PublishConflict { .. } | Error::ForeignLeader { .. }
                    ),
                    "{e}"
                );
            }
        }
    }
    // Exactly one store's generations are under the prefix, numbered without gaps.
    let mut names: Vec<String> = list(&*s3, "live/manifests");
    names.sort();
    let leaders: std::collections::HashSet<String> = names
        .iter()
        .map(|n| {
            let bytes = block(async { s3.get(&ObjPath::from(n.as_str())).await?.bytes().await })
                .expect("manifest");
            let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
            let m: serde_json::Value =
                serde_json::from_str(text.lines().next().expect("line")).expect("json");
            m["leader"].as_str().expect("leader").to_string()
        })
        .collect();
    assert_eq!(leaders.len(), 1, "{names:?}");
    for (i, n) in names.iter().enumerate() {
        assert!(n.ends_with(&format!("{:020}.json", i + 1)), "{names:?}");
    }
}

#[test]
fn objects_damaged_in_the_bucket_are_refused() {
    let server = moto::Moto::start();
    server.create_bucket("shop");
    let s3 = moto::s3(server.port, "shop");
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let prefix = ObjPath::from("live");
    store.publish(&*s3, &prefix).expect("publish");
    let before: std::collections::HashSet<String> =
        list(&*s3, "live/objects").into_iter().collect();
    let replica =
        Store::open_replica(tmp.path().join("replica"), follow(s3.clone())).expect("replica");
    let want_1 = answers(&replica.store());

    store.upsert_items(&items(30, 7)).expect("write");
    store.rebuild().expect("fold");
    store.publish(&*s3, &prefix).expect("publish 2");
    let new: Vec<String> = list(&*s3, "live/objects")
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert!(new.len() >= 2, "{new:?}");
    // One new object flipped in place (same size), one truncated.
    for (i, name) in new.iter().take(2).enumerate() {
        let at = ObjPath::from(name.as_str());
        let mut bytes = block(async { s3.get(&at).await?.bytes().await })
            .expect("get")
            .to_vec();
        if i == 0 {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
        } else {
            bytes.truncate(bytes.len() / 2);
        }
        block(async { s3.put(&at, PutPayload::from(bytes)).await }).expect("damage");
    }
    let err = replica.poll().expect_err("damaged generation");
    assert!(matches!(err, Error::BadObject { .. }), "{err}");
    let st = replica.status();
    assert_eq!((st.generation, st.stale), (1, true), "{st:?}");
    assert_eq!(answers(&replica.store()), want_1);

    // The operator deletes the damaged objects; the leader's next publish puts them back.
    for name in new.iter().take(2) {
        block(async { s3.delete(&ObjPath::from(name.as_str())).await }).expect("delete");
    }
    store.publish(&*s3, &prefix).expect("publish 3");
    assert_eq!(replica.poll().expect("poll"), Some(3));
    assert_eq!(answers(&replica.store()), answers(&store));
}

#[test]
fn an_s3_outage_leaves_the_replica_serving_stale_until_it_catches_up() {
    let server = moto::Moto::start();
    server.create_bucket("shop");
    let proxy = moto::Proxy::start(server.port);
    let direct = moto::s3(server.port, "shop");
    let through = moto::s3(proxy.port, "shop");
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"));
    let prefix = ObjPath::from("live");
    store.publish(&*direct, &prefix).expect("publish");
    let replica =
        Store::open_replica(tmp.path().join("replica"), follow(through.clone())).expect("replica");
    let want_1 = answers(&replica.store());

    proxy.cut();
    store.upsert_items(&items(10, 3)).expect("write");
    store
        .publish(&*direct, &prefix)
        .expect("the leader publishes on");
    let started = std::time::Instant::now();
    let err = replica.poll().expect_err("unreachable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the poll hung"
    );
    assert!(matches!(err, Error::ObjectStore { .. }), "{err}");
    let st = replica.status();
    assert!(st.stale, "{st:?}");
    assert_eq!(st.generation, 1);
    assert_eq!(
        answers(&replica.store()),
        want_1,
        "serves its last good generation"
    );

    proxy.restore();
    assert_eq!(replica.poll().expect("back"), Some(2));
    let st = replica.status();
    assert!(!st.stale && st.behind == 0, "{st:?}");
    assert_eq!(answers(&replica.store()), answers(&store));
}
