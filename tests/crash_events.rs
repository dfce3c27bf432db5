//! Crash consistency of events: a child process records event batches and prints each one
//! acknowledged (recorded, then `flush` returned); we SIGKILL it at a random moment and reopen.
//! Every acknowledged event must be in the log, and for every user the derived state must agree
//! with the log (a batch's log chunks and journal entry are written in one atomic batch, and
//! open replays the journal onto the last checkpoint, so neither can run ahead of the other).

use std::collections::HashMap;
use std::time::{Duration, Instant};

mod common;

use rand::{Rng, SeedableRng};
use recostore::{Config, Durability, Event, EventKind, Item, Store};

const USERS: u64 = 20;
const PER_BATCH: u64 = 5;

fn batch(n: u64) -> Vec<Event> {
    (0..PER_BATCH)
        .map(|i| {
            Event::purchase(
                format!("u{}", n % USERS),
                format!("it-{}", (n + i) % 40),
                1,
                2.5,
                1_000 + n,
            )
            .session(format!("s{n}"))
        })
        .collect()
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_CRASH_DIR`.
#[test]
#[ignore = "entry point of the child process of `acknowledged_events_survive_sigkill`"]
fn child_recorder() {
    let Some((dir, start)) = common::child_env() else {
        return;
    };
    let cfg = Config::default()
        .durability(Durability::GroupCommit { ms: 20 })
        .rebuild_threshold(Some(50))
        // Small, so kills land both right after checkpoints and with journalled batches.
        .checkpoint_events(12);
    let store = Store::open_with(&dir, cfg).expect("child opens store");
    let items: Vec<Item> = (0..40)
        .map(|i| Item::new(format!("it-{i}"), [(format!("t:{}", i % 7), 1.0)]))
        .collect();
    store.upsert_items(&items).expect("items");
    let mut n = start;
    loop {
        store.record_events(&batch(n)).expect("record");
        store.flush().expect("flush");
        println!("ack {n}");
        n += 1;
    }
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64),
    );
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut acked = Vec::new();
    let mut round = 0u64;
    while Instant::now() < deadline || round < 3 {
        let wait = Duration::from_millis(rng.gen_range(200..900));
        let envs = [
            ("RECOSTORE_CRASH_DIR", dir.path().display().to_string()),
            ("RECOSTORE_CRASH_START", (round * 1_000_000).to_string()),
        ];
        acked.extend(common::run_child_and_kill("child_recorder", &envs, wait));
        let store = Store::open(dir.path()).expect("reopen after SIGKILL");
        let mut sessions: HashMap<String, Vec<String>> = HashMap::new();
        for u in 0..USERS {
            let user = format!("u{u}");
            let Ok(log) = store.user_events(&user) else {
                continue;
            };
            let activity = store
                .user_activity(&user)
                .expect("user with events has activity");
            assert_eq!(
                activity.events,
                log.len() as u64,
                "round {round}: {user}'s state and log disagree"
            );
            for e in log {
                assert!(matches!(e.kind, EventKind::Purchase { qty: 1, .. }));
                sessions
                    .entry(e.session.unwrap_or_default())
                    .or_default()
                    .push(e.item.unwrap_or_default());
            }
        }
        for &n in &acked {
            let got = sessions.get(&format!("s{n}")).map_or(0, Vec::len);
            assert_eq!(
                got as u64, PER_BATCH,
                "round {round}: acknowledged batch {n} lost"
            );
        }
        drop(store);
        round += 1;
    }
    assert!(
        acked.len() > 20,
        "too few acknowledged batches: {}",
        acked.len()
    );
    eprintln!(
        "{round} kills, {} acknowledged event batches intact",
        acked.len()
    );
}
