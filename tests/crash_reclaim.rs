//! Crash consistency of reclaiming sled's space while writing: a child process writes records
//! (each acknowledged write durable on its own) and reclaims the store's space every few
//! dozen writes, so its copies, commits and removals of old files are under way much of the
//! time; we SIGKILL it at a random moment. Reopened, the store must hold every acknowledged
//! record intact, sled's files in exactly one directory (the one `CURRENT` names), and pass
//! the deep verify.

use std::time::{Duration, Instant};

mod common;

use rand::{Rng, SeedableRng};
use recostore::{Config, Durability, Event, Item, Store};

fn record(n: u64) -> Item {
    Item {
        id: format!("it-{n}"),
        tags: vec![(format!("n:{n}"), 1.0), ("shared".into(), 0.5)],
        title: format!("title-{n}"),
        price: (n % 1000) as f32,
        ..Item::default()
    }
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_CRASH_DIR`.
#[test]
#[ignore = "entry point of the child process of `reclaims_killed_at_any_moment_lose_nothing`"]
fn child_reclaimer() {
    let Some((dir, start)) = common::child_env() else {
        return;
    };
    let cfg = Config::default()
        .durability(Durability::Immediate)
        .future_tolerance_secs(None);
    let store = Store::open_with(&dir, cfg).expect("child opens store");
    let mut n = start;
    loop {
        store.upsert_item(&record(n)).expect("write");
        // Events rewrite the user's log and journal keys: the churn reclaims exist for.
        store
            .record_events(&[Event::view(
                format!("u{}", n % 50),
                format!("it-{n}"),
                1_700_000_000 + n,
            )])
            .expect("events");
        println!("ack {n}");
        n += 1;
        if n.is_multiple_of(40) {
            store.reclaim_space().expect("reclaim");
        }
    }
}

#[test]
fn reclaims_killed_at_any_moment_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(11, |d| d.as_nanos() as u64),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut acked = Vec::new();
    let mut round = 0u64;
    while Instant::now() < deadline || round < 4 {
        let wait = Duration::from_millis(rng.gen_range(200..1200));
        let envs = [
            ("RECOSTORE_CRASH_DIR", dir.path().display().to_string()),
            ("RECOSTORE_CRASH_START", (round * 10_000_000).to_string()),
        ];
        acked.extend(common::run_child_and_kill("child_reclaimer", &envs, wait));
        let store = Store::open_with(dir.path(), Config::default().future_tolerance_secs(None))
            .expect("reopen after SIGKILL");
        for &n in &acked {
            let got = store.get_item(&format!("it-{n}"));
            let mut want = record(n);
            want.tags.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                got,
                Some(want),
                "round {round} (killed after {wait:?}): it-{n}"
            );
        }
        let report = store.verify_deep().expect("verify runs");
        assert!(report.healthy(), "round {round}: {report:?}");
        let dirs = common::sled_dirs(dir.path());
        assert_eq!(dirs.len(), 1, "round {round}: sled's files in {dirs:?}");
        drop(store);
        round += 1;
    }
    // The generation in `CURRENT` counts the reclaims that committed.
    let current = std::fs::read_to_string(dir.path().join("CURRENT")).unwrap_or_default();
    let reclaims: u64 = current
        .trim()
        .strip_prefix("db.")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    assert!(
        acked.len() > 100 && reclaims >= round,
        "too little happened to prove anything: {} acknowledged, {reclaims} reclaims",
        acked.len()
    );
    eprintln!(
        "{round} kills, {reclaims} reclaims committed, {} acknowledged records all intact",
        acked.len()
    );
}
