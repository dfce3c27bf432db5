//! Plugins, their previous versions, their disabled state and slot routing survive a restart.
// Runs WebAssembly plugins: needs the `plugins` feature (on by default).
#![cfg(feature = "plugins")]

mod plugin_support;

use plugin_support::{relaxed, shop, Wat};
use recostore::plugin::Variant;
use recostore::{Ask, Scenario};
use recostore::{Config, PluginLimits, Store};

#[test]
fn plugins_and_slots_come_back_after_reopen() {
    let (dir, store) = shop(relaxed());
    let p = store.plugins();
    p.load("order", Wat::default().text().as_bytes())
        .expect("v1");
    p.swap(
        "order",
        Wat {
            sign: -1.0,
            ..Wat::default()
        }
        .text()
        .as_bytes(),
    )
    .expect("v2");
    p.load("gone", Wat::default().text().as_bytes())
        .expect("load");
    p.unload("gone").expect("unload");
    p.set_slot(
        "home",
        vec![Variant::new("builtin", 1), Variant::new("order", 3)],
    )
    .expect("route");
    p.set_slot("cart", vec![Variant::new("order", 1)])
        .expect("route");
    p.remove_slot("cart").expect("remove");
    let ask = Ask::new(Scenario::Trending).k(5).strategy("order");
    let before: Vec<String> = store
        .recommend(&ask)
        .expect("answer")
        .into_iter()
        .map(|r| r.id)
        .collect();
    drop(store);

    let store = Store::open_with(dir.path(), Config::default().plugins(relaxed())).expect("reopen");
    let p = store.plugins();
    let info = p.info("order").expect("order is back");
    assert_eq!((info.version, info.previous), (2, Some(1)));
    assert!(p.info("gone").is_err(), "an unloaded plugin stays unloaded");
    assert_eq!(
        p.slots(),
        vec![(
            "home".to_string(),
            vec![Variant::new("builtin", 1), Variant::new("order", 3)]
        )]
    );
    let after: Vec<String> = store
        .recommend(&ask)
        .expect("answer")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(before, after, "the same version ranks the same way");
    let info = p
        .rollback("order")
        .expect("the previous version came back too");
    assert_eq!(info.version, 1);
    p.swap("order", Wat::default().text().as_bytes())
        .expect("v3");
    assert_eq!(
        p.info("order").expect("order").version,
        3,
        "numbering carries on"
    );
}

#[test]
fn a_stored_plugin_that_no_longer_loads_is_reported_and_can_be_removed() {
    let (dir, store) = shop(relaxed());
    store
        .plugins()
        .load("big", Wat::default().text().as_bytes())
        .expect("load");
    store
        .plugins()
        .set_slot("home", vec![Variant::new("big", 1)])
        .expect("route");
    drop(store);
    // Reopen with a module size cap the stored module is over.
    let limits = PluginLimits {
        max_module_bytes: 16,
        ..relaxed()
    };
    let store = Store::open_with(dir.path(), Config::default().plugins(limits))
        .expect("the store still opens");
    assert!(store.plugins().info("big").is_err());
    assert!(
        store.plugins().slots().is_empty(),
        "a slot routing to it is left out"
    );
    let served = store
        .serve(&Ask::new(Scenario::Trending).k(3).slot("home").user("buyer"))
        .expect("answers");
    assert_eq!(served.ranked_by.strategy, "builtin");
    store.plugins().unload("big").expect("removable");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert!(store.plugins().info("big").is_err(), "removed for good");
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// A module that ranks like the default one and carries `pad` bytes of a custom section, so
/// each version is a distinct, large module.
fn padded(version: usize, pad: usize) -> Vec<u8> {
    let text = Wat {
        extra: &format!("(@custom \"pad\" \"v{version} {}\")", "x".repeat(pad)),
        ..Wat::default()
    }
    .text();
    text.into_bytes()
}

#[test]
fn a_hundred_swaps_of_a_large_module_leave_the_store_size_steady() {
    let (dir, store) = shop(relaxed());
    let p = store.plugins();
    let pad = 400_000;
    p.load("big", &padded(0, pad)).expect("v1");
    p.swap("big", &padded(1, pad)).expect("v2");
    store.flush().expect("flush");
    let steady = dir_bytes(dir.path());
    for i in 2..102 {
        p.swap("big", &padded(i, pad)).expect("swap");
    }
    store.flush().expect("flush");
    let after = dir_bytes(dir.path());
    eprintln!("store after 2 swaps: {steady} bytes; after 102: {after}");
    // Two versions are kept (current and rollback); 100 more swaps wrote 40 MB of modules.
    assert!(
        after < steady + 4 * pad as u64,
        "the store grew from {steady} to {after} bytes"
    );
    let modules = dir.path().join(recostore::plugin::MODULES_DIR);
    assert_eq!(std::fs::read_dir(&modules).expect("modules").count(), 2);
    p.rollback("big").expect("rollback to v101");
    drop(store);
    let store = Store::open_with(dir.path(), Config::default().plugins(relaxed())).expect("reopen");
    let info = store.plugins().info("big").expect("back after reopen");
    assert_eq!(info.version, 101, "{info:?}");
    store.plugins().unload("big").expect("unload");
    assert_eq!(std::fs::read_dir(&modules).expect("modules").count(), 0);
}

#[test]
fn a_backup_carries_the_plugin_modules() {
    let (_dir, store) = shop(relaxed());
    store
        .plugins()
        .load("order", Wat::default().text().as_bytes())
        .expect("v1");
    store
        .plugins()
        .swap(
            "order",
            Wat {
                sign: -1.0,
                ..Wat::default()
            }
            .text()
            .as_bytes(),
        )
        .expect("v2");
    let out = tempfile::tempdir().expect("tempdir");
    let to = out.path().join("backup");
    store.backup(&to).expect("backup");
    let copy = Store::open_with(&to, Config::default().plugins(relaxed())).expect("open copy");
    let info = copy.plugins().info("order").expect("the plugin came along");
    assert_eq!((info.version, info.previous), (2, Some(1)));
}
