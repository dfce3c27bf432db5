//! Leader and replica through Azure Blob Storage, as the Azurite emulator serves it (started
//! per test): the conditional put manifests rely on, two leaders racing for one generation,
//! publish and follow through the library, and the CLI reaching `az://` from the `AZURE_*`
//! environment as an operator would.
#![cfg(feature = "replication")]

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/published.rs"]
mod published;

use std::process::Command;
use std::sync::Arc;

use published::block;
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::replica::object_store::{
    Error as OsError, ObjectStore, PutMode, PutOptions, PutPayload,
};
use recostore::{Ask, Error, Event, Item, ReplicaSource, Scenario, Store};

fn leader(dir: &std::path::Path, salt: usize) -> Store {
    let store = Store::open(dir).expect("open leader");
    let items: Vec<Item> = (0..300)
        .map(|i| {
            Item::new(
                format!("item-{i}"),
                [(format!("t:{}", (i + salt) % 37), 1.0)],
            )
        })
        .collect();
    store.upsert_items(&items).expect("items");
    let events: Vec<Event> = (0..2_000u64)
        .map(|k| {
            Event::view(
                format!("u{}", k % 30),
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
        Ask::new(Scenario::ForUser).user("u5"),
    ]
    .iter()
    .map(|a| format!("{:?}", store.recommend(&a.clone().k(8)).expect("recommend")))
    .collect()
}

fn follow(store: Arc<dyn ObjectStore>) -> ReplicaSource {
    let mut source = ReplicaSource::new(store, ObjPath::from("live"));
    source.poll_every = None;
    source.poll_timeout = std::time::Duration::from_secs(5);
    source
}

#[test]
fn a_replica_follows_a_leader_through_azure_and_one_of_two_racing_leaders_wins() {
    let server = azurite::Azurite::start();
    server.create_container("shop");
    let az = azurite::azure(&server, "shop");

    // The emulator honours the conditional put (`If-None-Match: *`) the manifests rely on.
    let probe = ObjPath::from("probe/once");
    let create = || {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        block(async { az.put_opts(&probe, PutPayload::from(vec![1u8]), opts).await })
    };
    assert!(create().is_ok());
    assert!(
        matches!(
            create(),
            Err(OsError::AlreadyExists { .. } | OsError::Precondition { .. })
        ),
        "Azure ignored If-None-Match"
    );

    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (
        leader(&tmp.path().join("a"), 0),
        leader(&tmp.path().join("b"), 1),
    );
    let prefix = ObjPath::from("live");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.publish(&*az, &prefix));
        let tb = s.spawn(|| b.publish(&*az, &prefix));
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    assert_eq!(
        [&ra, &rb].iter().filter(|r| r.is_ok()).count(),
        1,
        "a {ra:?}, b {rb:?}"
    );
    let (winner, loser) = if ra.is_ok() { (&a, rb) } else { (&b, ra) };
    assert!(
        matches!(
            loser,
            Err(Error::PublishConflict { .. } | Error::ForeignLeader { .. })
        ),
        "{loser:?}"
    );

    let replica =
        Store::open_replica(tmp.path().join("replica"), follow(az.clone())).expect("replica");
    assert_eq!(answers(&replica.store()), answers(winner));
    winner
        .upsert_items(&[Item::new("item-3", [("t:new", 1.0)])])
        .expect("write");
    let second = winner.publish(&*az, &prefix).expect("publish again");
    assert!(second.bytes_uploaded < second.bytes_total, "{second:?}");
    assert_eq!(replica.poll().expect("poll"), Some(2));
    assert_eq!(answers(&replica.store()), answers(winner));
}

#[test]
fn the_cli_publishes_to_an_az_address_configured_from_the_environment() {
    let server = azurite::Azurite::start();
    server.create_container("shop");
    let tmp = tempfile::tempdir().expect("tmp");
    let store = leader(&tmp.path().join("leader"), 0);
    let want = answers(&store);
    store.close().expect("close");
    let out = Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(["publish", "--dir"])
        .arg(tmp.path().join("leader"))
        .args(["az://shop/live", "--json"])
        .env("AZURE_STORAGE_ACCOUNT_NAME", azurite::ACCOUNT)
        .env("AZURE_STORAGE_ACCOUNT_KEY", azurite::KEY)
        .env("AZURE_STORAGE_ENDPOINT", server.endpoint())
        .env("AZURE_ALLOW_HTTP", "true")
        .output()
        .expect("run recostore publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["generation"], 1, "{report}");
    let replica = Store::open_replica(
        tmp.path().join("replica"),
        follow(azurite::azure(&server, "shop")),
    )
    .expect("replica");
    assert_eq!(answers(&replica.store()), want);
}
