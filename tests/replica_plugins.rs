//! A replica serves the leader's ranking plugins and slots as published, and refuses to change
//! them: plugins and routes are the leader's, like records.
#![cfg(all(feature = "replication", feature = "plugins"))]

mod plugin_support;

use std::sync::Arc;

use plugin_support::{relaxed, shop, Wat};
use recostore::plugin::Variant;
use recostore::replica::object_store::local::LocalFileSystem;
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::{Ask, Error, ReplicaSource, Scenario, Store};

#[test]
fn a_replica_serves_the_leaders_plugins_and_slots_and_refuses_to_change_them() {
    let (_dir, leader) = shop(relaxed());
    let reverse = Wat {
        sign: -1.0,
        ..Wat::default()
    }
    .text();
    leader
        .plugins()
        .load("reverse", reverse.as_bytes())
        .expect("load");
    leader
        .plugins()
        .set_slot("home", vec![Variant::new("reverse", 1)])
        .expect("route");
    let tmp = tempfile::tempdir().expect("tmp");
    let published = tmp.path().join("published");
    std::fs::create_dir_all(&published).expect("mkdir");
    let os = Arc::new(LocalFileSystem::new_with_prefix(&published).expect("object store"));
    leader
        .publish(&*os, &ObjPath::from("shop"))
        .expect("publish");

    let mut source = ReplicaSource::new(os, ObjPath::from("shop"));
    source.poll_every = None;
    source.config = recostore::Config::default().plugins(relaxed());
    let replica = Store::open_replica(tmp.path().join("replica"), source).expect("replica");
    let r = replica.store();

    let ask = Ask::new(Scenario::ForUser).user("buyer").slot("home").k(5);
    let want = leader.serve(&ask).expect("leader serves");
    let got = r.serve(&ask).expect("replica serves");
    assert_eq!(got.ranked_by.strategy, "reverse");
    assert_eq!(got.ranked_by, want.ranked_by);
    assert_eq!(got.items, want.items);
    // The leader records its answer's impression; a replica records nothing, and says so by
    // saying nothing.
    assert_eq!(want.impression, Some(recostore::Recording::Queued));
    assert_eq!(got.impression, None);
    assert_eq!(r.stats().served_impressions, Default::default());
    assert_eq!(r.plugins().list().len(), 1);
    assert_eq!(r.plugins().slots(), leader.plugins().slots());

    let refused = [
        r.plugins().load("other", reverse.as_bytes()).err(),
        r.plugins()
            .set_slot("home", vec![Variant::new("builtin", 1)])
            .err(),
        r.plugins().remove_slot("home").err(),
    ];
    for e in refused {
        assert!(matches!(e, Some(Error::ReadOnlyReplica { .. })), "{e:?}");
    }
    // Nothing changed in what it serves.
    assert_eq!(r.plugins().list().len(), 1);
    assert_eq!(r.serve(&ask).expect("serves").items, want.items);
}
