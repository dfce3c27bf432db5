//! Crash consistency of bulk loads: a child process bulk-loads batches of items (each load
//! writes its chunks and new tag names to sled beside its segment, then commits with one
//! sled batch of counters and the new generation), and
//! after each acknowledged load deletes a few of the loaded items (tombstones over the
//! chunks). We SIGKILL it at a random moment. Reopened, the store must hold every
//! acknowledged load and deletion, a load in flight either whole or not at all, and pass the
//! deep verify; then a segment rebuilt from sled alone must agree.

use std::time::{Duration, Instant};

mod common;

use rand::{Rng, SeedableRng};
use recostore::{Config, Durability, Item, Store};

/// Items per load: three chunks.
const PER_LOAD: u64 = 2_500;
/// Items of each load the child deletes after the load is acknowledged.
const DELETED: u64 = 10;

fn item(load: u64, j: u64) -> Item {
    let mut tags = vec![
        (format!("load:{}", load % 13), 1.0),
        (format!("j:{}", j % 97), 0.5 + (j % 5) as f32),
    ];
    if j.is_multiple_of(50) {
        // A tag no earlier load named: its name is written ahead of the load's commit.
        tags.push((only(load), 2.0));
    }
    Item {
        id: format!("b{load}-{j}"),
        tags,
        title: format!("title {load} {j}"),
        price: (j % 1000) as f32,
        stock: (load % 9) as u32,
        ..Item::default()
    }
}

/// The tag only load `load` names.
fn only(load: u64) -> String {
    format!("only:{load}")
}

fn config() -> Config {
    Config::default()
        .durability(Durability::Immediate)
        .neighbours(0)
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_CRASH_DIR`. Prints
/// `ack 2k` once load `k` returned, and `ack 2k+1` once its deletions returned.
#[test]
#[ignore = "entry point of the child process of `bulk_loads_killed_at_any_moment_are_whole_or_absent`"]
fn child_bulk_loader() {
    let Some((dir, start)) = common::child_env() else {
        return;
    };
    let store = Store::open_with(&dir, config()).expect("child opens store");
    for load in start.. {
        let items: Vec<Item> = (0..PER_LOAD).map(|j| item(load, j)).collect();
        store.bulk_load_items(&items).expect("bulk load");
        println!("ack {}", 2 * load);
        let gone: Vec<String> = (0..DELETED).map(|j| item(load, j).id).collect();
        let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
        store.delete_items(&gone).expect("delete");
        println!("ack {}", 2 * load + 1);
    }
}

#[test]
fn bulk_loads_killed_at_any_moment_are_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(13, |d| d.as_nanos() as u64),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut acked = std::collections::BTreeSet::new();
    let (mut round, mut in_flight_whole, mut in_flight_absent) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline || round < 4 {
        let wait = Duration::from_millis(rng.gen_range(150..900));
        let start = round * 1_000;
        let envs = [
            ("RECOSTORE_CRASH_DIR", dir.path().display().to_string()),
            ("RECOSTORE_CRASH_START", start.to_string()),
        ];
        acked.extend(common::run_child_and_kill("child_bulk_loader", &envs, wait));
        let store = Store::open_with(dir.path(), config()).expect("reopen after SIGKILL");
        // Every load this child may have started: the acknowledged ones and the one after.
        let last = acked
            .range(2 * start..)
            .next_back()
            .map_or(start, |a| a / 2 + 1);
        for load in start..=last {
            let present = (DELETED..PER_LOAD)
                .filter(|&j| store.get_item(&item(load, j).id).is_some())
                .count() as u64;
            let must = acked.contains(&(2 * load));
            assert!(
                present == 0 && !must || present == PER_LOAD - DELETED,
                "round {round}: load {load} (acknowledged: {must}) has {present} of {} items",
                PER_LOAD - DELETED
            );
            // A load that did not commit leaves no tag name behind (open removed the names
            // it wrote ahead), and one that did has its own.
            assert_eq!(
                store.snapshot().tag_id(&only(load)).is_some(),
                present > 0,
                "round {round}: the tag of load {load} (acknowledged: {must}, {present} items)"
            );
            if !must {
                if present > 0 {
                    in_flight_whole += 1;
                } else {
                    in_flight_absent += 1;
                }
            }
            if present > 0 {
                for j in (0..PER_LOAD).step_by(37) {
                    let got = store.get_item(&item(load, j).id);
                    if j < DELETED {
                        if acked.contains(&(2 * load + 1)) {
                            assert_eq!(got, None, "round {round}: b{load}-{j} was deleted");
                        }
                        continue;
                    }
                    let mut want = item(load, j);
                    want.tags.sort_by(|a, b| a.0.cmp(&b.0));
                    assert_eq!(got, Some(want), "round {round}: b{load}-{j}");
                }
            }
        }
        let report = store.verify_deep().expect("verify runs");
        assert!(report.healthy(), "round {round}: {report:?}");
        drop(store);
        round += 1;
    }
    // Last, lose the segment: sled's chunks, keys and tombstones alone rebuild the same store.
    let store = Store::open_with(dir.path(), config()).unwrap();
    let items = store.stats().items;
    let sample: Vec<(String, Option<Item>)> = acked
        .iter()
        .filter(|a| *a % 2 == 0)
        .flat_map(|a| (0..PER_LOAD).step_by(101).map(move |j| item(a / 2, j).id))
        .map(|id| {
            let got = store.get_item(&id);
            (id, got)
        })
        .collect();
    drop(store);
    for e in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let store = Store::open_with(dir.path(), config()).unwrap();
    assert_eq!(
        store.stats().items,
        items,
        "items after the repair from sled"
    );
    for (id, got) in &sample {
        assert_eq!(&store.get_item(id), got, "{id} after the repair from sled");
    }
    assert!(store.verify_deep().unwrap().healthy());
    let acked_loads = acked.iter().filter(|a| *a % 2 == 0).count();
    assert!(
        acked_loads >= 8,
        "too little happened to prove anything: {acked_loads} acknowledged loads"
    );
    eprintln!(
        "{round} kills, {acked_loads} acknowledged loads all whole; of the loads in flight at a \
         kill {in_flight_whole} were whole and {in_flight_absent} absent, none torn; {items} \
         items, all intact after a repair from sled"
    );
}
