//! Crash consistency across namespaces: a child process writes items and events into the
//! default namespace and two named ones, acknowledging each batch once `flush` returns, with
//! rebuilds and checkpoints of each namespace running in the background. We SIGKILL it at a
//! random moment and reopen: every acknowledged item is in its own namespace and in no other,
//! and every acknowledged event is in its namespace's log (so each namespace's journal was
//! replayed on its own keys).

use std::time::{Duration, Instant};

mod common;

use rand::{Rng, SeedableRng};
use recostore::{Config, Durability, Event, Item, Store};

const SHOPS: [&str; 3] = ["default", "shop-a", "shop-b"];

fn item(n: u64) -> Item {
    Item::new(format!("it-{n}"), [(format!("shop:{}", n % 3), 1.0)]).title(format!("t{n}"))
}

fn config() -> Config {
    Config::default()
        .durability(Durability::GroupCommit { ms: 50 })
        .rebuild_threshold(Some(300))
        .checkpoint_events(40)
}

fn open(dir: &str) -> (Store, [Store; 3]) {
    let root = Store::open_with(dir, config()).expect("open");
    let shops = SHOPS.map(|s| root.namespace(s).expect("namespace"));
    (root, shops)
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_CRASH_DIR`.
#[test]
#[ignore = "entry point of the child process of `acknowledged_writes_stay_in_their_namespace_after_sigkill`"]
fn child_writer() {
    let Some((dir, start)) = common::child_env() else {
        return;
    };
    let (_root, shops) = open(&dir);
    let mut n = start;
    loop {
        // Ten items of one namespace and a view of each by that namespace's shopper, the
        // namespace turning with every batch; acknowledged once flushed.
        let shop = &shops[(n % 3) as usize];
        let batch: Vec<u64> = (n..n + 30).step_by(3).collect();
        let items: Vec<Item> = batch.iter().map(|&i| item(i)).collect();
        shop.upsert_items(&items).expect("items");
        let views: Vec<Event> = batch
            .iter()
            .map(|&i| Event::view("shopper", format!("it-{i}"), 1_000 + i))
            .collect();
        shop.record_events(&views).expect("events");
        shop.flush().expect("flush");
        for i in &batch {
            println!("ack {i}");
        }
        n += if n % 3 == 2 { 28 } else { 1 };
    }
}

#[test]
fn acknowledged_writes_stay_in_their_namespace_after_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().display().to_string();
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64),
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut acked: Vec<u64> = Vec::new();
    let mut round = 0u64;
    while Instant::now() < deadline || round < 3 {
        let wait = Duration::from_millis(rng.gen_range(200..900));
        let envs = [
            ("RECOSTORE_CRASH_DIR", path.clone()),
            ("RECOSTORE_CRASH_START", (round * 10_000_000).to_string()),
        ];
        acked.extend(common::run_child_and_kill("child_writer", &envs, wait));
        let (root, shops) = open(&path);
        for &n in &acked {
            let home = (n % 3) as usize;
            for (s, shop) in shops.iter().enumerate() {
                let got = shop.get_item(&format!("it-{n}"));
                if s == home {
                    let got = got.unwrap_or_else(|| {
                        panic!("round {round} ({wait:?}): it-{n} missing from {}", SHOPS[s])
                    });
                    assert_eq!(got.title, format!("t{n}"), "round {round}: it-{n} damaged");
                } else {
                    assert!(
                        got.is_none(),
                        "round {round}: it-{n} leaked into {}",
                        SHOPS[s]
                    );
                }
            }
        }
        for (s, shop) in shops.iter().enumerate() {
            let logged: std::collections::HashSet<String> = shop
                .user_events("shopper")
                .map(|e| e.into_iter().filter_map(|e| e.item).collect())
                .unwrap_or_default();
            for &n in acked.iter().filter(|&&n| (n % 3) as usize == s) {
                assert!(
                    logged.contains(&format!("it-{n}")),
                    "round {round} ({wait:?}): the view of it-{n} is missing from {}'s log",
                    SHOPS[s]
                );
            }
            assert!(
                shop.verify_deep().expect("verify").healthy(),
                "{}",
                SHOPS[s]
            );
        }
        drop(shops);
        root.close().expect("close");
        round += 1;
    }
    assert!(
        acked.len() > 60,
        "the children acknowledged too little to prove anything: {}",
        acked.len()
    );
    eprintln!(
        "{round} kills, {} acknowledged items all in place",
        acked.len()
    );
}
